"""Opsgenie: outgoing-webhook alert actions here, Alert API v2 responses in ``pipeline.sources.opsgenie_rest``.

There is one parser per source, so ``OpsgenieParser`` sniffs both forms and hands REST responses (``{"data":
...}`` of GET /v2/alerts, /v2/alerts/{id}, …/logs, …/notes) to the REST module.

Webhook payload: ``{action, alert: {alertId, message, tinyId, alias, tags, entity, priority, username, note,
createdAt (epoch ms), updatedAt (epoch ns)}, source: {name, type}, integrationName, ...}`` — one document per
delivery, or a JSON array of deliveries.

``Create`` becomes ``PAGE_TRIGGERED`` at ``createdAt`` with native id ``alert:<alertId>:created`` (the id the REST
alert's creation gets too); every other action happens at ``updatedAt`` and gets
``alert:<alertId>:<action>:<updatedAt ns>``, so a re-delivered webhook lands on the same event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pipeline.errors import ParseError
from pipeline.models import EventKind, EventRow, ParseOutput, Source, event_id
from pipeline.sources import opsgenie_rest
from pipeline.sources.base import (
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    epoch_to_ns,
    normalise_signal,
    require_dict,
    short_str,
)
from pipeline.sources.opsgenie_fields import alert_priority, alert_service, alert_tags

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


def _is_payload(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    alert = data.get("alert")
    return isinstance(data.get("action"), str) and isinstance(alert, dict) and "alertId" in alert


# ACTION_KINDS with the kinds' string values (an enum's .value is a property lookup per call)
_KIND_VALUES = {action: kind.value for action, kind in ACTION_KINDS.items()}
_SYSTEM = EventKind.SYSTEM.value
_new_row = tuple.__new__  # EventRow without its Python-level __new__ (same instance, all 16 fields given)


def _row(payload: object, source_value: str, file: str, position: str) -> EventRow:
    """One delivery as an EventRow (what OutputBuilder.add would append); raises ParseError on a bad one."""
    envelope = require_dict(payload, "webhook payload")
    action = short_str(envelope.get("action"), 64)
    if action is None:
        raise ParseError("missing or non-string field 'action'")
    alert = require_dict(envelope.get("alert"), "alert")
    alert_id = short_str(alert.get("alertId"), 128)
    if alert_id is None:
        raise ParseError("missing or non-string field 'alertId'")
    message = clean_text(alert.get("message")).strip()
    tiny_id = short_str(alert.get("tinyId"), 32)
    label = message or (f"alert #{tiny_id}" if tiny_id else f"alert {alert_id}")
    source = envelope.get("source")
    actor = short_str(alert.get("username")) or (short_str(source.get("name")) if isinstance(source, dict) else None)
    tags = alert_tags(alert.get("tags"))
    priority = alert_priority(alert.get("priority"))
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
    elif action in ("AssignOwnership", "TakeOwnership") and (owner := short_str(alert.get("owner"))):
        text += f" → {owner}"

    service = alert_service(alert, tags)
    signal = normalise_signal(message) if action == "Create" else None
    attrs = {
        "alert_id": alert_id,
        "tiny_id": tiny_id,
        "alias": short_str(alert.get("alias")),
        "action": action,
        "priority": priority,
        "tags": tags,
        "integration": short_str(envelope.get("integrationName")),
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
    """Opsgenie webhook integration deliveries (alert actions) and Alert API v2 responses."""

    source: ClassVar[Source] = Source.OPSGENIE

    def sniff(self, doc: SourceDocument) -> bool:
        data = doc.data
        if isinstance(data, list):
            return bool(data) and _is_payload(data[0])
        return _is_payload(data) or opsgenie_rest.shape(data) is not None

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput:
        builder = OutputBuilder(self.source)
        rest_docs: list[SourceDocument] = []
        for doc in docs:
            if opsgenie_rest.shape(doc.data) is not None:
                rest_docs.append(doc)  # parsed together: logs and notes are paired with the alert beside them
            else:
                self._webhooks(doc, builder)
        if rest_docs:
            opsgenie_rest.parse_rest(rest_docs, ctx, builder)
        return builder.output()

    def _webhooks(self, doc: SourceDocument, builder: OutputBuilder) -> None:
        """Every delivery of one webhook document (or whatever else it holds, quarantined)."""
        source_value = self.source.value
        append = builder.rows.append
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
