"""LLMDrafter: a language model writes the prose from the facts sheet and the packed timeline, and is held to
exactly the checks the FactsDrafter passes. One re-ask carrying the problems; then the FactsDrafter, with the
reason recorded in provenance. No error text ever becomes draft content.

Before anything leaves the machine every text is redacted (stable placeholders, mapping kept here), the
request is checked once more for any original secret value, and where it may go is the egress policy's decision
(pipeline.egress): restricted incidents only go to this machine unless policy allows otherwise, judged from the
effective destination (provider, base URL, proxy, every redirect hop).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline.budget import Coverage, PackedTimeline, chunk_by_tokens, count_tokens, event_line, pack_timeline
from pipeline.draft.base import DraftResult
from pipeline.draft.facts import FactsSheet, validation_facts
from pipeline.draft.facts_drafter import FactsDrafter
from pipeline.errors import EgressError, LLMError, PolicyError
from pipeline.llm import LLMClient, Usage
from pipeline.models import DraftContent, Event, ValidationReport
from pipeline.prompts import Prompt, get_prompt
from pipeline.redact import ALL_KINDS, Redactor, output_mask_kinds
from pipeline.settings import Settings
from pipeline.timeline import Timeline
from pipeline.validate import validate_content

_PROMPT_OVERHEAD_TOKENS = 96  # chat-format wrapping and role tokens, beyond the text we count
_MAP_NOTES = 6


class EventNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    evidence: list[str] = Field(default_factory=list)


class EventNotes(BaseModel):
    """Output of the map step (prompt summarise_events)."""

    model_config = ConfigDict(extra="forbid")

    notes: list[EventNote] = Field(default_factory=list)


@dataclass
class _Tally:
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    cached_calls: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, usage: Usage, cached: bool) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.calls += 0 if cached else 1
        self.cached_calls += 1 if cached else 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input": self.input_tokens,
            "output": self.output_tokens,
            "calls": self.calls,
            "cached_calls": self.cached_calls,
        }


class LLMDrafter:
    name = "llm"

    def __init__(
        self,
        client: LLMClient,
        settings: Settings,
        prompt: Prompt | None = None,
        map_prompt: Prompt | None = None,
        restore_kinds: frozenset[str] = frozenset(),
    ) -> None:
        self.client = client
        self.settings = settings
        self.prompt = prompt or get_prompt("draft_postmortem")
        self.map_prompt = map_prompt or get_prompt("summarise_events")
        # what the shared outputs keep unmasked (the texts arrive scrubbed of everything else) is redacted for
        # the model and put back in its answer, so prose and timeline show the same thing
        kept = ALL_KINDS - output_mask_kinds(settings.mask_pii_in_outputs, settings.redaction_restore_kinds)
        self.restore_kinds = frozenset(restore_kinds) | kept
        self.fallback = FactsDrafter()

    @property
    def prompt_ref(self) -> str:
        return f"{self.prompt.ref} sha256:{self.prompt.sha256[:12]}"

    def draft(self, facts: FactsSheet, timeline: Timeline) -> DraftResult:
        tally = _Tally()
        config = self.client.config
        restricted = facts.incident.visibility == "restricted"
        refusal = self.client.refusal(restricted=restricted)
        if refusal is not None:
            what = "restricted incident" if restricted else "incident"
            return self._fall_back(facts, timeline, tally, None, f"{what} not sent to {config.endpoint}: {refusal}")
        redactor = Redactor()
        events = [e.model_copy(update={"text": redactor.redact(e.text)}) for e in timeline.events()]
        texts = {e.id: e.text for e in events}
        facts_json = redactor.redact(_facts_for_prompt(facts))
        packed = self._pack(facts, events, facts_json)
        try:
            packed = self._summarise_leftovers(packed, events, facts.incident.id, redactor, tally, restricted)
            content, report = self._ask(facts, timeline, facts_json, packed, texts, redactor, tally, restricted)
        except EgressError as exc:
            return self._fall_back(facts, timeline, tally, packed.coverage, f"refused by the egress policy: {exc}")
        except LLMError as exc:
            return self._fall_back(facts, timeline, tally, packed.coverage, f"model call failed: {exc}")
        if content is None:
            return self._fall_back(
                facts,
                timeline,
                tally,
                packed.coverage,
                "answer failed validation twice: " + "; ".join(tally.problems[:4]),
            )
        if self.restore_kinds:
            content = DraftContent.model_validate_json(redactor.restore(content.model_dump_json(), self.restore_kinds))
        return DraftResult(
            content=content,
            report=report,
            drafter=self.name,
            model=config.model,
            prompt=self.prompt_ref,
            tokens=tally.as_dict(),
            coverage=packed.coverage,
        )

    # --- steps ------------------------------------------------------------------------------------------

    def _count(self, text: str) -> int:
        return count_tokens(text, self.settings)

    def _pack(self, facts: FactsSheet, events: list[Event], facts_json: str) -> PackedTimeline:
        system, user = self.prompt.render(
            title=facts.incident.title, facts=facts_json, timeline="", coverage="", feedback=""
        )
        config = self.client.config
        budget = (
            config.context_tokens
            - config.output_reserve_tokens
            - self._count(system)
            - self._count(user)
            - _PROMPT_OVERHEAD_TOKENS
        )
        if budget <= 0:
            raise LLMError(f"the facts sheet alone exceeds the {config.context_tokens}-token context of {config.model}")
        must = _cited_ids(facts)
        return pack_timeline(events, must, budget, self._count)

    def _summarise_leftovers(
        self,
        packed: PackedTimeline,
        events: list[Event],
        incident_id: str,
        redactor: Redactor,
        tally: _Tally,
        restricted: bool,
    ) -> PackedTimeline:
        """Map step: substantive events that did not fit are condensed, chunk by chunk, into notes that cite
        them. Bounded by settings.llm_map_max_calls; whatever stays out is reported, never silently cut."""
        if not packed.leftover_ids or self.settings.llm_map_max_calls == 0:
            return packed
        by_id = {e.id: e for e in events}
        leftovers = [by_id[i] for i in packed.leftover_ids]
        lines = [event_line(e) for e in leftovers]
        config = self.client.config
        overhead = self._count(
            "\n".join(self.map_prompt.render(first_at="", last_at="", count="", events="", max_notes=""))
        )
        map_budget = config.context_tokens - self.map_prompt.params.max_tokens - overhead - _PROMPT_OVERHEAD_TOKENS
        chunks = chunk_by_tokens(lines, map_budget, self._count)[: self.settings.llm_map_max_calls]
        notes: list[str] = []
        summarised = 0
        known = set(by_id)
        for chunk in chunks:
            chunk_events = [leftovers[i] for i in chunk]
            variables = {
                "first_at": f"{chunk_events[0].ts:%Y-%m-%d %H:%M}",
                "last_at": f"{chunk_events[-1].ts:%Y-%m-%d %H:%M}",
                "count": len(chunk_events),
                "events": "\n".join(lines[i] for i in chunk),
                "max_notes": _MAP_NOTES,
            }
            self._guard(redactor, variables)
            answer = self.client.structured(
                self.map_prompt, EventNotes, incident_id=incident_id, variables=variables, restricted=restricted
            )
            tally.add(answer.usage, answer.cached)
            summarised += len(chunk_events)
            if answer.value is None:
                continue
            for note in answer.value.notes[:_MAP_NOTES]:
                cited = [i for i in note.evidence if i in known]
                if cited and note.text.strip():
                    notes.append(f"[note citing {', '.join(cited[:6])}] {' '.join(note.text.split())[:300]}")
        coverage = packed.coverage.model_copy(
            update={"summarised": summarised, "left_out": packed.coverage.left_out - summarised}
        )
        return packed.model_copy(
            update={"lines": [*packed.lines, "NOTES ON EVENTS NOT SHOWN:", *notes], "coverage": coverage}
        )

    def _ask(
        self,
        facts: FactsSheet,
        timeline: Timeline,
        facts_json: str,
        packed: PackedTimeline,
        texts: dict[str, str],
        redactor: Redactor,
        tally: _Tally,
        restricted: bool,
    ) -> tuple[DraftContent | None, ValidationReport]:
        checks = validation_facts(facts, timeline, texts=texts)
        feedback = ""
        report = ValidationReport(ok=False)
        for _attempt in range(2):
            variables = {
                "title": facts.incident.title,
                "facts": facts_json,
                "timeline": packed.text,
                "coverage": packed.coverage.describe(),
                "feedback": feedback,
            }
            self._guard(redactor, variables)
            answer = self.client.structured(
                self.prompt, DraftContent, incident_id=facts.incident.id, variables=variables, restricted=restricted
            )
            tally.add(answer.usage, answer.cached)
            if answer.value is None:
                problems = [answer.error or "no answer"]
            else:
                content, report = validate_content(answer.value, checks)
                if report.ok:
                    return content, report
                problems = report.problems + [f"blaming language: {b}" for b in report.blame_hits]
            tally.problems.extend(problems)
            feedback = (
                "\nYOUR PREVIOUS ANSWER WAS REJECTED. Fix exactly these problems and answer again:\n- "
                + "\n- ".join(p[:300] for p in problems[:10])
            )
        return None, report

    def _guard(self, redactor: Redactor, variables: dict[str, Any]) -> None:
        """Last check before a request leaves: no original secret/PII value may be in it."""
        if any(redactor.contains_known_value(str(v)) for v in variables.values()):
            raise PolicyError("a redacted value is still present in the model request; refusing to send it")

    def _fall_back(
        self, facts: FactsSheet, timeline: Timeline, tally: _Tally, coverage: Coverage | None, reason: str
    ) -> DraftResult:
        result = self.fallback.draft(facts, timeline)
        return DraftResult(
            content=result.content,
            report=result.report,
            drafter=f"{self.fallback.name} (fallback from {self.name})",
            model=self.client.config.model,
            prompt=self.prompt_ref,
            tokens=tally.as_dict(),
            fallback_reason=reason[:500],
            coverage=coverage,
        )


def _cited_ids(facts: FactsSheet) -> set[str]:
    ids = {
        m.event_id
        for m in (facts.key_moments.get(n) for n in ("started", "detected", "acknowledged", "mitigated", "resolved"))
        if m.event_id
    }
    for factor in facts.factors:
        ids.update(factor.evidence)
    for item in facts.action_items:
        ids.update(item.evidence)
    for lesson in facts.lessons:
        ids.update(lesson.evidence)
    ids.update(h.event_id for h in facts.highlights)
    ids.update(facts.impact.evidence)
    return ids


def _facts_for_prompt(facts: FactsSheet) -> str:
    """The facts sheet as the model reads it: compact JSON, candidate factors and action items labelled as such."""
    data = facts.model_dump(mode="json")
    data["candidate_factors"] = data.pop("factors")
    data["candidate_action_items"] = data.pop("action_items")
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
