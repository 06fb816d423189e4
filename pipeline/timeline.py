"""Merge every source's events into one timeline: UTC, deduplicated, alert storms collapsed, threads folded,
stably ordered, every entry traceable to its source record.

The work is columnar (pandas) so a million events normalise in seconds; pydantic models are built only when
a caller asks for entries or events. Nothing is dropped: every input row is either a timeline entry, a
duplicate folded into one, or a member of a collapsed storm, and the counts say which
(``records_in == events + duplicates + collapsed + quarantined``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from pipeline.models import (
    Event,
    EventKind,
    EventRow,
    ParseOutput,
    Provenance,
    Quarantined,
    Source,
    TimelineEntry,
    TimelineStats,
)
from pipeline.settings import Settings

# Sources that observe systems (monitoring) vs. sources that page people about what monitoring saw.
_MONITORS = (Source.ALERTMANAGER.value, Source.GRAFANA.value)
_SOURCE_ORDER = {s.value: i for i, s in enumerate(Source)}
_FIELDS = list(EventRow._fields)
_MIN_SIGNAL_CHARS = 8  # shorter signals match only exactly ("alert1" is not part of "alert123")


@dataclass(frozen=True)
class Timeline:
    """The normalised timeline of one incident.

    ``frame`` holds one row per unique event (after exact-duplicate removal), in timeline order, with:
    ``merged_into`` (id of the entry that absorbed it, or None for entries), ``count``/``last_ts_ns`` for
    collapsed storms, ``merged_ids`` and ``also_seen_in`` on entries, and ``parent_id`` on folded replies.
    """

    incident_id: str
    frame: pd.DataFrame
    quarantine: list[Quarantined]
    stats: TimelineStats

    @cached_property
    def known_ids(self) -> frozenset[str]:
        """Every id a draft may cite: entries, and events folded into them."""
        return frozenset(self.frame["id"].tolist())

    @cached_property
    def entry_frame(self) -> pd.DataFrame:
        return self.frame[self.frame["merged_into"].isna()]

    def entries(self) -> list[TimelineEntry]:
        return [_entry(r) for r in self.entry_frame.to_dict("records")]

    def events(self, kinds: Iterable[EventKind] | None = None, *, entries_only: bool = True) -> list[Event]:
        """Events in timeline order, optionally of some kinds only."""
        frame = self.entry_frame if entries_only else self.frame
        if kinds is not None:
            frame = frame[frame["kind"].isin([k.value for k in kinds])]
        return [_event(r) for r in frame.to_dict("records")]

    def event(self, event_id: str) -> Event | None:
        match = self.frame[self.frame["id"] == event_id]
        if match.empty:
            return None
        return _event(match.to_dict("records")[0])

    def resolve_id(self, event_id: str) -> str | None:
        """The entry id that stands for an event id (itself, or the entry it was folded into)."""
        match = self.frame[self.frame["id"] == event_id]
        if match.empty:
            return None
        merged_into = match["merged_into"].iloc[0]
        return event_id if merged_into is None or pd.isna(merged_into) else str(merged_into)


def build_timeline(
    incident_id: str,
    outputs: Sequence[ParseOutput],
    settings: Settings,
    extra_quarantine: Sequence[Quarantined] = (),
) -> Timeline:
    rows: list[EventRow] = [row for out in outputs for row in out.rows]
    quarantine = [q for out in outputs for q in out.quarantined] + list(extra_quarantine)
    records_in = len(rows) + len(quarantine)

    frame = _frame(rows)
    frame, exact_dupes = _drop_exact_duplicates(frame)
    frame = _order(frame)

    folds = _Folds(frame)
    cross_source = folds.merge_cross_source(settings.cross_source_window_s * 10**9)
    collapsed = folds.collapse_storms(settings.storm_window_s * 10**9, settings.storm_min_count)
    frame = _fold_threads(folds.apply(frame))

    stats = TimelineStats(
        records_in=records_in,
        events=int(frame["merged_into"].isna().sum()),
        duplicates=len(exact_dupes) + cross_source,
        collapsed=collapsed,
        quarantined=len(quarantine),
    )
    return Timeline(incident_id, frame, quarantine, stats)


# --- steps ---------------------------------------------------------------------------------------------


def _frame(rows: list[EventRow]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({f: pd.Series(dtype="int64" if f in ("ts_ns", "revision") else "object") for f in _FIELDS})
    columns = list(zip(*rows, strict=True))
    data = {f: columns[i] for i, f in enumerate(_FIELDS)}
    frame = pd.DataFrame(
        {f: pd.Series(v, dtype="int64" if f in ("ts_ns", "revision") else "object") for f, v in data.items()}
    )
    return frame


def _drop_exact_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Same id = same source record (re-delivered webhook, edited message, one record via two formats).

    The highest revision wins; on a tie the earliest-seen copy is kept. Sorting only the integer revision and
    hashing ids keeps this linear-ish on millions of rows (sorting by the id strings was the slowest step).
    """
    if frame.empty:
        return frame, []
    by_revision = frame.sort_values("revision", ascending=False, kind="stable")
    dup = by_revision["id"].duplicated(keep="first")
    dropped = by_revision.loc[dup, "id"].tolist()
    keep = np.sort(by_revision.index[~dup.to_numpy()].to_numpy())
    return frame.loc[keep], dropped


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    """Time, then source, then event id: the same events always come out in the same order, whatever order
    the files were read in. Ids are ``ev_`` + 16 hex digits, compared as integers for a numeric lexsort."""
    if frame.empty:
        return frame.reset_index(drop=True)
    source_rank = frame["source"].map(_SOURCE_ORDER).fillna(99).to_numpy(dtype=np.int64)
    id_key = np.fromiter((int(i[3:], 16) for i in frame["id"]), dtype=np.uint64, count=len(frame))
    order = np.lexsort((id_key, source_rank, frame["ts_ns"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def _signals_match(a: str, b: str) -> bool:
    if len(a) < _MIN_SIGNAL_CHARS or len(b) < _MIN_SIGNAL_CHARS:
        return a == b
    return a in b or b in a


_MAX_FUZZY_SIGNALS = 5000  # beyond this many distinct signals, match signals exactly (containment is O(S^2))


def _matching_signals(signals: list[str]) -> dict[str, list[str]]:
    """For each distinct signal, the signals it matches (itself included), longest-first order irrelevant."""
    if len(signals) > _MAX_FUZZY_SIGNALS:
        return {s: [s] for s in signals}
    return {s: [o for o in signals if o == s or _signals_match(s, o)] for s in signals}


@dataclass
class _Alert:
    pos: int
    id: str
    source: str
    kind: str
    signal: str
    ts_ns: int


class _Folds:
    """Cross-source merges and storm collapses, worked out in plain Python over the (small) alert subset and
    written back to the frame as whole columns."""

    def __init__(self, frame: pd.DataFrame) -> None:
        kinds = (EventKind.ALERT_FIRING.value, EventKind.ALERT_RESOLVED.value, EventKind.PAGE_TRIGGERED.value)
        subset = frame.loc[
            frame["kind"].isin(kinds) & frame["signal"].notna(), ["id", "source", "kind", "signal", "ts_ns"]
        ]
        columns = (subset[c].tolist() for c in ("id", "source", "kind", "signal", "ts_ns"))
        self.alerts = [
            _Alert(int(pos), str(i), str(src), str(kind), str(sig), int(ts))
            for pos, i, src, kind, sig, ts in zip(subset.index.tolist(), *columns, strict=True)
        ]
        self.merged_into: dict[int, str] = {}
        self.members: dict[int, list[str]] = {}
        self.also_seen_in: dict[int, list[str]] = {}
        self.count: dict[int, int] = {}
        self.last_ts: dict[int, int] = {}

    def _absorb(self, keeper: _Alert, member: _Alert) -> None:
        self.merged_into[member.pos] = keeper.id
        self.members.setdefault(keeper.pos, []).extend([member.id, *self.members.pop(member.pos, [])])

    def merge_cross_source(self, window_ns: int) -> int:
        """The same alert seen by two systems (Alertmanager and PagerDuty, Grafana and Opsgenie) is one entry:
        the earliest copy stays and lists where else it was seen.

        Alerts are indexed by signal, and signals that match each other (one contains the other) are worked
        out once per distinct signal, so the cost grows with alerts in the window, not with all pairs.
        """
        candidates = [a for a in self.alerts if a.kind != EventKind.ALERT_RESOLVED.value]
        by_signal: dict[str, list[_Alert]] = {}
        for a in candidates:
            by_signal.setdefault(a.signal, []).append(a)
        times = {sig: [a.ts_ns for a in alerts] for sig, alerts in by_signal.items()}
        partners = _matching_signals(list(by_signal))
        merged = 0
        for first in candidates:
            if first.pos in self.merged_into:
                continue
            seen = {first.source}
            for sig in partners[first.signal]:
                alerts = by_signal[sig]
                # walk forward from the first alert at first's time (indices: a tail slice would copy the list)
                for j in range(bisect_left(times[sig], first.ts_ns), len(alerts)):
                    other = alerts[j]
                    if other.ts_ns - first.ts_ns > window_ns:
                        break
                    if other.pos == first.pos or other.pos in self.merged_into or other.source in seen:
                        continue
                    if other.pos < first.pos and other.ts_ns == first.ts_ns:
                        continue  # a tie already had its chance to keep `first`
                    if first.source in _MONITORS or other.source in _MONITORS:
                        self._absorb(first, other)
                        self.also_seen_in.setdefault(first.pos, []).append(other.source)
                        seen.add(other.source)
                        merged += 1
        return merged

    def collapse_storms(self, window_ns: int, min_count: int) -> int:
        """Many alerts of one signal from one source, each within the window of the previous, become one entry."""
        groups: dict[tuple[str, str, str], list[_Alert]] = {}
        for a in self.alerts:
            if a.kind != EventKind.PAGE_TRIGGERED.value and a.pos not in self.merged_into:
                groups.setdefault((a.source, a.kind, a.signal), []).append(a)
        collapsed = 0
        for group in groups.values():
            run = [group[0]]
            for a in group[1:]:
                if a.ts_ns - run[-1].ts_ns > window_ns:
                    collapsed += self._collapse(run, min_count)
                    run = []
                run.append(a)
            collapsed += self._collapse(run, min_count)
        return collapsed

    def _collapse(self, run: list[_Alert], min_count: int) -> int:
        if len(run) < min_count:
            return 0
        keeper = run[0]
        for member in run[1:]:
            self._absorb(keeper, member)
        self.count[keeper.pos] = len(run)
        self.last_ts[keeper.pos] = run[-1].ts_ns
        return len(run) - 1

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        n = len(frame)
        merged_into: list[str | None] = [None] * n
        members: list[tuple[str, ...]] = [()] * n
        also: list[tuple[str, ...]] = [()] * n
        count = np.ones(n, dtype=np.int64)
        last_ts = frame["ts_ns"].to_numpy(dtype=np.int64).copy()
        for pos, keeper in self.merged_into.items():
            merged_into[pos] = keeper
        for pos, ids in self.members.items():
            members[pos] = tuple(ids)
        for pos, sources in self.also_seen_in.items():
            also[pos] = tuple(sources)
        for pos, c in self.count.items():
            count[pos] = c
            last_ts[pos] = self.last_ts[pos]
        return frame.assign(
            merged_into=pd.Series(merged_into, dtype="object", index=frame.index),
            merged_ids=pd.Series(members, dtype="object", index=frame.index),
            also_seen_in=pd.Series(also, dtype="object", index=frame.index),
            count=count,
            last_ts_ns=last_ts,
            parent_id=pd.Series([None] * n, dtype="object", index=frame.index),
        )


def _fold_threads(frame: pd.DataFrame) -> pd.DataFrame:
    """Replies sit directly under their parent (in reply order); orphans stay where their time puts them."""
    has_thread = frame["thread_id"].notna()
    if not has_thread.any():
        return frame
    ids = set(frame["id"].tolist())
    is_reply = has_thread & frame["thread_id"].isin(ids) & (frame["thread_id"] != frame["id"])
    frame.loc[is_reply, "parent_id"] = frame.loc[is_reply, "thread_id"]
    order_pos = pd.Series(np.arange(len(frame)), index=frame["id"].to_numpy())
    parent_pos = frame["parent_id"].map(order_pos)
    position = np.arange(len(frame))
    anchor = np.where(is_reply, parent_pos.fillna(0).to_numpy(), position)
    order = np.lexsort((position, is_reply.to_numpy(dtype=np.int8), anchor))  # by anchor, then parent first
    return frame.iloc[order].reset_index(drop=True)


# --- models on demand ---------------------------------------------------------------------------------


def _ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _entry(r: Mapping[Hashable, Any]) -> TimelineEntry:
    count = int(r["count"])
    parent = r["parent_id"]
    return TimelineEntry(
        id=r["id"],
        at=_ts(r["ts_ns"]),
        source=Source(r["source"]),
        kind=EventKind(r["kind"]),
        actor=r["actor"],
        text=r["text"],
        service=r["service"],
        severity=r["severity"],
        url=r["url"],
        count=count,
        last_at=_ts(r["last_ts_ns"]) if count > 1 else None,
        merged_ids=list(r["merged_ids"]),
        also_seen_in=[Source(s) for s in r["also_seen_in"]],
        parent_id=parent if isinstance(parent, str) else None,
        provenance=Provenance(file=r["file"], position=r["position"]),
    )


def _event(r: Mapping[Hashable, Any]) -> Event:
    values = {f: r[f] for f in _FIELDS}
    if not isinstance(values["attrs"], dict):
        values["attrs"] = None
    return Event.from_row(EventRow(**values))
