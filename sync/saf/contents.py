"""The ``contents`` file of a SAF item: one file a line, with tab-separated options. Pure.

``name\\tbundle:ORIGINAL\\tpermissions:-r 'Group'\\tdescription:TEXT\\tprimary:true``; a line
without a bundle means ORIGINAL (DSpace puts a file named ``license`` into LICENSE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SyncError

ORIGINAL = "ORIGINAL"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
LICENSE = "LICENSE"


class ContentsError(SyncError):
    """A ``contents`` line DSpace would not accept, or one that names a file outside the
    item folder (``..``, an absolute path)."""

    code = "saf-contents"


@dataclass(frozen=True)
class ContentsLine:
    """One file of an item, as the ``contents`` file lists it."""

    name: str
    bundle: str | None = None  # None: no bundle given
    permissions: str | None = None
    description: str | None = None
    primary: bool = False

    @property
    def effective_bundle(self) -> str:
        if self.bundle:
            return self.bundle
        return LICENSE if self.name == "license" else ORIGINAL

    def render(self) -> str:
        parts = [self.name]
        if self.bundle:
            parts.append(f"bundle:{self.bundle}")
        if self.permissions:
            parts.append(f"permissions:{self.permissions}")
        if self.description:
            parts.append(f"description:{self.description}")
        if self.primary:
            parts.append("primary:true")
        return "\t".join(parts)


def check_member_name(name: str, *, resource: str) -> str:
    """A file name that stays inside the item folder: refuse ``..``, absolute paths and
    control characters (DSpace allows sub-folders, so ``/`` inside is fine)."""
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ContentsError(f"file name {name!r} is absolute or empty", resource=resource)
    parts = name.replace("\\", "/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ContentsError(f"file name {name!r} leads outside the item folder", resource=resource)
    if _CONTROL.search(name):
        raise ContentsError(f"file name {name!r} has control characters", resource=resource)
    return name


def parse_line(line: str, *, resource: str) -> ContentsLine | None:
    """One ``contents`` line (None for a blank one); unknown options are refused."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    name, *options = text.split("\t")
    name = check_member_name(name.strip(), resource=resource)
    fields: dict[str, str] = {}
    for option in options:
        if not option.strip():
            continue
        key, sep, value = option.partition(":")
        key = key.strip()
        if not sep or key not in ("bundle", "permissions", "description", "primary"):
            raise ContentsError(
                f"unknown option {option!r} for {name!r} in contents", resource=resource
            )
        fields[key] = value.strip()
    return ContentsLine(
        name=name,
        bundle=fields.get("bundle") or None,
        permissions=fields.get("permissions") or None,
        description=fields.get("description") or None,
        primary=fields.get("primary", "").lower() == "true",
    )


def parse(text: str, *, resource: str) -> list[ContentsLine]:
    """Every file a ``contents`` file lists, in order."""
    lines = [parse_line(line, resource=resource) for line in text.splitlines()]
    return [line for line in lines if line is not None]


def render(lines: list[ContentsLine]) -> str:
    return "".join(line.render() + "\n" for line in lines)
