"""The Chroma side of the similar-incident index: two collections, and every call made to Chroma.

``<name>`` holds public and internal postmortems, ``<name>-restricted`` restricted ones. Keeping restricted chunks
in their own collection enforces access control by construction: the restricted collection is queried only for a
caller with teams, with a `where` that requires one of them, and a caller without a matching team never gets a
chunk from it. The common search (no filters) then runs Chroma's unfiltered HNSW path on the open collection;
metadata-filtered queries are 10-40x slower in embedded Chroma (see benchmarks/bench_search.py).

Metadata scheme: Chroma 1.5 accepts non-empty lists of strings as metadata values and matches them with
``$contains``; services, tags and teams are stored that way (the key is omitted when a list is empty, which Chroma
refuses). Dates are stored as ISO text and as an int YYYYMMDD (``date_int``) for ``$gte``/``$lte``. Every chunk
also records its incident id, content hash (= version), write generation, section, position, source and the
embedding model id. Collections are created with ``embedding_function=None``: vectors always come from the
caller, so Chroma never downloads a model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import httpx
import numpy as np
import numpy.typing as npt

from pipeline.egress import EgressPolicy
from pipeline.errors import IndexStoreError
from pipeline.index_docs import date_int, norm_label, norm_severity
from pipeline.index_lexical import SearchFilters
from pipeline.settings import Settings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

Part = Literal["open", "restricted"]
PARTS: tuple[Part, ...] = ("open", "restricted")
Where = dict[str, Any]
_DELETE_IDS = 2000
_DELETE_INCIDENTS = 200
_PAGE = 5000


def part_of(visibility: str) -> Part:
    return "restricted" if visibility == "restricted" else "open"


def build_where(filters: SearchFilters | None, teams: Sequence[str] | None = None) -> Where | None:
    """The `where` for one collection: the filters, and with `teams` (the restricted collection) the access rule
    that a chunk's teams include one of the caller's. Mirrors Snapshot.incident_mask."""
    clauses: list[Where] = []
    if teams is not None:
        acl: list[Where] = [{"teams": {"$contains": t}} for t in teams]
        if not acl:
            raise ValueError("the restricted collection is only queried for a caller with teams")
        clauses.append(acl[0] if len(acl) == 1 else {"$or": acl})
    if filters is not None:
        if filters.service:
            clauses.append({"services": {"$contains": norm_label(filters.service)}})
        if filters.tag:
            clauses.append({"tags": {"$contains": norm_label(filters.tag)}})
        if filters.severity:
            clauses.append({"severity": norm_severity(filters.severity)})
        if filters.since:
            clauses.append({"date_int": {"$gte": date_int(filters.since)}})
        if filters.until:
            clauses.append({"date_int": {"$lte": date_int(filters.until)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class ChromaStore:
    """The index's two collections in an embedded store (`settings.index_dir/chroma`) or on a Chroma server
    (`settings.chroma_host`). Any Chroma failure becomes an IndexStoreError naming the path or host."""

    def __init__(self, settings: Settings, model_id: str, dimension: int, *, create: bool) -> None:
        self.name = settings.index_collection
        self.host = settings.chroma_host
        self.port = settings.chroma_port
        self.location = f"http://{self.host}:{self.port}" if self.host else str(settings.index_dir / "chroma")
        self._model_id, self._dimension = model_id, dimension
        self._egress = EgressPolicy.from_settings(settings)
        self._client = self._connect(create)
        self.collections: dict[Part, Collection] = {
            "open": self._open(self.name, create),
            "restricted": self._open(f"{self.name}-restricted", create),
        }

    def _error(self, action: str, exc: Exception) -> IndexStoreError:
        return IndexStoreError(f"Chroma failed to {action} at {self.location}: {exc}", self.location)

    def _route_through_egress(self, client: ClientAPI) -> None:
        """Swap the session of Chroma's HTTP client for an egress-checked one (same headers), so every later Chroma
        request is decided and recorded like any other. The attribute path is chromadb's (pinned in
        pyproject.toml); if a release moves it, refuse rather than send unchecked."""
        server = getattr(client, "_server", None)
        session = getattr(server, "_session", None)
        if server is None or not isinstance(session, httpx.Client):
            raise IndexStoreError(
                "this chromadb release's HTTP session cannot be routed through the egress policy", self.location
            )
        checked = self._egress.client(purpose="index:chroma", restricted=False, timeout=None)
        checked.headers.update(session.headers)
        session.close()
        server._session = checked

    def _connect(self, create: bool) -> ClientAPI:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from chromadb.errors import ChromaError

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if self.host:
            try:
                with _direct_to(self.host) if self._egress.is_local(self.host) else nullcontext():
                    client = chromadb.HttpClient(host=self.host, port=self.port, settings=chroma_settings)
                self._route_through_egress(client)
                client.heartbeat()
            except (ValueError, OSError, ChromaError) as exc:
                raise IndexStoreError(
                    f"cannot reach the Chroma server at {self.location}: {exc}", self.location
                ) from exc
            return client
        path = Path(self.location)
        if not create and not (path / "chroma.sqlite3").is_file():
            raise IndexStoreError(
                f"no similar-incident index at {path}: index some postmortems first (`postmortem index`)", path
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        except (ValueError, OSError, ChromaError) as exc:
            raise IndexStoreError(
                f"cannot open the Chroma store at {path} (missing or corrupted): {exc}", path
            ) from exc

    def _open(self, name: str, create: bool) -> Collection:
        from chromadb.errors import ChromaError, NotFoundError

        try:
            try:
                collection = self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                if not create:
                    raise IndexStoreError(
                        f"no collection {name!r} in the Chroma store at {self.location}: index some postmortems first",
                        self.location,
                    ) from None
                collection = self._client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    metadata={
                        "embedding_model": self._model_id,
                        "embedding_dimension": self._dimension,
                        "schema": "pm-index/1",
                    },
                    configuration={"hnsw": {"space": "cosine"}},
                )
        except ChromaError as exc:
            raise IndexStoreError(
                f"cannot open collection {name!r} at {self.location} (missing or corrupted): {exc}", self.location
            ) from exc
        meta = collection.metadata or {}
        stored = meta.get("embedding_model")
        if stored != self._model_id or meta.get("embedding_dimension") != self._dimension:
            raise IndexStoreError(
                f"collection {name!r} at {self.location} was built with embedding model {stored!r} "
                f"(dimension {meta.get('embedding_dimension')}), but this index was opened with {self._model_id!r} "
                f"(dimension {self._dimension}): use the same model, or index into another collection "
                "(POSTMORTEM_INDEX_COLLECTION)",
                self.location,
            )
        return collection

    def count(self) -> int:
        from chromadb.errors import ChromaError

        try:
            return sum(c.count() for c in self.collections.values())
        except ChromaError as exc:
            raise self._error("count chunks", exc) from exc

    def max_batch(self) -> int:
        return max(1, min(self._client.get_max_batch_size(), 4096))

    def upsert(
        self,
        part: Part,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        texts: list[str],
        metadatas: list[dict[str, Any]],
    ) -> None:
        from chromadb.errors import ChromaError

        try:
            self.collections[part].upsert(ids=ids, embeddings=vectors, documents=texts, metadatas=cast(Any, metadatas))
        except ChromaError as exc:
            raise self._error("add chunks", exc) from exc

    def delete(self, ids: dict[Part, list[str]], incidents: Sequence[str], keep: dict[str, str]) -> None:
        """Delete chunks by id, then any chunk of `incidents` whose version is not `keep[incident]` (strays of an
        interrupted write, or copies left in the other collection after a visibility change)."""
        from chromadb.errors import ChromaError

        try:
            for part, collection in self.collections.items():
                chunk_ids = ids.get(part, [])
                for i in range(0, len(chunk_ids), _DELETE_IDS):
                    collection.delete(ids=chunk_ids[i : i + _DELETE_IDS])
                for i in range(0, len(incidents), _DELETE_INCIDENTS):
                    some = list(incidents[i : i + _DELETE_INCIDENTS])
                    versions = [keep[x] for x in some if x in keep] or ["-"]
                    where: Where = {"$and": [{"incident_id": {"$in": some}}, {"content_hash": {"$nin": versions}}]}
                    collection.delete(where=cast(Any, where))
        except ChromaError as exc:
            raise self._error("delete superseded chunks", exc) from exc

    def query(
        self,
        part: Part,
        vector: npt.NDArray[np.float32],
        n: int,
        *,
        ids: list[str] | None = None,
        where: Where | None = None,
    ) -> list[tuple[float, str]]:
        """Up to `n` (cosine distance, chunk id) pairs, nearest first, among `ids` / chunks matching `where`."""
        from chromadb.errors import ChromaError

        try:
            got = self.collections[part].query(
                query_embeddings=vector[None, :],
                n_results=n,
                ids=ids,
                where=cast(Any, where),
                include=["distances"],
            )
        except ChromaError as exc:
            raise self._error("query", exc) from exc
        return [(float(d), i) for i, d in zip(got["ids"][0], (got["distances"] or [[]])[0], strict=True)]

    def read_all(self) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Every chunk in both collections: (id, metadata, text)."""
        from chromadb.errors import ChromaError

        for collection in self.collections.values():
            offset = 0
            while True:
                try:
                    got = collection.get(include=["metadatas", "documents"], limit=_PAGE, offset=offset)
                except ChromaError as exc:
                    raise self._error("read chunks", exc) from exc
                metas, docs = got["metadatas"] or [], got["documents"] or []
                for cid, meta, text in zip(got["ids"], metas, docs, strict=True):
                    yield cid, dict(meta), text or ""
                if len(got["ids"]) < _PAGE:
                    break
                offset += _PAGE


_ENV_LOCK = threading.Lock()


@contextmanager
def _direct_to(host: str) -> Iterator[None]:
    """While chromadb builds its client (which already asks the server who we are), NO_PROXY names the local
    Chroma host, so httpx does not carry that first request through HTTP(S)_PROXY. Only a local host is ever
    added, and the egress policy never proxies local hosts anyway, so other threads decide exactly as before."""
    with _ENV_LOCK:
        saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
        for name, value in saved.items():
            os.environ[name] = f"{value},{host}" if value else host
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
