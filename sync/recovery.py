"""Was an upload carried out although its answer was lost? Pure decisions, no I/O.

Some servers (the SWORD reference server) rename every file they store and list neither MD5
nor size, so a name says nothing. A landed upload is recognised instead as a held file the
state DB does not know (an unknown ref), whose size and MD5 match where the listing gives
them; where it gives no checksum, that unknown file is downloaded and hashed (``md5_of``),
and only then. A name alone never makes a match, and a file the state owns is never claimed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .contracts import HeldFile


def unknown_files(held: Sequence[HeldFile], known_refs: set[str]) -> list[HeldFile]:
    """Held files with a ref the state DB does not record (candidates for a lost upload)."""
    return [h for h in held if h.ref and h.ref not in known_refs]


def find_landed(
    held: Sequence[HeldFile],
    known_refs: set[str],
    *,
    name: str,
    md5: str,
    size: int,
    md5_of: Callable[[HeldFile], str],
    recorded_without_ref: Sequence[HeldFile] = (),
) -> HeldFile | None:
    """The held file that is our upload (``name``, ``md5``, ``size``), or None.

    Candidates are unknown files whose listed size (if any) equals ``size``; one listed with
    an MD5 matches by it; one without is downloaded and hashed. Candidates named like the
    upload are tried first only to save downloads: the name never decides.

    ``recorded_without_ref``: files of the item the state DB recorded as uploaded but without
    a ref (the destination gave none). Each is one of the unknown held files, so each first
    claims the one that is it (same name, else same MD5): two files of an item with the same
    bytes must not make one upload look landed because the other is there.
    """
    pool = unknown_files(held, known_refs)
    for rec in recorded_without_ref:
        claimed = _claim(rec, pool, md5_of)
        if claimed is not None:
            pool.remove(claimed)
    wanted = md5.lower()
    candidates = [h for h in pool if h.size in (None, size)]
    candidates.sort(key=lambda h: h.name != name)
    for h in candidates:
        if h.md5 is not None:
            if h.md5.lower() == wanted:
                return h
            continue
        if md5_of(h).lower() == wanted:
            return h
    return None


def _claim(
    rec: HeldFile, pool: Sequence[HeldFile], md5_of: Callable[[HeldFile], str]
) -> HeldFile | None:
    """The held file that is the recorded ``rec``: the same name (where the destination kept
    names) with no contrary MD5, else the same MD5 (listed, or read where none is listed)."""
    same_md5 = (rec.md5 or "").lower()
    for h in pool:
        if h.name == rec.name and (h.md5 is None or not same_md5 or h.md5.lower() == same_md5):
            return h
    if not same_md5:
        return None
    for h in pool:
        if h.md5 is not None and h.md5.lower() == same_md5:
            return h
    for h in pool:
        size_fits = rec.size is None or h.size in (None, rec.size)
        if h.md5 is None and size_fits and md5_of(h).lower() == same_md5:
            return h
    return None


def compare_files(recorded: Sequence[HeldFile], held: Sequence[HeldFile]) -> list[str]:
    """What differs between the files the state DB recorded for a container and the files
    the destination holds; [] when they agree.

    Matched by file ref first; then, for recorded files without a ref, by MD5 where the
    listing gives it; names only as a last resort (servers that give neither ref nor
    checksum). A missing or extra file, or a differing size or MD5, is a difference.
    """
    problems: list[str] = []
    by_ref = {h.ref: h for h in held if h.ref}
    left = list(held)
    unmatched: list[HeldFile] = []
    for rec in recorded:
        h = by_ref.get(rec.ref) if rec.ref else None
        if h is None:
            unmatched.append(rec)
            continue
        left.remove(h)
        if rec.md5 and h.md5 and rec.md5.lower() != h.md5.lower():
            problems.append(f"file {_label(rec)} has MD5 {h.md5} at the destination")
        if rec.size is not None and h.size is not None and rec.size != h.size:
            problems.append(f"file {_label(rec)} has {h.size} bytes at the destination")
    for rec in unmatched:
        h = _match_loose(rec, left)
        if h is None:
            problems.append(f"missing at the destination: {_label(rec)}")
        else:
            left.remove(h)
    for h in left:
        problems.append(f"not recorded by the state DB: {_label(h)}")
    return problems


def _match_loose(rec: HeldFile, left: list[HeldFile]) -> HeldFile | None:
    if rec.md5:
        found = next((h for h in left if h.md5 and h.md5.lower() == rec.md5.lower()), None)
        if found is not None:
            return found
    # last resort (no ref recorded, no checksum listed): the same name
    return next(
        (h for h in left if h.name == rec.name and (h.md5 is None or rec.md5 is None)),
        None,
    )


def _label(f: HeldFile) -> str:
    return " ".join(part for part in (f.name and repr(f.name), f.ref and f"<{f.ref}>") if part)
