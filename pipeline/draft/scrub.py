"""Redact once, at the root: every free text of an incident (event texts, actors, URLs, alert names and labels,
ticket titles, quarantine reasons and excerpts, the manifest's title and notes) is scrubbed before the facts
sheet, the detectors, the action-item parser or any drafter sees it.

Why here and not in each output: the draft is built by transforming source text (quoting a deploy message,
cutting a headline to 120 characters, taking a ticket title as an action item, dropping the ``@`` of a mention),
and a transformed secret is one the redactor no longer recognises (``https://deploy:pw@git`` without its ``@``
is no longer a URL with a password). Scrubbing first means every drafter (Facts and LLM), every citation
check and every output sees the same redacted evidence, and a quote is checked against the text it quotes.

What is masked is ``redact.output_mask_kinds``: secrets and card numbers always, other PII unless
``settings.mask_pii_in_outputs`` is off or ``settings.redaction_restore_kinds`` explicitly keeps a kind. The
LLM drafter still redacts everything left (its own Redactor numbers after these placeholders) before a call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from pipeline.models import IncidentManifest, Quarantined
from pipeline.redact import Redactor, output_mask_kinds
from pipeline.settings import Settings
from pipeline.timeline import Timeline

# frame columns holding free text besides "text" (ids, kinds, times, sources and provenance are not free text)
_TEXT_COLUMNS = ("actor", "service", "url", "signal")


def output_redactor(settings: Settings) -> Redactor:
    """A Redactor that masks what shared outputs may never show under `settings` (one per incident)."""
    return Redactor(kinds=output_mask_kinds(settings.mask_pii_in_outputs, settings.redaction_restore_kinds))


def scrub_timeline(timeline: Timeline, redactor: Redactor) -> Timeline:
    """The same timeline with every free-text field redacted (folded and merged events too: they can be cited,
    so quotes of them are checked). Event texts are redacted as one batch, in timeline order, so a secret seen
    in context anywhere is swept from every text and the numbering is the same on every run."""
    frame = timeline.frame
    if frame.empty:
        return Timeline(timeline.incident_id, frame, scrub_quarantine(timeline.quarantine, redactor), timeline.stats)
    texts = redactor.redact_many(str(t) if isinstance(t, str) else "" for t in frame["text"].tolist())
    columns: dict[str, pd.Series[Any]] = {"text": pd.Series(texts, dtype="object", index=frame.index)}
    for column in _TEXT_COLUMNS:
        columns[column] = pd.Series(_memo(redactor.redact, frame[column].tolist()), dtype="object", index=frame.index)
    columns["attrs"] = pd.Series(
        [redactor.redact_data(a) if isinstance(a, dict) else a for a in frame["attrs"].tolist()],
        dtype="object",
        index=frame.index,
    )
    return Timeline(
        timeline.incident_id,
        frame.assign(**columns),
        scrub_quarantine(timeline.quarantine, redactor),
        timeline.stats,
    )


def scrub_quarantine(records: list[Quarantined], redactor: Redactor) -> list[Quarantined]:
    """Quarantined records keep where they came from; their reason and excerpt (raw input) are redacted."""
    return [
        q.model_copy(update={"reason": redactor.redact(q.reason), "excerpt": redactor.redact(q.excerpt)})
        for q in records
    ]


def scrub_manifest(manifest: IncidentManifest, redactor: Redactor) -> IncidentManifest:
    """The manifest's free text (title, services, channel, override notes) redacted; ids, teams and times kept."""
    overrides = {
        name: o.model_copy(update={"note": redactor.redact(o.note)}) if o.note else o
        for name, o in manifest.overrides.items()
    }
    return manifest.model_copy(
        update={
            "title": redactor.redact(manifest.title) if manifest.title else manifest.title,
            "services": [redactor.redact(s) for s in manifest.services],
            "channel": redactor.redact(manifest.channel) if manifest.channel else manifest.channel,
            "overrides": overrides,
        }
    )


def scrub_inputs(
    manifest: IncidentManifest, timeline: Timeline, redactor: Redactor
) -> tuple[IncidentManifest, Timeline]:
    """Timeline first (the batch that numbers placeholders), then the manifest: always in this order, so the
    evaluation can rebuild exactly the texts a draft was built from."""
    scrubbed = scrub_timeline(timeline, redactor)
    return scrub_manifest(manifest, redactor), scrubbed


def _memo(redact: Callable[[str], str], values: list[Any]) -> list[Any]:
    """Redact string values, once per distinct value (actors, services and alert names repeat thousands of
    times in a storm); None and other non-strings pass through."""
    seen: dict[str, str] = {}
    out: list[Any] = []
    for value in values:
        if isinstance(value, str):
            if value not in seen:
                seen[value] = redact(value)
            out.append(seen[value])
        else:
            out.append(value)
    return out
