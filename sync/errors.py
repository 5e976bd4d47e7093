"""One error type per failure kind, each with a stable code, the resource, the cause and a hint.

Errors are what users read (terminal, ``status``, ``replay``), so every message names the
resource it is about and never contains a secret: ``redact`` scrubs registered secrets from any
text before it is shown or stored.
"""

from __future__ import annotations

import threading

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret (e.g. the SWORD password) so that ``redact`` removes it everywhere."""
    if value and len(value) >= 3:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` by ``***``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class SyncError(Exception):
    """Base of every error resync-sword reports.

    ``code`` is a stable reference (shown to users, stored in the state DB); ``transient``
    says whether trying again later may help (network faults, 5xx) or not (bad input).
    """

    code = "sync-error"
    transient = False
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        resource: str | None = None,
        hint: str | None = None,
        status: int | None = None,
    ) -> None:
        self.message = redact(message)
        self.resource = resource
        self.hint = hint
        self.status = status
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f" [{self.resource}]" if self.resource else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return redact(f"{self.code}{where}: {self.message}{hint}")


class ConfigError(SyncError):
    """Bad command line or pipeline file: nothing was synced."""

    code = "config"
    exit_code = 2


class DocumentError(SyncError):
    """A ResourceSync document is malformed, hostile, of the wrong kind, or too large."""

    code = "bad-document"


class DiscoveryError(SyncError):
    """The source could not be discovered (no capability list, loops, nothing to read)."""

    code = "discovery"


class OutsideSourceError(SyncError):
    """A URL points outside the source's allowed hosts (list entry or redirect)."""

    code = "outside-source"


class FetchError(SyncError):
    """An HTTP request failed (after retries for transient causes)."""

    code = "fetch"

    def __init__(self, message: str, *, transient: bool = False, **kw: object) -> None:
        self.transient = transient
        super().__init__(message, **kw)  # type: ignore[arg-type]


class IntegrityError(SyncError):
    """Downloaded bytes do not match what the source announced (hash, length, size, type)."""

    code = "integrity"


class MetadataError(SyncError):
    """A metadata record cannot be read or lacks what the pipeline requires (e.g. a title)."""

    code = "metadata"


class DepositError(SyncError):
    """The SWORD server refused or failed an operation; ``sword_error`` is its error URI."""

    code = "deposit"

    def __init__(
        self,
        message: str,
        *,
        sword_error: str | None = None,
        transient: bool = False,
        **kw: object,
    ) -> None:
        self.sword_error = sword_error
        self.transient = transient
        super().__init__(message, **kw)  # type: ignore[arg-type]


class ConflictError(DepositError):
    """The destination refuses changes to an archived item (e.g. DSpace's default workflow)."""

    code = "conflict"


class MassDeletionError(SyncError):
    """A run would delete too much of the mirror; stopped before deleting anything."""

    code = "mass-deletion"
    exit_code = 1
