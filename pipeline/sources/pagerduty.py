"""PagerDuty: V3 webhooks and REST API v2 responses, one event model for both.

Accepted documents:

* V3 webhook ``{"event": {id, event_type, resource_type, occurred_at, agent, data}}``, or an array of them;
* ``GET /incidents/{id}`` ``{"incident": {...}}`` and ``GET /incidents`` ``{"incidents": [...]}``;
* ``GET /incidents/{id}/log_entries``, ``GET /log_entries``: ``{"log_entries": [...], limit, offset, more}``;
* ``GET /incidents/{id}/notes`` ``{"notes": [...]}``.

The same real-world action seen through two forms gets the same ``native_id`` so the timeline keeps one:

==================  =======================================================  ==========================
action              native_id                                                forms
==================  =======================================================  ==========================
trigger             ``incident:<incident id>:triggered``                     webhook, incident, log
resolve             ``incident:<incident id>:resolved``                      webhook, incident, log
acknowledge         ``incident:<incident id>:acknowledged:<epoch s>``        webhook, incident, log
unacknowledge       ``incident:<incident id>:unacknowledged:<epoch s>``      webhook, log
escalate            ``incident:<incident id>:escalated:<epoch s>``           webhook, log
reassign            ``incident:<incident id>:assigned:<epoch s>``            webhook, log
note                ``note:<note id>``                                       webhook, notes (+ log *)
anything else       ``webhook:<event id>`` / ``log:<log entry id>``          one form only
==================  =======================================================  ==========================

(*) An ``annotate_log_entry`` carries the note text but not the note id: it takes the id of the note with the
same text (and incident, within five minutes) found among the bundle's webhooks and notes responses, and
``incident:<incident id>:note:<epoch s>`` when there is none.

Where several forms hold the same action the richer one wins through ``revision``: webhook (2) over REST
incident/notes (1) over log entry (0); a webhook note whose text PagerDuty trimmed ranks lowest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from pipeline.errors import ParseError
from pipeline.models import EventKind, EventRow, ParseOutput, Source
from pipeline.models import event_id as make_event_id
from pipeline.sources.alertmanager import stripped_text
from pipeline.sources.base import (
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    fast_iso_ns,
    iso_to_ns,
    normalise_signal,
    require_dict,
    required_ts,
    short_str,
)

REV_LOG, REV_REST, REV_WEBHOOK = 0, 1, 2
NOTE_MATCH_WINDOW_NS = 300 * 10**9
NOTE_PREFIX_MIN_CHARS = 16  # a trimmed note text still identifies the note when at least this long
_NUMBERED_TITLE = re.compile(r"^\s*\[#(\d{1,9})\]\s*(.*)$", re.DOTALL)

# webhook event_type -> (kind, id action). Id actions keyed per incident make webhook and REST forms meet.
WEBHOOK_KINDS: dict[str, tuple[EventKind, str | None]] = {
    "incident.triggered": (EventKind.PAGE_TRIGGERED, "triggered"),
    "incident.acknowledged": (EventKind.ACKNOWLEDGED, "acknowledged"),
    "incident.unacknowledged": (EventKind.SYSTEM, "unacknowledged"),
    "incident.resolved": (EventKind.INCIDENT_RESOLVED, "resolved"),
    "incident.annotated": (EventKind.NOTE, "note"),
    "incident.escalated": (EventKind.ESCALATED, "escalated"),
    "incident.reassigned": (EventKind.ASSIGNED, "assigned"),
}
LOG_KINDS: dict[str, tuple[EventKind, str | None]] = {
    "trigger_log_entry": (EventKind.PAGE_TRIGGERED, "triggered"),
    "acknowledge_log_entry": (EventKind.ACKNOWLEDGED, "acknowledged"),
    "unacknowledge_log_entry": (EventKind.SYSTEM, "unacknowledged"),
    "resolve_log_entry": (EventKind.INCIDENT_RESOLVED, "resolved"),
    "annotate_log_entry": (EventKind.NOTE, "note"),
    "escalate_log_entry": (EventKind.ESCALATED, "escalated"),
    "assign_log_entry": (EventKind.ASSIGNED, "assigned"),
}
ONCE_PER_INCIDENT = frozenset({"triggered", "resolved"})
ACTION_WORDS = {
    "triggered": "Triggered",
    "acknowledged": "Acknowledged",
    "unacknowledged": "Unacknowledged",
    "resolved": "Resolved",
    "escalated": "Escalated",
    "assigned": "Reassigned",
}
_EMPTY_PAGE_KEYS = frozenset({"notes", "log_entries", "incidents", "limit", "offset", "more", "total"})


def _summary(ref: object) -> str | None:
    """``summary`` of a PagerDuty reference object ({id, type, summary, ...})."""
    return short_str(ref.get("summary")) if isinstance(ref, dict) else None


def _ts(record: Mapping[str, Any], key: str, ctx: ParseContext) -> int:
    value = record.get(key)
    if value is None:
        raise ParseError(f"missing timestamp {key!r}")
    return required_ts(value, key, ctx)


def _norm_note(text: str) -> str:
    return " ".join(text.split()).casefold()


# --- sniffing ----------------------------------------------------------------------------------------------


def _is_webhook(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    event = data.get("event")
    return (
        isinstance(event, dict)
        and isinstance(event.get("event_type"), str)
        and "." in event["event_type"]
        and ("occurred_at" in event or "resource_type" in event)
    )


def _first(value: object) -> object:
    return value[0] if isinstance(value, list) and value else None


def _is_incident(value: object) -> bool:
    return isinstance(value, dict) and ("incident_number" in value or value.get("type") == "incident")


def _is_rest(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    if "incident" in data:
        return _is_incident(data["incident"]) and "page" not in data
    for key in ("incidents", "log_entries", "notes"):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        if not items:
            return set(data) <= _EMPTY_PAGE_KEYS
        head = items[0]
        if key == "incidents":
            return _is_incident(head)
        if key == "log_entries":
            return isinstance(head, dict) and str(head.get("type", "")).endswith(("_log_entry", "_log_entry_reference"))
        return (
            isinstance(head, dict) and "content" in head and "id" in head and ("user" in head or "created_at" in head)
        )
    return False


# --- incidents ---------------------------------------------------------------------------------------------

# A NamedTuple built from a full tuple of its fields, without its Python-level __new__ (the same instance).
_new_tuple = tuple.__new__


class _Incident(NamedTuple):
    """An incident as events see it (immutable; a NamedTuple because it is built once per log entry and a frozen
    dataclass costs ~1 µs to construct)."""

    id: str
    number: int | None = None
    title: str | None = None
    status: str | None = None
    urgency: str | None = None
    priority: str | None = None
    service: str | None = None
    url: str | None = None

    @property
    def label(self) -> str:
        name = self.title or self.id
        return f"#{self.number} {name}" if self.number is not None else name

    @property
    def severity(self) -> str | None:
        return self.urgency or self.priority

    def attrs(self) -> dict[str, Any]:
        return {
            "incident_id": self.id,
            "incident_number": self.number,
            "status": self.status,
            "urgency": self.urgency,
            "priority": self.priority,
        }


def _split_title(summary: str | None) -> tuple[int | None, str | None]:
    """'[#1234] The server is on fire.' -> (1234, 'The server is on fire.')."""
    if summary is None:
        return None, None
    if "[#" not in summary:  # the pattern needs it: no match
        return None, summary
    if summary.startswith("[#"):  # the common shape without the regex: "[#", 1-9 ASCII digits, "]", title
        end = summary.find("]", 2)
        digits = summary[2:end]
        if 2 < end <= 11 and digits.isascii() and digits.isdigit():
            return int(digits), summary[end + 1 :].strip() or None
    match = _NUMBERED_TITLE.match(summary)
    if match is None:
        return None, summary
    return int(match.group(1)), match.group(2).strip() or None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12 else None


def _incident(obj: object) -> _Incident:
    """A full incident object (webhook ``data`` of incident.* events, REST ``incident``) or a reference."""
    record = require_dict(obj, "incident")
    get = record.get
    incident_id = short_str(get("id"), 128)
    if incident_id is None:
        raise ParseError("missing or non-string field 'incident id'")
    ref_number, ref_title = _split_title(short_str(get("summary"), 1024))
    number = _int(get("number")) or _int(get("incident_number")) or ref_number
    # A reference ({id, type, summary}) lacks the rest: skip the calls that would turn None into None.
    title, status, urgency = get("title"), get("status"), get("urgency")
    priority, service, url = get("priority"), get("service"), get("html_url")
    incident: _Incident = _new_tuple(
        _Incident,
        (
            incident_id,  # id
            number,  # number
            (None if title is None else short_str(title, 1024)) or ref_title,  # title
            None if status is None else short_str(status, 32),  # status
            None if urgency is None else short_str(urgency, 32),  # urgency
            None if priority is None else _summary(priority),  # priority
            None if service is None else _summary(service),  # service
            None if url is None else short_str(url, 2048),  # url
        ),
    )
    return incident


def _native(incident: _Incident, action: str, ts_ns: int) -> str:
    if action in ONCE_PER_INCIDENT:
        return f"incident:{incident.id}:{action}"
    return f"incident:{incident.id}:{action}:{ts_ns // 10**9}"


def _names(refs: object) -> str:
    if not isinstance(refs, list):
        return ""
    names = [name for ref in refs[:10] if (name := _summary(ref))]
    return ", ".join(names)


# --- notes known in the bundle (for annotate_log_entry, which lacks the note id) ---------------------------


@dataclass(frozen=True, slots=True)
class _KnownNote:
    native_id: str
    incident_id: str | None
    text: str
    ts_ns: int


def _known_note(
    note_id: object, incident_id: str | None, content: object, ts: object, ctx: ParseContext
) -> _KnownNote | None:
    nid = short_str(note_id, 128)
    text = _norm_note(clean_text(content))
    if nid is None or not text:
        return None
    try:
        ts_ns = iso_to_ns(ts, ctx.default_tz)
    except ParseError:
        return None
    return _KnownNote(f"note:{nid}", incident_id, text, ts_ns)


def _collect_notes(docs: Iterable[SourceDocument], ctx: ParseContext) -> list[_KnownNote]:
    known: list[_KnownNote] = []
    for doc in docs:
        data = doc.data
        envelopes = data if isinstance(data, list) else [data]
        for envelope in envelopes:
            if not _is_webhook(envelope):
                continue
            event = envelope["event"]
            note = event.get("data")
            if event.get("event_type") != "incident.annotated" or not isinstance(note, dict):
                continue
            incident = note.get("incident")
            incident_id = short_str(incident.get("id"), 128) if isinstance(incident, dict) else None
            found = _known_note(note.get("id"), incident_id, note.get("content"), event.get("occurred_at"), ctx)
            if found is not None:
                known.append(found)
        notes = data.get("notes") if isinstance(data, dict) else None
        for note in notes if isinstance(notes, list) else []:
            if isinstance(note, dict):
                found = _known_note(note.get("id"), None, note.get("content"), note.get("created_at"), ctx)
                if found is not None:
                    known.append(found)
    return known


def _same_text(a: str, b: str) -> bool:
    if a == b:
        return True
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    return len(shorter) >= NOTE_PREFIX_MIN_CHARS and longer.startswith(shorter.rstrip(".… "))


def _match_note(known: Sequence[_KnownNote], incident_id: str, text: str, ts_ns: int) -> str | None:
    wanted = _norm_note(text)
    best: tuple[int, str] | None = None
    for note in known:
        if note.incident_id not in (None, incident_id) or not _same_text(note.text, wanted):
            continue
        gap = abs(note.ts_ns - ts_ns)
        if gap <= NOTE_MATCH_WINDOW_NS and (best is None or gap < best[0]):
            best = (gap, note.native_id)
    return best[1] if best else None


# --- records -----------------------------------------------------------------------------------------------


def _action_text(action: str | None, event_type: str, incident: _Incident) -> str:
    word = ACTION_WORDS.get(action or "")
    if word is None:
        word = event_type.split(".", 1)[-1].replace("_", " ").replace(".", " ").capitalize()
    return f"{word}: {incident.label}"


def _webhook_row(envelope: object, ctx: ParseContext) -> dict[str, Any]:
    event = require_dict(require_dict(envelope, "webhook payload").get("event"), "event")
    event_type = short_str(event.get("event_type"), 128)
    event_id = short_str(event.get("id"), 128)
    if event_type is None or event_id is None:
        raise ParseError("webhook event has no event_type or id")
    ts_ns = _ts(event, "occurred_at", ctx)
    actor = _summary(event.get("agent"))
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    kind, action = WEBHOOK_KINDS.get(event_type, (EventKind.SYSTEM, None))

    if not event_type.startswith("incident."):
        name = short_str(data.get("summary")) or short_str(data.get("name")) or short_str(data.get("id"), 128) or ""
        return {
            "native_id": f"webhook:{event_id}",
            "ts_ns": ts_ns,
            "kind": EventKind.SYSTEM.value,
            "text": f"{event_type}: {name}".rstrip(": "),
            "actor": actor,
            "url": short_str(data.get("html_url"), 2048),
            "revision": REV_WEBHOOK,
            "attrs": {"event_type": event_type},
        }

    if data.get("type") == "incident":
        incident = _incident(data)
    elif isinstance(data.get("incident"), dict):
        incident = _incident(data["incident"])
    else:
        raise ParseError(f"{event_type} event carries no incident")

    row: dict[str, Any] = {
        "ts_ns": ts_ns,
        "kind": kind.value,
        "actor": actor,
        "service": incident.service,
        "severity": incident.severity,
        "url": incident.url,
        "revision": REV_WEBHOOK,
        "attrs": {**incident.attrs(), "event_type": event_type},
        "native_id": _native(incident, action, ts_ns) if action else f"webhook:{event_id}",
        "text": _action_text(action, event_type, incident),
    }
    if action == "triggered":
        row["signal"] = normalise_signal(incident.title)
    elif action == "assigned" and (names := _names(data.get("assignees"))):
        row["text"] += f" → {names}"
    elif action == "note":
        content = clean_text(data.get("content")).strip()
        if not content:
            raise ParseError("incident.annotated event has no note content")
        note_id = short_str(data.get("id"), 128) if data.get("type") == "incident_note" else None
        row["text"] = content
        row["native_id"] = f"note:{note_id}" if note_id else _native(incident, "note", ts_ns)
        row["revision"] = REV_LOG if data.get("trimmed") is True else REV_WEBHOOK
    return row


# LOG_KINDS with the kinds' string values (an enum's .value is a property lookup per call)
_LOG_KIND_VALUES: dict[str, tuple[str, str | None]] = {
    key: (kind.value, action) for key, (kind, action) in LOG_KINDS.items()
}
_SYSTEM_KIND: tuple[str, str | None] = (EventKind.SYSTEM.value, None)


class _Run:
    """Per-parse state shared by every log entry: context, the bundle's notes, and caches of pure results."""

    __slots__ = ("ctx", "default_tz", "known_notes", "signals", "source")

    def __init__(self, source: str, ctx: ParseContext, known_notes: Sequence[_KnownNote]) -> None:
        self.source = source
        self.ctx = ctx
        self.default_tz = ctx.default_tz
        self.known_notes = known_notes
        self.signals: dict[str | None, str | None] = {}  # incident title -> normalise_signal(title)


def _log_row(entry: object, run: _Run, file: str, position: str) -> EventRow:
    """One log entry as an EventRow (what OutputBuilder.add would append); raises ParseError on a bad entry."""
    record = require_dict(entry, "log entry")
    raw_type = short_str(record.get("type"), 128)
    entry_id = short_str(record.get("id"), 128)
    if raw_type is None:
        raise ParseError("missing or non-string field 'type'")
    if entry_id is None:
        raise ParseError("missing or non-string field 'id'")
    entry_type = raw_type.removesuffix("_reference")
    ts_ns = fast_iso_ns(record.get("created_at"), run.default_tz)
    if ts_ns is None:
        ts_ns = _ts(record, "created_at", run.ctx)  # the slow path, and its error
    agent = record.get("agent")
    actor = _summary(agent)
    kind, action = _LOG_KIND_VALUES.get(entry_type, _SYSTEM_KIND)
    reference = record.get("incident")
    incident = _incident(reference) if isinstance(reference, dict) else None
    if action is not None and incident is None:
        raise ParseError(f"{entry_type} has no incident reference")
    service = _summary(record.get("service"))
    if service is None and isinstance(agent, dict) and str(agent.get("type", "")).startswith("service"):
        service = actor
    summary = stripped_text(record.get("summary"))

    signal: str | None = None
    url = short_str(record.get("html_url"), 2048)
    if incident is None:
        severity = None
        attrs: dict[str, Any] = {"log_entry_type": entry_type}
    else:
        service = service or incident.service
        severity = incident.severity
        url = url or incident.url
        attrs = {
            "incident_id": incident.id,
            "incident_number": incident.number,
            "status": incident.status,
            "urgency": incident.urgency,
            "priority": incident.priority,
            "log_entry_type": entry_type,
        }  # {**incident.attrs(), "log_entry_type": entry_type}
    native_id = f"log:{entry_id}"
    text = summary or entry_type.replace("_", " ")
    if incident is not None and action is not None:
        if action == "note":
            channel = record.get("channel")
            channel = channel if isinstance(channel, dict) else {}
            content = clean_text(channel.get("content") or channel.get("summary")).strip()
            text = content or summary or "Note added"
            matched = _match_note(run.known_notes, incident.id, content, ts_ns) if content else None
            native_id = matched or _native(incident, "note", ts_ns)
        else:
            native_id = _native(incident, action, ts_ns)
            if action in ("triggered", "acknowledged", "resolved"):
                text = _action_text(action, entry_type, incident)
            if action == "triggered":
                title = incident.title
                signals = run.signals
                if title in signals:
                    signal = signals[title]
                else:
                    signal = signals[title] = normalise_signal(title)
    source = run.source
    # (id, source, native_id, ts_ns, kind, actor, text, service, severity, thread_id, url, file, position, signal,
    #  revision, attrs)
    row: EventRow = _new_tuple(
        EventRow,
        (
            make_event_id(source, native_id),
            source,
            native_id,
            ts_ns,
            kind,
            actor,
            text,
            service,
            severity,
            None,
            url,
            file,
            position,
            signal,
            REV_LOG,
            attrs,
        ),
    )
    return row


def _note_row(note: object, ctx: ParseContext) -> dict[str, Any]:
    record = require_dict(note, "note")
    note_id = short_str(record.get("id"), 128)
    if note_id is None:
        raise ParseError("missing or non-string field 'id'")
    content = clean_text(record.get("content")).strip()
    if not content:
        raise ParseError("note has no content")
    return {
        "native_id": f"note:{note_id}",
        "ts_ns": _ts(record, "created_at", ctx),
        "kind": EventKind.NOTE.value,
        "text": content,
        "actor": _summary(record.get("user")),
        "revision": REV_REST,
        "attrs": {"note_id": note_id},
    }


class PagerDutyParser:
    """PagerDuty V3 webhooks and REST incident / log_entries / notes responses."""

    source: ClassVar[Source] = Source.PAGERDUTY

    def sniff(self, doc: SourceDocument) -> bool:
        data = doc.data
        if isinstance(data, list):
            return _is_webhook(_first(data))
        return _is_webhook(data) or _is_rest(data)

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput:
        builder = OutputBuilder(self.source)
        run = _Run(self.source.value, ctx, _collect_notes(docs, ctx))
        for doc in docs:
            self._document(doc, ctx, builder, run)
        return builder.output()

    def _document(
        self,
        doc: SourceDocument,
        ctx: ParseContext,
        builder: OutputBuilder,
        run: _Run,
    ) -> None:
        data = doc.data
        if isinstance(data, list):
            if not data:
                builder.quarantine(file=doc.path, position=doc.where(), reason="empty array", record=data)
            for index, envelope in enumerate(data):
                self._one(doc, f"/{index}", envelope, builder, lambda e: _webhook_row(e, ctx))
            return
        if not isinstance(data, dict):
            reason = "not a PagerDuty webhook or REST response"
            builder.quarantine(file=doc.path, position=doc.where(), reason=reason, record=data)
            return
        if "event" in data:
            self._one(doc, "", data, builder, lambda e: _webhook_row(e, ctx))
        elif "incident" in data:
            self._incident(doc, "/incident", data["incident"], ctx, builder)
        elif "incidents" in data:
            for index, incident in enumerate(self._items(doc, data, "incidents", builder)):
                self._incident(doc, f"/incidents/{index}", incident, ctx, builder)
        elif "log_entries" in data:
            self._log_entries(doc, self._items(doc, data, "log_entries", builder), builder, run)
        elif "notes" in data:
            for index, note in enumerate(self._items(doc, data, "notes", builder)):
                self._one(doc, f"/notes/{index}", note, builder, lambda e: _note_row(e, ctx))
        else:
            reason = "not a PagerDuty webhook or REST response"
            builder.quarantine(file=doc.path, position=doc.where(), reason=reason, record=data)

    @staticmethod
    def _items(doc: SourceDocument, data: Mapping[str, Any], key: str, builder: OutputBuilder) -> list[Any]:
        items = data.get(key)
        if isinstance(items, list):
            return items
        builder.quarantine(file=doc.path, position=doc.where(f"/{key}"), reason=f"{key} is not an array", record=items)
        return []

    @staticmethod
    def _log_entries(doc: SourceDocument, entries: list[Any], builder: OutputBuilder, run: _Run) -> None:
        """Every log entry of one response; OutputBuilder.record spelt out (no context manager per entry)."""
        file = doc.path
        prefix = f"{doc.position} " if doc.position else ""  # doc.where(pointer) for a non-empty pointer
        append = builder.rows.append
        for index, entry in enumerate(entries):
            pointer = f"/log_entries/{index}"
            try:
                row = _log_row(entry, run, file, prefix + pointer)
            except ParseError as exc:
                builder.quarantine(file=file, position=doc.where(pointer), reason=str(exc), record=entry)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                reason = f"malformed record ({type(exc).__name__}: {str(exc)[:120]})"
                builder.quarantine(file=file, position=doc.where(pointer), reason=reason, record=entry)
            else:
                append(row)

    @staticmethod
    def _one(
        doc: SourceDocument,
        pointer: str,
        record: object,
        builder: OutputBuilder,
        make: Callable[[object], dict[str, Any]],
    ) -> None:
        with builder.record(doc, pointer, record):
            row = make(record)
            builder.add(file=doc.path, position=doc.where(pointer), **row)

    @staticmethod
    def _incident(doc: SourceDocument, pointer: str, obj: object, ctx: ParseContext, builder: OutputBuilder) -> None:
        """REST incident: triggered at created_at, current acknowledgements, resolved when it is resolved."""
        parsed: tuple[_Incident, dict[str, Any]] | None = None
        with builder.record(doc, pointer, obj):
            parsed = _incident(obj), require_dict(obj, "incident")
        if parsed is None:
            return
        incident, record = parsed
        common: dict[str, Any] = {
            "file": doc.path,
            "service": incident.service,
            "severity": incident.severity,
            "url": incident.url,
            "revision": REV_REST,
            "attrs": incident.attrs(),
        }
        with builder.record(doc, pointer, obj):
            ts_ns = _ts(record, "created_at", ctx)
            builder.add(
                native_id=_native(incident, "triggered", ts_ns),
                ts_ns=ts_ns,
                kind=EventKind.PAGE_TRIGGERED.value,
                text=_action_text("triggered", "", incident),
                position=doc.where(pointer),
                signal=normalise_signal(incident.title),
                **common,
            )
        acks = record.get("acknowledgements")
        for index, ack in enumerate(acks if isinstance(acks, list) else []):
            ack_pointer = f"{pointer}/acknowledgements/{index}"
            with builder.record(doc, ack_pointer, ack):
                ack_record = require_dict(ack, "acknowledgement")
                ack_ts = _ts(ack_record, "at", ctx)
                builder.add(
                    native_id=_native(incident, "acknowledged", ack_ts),
                    ts_ns=ack_ts,
                    kind=EventKind.ACKNOWLEDGED.value,
                    text=_action_text("acknowledged", "", incident),
                    position=doc.where(ack_pointer),
                    actor=_summary(ack_record.get("acknowledger")),
                    **common,
                )
        if incident.status == "resolved":
            with builder.record(doc, pointer, obj):
                key = "resolved_at" if record.get("resolved_at") else "last_status_change_at"
                resolved_ts = _ts(record, key, ctx)
                builder.add(
                    native_id=_native(incident, "resolved", resolved_ts),
                    ts_ns=resolved_ts,
                    kind=EventKind.INCIDENT_RESOLVED.value,
                    text=_action_text("resolved", "", incident),
                    position=doc.where(pointer),
                    actor=_summary(record.get("last_status_change_by")),
                    **common,
                )
