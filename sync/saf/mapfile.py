"""``dspace import`` mapfiles: one ``item_dir handle`` line per item. Pure."""

from __future__ import annotations

from ..errors import SyncError


class MapfileError(SyncError):
    code = "saf-mapfile"


def parse(text: str, *, resource: str) -> dict[str, str]:
    """Item folder -> handle (a later line for the same folder wins, as DSpace reads it)."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise MapfileError(
                f"line {number} is not 'item_dir handle': {line!r}", resource=resource
            )
        mapping[parts[0]] = parts[1]
    return mapping


def render(mapping: dict[str, str]) -> str:
    return "".join(f"{folder} {handle}\n" for folder, handle in mapping.items())
