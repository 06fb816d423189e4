"""Validation before anything is rendered: citations exist, quotes are verbatim from their evidence, numbers
in prose equal computed facts, and no blaming language. Repairs what can be repaired safely (drops unknown
citations and the items left without support); anything else is a problem that rejects the draft.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass, field

from pipeline.blame import blame_hits
from pipeline.errors import DraftValidationError
from pipeline.models import MOMENT_NAMES, DraftContent, KeyMoments, ValidationReport
from pipeline.quantities import counts_in, duration_matches, durations_in

_QUOTE = re.compile(r"\u201c([^\u201d]*)\u201d")


@dataclass(frozen=True)
class Facts:
    """What a draft is checked against."""

    known_ids: Set[str]
    texts: Mapping[str, str]  # event id -> source text, for quote checks
    durations_s: Mapping[str, int]
    counts: Mapping[str, int]  # keyed "noun" or "noun:detail" ("alert", "alert:storm")
    key_moments: KeyMoments | None = None


@dataclass
class _Findings:
    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    blame: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def _check_prose(where: str, prose: str, evidence: list[str], facts: Facts, found: _Findings) -> None:
    for hit in blame_hits(prose):
        found.blame.append(f"{where}: \u201c{hit}\u201d")
    for quote in _QUOTE.findall(prose):
        needle = _normalise(quote.rstrip("…"))
        if needle and not any(needle in _normalise(facts.texts.get(eid, "")) for eid in evidence):
            found.problems.append(f"{where}: quote \u201c{quote[:60]}\u201d is not in its cited evidence")
    claims = _QUOTE.sub(" ", prose)
    seconds = set(facts.durations_s.values())
    for mention in durations_in(claims):
        if not duration_matches(mention, seconds):
            found.problems.append(f"{where}: duration \u201c{mention.text}\u201d matches no computed metric")
    for mention in counts_in(claims):
        same_noun = {v for k, v in facts.counts.items() if k.split(":")[0] == mention.noun}
        allowed = same_noun or set(facts.counts.values())
        if int(mention.value) not in allowed:
            found.problems.append(f"{where}: count \u201c{mention.text}\u201d does not match the computed facts")


def _moment_order(moments: KeyMoments, found: _Findings) -> None:
    previous = None
    for name in MOMENT_NAMES:
        at = moments.get(name).at
        if at is None:
            continue
        if previous is not None and at < previous[1]:
            found.warnings.append(f"key moment {name} ({at:%H:%M}) is before {previous[0]} ({previous[1]:%H:%M})")
        previous = (name, at)


def validate_content(content: DraftContent, facts: Facts) -> tuple[DraftContent, ValidationReport]:
    """Check and repair; the report says what was wrong. Raise nothing: callers decide (see `ensure_valid`)."""
    found = _Findings()
    known = facts.known_ids

    def cited(where: str, ids: list[str]) -> list[str]:
        kept = [i for i in ids if i in known]
        for bad in sorted(set(ids) - set(kept)):
            found.repairs.append(f"{where}: dropped citation of unknown event {bad}")
        return kept

    factors = []
    for n, factor in enumerate(content.contributing_factors, start=1):
        evidence = cited(f"factor {n}", factor.evidence)
        if not evidence:
            found.repairs.append(f"factor {n}: removed, no valid evidence left (\u201c{factor.statement[:60]}\u201d)")
            continue
        _check_prose(f"factor {n}", factor.statement, evidence, facts, found)
        factors.append(factor.model_copy(update={"evidence": evidence}))

    lessons = []
    for n, lesson in enumerate(content.lessons, start=1):
        evidence = cited(f"lesson {n}", lesson.evidence)
        if not evidence:
            found.repairs.append(f"lesson {n}: removed, no valid evidence left")
            continue
        _check_prose(f"lesson {n}", lesson.statement, evidence, facts, found)
        lessons.append(lesson.model_copy(update={"evidence": evidence}))

    actions = []
    for n, item in enumerate(content.action_items, start=1):
        evidence = cited(f"action item {n}", item.evidence)
        if item.evidence and not evidence:
            found.repairs.append(f"action item {n}: removed, its citations do not exist")
            continue
        hits = blame_hits(item.description)
        if hits:
            found.repairs.append(f"action item {n}: removed, blaming language \u201c{hits[0]}\u201d")
            continue
        actions.append(item.model_copy(update={"evidence": evidence}))

    highlights = []
    for n, highlight in enumerate(content.highlights, start=1):
        if highlight.event_id not in known:
            found.repairs.append(f"highlight {n}: removed, unknown event {highlight.event_id}")
            continue
        _check_prose(f"highlight {n}", highlight.text, [highlight.event_id], facts, found)
        highlights.append(highlight)

    _check_prose("summary", content.summary, sorted(known), facts, found)
    _check_prose("impact", content.impact_statement, sorted(known), facts, found)
    if facts.key_moments is not None:
        _moment_order(facts.key_moments, found)

    repaired = content.model_copy(
        update={
            "contributing_factors": factors,
            "lessons": lessons,
            "action_items": actions,
            "highlights": highlights,
        }
    )
    report = ValidationReport(
        ok=not found.problems and not found.blame,
        problems=found.problems,
        repairs=found.repairs,
        blame_hits=found.blame,
        warnings=found.warnings,
    )
    return repaired, report


def ensure_valid(report: ValidationReport) -> None:
    if not report.ok:
        raise DraftValidationError(report.problems + [f"blame: {b}" for b in report.blame_hits])
