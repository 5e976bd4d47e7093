"""Size messages say what the server advertised and how it was read (#8)."""

from __future__ import annotations

from sync.destinations.sword.limits import describe_limit, over_limit_message
from sync.settings import human_size


def test_the_advertised_value_and_both_readings_are_named() -> None:
    text = describe_limit(16777216)
    assert "advertises maxUploadSize 16777216" in text
    assert "read as kB per SWORD 2.0 = 16 GiB" in text
    assert "if the server means bytes: 16 MiB" in text


def test_over_limit_message() -> None:
    text = over_limit_message(17000000, 16777216)
    assert text.endswith("this upload is 17000000 bytes (16.21 MiB)")
    assert over_limit_message(5, None).startswith("the service document advertises no")


def test_human_size() -> None:
    assert human_size(10) == "10 bytes"
    assert human_size(1536) == "1.5 KiB"
