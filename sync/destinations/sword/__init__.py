"""SWORD v2: the Atom documents (``atom``, pure) and the HTTP client (``client``)."""

from .atom import (
    CollectionEntry,
    CollectionInfo,
    Receipt,
    ServiceDocument,
    Statement,
    StatementFile,
    build_entry,
)
from .client import ListingUnsupportedError, SwordClient

__all__ = [
    "CollectionEntry",
    "CollectionInfo",
    "ListingUnsupportedError",
    "Receipt",
    "ServiceDocument",
    "Statement",
    "StatementFile",
    "SwordClient",
    "build_entry",
]
