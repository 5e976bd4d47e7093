"""A stand-in for DSpace's ``dspace import`` (batch import of Simple Archive Format).

Run as ``python -m tests.servers.dspace_import import --add ...`` (the tests put a small
``dspace`` wrapper script on ``$DSPACE``); the "repository" is a folder (``$DSPACE_REPO``)
holding ``repository.json`` (items by handle: collections, metadata values, bitstreams by MD5)
and ``assetstore/<md5>`` (the bytes). Like DSpace it
- ``--add``: imports every item folder of ``--source`` (or of the zip's top folder with
  ``--zip``) into ``--collection`` (else each item's ``collections`` file), keeps the handle of
  a ``handle`` file, assigns ``123456789/N`` otherwise, and writes the mapfile
  (``item_dir handle``); an existing mapfile is refused (DSpace wants ``--resume``);
- ``--replace``: replaces the items the mapfile names by the folders of ``--source``;
- ``--delete``: deletes the items the mapfile names;
- refuses (exit 1, nothing changed) a ``contents`` line naming a missing file or a path
  outside the item, an unknown handle, a taken handle, malformed metadata, zip slip.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from shlex import quote
from typing import Any

from defusedxml.ElementTree import parse as safe_parse

PREFIX = "123456789"


class ImportRefusedError(Exception):
    pass


@dataclass
class Repository:
    root: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path) -> Repository:
        path = root / "repository.json"
        data = json.loads(path.read_text("utf-8")) if path.exists() else {"next": 1, "items": {}}
        return cls(root, data)

    @property
    def items(self) -> dict[str, Any]:
        items: dict[str, Any] = self.data["items"]
        return items

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "repository.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=1, ensure_ascii=False), "utf-8")
        os.replace(tmp, self.root / "repository.json")

    def new_handle(self) -> str:
        while True:
            handle = f"{PREFIX}/{1000 + self.data['next']}"
            self.data["next"] += 1
            if handle not in self.items:
                return handle

    def store(self, path: Path) -> str:
        data = path.read_bytes()
        md5 = hashlib.md5(data).hexdigest()
        (self.root / "assetstore").mkdir(parents=True, exist_ok=True)
        (self.root / "assetstore" / md5).write_bytes(data)
        return md5

    def bytes_of(self, md5: str) -> bytes:
        return (self.root / "assetstore" / md5).read_bytes()


def _inside(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ImportRefusedError(f"{folder.name}: contents names {name!r} outside the item")
    return path


def read_item(folder: Path, repo: Repository) -> dict[str, Any]:
    """An item folder as the repository would hold it (files stored as they are read)."""
    metadata: list[list[str | None]] = []
    for path in sorted(folder.iterdir()):
        if path.name == "dublin_core.xml" or (
            path.name.startswith("metadata_") and path.name.endswith(".xml")
        ):
            try:
                root = safe_parse(str(path), forbid_dtd=True).getroot()
            except Exception as exc:
                raise ImportRefusedError(f"{folder.name}/{path.name}: {exc}") from None
            schema = root.get("schema") or "dc"
            for el in root.iter("dcvalue"):
                qualifier = el.get("qualifier")
                metadata.append(
                    [
                        schema,
                        el.get("element"),
                        None if qualifier in (None, "", "none") else qualifier,
                        el.text or "",
                    ]
                )
    if not metadata:
        raise ImportRefusedError(f"{folder.name}: no dublin_core.xml")
    bitstreams = []
    contents = folder / "contents"
    lines = contents.read_text("utf-8").splitlines() if contents.exists() else []
    for line in lines:
        if not line.strip():
            continue
        name, *options = line.split("\t")
        path = _inside(folder, name)
        if not path.is_file():
            raise ImportRefusedError(f"{folder.name}: contents lists {name!r}, which is missing")
        bundle = "LICENSE" if name == "license" else "ORIGINAL"
        for option in options:
            if option.startswith("bundle:"):
                bundle = option[len("bundle:") :]
        bitstreams.append(
            {"name": name, "bundle": bundle, "md5": repo.store(path), "size": path.stat().st_size}
        )
    return {"metadata": metadata, "bitstreams": bitstreams}


def _item_folders(source: Path) -> list[Path]:
    return sorted(p for p in source.iterdir() if p.is_dir())


def _unzip(source: Path, name: str, into: Path) -> Path:
    """Extract a zip like DSpace: members must stay inside; the top folder is the source."""
    with zipfile.ZipFile(source / name) as zf:
        for member in zf.namelist():
            if member.startswith("/") or ".." in member.split("/"):
                raise ImportRefusedError(f"zip member {member!r} leads outside the zip")
        zf.extractall(into)
    tops = [p for p in into.iterdir() if p.is_dir()]
    return tops[0] if len(tops) == 1 else into


def do_add(repo: Repository, source: Path, mapfile: Path, collection: list[str]) -> None:
    if mapfile.exists():
        raise ImportRefusedError(f"mapfile {mapfile} exists already (use --resume)")
    added: list[tuple[str, str, dict[str, Any]]] = []
    taken = set(repo.items)
    for folder in _item_folders(source):
        item = read_item(folder, repo)
        cols = list(collection)
        if not cols and (folder / "collections").exists():
            cols = (folder / "collections").read_text("utf-8").split()
        if not cols:
            raise ImportRefusedError(f"{folder.name}: no collection (--collection or collections)")
        handle_file = folder / "handle"
        handle = handle_file.read_text("utf-8").strip() if handle_file.exists() else None
        if handle is not None and handle in taken:
            raise ImportRefusedError(f"{folder.name}: handle {handle} is taken")
        handle = handle or repo.new_handle()
        taken.add(handle)
        item["collections"] = cols
        added.append((folder.name, handle, item))
    for _name, handle, item in added:
        repo.items[handle] = item
    repo.save()
    mapfile.write_text("".join(f"{name} {handle}\n" for name, handle, _ in added), "utf-8")


def _read_map(mapfile: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in mapfile.read_text("utf-8").splitlines():
        if line.strip():
            folder, handle = line.split()
            pairs.append((folder, handle))
    return pairs


def do_replace(repo: Repository, source: Path, mapfile: Path) -> None:
    replaced = []
    for name, handle in _read_map(mapfile):
        if handle not in repo.items:
            raise ImportRefusedError(f"replace: unknown handle {handle} ({name})")
        if not (source / name).is_dir():
            raise ImportRefusedError(f"replace: no folder {name} in {source}")
        item = read_item(source / name, repo)
        item["collections"] = repo.items[handle]["collections"]
        replaced.append((handle, item))
    for handle, item in replaced:
        repo.items[handle] = item
    repo.save()


def do_delete(repo: Repository, mapfile: Path) -> None:
    pairs = _read_map(mapfile)
    for name, handle in pairs:
        if handle not in repo.items:
            raise ImportRefusedError(f"delete: unknown handle {handle} ({name})")
    for _name, handle in pairs:
        del repo.items[handle]
    repo.save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dspace")
    parser.add_argument("command", choices=["import"])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--add", action="store_true")
    mode.add_argument("--replace", action="store_true")
    mode.add_argument("--delete", action="store_true")
    parser.add_argument("--eperson", required=True)
    parser.add_argument("--collection", action="append", default=[])
    parser.add_argument("--source")
    parser.add_argument("--mapfile", required=True)
    parser.add_argument("--zip")
    args = parser.parse_args(argv)
    repo = Repository.open(Path(os.environ["DSPACE_REPO"]))
    log = Path(os.environ["DSPACE_REPO"]) / "commands.log"
    with log.open("a", encoding="utf-8") as fh:
        fh.write(" ".join(sys.argv[1:] if argv is None else argv) + "\n")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(args.source) if args.source else None
            if source is not None and args.zip:
                source = _unzip(source, args.zip, Path(tmp))
            if (args.add or args.replace) and (source is None or not source.is_dir()):
                raise ImportRefusedError(f"--source {args.source} is not a folder")
            if args.add:
                assert source is not None
                do_add(repo, source, Path(args.mapfile), args.collection)
            elif args.replace:
                assert source is not None
                do_replace(repo, source, Path(args.mapfile))
            else:
                do_delete(repo, Path(args.mapfile))
    except ImportRefusedError as exc:
        print(f"dspace import: {exc}", file=sys.stderr)
        return 1
    return 0


def write_wrapper(path: Path) -> Path:
    """A ``dspace`` executable that runs this module with the tests' Python."""
    root = Path(__file__).resolve().parents[2]
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={quote(str(root))} exec {quote(sys.executable)}"
        ' -m tests.servers.dspace_import "$@"\n',
        "utf-8",
    )
    path.chmod(0o755)
    return path


if __name__ == "__main__":
    sys.exit(main())
