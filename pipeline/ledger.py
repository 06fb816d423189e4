"""The sweep ledger: what was drafted from which inputs, what failed and when to try again.

One SQLite file (``HOME/ledger.sqlite3``) in WAL mode, one connection per thread. Every change is one
transaction, so a process killed at any point leaves each row either as it was or as it became — never half
of each. The ledger is the source of truth for "drafted exactly once": drafts on disk whose row is not
``drafted`` are rewritten (same version number) by the next sweep.

Tables
* ``incidents`` — one row per incident: the snapshot hash of its inputs, the draft version for that hash, the
  drafter and prompt that wrote it, status (pending/drafted/failed), a short error, attempts, timestamps.
* ``drafts`` — one row per written draft version (an audit trail; a version is recorded once).
* ``sweep_state`` — per source, the start time of its last successful sweep (the ``closed_since`` cursor).
* ``aliases`` — other tools' ids of an incident (``jira-INC-42`` for ``pagerduty-P1`` when the PagerDuty
  incident links that ticket), so the same incident closing in a second tool re-gathers the first one's draft
  instead of starting another. The first incident to claim an alias keeps it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

Status = Literal["pending", "drafted", "failed"]
ERROR_MAX_CHARS = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    incident_id     TEXT PRIMARY KEY,
    source          TEXT NOT NULL,
    ref             TEXT NOT NULL,
    snapshot_hash   TEXT,
    version         INTEGER NOT NULL DEFAULT 0,
    drafted_hash    TEXT,
    drafted_version INTEGER NOT NULL DEFAULT 0,
    prompt_version  TEXT,
    drafter         TEXT,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'drafted', 'failed')),
    error           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    closed_at       TEXT,
    first_seen_at   TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    drafted_at      TEXT,
    next_attempt_at TEXT
);
CREATE INDEX IF NOT EXISTS incidents_due ON incidents (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS drafts (
    incident_id    TEXT NOT NULL,
    version        INTEGER NOT NULL,
    snapshot_hash  TEXT NOT NULL,
    drafter        TEXT,
    prompt_version TEXT,
    markdown       TEXT NOT NULL,
    json           TEXT NOT NULL,
    drafted_at     TEXT NOT NULL,
    PRIMARY KEY (incident_id, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    alias       TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    added_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sweep_state (
    source          TEXT PRIMARY KEY,
    last_success_at TEXT NOT NULL,
    last_error      TEXT,
    updated_at      TEXT NOT NULL
);
"""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def short_error(exc: BaseException | str) -> str:
    """One line, bounded: what went wrong, for a person reading the ledger."""
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    line = " ".join(text.split())
    return line if len(line) <= ERROR_MAX_CHARS else line[: ERROR_MAX_CHARS - 1] + "…"


@dataclass(frozen=True)
class IncidentRecord:
    incident_id: str
    source: str
    ref: str
    snapshot_hash: str | None
    version: int
    drafted_hash: str | None
    drafted_version: int
    prompt_version: str | None
    drafter: str | None
    status: Status
    error: str | None
    attempts: int
    closed_at: datetime | None
    first_seen_at: datetime
    updated_at: datetime
    drafted_at: datetime | None
    next_attempt_at: datetime | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> IncidentRecord:
        return cls(
            incident_id=row["incident_id"],
            source=row["source"],
            ref=row["ref"],
            snapshot_hash=row["snapshot_hash"],
            version=row["version"],
            drafted_hash=row["drafted_hash"],
            drafted_version=row["drafted_version"],
            prompt_version=row["prompt_version"],
            drafter=row["drafter"],
            status=row["status"],
            error=row["error"],
            attempts=row["attempts"],
            closed_at=_dt(row["closed_at"]),
            first_seen_at=_dt(row["first_seen_at"]) or _now(),
            updated_at=_dt(row["updated_at"]) or _now(),
            drafted_at=_dt(row["drafted_at"]),
            next_attempt_at=_dt(row["next_attempt_at"]),
        )


@dataclass(frozen=True)
class DraftRecord:
    incident_id: str
    version: int
    snapshot_hash: str
    drafter: str | None
    prompt_version: str | None
    markdown: str
    json: str
    drafted_at: datetime


class Ledger:
    """Thread-safe: each thread gets its own connection (sqlite3 connections must not be shared)."""

    def __init__(self, path: Path, *, timeout_s: float = 30.0) -> None:
        self.path = path
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn().executescript(_SCHEMA)  # idempotent; executescript commits on its own

    @classmethod
    def for_home(cls, home: Path) -> Ledger:
        return cls(home / "ledger.sqlite3")

    # --- connections and transactions ------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error: all of a change or none of it."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- incidents ---------------------------------------------------------------------------------------

    def get(self, incident_id: str) -> IncidentRecord | None:
        row = self._conn().execute("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone()
        return IncidentRecord.from_row(row) if row else None

    def all(self) -> list[IncidentRecord]:
        rows = self._conn().execute("SELECT * FROM incidents ORDER BY incident_id").fetchall()
        return [IncidentRecord.from_row(r) for r in rows]

    def due(self, now: datetime | None = None, *, max_attempts: int | None = None) -> list[IncidentRecord]:
        """Incidents to try again: failed ones whose back-off has passed (and that have attempts left), and
        pending ones — a pending row at the start of a sweep was left by a sweep that was stopped."""
        now = now or _now()
        rows = self._conn().execute(
            "SELECT * FROM incidents WHERE status = 'pending' OR "
            "(status = 'failed' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)) ORDER BY incident_id",
            (_iso(now),),
        )
        records = [IncidentRecord.from_row(r) for r in rows]
        if max_attempts is not None:
            records = [r for r in records if r.status == "pending" or r.attempts < max_attempts]
        return records

    def begin(
        self, incident_id: str, *, source: str, ref: str, snapshot_hash: str, closed_at: datetime | None
    ) -> IncidentRecord:
        """Mark an incident pending for a snapshot and choose its version: the drafted version + 1 for new
        inputs. A version that was chosen but never recorded as drafted is reused, so versions have no gaps
        and a stopped sweep never produces a second file for the same inputs."""
        now = _iso(_now())
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO incidents (incident_id, source, ref, snapshot_hash, version, status, attempts, "
                    "closed_at, first_seen_at, updated_at) VALUES (?, ?, ?, ?, 1, 'pending', 0, ?, ?, ?)",
                    (incident_id, source, ref, snapshot_hash, _iso(closed_at), now, now),
                )
            else:
                record = IncidentRecord.from_row(row)
                version = record.drafted_version + 1
                attempts = record.attempts if record.snapshot_hash == snapshot_hash else 0
                conn.execute(
                    "UPDATE incidents SET source = ?, ref = ?, snapshot_hash = ?, version = ?, status = 'pending', "
                    "attempts = ?, closed_at = COALESCE(?, closed_at), updated_at = ? WHERE incident_id = ?",
                    (source, ref, snapshot_hash, version, attempts, _iso(closed_at), now, incident_id),
                )
            out = conn.execute("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone()
        return IncidentRecord.from_row(out)

    def mark_drafted(
        self,
        incident_id: str,
        *,
        version: int,
        snapshot_hash: str,
        drafter: str,
        prompt_version: str | None,
        markdown: Path,
        json_path: Path,
    ) -> None:
        """Record a written draft: the incident row and the draft's audit row change together or not at all."""
        now = _iso(_now())
        with self._transaction() as conn:
            conn.execute(
                "UPDATE incidents SET snapshot_hash = ?, version = ?, drafted_hash = ?, drafted_version = ?, "
                "drafter = ?, prompt_version = ?, status = 'drafted', error = NULL, attempts = attempts + 1, "
                "updated_at = ?, drafted_at = ?, next_attempt_at = NULL WHERE incident_id = ?",
                (snapshot_hash, version, snapshot_hash, version, drafter, prompt_version, now, now, incident_id),
            )
            conn.execute(
                "INSERT OR REPLACE INTO drafts (incident_id, version, snapshot_hash, drafter, prompt_version, "
                "markdown, json, drafted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (incident_id, version, snapshot_hash, drafter, prompt_version, str(markdown), str(json_path), now),
            )

    def mark_failed(
        self,
        incident_id: str,
        error: BaseException | str,
        *,
        source: str,
        ref: str,
        closed_at: datetime | None = None,
        retry_after: timedelta = timedelta(0),
    ) -> IncidentRecord:
        """Record a failure (creating the row when the incident never got as far as a snapshot)."""
        now_dt = _now()
        now, next_at = _iso(now_dt), _iso(now_dt + retry_after)
        message = short_error(error)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO incidents (incident_id, source, ref, status, error, attempts, closed_at, first_seen_at, "
                "updated_at, next_attempt_at) VALUES (?, ?, ?, 'failed', ?, 1, ?, ?, ?, ?) "
                "ON CONFLICT (incident_id) DO UPDATE SET source = excluded.source, ref = excluded.ref, "
                "status = 'failed', error = excluded.error, attempts = incidents.attempts + 1, "
                "closed_at = COALESCE(excluded.closed_at, incidents.closed_at), updated_at = excluded.updated_at, "
                "next_attempt_at = excluded.next_attempt_at",
                (incident_id, source, ref, message, _iso(closed_at), now, now, next_at),
            )
            out = conn.execute("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone()
        return IncidentRecord.from_row(out)

    def restore_drafted(self, incident_id: str) -> None:
        """The incident's inputs are back to what was drafted: it is drafted again, with nothing to retry."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE incidents SET snapshot_hash = drafted_hash, version = drafted_version, status = 'drafted', "
                "error = NULL, attempts = 0, next_attempt_at = NULL, updated_at = ? "
                "WHERE incident_id = ? AND drafted_hash IS NOT NULL",
                (_iso(_now()), incident_id),
            )

    def drafts(self, incident_id: str | None = None) -> list[DraftRecord]:
        query = "SELECT * FROM drafts" + (" WHERE incident_id = ?" if incident_id else "") + " ORDER BY 1, 2"
        rows = self._conn().execute(query, (incident_id,) if incident_id else ()).fetchall()
        return [
            DraftRecord(
                incident_id=r["incident_id"],
                version=r["version"],
                snapshot_hash=r["snapshot_hash"],
                drafter=r["drafter"],
                prompt_version=r["prompt_version"],
                markdown=r["markdown"],
                json=r["json"],
                drafted_at=_dt(r["drafted_at"]) or _now(),
            )
            for r in rows
        ]

    # --- aliases ------------------------------------------------------------------------------------------

    def add_aliases(self, incident_id: str, aliases: Iterable[str]) -> list[str]:
        """Record other ids of ``incident_id``; returns those newly claimed. An alias that is already another
        incident's id or alias, or that names an incident of its own in the ledger, is left where it is."""
        claimed: list[str] = []
        now = _iso(_now())
        with self._transaction() as conn:
            for alias in aliases:
                if alias == incident_id:
                    continue
                if conn.execute("SELECT 1 FROM incidents WHERE incident_id = ?", (alias,)).fetchone():
                    continue
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO aliases (alias, incident_id, added_at) VALUES (?, ?, ?)",
                    (alias, incident_id, now),
                )
                if cursor.rowcount:
                    claimed.append(alias)
        return claimed

    def primary_of(self, incident_id: str) -> str:
        """The incident an id belongs to: itself, unless it is a recorded alias of another."""
        row = self._conn().execute("SELECT incident_id FROM aliases WHERE alias = ?", (incident_id,)).fetchone()
        return str(row["incident_id"]) if row else incident_id

    def aliases_of(self, incident_id: str) -> list[str]:
        rows = (
            self._conn()
            .execute("SELECT alias FROM aliases WHERE incident_id = ? ORDER BY alias", (incident_id,))
            .fetchall()
        )
        return [str(r["alias"]) for r in rows]

    # --- sweep state -------------------------------------------------------------------------------------

    def last_success(self, source: str) -> datetime | None:
        row = self._conn().execute("SELECT last_success_at FROM sweep_state WHERE source = ?", (source,)).fetchone()
        return _dt(row["last_success_at"]) if row else None

    def record_sweep(self, source: str, started_at: datetime) -> None:
        """A sweep of this source finished: the next one asks for incidents closed since it started."""
        now = _iso(_now())
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO sweep_state (source, last_success_at, last_error, updated_at) VALUES (?, ?, NULL, ?) "
                "ON CONFLICT (source) DO UPDATE SET last_success_at = excluded.last_success_at, last_error = NULL, "
                "updated_at = excluded.updated_at",
                (source, _iso(started_at), now),
            )

    def record_source_error(self, source: str, error: BaseException | str) -> None:
        """Listing a source failed: its cursor stays where it was, so nothing closed meanwhile is missed."""
        now = _iso(_now())
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO sweep_state (source, last_success_at, last_error, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (source) DO UPDATE SET last_error = excluded.last_error, updated_at = excluded.updated_at",
                (source, _iso(datetime.fromtimestamp(0, UTC)), short_error(error), now),
            )
