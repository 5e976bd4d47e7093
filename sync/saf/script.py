"""The ``IMPORT.sh`` of a SAF batch: the exact ``dspace import`` commands, in order. Pure.

The script changes into the output folder first, so every path in it is relative to it; it
refuses to run before the earlier batches with additions were imported (their handles are what
this batch's replace and delete maps name), and each step runs once (add: until its mapfile
exists; replace and delete: until their ``.done`` marker exists), so running it again after a
failure continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from shlex import quote

DSPACE = '"${DSPACE:-dspace}"'


@dataclass(frozen=True)
class Step:
    """One ``dspace import`` call of a batch."""

    collection: str | None  # None: each item's ``collections`` file decides (add only)
    zip: bool = False


def _collection_args(collection: str | None) -> str:
    return f" --collection {quote(collection)}" if collection else ""


def _source_args(batch: str, folder: str, step: Step) -> str:
    if step.zip:
        return f" --source {quote(batch)} --zip {quote(folder + '.zip')}"
    return f" --source {quote(batch + '/' + folder)}"


def import_script(
    batch: str,
    *,
    earlier_adds: Sequence[str],
    add: Step | None,
    replace: Step | None,
    delete: bool,
) -> str:
    """The text of ``<batch>/IMPORT.sh``."""
    q = quote(batch)
    lines = [
        "#!/bin/sh",
        f"# resync-sword batch {batch}: import it into DSpace, after the earlier batches.",
        "# EPERSON: the e-mail address of the DSpace account that imports;",
        "# DSPACE: the dspace command (default: dspace on the PATH).",
        "set -eu",
        'cd "$(dirname "$0")/.."',
        ': "${EPERSON:?set EPERSON to the e-mail address of the DSpace account that imports}"',
    ]
    if earlier_adds:
        lines += [
            f"for earlier in {' '.join(quote(b) for b in earlier_adds)}; do",
            '  if [ ! -f "$earlier/add.map" ]; then',
            f'    echo "import $earlier first ($earlier/IMPORT.sh): {batch} changes its items" >&2',
            "    exit 1",
            "  fi",
            "done",
        ]
    if add is not None:
        lines += [
            f"if [ ! -f {q}/add.map ]; then",
            f'  {DSPACE} import --add --eperson "$EPERSON"{_collection_args(add.collection)}'
            f"{_source_args(batch, 'add', add)} --mapfile {q}/add.map",
            "fi",
        ]
    if replace is not None:
        lines += [
            f"if [ ! -f {q}/replace.done ]; then",
            f'  {DSPACE} import --replace --eperson "$EPERSON"'
            f"{_collection_args(replace.collection)}{_source_args(batch, 'replace', replace)}"
            f" --mapfile {q}/replace.map",
            f"  touch {q}/replace.done",
            "fi",
        ]
    if delete:
        lines += [
            f"if [ ! -f {q}/delete.done ]; then",
            f'  {DSPACE} import --delete --eperson "$EPERSON" --mapfile {q}/delete.map',
            f"  touch {q}/delete.done",
            "fi",
        ]
    lines.append(f'echo "{batch} imported"')
    return "\n".join(lines) + "\n"
