"""Typed data shared by every stage.

Two shapes of event exist on purpose:

* ``EventRow`` — a NamedTuple that parsers emit on the hot path. Building a validated pydantic model costs
  ~18 µs a record here, a tuple ~1.3 µs; with a million events that is the difference between seconds and
  a minute. Parsers check what they emit themselves (a bad record is quarantined, never half-built).
* ``Event`` — the pydantic model at the boundaries (drafts, JSON contract, tests, later LLM input).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue


class Source(StrEnum):
    SLACK = "slack"
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    PAGERDUTY = "pagerduty"
    OPSGENIE = "opsgenie"
    JIRA = "jira"
    GITHUB = "github"
    STATUSPAGE = "statuspage"


class EventKind(StrEnum):
    MESSAGE = "message"  # a human (or bot) chat message
    ALERT_FIRING = "alert_firing"  # a monitoring alert started firing
    ALERT_RESOLVED = "alert_resolved"  # a monitoring alert recovered
    PAGE_TRIGGERED = "page_triggered"  # an on-call incident/alert was opened in a paging tool
    ACKNOWLEDGED = "acknowledged"  # a responder acknowledged the page
    ESCALATED = "escalated"
    ASSIGNED = "assigned"
    INCIDENT_RESOLVED = "incident_resolved"  # the paging/incident record was resolved/closed
    STATUS_UPDATE = "status_update"  # public status page update; attrs["status"] holds its state
    STATUS_CHANGE = "status_change"  # ticket workflow transition; attrs["from"], attrs["to"]
    TICKET_CREATED = "ticket_created"
    COMMENT = "comment"  # a comment on a ticket or issue
    NOTE = "note"  # a note on a page/alert
    DEPLOY = "deploy"  # a change reached production (deploy, config push, flag flip)
    LABELED = "labeled"
    SYSTEM = "system"  # joins, deletions, subscriptions: kept for provenance, not for the story


ALERT_KINDS = frozenset({EventKind.ALERT_FIRING, EventKind.PAGE_TRIGGERED})


def event_id(source: str, native_id: str) -> str:
    """Stable event id: the same source record always gets the same id, across runs and machines."""
    digest = hashlib.blake2b(f"{source}\x1f{native_id}".encode(), digest_size=8).hexdigest()
    return f"ev_{digest}"


class EventRow(NamedTuple):
    """What a parser emits for one source record (see module docstring for why this is not pydantic)."""

    id: str
    source: str
    native_id: str
    ts_ns: int  # UTC epoch nanoseconds
    kind: str
    actor: str | None
    text: str
    service: str | None
    severity: str | None
    thread_id: str | None  # event id of the thread parent, when this record is a reply
    url: str | None
    file: str
    position: str  # where in the file: a JSON pointer such as "/alerts/1" or "line 7"
    signal: str | None  # alert identity across systems (normalised alert name), for storms and dedup
    revision: int  # higher wins when the same id arrives twice (edited messages, re-deliveries)
    attrs: dict[str, Any] | None


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Frozen):
    file: str
    position: str


class Event(_Frozen):
    id: str
    source: Source
    native_id: str
    ts: AwareDatetime
    kind: EventKind
    actor: str | None = None
    text: str = ""
    service: str | None = None
    severity: str | None = None
    thread_id: str | None = None
    url: str | None = None
    provenance: Provenance
    signal: str | None = None
    attrs: dict[str, JsonValue] = Field(default_factory=dict)

    @classmethod
    def from_row(cls, row: EventRow) -> Event:
        return cls(
            id=row.id,
            source=Source(row.source),
            native_id=row.native_id,
            ts=datetime.fromtimestamp(row.ts_ns / 1e9, tz=UTC),
            kind=EventKind(row.kind),
            actor=row.actor,
            text=row.text,
            service=row.service,
            severity=row.severity,
            thread_id=row.thread_id,
            url=row.url,
            provenance=Provenance(file=row.file, position=row.position),
            signal=row.signal,
            attrs=row.attrs or {},
        )


class Quarantined(_Frozen):
    """A record that could not become an event, kept with the reason — never dropped silently."""

    source: str  # a Source value, or "unknown" when no parser recognised the file
    file: str
    position: str
    reason: str
    excerpt: str = Field("", description="The first characters of the offending record, for a human.")


class ParseOutput(NamedTuple):
    rows: list[EventRow]
    quarantined: list[Quarantined]


# --- incident manifest (incident.yaml) ---------------------------------------------------------------

MomentName = Literal["started", "detected", "acknowledged", "mitigated", "resolved"]
MOMENT_NAMES: tuple[MomentName, ...] = ("started", "detected", "acknowledged", "mitigated", "resolved")


class MomentOverride(_Frozen):
    """A person's word on a key moment: a time, an event id, or both."""

    at: AwareDatetime | None = None
    event_id: str | None = None
    note: str | None = None


class IncidentManifest(_Frozen):
    id: str | None = None
    title: str | None = None
    severity: str | None = None
    services: list[str] = Field(default_factory=list)
    visibility: Literal["public", "internal", "restricted"] = "internal"
    teams: list[str] = Field(default_factory=list)
    channel: str | None = None
    timezone: str | None = Field(None, description="IANA zone for source timestamps that carry no offset.")
    aliases: list[str] = Field(
        default_factory=list,
        description="This incident's ids in other tools, as the sweep names them (pagerduty-P1, jira-INC-42).",
    )
    overrides: dict[MomentName, MomentOverride] = Field(default_factory=dict)


# --- timeline ------------------------------------------------------------------------------------------


class TimelineEntry(_Frozen):
    """One line of the merged timeline; collapsed storms and cross-source duplicates fold into it."""

    id: str
    at: AwareDatetime
    source: Source
    kind: EventKind
    actor: str | None = None
    text: str = ""
    service: str | None = None
    severity: str | None = None
    url: str | None = None
    count: int = 1
    last_at: AwareDatetime | None = None
    merged_ids: list[str] = Field(default_factory=list, description="Events folded into this entry.")
    also_seen_in: list[Source] = Field(default_factory=list)
    parent_id: str | None = Field(None, description="Set on thread replies, folded under their parent.")
    provenance: Provenance


class TimelineStats(_Frozen):
    records_in: int
    events: int
    duplicates: int
    collapsed: int
    quarantined: int

    @property
    def balanced(self) -> bool:
        return self.records_in == self.events + self.duplicates + self.collapsed + self.quarantined


# --- moments and metrics ----------------------------------------------------------------------------


class KeyMoment(_Frozen):
    at: AwareDatetime | None = None
    event_id: str | None = None
    rule: str = Field(description="Which rule chose this moment, or why none could.")


class KeyMoments(_Frozen):
    started: KeyMoment
    detected: KeyMoment
    acknowledged: KeyMoment
    mitigated: KeyMoment
    resolved: KeyMoment

    def get(self, name: MomentName) -> KeyMoment:
        moment: KeyMoment = getattr(self, name)
        return moment


class Metrics(_Frozen):
    """Durations in whole seconds (definitions in pipeline.moments); None when a moment is unknown."""

    time_to_detect_s: int | None = None
    time_to_acknowledge_s: int | None = None
    time_to_mitigate_s: int | None = None
    time_to_resolve_s: int | None = None


# --- the draft (the JSON contract; later also the LLM output contract) ------------------------------

FactorCategory = Literal[
    "change",
    "capacity",
    "dependency",
    "detection",
    "response",
    "alerting_noise",
    "recovery",
    "communication",
]

ActionType = Literal["prevent", "detect", "mitigate", "process", "follow_up"]


class DraftIncident(_Frozen):
    id: str
    title: str
    severity: str | None = None
    services: list[str] = Field(default_factory=list)
    visibility: Literal["public", "internal", "restricted"] = "internal"


class Impact(_Frozen):
    statement: str
    services: list[str] = Field(default_factory=list)
    duration_s: int | None = None
    alert_count: int = 0
    page_count: int = 0
    customer_tickets: int = 0
    severity: str | None = None
    evidence: list[str] = Field(default_factory=list)


class ContributingFactor(_Frozen):
    statement: str
    category: FactorCategory
    evidence: list[str] = Field(min_length=1)
    detector: str | None = Field(None, description="The rule that proposed this factor (FactsDrafter).")


class ActionItem(_Frozen):
    description: str
    type: ActionType
    owner: str | None = None
    due: str | None = Field(None, description="ISO date when one was stated.")
    priority: Literal["high", "medium", "low"] = "medium"
    evidence: list[str] = Field(default_factory=list)
    suggested: bool = Field(False, description="Proposed by the drafter, not stated by a person.")


class Lesson(_Frozen):
    kind: Literal["went_well", "went_wrong", "got_lucky"]
    statement: str
    evidence: list[str] = Field(min_length=1)


class Highlight(_Frozen):
    event_id: str
    at: AwareDatetime
    text: str


class DraftContent(_Frozen):
    """What a drafter writes. Everything else in a Draft (moments, metrics, timeline) is computed, not written.
    This is also the structured-output contract for LLM drafters."""

    summary: str
    impact_statement: str
    highlights: list[Highlight] = Field(default_factory=list)
    contributing_factors: list[ContributingFactor] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    lessons: list[Lesson] = Field(default_factory=list)


class RelatedIncident(_Frozen):
    """A past incident like this one, from the similar-incident index."""

    incident_id: str
    title: str
    score: float
    date: str | None = None
    severity: str | None = None
    section: str | None = Field(None, description="The section that matched best.")
    snippet: str = ""
    source: str | None = Field(
        None, description="The published postmortem's URL (link_base_url + id), or null; never a file path."
    )


class DraftProvenance(_Frozen):
    drafter: str
    model: str | None = None
    prompt: str | None = None
    tokens: dict[str, int] = Field(default_factory=dict)
    generated_at: AwareDatetime
    pipeline_version: str
    bundle: str
    fallback_reason: str | None = None
    coverage: str | None = Field(None, description="What part of the timeline the model saw.")


class ValidationReport(_Frozen):
    ok: bool
    problems: list[str] = Field(default_factory=list)
    repairs: list[str] = Field(default_factory=list)
    blame_hits: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class Draft(_Frozen):
    incident: DraftIncident
    key_moments: KeyMoments
    metrics: Metrics
    summary: str
    impact: Impact
    highlights: list[Highlight] = Field(default_factory=list)
    contributing_factors: list[ContributingFactor] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    lessons: list[Lesson] = Field(default_factory=list)
    related: list[RelatedIncident] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    quarantine: list[Quarantined] = Field(default_factory=list)
    stats: TimelineStats
    validation: ValidationReport | None = None
    provenance: DraftProvenance
