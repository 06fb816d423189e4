"""Opsgenie Alert API v2 responses, read by ``OpsgenieParser`` (``pipeline.sources.opsgenie``) beside webhooks.

Accepted documents (the raw responses, pages merged or not):

* ``GET /v2/alerts/{id}`` ``{"data": {alert}, "took", "requestId"}`` and ``GET /v2/alerts``
  ``{"data": [alert, ...], "paging"}`` — an alert carries ``createdAt``, ``updatedAt``, ``status`` and
  ``report: {ackTime, closeTime (ms since createdAt), acknowledgedBy, closedBy}``;
* ``GET /v2/alerts/{id}/logs`` ``{"data": [{log, type, owner, createdAt, offset}], "paging"}``;
* ``GET /v2/alerts/{id}/notes`` ``{"data": [{note, owner, createdAt, offset}], "paging"}``;
* any of these with an empty ``data`` array (an alert without notes), which holds no record.

Logs and notes do not name their alert. They belong to the alert response in the same folder (``a/b`` for
``a/b/logs.json``, ``x.zip!a/b`` for a zip member); when that folder holds none and the bundle holds exactly one
alert, to that one. Otherwise every record is quarantined, saying to keep the alert response beside them.

The same action seen through several forms gets one ``native_id``; ``revision`` picks the richest copy:

=====================  ==================================  ===============================================
action                 native_id                           forms (revision)
=====================  ==================================  ===============================================
creation               ``alert:<id>:created``              alert (1), "created" log (0), webhook Create (0)
first acknowledgement  ``alert:<id>:Acknowledge``          log (1: the audit trail), ``report.ackTime`` (0)
first close            ``alert:<id>:Close``                log (1), ``report.closeTime`` or ``updatedAt`` (0)
note                   ``alert:<id>:note:<createdAt ms>``  notes (1), note log (0)
any other log          ``alert:<id>:log:<offset>``         log (0)
=====================  ==================================  ===============================================

A log is classified by its words before any ":" (what follows is free text such as a note's body): notification
and unacknowledge logs are ``SYSTEM``; then created, acknowledg, close, note, escalat, assign/ownership.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Literal, NamedTuple

from pipeline.errors import ParseError
from pipeline.models import EventKind
from pipeline.sources.base import (
    MAX_TS_NS,
    MIN_TS_NS,
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    fast_iso_ns,
    normalise_signal,
    require_dict,
    required_ts,
    short_str,
)
from pipeline.sources.opsgenie_fields import alert_priority, alert_service, alert_tags

Shape = Literal["alert", "alerts", "logs", "notes", "empty"]
REV_LOW, REV_HIGH = 0, 1
_PAGE_KEYS = frozenset({"data", "paging", "took", "requestId"})
_MS = 1_000_000  # ns per ms
_UNPAIRED_HINT = "keep the alert response (GET /v2/alerts/{id}) beside its logs/notes"

# log classification, on the casefolded words before any ":"
_NOT_AN_ACTION = re.compile(r"notif|un-?acknowledg")
_LOG_ACTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("created", re.compile(r"\bcreated\b")),
    ("ack", re.compile(r"acknowledg")),
    ("close", re.compile(r"\bclos(?:e|ed|ing)\b")),
    ("note", re.compile(r"\bnotes?\b")),
    ("escalate", re.compile(r"escalat")),
    ("assign", re.compile(r"assign|ownership")),
)
_LOG_KINDS: dict[str, str] = {
    "created": EventKind.PAGE_TRIGGERED.value,
    "ack": EventKind.ACKNOWLEDGED.value,
    "close": EventKind.INCIDENT_RESOLVED.value,
    "note": EventKind.NOTE.value,
    "escalate": EventKind.ESCALATED.value,
    "assign": EventKind.ASSIGNED.value,
    "system": EventKind.SYSTEM.value,
}
# actions whose first log collapses onto the id the alert's report gives it
_ONCE = {"ack": ("Acknowledge", "Acknowledged"), "close": ("Close", "Closed")}


# --- sniffing ------------------------------------------------------------------------------------------------


def _is_alert(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("id"), str) and "tinyId" in value and "message" in value


def _is_entry(value: Mapping[str, Any], text_key: str) -> bool:
    return isinstance(value.get(text_key), str) and ("createdAt" in value or "offset" in value)


def shape(data: object) -> Shape | None:
    """Which Alert API response ``data`` is, judged by its first object record; None when it is none of them."""
    if not isinstance(data, dict):
        return None
    items = data.get("data")
    if isinstance(items, dict):
        return "alert" if _is_alert(items) else None
    if not isinstance(items, list):
        return None
    if not items:
        return "empty" if "requestId" in data and data.keys() <= _PAGE_KEYS else None
    head = next((item for item in items if isinstance(item, dict)), None)  # a broken first record hides nothing
    if head is None:
        return None
    if _is_alert(head):
        return "alerts"
    if _is_entry(head, "log"):
        return "logs"
    if _is_entry(head, "note"):
        return "notes"
    return None


# --- alerts --------------------------------------------------------------------------------------------------


class _Alert(NamedTuple):
    """What every event of one alert shares."""

    id: str
    label: str  # the message, or "alert #<tinyId>"
    signal: str | None
    service: str | None
    priority: str | None
    attrs: Mapping[str, Any]  # copied into each row's attrs, with the row's own keys added

    def row_attrs(self, **extra: Any) -> dict[str, Any]:
        return {**self.attrs, **extra}


def _alert(obj: object) -> _Alert:
    """An alert object of a Get/List alert response; raises ParseError when it has no id."""
    record = require_dict(obj, "alert")
    alert_id = short_str(record.get("id"), 128)
    if alert_id is None:
        raise ParseError("missing or non-string field 'id'")
    message = clean_text(record.get("message")).strip()
    tiny_id = short_str(record.get("tinyId"), 32)
    tags = alert_tags(record.get("tags"))
    priority = alert_priority(record.get("priority"))
    integration = record.get("integration")
    attrs = {
        "alert_id": alert_id,
        "tiny_id": tiny_id,
        "alias": short_str(record.get("alias")),
        "priority": priority,
        "tags": tags,
        "integration": short_str(integration.get("name")) if isinstance(integration, dict) else None,
        "status": short_str(record.get("status"), 32),
    }
    return _Alert(
        id=alert_id,
        label=message or (f"alert #{tiny_id}" if tiny_id else f"alert {alert_id}"),
        signal=normalise_signal(message),
        service=alert_service(record, tags),
        priority=priority,
        attrs=attrs,
    )


def _ts(record: Mapping[str, Any], key: str, ctx: ParseContext) -> int:
    """An ISO timestamp field that must be there (the common well-formed case without the error path)."""
    value = record.get(key)
    if value is None:
        raise ParseError(f"missing timestamp {key!r}")
    ns = fast_iso_ns(value, ctx.default_tz)
    return ns if ns is not None else required_ts(value, key, ctx)


def _after(created_ns: int, value: object, what: str) -> int:
    """``createdAt`` plus a report duration in milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"{what} is not a number of milliseconds: {str(value)[:40]!r}")
    if not math.isfinite(value) or value < 0 or value >= MAX_TS_NS // _MS:
        raise ParseError(f"{what} is not a plausible number of milliseconds: {value!r}")
    ts_ns = created_ns + int(value * _MS)
    if not MIN_TS_NS <= ts_ns < MAX_TS_NS:
        raise ParseError(f"{what} puts the event outside 2000..2100")
    return ts_ns


def _alert_events(
    doc: SourceDocument, pointer: str, obj: object, ctx: ParseContext, builder: OutputBuilder
) -> _Alert | None:
    """Creation, acknowledgement and close of one alert object; the alert (for pairing) when it has an id."""
    parsed: tuple[dict[str, Any], _Alert] | None = None
    with builder.record(doc, pointer, obj):
        record = require_dict(obj, "alert")
        parsed = record, _alert(record)
    if parsed is None:
        return None
    record, alert = parsed
    created: int | None = None
    common: dict[str, Any] = {"file": doc.path, "service": alert.service, "severity": alert.priority}
    with builder.record(doc, pointer, obj):
        created = _ts(record, "createdAt", ctx)
        builder.add(
            native_id=f"alert:{alert.id}:created",
            ts_ns=created,
            kind=EventKind.PAGE_TRIGGERED.value,
            text=alert.label,
            position=doc.where(pointer),
            actor=short_str(record.get("source")) or alert.attrs["integration"],
            signal=alert.signal,
            revision=REV_HIGH,
            attrs=alert.row_attrs(action="Create"),
            **common,
        )
    if created is None:
        return alert
    raw_report = record.get("report")
    report: Mapping[str, Any] = raw_report if isinstance(raw_report, dict) else {}
    for once, key, who in (("ack", "ackTime", "acknowledgedBy"), ("close", "closeTime", "closedBy")):
        if report.get(key) is None:
            continue
        action, word = _ONCE[once]
        with builder.record(doc, f"{pointer}/report", report):
            builder.add(
                native_id=f"alert:{alert.id}:{action}",
                ts_ns=_after(created, report[key], f"report.{key}"),
                kind=_LOG_KINDS[once],
                text=f"{word}: {alert.label}",
                position=doc.where(f"{pointer}/report/{key}"),
                actor=short_str(report.get(who)),
                revision=REV_LOW,
                attrs=alert.row_attrs(action=action),
                **common,
            )
    if report.get("closeTime") is None and record.get("status") == "closed":
        with builder.record(doc, f"{pointer}/updatedAt", obj):
            builder.add(
                native_id=f"alert:{alert.id}:Close",
                ts_ns=_ts(record, "updatedAt", ctx),
                kind=EventKind.INCIDENT_RESOLVED.value,
                text=f"Closed: {alert.label}",
                position=doc.where(f"{pointer}/updatedAt"),
                revision=REV_LOW,
                attrs=alert.row_attrs(action="Close", approximate_time="updatedAt: the report has no closeTime"),
                **common,
            )
    return alert


# --- pairing logs and notes with their alert ----------------------------------------------------------------


def _folder(path: str) -> str:
    """The folder of a bundle path; a zip member's folder keeps its zip ("x.zip!a/b/logs.json" -> "x.zip!a/b")."""
    zip_part, bang, inner = path.rpartition("!")
    return f"{zip_part}{bang}{PurePosixPath(inner).parent}"


class _Alerts:
    """The bundle's REST alerts, by folder, for the logs and notes that do not name theirs."""

    def __init__(self) -> None:
        self.by_folder: dict[str, dict[str, _Alert]] = {}
        self.by_id: dict[str, _Alert] = {}

    def add(self, doc: SourceDocument, alert: _Alert) -> None:
        self.by_folder.setdefault(_folder(doc.path), {})[alert.id] = alert
        self.by_id.setdefault(alert.id, alert)

    def owner(self, doc: SourceDocument, what: str) -> _Alert | str:
        """The alert ``doc``'s records belong to, or the quarantine reason when that cannot be told."""
        folder = _folder(doc.path)
        here = self.by_folder.get(folder, {})
        if len(here) == 1:
            return next(iter(here.values()))
        if len(here) > 1:
            return (
                f"Opsgenie {what} cannot be tied to an alert: {folder!r} holds {len(here)} alert responses; "
                f"keep each alert response (GET /v2/alerts/{{id}}) in its own folder beside its logs/notes"
            )
        if len(self.by_id) == 1:
            return next(iter(self.by_id.values()))
        held = "no alert response" if not self.by_id else f"{len(self.by_id)} alert responses, none in that folder"
        return f"Opsgenie {what} cannot be tied to an alert: the bundle holds {held}; {_UNPAIRED_HINT}"


# --- logs and notes ------------------------------------------------------------------------------------------


class _Log(NamedTuple):
    """One parsed log record, before its id is chosen (the first ack/close of an alert collapses)."""

    doc: SourceDocument
    pointer: str
    alert: _Alert
    ts_ns: int
    action: str
    actor: str | None
    text: str
    local_id: str  # the offset, or "<createdAt ms>:<index>"
    log_type: str | None


def _classify(text: str) -> str:
    """The action a log records, from its words before any ":" (after it comes free text, e.g. a note's body)."""
    head = text.split(":", 1)[0].casefold()
    if _NOT_AN_ACTION.search(head):
        return "system"
    for action, pattern in _LOG_ACTIONS:
        if pattern.search(head):
            return action
    return "system"


def _log(doc: SourceDocument, index: int, entry: object, alert: _Alert, ctx: ParseContext) -> _Log:
    record = require_dict(entry, "log record")
    ts_ns = _ts(record, "createdAt", ctx)
    text = clean_text(record.get("log")).strip()
    log_type = short_str(record.get("type"), 64)
    offset = short_str(record.get("offset"), 128)
    return _Log(
        doc=doc,
        pointer=f"/data/{index}",
        alert=alert,
        ts_ns=ts_ns,
        action=_classify(text),
        actor=short_str(record.get("owner")),
        text=text or f"Opsgenie log entry ({log_type or 'no text'})",
        local_id=offset or f"{ts_ns // _MS}:{index}",
        log_type=log_type,
    )


def _emit_logs(logs: Sequence[_Log], builder: OutputBuilder) -> None:
    """Each log as a row; the earliest ack and close of each alert take the ids the report's rows have."""
    first: dict[tuple[str, str], int] = {}
    for log in logs:
        if log.action in _ONCE:
            key = (log.alert.id, log.action)
            first[key] = min(first.get(key, log.ts_ns), log.ts_ns)
    for log in logs:
        alert = log.alert
        native_id = f"alert:{alert.id}:log:{log.local_id}"
        text, revision, signal = log.text, REV_LOW, None
        if log.action == "created":
            native_id, text, signal = f"alert:{alert.id}:created", alert.label, alert.signal
        elif log.action == "note":
            native_id = f"alert:{alert.id}:note:{log.ts_ns // _MS}"
        elif log.action in _ONCE and first[(alert.id, log.action)] == log.ts_ns:
            action, word = _ONCE[log.action]
            native_id, text, revision = f"alert:{alert.id}:{action}", f"{word}: {alert.label}", REV_HIGH
        builder.add(
            native_id=native_id,
            ts_ns=log.ts_ns,
            kind=_LOG_KINDS[log.action],
            text=text,
            file=log.doc.path,
            position=log.doc.where(log.pointer),
            actor=log.actor,
            service=alert.service,
            severity=alert.priority,
            signal=signal,
            revision=revision,
            attrs=alert.row_attrs(log=log.text, log_type=log.log_type, log_id=log.local_id),
        )


def _note(
    doc: SourceDocument, index: int, entry: object, alert: _Alert, ctx: ParseContext, builder: OutputBuilder
) -> None:
    record = require_dict(entry, "note record")
    ts_ns = _ts(record, "createdAt", ctx)
    text = clean_text(record.get("note")).strip()
    if not text:
        raise ParseError("note has no text")
    builder.add(
        native_id=f"alert:{alert.id}:note:{ts_ns // _MS}",
        ts_ns=ts_ns,
        kind=EventKind.NOTE.value,
        text=text,
        file=doc.path,
        position=doc.where(f"/data/{index}"),
        actor=short_str(record.get("owner")),
        service=alert.service,
        severity=alert.priority,
        revision=REV_HIGH,
        attrs=alert.row_attrs(action="AddNote", offset=short_str(record.get("offset"), 128)),
    )


def parse_rest(docs: Sequence[SourceDocument], ctx: ParseContext, builder: OutputBuilder) -> None:
    """Every record of the REST responses among ``docs`` (each of which ``shape`` recognised) into ``builder``."""
    alerts = _Alerts()
    entries: list[tuple[SourceDocument, Shape]] = []
    for doc in docs:
        kind = shape(doc.data)
        if kind == "alert":
            found = _alert_events(doc, "/data", doc.data["data"], ctx, builder)
            if found is not None:
                alerts.add(doc, found)
        elif kind == "alerts":
            for index, obj in enumerate(doc.data["data"]):
                found = _alert_events(doc, f"/data/{index}", obj, ctx, builder)
                if found is not None:
                    alerts.add(doc, found)
        elif kind in ("logs", "notes"):
            entries.append((doc, kind))
    logs: list[_Log] = []
    for doc, kind in entries:
        owner = alerts.owner(doc, kind)
        for index, entry in enumerate(doc.data["data"]):
            pointer = f"/data/{index}"
            if isinstance(owner, str):
                builder.quarantine(file=doc.path, position=doc.where(pointer), reason=owner, record=entry)
                continue
            with builder.record(doc, pointer, entry):
                if kind == "logs":
                    logs.append(_log(doc, index, entry, owner, ctx))
                else:
                    _note(doc, index, entry, owner, ctx, builder)
    _emit_logs(logs, builder)
