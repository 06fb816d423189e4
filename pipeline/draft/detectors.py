"""Contributing-factor detectors: small rules over the timeline, each proposing a factor with the events that
support it, the quantities its statement uses, and optionally a suggested action item.

Blameless by construction: statements describe systems, signals and durations, never a person as the
subject of a failure. Taxonomy (``FactorCategory``):

=============== =======================================================================
change          a deploy, config push or feature-flag change shortly before detection
capacity        saturation of a resource (connections, CPU, memory, disk, quota)
dependency      an upstream/third-party dependency alerted first or was named as failing
detection       the problem existed for a while, or people noticed before monitoring did
response        acknowledgement took longer than the target
alerting_noise  alert storms or flapping alerts that bury the signal
recovery        recovery needed manual, hands-on steps
communication   long stretches without a status update while customers were affected
=============== =======================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.blame import blame_hits
from pipeline.draft.actions import is_customer_ticket
from pipeline.models import (
    ActionItem,
    ContributingFactor,
    Event,
    EventKind,
    IncidentManifest,
    KeyMoments,
    Metrics,
    TimelineEntry,
)
from pipeline.quantities import format_count, format_duration
from pipeline.settings import Settings

_CHANGE_TEXT = re.compile(
    r"\b(deploy(ed|ing)?|rolled out|roll(ing)? out|rollout|released?|config(uration)? (change|push)|pushed|"
    r"feature flag|flag \S+ (enabled|flipped|turned on)|migration|merged)\b",
    re.IGNORECASE,
)
_SATURATION = re.compile(
    r"(connection|conn|pool|cpu|memory|mem|oom|disk|inode|quota|limit|throttl|saturat|exhaust|queue|backlog|"
    r"heap|thread|file ?descriptor|full|capacity)",
    re.IGNORECASE,
)
_DEPENDENCY = re.compile(
    r"\b(upstream|dependency|third[- ]party|provider|vendor|external|region(al)?|cloud|aws|gcp|azure|stripe|"
    r"adyen|psp|cdn|dns resolver)\b",
    re.IGNORECASE,
)
_MANUAL = re.compile(
    r"\b(manually|by hand|restart(ed|ing)?|bounced|rolled back|rollback|scaled (up|out)|failed over|failover|"
    r"ran (the )?script|killed|drained|renewed|rotated|flushed|purged|reverted)\b",
    re.IGNORECASE,
)
_ROLLBACK = re.compile(r"\b(roll(ed|ing)?[ -]?back|revert(ed|ing)?)\b", re.IGNORECASE)
_CUSTOMERS_HIT = re.compile(
    r"\bcustomers?\b[^.?!\n]{0,40}\b(?:report\w*|complain\w*|see|seeing|saw|affected|impacted|can'?t|cannot|unable)\b",
    re.IGNORECASE,
)
_LUCK = re.compile(r"\b(lucky|luckily|fortunately|thankfully|by chance)\b", re.IGNORECASE)
_FLAP_MIN = 3


@dataclass(frozen=True)
class DetectorContext:
    events: Sequence[Event]  # timeline entries, in order
    entries: Sequence[TimelineEntry]
    moments: KeyMoments
    metrics: Metrics
    manifest: IncidentManifest
    settings: Settings


@dataclass
class Finding:
    factor: ContributingFactor
    suggestion: ActionItem | None = None
    durations_s: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


Detector = Callable[[DetectorContext], Finding | None]


def _is_rollback(e: Event) -> bool:
    """Undoing a change is recovery, not a contributing change."""
    return bool(e.attrs.get("rollback")) or bool(_ROLLBACK.search(e.text))


def _seconds(a: Event, b: Event) -> int:
    return round((b.ts - a.ts).total_seconds())


_QUIET = frozenset({"warning", "warn", "info", "informational", "low", "minor", "none", "p4", "p5"})


def _pages(e: Event) -> bool:
    return e.kind is EventKind.PAGE_TRIGGERED or (e.severity or "").lower() not in _QUIET


def _detected_event(ctx: DetectorContext) -> Event | None:
    target = ctx.moments.detected.event_id
    return next((e for e in ctx.events if e.id == target), None)


def _service(ctx: DetectorContext) -> str:
    return ", ".join(ctx.manifest.services) or "the affected service"


def change_before_detection(ctx: DetectorContext) -> Finding | None:
    detected = _detected_event(ctx)
    if detected is None:
        return None
    window = ctx.settings.change_window_s
    changes = [
        e
        for e in ctx.events
        if 0 <= _seconds(e, detected) <= window
        and (e.kind is EventKind.DEPLOY or (e.kind is EventKind.MESSAGE and bool(_CHANGE_TEXT.search(e.text))))
        and e.id != detected.id
        and not _is_rollback(e)
        and not blame_hits(e.text)
    ]
    deploys = [e for e in changes if e.kind is EventKind.DEPLOY]
    chosen = deploys or changes
    if not chosen:
        return None
    last = chosen[-1]
    lead = _seconds(last, detected)
    change_kind = str(last.attrs.get("change") or "change")
    what = {"deploy": "A deploy", "config": "A configuration change", "flag": "A feature-flag change"}.get(
        change_kind, "A change"
    )
    statement = (
        f"{what} reached production {format_duration(lead)} before the problem was detected "
        f"(\u201c{_quote(last.text)}\u201d)."
    )
    return Finding(
        ContributingFactor(
            statement=statement,
            category="change",
            evidence=[last.id, detected.id],
            detector="change_before_detection",
        ),
        ActionItem(
            description=f"Gate {_service(ctx)} changes behind a canary with automatic rollback on error-rate alerts",
            type="prevent",
            evidence=[last.id],
            suggested=True,
        ),
        durations_s={"change_lead_s": lead},
    )


def saturation_alerts(ctx: DetectorContext) -> Finding | None:
    hits = [
        e
        for e in ctx.events
        if e.kind in (EventKind.ALERT_FIRING, EventKind.PAGE_TRIGGERED)
        and (_SATURATION.search(e.signal or "") or _SATURATION.search(str(e.attrs.get("alertname") or "")))
    ]
    if not hits:
        return None
    names = sorted({str(e.attrs.get("alertname") or e.signal) for e in hits})
    statement = f"Resource saturation alerts fired ({', '.join(names[:3])}), pointing at exhausted capacity."
    return Finding(
        ContributingFactor(
            statement=statement,
            category="capacity",
            evidence=[e.id for e in hits[:5]],
            detector="saturation_alerts",
        ),
        ActionItem(
            description=f"Review capacity limits and add headroom alerts for {', '.join(names[:2])}",
            type="prevent",
            evidence=[hits[0].id],
            suggested=True,
        ),
    )


_DEPENDENCY_LABELS = ("provider", "upstream", "dependency", "vendor", "external", "third_party", "peer_service")


_INFRA_LABELS = ("zone", "availability_zone", "az", "region")


def _dependency_label(e: Event) -> str | None:
    """A named upstream (provider/vendor labels), or the shared infrastructure a service-less alert is about
    (zone/region labels: a cloud zone or network problem underneath every service)."""
    labels = e.attrs.get("labels")
    if not isinstance(labels, dict):
        return None
    for key in _DEPENDENCY_LABELS:
        value = labels.get(key)
        if isinstance(value, str) and value:
            return value
    if e.service is None:
        for key in _INFRA_LABELS:
            value = labels.get(key)
            if isinstance(value, str) and value:
                return f"{key} {value} infrastructure"
    return None


def upstream_dependency(ctx: DetectorContext) -> Finding | None:
    alerts = [e for e in ctx.events if e.kind in (EventKind.ALERT_FIRING, EventKind.PAGE_TRIGGERED)]
    if not alerts:
        return None
    first = alerts[0]
    own = {s.lower() for s in ctx.manifest.services}
    foreign_service = bool(own) and first.service is not None and first.service.lower() not in own
    labelled = _dependency_label(first)
    named = bool(_DEPENDENCY.search(first.text) or _DEPENDENCY.search(first.signal or ""))
    if not (foreign_service or labelled or named):
        return None
    dependency = labelled or (first.service if foreign_service else None)
    where = f"on the {dependency} dependency" if dependency else "on a dependency"
    statement = f"The first alert fired {where}, upstream of {_service(ctx)} (\u201c{_quote(first.text)}\u201d)."
    return Finding(
        ContributingFactor(
            statement=statement, category="dependency", evidence=[first.id], detector="upstream_dependency"
        ),
        ActionItem(
            description=f"Add graceful degradation or a fallback for {_service(ctx)} when {dependency or 'the dependency'} fails",
            type="mitigate",
            evidence=[first.id],
            suggested=True,
        ),
    )


def detection_gap(ctx: DetectorContext) -> Finding | None:
    ttd = ctx.metrics.time_to_detect_s
    detected = _detected_event(ctx)
    if detected is None:
        return None
    if detected.kind in (EventKind.MESSAGE, EventKind.TICKET_CREATED):
        first_alert = next(
            (
                e
                for e in ctx.events
                if e.ts >= detected.ts and e.kind in (EventKind.ALERT_FIRING, EventKind.PAGE_TRIGGERED) and _pages(e)
            ),
            None,
        )
        who = "Customers" if detected.kind is EventKind.TICKET_CREATED else "People"
        durations: dict[str, int] = {}
        if first_alert is None:
            statement = f"{who} reported the problem before monitoring did; no paging alert fired after the report."
            evidence = [detected.id]
        else:
            gap = _seconds(detected, first_alert)
            statement = (
                f"{who} reported the problem {format_duration(gap)} before the first paging alert fired; "
                "monitoring did not catch it first."
            )
            evidence = [detected.id, first_alert.id]
            durations = {"report_before_alert_s": gap}
        return Finding(
            ContributingFactor(statement=statement, category="detection", evidence=evidence, detector="detection_gap"),
            ActionItem(
                description=f"Add an alert on the symptom customers saw for {_service(ctx)}",
                type="detect",
                evidence=[detected.id],
                suggested=True,
            ),
            durations_s=durations,
        )
    if ttd is not None and ttd > ctx.settings.detection_gap_s:
        statement = f"The problem went undetected for {format_duration(ttd)} after it started."
        return Finding(
            ContributingFactor(
                statement=statement, category="detection", evidence=[detected.id], detector="detection_gap"
            ),
            ActionItem(
                description=f"Alert earlier on the leading symptom for {_service(ctx)}",
                type="detect",
                evidence=[detected.id],
                suggested=True,
            ),
        )
    return None


def acknowledgement_gap(ctx: DetectorContext) -> Finding | None:
    tta = ctx.metrics.time_to_acknowledge_s
    if tta is None or tta <= ctx.settings.ack_gap_s:
        return None
    evidence = [i for i in (ctx.moments.detected.event_id, ctx.moments.acknowledged.event_id) if i]
    if not evidence:
        return None
    statement = f"Acknowledgement took {format_duration(tta)} after detection, longer than the paging target."
    return Finding(
        ContributingFactor(statement=statement, category="response", evidence=evidence, detector="acknowledgement_gap"),
        ActionItem(
            description="Review paging routes and escalation timeouts so the first page reaches an available responder",
            type="process",
            evidence=evidence[:1],
            suggested=True,
        ),
    )


def alert_noise(ctx: DetectorContext) -> Finding | None:
    storms = [e for e in ctx.entries if e.count >= ctx.settings.storm_min_count]
    firing_by_signal: dict[str, list[Event]] = {}
    for e in ctx.events:
        if e.kind is EventKind.ALERT_FIRING and e.signal:
            firing_by_signal.setdefault(e.signal, []).append(e)
    flapping = {s: evs for s, evs in firing_by_signal.items() if len(evs) >= _FLAP_MIN}
    if not storms and not flapping:
        return None
    parts: list[str] = []
    evidence: list[str] = []
    counts: dict[str, int] = {}
    if storms:
        biggest = max(storms, key=lambda e: e.count)
        parts.append(f"an alert storm collapsed {format_count(biggest.count, 'alert')} of one kind into one signal")
        evidence.append(biggest.id)
        counts["alert:storm"] = biggest.count
    if flapping:
        evs = max(flapping.values(), key=len)
        parts.append(f"one alert fired {len(evs)} separate times (flapping)")
        evidence.extend(e.id for e in evs[:3])
        counts["alert:flapping"] = len(evs)
    statement = "Alert noise made the real signal harder to see: " + "; ".join(parts) + "."
    return Finding(
        ContributingFactor(statement=statement, category="alerting_noise", evidence=evidence, detector="alert_noise"),
        ActionItem(
            description="Group, deduplicate or retune the noisy alerts so one page carries one problem",
            type="detect",
            evidence=evidence[:1],
            suggested=True,
        ),
        counts=counts,
    )


def manual_recovery(ctx: DetectorContext) -> Finding | None:
    start, end = ctx.moments.detected.at, ctx.moments.mitigated.at or ctx.moments.resolved.at
    if start is None or end is None:
        return None
    steps = [
        e
        for e in ctx.events
        if e.kind is EventKind.MESSAGE
        and not e.attrs.get("bot")
        and start <= e.ts <= end
        and _MANUAL.search(e.text)
        and not blame_hits(e.text)
    ]
    if not steps:
        return None
    statement = "Recovery needed hands-on steps by responders (for example \u201c" + _quote(steps[0].text) + "\u201d)."
    return Finding(
        ContributingFactor(
            statement=statement,
            category="recovery",
            evidence=[e.id for e in steps[:3]],
            detector="manual_recovery",
        ),
        ActionItem(
            description="Automate or runbook the manual recovery steps used in this incident",
            type="mitigate",
            evidence=[steps[0].id],
            suggested=True,
        ),
    )


def communication_silence(ctx: DetectorContext) -> Finding | None:
    start, end = ctx.moments.detected, ctx.moments.resolved
    if start.at is None or end.at is None:
        return None
    updates = [e for e in ctx.events if e.kind is EventKind.STATUS_UPDATE and start.at <= e.ts <= end.at]
    limit = ctx.settings.silence_gap_s
    marks: list[tuple[list[str], int]] = []
    if not updates:
        # Silence on a status page nobody used is a factor only when customers were affected and could be told:
        # not for an internal incident, nor for a restricted (security) one.
        total = round((end.at - start.at).total_seconds())
        told_customers_nothing = ctx.manifest.visibility != "restricted" and any(
            is_customer_ticket(e) or _CUSTOMERS_HIT.search(e.text) for e in ctx.events
        )
        if total > limit and start.event_id and told_customers_nothing:
            statement = f"No status-page update was posted during the {format_duration(total)} between detection and resolution."
            return Finding(
                ContributingFactor(
                    statement=statement,
                    category="communication",
                    evidence=[i for i in (start.event_id, end.event_id) if i],
                    detector="communication_silence",
                ),
                ActionItem(
                    description="Post a status-page update within 30 minutes of detection and on a fixed cadence after",
                    type="process",
                    evidence=[start.event_id],
                    suggested=True,
                ),
                durations_s={"silence_s": total},
            )
        return None
    previous_at, previous_id = start.at, start.event_id or updates[0].id
    for u in updates:
        gap = round((u.ts - previous_at).total_seconds())
        if gap > limit:
            marks.append(([previous_id, u.id], gap))
        previous_at, previous_id = u.ts, u.id
    if not marks:
        return None
    worst_ids, worst_gap = max(marks, key=lambda m: m[1])
    statement = f"Customers went {format_duration(worst_gap)} without a status update during the incident."
    return Finding(
        ContributingFactor(
            statement=statement,
            category="communication",
            evidence=worst_ids,
            detector="communication_silence",
        ),
        ActionItem(
            description="Set a status-update cadence for incidents of this severity",
            type="process",
            evidence=worst_ids[-1:],
            suggested=True,
        ),
        durations_s={"silence_s": worst_gap},
    )


DETECTORS: tuple[Detector, ...] = (
    change_before_detection,
    saturation_alerts,
    upstream_dependency,
    detection_gap,
    acknowledgement_gap,
    alert_noise,
    manual_recovery,
    communication_silence,
)


def run_detectors(ctx: DetectorContext) -> list[Finding]:
    return [finding for detector in DETECTORS if (finding := detector(ctx)) is not None]


def luck_mentions(events: Sequence[Event]) -> list[Event]:
    """Chat messages where responders said they got lucky (for the 'got lucky' lesson)."""
    return [e for e in events if e.kind is EventKind.MESSAGE and not e.attrs.get("bot") and _LUCK.search(e.text)]


def _quote(text: str, limit: int = 90) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1].rstrip() + "…"
