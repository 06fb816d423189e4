"""Atlassian Statuspage: incident updates from the subscriber webhook and the REST/public API.

Accepted documents (recognised by shape, never by file name):

* the subscriber webhook ``{meta, page, incident: {…, incident_updates: [...], components: [...]}}``;
* one incident object (manage API ``GET /v1/pages/{page}/incidents/{id}``);
* a list response ``{page, incidents: [...]}`` (public ``/api/v2/incidents.json``) or a bare array of incidents
  (manage API ``GET /v1/pages/{page}/incidents``).

Every entry of ``incident_updates`` (newest first in the payload) becomes a ``STATUS_UPDATE`` with attrs
``{status, incident_id, impact, title}`` at ``display_at`` (the time the page shows, which is the real time for a
backfilled update; it equals ``created_at`` otherwise), falling back to ``created_at``. The incident itself emits
nothing else: its first update marks its creation. An incident without updates yields one ``STATUS_UPDATE``
from its own status at ``created_at``.

Native ids are ``update:<update id>`` — the same in every delivery of the webhook and in the REST payloads,
so re-deliveries collapse; an edited update keeps its id and wins by ``revision`` (its ``updated_at``).
An incident without updates gets ``incident:<incident id>:<status>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pipeline.errors import ParseError
from pipeline.models import EventKind, ParseOutput, Source
from pipeline.sources.base import (
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    iso_to_ns,
    require_dict,
)
from pipeline.sources.base import (
    optional_ts as _opt_ts,
)
from pipeline.sources.base import (
    short_text as _short,
)

__all__ = ["StatuspageParser"]

ACTOR = "Statuspage"
MAX_NAME_CHARS = 256


def _is_incident(data: object) -> bool:
    """A Statuspage incident: updates list plus a page id / shortlink / impact (PagerDuty's has none of these)."""
    if not isinstance(data, dict) or "id" not in data:
        return False
    markers = ("shortlink" in data) + ("page_id" in data) + ("impact" in data)
    if isinstance(data.get("incident_updates"), list):
        return markers >= 1
    return markers == 3 and "status" in data


def _is_page(data: object) -> bool:
    return isinstance(data, dict) and "id" in data and ("url" in data or "name" in data or "status_indicator" in data)


def _shape(data: object) -> str | None:
    if isinstance(data, list):
        return "array" if data and _is_incident(data[0]) else None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("incident"), dict):
        if _is_incident(data["incident"]) and ("meta" in data or "page" in data):
            return "webhook"
        return None
    incidents = data.get("incidents")
    if isinstance(incidents, list):
        if incidents:
            return "list" if _is_incident(incidents[0]) else None
        return "list" if _is_page(data.get("page")) else None
    return "incident" if _is_incident(data) else None


def _component_name(components: object) -> str | None:
    if isinstance(components, list):
        for component in components:
            if isinstance(component, dict) and (name := _short(component.get("name"))):
                return name
    return None


class StatuspageParser:
    source: ClassVar[Source] = Source.STATUSPAGE

    def sniff(self, doc: SourceDocument) -> bool:
        return _shape(doc.data) is not None

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput:
        builder = OutputBuilder(self.source)
        for doc in docs:
            shape = _shape(doc.data)
            if shape == "webhook":
                self._incident(builder, doc, "/incident", doc.data["incident"], ctx)
            elif shape == "incident":
                self._incident(builder, doc, "", doc.data, ctx)
            elif shape in ("list", "array"):
                incidents = doc.data["incidents"] if shape == "list" else doc.data
                prefix = "/incidents" if shape == "list" else ""
                for index, incident in enumerate(incidents):
                    self._incident(builder, doc, f"{prefix}/{index}", incident, ctx)
            else:
                with builder.record(doc, "", doc.data):
                    raise ParseError("not a Statuspage incident, incident list or incident webhook")
        return builder.output()

    def _incident(self, b: OutputBuilder, doc: SourceDocument, ptr: str, incident: object, ctx: ParseContext) -> None:
        updates: list[Any] = []
        context: dict[str, Any] = {}
        with b.record(doc, ptr or "/", incident):
            record = require_dict(incident, "incident")
            incident_id = _short(record.get("id"), 128)
            if incident_id is None:
                raise ParseError("incident has no id")
            raw_updates = record.get("incident_updates")
            if raw_updates is not None and not isinstance(raw_updates, list):
                raise ParseError(f"incident {incident_id} incident_updates is not a list")
            updates = raw_updates or []
            context = {
                "incident_id": incident_id,
                "title": _short(record.get("name"), 500),
                "impact": _short(record.get("impact_override"), 32) or _short(record.get("impact"), 32),
                "service": _component_name(record.get("components")),
                "url": _short(record.get("shortlink"), 500),
            }
            if not updates:
                self._bare_incident(b, doc, ptr, record, context, ctx)
        for index, update in enumerate(updates):
            self._update(b, doc, f"{ptr}/incident_updates/{index}", update, context, ctx)

    def _bare_incident(
        self,
        b: OutputBuilder,
        doc: SourceDocument,
        ptr: str,
        record: Mapping[str, Any],
        context: Mapping[str, Any],
        ctx: ParseContext,
    ) -> None:
        incident_id = context["incident_id"]
        status = _short(record.get("status"), 32)
        if status is None:
            raise ParseError(f"incident {incident_id} has no updates and no status")
        try:
            ts_ns = iso_to_ns(record.get("created_at"), ctx.default_tz)
        except ParseError as exc:
            raise ParseError(f"incident {incident_id} created_at: {exc}") from None
        title = context["title"]
        b.add(
            native_id=f"incident:{incident_id}:{status}",
            ts_ns=ts_ns,
            kind=EventKind.STATUS_UPDATE,
            text=f"{title or 'Status page incident'}: {status}",
            file=doc.path,
            position=doc.where(ptr or "/"),
            actor=ACTOR,
            service=context["service"],
            severity=context["impact"],
            url=context["url"],
            attrs={
                "status": status,
                "incident_id": incident_id,
                "impact": context["impact"],
                "title": title,
            },
        )

    def _update(
        self,
        b: OutputBuilder,
        doc: SourceDocument,
        ptr: str,
        update: object,
        context: Mapping[str, Any],
        ctx: ParseContext,
    ) -> None:
        with b.record(doc, ptr, update):
            record = require_dict(update, "incident update")
            update_id = _short(record.get("id"), 128)
            if update_id is None:
                raise ParseError("incident update has no id")
            status = _short(record.get("status"), 32)
            if status is None:
                raise ParseError(f"incident update {update_id} has no status")
            created = _opt_ts(record.get("created_at"), ctx)
            shown = _opt_ts(record.get("display_at"), ctx)
            ts_ns = shown if shown is not None else created
            if ts_ns is None:
                raw = record.get("display_at") or record.get("created_at")
                raise ParseError(f"incident update {update_id} has no usable display_at/created_at: {raw!r:.60}")
            updated = _opt_ts(record.get("updated_at"), ctx)
            base = created if created is not None else ts_ns
            body = clean_text(record.get("body")).strip()
            title = context["title"]
            incident_id = _short(record.get("incident_id"), 128) or context["incident_id"]
            b.add(
                native_id=f"update:{update_id}",
                ts_ns=ts_ns,
                kind=EventKind.STATUS_UPDATE,
                text=body or f"{title or 'Status page incident'}: {status}",
                file=doc.path,
                position=doc.where(ptr),
                actor=ACTOR,
                service=context["service"] or _component_name(record.get("affected_components")),
                severity=context["impact"],
                url=context["url"],
                revision=updated if updated is not None and updated > base else 0,
                attrs={
                    "status": status,
                    "incident_id": incident_id,
                    "impact": context["impact"],
                    "title": title,
                },
            )
