"""The pipeline as plain functions: bundle -> per-source parse -> timeline -> facts -> draft -> validate ->
render -> files. The CLI calls these directly (no orchestration cost on the interactive path); flows.py
wraps the same functions in Prefect tasks.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import __version__
from pipeline.atomic import write_atomic
from pipeline.bundle import Bundle, load_bundle, parse_source
from pipeline.draft.base import Drafter
from pipeline.draft.facts import build_facts
from pipeline.draft.facts_drafter import FactsDrafter
from pipeline.draft.scrub import output_redactor, scrub_inputs
from pipeline.errors import ConfigError
from pipeline.leak_guard import check_model
from pipeline.models import (
    Draft,
    DraftIncident,
    DraftProvenance,
    Impact,
    ParseOutput,
    RelatedIncident,
    ValidationReport,
)
from pipeline.paths import draft_file
from pipeline.render import document_url, render_json, render_markdown, safe_url
from pipeline.section_key import SectionKey, load_section_key
from pipeline.settings import Settings
from pipeline.timeline import Timeline, build_timeline

if TYPE_CHECKING:
    from pipeline.index import Index
    from pipeline.publish import Publisher
    from pipeline.sweep import IncidentSource


@dataclass(frozen=True)
class DraftFiles:
    markdown: Path
    json: Path


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Normalising allocates millions of small objects that all live until the timeline is built. CPython's
    cyclic collector would walk that growing heap again and again (on 1M events it dominated the run), and the
    parsers create no reference cycles, so it is paused for the duration and restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_timeline(path: Path | str, settings: Settings) -> tuple[Bundle, Timeline]:
    """Bundle on disk -> normalised timeline (parse every source, merge, dedup, collapse, fold)."""
    with bulk_allocation():
        bundle = load_bundle(path, settings)
        return bundle, normalise(bundle, gather(bundle), settings)


def gather(bundle: Bundle) -> list[ParseOutput]:
    return [parse_source(bundle, source) for source in bundle.sources]


def normalise(bundle: Bundle, outputs: Sequence[ParseOutput], settings: Settings) -> Timeline:
    return build_timeline(bundle.incident_id, outputs, settings, extra_quarantine=bundle.quarantined)


def compose(
    bundle: Bundle, timeline: Timeline, settings: Settings, drafter: Drafter | None = None
) -> tuple[Draft, ValidationReport]:
    """Facts, drafting and validation. A drafter returns only validated content (or raises), so nothing
    unchecked reaches the renderer. Every path to a draft comes through here, so this is where the incident's
    texts are redacted, once, before anything is built from them (pipeline.draft.scrub), and where the finished
    draft is checked for any original the redactor replaced (pipeline.leak_guard)."""
    drafter = drafter or FactsDrafter()
    redactor = output_redactor(settings)
    manifest, timeline = scrub_inputs(bundle.manifest, timeline, redactor)
    facts = build_facts(manifest, timeline, settings)
    result = drafter.draft(facts, timeline)
    content, report = result.content, result.report
    incident: DraftIncident = facts.incident
    draft = Draft(
        incident=incident,
        key_moments=facts.key_moments,
        metrics=facts.metrics,
        summary=content.summary,
        impact=Impact(statement=content.impact_statement, **facts.impact.model_dump()),
        highlights=content.highlights,
        contributing_factors=content.contributing_factors,
        action_items=content.action_items,
        lessons=content.lessons,
        timeline=timeline.entries(),
        quarantine=timeline.quarantine,
        stats=timeline.stats,
        validation=report,
        provenance=DraftProvenance(
            drafter=result.drafter,
            model=result.model,
            prompt=result.prompt,
            tokens=result.tokens,
            fallback_reason=result.fallback_reason,
            coverage=result.coverage.describe() if result.coverage else None,
            generated_at=datetime.now(UTC),
            pipeline_version=__version__,
            bundle=bundle.path.name,  # the bundle's name: a draft is shared, a path on this machine is not
        ),
    )
    check_model(draft, f"the draft of {incident.id}", redactor=redactor)
    return draft, report


def open_index(settings: Settings, *, create: bool = False) -> Index:
    """The similar-incident index with the configured embedder (local ONNX MiniLM unless configured). The
    embedder's requests and the index's restricted documents and queries follow the settings' egress policy."""
    from pipeline.embeddings import make_embedder
    from pipeline.index import Index

    return Index(settings, make_embedder(settings), create=create)


def with_related(
    draft: Draft, index: Index, manifest_teams: Sequence[str], k: int = 3, *, link_base_url: str | None = None
) -> Draft:
    """The draft with its top past incidents from the index (unchanged when the index is empty). A restricted
    draft may show its own teams' restricted past incidents; any other draft only public and internal ones.

    A related incident is named by its id; its link is ``link_base_url`` + the id (settings.link_base_url, an
    http(s) URL) or none at all. Where the index read the past postmortem from is a location on the indexing
    machine, meaningless (and revealing) in a draft that is published, so it never reaches the draft."""
    if link_base_url is not None and safe_url(link_base_url) is None:
        raise ConfigError(f"link_base_url must be an http(s) URL, got {link_base_url!r}")
    if not index.stats()["incidents"]:
        return draft
    teams = list(manifest_teams) if draft.incident.visibility == "restricted" else []
    hits = index.similar_to_draft(draft, k=k, teams=teams)
    related = [
        RelatedIncident(
            incident_id=h.incident_id,
            title=h.title,
            score=round(h.score, 4),
            date=h.date.isoformat() if h.date else None,
            severity=h.severity,
            section=h.section,
            snippet=h.snippet,
            source=document_url(link_base_url, h.incident_id),
        )
        for h in hits
    ]
    return draft.model_copy(update={"related": related})


def section_key(settings: Settings) -> SectionKey:
    """The installation's key for section markers (created on first use; pipeline.section_key)."""
    return load_section_key(settings.section_key_path)


def write_draft(draft: Draft, out_dir: Path, key: SectionKey) -> DraftFiles:
    """The draft's Markdown (section markers signed with ``key``) and JSON, each written atomically."""
    markdown = write_atomic(draft_file(out_dir, draft.incident.id, ".md"), render_markdown(draft, key=key))
    json_path = write_atomic(draft_file(out_dir, draft.incident.id, ".json"), render_json(draft))
    return DraftFiles(markdown=markdown, json=json_path)


def make_drafter(settings: Settings, model: str | None = None, base_url: str | None = None) -> Drafter:
    """The LLMDrafter when a model is configured (argument or POSTMORTEM_LLM_MODEL), else the FactsDrafter."""
    if not (model or settings.llm_model):
        return FactsDrafter()
    from pipeline.draft.llm_drafter import LLMDrafter
    from pipeline.egress import EgressPolicy
    from pipeline.llm import LLMClient, LLMConfig, ResponseCache, RunLog

    config = LLMConfig.from_settings(settings, model=model, base_url=base_url)
    client = LLMClient(
        config,
        RunLog(settings.runs_dir / "llm_calls.jsonl"),
        ResponseCache(settings.cache_dir / "llm") if settings.llm_cache else None,
        policy=EgressPolicy.from_settings(settings),
    )
    return LLMDrafter(client, settings, restore_kinds=frozenset(settings.redaction_restore_kinds))


def draft_bundle(path: Path | str, settings: Settings, drafter: Drafter | None = None) -> tuple[Bundle, Draft]:
    bundle, timeline = load_timeline(path, settings)
    draft, _ = compose(bundle, timeline, settings, drafter)
    return bundle, draft


def sweep_sources(settings: Settings) -> list[IncidentSource]:
    """The landing directory, the Alertmanager groups `postmortem receive` landed, and the vendor connectors in
    sources.yaml when that file exists."""
    from pipeline.alert_groups import AlertGroupSource
    from pipeline.sweep import LandingSource

    alert_groups = AlertGroupSource(settings.alerts_landing)
    sources: list[IncidentSource] = [LandingSource.from_settings(settings), alert_groups]
    if os.path.lexists(settings.sources_path):  # a folder or an unreadable file in its place is an error, not "none"
        from pipeline.connector_source import load_sources

        sources.extend(load_sources(settings.sources_path, alert_groups))
    return sources


def make_publisher(settings: Settings) -> Publisher | None:
    """The publisher configured in publish.yaml, if that file exists."""
    if not os.path.lexists(settings.publish_path):  # present but unreadable (or a folder): load_publish_config says so
        return None
    from pipeline.ledger import Ledger
    from pipeline.publish import Publisher, load_publish_config

    def aliases(incident_id: str) -> list[str]:
        with Ledger.for_home(settings.home) as ledger:
            return ledger.aliases_of(incident_id)

    return Publisher(load_publish_config(settings.publish_path), settings.home / "drafts", aliases)
