"""Discovery: from whatever URL the user gives to the source's lists.

``SOURCE`` may be a site base URL (then ``/.well-known/resourcesync``, else an HTML
``<link rel="resourcesync">`` or an HTTP ``Link`` header), a Source Description, a Capability
List, a Resource List, a Resource List Index, or a Change List (Index). Every hop is checked
against the allowed hosts and against loops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from ...errors import DiscoveryError, DocumentError
from .lists import ListReader

WELL_KNOWN = "/.well-known/resourcesync"
_HTML_LINK = re.compile(r"<link\b[^>]*>", re.I)
_ATTR = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|\'([^\']*)\'|([^\s>]+))')


@dataclass
class SourcePlan:
    """The lists a source publishes, found by ``discover``."""

    origin: str
    descriptions: list[str] = field(default_factory=list)
    capability_lists: list[str] = field(default_factory=list)
    resource_lists: list[str] = field(default_factory=list)
    change_lists: list[str] = field(default_factory=list)
    changelist_archives: list[str] = field(default_factory=list)


def _is_site_root(url: str) -> bool:
    return urlsplit(url).path in ("", "/")


def _html_resourcesync_link(html: str, base: str) -> str | None:
    for tag in _HTML_LINK.findall(html):
        attrs = {m[0].lower(): m[1] or m[2] or m[3] for m in _ATTR.findall(tag)}
        if "resourcesync" in attrs.get("rel", "").lower().split() and attrs.get("href"):
            return str(urljoin(base, attrs["href"]))
    return None


def _link_header(value: str | None, base: str) -> str | None:
    for part in (value or "").split(","):
        m = re.match(r"\s*<([^>]+)>\s*;(.*)", part)
        if m and re.search(r'rel\s*=\s*"?[^";]*\bresourcesync\b', m.group(2), re.I):
            return str(urljoin(base, m.group(1)))
    return None


def _from_site(reader: ListReader, url: str) -> str:
    """The Source Description URL of a site, by the three discovery mechanisms."""
    well_known = urljoin(url, WELL_KNOWN)
    resp = reader.http.request("GET", well_known, stream=True)
    status = resp.status_code
    resp.close()
    if status < 400:
        return well_known
    resp = reader.http.request("GET", url, stream=True)
    with resp:
        header = _link_header(resp.headers.get("Link"), url)
        if header:
            return header
        if resp.status_code < 400 and "html" in resp.headers.get("Content-Type", ""):
            body = resp.read(1 << 20).decode("utf-8", "replace")
            found = _html_resourcesync_link(body, url)
            if found:
                return found
    raise DiscoveryError(
        "no ResourceSync Source Description found (tried /.well-known/resourcesync, "
        'HTML <link rel="resourcesync"> and the Link header)',
        resource=url,
        hint="give the URL of the capability list or resource list instead",
    )


def discover(reader: ListReader, source: str) -> SourcePlan:
    """Follow the source's documents to its resource lists and change lists."""
    plan = SourcePlan(origin=source)
    start = _from_site(reader, source) if _is_site_root(source) else source
    seen: set[str] = set()
    pending: list[tuple[str, str | None]] = [(start, None)]
    while pending:
        url, expected = pending.pop(0)
        if url in seen:
            continue  # a capability list pointing back up (rel="up") is normal, not a loop
        seen.add(url)
        reader.http.check_allowed(url, what="ResourceSync document")
        if expected in ("resourcelist", "changelist"):
            # no need to read it now: the baseline / incremental stage walks it
            (plan.resource_lists if expected == "resourcelist" else plan.change_lists).append(url)
            continue
        doc = reader.fetch(url)
        cap = doc.info.capability
        if expected and cap and cap != expected:
            doc.discard()
            raise DocumentError(f"expected a {expected} but the document says {cap}", resource=url)
        if cap == "description":
            plan.descriptions.append(url)
            pending.extend((e.loc, "capabilitylist") for e in doc.entries())
        elif cap == "capabilitylist":
            plan.capability_lists.append(url)
            for e in doc.entries():
                if e.capability in ("resourcelist", "changelist"):
                    pending.append((e.loc, e.capability))
                elif e.capability == "changelist-archive":
                    pending.append((e.loc, "changelist-archive"))
        elif cap == "changelist-archive":
            doc.discard()
            plan.changelist_archives.append(url)
        elif cap in ("resourcelist", None):
            doc.discard()
            plan.resource_lists.append(url)
        elif cap == "changelist":
            doc.discard()
            plan.change_lists.append(url)
        else:
            doc.discard()
            if url == start:
                raise DiscoveryError(
                    f"the source document is a {cap}; resync-sword reads description, "
                    "capability list, resource list and change list documents",
                    resource=url,
                )
    if not plan.resource_lists and not plan.change_lists:
        raise DiscoveryError("the source publishes no resource list or change list", resource=start)
    return plan
