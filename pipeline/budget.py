"""Token budgets with tiktoken (offline: the vocabularies come from `postmortem assets install`): counting, and
fitting an incident timeline into what a model can read."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import tiktoken
from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import AssetError
from pipeline.models import Event, EventKind
from pipeline.settings import Settings

DEFAULT_ENCODING = "o200k_base"


@lru_cache(maxsize=4)
def _encoding(name: str, cache_dir: str) -> tiktoken.Encoding:
    """Verified once per process and directory (the checksum of a 3 MB vocabulary is not free)."""
    from pipeline.assets import VOCABS

    vocab = next((v for v in VOCABS if v.encoding == name), None)
    path = Path(cache_dir) / vocab.cache_key if vocab else None
    if (
        vocab is None
        or path is None
        or not path.is_file()
        or hashlib.sha256(path.read_bytes()).hexdigest() != vocab.sha256
    ):
        raise AssetError(f"tokenizer vocabulary {name} is not installed: run `postmortem assets install`")
    os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    return tiktoken.get_encoding(name)


def encoding(settings: Settings, name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    return _encoding(name, str(settings.tiktoken_cache_dir))


def count_tokens(text: str, settings: Settings, name: str = DEFAULT_ENCODING) -> int:
    return len(encoding(settings, name).encode(text, disallowed_special=()))


# --- fitting the timeline into a model's budget ------------------------------------------------------------

LINE_TEXT_CHARS = 300  # one message longer than this is cut in what the model sees (the coverage report says so)
_SMALL_TALK = re.compile(r"^\s*(\+1|ack|ok(ay)?|thanks?( you)?|ty|lgtm|👍|on it|same|yes|no|np|k)\W*$", re.IGNORECASE)
_CONTEXT_KINDS = frozenset(
    {
        EventKind.ALERT_FIRING,
        EventKind.ALERT_RESOLVED,
        EventKind.PAGE_TRIGGERED,
        EventKind.ACKNOWLEDGED,
        EventKind.ESCALATED,
        EventKind.INCIDENT_RESOLVED,
        EventKind.STATUS_UPDATE,
        EventKind.STATUS_CHANGE,
        EventKind.DEPLOY,
        EventKind.TICKET_CREATED,
    }
)


class Coverage(BaseModel):
    """What the model saw of the timeline — never a silent cut."""

    model_config = ConfigDict(extra="forbid")

    total_events: int
    included: int
    summarised: int = 0
    left_out: int = 0
    left_out_by_kind: dict[str, int] = Field(default_factory=dict)
    cut_texts: int = 0
    transcript_tokens: int
    packed_tokens: int
    budget_tokens: int

    def describe(self) -> str:
        parts = [f"{self.included} of {self.total_events} events shown"]
        if self.summarised:
            parts.append(f"{self.summarised} summarised in notes")
        if self.left_out:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.left_out_by_kind.items(), key=lambda kv: -kv[1]))
            parts.append(f"{self.left_out} left out ({kinds})")
        return "; ".join(parts)


class PackedTimeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[str]
    included_ids: list[str]
    leftover_ids: list[str] = Field(description="Substantive events that did not fit, in time order.")
    coverage: Coverage

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def event_line(e: Event) -> str:
    """How one event appears to a model: id first (for citations), UTC time, source/kind, actor, text."""
    text = " ".join(e.text.split())
    if len(text) > LINE_TEXT_CHARS:
        text = text[: LINE_TEXT_CHARS - 1] + "…"
    actor = f" {e.actor}:" if e.actor else ":"
    return f"[{e.id}] {e.ts:%Y-%m-%d %H:%M:%S} {e.source.value}/{e.kind.value}{actor} {text}"


def _priority(e: Event, must: set[str]) -> int:
    if e.id in must:
        return 0
    if e.kind in _CONTEXT_KINDS:
        return 1
    if e.kind is EventKind.MESSAGE and not e.attrs.get("bot") and not _SMALL_TALK.match(e.text):
        return 2
    if e.kind in (EventKind.COMMENT, EventKind.NOTE, EventKind.MESSAGE):
        return 3
    return 4  # joins, subscriptions, labels: provenance only


def pack_timeline(
    events: Sequence[Event], must_include: set[str], budget_tokens: int, count: Callable[[str], int]
) -> PackedTimeline:
    """Choose what the model sees: cited facts first, then alerts/pages/status/changes, then substantive human
    messages, then the rest — each tier in time order — until the budget is spent. Output is in time order.
    Substantive events that did not fit are returned as `leftover_ids` for map-reduce summarisation."""
    lines = {e.id: event_line(e) for e in events}
    costs = {e.id: count(lines[e.id]) + 1 for e in events}
    transcript_tokens = sum(costs.values())
    ordered = sorted(events, key=lambda e: (_priority(e, must_include), e.ts))
    spent, chosen = 0, set()
    for e in ordered:
        if _priority(e, must_include) >= 4:
            continue
        if spent + costs[e.id] <= budget_tokens:
            chosen.add(e.id)
            spent += costs[e.id]
    leftover = [e for e in events if e.id not in chosen and _priority(e, must_include) <= 2]
    left_out = [e for e in events if e.id not in chosen]
    by_kind: dict[str, int] = {}
    for e in left_out:
        by_kind[e.kind.value] = by_kind.get(e.kind.value, 0) + 1
    in_order = [e for e in events if e.id in chosen]
    coverage = Coverage(
        total_events=len(events),
        included=len(in_order),
        left_out=len(left_out),
        left_out_by_kind=by_kind,
        cut_texts=sum(1 for e in in_order if len(" ".join(e.text.split())) > LINE_TEXT_CHARS),
        transcript_tokens=transcript_tokens,
        packed_tokens=spent,
        budget_tokens=budget_tokens,
    )
    return PackedTimeline(
        lines=[lines[e.id] for e in in_order],
        included_ids=[e.id for e in in_order],
        leftover_ids=[e.id for e in leftover],
        coverage=coverage,
    )


def chunk_by_tokens(items: Sequence[str], budget_tokens: int, count: Callable[[str], int]) -> list[list[int]]:
    """Indices of `items` grouped into consecutive chunks of at most `budget_tokens` each (a single item larger
    than the budget is a chunk of its own)."""
    chunks: list[list[int]] = []
    current: list[int] = []
    spent = 0
    for i, item in enumerate(items):
        cost = count(item) + 1
        if current and spent + cost > budget_tokens:
            chunks.append(current)
            current, spent = [], 0
        current.append(i)
        spent += cost
    if current:
        chunks.append(current)
    return chunks
