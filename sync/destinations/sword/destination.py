"""SWORD v2 as a destination: one container per item, files on its EM-IRI.

The container's id is its Edit-IRI; the EM-IRI, SE-IRI and statement IRI are this
destination's own data, kept by the state DB and handed back on every call (DSpace cannot be
addressed by handle later, so every IRI is stored at creation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ...contracts import Capabilities, Container, Fetched, HeldFile, Metadata
from ...errors import ConfigError, DepositError
from ...http import Http
from .atom import Receipt, build_entry, held_files
from .client import SwordClient
from .limits import describe_limit


def _container(receipt: Receipt) -> Container:
    if not receipt.edit_iri:
        raise DepositError("the server's deposit receipt names no Edit-IRI")
    data = {
        "em_iri": receipt.em_iri or "",
        "se_iri": receipt.se_iri or receipt.edit_iri,
        "statement_iri": receipt.statement_atom or receipt.statement_ore or "",
    }
    return Container(receipt.edit_iri, {k: v for k, v in data.items() if v})


class SwordDestination:
    """A SWORD v2 server reached through one service document (optional) and Col-IRIs."""

    type_name = "sword"

    def __init__(
        self,
        http: Http,
        *,
        collection: str,
        service_document: str | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        self.http = http
        self.client = SwordClient(http, on_behalf_of=on_behalf_of)
        self.location = service_document or collection
        self.service_document = service_document
        self._single_file_delete = True

    # -- what it can do ----------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        kb = self.client.max_upload_kb
        return Capabilities(
            single_file_delete=self._single_file_delete,
            listing=True,
            checksums_in_listing=False,  # many servers (the reference server) list none
            max_upload=kb * 1024 if kb is not None else None,
            max_upload_note=describe_limit(kb) if kb is not None else "",
        )

    def check(self, collections: Iterable[str]) -> None:
        """Read the service document once: the collections exist, limits are known."""
        if not self.service_document:
            return
        sd = self.client.service_document(self.service_document)
        for col in sorted(set(collections)):
            if col not in sd.collections:
                raise ConfigError(
                    "the service document does not list this collection",
                    resource=col,
                    hint="collections offered: " + (", ".join(sorted(sd.collections)) or "none"),
                )

    def open_run(self, run_id: int) -> None:
        return None

    def close_run(self) -> None:
        return None

    def waiting(self) -> list[str]:
        return []

    def close(self) -> None:
        return None

    # -- containers --------------------------------------------------------------------------
    @staticmethod
    def _entry(metadata: Metadata) -> bytes:
        return build_entry(metadata.dc, title=metadata.title, source_ids=list(metadata.identifiers))

    def create(self, collection: str, metadata: Metadata, *, slug: str) -> Container:
        receipt = self.client.create(collection, self._entry(metadata), slug=slug, in_progress=True)
        return _container(receipt)

    def find(
        self, collection: str, metadata: Metadata, *, slug: str, owned: Callable[[str], bool]
    ) -> Container | None:
        """Our Slug or source identifier in the collection listing; on servers that list only
        titles (DSpace), the receipts of unknown containers with our title, matched by the
        source identifier they carry."""
        entries = self.client.list_collection(collection)  # ListingUnsupportedError: can't tell
        key = metadata.key
        found = next((ce for ce in entries if ce.slug == slug or key in ce.identifiers), None)
        if found is not None:
            return _container(self.client.receipt(found.edit_iri))
        for ce in entries:
            if ce.title == metadata.title and not owned(ce.edit_iri):
                candidate = self.client.receipt(ce.edit_iri)
                if key in candidate.identifiers:
                    return _container(candidate)
        return None

    def replace_metadata(self, container: Container, metadata: Metadata) -> None:
        self.client.replace_metadata(container.id, self._entry(metadata), in_progress=True)

    def complete(self, container: Container) -> str | None:
        return self.client.complete(container.data.get("se_iri") or container.id)

    def delete(self, container: Container) -> None:
        self.client.delete_container(container.id)

    # -- files -------------------------------------------------------------------------------
    def _em_iri(self, container: Container) -> str:
        em = container.data.get("em_iri")
        if not em:
            raise DepositError("the server gave no EM-IRI for the container", resource=container.id)
        return em

    def add_file(self, container: Container, file: Fetched) -> str | None:
        return self.client.add_file(
            self._em_iri(container),
            file.path,
            filename=file.filename,
            md5=file.md5,
            content_type=file.content_type,
            in_progress=True,
        )

    def replace_files(self, container: Container, first: Fetched | None) -> str | None:
        em = self._em_iri(container)
        if first is None:
            self.client.delete_media(em)
            return None
        self.client.replace_media(
            em, first.path, filename=first.filename, md5=first.md5, content_type=first.content_type
        )
        # a PUT answers no file IRI: the one file the statement lists now is ours, so it is
        # known by its ref and never taken for a lost upload later
        held = self.contents(container) if container.data.get("statement_iri") else []
        return held[0].ref if len(held) == 1 else None

    def remove_file(self, container: Container, ref: str) -> None:
        self.client.delete_file(ref)

    def contents(self, container: Container) -> list[HeldFile]:
        statement_iri = container.data.get("statement_iri")
        if not statement_iri:
            raise DepositError(
                "the server gave no statement for the container", resource=container.id
            )
        statement = self.client.statement(statement_iri)
        return held_files(statement)

    def file_md5(self, container: Container, held: HeldFile) -> str:
        if not held.ref:
            raise DepositError("the statement names no IRI for this file", resource=container.id)
        return self.client.file_md5(held.ref)
