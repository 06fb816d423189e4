"""Prefect flows around the plain pipeline in service.py. Nothing else lives here.

Tasks are coarse — one per source to gather, one each to normalise, draft and write — because a task costs
milliseconds and a flow call about a second of orchestration on this class of machine. Task inputs are not
hashed for caching (bundles can be large), and I/O tasks retry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import State
from pydantic import BaseModel, ConfigDict

from pipeline import service
from pipeline.bundle import Bundle, load_bundle, parse_source
from pipeline.errors import PostmortemError
from pipeline.eval_models import Case, CaseResult, RunSummary
from pipeline.eval_report import render_report
from pipeline.evaluate import EvalPlan, evaluate_case, finish_run, prepare_run
from pipeline.models import Draft, Metrics, ParseOutput, Source
from pipeline.paths import draft_file
from pipeline.settings import get_settings
from pipeline.sweep import SweepBusyError, SweepReport, sweep
from pipeline.timeline import Timeline


class DraftRun(BaseModel):
    """What one draft_postmortem run reports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str
    title: str
    severity: str | None
    drafter: str
    metrics: Metrics
    factors: int
    action_items: int
    events: int
    quarantined: int
    unrecognised: list[str]
    related: list[str]
    markdown: Path
    json_path: Path


def _transient(task: object, task_run: object, state: State[Any]) -> bool:
    """Retry I/O hiccups, not errors that will fail the same way again (a missing bundle, bad YAML)."""
    try:
        state.result()
    except PostmortemError:
        return False
    except OSError:
        return True
    except Exception:  # noqa: BLE001 - Prefect hands us whatever the task raised; anything else is not I/O
        return False
    return False


@task(name="load-bundle", retries=2, retry_delay_seconds=1, retry_condition_fn=_transient, cache_policy=NONE)
def load_bundle_task(path: str) -> Bundle:
    return load_bundle(path)


@task(name="gather-source", retries=2, retry_delay_seconds=1, retry_condition_fn=_transient, cache_policy=NONE)
def gather_source_task(bundle: Bundle, source: Source) -> ParseOutput:
    return parse_source(bundle, source)


@task(name="normalise", cache_policy=NONE)
def normalise_task(bundle: Bundle, outputs: list[ParseOutput]) -> Timeline:
    return service.normalise(bundle, outputs, get_settings())


@task(name="draft-and-validate", cache_policy=NONE)
def compose_task(bundle: Bundle, timeline: Timeline, llm_model: str | None, base_url: str | None) -> Draft:
    """One coarse task: the drafter (and its per-incident redaction mapping) never crosses a task boundary."""
    settings = get_settings()
    draft, _ = service.compose(bundle, timeline, settings, service.make_drafter(settings, llm_model, base_url))
    return draft


@task(name="related-and-index", retries=2, retry_delay_seconds=1, retry_condition_fn=_transient, cache_policy=NONE)
def related_and_index_task(draft: Draft, teams: list[str], source: str) -> Draft:
    """Add the past incidents most like this one (when the index has any), then index the new draft."""
    settings = get_settings()
    index = service.open_index(settings, create=True)
    draft = service.with_related(draft, index, teams, link_base_url=settings.link_base_url)
    index.index_draft(draft, source, teams)
    return draft


@task(name="write-draft", retries=3, retry_delay_seconds=1, retry_condition_fn=_transient, cache_policy=NONE)
def write_task(draft: Draft, out_dir: str) -> service.DraftFiles:
    """The key is loaded here, never passed as a task parameter (Prefect records parameters)."""
    return service.write_draft(draft, Path(out_dir), service.section_key(get_settings()))


@flow(name="draft_postmortem")
def draft_postmortem(
    bundle_path: str,
    out_dir: str | None = None,
    llm_model: str | None = None,
    base_url: str | None = None,
    use_index: bool = True,
) -> DraftRun:
    """Draft one incident bundle: gather every source in parallel, normalise, draft, validate, write."""
    bundle = load_bundle_task(bundle_path)
    futures = [gather_source_task.submit(bundle, source) for source in bundle.sources]
    outputs = [future.result() for future in futures]
    timeline = normalise_task(bundle, outputs)
    draft = compose_task(bundle, timeline, llm_model, base_url)
    target = Path(out_dir or get_settings().drafts_dir)
    if use_index:
        source = draft_file(target, draft.incident.id, ".md").name  # not a path of this machine
        draft = related_and_index_task(draft, list(bundle.manifest.teams), source)
    files = write_task(draft, str(target))
    return DraftRun(
        incident_id=draft.incident.id,
        title=draft.incident.title,
        severity=draft.incident.severity,
        drafter=draft.provenance.drafter,
        metrics=draft.metrics,
        factors=len(draft.contributing_factors),
        action_items=len(draft.action_items),
        events=draft.stats.events,
        related=[f"{r.incident_id} ({r.score:.3f})" for r in draft.related],
        quarantined=draft.stats.quarantined,
        unrecognised=bundle.unrecognised,
        markdown=files.markdown,
        json_path=files.json,
    )


@flow(name="draft_bundles")
def draft_bundles(bundle_paths: list[str], out_dir: str | None = None) -> list[DraftRun]:
    """Draft several bundles, one draft_postmortem subflow each."""
    return [draft_postmortem(path, out_dir) for path in bundle_paths]


class IndexRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    counts: dict[str, int]
    rejected: list[str]
    incidents: int
    store: str


@task(name="index-paths", retries=2, retry_delay_seconds=1, retry_condition_fn=_transient, cache_policy=NONE)
def index_paths_task(paths: list[str]) -> IndexRun:
    index = service.open_index(get_settings(), create=True)
    report = index.index_paths([Path(p) for p in paths])
    return IndexRun(
        counts=report.counts,
        rejected=[f"{r.source}: {r.reason}" for r in report.rejected],
        incidents=int(index.stats()["incidents"]),
        store=str(index.where),
    )


@flow(name="index_postmortems")
def index_postmortems(paths: list[str]) -> IndexRun:
    """Backfill or refresh the similar-incident index from past postmortems (idempotent)."""
    return index_paths_task(paths)


@task(name="eval-case", cache_policy=NONE)
def eval_case_task(plan: EvalPlan, case: Case) -> CaseResult:
    return evaluate_case(plan, case)


@flow(name="run_evals")
def run_evals(
    suite: str = "draft-quality.v1",
    drafter: str | None = None,
    prompt: str | None = None,
    baseline: str | None = None,
    llm_model: str | None = None,
    base_url: str | None = None,
    report_dir: str | None = None,
) -> RunSummary:
    """Evaluate a suite (one task per case) and render its report; for scheduled eval deployments."""
    plan = prepare_run(
        suite,
        get_settings(),
        drafter=drafter,  # type: ignore[arg-type]
        prompt_ref=prompt,
        baseline=baseline,
        llm_model=llm_model,
        base_url=base_url,
    )
    futures = [eval_case_task.submit(plan, case) for case in plan.cases]
    run = finish_run(plan, [f.result() for f in futures])
    render_report(run, Path(report_dir) if report_dir else run.report_dir())
    return run.summary


@task(name="sweep", cache_policy=NONE)
def sweep_task(use_index: bool) -> SweepReport:
    """One coarse task: the sweep holds its own lock and ledger, and isolates failures per incident."""
    settings = get_settings()
    try:
        return sweep(
            settings, service.sweep_sources(settings), index=use_index, on_drafted=service.make_publisher(settings)
        )
    except SweepBusyError as exc:  # a previous scheduled run is still going: this one has nothing to add
        get_run_logger().info("skipped: %s", exc)
        return SweepReport()


@flow(name="sweep_closed_incidents")
def sweep_closed_incidents(use_index: bool = True) -> SweepReport:
    """Draft every incident closed since the last successful sweep, exactly once per set of inputs."""
    return sweep_task(use_index)
