"""A local OAI-PMH 2.0 data provider answering like DSpace 7, over a live ``SourceModel``.

Routes: ``/server/oai/request?verb=...`` (Identify, ListMetadataFormats, ListSets, ListRecords,
ListIdentifiers, GetRecord; formats oai_dc, qdc, dim, mets, ore) and the bitstreams at
``/server/api/core/bitstreams/{uuid}/content`` (with ``Content-Disposition``). Records and
documents come from ``oai_documents.py``.

Options: ``granularity`` (``seconds`` or ``day``), ``deleted_record`` (``persistent``,
``transient`` or ``no``: deleted records are then not listed), ``page_size``, ``formats``.
Fault modes (set on a running provider): ``busy`` (the next N list requests answer HTTP 503
with ``Retry-After``), ``expire_on_page`` (the token request for that page number answers
``badResumptionToken`` once), ``token_loop`` (the token never changes), ``endless`` (every page
has a new token; with ``empty_pages`` no records after the first page), ``record_overrides``
(identifier -> raw ``<record>`` XML),
``set_override(verb, body, content_type)`` (a whole answer replaced: HTML, DTDs, junk), and
``tampered`` (bitstream uuid -> bytes served instead).

Run ``python -m tests.servers.oai_provider --items N`` to serve a generated model.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from .base import FaultPolicy, Handler, LocalHTTPServer, ModelServer, serve_until_signal
from .fixtures import SourceModel, content_disposition, xesc
from .oai_documents import (
    BITSTREAMS,
    FORMATS,
    OAI_NS,
    Bitstream,
    OaiRecord,
    all_sets,
    bitstreams,
    datestamp,
    records,
    render_header,
    render_record,
)

OAI_PATH = "/server/oai/request"
XML_CT = "text/xml;charset=UTF-8"
LIST_VERBS = ("ListRecords", "ListIdentifiers")


class OaiProvider(ModelServer):
    """HTTP OAI-PMH provider over a ``SourceModel`` (its DSpace-style items)."""

    path = OAI_PATH

    def __init__(
        self,
        model: SourceModel,
        *,
        port: int = 0,
        page_size: int = 10,
        granularity: str = "seconds",
        deleted_record: str = "persistent",
        formats: Iterable[str] = ("oai_dc", "qdc", "dim", "mets", "ore"),
        latency: float = 0.0,
        faults: FaultPolicy | None = None,
    ) -> None:
        if granularity not in ("seconds", "day"):
            raise ValueError("granularity is seconds or day")
        if deleted_record not in ("no", "transient", "persistent"):
            raise ValueError("deleted_record is no, transient or persistent")
        self.model = model
        self.port = port
        self.page_size = page_size
        self.granularity = granularity
        self.deleted_record = deleted_record
        self.formats = tuple(formats)
        self.latency = latency
        self.faults = faults
        self.httpd: LocalHTTPServer | None = None
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[dict[str, str], int, int]] = {}  # token -> args, offset, page
        self._counter = itertools.count(1)
        # fault modes
        self.busy = 0
        self.retry_after = "1"
        self.expire_on_page: int | None = None
        self.token_loop = False
        self.endless = False
        self.empty_pages = False  # with endless: pages after the first hold no records
        self.record_overrides: dict[str, str] = {}
        self.tampered: dict[str, bytes] = {}
        self._overrides: dict[str, tuple[bytes, str]] = {}
        self.content_disposition = True  # False: bitstreams served without a file name
        self.requests: list[str] = []  # every OAI-PMH request path, in order (assertions)

    # -- lifecycle -----------------------------------------------------------------------------
    def handler(self) -> type[_OaiHandler]:
        class _Bound(_OaiHandler):
            pass

        _Bound.provider = self
        return _Bound

    def set_override(self, verb: str, body: bytes, content_type: str = XML_CT) -> None:
        """Answer every request of ``verb`` with ``body`` (hostile or broken answers)."""
        with self._lock:
            self._overrides[verb] = (body, content_type)

    def clear_overrides(self) -> None:
        with self._lock:
            self._overrides.clear()
            self.record_overrides.clear()

    def expire_tokens(self) -> None:
        """Forget every resumption token handed out (as a restarted server does)."""
        with self._lock:
            self._tokens.clear()

    # -- what is served ------------------------------------------------------------------------
    def records(self) -> list[OaiRecord]:
        out = records(self.model)
        if self.deleted_record == "no":
            out = [r for r in out if not r.deleted]
        return out

    def bitstream(self, uuid: str) -> Bitstream | None:
        with self.model.lock:
            for item in self.model.items.values():
                if item.style != "dspace":
                    continue
                for b in bitstreams(item):
                    if b.uuid == uuid:
                        return b
        return None

    def response(self, body: str, request: str) -> bytes:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        doc = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<OAI-PMH xmlns="{OAI_NS}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/ '
            'http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">\n'
            f"<responseDate>{now}</responseDate>\n{request}\n{body}\n</OAI-PMH>\n"
        )
        return doc.encode("utf-8")

    def error(self, code: str, text: str, request: str) -> bytes:
        return self.response(f'<error code="{code}">{xesc(text)}</error>', request)

    def answer(self, query: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and extra headers for an OAI-PMH request."""
        verb = query.get("verb", "")
        attrs = "".join(f' {k}="{xesc(v)}"' for k, v in query.items())
        request = f"<request{attrs}>{xesc(self.base_url)}</request>"
        with self._lock:
            over = self._overrides.get(verb)
            if verb in LIST_VERBS and self.busy > 0:
                self.busy -= 1
                if self.httpd is not None:
                    self.httpd.count("busy")
                return 503, b"busy\n", {"Retry-After": self.retry_after}
        if over is not None:
            return 200, over[0], {"Content-Type": over[1]}
        if verb == "Identify":
            return 200, self.identify(request), {}
        if verb == "ListMetadataFormats":
            return 200, self.list_formats(request), {}
        if verb == "ListSets":
            return 200, self.list_sets(request), {}
        if verb == "GetRecord":
            return 200, self.get_record(query, request), {}
        if verb in LIST_VERBS:
            return 200, self.list(verb, query, request), {}
        return 200, self.error("badVerb", f"Illegal verb {verb!r}", request), {}

    def identify(self, request: str) -> bytes:
        gran = "YYYY-MM-DD" if self.granularity == "day" else "YYYY-MM-DDThh:mm:ssZ"
        recs = self.records()
        earliest = datestamp(recs[0].datestamp if recs else self.model.created_at, self.granularity)
        host = urlsplit(self.base_url).hostname
        body = (
            "<Identify><repositoryName>Test DSpace</repositoryName>"
            f"<baseURL>{xesc(self.base_url)}</baseURL><protocolVersion>2.0</protocolVersion>"
            "<adminEmail>admin@dspace.test</adminEmail>"
            f"<earliestDatestamp>{earliest}</earliestDatestamp>"
            f"<deletedRecord>{self.deleted_record}</deletedRecord>"
            f"<granularity>{gran}</granularity><compression>gzip</compression>"
            '<description><oai-identifier xmlns="http://www.openarchives.org/OAI/2.0/oai-identifier">'
            f"<scheme>oai</scheme><repositoryIdentifier>{host}</repositoryIdentifier>"
            "<delimiter>:</delimiter><sampleIdentifier>oai:dspace.test:123456789/1</sampleIdentifier>"
            "</oai-identifier></description></Identify>"
        )
        return self.response(body, request)

    def list_formats(self, request: str) -> bytes:
        parts = [
            f"<metadataFormat><metadataPrefix>{p}</metadataPrefix><schema>{FORMATS[p][1]}</schema>"
            f"<metadataNamespace>{FORMATS[p][0]}</metadataNamespace></metadataFormat>"
            for p in self.formats
        ]
        return self.response(
            f"<ListMetadataFormats>{''.join(parts)}</ListMetadataFormats>", request
        )

    def list_sets(self, request: str) -> bytes:
        parts = [
            f"<set><setSpec>{s}</setSpec><setName>{xesc(n)}</setName></set>"
            for s, n in all_sets(self.model)
        ]
        return self.response(f"<ListSets>{''.join(parts)}</ListSets>", request)

    def get_record(self, query: dict[str, str], request: str) -> bytes:
        prefix, ident = query.get("metadataPrefix", ""), query.get("identifier", "")
        if not prefix or not ident:
            return self.error("badArgument", "identifier and metadataPrefix are required", request)
        if prefix not in self.formats:
            return self.error("cannotDisseminateFormat", f"unknown format {prefix}", request)
        r = self.find_record(ident)
        if r is None:
            return self.error("idDoesNotExist", f"no item {ident}", request)
        body = self.record_overrides.get(ident) or render_record(
            r, prefix, self.model.base_url, self.granularity
        )
        return self.response(f"<GetRecord>{body}</GetRecord>", request)

    def find_record(self, identifier: str) -> OaiRecord | None:
        return next((r for r in self.records() if r.identifier == identifier), None)

    def _parse_time(self, value: str, end: bool) -> datetime | None:
        try:
            if len(value) == 10:
                day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
                return day + timedelta(days=1) - timedelta(microseconds=1) if end else day
            if self.granularity == "day":
                return None  # finer than the repository's granularity: badArgument
            when = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            return when + timedelta(seconds=1) - timedelta(microseconds=1) if end else when
        except ValueError:
            return None

    def list(self, verb: str, query: dict[str, str], request: str) -> bytes:
        token = query.get("resumptionToken")
        if token is not None:
            if set(query) != {"verb", "resumptionToken"}:
                return self.error("badArgument", "resumptionToken is exclusive", request)
            with self._lock:
                state = self._tokens.get(token)
            if state is None:
                return self.error("badResumptionToken", "The resumption token is invalid", request)
            args, offset, page = state
            if self.expire_on_page is not None and page == self.expire_on_page:
                self.expire_on_page = None
                return self.error("badResumptionToken", "The resumption token expired", request)
        else:
            args, offset, page = dict(query), 0, 1
        prefix = args.get("metadataPrefix", "")
        if not prefix:
            return self.error("badArgument", "metadataPrefix is required", request)
        if prefix not in self.formats:
            return self.error("cannotDisseminateFormat", f"unknown format {prefix}", request)
        selected = self.records()
        spec = args.get("set")
        if spec:
            selected = [r for r in selected if spec in r.sets]
        for key, end in (("from", False), ("until", True)):
            if key in args:
                bound = self._parse_time(args[key], end)
                if bound is None:
                    return self.error("badArgument", f"bad {key} {args[key]!r}", request)
                cut = bound.replace(microsecond=0) if not end else bound
                selected = [
                    r
                    for r in selected
                    if (
                        r.datestamp.replace(microsecond=0) >= cut if not end else r.datestamp <= cut
                    )
                ]
        if not selected:
            return self.error("noRecordsMatch", "No records match", request)
        chunk = selected[offset : offset + self.page_size]
        if self.empty_pages and token is not None:
            chunk = []
        base = self.model.base_url
        if verb == "ListRecords":
            parts = [
                self.record_overrides.get(r.identifier)
                or render_record(r, prefix, base, self.granularity)
                for r in chunk
            ]
        else:
            parts = [render_header(r, self.granularity) for r in chunk]
        more = offset + self.page_size < len(selected)
        resumption = ""
        if more or self.endless:
            with self._lock:
                if self.token_loop and token is not None:
                    new = token
                else:
                    new = f"{prefix}////{next(self._counter)}"
                nxt = offset if self.token_loop or self.endless else offset + self.page_size
                self._tokens[new] = (args, nxt, page + 1)
            resumption = (
                f'<resumptionToken completeListSize="{len(selected)}" cursor="{offset}">'
                f"{xesc(new)}</resumptionToken>"
            )
        elif offset:
            resumption = f'<resumptionToken completeListSize="{len(selected)}" cursor="{offset}"/>'
        body = f"<{verb}>{''.join(parts)}{resumption}</{verb}>"
        return self.response(body, request)


class _OaiHandler(Handler):
    provider: OaiProvider

    def route(self, method: str) -> None:
        p = self.provider
        if method not in ("GET", "HEAD"):
            self.discard_body()
            self.reply(405, b"method not allowed\n", "text/plain", {"Allow": "GET, HEAD"})
            return
        parts = urlsplit(self.path)
        if parts.path == OAI_PATH:
            with p._lock:
                p.requests.append(self.path)
            raw = parse_qs(parts.query, keep_blank_values=True)
            if any(len(v) > 1 for v in raw.values()):
                request = f"<request>{xesc(p.base_url)}</request>"
                self.reply(200, p.error("badArgument", "repeated argument", request), XML_CT)
                return
            status, body, headers = p.answer({k: v[0] for k, v in raw.items()})
            ctype = headers.pop("Content-Type", XML_CT if status == 200 else "text/plain")
            self.reply(status, body, ctype, headers)
            return
        if parts.path.startswith(BITSTREAMS + "/") and parts.path.endswith("/content"):
            uuid = parts.path[len(BITSTREAMS) + 1 : -len("/content")]
            b = p.bitstream(uuid)
            if b is not None:
                content = p.tampered.get(uuid, b.content)
                headers = {}
                if p.content_disposition:
                    headers["Content-Disposition"] = content_disposition(b.name)
                self.reply(200, content, b.mime, headers)
                return
        self.reply(404, b"not found\n", "text/plain")


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve a generated DSpace-like OAI-PMH provider.")
    p.add_argument("--items", type=int, default=30)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--page-size", type=int, default=10)
    p.add_argument("--granularity", choices=("seconds", "day"), default="seconds")
    p.add_argument(
        "--deleted-record", choices=("no", "transient", "persistent"), default="persistent"
    )
    args = p.parse_args(list(argv) if argv is not None else None)
    model = SourceModel.generate(args.items, seed=args.seed, styles=("dspace",))
    provider = OaiProvider(
        model,
        port=args.port,
        page_size=args.page_size,
        granularity=args.granularity,
        deleted_record=args.deleted_record,
    )
    return serve_until_signal(provider.start, provider.stop, lambda: provider.base_url)


if __name__ == "__main__":
    sys.exit(main())
