"""A thin SWORD v2 client over ``sync.http.Http``: streamed uploads, UTF-8 metadata, clear errors.

Every request goes through ``Http.request`` (retries, per-host limits, allow-list, pre-emptive
Basic auth). POSTs are sent as non-idempotent, so a create or add is retried only when the
server certainly did not act on it; anything else is reported and the caller finds out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import quote

from ...contracts import ListingUnsupportedError as NoListingError
from ...errors import ConfigError, ConflictError, DepositError
from ...filenames import content_disposition
from ...http import Http, open_body
from ...transport import Response
from ...urls import join_url
from .atom import (
    ENTRY_CONTENT_TYPE,
    CollectionEntry,
    Receipt,
    ServiceDocument,
    Statement,
    feed_next_link,
    parse_collection_feed,
    parse_error,
    parse_receipt,
    parse_service_document,
    parse_statement,
)
from .limits import describe_limit, over_limit_message

PACKAGING_BINARY = "http://purl.org/net/sword/package/Binary"
ERROR_CHECKSUM = "http://purl.org/net/sword/error/ErrorChecksumMismatch"
ERROR_TARGET_OWNER = "http://purl.org/net/sword/error/TargetOwnerUnknown"
ACCEPT_ATOM = "application/atom+xml, application/atomsvc+xml;q=0.9, application/xml;q=0.8"
MAX_COLLECTION_PAGES = 1000
# Slug is percent-encoded UTF-8 (RFC 5023 9.7): keep printable ASCII except "%".
_SLUG_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


class ListingUnsupportedError(DepositError, NoListingError):
    """The server does not list a collection's contents (or not as an Atom feed)."""

    code = "deposit-no-listing"


class EmptyFileRefusedError(DepositError):
    """The server refuses zero-length files (the reference server: HTTP 400, "No content")."""

    code = "deposit-empty-file"


def _refused_empty(exc: DepositError, size: int) -> DepositError:
    """A 4xx answer to a zero-length upload says the server refuses empty files."""
    if size != 0 or exc.status is None or not 400 <= exc.status < 500 or exc.status == 401:
        return exc
    return EmptyFileRefusedError(
        f"the SWORD server refuses empty files: {exc.message}",
        resource=exc.resource,
        status=exc.status,
        sword_error=exc.sword_error,
        hint="the source file is zero bytes long; its item stays in progress, and replay "
        "finishes it in the same container once the file has content or the server takes it",
    )


def _flag(value: bool) -> str:
    return "true" if value else "false"


class SwordClient:
    """SWORD v2 operations on one server; thread-safe (the service document cache is locked)."""

    def __init__(
        self, http: Http, *, on_behalf_of: str | None = None, max_doc_bytes: int = 16 << 20
    ) -> None:
        if on_behalf_of is not None and not (
            on_behalf_of.isascii() and on_behalf_of.isprintable() and on_behalf_of.strip()
        ):
            raise ConfigError(
                "on_behalf_of must be a non-empty ASCII user name (it is sent as an HTTP header)"
            )
        self.http = http
        self.on_behalf_of = on_behalf_of
        self.max_doc_bytes = max_doc_bytes
        self.max_upload_kb: int | None = None  # from the last service document read
        self._services: dict[str, ServiceDocument] = {}
        self._lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------
    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.on_behalf_of:
            headers["On-Behalf-Of"] = self.on_behalf_of
        return headers

    def _call(
        self,
        method: str,
        iri: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | Callable[[], IO[bytes]] | None = None,
        idempotent: bool | None = None,
        modifies: bool = False,
        gone_ok: bool = False,
        upload_size: int | None = None,
    ) -> tuple[Response, bytes]:
        """Send, read the answer, map an error status to an exception (see ``_check``)."""
        factory: Callable[[], IO[bytes] | bytes] | None
        if body is None or callable(body):
            factory = body
        else:
            payload = body
            factory = lambda: payload  # noqa: E731
        resp, data = self.http.exchange(
            method,
            iri,
            max_bytes=self.max_doc_bytes,
            headers=self._headers(headers),
            body=factory,
            idempotent=idempotent,
        )
        if not (gone_ok and resp.status_code in (404, 410)):
            self._check(resp, data, iri, method=method, modifies=modifies, size=upload_size)
        return resp, data

    def _check(
        self,
        resp: Response,
        data: bytes,
        iri: str,
        *,
        method: str,
        modifies: bool,
        size: int | None = None,
    ) -> None:
        """2xx passes; everything else becomes a ``DepositError`` (or ``ConflictError``)."""
        status = resp.status_code
        if 200 <= status < 300:
            return
        if status == 401:
            raise DepositError(
                "the SWORD server refused the credentials (HTTP 401)",
                resource=iri,
                status=401,
                hint="check username and the password variable",
            )
        href, summary = parse_error(status, data, resp.headers.get("Content-Type"))
        detail = f": {summary}" if summary else ""
        if status in (403, 405) and modifies and href != ERROR_TARGET_OWNER:
            raise ConflictError(
                f"the SWORD server refused to change the item (HTTP {status}){detail}",
                resource=iri,
                status=status,
                sword_error=href,
                hint="the item is probably archived or in review; on_archived in the pipeline "
                "says what to do (skip, new version, or fail)",
            )
        if status == 412 and (href == ERROR_CHECKSUM or "checksum" in summary.lower()):
            raise DepositError(
                f"the server's checksum of the upload did not match (HTTP 412){detail}",
                resource=iri,
                status=status,
                sword_error=href,
                transient=True,
                hint="the transfer may have been corrupted; a retry usually fixes it",
            )
        if status == 413:
            if size is not None:
                limit = over_limit_message(size, self.max_upload_kb)
            elif self.max_upload_kb is not None:
                limit = describe_limit(self.max_upload_kb)
            else:
                limit = "the service document advertises no maxUploadSize"
            raise DepositError(
                f"the upload is too large for the SWORD server (HTTP 413; {limit}){detail}",
                resource=iri,
                status=status,
                sword_error=href,
                hint="raise the repository's upload limit or exclude the file",
            )
        hint = None
        if status == 403 and href == ERROR_TARGET_OWNER:
            hint = "check on_behalf_of: the server does not know that user"
        raise DepositError(
            f"{method} answered HTTP {status}{detail}",
            resource=iri,
            status=status,
            sword_error=href,
            transient=status >= 500,
            hint=hint,
        )

    @staticmethod
    def _check_size(path: Path, iri: str) -> int:
        """The upload's size (the advertised limit is checked by the depositor, before the
        destination is touched; a 413 still says what was advertised)."""
        return path.stat().st_size

    def _file_headers(
        self, *, filename: str, md5: str, content_type: str, in_progress: bool | None
    ) -> dict[str, str]:
        headers = {
            "Content-Type": content_type or "application/octet-stream",
            "Content-Disposition": content_disposition(filename),
            "Content-MD5": md5.lower(),
            "Packaging": PACKAGING_BINARY,
        }
        if in_progress is not None:
            headers["In-Progress"] = _flag(in_progress)
        return headers

    # -- reading ---------------------------------------------------------------------------
    def service_document(self, sd_iri: str) -> ServiceDocument:
        """The service document, fetched once per IRI and cached (slow to build on DSpace)."""
        with self._lock:
            cached = self._services.get(sd_iri)
        if cached is not None:
            return cached
        _, data = self._call("GET", sd_iri, headers={"Accept": "application/atomsvc+xml"})
        doc = parse_service_document(data, url=sd_iri)
        with self._lock:
            self._services[sd_iri] = doc
            if doc.max_upload_kb is not None:
                self.max_upload_kb = doc.max_upload_kb
        return doc

    def receipt(self, edit_iri: str) -> Receipt:
        _, data = self._call("GET", edit_iri, headers={"Accept": "application/atom+xml"})
        return parse_receipt(data, edit_iri, url=edit_iri)

    def statement(self, statement_iri: str) -> Statement:
        _, data = self._call("GET", statement_iri, headers={"Accept": ACCEPT_ATOM})
        return parse_statement(data, url=statement_iri)

    def file_md5(self, file_iri: str) -> str:
        """The MD5 of a held file, by streaming it (GET the file IRI) through a temporary
        file: only to tell whether an upload whose answer was lost landed, on servers whose
        statements list no checksum."""
        download = self.http.download(file_iri, max_bytes=None)
        download.discard()
        return download.md5

    def list_collection(self, col_iri: str) -> list[CollectionEntry]:
        """The containers in a collection (following ``rel="next"`` pages).

        A server that cannot list (404/405/406/501, or an answer that is not an Atom feed)
        raises ``ListingUnsupportedError``: an empty list would wrongly tell the caller
        that an earlier create did not land, and it would create a duplicate.
        """
        result: list[CollectionEntry] = []
        seen: set[str] = set()
        page: str | None = col_iri
        while page is not None and page not in seen and len(seen) < MAX_COLLECTION_PAGES:
            seen.add(page)
            try:
                resp, data = self._call("GET", page, headers={"Accept": "application/atom+xml"})
            except DepositError as exc:
                if exc.status in (404, 405, 406, 501):
                    raise ListingUnsupportedError(
                        f"the SWORD server does not list this collection (HTTP {exc.status})",
                        resource=col_iri,
                        status=exc.status,
                        sword_error=exc.sword_error,
                    ) from None
                raise
            try:
                result.extend(parse_collection_feed(data, url=page))
                page = feed_next_link(data, url=page)
            except DepositError as exc:
                raise ListingUnsupportedError(
                    f"the SWORD server's collection listing is not an Atom feed ({exc.message})",
                    resource=col_iri,
                    status=resp.status_code,
                ) from None
        return result

    # -- writing ---------------------------------------------------------------------------
    def create(
        self, col_iri: str, entry: bytes, *, slug: str | None = None, in_progress: bool = True
    ) -> Receipt:
        """POST an Atom entry to the Col-IRI: a new container. Not idempotent."""
        headers = {"Content-Type": ENTRY_CONTENT_TYPE, "In-Progress": _flag(in_progress)}
        if slug:
            headers["Slug"] = quote(slug, safe=_SLUG_SAFE, encoding="utf-8")
        resp, data = self._call("POST", col_iri, headers=headers, body=entry, idempotent=False)
        location = _resolve(col_iri, resp.headers.get("Location"))
        if data.strip():
            try:
                receipt = parse_receipt(data, location, url=col_iri)
            except DepositError:
                if location is None:
                    raise
            else:
                if receipt.edit_iri:
                    return receipt
        if location is None:
            raise DepositError(
                f"the server answered HTTP {resp.status_code} to the create without a deposit "
                "receipt or a Location",
                resource=col_iri,
                status=resp.status_code,
                hint="the container may exist now; check the collection before retrying",
            )
        return self.receipt(location)

    def add_file(
        self,
        em_iri: str,
        path: Path,
        *,
        filename: str,
        md5: str,
        content_type: str,
        in_progress: bool = True,
    ) -> str | None:
        """POST a file (streamed from disk) to the EM-IRI; the new file's IRI if given."""
        size = self._check_size(path, em_iri)
        headers = self._file_headers(
            filename=filename, md5=md5, content_type=content_type, in_progress=in_progress
        )
        try:
            resp, _ = self._call(
                "POST",
                em_iri,
                headers=headers,
                body=open_body(path),
                idempotent=False,
                modifies=True,
                upload_size=size,
            )
        except DepositError as exc:
            raise _refused_empty(exc, size) from None
        return _resolve(em_iri, resp.headers.get("Location"))

    def replace_metadata(self, edit_iri: str, entry: bytes, *, in_progress: bool) -> None:
        headers = {"Content-Type": ENTRY_CONTENT_TYPE, "In-Progress": _flag(in_progress)}
        self._call("PUT", edit_iri, headers=headers, body=entry, modifies=True)

    def replace_media(
        self, em_iri: str, path: Path, *, filename: str, md5: str, content_type: str
    ) -> None:
        size = self._check_size(path, em_iri)
        headers = self._file_headers(
            filename=filename, md5=md5, content_type=content_type, in_progress=None
        )
        try:
            self._call(
                "PUT",
                em_iri,
                headers=headers,
                body=open_body(path),
                modifies=True,
                upload_size=size,
            )
        except DepositError as exc:
            raise _refused_empty(exc, size) from None

    def delete_file(self, file_iri: str) -> None:
        self._call("DELETE", file_iri, modifies=True, gone_ok=True)

    def delete_media(self, em_iri: str) -> None:
        self._call("DELETE", em_iri, modifies=True, gone_ok=True)

    def delete_container(self, edit_iri: str) -> None:
        self._call("DELETE", edit_iri, modifies=True, gone_ok=True)

    def complete(self, se_iri: str) -> str | None:
        """POST an empty body with ``In-Progress: false``: the deposit is complete.

        Safe to repeat, so it is retried like an idempotent request. Returns the
        ``sword:state`` of the receipt when the server puts one there (no extra request).
        """
        headers = {"Content-Length": "0", "In-Progress": "false"}
        _resp, data = self._call("POST", se_iri, headers=headers, idempotent=True, modifies=True)
        if not data.strip():
            return None
        try:
            return parse_receipt(data, se_iri, url=se_iri).state
        except DepositError:
            return None


def _resolve(base: str, location: str | None) -> str | None:
    """A ``Location`` as an absolute IRI."""
    return join_url(base, location) if location else None


__all__ = ["PACKAGING_BINARY", "EmptyFileRefusedError", "ListingUnsupportedError", "SwordClient"]
