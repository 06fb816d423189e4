"""Opsgenie outgoing-webhook alert actions.

Payload: ``{action, alert: {alertId, message, tinyId, alias, tags, entity, priority, username, note,
createdAt (epoch ms), updatedAt (epoch ns)}, source: {name, type}, integrationName, ...}`` — one document per
delivery, or a JSON array of deliveries.

``Create`` becomes ``PAGE_TRIGGERED`` at ``createdAt`` with native id ``alert:<alertId>:created``; every other
action happens at ``updatedAt`` and gets ``alert:<alertId>:<action>:<updatedAt ns>``, so a re-delivered
webhook lands on the same event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pipeline.errors import ParseError
from pipeline.models import EventKind, EventRow, ParseOutput, Source, event_id
from pipeline.sources.base import (
    MAX_TEXT_CHARS,
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    epoch_to_ns,
    normalise_signal,
    require_dict,
)

ACTION_KINDS: dict[str, EventKind] = {
    "Create": EventKind.PAGE_TRIGGERED,
    "Acknowledge": EventKind.ACKNOWLEDGED,
    "Close": EventKind.INCIDENT_RESOLVED,
    "AddNote": EventKind.NOTE,
    "Escalate": EventKind.ESCALATED,
    "EscalateToNext": EventKind.ESCALATED,
    "AssignOwnership": EventKind.ASSIGNED,
    "TakeOwnership": EventKind.ASSIGNED,
}
ACTION_WORDS = {
    "Acknowledge": "Acknowledged",
    "Close": "Closed",
    "Escalate": "Escalated",
    "EscalateToNext": "Escalated",
    "AssignOwnership": "Assigned",
    "TakeOwnership": "Ownership taken",
    "UnAcknowledge": "Unacknowledged",
    "Delete": "Deleted",
}
MAX_TAGS = 20
_SERVICE_TAG = re.compile(r"^(?:service|svc|app|component)\s*[:=]\s*(\S.*)$", re.IGNORECASE)
_SERVICE_NAME_TAG = re.compile(r"^[a-z0-9][a-z0-9_.-]*-(?:api|service|svc|web|worker|db)$", re.IGNORECASE)
_PRIORITY = re.compile(r"^P?([1-5])$", re.IGNORECASE)


def _s(value: object, limit: int = 256) -> str | None:
    """A short, JSON-safe string, or None."""
    if type(value) is str and len(value) <= limit <= MAX_TEXT_CHARS and value.isascii():
        return value.strip() or None  # clean_text returns it unchanged, and the cuts below cannot shorten it
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = clean_text(value[: limit * 2]).strip()
    return text[:limit] or None


def _is_payload(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    alert = data.get("alert")
    return isinstance(data.get("action"), str) and isinstance(alert, dict) and "alertId" in alert


# Every text _PRIORITY matches, with its result: "1".."5", "p1".."p5", "P1".."P5" (a stripped text cannot end in
# the newline that "$" would also accept).
_PRIORITIES = {f"{prefix}{digit}": f"P{digit}" for prefix in ("", "p", "P") for digit in "12345"}


def _priority(value: object) -> str | None:
    text = _s(value, 8)
    if text is not None and text in _PRIORITIES:
        return _PRIORITIES[text]
    match = _PRIORITY.match(text) if text else None
    return f"P{match.group(1)}" if match else None


def _tags(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [tag for item in value[:MAX_TAGS] if (tag := _s(item, 128))]


def _service(alert: Mapping[str, Any], tags: Sequence[str]) -> str | None:
    entity = _s(alert.get("entity"))
    if entity:
        return entity
    for tag in tags:
        # ":" or "=" (resp. "-") is required by the pattern: the regex need not run on a tag without it
        match = _SERVICE_TAG.match(tag) if ":" in tag or "=" in tag else None
        if match:
            return match.group(1).strip()
        if "-" in tag and _SERVICE_NAME_TAG.match(tag):
            return tag
    return None


# ACTION_KINDS with the kinds' string values (an enum's .value is a property lookup per call)
_KIND_VALUES = {action: kind.value for action, kind in ACTION_KINDS.items()}
_SYSTEM = EventKind.SYSTEM.value
_new_row = tuple.__new__  # EventRow without its Python-level __new__ (same instance, all 16 fields given)


def _row(payload: object, source_value: str, file: str, position: str) -> EventRow:
    """One delivery as an EventRow (what OutputBuilder.add would append); raises ParseError on a bad one."""
    envelope = require_dict(payload, "webhook payload")
    action = _s(envelope.get("action"), 64)
    if action is None:
        raise ParseError("missing or non-string field 'action'")
    alert = require_dict(envelope.get("alert"), "alert")
    alert_id = _s(alert.get("alertId"), 128)
    if alert_id is None:
        raise ParseError("missing or non-string field 'alertId'")
    message = clean_text(alert.get("message")).strip()
    tiny_id = _s(alert.get("tinyId"), 32)
    label = message or (f"alert #{tiny_id}" if tiny_id else f"alert {alert_id}")
    source = envelope.get("source")
    actor = _s(alert.get("username")) or (_s(source.get("name")) if isinstance(source, dict) else None)
    tags = _tags(alert.get("tags"))
    priority = _priority(alert.get("priority"))
    kind = _KIND_VALUES.get(action, _SYSTEM)

    field = "createdAt" if action == "Create" else "updatedAt"
    if alert.get(field) is None:
        raise ParseError(f"{action} action has no alert.{field}")
    try:
        ts_ns = epoch_to_ns(alert.get(field))
    except ParseError as exc:
        raise ParseError(f"alert.{field}: {exc}") from None

    if action == "Create":
        native_id = f"alert:{alert_id}:created"
        text = label
    else:
        native_id = f"alert:{alert_id}:{action}:{ts_ns}"
        text = f"{ACTION_WORDS.get(action, action)}: {label}"
    if action == "AddNote":
        text = clean_text(alert.get("note")).strip() or f"Note added: {label}"
    elif action in ("AssignOwnership", "TakeOwnership") and (owner := _s(alert.get("owner"))):
        text += f" → {owner}"

    service = _service(alert, tags)
    signal = normalise_signal(message) if action == "Create" else None
    attrs = {
        "alert_id": alert_id,
        "tiny_id": tiny_id,
        "alias": _s(alert.get("alias")),
        "action": action,
        "priority": priority,
        "tags": tags,
        "integration": _s(envelope.get("integrationName")),
    }
    # (id, source, native_id, ts_ns, kind, actor, text, service, severity, thread_id, url, file, position, signal,
    #  revision, attrs)
    row: EventRow = _new_row(
        EventRow,
        (
            event_id(source_value, native_id),
            source_value,
            native_id,
            ts_ns,
            kind,
            actor,
            text,
            service,
            priority,
            None,
            None,
            file,
            position,
            signal,
            0,
            attrs,
        ),
    )
    return row


class OpsgenieParser:
    """Opsgenie webhook integration deliveries (alert actions)."""

    source: ClassVar[Source] = Source.OPSGENIE

    def sniff(self, doc: SourceDocument) -> bool:
        data = doc.data
        if isinstance(data, list):
            return bool(data) and _is_payload(data[0])
        return _is_payload(data)

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput:
        builder = OutputBuilder(self.source)
        source_value = self.source.value
        append = builder.rows.append
        for doc in docs:
            data = doc.data
            if isinstance(data, list) and not data:
                builder.quarantine(file=doc.path, position=doc.where(), reason="empty array", record=data)
            items = list(enumerate(data)) if isinstance(data, list) else [(None, data)]
            for index, payload in items:
                pointer = "" if index is None else f"/{index}"
                # OutputBuilder.record spelt out (no context manager per delivery): the same quarantine entries
                try:
                    row = _row(payload, source_value, doc.path, doc.where(pointer))
                except ParseError as exc:
                    builder.quarantine(file=doc.path, position=doc.where(pointer), reason=str(exc), record=payload)
                except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                    reason = f"malformed record ({type(exc).__name__}: {str(exc)[:120]})"
                    builder.quarantine(file=doc.path, position=doc.where(pointer), reason=reason, record=payload)
                else:
                    append(row)
        return builder.output()
