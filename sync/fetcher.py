"""Fetcher: download a source resource to a temporary file and prove it is what was announced.

Checks, in order: the URL is inside the source's hosts (redirects too, in ``Http``), the size
stays under the configured maximum, the length and every announced hash match (md5, sha-1,
sha-256), and a resource announced as something else did not come back as an HTML page (a
login or error page served with 200). A failed check discards the bytes: they never reach the
destination.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from .contracts import Fetched
from .errors import IntegrityError
from .filenames import filename_from_url, safe_filename
from .http import Download, Http
from .model import Entry
from .sniff import is_html_type, looks_html

log = logging.getLogger(__name__)


@functools.cache
def _libmagic() -> Any:
    """python-magic, loaded on first use (most sources announce types; loading it costs
    start-up time every run); None where libmagic is missing."""
    try:
        import magic
    except ImportError:  # pragma: no cover - depends on the machine
        return None
    return magic


def sniff(path: str) -> str | None:
    """The type libmagic reads in the file's bytes, or None."""
    magic = _libmagic()
    if magic is None:  # pragma: no cover - depends on the machine
        return None
    try:
        return str(magic.from_file(path, mime=True))
    except Exception:  # libmagic errors are not worth failing a deposit for
        return None


class Fetcher:
    """Downloads and verifies resources for the depositor."""

    def __init__(self, http: Http, *, max_file_size: int, tmpdir: str | None = None) -> None:
        self.http = http
        self.max_file_size = max_file_size
        self.tmpdir = tmpdir

    def fetch(self, entry: Entry) -> Fetched:
        if entry.length is not None and entry.length > self.max_file_size:
            raise IntegrityError(
                f"announced length {entry.length} is over the maximum file size "
                f"({self.max_file_size} bytes)",
                resource=entry.loc,
                hint="raise max_file_size in the pipeline if this file is expected",
            )
        dl = self.http.download(
            entry.loc,
            max_bytes=self.max_file_size,
            directory=self.tmpdir,
            digests={algorithm for algorithm, _ in entry.hashes},
        )
        try:
            verify(entry, dl)
            # libmagic only when the source announced no type: it is slow and single-locked,
            # and the served type plus the first bytes tell an HTML page well enough
            sniffed = sniff(str(dl.path)) if dl.size and not entry.type else None
            page = bool(dl.size) and looks_html(dl.path, dl.content_type, sniffed)
            if entry.type and not is_html_type(entry.type) and page:
                raise IntegrityError(
                    f"announced as {entry.type} but the server sent an HTML page",
                    resource=entry.loc,
                    hint="the source may serve an error or login page for this resource",
                )
        except BaseException:
            dl.discard()
            raise
        name = safe_filename(dl.filename or filename_from_url(entry.loc))
        served = (dl.content_type or "").split(";")[0].strip() or None
        ctype = entry.type or (sniffed if dl.size else None) or served or "application/octet-stream"
        return Fetched(
            entry=entry,
            path=dl.path,
            size=dl.size,
            md5=dl.md5,
            filename=name,
            content_type=ctype,
            discard_fn=dl.discard,
        )


def verify(entry: Entry, dl: Download) -> None:
    """Raise ``IntegrityError`` unless the download matches the entry's length and hashes."""
    if entry.length is not None and entry.length != dl.size:
        raise IntegrityError(
            f"length mismatch: the list says {entry.length} bytes, got {dl.size}",
            resource=entry.loc,
        )
    for algorithm, expected in entry.hashes:
        actual = dl.digest(algorithm)
        if actual is None:
            raise IntegrityError(f"cannot check hash algorithm {algorithm!r}", resource=entry.loc)
        if actual != expected.lower():
            raise IntegrityError(
                f"{algorithm} mismatch: the list says {expected}, the bytes hash to {actual}",
                resource=entry.loc,
                hint="the source changed or corrupted the file; it was not deposited",
            )
