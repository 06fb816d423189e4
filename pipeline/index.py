"""Similar-incident index: past postmortems in Chroma (dense) and bm25s (lexical), fused by reciprocal rank.

Modules: ``index_docs`` (documents, loaders, chunking), ``index_lexical`` (catalog snapshots, BM25, filters as
masks, locks), ``index_store`` (the Chroma collections), and this one (writes, search, fusion).

Store. An embedded Chroma ``PersistentClient`` under ``settings.index_dir/chroma``, or a Chroma server
(``HttpClient``) when ``settings.chroma_host`` is set. Each collection records the embedding model it was built
with; opening it with another model is refused. Embeddings are computed here, so Chroma never downloads a model.
The lexical index and the catalog live in ``settings.index_dir/lexical/<name>`` in both modes.

Writes are idempotent. Each document's content hash is its version and part of its chunk ids; unchanged documents
are skipped. A changed document's new chunks are added under the new version first; then the catalog snapshot
that names the new version is swapped in and the old version's chunks are deleted under an exclusive lock that
searches hold shared from reading the snapshot pointer to the end of their Chroma query. Searches keep only
chunks their snapshot lists, so they see a document's old version or its new one, never a mix or a half.

Access control: restricted postmortems live in their own collection, queried only with a `where` requiring one
of the caller's teams; the lexical side masks them before ranking. Filters are Chroma `where` clauses and the same
mask, so neither leaks nor crowds out the k results.

Egress: the embedder is told which texts belong to restricted incidents. When restricted text may not leave the
machine (a remote embedding endpoint, or a Chroma server that is not local, without
POSTMORTEM_ALLOW_RESTRICTED_REMOTE), restricted documents are not indexed (each is in the report's `rejected`, with
the reason) and a query built from a restricted draft is answered by the lexical index alone (BM25, on this
machine). The decision is recorded in HOME/runs/egress.jsonl.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from pipeline.egress import EgressPolicy
from pipeline.errors import EgressError, IndexStoreError
from pipeline.index_chunks import Chunk, chunk_document, token_encoding
from pipeline.index_docs import IndexDocument, Rejected, date_int, document_from_draft, load_paths, norm_label
from pipeline.index_fusion import RRF_K, Aggregate, Mode, SearchHit, fuse
from pipeline.index_lexical import (
    CatalogEntry,
    ChunkRow,
    SearchFilters,
    Snapshot,
    SwapLock,
    build_bm25,
    current_name,
    file_lock,
    load_snapshot,
    prune_snapshots,
    write_snapshot,
)
from pipeline.index_store import ChromaStore, Part, build_where, part_of
from pipeline.models import Draft
from pipeline.redact import Redactor
from pipeline.settings import Settings

__all__ = [
    "RRF_K",
    "Aggregate",
    "Embedder",
    "Index",
    "IndexDocument",
    "IndexReport",
    "Mode",
    "Rejected",
    "SearchFilters",
    "SearchHit",
]

_EMBED_SLICE = 256  # texts per embed() call while indexing
BROAD_FILTER = 0.25  # a filter admitting at least this share of the open chunks is applied to Chroma's answers


class Embedder(Protocol):
    """What the index needs from an embedding model (pipeline.embeddings implements it)."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str], *, restricted: bool = True) -> npt.NDArray[np.float32]:
        """Raises EgressError (before sending anything) when texts of this kind may not go where it sends them."""
        ...


class IndexReport(BaseModel):
    """What one index run did. `rejected` carries a reason for every file or record that was not indexed."""

    model_config = ConfigDict(extra="forbid")

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    rejected: list[Rejected] = Field(default_factory=list)
    chunks_written: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "rejected": len(self.rejected),
        }


def redacted(doc: IndexDocument) -> IndexDocument:
    """Secrets and PII never reach the index: every title and section text is redacted before chunking (one
    Redactor per document, so one value keeps one placeholder throughout it)."""
    redactor = Redactor()
    sections = tuple(s.model_copy(update={"text": redactor.redact(s.text)}) for s in doc.sections)
    return doc.model_copy(update={"title": redactor.redact(doc.title), "sections": sections})


def _active(filters: SearchFilters | None) -> bool:
    return filters is not None and any((filters.service, filters.severity, filters.tag, filters.since, filters.until))


class Index:
    """The similar-incident index. Thread-safe; several processes may share one index directory.

    Chroma holds two collections (see pipeline.index_store): ``<name>`` for public and internal postmortems and
    ``<name>-restricted`` for restricted ones, which a search queries only for a caller with teams and only over
    the chunks of incidents one of those teams may see. Restricted chunks therefore neither leak nor crowd out the
    k results, and the common search (no filters) runs Chroma's unfiltered HNSW path.

    `create=False` (searching) refuses a store that does not exist; the index job passes `create=True`.
    `aggregate` turns chunk rankings into incident rankings: "max" ranks each incident by its best chunk in each
    list and fuses those ranks (the default: see benchmarks/bench_search.py); "sum" adds the RRF scores of an
    incident's best SUM_TOP_CHUNKS chunks.
    """

    def __init__(
        self, settings: Settings, embedder: Embedder, *, create: bool = False, aggregate: Aggregate = "max"
    ) -> None:
        self._settings = settings
        self._embedder = embedder
        self._aggregate: Aggregate = aggregate
        self._snap: Snapshot | None = None
        self._store = ChromaStore(settings, embedder.model_id, embedder.dimension, create=create)
        self.where = self._store.location
        self.collection_name = settings.index_collection
        key = f"{self.collection_name}@{settings.chroma_host}_{settings.chroma_port}" if settings.chroma_host else None
        self.lexical_dir = (
            settings.index_dir / "lexical" / re.sub(r"[^A-Za-z0-9._@-]", "_", key or self.collection_name)
        )
        self._swap_lock = SwapLock(self.lexical_dir)
        self._write_lock = self.lexical_dir / "write.lock"
        if current_name(self.lexical_dir) is None and self.chunk_count() > 0:
            self.rebuild_lexical()  # the lexical side is derived data: rebuild it from Chroma

    def chunk_count(self) -> int:
        """Chunks in Chroma (both collections), including any not yet or no longer current."""
        return self._store.count()

    # --- snapshots -------------------------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        """The current snapshot (cached until the pointer moves). Call with the swap lock held."""
        name = current_name(self.lexical_dir)
        if name is None:
            return Snapshot.empty(self._embedder.model_id)
        cached = self._snap
        if cached is not None and cached.name == name:
            return cached
        snap = load_snapshot(self.lexical_dir, name)
        if snap.model != self._embedder.model_id:
            raise IndexStoreError(
                f"the lexical index at {self.lexical_dir / name} was built with embedding model {snap.model!r}, "
                f"not {self._embedder.model_id!r}",
                self.lexical_dir,
            )
        self._snap = snap
        return snap

    def _new_snapshot(self, seq: int, entries: dict[str, CatalogEntry], chunks: list[ChunkRow]) -> Snapshot:
        return Snapshot(
            name=f"snap-{seq:08d}-{time.time_ns() % 10**9:09d}",
            seq=seq,
            model=self._embedder.model_id,
            entries=entries,
            chunks=chunks,
            bm25=build_bm25(chunks, entries),
        )

    def _publish(self, snap: Snapshot, old: Snapshot, replaced: Sequence[str]) -> None:
        """Make `snap` current, then delete the chunks `old` held for the `replaced` incidents (and any strays of
        theirs), as one step for readers."""
        old_ids: dict[Part, list[str]] = {"open": [], "restricted": []}
        gone = set(replaced)
        for chunk in old.chunks:
            if chunk.incident_id in gone:
                old_ids[part_of(old.entries[chunk.incident_id].visibility)].append(chunk.id)
        keep = {i: snap.entries[i].version for i in replaced if i in snap.entries}
        # New searches read the new CURRENT from here on. Searches that read the old one hold the swap lock
        # (shared) until their Chroma query is done, so the old chunks are deleted only after they finish.
        write_snapshot(self.lexical_dir, snap)
        with self._swap_lock.exclusive():
            self._store.delete(old_ids, replaced, keep)
            self._snap = snap
        prune_snapshots(self.lexical_dir, keep=snap.name)

    # --- writing ---------------------------------------------------------------------------------------------

    def index_paths(self, paths: Iterable[Path]) -> IndexReport:
        """Index Markdown postmortems, draft JSON files and JSONL records from files and directories."""
        docs, rejected = load_paths(paths)
        return self.index_documents(docs, rejected)

    def index_draft(self, draft: Draft, source: str, teams: Sequence[str] = ()) -> IndexReport:
        return self.index_documents([document_from_draft(draft, source, teams)])

    def index_documents(self, documents: Iterable[IndexDocument], rejected: Sequence[Rejected] = ()) -> IndexReport:
        """Add new documents, replace changed ones (all their chunks), skip unchanged ones."""
        report = IndexReport(rejected=list(rejected))
        with file_lock(self._write_lock, shared=False):
            with self._swap_lock.shared():
                base = self._snapshot()
            first_source: dict[str, str] = {}
            changed: list[tuple[IndexDocument, str]] = []
            for doc in map(redacted, documents):
                if doc.incident_id in first_source:
                    report.rejected.append(
                        Rejected(
                            source=doc.source,
                            reason=f"duplicate incident id {doc.incident_id} (already read from {first_source[doc.incident_id]})",
                        )
                    )
                    continue
                first_source[doc.incident_id] = doc.source
                version = doc.content_hash()
                current = base.entries.get(doc.incident_id)
                if current is not None and current.version == version:
                    report.unchanged.append(doc.incident_id)
                    continue
                (report.updated if current is not None else report.added).append(doc.incident_id)
                changed.append((doc, version))
            changed = self._keep_restricted_local(changed, report)
            if not changed:
                return report
            seq = base.seq + 1
            new_entries: dict[str, CatalogEntry] = {}
            new_chunks: list[ChunkRow] = []
            encoding = token_encoding(self._settings)
            pending: list[tuple[IndexDocument, str, list[Chunk]]] = []
            for doc, version in changed:
                doc_chunks = chunk_document(doc, version, encoding)
                pending.append((doc, version, doc_chunks))
                new_entries[doc.incident_id] = CatalogEntry(
                    incident_id=doc.incident_id,
                    version=version,
                    title=doc.title,
                    date=doc.date,
                    services=doc.services,
                    severity=doc.severity,
                    tags=doc.tags,
                    visibility=doc.visibility,
                    teams=doc.teams,
                    source=doc.source,
                    seq=seq,
                )
                new_chunks.extend(ChunkRow(c.id, c.incident_id, c.section, c.text) for c in doc_chunks)
            report.chunks_written = self._add_chunks(pending, seq)
            entries = {k: v for k, v in base.entries.items() if k not in new_entries} | new_entries
            chunks = [c for c in base.chunks if c.incident_id not in new_entries] + new_chunks
            self._publish(self._new_snapshot(seq, entries, chunks), base, report.updated)
        return report

    def remove(self, incident_ids: Iterable[str]) -> IndexReport:
        """Remove incidents (all their chunks). Unknown ids are reported as rejected."""
        report = IndexReport()
        with file_lock(self._write_lock, shared=False):
            with self._swap_lock.shared():
                base = self._snapshot()
            for incident in dict.fromkeys(incident_ids):
                if incident in base.entries:
                    report.removed.append(incident)
                else:
                    report.rejected.append(Rejected(source=incident, reason="not in the index"))
            if not report.removed:
                return report
            gone = set(report.removed)
            entries = {k: v for k, v in base.entries.items() if k not in gone}
            chunks = [c for c in base.chunks if c.incident_id not in gone]
            self._publish(self._new_snapshot(base.seq + 1, entries, chunks), base, report.removed)
        return report

    def restricted_refusal(self) -> str | None:
        """Why restricted text may not be embedded or stored by this index (recorded), or None: the embedder
        refuses restricted texts (a remote endpoint), or the Chroma server is not this machine."""
        try:
            self._embedder.embed([], restricted=True)  # an empty call: only the egress decision, nothing is sent
        except EgressError as exc:
            return f"embedding: {exc}"
        if self._settings.chroma_host:
            # Chroma's own HTTP client cannot take our transport: decided by the server's address.
            policy = EgressPolicy.from_settings(self._settings)
            url = f"http://{self._settings.chroma_host}:{self._settings.chroma_port}"
            decision = policy.decide(url, purpose="index:chroma", restricted=True, credential=False)
            if not decision.allowed:
                policy.record(decision)
                return f"Chroma server: {decision.reason}"
        return None

    def _keep_restricted_local(
        self, changed: list[tuple[IndexDocument, str]], report: IndexReport
    ) -> list[tuple[IndexDocument, str]]:
        """Restricted documents are indexed only where their text stays on this machine; otherwise each is
        rejected with the reason (the open ones are indexed as usual)."""
        if not any(doc.visibility == "restricted" for doc, _ in changed):
            return changed
        refusal = self.restricted_refusal()
        if refusal is None:
            return changed
        kept: list[tuple[IndexDocument, str]] = []
        for doc, version in changed:
            if doc.visibility != "restricted":
                kept.append((doc, version))
                continue
            (report.updated if doc.incident_id in report.updated else report.added).remove(doc.incident_id)
            report.rejected.append(Rejected(source=doc.source, reason=f"restricted, not indexed: {refusal}"))
        return kept

    def _add_chunks(self, pending: Sequence[tuple[IndexDocument, str, list[Chunk]]], seq: int) -> int:
        batch: dict[Part, tuple[list[str], list[str], list[dict[str, Any]], list[str]]] = {
            "open": ([], [], [], []),
            "restricted": ([], [], [], []),
        }
        for doc, version, chunks in pending:
            ids, texts, metas, embed_inputs = batch[part_of(doc.visibility)]
            for position, chunk in enumerate(chunks):
                meta: dict[str, Any] = {
                    "incident_id": doc.incident_id,
                    "content_hash": version,
                    "seq": seq,
                    "title": doc.title,
                    "visibility": doc.visibility,
                    "section": chunk.section,
                    "chunk": chunk.index,
                    "position": position,
                    "chunks": len(chunks),  # of this version: a rebuild takes only complete versions
                    "source": doc.source,
                    "embedding_model": self._embedder.model_id,
                }
                if doc.date is not None:
                    meta["date"] = doc.date.isoformat()
                    meta["date_int"] = date_int(doc.date)
                if doc.severity:
                    meta["severity"] = doc.severity
                for key in ("services", "tags", "teams"):
                    if values := list(getattr(doc, key)):
                        meta[key] = values  # non-empty lists only: Chroma refuses empty ones
                ids.append(chunk.id)
                texts.append(chunk.text)
                metas.append(meta)
                embed_inputs.append(chunk.embed_text(doc.title))
        size = self._store.max_batch()
        written = 0
        for part, (ids, texts, metas, embed_inputs) in batch.items():
            for start in range(0, len(ids), size):
                stop = start + size
                vectors = self._embed(embed_inputs[start:stop], restricted=part == "restricted")
                self._store.upsert(part, ids[start:stop], vectors, texts[start:stop], metas[start:stop])
            written += len(ids)
        return written

    def _embed(self, texts: Sequence[str], *, restricted: bool) -> npt.NDArray[np.float32]:
        step = _EMBED_SLICE
        parts = [self._embedder.embed(texts[i : i + step], restricted=restricted) for i in range(0, len(texts), step)]
        vectors = np.vstack(parts) if parts else np.zeros((0, self._embedder.dimension), dtype=np.float32)
        if vectors.shape != (len(texts), self._embedder.dimension) or not np.isfinite(vectors).all():
            raise IndexStoreError(
                f"embedder {self._embedder.model_id} returned an array of shape {vectors.shape} "
                f"(expected ({len(texts)}, {self._embedder.dimension}), finite)"
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def rebuild_lexical(self) -> int:
        """Rebuild the lexical index and catalog from Chroma (the newest version of each incident wins); return
        the number of incidents. Used when the lexical directory is missing, e.g. a fresh machine in server mode."""
        with file_lock(self._write_lock, shared=False):
            by_version: dict[tuple[str, str], list[tuple[int, str, dict[str, Any], str]]] = {}
            try:
                for cid, m, text in self._store.read_all():
                    key = (str(m["incident_id"]), str(m["content_hash"]))
                    by_version.setdefault(key, []).append((int(m["position"]), cid, m, text))
            except (KeyError, TypeError, ValueError) as exc:
                raise IndexStoreError(
                    f"chunks in {self.where} lack index metadata ({exc}): is {self.collection_name!r} this index's "
                    "collection?",
                    self.where,
                ) from exc
            newest: dict[str, tuple[int, str]] = {}
            for (incident, version), found in by_version.items():
                seq = int(found[0][2]["seq"])
                complete = len({position for position, *_ in found}) == int(found[0][2]["chunks"])
                if complete and (incident not in newest or seq > newest[incident][0]):
                    newest[incident] = (seq, version)
            entries: dict[str, CatalogEntry] = {}
            chunks: list[ChunkRow] = []
            for incident in sorted(newest):
                rows = sorted(by_version[(incident, newest[incident][1])], key=lambda r: r[0])
                m = rows[0][2]
                entries[incident] = CatalogEntry(
                    incident_id=incident,
                    version=str(m["content_hash"]),
                    title=str(m["title"]),
                    date=dt.date.fromisoformat(str(m["date"])) if m.get("date") else None,
                    services=tuple(m.get("services") or ()),
                    severity=m.get("severity"),
                    tags=tuple(m.get("tags") or ()),
                    visibility=m["visibility"],
                    teams=tuple(m.get("teams") or ()),
                    source=str(m["source"]),
                    seq=int(m["seq"]),
                )
                chunks.extend(ChunkRow(cid, incident, str(meta["section"]), text) for _, cid, meta, text in rows)
            seq = max((s for s, _ in newest.values()), default=0) + 1
            stale = sorted({i for i, v in by_version if i not in newest or newest[i][1] != v})
            with self._swap_lock.shared():
                old = self._snapshot()
            self._publish(self._new_snapshot(seq, entries, chunks), old, stale)
        return len(entries)

    # --- reading ---------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._swap_lock.shared():
            snap = self._snapshot()
        return {
            "store": self.where,
            "collection": self.collection_name,
            "lexical": str(self.lexical_dir),
            "embedding_model": self._embedder.model_id,
            "incidents": len(snap.entries),
            "chunks": len(snap.chunks),
        }

    def search(
        self,
        query: str,
        k: int = 10,
        filters: SearchFilters | None = None,
        teams: Sequence[str] = (),
        mode: Mode = "hybrid",
        *,
        exclude: Sequence[str] = (),
        query_restricted: bool = False,
    ) -> list[SearchHit]:
        """The `k` incidents most like `query` that the caller (member of `teams`) may see and `filters` admit.

        `query_restricted`: the query is a restricted incident's text (a restricted draft's related incidents).
        When that may not be sent to the embedder or the Chroma server, the search is lexical only."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"mode must be hybrid, dense or lexical, got {mode!r}")
        caller = tuple(dict.fromkeys(norm_label(t) for t in teams if t.strip()))
        if not query.strip():
            return []
        if mode != "lexical" and query_restricted and self.restricted_refusal() is not None:
            mode = "lexical"  # the refusal is recorded; BM25 runs on this machine
        qvec = self._embed([query], restricted=query_restricted)[0] if mode != "lexical" else None
        depth = max(4 * k, 50)
        with self._swap_lock.shared():
            snap = self._snapshot()
            allowed = snap.incident_mask(filters, caller, exclude)
            dense = self._dense(snap, allowed, qvec, depth, k, filters, caller) if qvec is not None else []
        lexical = snap.lexical(query, depth, allowed) if mode != "dense" else []
        return fuse(snap, query, [r for r, _ in dense], [r for r, _ in lexical], k, self._aggregate)

    def similar_to_draft(self, draft: Draft, k: int = 5, teams: Sequence[str] = ()) -> list[SearchHit]:
        """Past incidents most like a draft (title, summary, contributing factors); never the draft's own id. A
        restricted draft's text is a restricted query (see `search`)."""
        parts = [draft.incident.title, draft.summary, *(f.statement for f in draft.contributing_factors)]
        return self.search(
            "\n".join(p for p in parts if p),
            k,
            teams=teams,
            exclude=[draft.incident.id],
            query_restricted=draft.incident.visibility == "restricted",
        )

    def _dense(
        self,
        snap: Snapshot,
        allowed: npt.NDArray[np.bool_],
        qvec: npt.NDArray[np.float32],
        depth: int,
        k: int,
        filters: SearchFilters | None,
        teams: Sequence[str],
    ) -> list[tuple[int, float]]:
        """(snapshot chunk row, cosine similarity), best first.

        Restrictions are part of the Chroma query, as an explicit list of the chunk ids the snapshot admits
        (`ids=`): in Chroma 1.5 that is 5-15x faster than the equivalent metadata `where`. The restricted collection
        is queried only for a caller with teams, and only over the chunks of restricted incidents one of those
        teams may see. An unfiltered search of the open collection needs no restriction at all, and a filter that
        admits most open chunks (BROAD_FILTER) is applied to a proportionally deeper answer instead. Returned
        chunks the snapshot does not list (a version being written) or the caller may not see are skipped; the
        query widens until k incidents are found or Chroma runs out."""
        if not snap.chunks:
            return []
        queries: list[tuple[Part, list[str] | None, Any]] = []
        n = depth
        open_ids = snap.chunk_ids(allowed, restricted=False) if _active(filters) else None
        if open_ids is not None and len(open_ids) >= BROAD_FILTER * snap.open_chunks:
            # A filter that admits most chunks: passing tens of thousands of ids costs more than asking for
            # proportionally more neighbours and dropping the few the filter rejects (the loop widens as needed).
            n = int(depth / max(len(open_ids) / max(snap.open_chunks, 1), 1e-3)) + 1
            open_ids = None
        if open_ids is None or open_ids:
            queries.append(("open", open_ids, build_where(filters)))
        if teams and snap.any_restricted(allowed):
            queries.append(("restricted", snap.chunk_ids(allowed, restricted=True), build_where(filters, teams)))
        while True:
            merged: list[tuple[float, str]] = []
            exhausted = True
            for part, ids, where in queries:
                try:
                    got = self._store.query(part, qvec, n, ids=ids)
                except IndexStoreError:
                    if ids is None:
                        raise
                    # Chroma refuses ids it does not hold: the store and the catalog disagree (a restored
                    # backup, a hand-edited store). The metadata `where` gives the same answer, more slowly.
                    got = self._store.query(part, qvec, n, where=where)
                exhausted &= len(got) < n
                merged.extend(got)
            merged.sort()
            rows: list[tuple[int, float]] = []
            found: set[str] = set()
            for distance, cid in merged:
                row = snap.row_of.get(cid)
                if row is not None and allowed[snap.chunk_incident[row]]:
                    rows.append((row, 1.0 - distance))
                    found.add(snap.chunks[row].incident_id)
            if len(found) >= k or exhausted:
                return rows
            n *= 4
