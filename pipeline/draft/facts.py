"""The facts sheet: everything a drafter may say, computed deterministically from the timeline.

The FactsDrafter turns it into prose with templates; an LLM drafter is given the same sheet and held to the
same checks. ``durations_s`` and ``counts`` list every number prose may state.

The manifest and timeline arrive already redacted (``service.compose`` runs ``pipeline.draft.scrub`` first), so
whatever this module quotes, cuts or copies (a deploy message, a headline, a ticket title) holds placeholders,
never the values: cutting or reshaping a raw secret here would hide it from the redactor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from pipeline.draft import actions
from pipeline.draft.detectors import DetectorContext, Finding, luck_mentions, run_detectors
from pipeline.models import (
    MOMENT_NAMES,
    ActionItem,
    ContributingFactor,
    DraftIncident,
    Event,
    EventKind,
    Highlight,
    IncidentManifest,
    KeyMoments,
    Lesson,
    Metrics,
    MomentName,
    TimelineEntry,
)
from pipeline.moments import compute_metrics, find_key_moments
from pipeline.quantities import format_duration
from pipeline.settings import Settings
from pipeline.timeline import Timeline
from pipeline.validate import Facts

_MAX_HIGHLIGHTS = 14
_FAST_ACK_S = 300
_ROLLBACK = re.compile(r"\broll(ed|ing)?[ -]?back\b", re.IGNORECASE)


class ImpactFacts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    services: list[str]
    duration_s: int | None
    alert_count: int
    page_count: int
    customer_tickets: int
    severity: str | None
    evidence: list[str]


class FactsSheet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    incident: DraftIncident
    key_moments: KeyMoments
    metrics: Metrics
    impact: ImpactFacts
    factors: list[ContributingFactor]
    action_items: list[ActionItem]
    lessons: list[Lesson]
    highlights: list[Highlight]
    detected_by: str | None = Field(None, description="What detected the incident, in a few words.")
    durations_s: dict[str, int] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)


def build_facts(manifest: IncidentManifest, timeline: Timeline, settings: Settings) -> FactsSheet:
    events = timeline.events()
    entries = timeline.entries()
    moments = find_key_moments(events, manifest, settings.change_window_s)
    metrics = compute_metrics(moments)
    ctx = DetectorContext(events, entries, moments, metrics, manifest, settings)
    findings = run_detectors(ctx)

    stated = actions.merge(actions.from_chat(events), actions.from_tickets(events))
    suggested = [f.suggestion for f in findings if f.suggestion is not None]
    durations = {name: value for name, value in metrics.model_dump().items() if value is not None}
    counts: dict[str, int] = {}
    for finding in findings:
        durations.update(finding.durations_s)
        counts.update(finding.counts)

    impact = _impact(manifest, entries, events, metrics)
    if impact.duration_s is not None:
        durations["impact_duration_s"] = impact.duration_s
    counts.update({"alert": impact.alert_count, "page": impact.page_count, "customer ticket": impact.customer_tickets})
    detected_event = next((e for e in events if e.id == moments.detected.event_id), None)
    return FactsSheet(
        incident=DraftIncident(
            id=timeline.incident_id,
            title=manifest.title or _headline(events) or f"Incident {timeline.incident_id}",
            severity=manifest.severity,
            services=impact.services,
            visibility=manifest.visibility,
        ),
        key_moments=moments,
        metrics=metrics,
        impact=impact,
        factors=[f.factor for f in findings],
        action_items=stated + suggested,
        lessons=_lessons(moments, metrics, [f.factor for f in findings], events),
        highlights=_highlights(moments, findings, events, settings.change_window_s),
        detected_by=_detected_by(detected_event),
        durations_s=durations,
        counts=counts,
    )


def _impact(
    manifest: IncidentManifest, entries: Sequence[TimelineEntry], events: Sequence[Event], metrics: Metrics
) -> ImpactFacts:
    alert_entries = [e for e in entries if e.kind in (EventKind.ALERT_FIRING,)]
    alert_count = sum(e.count for e in alert_entries)
    page_count = sum(1 for e in entries if e.kind is EventKind.PAGE_TRIGGERED) + sum(
        1 for e in alert_entries for s in e.also_seen_in if s.value in ("pagerduty", "opsgenie")
    )
    customer = [e for e in events if actions.is_customer_ticket(e)]
    alerting = {e.service for e in events if e.service and e.kind in (EventKind.ALERT_FIRING, EventKind.PAGE_TRIGGERED)}
    services = list(manifest.services) or sorted(alerting)[:5]
    duration = metrics.time_to_mitigate_s if metrics.time_to_mitigate_s is not None else metrics.time_to_resolve_s
    evidence = [e.id for e in alert_entries[:3]] + [e.id for e in customer[:3]]
    return ImpactFacts(
        services=services,
        duration_s=duration,
        alert_count=alert_count,
        page_count=page_count,
        customer_tickets=len(customer),
        severity=manifest.severity,
        evidence=evidence,
    )


_HEADLINE_KINDS = (EventKind.PAGE_TRIGGERED, EventKind.TICKET_CREATED, EventKind.STATUS_UPDATE)
HEADLINE_MAX_CHARS = 120
_ACTION_PREFIX = re.compile(r"^(?:triggered|created|opened)\s*:\s*", re.IGNORECASE)


def _headline(events: Sequence[Event]) -> str | None:
    """A title for an incident whose manifest has none (a bundle gathered by the sweep): what the first page,
    ticket or status-page update said, on one line."""
    for kind in _HEADLINE_KINDS:
        first = next((e for e in events if e.kind is kind and e.text.strip()), None)
        if first is not None:
            line = _ACTION_PREFIX.sub("", " ".join(first.text.split()))
            return line if len(line) <= HEADLINE_MAX_CHARS else line[: HEADLINE_MAX_CHARS - 1] + "…"
    return None


def _detected_by(event: Event | None) -> str | None:
    if event is None:
        return None
    if event.kind is EventKind.MESSAGE:
        return "a report in the incident channel"
    name = event.attrs.get("alertname") or event.signal or event.kind.value
    return f"{event.source.value} {'alert' if event.kind is EventKind.ALERT_FIRING else 'page'} {name}"


def _highlights(
    moments: KeyMoments, findings: Sequence[Finding], events: Sequence[Event], window_s: int
) -> list[Highlight]:
    """Key moments, the first evidence of each factor, and changes, status updates and escalations from an
    hour before the start until resolution."""
    by_id = {e.id: e for e in events}
    chosen: dict[str, str] = {}
    labels: dict[MomentName, str] = {
        "started": "Impact started",
        "detected": "Detected",
        "acknowledged": "Acknowledged",
        "mitigated": "Mitigated",
        "resolved": "Resolved",
    }
    for name in MOMENT_NAMES:
        moment = moments.get(name)
        if moment.event_id and moment.event_id in by_id:
            chosen.setdefault(moment.event_id, labels[name])
    for finding in findings:
        for eid in finding.factor.evidence[:1]:
            if eid in by_id:
                chosen.setdefault(eid, f"Evidence: {finding.factor.category.replace('_', ' ')}")
    known = [m.at for m in (moments.started, moments.detected, moments.resolved) if m.at is not None]
    first = min(known) - timedelta(seconds=window_s) if known else None
    last = max(known) if known else None
    for e in events:
        in_window = first is None or last is None or first <= e.ts <= last
        if in_window and e.kind in (EventKind.DEPLOY, EventKind.STATUS_UPDATE, EventKind.ESCALATED):
            chosen.setdefault(
                e.id, {"deploy": "Change", "status_update": "Status update"}.get(e.kind.value, "Escalated")
            )
    ordered = sorted((by_id[i] for i in chosen), key=lambda e: e.ts)[:_MAX_HIGHLIGHTS]
    return [Highlight(event_id=e.id, at=e.ts, text=f"{chosen[e.id]}: {_describe(e)}") for e in ordered]


def _describe(e: Event) -> str:
    """A neutral one-line description (no free chat text: people are never the subject of a failure)."""
    if e.kind is EventKind.MESSAGE:
        return f"message in #{e.attrs.get('channel') or 'channel'}"
    if e.kind is EventKind.DEPLOY:  # a bot's announcement, quoted (the validator checks quotes verbatim)
        text = " ".join(e.text.split())
        return f"\u201c{text if len(text) <= 80 else text[:79] + '…'}\u201d"
    if e.kind is EventKind.STATUS_UPDATE:
        return f"status page set to {e.attrs.get('status') or 'updated'}"
    if e.kind in (EventKind.ALERT_FIRING, EventKind.ALERT_RESOLVED, EventKind.PAGE_TRIGGERED):
        name = e.attrs.get("alertname") or e.signal or ""
        verb = {"alert_firing": "alert firing", "alert_resolved": "alert resolved", "page_triggered": "page"}[
            e.kind.value
        ]
        return f"{e.source.value} {verb} {name}".strip()
    return f"{e.source.value} {e.kind.value.replace('_', ' ')}"


def _lessons(
    moments: KeyMoments, metrics: Metrics, factors: list[ContributingFactor], events: list[Event]
) -> list[Lesson]:
    lessons: list[Lesson] = []
    tta = metrics.time_to_acknowledge_s
    if tta is not None and tta <= _FAST_ACK_S and moments.acknowledged.event_id:
        lessons.append(
            Lesson(
                kind="went_well",
                statement=f"Responders acknowledged within {format_duration(tta)} of detection.",
                evidence=[moments.acknowledged.event_id],
            )
        )
    mitigation = next((e for e in events if e.id == moments.mitigated.event_id), None)
    if mitigation is not None and _ROLLBACK.search(mitigation.text):
        lessons.append(
            Lesson(
                kind="went_well",
                statement="A rollback restored service.",
                evidence=[moments.mitigated.event_id],
            )
        )
    for factor in factors:
        if factor.category in ("detection", "response", "communication", "alerting_noise"):
            lessons.append(Lesson(kind="went_wrong", statement=factor.statement, evidence=factor.evidence))
    for e in luck_mentions(events)[:2]:
        lessons.append(
            Lesson(kind="got_lucky", statement="Responders noted that luck limited the impact.", evidence=[e.id])
        )
    return lessons


def validation_facts(facts: FactsSheet, timeline: Timeline, texts: Mapping[str, str] | None = None) -> Facts:
    """What drafts of this incident are checked against. `texts` overrides the event texts quotes are checked
    against (an LLM sees redacted texts, so its quotes are checked against those)."""
    frame = timeline.frame
    return Facts(
        known_ids=timeline.known_ids,
        texts=texts if texts is not None else dict(zip(frame["id"].tolist(), frame["text"].tolist(), strict=True)),
        durations_s=facts.durations_s,
        counts=facts.counts,
        key_moments=facts.key_moments,
    )
