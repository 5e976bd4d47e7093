"""Recognising a landed upload and auditing files without trusting names (#8). Pure."""

from __future__ import annotations

import pytest

from sync.contracts import HeldFile
from sync.recovery import compare_files, find_landed

MD5_A, MD5_B = "a" * 32, "b" * 32


class Downloads:
    """md5_of for the tests: what each ref hashes to, and which refs were downloaded."""

    def __init__(self, md5s: dict[str, str]) -> None:
        self.md5s = md5s
        self.asked: list[str] = []

    def __call__(self, held: HeldFile) -> str:
        assert held.ref is not None
        self.asked.append(held.ref)
        return self.md5s[held.ref]


def test_renamed_file_without_checksum_is_found_by_downloading_the_unknown_one() -> None:
    held = [
        HeldFile("iri/1", '2024-01-01T00:00:00_"a.pdf"'),
        HeldFile("iri/2", '2024-01-01T00:00:01_"b.pdf"'),
    ]
    dl = Downloads({"iri/1": MD5_A, "iri/2": MD5_B})
    found = find_landed(held, {"iri/1"}, name="b.pdf", md5=MD5_B, size=3, md5_of=dl)
    assert found == held[1]
    assert dl.asked == ["iri/2"]  # the file the state owns is never downloaded or claimed


def test_listed_md5_decides_without_download() -> None:
    held = [HeldFile("iri/1", "x", md5=MD5_A), HeldFile("iri/2", "y", md5=MD5_B)]
    dl = Downloads({})
    assert find_landed(held, set(), name="z", md5=MD5_B, size=1, md5_of=dl) == held[1]
    assert dl.asked == []


def test_a_name_alone_never_matches() -> None:
    held = [HeldFile("iri/1", "paper.pdf", md5=MD5_A)]
    found = find_landed(held, set(), name="paper.pdf", md5=MD5_B, size=1, md5_of=Downloads({}))
    assert found is None
    dl = Downloads({"iri/1": MD5_A})
    held = [HeldFile("iri/1", "paper.pdf")]
    assert find_landed(held, set(), name="paper.pdf", md5=MD5_B, size=1, md5_of=dl) is None


def test_a_different_listed_size_is_not_downloaded() -> None:
    held = [HeldFile("iri/1", "x", size=10)]
    dl = Downloads({"iri/1": MD5_A})
    assert find_landed(held, set(), name="x", md5=MD5_A, size=11, md5_of=dl) is None
    assert dl.asked == []


def test_nothing_unknown_means_nothing_landed() -> None:
    held = [HeldFile("iri/1", "x")]
    dl = Downloads({"iri/1": MD5_A})
    assert find_landed(held, {"iri/1"}, name="x", md5=MD5_A, size=1, md5_of=dl) is None
    assert dl.asked == []


def test_audit_by_ref_ignores_renamed_files() -> None:
    recorded = [HeldFile("iri/1", "a.pdf", md5=MD5_A), HeldFile("iri/2", "b.pdf", md5=MD5_B)]
    held = [HeldFile("iri/2", '"b.pdf"'), HeldFile("iri/1", '"a.pdf"')]
    assert compare_files(recorded, held) == []


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        ([HeldFile("iri/1", "a")], ["missing at the destination: 'b.pdf' <iri/2>"]),
        (
            [HeldFile("iri/1", "a"), HeldFile("iri/2", "b"), HeldFile("iri/9", "extra")],
            ["not recorded by the state DB: 'extra' <iri/9>"],
        ),
        (
            [HeldFile("iri/1", "a"), HeldFile("iri/2", "b", md5=MD5_A)],
            [f"file 'b.pdf' <iri/2> has MD5 {MD5_A} at the destination"],
        ),
    ],
)
def test_audit_still_finds_real_differences(held: list[HeldFile], expected: list[str]) -> None:
    recorded = [HeldFile("iri/1", "a.pdf", md5=MD5_A), HeldFile("iri/2", "b.pdf", md5=MD5_B)]
    assert compare_files(recorded, held) == expected


def test_audit_without_refs_uses_md5_then_names() -> None:
    recorded = [HeldFile(None, "a.pdf", md5=MD5_A), HeldFile(None, "b.pdf", md5=MD5_B)]
    assert compare_files(recorded, [HeldFile(None, "x", md5=MD5_A), HeldFile(None, "b.pdf")]) == []
    assert compare_files(recorded, [HeldFile(None, "a.pdf")]) == [
        "missing at the destination: 'b.pdf'"
    ]


def test_a_recorded_file_without_ref_claims_its_twin_of_the_same_bytes() -> None:
    """Two files of one item with the same bytes, the first recorded without a ref (the
    destination gave none): it is not the second's landed upload (found by Hypothesis)."""
    held = [HeldFile("iri/1", "f2.bin")]
    dl = Downloads({"iri/1": MD5_A})
    first = HeldFile(None, "f2.bin", MD5_A, 1)
    found = find_landed(
        held, set(), name="f3.bin", md5=MD5_A, size=1, md5_of=dl, recorded_without_ref=[first]
    )
    assert found is None
    # the second did land (renamed, so only bytes tell): one of the two is claimed, the
    # other is the upload
    held = [HeldFile("iri/1", "1_f2.bin"), HeldFile("iri/2", "2_f3.bin")]
    dl = Downloads({"iri/1": MD5_A, "iri/2": MD5_A})
    found = find_landed(
        held, set(), name="f3.bin", md5=MD5_A, size=1, md5_of=dl, recorded_without_ref=[first]
    )
    assert found is not None and found.ref == "iri/2"
