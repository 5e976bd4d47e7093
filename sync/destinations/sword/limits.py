"""How an advertised ``sword:maxUploadSize`` was read, in words a user can check. Pure.

SWORD 2.0 says the value is in kilobytes, but the reference server (and others) advertise
bytes. A client cannot tell which one a server means, so every size message says what was
advertised and how it was read: the user can then see which side is wrong.
"""

from __future__ import annotations

from ...settings import human_size


def describe_limit(advertised: int) -> str:
    """'the service document advertises maxUploadSize 16777216, read as kB per SWORD 2.0 =
    16 GiB (if the server means bytes: 16 MiB)'."""
    return (
        f"the service document advertises maxUploadSize {advertised}, read as kB per "
        f"SWORD 2.0 = {human_size(advertised * 1024)} (if the server means bytes: "
        f"{human_size(advertised)})"
    )


def over_limit_message(size: int, advertised: int | None) -> str:
    """The sentence for an upload refused (or about to be refused) for its size."""
    limit = (
        describe_limit(advertised)
        if advertised is not None
        else "the service document advertises no maxUploadSize"
    )
    shown = f" ({human_size(size)})" if size >= 1024 else ""
    return f"{limit}; this upload is {size} bytes{shown}"
