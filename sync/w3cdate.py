"""W3C datetimes (ResourceSync ``lastmod`` / ``rs:md``, OAI-PMH datestamps). Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import DocumentError

_W3C = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$"
)


def parse_datetime(value: str | None, *, where: str) -> datetime | None:
    """W3C datetime (YYYY[-MM[-DD[Thh:mm[:ss[.s]]TZD]]]) to an aware UTC datetime.

    Not ``resync.w3c_datetime.str_to_datetime``: it adds a ``+hh:mm`` offset instead of
    subtracting it (``14:00+02:00`` came out as 16:00Z instead of 12:00Z).
    """
    if not value:
        return None
    m = _W3C.match(value.strip())
    if m is None:
        raise DocumentError(f"bad W3C datetime {value!r}", resource=where)
    year, month, day, hh, mm, ss, frac, tzd = m.groups()
    try:
        stamp = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hh or 0),
            int(mm or 0),
            int(ss or 0),
            int(frac[1:7].ljust(6, "0")) if frac else 0,
            tzinfo=UTC,
        )
        if tzd and tzd != "Z":
            off_h, off_m = int(tzd[1:3]), int(tzd[4:6])
            if off_h > 23 or off_m > 59:
                raise ValueError("bad offset")
            offset = timedelta(hours=off_h, minutes=off_m)
            stamp = stamp - offset if tzd[0] == "+" else stamp + offset
    except (ValueError, OverflowError) as exc:
        raise DocumentError(f"bad W3C datetime {value!r}", resource=where) from exc
    return stamp
