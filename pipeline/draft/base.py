"""The Drafter protocol: a facts sheet and the timeline in, the written part of a draft out."""

from __future__ import annotations

from typing import Protocol

from pipeline.draft.facts import FactsSheet
from pipeline.models import DraftContent
from pipeline.timeline import Timeline


class Drafter(Protocol):
    name: str

    def write(self, facts: FactsSheet, timeline: Timeline) -> DraftContent: ...
