"""The state DB: the single source of truth for what is mirrored where.

``StateStore`` (in ``sync/contracts.py``) is the contract; SQLite is the implementation. A
PostgreSQL backend would be one more module here implementing the same contract.
"""

from .sqlite import MIGRATIONS, SCHEMA_VERSION, RunLock, State, now

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "RunLock", "State", "now"]
