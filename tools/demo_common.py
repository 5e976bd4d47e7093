"""What the demo scripts share: the project root, the demo password, running the real CLI,
and starting from a clean state DB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "demo-password"


def cli(*args: str) -> int:
    """Run ``resync-sword ARGS`` as a user would (the password in the environment only)."""
    env = dict(os.environ, SWORD_PASSWORD=PASSWORD)
    print(f"\n$ resync-sword {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "sync", *args], cwd=ROOT, env=env)


def fresh_state(path: Path) -> None:
    """Remove a state DB and its WAL files: the demo starts from nothing."""
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(path) + suffix).unlink(missing_ok=True)
