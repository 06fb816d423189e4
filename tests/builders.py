"""Small builders for hand-made events in unit tests (parsers have their own fixture files)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.models import EventRow, ParseOutput, event_id

T0 = datetime(2025, 3, 4, 14, 0, tzinfo=UTC)


def ns(minutes: float) -> int:
    return int((T0.timestamp() + minutes * 60) * 1e9)


def row(
    native: str,
    minutes: float,
    kind: str = "message",
    *,
    source: str = "slack",
    text: str = "",
    actor: str | None = "alice",
    signal: str | None = None,
    service: str | None = None,
    thread: str | None = None,
    revision: int = 0,
    attrs: dict[str, Any] | None = None,
    file: str = "f.json",
) -> EventRow:
    return EventRow(
        id=event_id(source, native),
        source=source,
        native_id=native,
        ts_ns=ns(minutes),
        kind=kind,
        actor=actor,
        text=text or f"{kind} {native}",
        service=service,
        severity=None,
        thread_id=event_id(source, thread) if thread else None,
        url=None,
        file=file,
        position=f"/{native}",
        signal=signal,
        revision=revision,
        attrs=attrs,
    )


def output(*rows: EventRow) -> ParseOutput:
    return ParseOutput(list(rows), [])
