"""Key moments (started, detected, acknowledged, mitigated, resolved) and the metrics derived from them.

Each moment names the event that evidences it and the rule that chose it, so a reader can check it. A
person's word in incident.yaml (``overrides``) always wins. Metric definitions:

* TTD = detected − started        * TTA = acknowledged − detected
* TTM = mitigated − started       * TTR = resolved − started
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from pipeline.errors import ConfigError
from pipeline.models import (
    Event,
    EventKind,
    IncidentManifest,
    KeyMoment,
    KeyMoments,
    Metrics,
    MomentName,
    MomentOverride,
)

_ACK_TEXT = re.compile(
    r"^\s*(ack(ed|nowledged)?\b|on it\b|i'?m on it|looking( into it)?\b|investigating\b|i'?ll take (it|this)|"
    r"i'?m (ic|incident commander)|taking (ic|incident command|this))",
    re.IGNORECASE,
)
_REPORT_TEXT = re.compile(
    r"\b(is down|are down|outage|5\d\d(s| errors)?|5xxs?|errors? (rate|spike)|elevated (errors|latency)|"
    r"(customers?|users?|support|merchants?) (are |is )?(report(s|ing|ed)?|complain(s|ing|ed)?|see(s|ing)?|"
    r"can'?t|cannot|unable)|timeouts?|can'?t (log ?in|connect|check ?out|reach)|failing|broken|degraded)\b",
    re.IGNORECASE,
)
_MITIGATION_TEXT = re.compile(
    r"\b(mitigat(ed|ion (is )?(in place|applied|done))|rollback (is )?(complete|done|finished)|rolled back|"
    r"(error rates?|latency|traffic) (is |are )?(back to normal|recover(ed|ing)|normal)|recovering|"
    r"fix (is )?(deployed|out|live)|failover (complete|done)|service (is )?restored)\b",
    re.IGNORECASE,
)
_ROLLBACK_TEXT = re.compile(r"\b(roll(ed|ing)?[ -]?back|revert(ed|ing)?)\b", re.IGNORECASE)
DEFAULT_CHANGE_WINDOW_S = 3600
_FLAPPING = 3
_NEGATION = re.compile(r"\b(not|no longer|isn'?t|aren'?t|hasn'?t|haven'?t|still not|yet to)\b", re.IGNORECASE)


_QUIET_SEVERITIES = frozenset({"warning", "warn", "info", "informational", "low", "minor", "none", "p4", "p5"})


def _notifies_people(e: Event) -> bool:
    """A page, or an alert whose severity would page someone (warning/info alerts only show on dashboards)."""
    if e.kind is EventKind.PAGE_TRIGGERED:
        return True
    return e.kind is EventKind.ALERT_FIRING and (e.severity or "").lower() not in _QUIET_SEVERITIES


def _human_message(e: Event) -> bool:
    return e.kind is EventKind.MESSAGE and not e.attrs.get("bot")


def _reports_problem(e: Event) -> bool:
    """A person saying something is broken: a chat message or a newly opened (customer) ticket."""
    return (_human_message(e) or e.kind is EventKind.TICKET_CREATED) and _says(_REPORT_TEXT, e)


def _says(pattern: re.Pattern[str], e: Event) -> bool:
    match = pattern.search(e.text)
    return match is not None and not _NEGATION.search(e.text[max(0, match.start() - 20) : match.start()])


def _status(e: Event) -> str:
    value = e.attrs.get("status")
    return value.lower() if isinstance(value, str) else ""


def _first(events: Sequence[Event], test: Callable[[Event], bool], after: datetime | None = None) -> Event | None:
    for e in events:
        if (after is None or e.ts >= after) and test(e):
            return e
    return None


def _moment(e: Event | None, rule: str) -> KeyMoment:
    if e is None:
        return KeyMoment(rule=f"not found: {rule}")
    return KeyMoment(at=e.ts, event_id=e.id, rule=rule)


def _override(name: MomentName, o: MomentOverride, by_id: dict[str, Event]) -> KeyMoment:
    note = f" ({o.note})" if o.note else ""
    if o.event_id is not None:
        event = by_id.get(o.event_id)
        if event is None:
            raise ConfigError(
                f"incident.yaml overrides {name} with event id {o.event_id!r}, which is not in the timeline"
            )
        return KeyMoment(at=o.at or event.ts, event_id=event.id, rule=f"manifest override{note}")
    return KeyMoment(at=o.at, event_id=None, rule=f"manifest override{note}")


def _triggering_change(ordered: Sequence[Event], detected: Event | None, window_s: int) -> Event | None:
    """The last deploy/config/flag change (not a rollback) that reached production within the window before
    detection: impact is taken to start with it."""
    if detected is None:
        return None
    changes = [
        e
        for e in ordered
        if e.kind is EventKind.DEPLOY
        and not e.attrs.get("rollback")
        and not _ROLLBACK_TEXT.search(e.text)
        and 0 <= (detected.ts - e.ts).total_seconds() <= window_s
    ]
    return changes[-1] if changes else None


def _first_still_firing(ordered: Sequence[Event], detected: Event | None, window_s: int) -> Event | None:
    """The earliest monitoring alert that started within the window before detection and had not recovered by
    then. Flapping signals (three or more firings) are noise, not the start of this incident."""
    if detected is None:
        return None
    firings: dict[str, int] = {}
    for e in ordered:
        if e.kind is EventKind.ALERT_FIRING and e.signal:
            firings[e.signal] = firings.get(e.signal, 0) + 1
    for e in ordered:
        if e.ts > detected.ts:
            break
        if e.kind is not EventKind.ALERT_FIRING or (detected.ts - e.ts).total_seconds() > window_s:
            continue
        if e.signal and firings.get(e.signal, 0) >= _FLAPPING and e.id != detected.id:
            continue
        recovered = any(
            r.kind is EventKind.ALERT_RESOLVED and r.signal == e.signal and e.ts <= r.ts <= detected.ts
            for r in ordered
            if r.ts <= detected.ts
        )
        if not recovered or e.id == detected.id:
            return e
    return None


def find_key_moments(
    events: Sequence[Event], manifest: IncidentManifest, change_window_s: int = DEFAULT_CHANGE_WINDOW_S
) -> KeyMoments:
    """Choose the five key moments from timeline events (in timeline order)."""
    ordered = sorted(events, key=lambda e: e.ts)
    by_id = {e.id: e for e in ordered}
    chosen: dict[str, KeyMoment] = {}

    first_alert = _first(ordered, _notifies_people) or _first(
        ordered, lambda e: e.kind in (EventKind.ALERT_FIRING, EventKind.PAGE_TRIGGERED)
    )
    first_report = _first(ordered, _reports_problem)
    detected_event = min((e for e in (first_alert, first_report) if e is not None), key=lambda e: e.ts, default=None)
    if detected_event is None:
        chosen["detected"] = _moment(None, "no alert, page or human report of a problem")
    elif detected_event is first_alert:
        sev = f", severity {detected_event.severity}" if detected_event.severity else ""
        what = f"first {detected_event.kind.value} ({detected_event.source.value}{sev})"
        chosen["detected"] = _moment(detected_event, what)
    else:
        where = "in a ticket" if detected_event.kind is EventKind.TICKET_CREATED else "in chat"
        chosen["detected"] = _moment(detected_event, f"first human report of a problem {where}")

    change = _triggering_change(ordered, detected_event, change_window_s)
    early = _first_still_firing(ordered, detected_event, change_window_s)
    if change is not None:
        chosen["started"] = _moment(change, "a change reached production shortly before detection")
    elif early is not None:
        chosen["started"] = _moment(early, "start of the first alert still firing at detection")
    else:
        chosen["started"] = _moment(detected_event, "no earlier evidence: started when detected")

    after = detected_event.ts if detected_event else None
    ack = _first(ordered, lambda e: e.kind is EventKind.ACKNOWLEDGED, after)
    if ack is not None:
        chosen["acknowledged"] = _moment(ack, f"first acknowledgement ({ack.source.value})")
    else:
        responder = _first(ordered, lambda e: _human_message(e) and _says(_ACK_TEXT, e), after)
        chosen["acknowledged"] = _moment(responder, "first responder message after detection")

    chosen["mitigated"] = _mitigated(ordered, first_alert, after)
    chosen["resolved"] = _resolved(ordered, after)

    for name, override in manifest.overrides.items():
        chosen[name] = _override(name, override, by_id)
    return KeyMoments(**chosen)


def _mitigated(ordered: Sequence[Event], first_alert: Event | None, after: datetime | None) -> KeyMoment:
    """Responders saying so beats a status page saying so beats an alert recovering (alerts also recover when
    traffic moves or a check flaps)."""
    said = _first(
        ordered, lambda e: _human_message(e) and _says(_MITIGATION_TEXT, e) and not _says(_ACK_TEXT, e), after
    )
    if said is not None:
        return _moment(said, "explicit mitigation message in chat")
    monitoring = _first(ordered, lambda e: e.kind is EventKind.STATUS_UPDATE and _status(e) == "monitoring", after)
    if monitoring is not None:
        return _moment(monitoring, "status page moved to monitoring")
    if first_alert is not None and first_alert.signal:
        signal = first_alert.signal
        recovered = _first(ordered, lambda e: e.kind is EventKind.ALERT_RESOLVED and e.signal == signal, after)
        if recovered is not None:
            return _moment(recovered, "the detecting alert recovered")
    return _moment(None, "no mitigation message, status-page monitoring or alert recovery")


def _resolved(ordered: Sequence[Event], after: datetime | None) -> KeyMoment:
    """The paging/incident record's resolution is when responders declared it over; the status page is the
    public echo of that, used when there is no incident record."""
    later = [e for e in ordered if after is None or e.ts >= after]
    closed = [e for e in later if e.kind is EventKind.INCIDENT_RESOLVED]
    if closed:
        return _moment(closed[-1], f"last incident resolution ({closed[-1].source.value})")
    public = [e for e in later if e.kind is EventKind.STATUS_UPDATE and _status(e) == "resolved"]
    if public:
        return _moment(public[-1], "status page resolved")
    recoveries = [e for e in later if e.kind is EventKind.ALERT_RESOLVED]
    if recoveries:
        return _moment(recoveries[-1], "last alert recovery (no incident or status-page resolution)")
    return _moment(None, "no incident resolution, status-page resolution or alert recovery")


def _seconds(end: KeyMoment, start: KeyMoment) -> int | None:
    if end.at is None or start.at is None:
        return None
    return round((end.at - start.at).total_seconds())


def compute_metrics(moments: KeyMoments) -> Metrics:
    return Metrics(
        time_to_detect_s=_seconds(moments.detected, moments.started),
        time_to_acknowledge_s=_seconds(moments.acknowledged, moments.detected),
        time_to_mitigate_s=_seconds(moments.mitigated, moments.started),
        time_to_resolve_s=_seconds(moments.resolved, moments.started),
    )
