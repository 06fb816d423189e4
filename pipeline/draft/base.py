"""The Drafter protocol: a facts sheet and the timeline in, a validated written draft (and how it was made) out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pipeline.budget import Coverage
from pipeline.draft.facts import FactsSheet
from pipeline.models import DraftContent, ValidationReport
from pipeline.timeline import Timeline


@dataclass(frozen=True)
class DraftResult:
    content: DraftContent
    report: ValidationReport
    drafter: str
    model: str | None = None
    prompt: str | None = None  # "id@version sha256:<12 hex>"
    tokens: dict[str, int] = field(default_factory=dict)
    fallback_reason: str | None = None
    coverage: Coverage | None = None


class Drafter(Protocol):
    name: str

    def draft(self, facts: FactsSheet, timeline: Timeline) -> DraftResult: ...
