"""The lexical side of the similar-incident index, and the catalog that makes the whole index consistent.

A *snapshot* is an immutable directory holding the catalog (incident id -> current version and metadata), the
current chunks (id, incident, section, text) and a bm25s index over them. Writers build a new snapshot in a
temporary directory, rename it into place and then switch the one-line ``CURRENT`` pointer atomically; readers
load whatever ``CURRENT`` names. Chunks that Chroma returns are kept only if the reader's snapshot lists them,
so a document half-way through being replaced is never visible: readers see its old version or its new one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import bm25s  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
from bm25s.stopwords import STOPWORDS_EN  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.atomic import fsync_dir
from pipeline.errors import IndexStoreError
from pipeline.index_docs import Visibility, date_int, norm_label, norm_severity

SNAPSHOT_FORMAT = 1
_POINTER = "CURRENT"


# --- filters ----------------------------------------------------------------------------------------------------


class SearchFilters(BaseModel):
    """All given conditions must hold. Labels compare case-insensitively; dates are inclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str | None = None
    severity: str | None = None
    tag: str | None = None
    since: date | None = None
    until: date | None = None

    @model_validator(mode="after")
    def _range(self) -> SearchFilters:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")
        return self


# --- tokenizer --------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(STOPWORDS_EN) | {"we", "our", "were", "was", "has", "had", "have", "which", "from", "after"}


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers, English stop words removed, plural -s folded."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


# --- catalog ----------------------------------------------------------------------------------------------------


class CatalogEntry(BaseModel):
    """One incident's current version and the metadata every hit reports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str
    version: str  # the document's content hash
    title: str
    date: dt.date | None = None
    services: tuple[str, ...] = ()
    severity: str | None = None
    tags: tuple[str, ...] = ()
    visibility: Visibility
    teams: tuple[str, ...] = ()
    source: str
    seq: int = Field(description="Write generation that stored this version.")


@dataclass(frozen=True, slots=True)
class ChunkRow:
    id: str
    incident_id: str
    section: str
    text: str


@dataclass
class Snapshot:
    """A consistent, read-only view: catalog + current chunks + BM25 over them."""

    name: str
    seq: int
    model: str
    entries: dict[str, CatalogEntry]
    chunks: list[ChunkRow]
    bm25: Any = None  # bm25s.BM25, or None when there are no chunks
    row_of: dict[str, int] = field(init=False)
    chunk_incident: npt.NDArray[np.int32] = field(init=False)
    _order: list[str] = field(init=False)
    _position: dict[str, int] = field(init=False)
    _ids: npt.NDArray[np.object_] = field(init=False)
    open_chunks: int = field(init=False)  # chunks of incidents that are not restricted
    _restricted: npt.NDArray[np.bool_] = field(init=False)
    _dates: npt.NDArray[np.int64] = field(init=False)
    _severity: list[str | None] = field(init=False)
    _by_label: dict[tuple[str, str], npt.NDArray[np.int64]] = field(init=False)

    def __post_init__(self) -> None:
        self._order = list(self.entries)
        self._position = position = {incident: i for i, incident in enumerate(self._order)}
        self.row_of = {chunk.id: i for i, chunk in enumerate(self.chunks)}
        self._ids = np.array([chunk.id for chunk in self.chunks], dtype=object)
        self.chunk_incident = np.fromiter(
            (position[c.incident_id] for c in self.chunks), dtype=np.int32, count=len(self.chunks)
        )
        entries = [self.entries[i] for i in self._order]
        self._restricted = np.array([e.visibility == "restricted" for e in entries], dtype=bool)
        self.open_chunks = int((~self._restricted[self.chunk_incident]).sum()) if self.chunks else 0
        self._dates = np.array([date_int(e.date) if e.date else -1 for e in entries], dtype=np.int64)
        self._severity = [e.severity for e in entries]
        labels: dict[tuple[str, str], list[int]] = {}
        for i, e in enumerate(entries):
            for kind, values in (("service", e.services), ("tag", e.tags), ("team", e.teams)):
                for value in values:
                    labels.setdefault((kind, value), []).append(i)
        self._by_label = {key: np.array(rows, dtype=np.int64) for key, rows in labels.items()}

    @classmethod
    def empty(cls, model: str) -> Snapshot:
        return cls(name="", seq=0, model=model, entries={}, chunks=[])

    def _label_mask(self, kind: str, value: str) -> npt.NDArray[np.bool_]:
        mask = np.zeros(len(self._order), dtype=bool)
        rows = self._by_label.get((kind, norm_label(value)))
        if rows is not None:
            mask[rows] = True
        return mask

    def incident_mask(
        self, filters: SearchFilters | None, teams: Sequence[str], exclude: Sequence[str]
    ) -> npt.NDArray[np.bool_]:
        """Which incidents this caller may see and the filters admit (the same rules as the Chroma `where`)."""
        allowed = np.ones(len(self._order), dtype=bool)
        team_ok = np.zeros(len(self._order), dtype=bool)
        for team in teams:
            team_ok |= self._label_mask("team", team)
        allowed &= ~self._restricted | team_ok
        if filters is not None:
            if filters.service:
                allowed &= self._label_mask("service", filters.service)
            if filters.tag:
                allowed &= self._label_mask("tag", filters.tag)
            if filters.severity:
                wanted = norm_severity(filters.severity)
                allowed &= np.array([s == wanted for s in self._severity], dtype=bool)
            if filters.since:
                allowed &= self._dates >= date_int(filters.since)
            if filters.until:
                allowed &= (self._dates >= 0) & (self._dates <= date_int(filters.until))
        for incident in exclude:
            if (row := self._position.get(incident)) is not None:
                allowed[row] = False
        return allowed

    def chunk_ids(self, allowed: npt.NDArray[np.bool_], *, restricted: bool) -> list[str]:
        """Ids of the chunks of `allowed` incidents that are (or are not) restricted."""
        rows = np.flatnonzero(allowed[self.chunk_incident] & (self._restricted[self.chunk_incident] == restricted))
        ids: list[str] = self._ids[rows].tolist()
        return ids

    def any_restricted(self, allowed: npt.NDArray[np.bool_]) -> bool:
        """Does `allowed` (an incident mask) admit any restricted incident?"""
        return bool((allowed & self._restricted).any())

    def lexical(self, query: str, limit: int, allowed: npt.NDArray[np.bool_]) -> list[tuple[int, float]]:
        """Top `limit` (chunk row, BM25 score) among chunks the caller may see; chunks with no query term are
        not hits. The mask is applied before ranking, so restricted chunks never take a place."""
        if self.bm25 is None or not self.chunks:
            return []
        ids = self.bm25.get_tokens_ids(tokenize(query))
        if not ids:
            return []
        scores = np.asarray(self.bm25.get_scores_from_ids(ids), dtype=np.float32)
        scores[~allowed[self.chunk_incident]] = 0.0
        hits = np.flatnonzero(scores > 0)
        if len(hits) > limit:
            hits = hits[np.argpartition(-scores[hits], limit - 1)[:limit]]
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        return [(int(row), float(scores[row])) for row in hits]


# --- storage ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool) -> Iterator[None]:
    """flock on a fresh descriptor: excludes other threads as well as other processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class SwapLock:
    """Readers share it while they read CURRENT and query Chroma; a writer takes it exclusively to delete chunks
    that old snapshots still list. flock has no writer preference, so a writer first closes a gate that readers
    pass on the way in: under constant search load the writer waits for in-flight searches only, never starves."""

    def __init__(self, directory: Path) -> None:
        self._gate = directory / "gate.lock"
        self._swap = directory / "swap.lock"

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            with file_lock(self._gate, shared=True):
                stack.enter_context(file_lock(self._swap, shared=True))
            yield  # the gate is open again; the swap lock is held until the caller is done

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with file_lock(self._gate, shared=False), file_lock(self._swap, shared=False):
            yield


def _write_file(path: Path, data: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def current_name(root: Path) -> str | None:
    pointer = root / _POINTER
    try:
        return pointer.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexStoreError(f"cannot read the lexical index pointer {pointer}: {exc}") from exc


def build_bm25(chunks: Sequence[ChunkRow], entries: dict[str, CatalogEntry]) -> Any:
    if not chunks:
        return None
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
    retriever = bm25s.BM25()
    corpus = [tokenize(f"{entries[c.incident_id].title}\n{c.text}") for c in chunks]
    retriever.index(corpus, show_progress=False)
    return retriever


def write_snapshot(root: Path, snapshot: Snapshot) -> None:
    """Write `snapshot` as root/<name>, then point CURRENT at it (each step atomic; old snapshots remain)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / snapshot.name
    tmp = root / f".tmp-{snapshot.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        meta = {
            "format": SNAPSHOT_FORMAT,
            "name": snapshot.name,
            "seq": snapshot.seq,
            "model": snapshot.model,
            "incidents": [e.model_dump(mode="json") for e in snapshot.entries.values()],
            "chunks": {
                "id": [c.id for c in snapshot.chunks],
                "incident": [c.incident_id for c in snapshot.chunks],
                "section": [c.section for c in snapshot.chunks],
                "text": [c.text for c in snapshot.chunks],
            },
        }
        _write_file(tmp / "catalog.json", json.dumps(meta, ensure_ascii=False))
        if snapshot.bm25 is not None:
            snapshot.bm25.save(str(tmp / "bm25"), show_progress=False)
            for file in (tmp / "bm25").iterdir():
                with file.open("rb") as handle:
                    os.fsync(handle.fileno())
        fsync_dir(tmp)
        tmp.rename(final)
        pointer_tmp = root / f".{_POINTER}.{snapshot.name}.tmp"
        _write_file(pointer_tmp, snapshot.name + "\n")
        pointer_tmp.replace(root / _POINTER)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_snapshot(root: Path, name: str) -> Snapshot:
    """Load root/<name>; any damage becomes an IndexStoreError naming the path."""
    path = root / name
    try:
        meta = json.loads((path / "catalog.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown snapshot format {meta.get('format') if isinstance(meta, dict) else meta!r}")
        entries = {e["incident_id"]: CatalogEntry.model_validate(e) for e in meta["incidents"]}
        cols = meta["chunks"]
        chunks = [
            ChunkRow(i, inc, sec, text)
            for i, inc, sec, text in zip(cols["id"], cols["incident"], cols["section"], cols["text"], strict=True)
        ]
        if any(c.incident_id not in entries for c in chunks):
            raise ValueError("a chunk names an incident missing from the catalog")
        bm25 = None
        if chunks:
            bm25 = bm25s.BM25.load(str(path / "bm25"), show_progress=False)
            if int(bm25.scores["num_docs"]) != len(chunks):
                raise ValueError(f"BM25 holds {bm25.scores['num_docs']} chunks, the catalog {len(chunks)}")
        return Snapshot(
            name=str(meta["name"]),
            seq=int(meta["seq"]),
            model=str(meta["model"]),
            entries=entries,
            chunks=chunks,
            bm25=bm25,
        )
    except IndexStoreError:
        raise
    except Exception as exc:  # any damage: bad JSON, missing files, truncated arrays, wrong shapes
        raise IndexStoreError(
            f"the lexical index at {path} is missing or corrupted ({type(exc).__name__}: {exc}); "
            "delete that directory's CURRENT file and re-index, or rebuild the index"
        ) from exc


def prune_snapshots(root: Path, keep: str) -> None:
    """Remove snapshots other than `keep` (call only while no reader can still be loading them)."""
    for child in root.iterdir():
        if child.is_dir() and child.name != keep and (child.name.startswith(("snap-", ".tmp-"))):
            shutil.rmtree(child, ignore_errors=True)
        elif child.is_file() and child.name.startswith(f".{_POINTER}.") and child.name.endswith(".tmp"):
            child.unlink(missing_ok=True)
