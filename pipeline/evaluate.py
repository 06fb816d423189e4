"""The evaluation runner: a suite (``evals/suites/<id>.v<N>.yaml``) names gold bundles, the drafter and prompt
under test, and thresholds; a run drafts every case through the real pipeline, scores it
(``pipeline.eval_metrics``), writes one typed JSONL event per case under ``settings.runs_dir/evals/<run id>.jsonl``,
and passes only when every threshold holds and nothing regressed beyond tolerance against the baseline
(``evals/baselines/<suite>@<drafter>.json``, compared over the cases both share).

Public entry points (the CLI and the Prefect flow are thin wrappers):

* ``run_suite(suite_ref, settings, *, drafter, prompt_ref, baseline, llm_model, base_url) -> RunResult``
* ``prepare_run`` / ``evaluate_case`` / ``finish_run`` — the same run in three steps, one task per case;
* ``load_suite``, ``list_suites``, ``resolve_cases``, ``load_baseline``, ``write_baseline``, ``read_events``.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import TypeAdapter, ValidationError

from pipeline import __version__
from pipeline.atomic import write_atomic
from pipeline.bundle import Bundle, load_bundle
from pipeline.draft.base import Drafter
from pipeline.draft.facts import build_facts, validation_facts
from pipeline.draft.facts_drafter import FactsDrafter
from pipeline.draft.scrub import output_redactor, scrub_inputs
from pipeline.errors import LimitExceeded, PostmortemError
from pipeline.eval_metrics import (
    SPECS,
    CaseInputs,
    Judge,
    Secret,
    aggregate,
    by_category,
    check_thresholds,
    compare,
    excerpt,
    judge_tallies,
    redactor_secrets,
    score_draft,
    trap_secrets,
)
from pipeline.eval_models import (
    Baseline,
    BaselineCase,
    Case,
    CaseDetails,
    CaseDiff,
    CaseEvent,
    CaseResult,
    DrafterName,
    EvalError,
    EvalEvent,
    Gold,
    MetricComparison,
    RunFinished,
    RunStarted,
    RunSummary,
    Suite,
    events_path,
)
from pipeline.limits import load_yaml
from pipeline.models import Draft
from pipeline.prompts import PROMPTS_DIR, Prompt, get_prompt, list_prompts
from pipeline.redact import ALL_KINDS, Detector, Redactor, output_mask_kinds
from pipeline.service import compose, gather, normalise
from pipeline.settings import Settings
from pipeline.timeline import Timeline

REPO = Path(__file__).resolve().parent.parent
EVALS_DIR = REPO / "evals"
SUITES_DIR = EVALS_DIR / "suites"
BASELINES_DIR = EVALS_DIR / "baselines"
NO_BASELINE = "none"

_SUITE_REF = re.compile(r"^(?P<id>[a-z0-9][a-z0-9_\-]*?)(?:\.v(?P<version>\d+))?$")
_PROMPT_REF = re.compile(r"^(?P<id>[a-z0-9_\-]+)(?:@(?P<version>\d+))?$")
_PAIR = re.compile(r"\[\s+(-?[\d.e+-]+),\s+(-?[\d.e+-]+)\s+\]")  # a tally on one line in baseline files
_events = TypeAdapter[EvalEvent](EvalEvent)


# --- suites and cases ---------------------------------------------------------------------------------------


def load_suite_file(path: Path) -> Suite:
    try:
        data = load_yaml(path.read_bytes(), what=str(path))
        suite = Suite.model_validate({**(data or {}), "path": str(path)})
    except OSError as exc:
        raise EvalError(f"cannot read suite {path}: {exc.strerror}") from None
    except (yaml.YAMLError, ValidationError, TypeError, UnicodeDecodeError, LimitExceeded) as exc:
        raise EvalError(f"{path} is not a valid suite: {str(exc).splitlines()[0]}") from None
    if path.name != f"{suite.ref}.yaml":
        raise EvalError(f"{path}: a suite's file is named after its id and version ({suite.ref}.yaml)")
    unknown = sorted((set(suite.thresholds) | set(suite.regression_tolerance)) - set(SPECS))
    if unknown:
        raise EvalError(f"{path}: unknown metric(s) {', '.join(unknown)} (known: {', '.join(SPECS)})")
    return suite


def list_suites(root: Path = SUITES_DIR) -> list[Suite]:
    return sorted((load_suite_file(p) for p in root.glob("*.yaml")), key=lambda s: (s.id, s.version))


def load_suite(ref: str | Path, root: Path = SUITES_DIR) -> Suite:
    """``ID.vN``, ``ID`` (latest version) or a path to a suite file."""
    text = str(ref)
    if isinstance(ref, Path) or text.endswith((".yaml", ".yml")) or os.sep in text:
        return load_suite_file(Path(ref))
    match = _SUITE_REF.match(text)
    if match is None:
        raise EvalError(f"not a suite reference: {text!r} (expected ID, ID.vN or a path to a suite file)")
    versions = [s for s in list_suites(root) if s.id == match.group("id")]
    if not versions:
        known = ", ".join(s.ref for s in list_suites(root)) or "none"
        raise EvalError(f"no suite {match.group('id')!r} in {root} (known: {known})")
    if match.group("version") is None:
        return versions[-1]
    for suite in versions:
        if suite.version == int(match.group("version")):
            return suite
    raise EvalError(f"suite {match.group('id')} has no version {match.group('version')}")


def _display(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def resolve_cases(suite: Suite, base: Path = REPO) -> list[Case]:
    """Each entry is a bundle directory holding gold.yaml, or a glob of them (directories without gold.yaml that a
    glob matches are skipped). Case ids are the directory names and must be unique."""
    dirs: list[Path] = []
    for entry in suite.cases:
        if any(c in entry for c in "*?["):
            dirs += sorted(p for p in base.glob(entry) if (p / "gold.yaml").is_file())
            continue
        path = base / entry
        if not (path / "gold.yaml").is_file():
            raise EvalError(f"suite {suite.ref}: {entry} is not a bundle with a gold.yaml")
        dirs.append(path)
    cases: dict[str, Case] = {}
    for path in dirs:
        shown = _display(path, base)
        if path.name in cases and cases[path.name].path != shown:
            raise EvalError(f"suite {suite.ref}: two cases named {path.name} ({cases[path.name].path}, {shown})")
        cases[path.name] = Case(id=path.name, path=shown)
    if len(cases) < suite.min_cases:
        raise EvalError(f"suite {suite.ref} resolved {len(cases)} case(s); it needs at least {suite.min_cases}")
    return list(cases.values())


def load_gold(bundle_dir: Path) -> Gold:
    path = bundle_dir / "gold.yaml"
    try:
        return Gold.model_validate(load_yaml(path.read_bytes(), what=str(path)))
    except OSError as exc:
        raise EvalError(f"cannot read {path}: {exc.strerror}") from None
    except (yaml.YAMLError, ValidationError, UnicodeDecodeError, LimitExceeded) as exc:
        raise EvalError(f"{path} is not valid gold: {str(exc).splitlines()[0]}") from None


# --- baselines ----------------------------------------------------------------------------------------------


def baseline_path(suite_ref: str, drafter: str, root: Path = BASELINES_DIR) -> Path:
    return root / f"{suite_ref}@{drafter}.json"


def load_baseline(path: Path) -> Baseline:
    try:
        return Baseline.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise EvalError(f"cannot read baseline {path}: {exc.strerror}") from None
    except ValidationError as exc:
        raise EvalError(f"{path} is not a valid baseline: {str(exc).splitlines()[0]}") from None


def _resolve_baseline(ref: str | Path | None, suite: Suite, drafter: str) -> Path | None:
    """None: the committed baseline of (suite, drafter) when there is one; "none": no comparison; else a path,
    or ``SUITE@DRAFTER`` naming a committed baseline."""
    if ref is None:
        default = baseline_path(suite.ref, drafter)
        return default if default.is_file() else None
    text = str(ref)
    if text.strip().lower() in {"", NO_BASELINE}:
        return None
    path = Path(ref)
    if path.is_file():
        return path
    named = BASELINES_DIR / f"{text}.json"
    if not isinstance(ref, Path) and named.is_file():
        return named
    raise EvalError(f"baseline not found: {text}")


def write_baseline(run: RunResult, path: Path | None = None) -> Path:
    """Record a run as the baseline (default ``evals/baselines/<suite>@<drafter>.json``). Cases that errored are
    left out."""
    target = path or baseline_path(run.summary.suite, run.summary.drafter)
    text = _PAIR.sub(r"[\1, \2]", run.to_baseline().model_dump_json(indent=2))
    return write_atomic(target, text + "\n")


# --- the event log ------------------------------------------------------------------------------------------


@dataclass
class EventLog:
    """Append-only JSONL, one line per typed event (safe across threads: one write per line, under a lock)."""

    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def append(self, event: RunStarted | CaseEvent | RunFinished) -> None:
        line = (event.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


def read_events(path: Path) -> list[RunStarted | CaseEvent | RunFinished]:
    return [_events.validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- a run --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    run_id: str
    suite: Suite
    summary: RunSummary
    cases: list[CaseResult]
    events_path: Path
    baseline: Baseline | None = None

    @property
    def passed(self) -> bool:
        return self.summary.passed

    @property
    def exit_code(self) -> int:
        """0 when the run passed, 1 when a threshold failed, a metric regressed or a case could not be drafted."""
        return 0 if self.summary.passed else 1

    def report_dir(self) -> Path:
        """The default place for this run's report: beside its JSONL."""
        return self.events_path.with_suffix("")

    def to_baseline(self) -> Baseline:
        ok = [c for c in self.cases if c.error is None]
        return Baseline(
            suite=self.summary.suite,
            drafter=self.summary.drafter,
            prompt=self.summary.prompt,
            model=self.summary.model,
            pipeline_version=__version__,
            recorded_at=datetime.now(UTC),
            metrics=aggregate(c.tallies for c in ok),
            cases={c.case_id: BaselineCase(tallies=c.tallies, excerpt=c.excerpt) for c in ok},
        )


@dataclass
class EvalPlan:
    """Everything a run needs, resolved once; `evaluate_case` may run for several cases at once (threads)."""

    run_id: str
    suite: Suite
    cases: list[Case]
    settings: Settings
    drafter_name: DrafterName
    drafter: Drafter
    prompt: Prompt | None
    model: str | None
    judge: Judge | None
    baseline: Baseline | None
    baseline_path: Path | None
    log: EventLog
    base: Path = REPO
    started: float = field(default_factory=time.perf_counter)


def find_prompt(ref: str, prompts_dir: Path | None = None) -> Prompt:
    """A prompt from `prompts_dir` when it holds that id (and version), else from the project's prompts/."""
    if prompts_dir is not None:
        match = _PROMPT_REF.match(ref)
        wanted = match.group("id") if match else None
        version = int(match.group("version")) if match and match.group("version") else None
        here = [p for p in list_prompts(prompts_dir) if p.id == wanted and version in (None, p.version)]
        if here:
            return get_prompt(ref, prompts_dir)
    return get_prompt(ref, PROMPTS_DIR)


def prepare_run(
    suite_ref: str | Path | Suite,
    settings: Settings,
    *,
    drafter: DrafterName | None = None,
    prompt_ref: str | None = None,
    prompts_dir: Path | None = None,
    baseline: str | Path | None = None,
    llm_model: str | None = None,
    base_url: str | None = None,
    judge: bool | None = None,
    run_id: str | None = None,
    base: Path = REPO,
) -> EvalPlan:
    suite = suite_ref if isinstance(suite_ref, Suite) else load_suite(suite_ref)
    cases = resolve_cases(suite, base)
    if prompt_ref is not None and drafter == "facts":
        raise EvalError("a prompt is only used by the llm drafter (drop --prompt or use --drafter llm)")
    name: DrafterName = drafter or ("llm" if prompt_ref is not None else suite.drafter)
    if name not in ("facts", "llm"):
        raise EvalError(f"unknown drafter {name!r} (facts or llm)")
    model = llm_model or settings.llm_model
    want_judge = (suite.judge.enabled and model is not None) if judge is None else judge
    if name == "llm" and not model:
        raise EvalError("the llm drafter needs a model: pass --llm MODEL or set POSTMORTEM_LLM_MODEL")
    if want_judge and not model:
        raise EvalError("the judge needs a model: pass --llm MODEL or set POSTMORTEM_LLM_MODEL")

    prompt: Prompt | None = None
    client = None
    if model and (name == "llm" or want_judge):
        from pipeline.egress import EgressPolicy
        from pipeline.llm import LLMClient, LLMConfig, ResponseCache, RunLog

        client = LLMClient(
            LLMConfig.from_settings(settings, model=model, base_url=base_url),
            RunLog(settings.runs_dir / "llm_calls.jsonl"),
            ResponseCache(settings.cache_dir / "llm") if settings.llm_cache else None,
            policy=EgressPolicy.from_settings(settings),
        )
    drafter_impl: Drafter
    if name == "llm":
        from pipeline.draft.llm_drafter import LLMDrafter

        assert client is not None  # a model is configured (checked above)
        prompt = find_prompt(prompt_ref or suite.prompt, prompts_dir)
        drafter_impl = LLMDrafter(
            client,
            settings,
            prompt=prompt,
            map_prompt=find_prompt("summarise_events", prompts_dir),
            restore_kinds=frozenset(settings.redaction_restore_kinds),
        )
    else:
        drafter_impl = FactsDrafter()

    base_path = _resolve_baseline(baseline, suite, name)
    loaded = load_baseline(base_path) if base_path is not None else None
    run_id = run_id or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{suite.ref}-{name}-{uuid.uuid4().hex[:6]}"
    plan = EvalPlan(
        run_id=run_id,
        suite=suite,
        cases=cases,
        settings=settings,
        drafter_name=name,
        drafter=drafter_impl,
        prompt=prompt,
        model=model if client is not None else None,
        judge=Judge(client, settings, suite.judge) if want_judge and client is not None else None,
        baseline=loaded,
        baseline_path=base_path,
        log=EventLog(events_path(settings.runs_dir, run_id)),
        base=base,
    )
    plan.log.append(
        RunStarted(
            run_id=run_id,
            at=datetime.now(UTC),
            suite=suite.ref,
            suite_path=suite.path,
            drafter=name,
            prompt=prompt.ref if prompt else None,
            prompt_sha256=prompt.sha256 if prompt else None,
            model=plan.model,
            judge=plan.judge is not None,
            baseline=str(base_path) if base_path else None,
            cases=cases,
            pipeline_version=__version__,
        )
    )
    return plan


def build_inputs(
    bundle_dir: Path, bundle: Bundle, timeline: Timeline, draft: Draft, gold: Gold, settings: Settings
) -> tuple[CaseInputs, Redactor]:
    """What a draft of this bundle is scored against, and the Redactor that has seen every text of the bundle
    (its originals are leak candidates; it also redacts the case's excerpt)."""
    frame = timeline.frame
    raw = dict(zip(frame["id"].tolist(), frame["text"].tolist(), strict=True))
    # the texts every drafter built from (compose scrubs them the same way, deterministically), and those as an
    # LLM drafter saw them (entries redacted once more, in timeline order), so quotes of either re-check
    manifest, scrubbed = scrub_inputs(bundle.manifest, timeline, output_redactor(settings))
    shared = dict(zip(scrubbed.frame["id"].tolist(), scrubbed.frame["text"].tolist(), strict=True))
    llm = Redactor()
    seen = {e.id: llm.redact(e.text) for e in scrubbed.events()}
    texts = {i: "\n".join(dict.fromkeys([t, shared[i], seen[i] if i in seen else shared[i]])) for i, t in raw.items()}
    redactor = Redactor()  # every original in the bundle's texts is a leak candidate
    redactor.redact_many(raw.values())
    kept = ALL_KINDS - output_mask_kinds(settings.mask_pii_in_outputs, settings.redaction_restore_kinds)
    candidates = [*trap_secrets(bundle_dir, gold, list(raw.values())), *redactor_secrets(redactor)]
    facts = build_facts(manifest, scrubbed, settings)
    inputs = CaseInputs(
        draft=draft,
        gold=gold,
        known_ids=timeline.known_ids,
        event_files=dict(zip(frame["id"].tolist(), frame["file"].tolist(), strict=True)),
        facts=validation_facts(facts, scrubbed, texts=texts),
        secrets=[s for s in candidates if not _kept_in_outputs(s, kept)],
    )
    return inputs, redactor


def _kept_in_outputs(secret: Secret, kept: frozenset[str]) -> bool:
    """A value of a kind the settings keep in outputs (an e-mail with mask_pii_in_outputs off) is not a leak.
    Gold traps name their kind loosely (`pii_email_phone`), so the value's kind is the detector's."""
    if not kept:
        return False
    kinds = {secret.kind} if secret.kind in ALL_KINDS else {f.kind for f in Detector().scan(secret.value)}
    return bool(kinds) and kinds <= kept


def evaluate_case(plan: EvalPlan, case: Case) -> CaseResult:
    """Draft one gold bundle through the real pipeline and score it; the result is also logged."""
    started = time.perf_counter()
    bundle_dir = Path(case.path) if Path(case.path).is_absolute() else plan.base / case.path
    settings = plan.settings
    gold: Gold | None = None
    try:
        gold = load_gold(bundle_dir)
        bundle = load_bundle(bundle_dir, settings)
        timeline = normalise(bundle, gather(bundle), settings)
        draft, _ = compose(bundle, timeline, settings, plan.drafter)
    except PostmortemError as exc:
        result = CaseResult(
            case_id=case.id,
            bundle=case.path,
            incident_id=gold.incident if gold else case.id,
            drafter=plan.drafter_name,
            seconds=round(time.perf_counter() - started, 3),
            tallies={},
            details=CaseDetails(),
            error=f"{type(exc).__name__}: {exc}"[:500],
        )
        plan.log.append(CaseEvent(run_id=plan.run_id, at=datetime.now(UTC), result=result))
        return result

    inputs, redactor = build_inputs(bundle_dir, bundle, timeline, draft, gold, settings)
    text = excerpt(draft, redactor, plan.suite.judge.max_chars)
    tallies, details = score_draft(replace(inputs, outputs={"excerpt": text}), plan.suite.moment_tolerance_s)
    judged = None
    if plan.judge is not None:
        before = plan.baseline.cases.get(case.id) if plan.baseline else None
        judged = plan.judge.grade(draft, gold, text, before.excerpt if before and before.excerpt else None)
        tallies.update(judge_tallies(judged))
    result = CaseResult(
        case_id=case.id,
        bundle=case.path,
        incident_id=draft.incident.id,
        drafter=draft.provenance.drafter,
        prompt=draft.provenance.prompt,
        fallback_reason=draft.provenance.fallback_reason,
        seconds=round(time.perf_counter() - started, 3),
        tallies=tallies,
        details=details,
        judge=judged,
        excerpt=text,
    )
    plan.log.append(CaseEvent(run_id=plan.run_id, at=datetime.now(UTC), result=result))
    return result


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def finish_run(plan: EvalPlan, results: Sequence[CaseResult]) -> RunResult:
    """Aggregate, check thresholds, compare with the baseline, log the summary."""
    order = {c.id: n for n, c in enumerate(plan.cases)}
    cases = sorted(results, key=lambda r: order.get(r.case_id, len(order)))
    ok = [c for c in cases if c.error is None]
    metrics = aggregate(c.tallies for c in ok)
    thresholds = check_thresholds(metrics, plan.suite.thresholds)
    reasons = [
        f"{t.metric} = {_fmt(t.value)} is outside "
        + " and ".join(
            x for x in (f">= {t.min:g}" if t.min is not None else "", f"<= {t.max:g}" if t.max is not None else "") if x
        )
        for t in thresholds
        if not t.passed
    ]
    errors = [c for c in cases if c.error is not None]
    if errors:
        reasons.append(f"{len(errors)} case(s) could not be drafted: " + ", ".join(c.case_id for c in errors))
    comparisons: list[MetricComparison] = []
    diffs: list[CaseDiff] = []
    common: list[str] = []
    new_cases: list[str] = []
    missing: list[str] = []
    if plan.baseline is not None:
        comparisons, diffs, common = compare(
            {c.case_id: c.tallies for c in ok}, plan.baseline, plan.suite.regression_tolerance
        )
        diffs.sort(key=lambda d: order.get(d.case_id, len(order)))  # stable: metric order kept within a case
        new_cases = [c.case_id for c in ok if c.case_id not in plan.baseline.cases]
        missing = sorted(set(plan.baseline.cases) - {c.case_id for c in ok})
        reasons += [
            f"{m.metric} regressed vs baseline: {_fmt(m.baseline)} -> {_fmt(m.candidate)} (tolerance {m.tolerance:g})"
            for m in comparisons
            if m.regressed
        ]
    summary = RunSummary(
        run_id=plan.run_id,
        suite=plan.suite.ref,
        drafter=plan.drafter_name,
        prompt=plan.prompt.ref if plan.prompt else None,
        prompt_sha256=plan.prompt.sha256 if plan.prompt else None,
        model=plan.model,
        baseline=str(plan.baseline_path) if plan.baseline_path else None,
        cases=len(cases),
        errors=len(errors),
        seconds=round(time.perf_counter() - plan.started, 3),
        metrics=metrics,
        by_category=by_category(c.details for c in ok),
        thresholds=thresholds,
        comparisons=comparisons,
        compared_cases=common,
        new_cases=new_cases,
        missing_cases=missing,
        case_diffs=diffs,
        passed=not reasons,
        reasons=reasons,
    )
    plan.log.append(RunFinished(run_id=plan.run_id, at=datetime.now(UTC), summary=summary))
    return RunResult(
        run_id=plan.run_id,
        suite=plan.suite,
        summary=summary,
        cases=cases,
        events_path=plan.log.path,
        baseline=plan.baseline,
    )


def run_suite(
    suite_ref: str | Path | Suite,
    settings: Settings,
    *,
    drafter: Literal["facts", "llm"] | None = None,
    prompt_ref: str | None = None,
    baseline: str | Path | None = None,
    llm_model: str | None = None,
    base_url: str | None = None,
    prompts_dir: Path | None = None,
    judge: bool | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run a suite end to end (cases one after another). `drafter`/`prompt_ref` default to the suite's;
    `baseline` None uses the committed ``evals/baselines/<suite>@<drafter>.json`` when present, "none" compares
    with nothing; the judge runs when a model is configured unless `judge` is False."""
    plan = prepare_run(
        suite_ref,
        settings,
        drafter=drafter,
        prompt_ref=prompt_ref,
        prompts_dir=prompts_dir,
        baseline=baseline,
        llm_model=llm_model,
        base_url=base_url,
        judge=judge,
        run_id=run_id,
    )
    return finish_run(plan, [evaluate_case(plan, case) for case in plan.cases])
