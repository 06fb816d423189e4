"""FactsDrafter: a useful, deterministic draft with no LLM. Prose comes from templates over the facts sheet,
so every number in it is a computed fact and every claim cites its events."""

from __future__ import annotations

from pipeline.draft.base import DraftResult
from pipeline.draft.facts import FactsSheet, validation_facts
from pipeline.models import DraftContent, KeyMoment
from pipeline.quantities import format_count, format_duration
from pipeline.timeline import Timeline
from pipeline.validate import ensure_valid, validate_content


def _when(moment: KeyMoment) -> str:
    return moment.at.strftime("%Y-%m-%d %H:%M UTC") if moment.at else "an unknown time"


class FactsDrafter:
    name = "facts"

    def draft(self, facts: FactsSheet, timeline: Timeline) -> DraftResult:
        """Template prose, validated like any other drafter's; our own templates failing is a bug, so raise."""
        content, report = validate_content(self.write(facts, timeline), validation_facts(facts, timeline))
        ensure_valid(report)
        return DraftResult(content=content, report=report, drafter=self.name)

    def write(self, facts: FactsSheet, timeline: Timeline) -> DraftContent:
        return DraftContent(
            summary=self._summary(facts),
            impact_statement=self._impact(facts),
            highlights=facts.highlights,
            contributing_factors=facts.factors,
            action_items=facts.action_items,
            lessons=facts.lessons,
        )

    def _summary(self, facts: FactsSheet) -> str:
        m, km = facts.metrics, facts.key_moments
        services = ", ".join(facts.incident.services) or "the affected service"
        sentences = [f"{facts.incident.title}. Impact on {services} started at {_when(km.started)}."]
        if km.detected.at is not None:
            by = f" by {facts.detected_by}" if facts.detected_by else ""
            ttd = m.time_to_detect_s
            delay = f", {format_duration(ttd)} after it started" if ttd is not None and ttd > 0 else ""
            sentences.append(f"It was detected{by}{delay}.")
        # a person's override can put moments out of order; a negative duration is never written as prose
        if m.time_to_acknowledge_s is not None and m.time_to_acknowledge_s >= 0:
            sentences.append(f"Responders acknowledged it {format_duration(m.time_to_acknowledge_s)} after detection.")
        if m.time_to_mitigate_s is not None and m.time_to_mitigate_s >= 0:
            sentences.append(f"Impact was mitigated {format_duration(m.time_to_mitigate_s)} after the start.")
        if m.time_to_resolve_s is not None and m.time_to_resolve_s >= 0:
            sentences.append(f"The incident was resolved {format_duration(m.time_to_resolve_s)} after the start.")
        if facts.factors:
            categories = sorted({f.category.replace("_", " ") for f in facts.factors})
            sentences.append("Contributing factors: " + ", ".join(categories) + ".")
        else:
            sentences.append("No contributing factor was detected automatically; responders should add them.")
        return " ".join(sentences)

    def _impact(self, facts: FactsSheet) -> str:
        i = facts.impact
        services = ", ".join(i.services) or "The affected service"
        parts = [f"{services} {'were' if len(i.services) > 1 else 'was'} impacted"]
        if i.duration_s is not None and i.duration_s >= 0:
            parts[0] += f" for {format_duration(i.duration_s)}"
        parts[0] += "."
        parts.append(
            f"Monitoring raised {format_count(i.alert_count, 'alert')}; "
            f"{format_count(i.page_count, 'page')} went out to responders."
        )
        if i.customer_tickets:
            parts.append(f"Customers opened {format_count(i.customer_tickets, 'customer ticket')}.")
        if i.severity:
            parts.append(f"Severity: {i.severity}.")
        return " ".join(parts)
