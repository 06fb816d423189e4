"""Typed data of the evaluation harness: suites (data in ``evals/suites``), gold annotations (``gold.yaml``),
per-case scores, run summaries, committed baselines and the JSONL events a run writes.

Every model here forbids unknown keys except the gold annotations: ``gold.yaml`` is shared with the parser
tests (counts, tickets, quarantine, …), so ``Gold`` reads the part evaluations use and ignores the rest.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from pipeline.errors import PostmortemError
from pipeline.models import ActionType, FactorCategory, MomentName

DrafterName = Literal["facts", "llm"]


class EvalError(PostmortemError):
    """A suite, baseline or gold file is missing or invalid, or a run cannot start as asked."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- suites ----------------------------------------------------------------------------------------------


class Threshold(_Model):
    """Bounds an aggregate metric must stay within for the run to pass."""

    min: float | None = None
    max: float | None = None


class JudgeConfig(_Model):
    """The optional LLM judge: runs only when a model is configured (and `enabled`)."""

    enabled: bool = True
    pairwise: bool = Field(True, description="Compare with the baseline's text, both orders (position bias).")
    max_chars: int = Field(6000, ge=500, description="Each draft text is cut to this many characters.")


class Suite(_Model):
    """One suite file, ``evals/suites/<id>.v<version>.yaml``. A released version is never edited."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    version: int = Field(ge=1)
    description: str
    drafter: DrafterName = "facts"
    prompt: str = Field("draft_postmortem@1", description="Prompt under test when the drafter is the LLM.")
    cases: list[str] = Field(min_length=1, description="Gold bundle directories or globs, relative to the repo.")
    min_cases: int = Field(1, ge=1, description="Fewer resolved cases than this is an error, not a pass.")
    moment_tolerance_s: int = Field(60, ge=0)
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    regression_tolerance: dict[str, float] = Field(
        default_factory=dict, description="Per-metric overrides of the default regression tolerance."
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    path: str = Field("", description="Where the suite was loaded from (set by the loader).")

    @property
    def ref(self) -> str:
        return f"{self.id}.v{self.version}"


class Case(_Model):
    id: str
    path: str = Field(description="The bundle directory (repo-relative when inside the repo).")


# --- gold annotations (gold.yaml) ---------------------------------------------------------------------------


class _Gold(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GoldMoment(_Gold):
    at: AwareDatetime | None = None
    source: str | None = None
    kind: str | None = None
    file: str | None = None
    position: str | None = None
    also_acceptable: list[AwareDatetime] = Field(default_factory=list)


class GoldFactor(_Gold):
    category: FactorCategory
    why: str = ""
    evidence_files: list[str] = Field(default_factory=list)
    evidence_keys: list[str] = Field(default_factory=list)


class GoldNotExpected(_Gold):
    category: FactorCategory
    why: str = ""


class GoldActionItem(_Gold):
    description: str
    owner: str | None = None
    owner_slack_id: str | None = None
    due: str | None = None
    type: ActionType
    owner_stated: bool = True
    file: str | None = None
    ts: str | None = None
    key: str | None = None


class GoldKeyMessage(_Gold):
    name: str
    file: str
    ts: str | None = None


class GoldTrap(_Gold):
    kind: str
    file: str | None = None
    ts: str | None = None
    value_hint: str | None = None


class Gold(_Gold):
    incident: str
    bundle: str | None = None
    failure_mode: str = ""
    moments: dict[MomentName, GoldMoment | None] = Field(default_factory=dict)
    metrics_s: dict[str, int | None] = Field(default_factory=dict)
    contributing_factors: list[GoldFactor] = Field(default_factory=list)
    factor_categories_expected: list[FactorCategory] = Field(default_factory=list)
    factor_categories_acceptable: list[FactorCategory] = Field(default_factory=list)
    factor_categories_not_expected: list[GoldNotExpected] = Field(default_factory=list)
    action_items: list[GoldActionItem] = Field(default_factory=list)
    key_messages: list[GoldKeyMessage] = Field(default_factory=list)
    traps: list[GoldTrap] = Field(default_factory=list)

    @field_validator("factor_categories_not_expected", mode="before")
    @classmethod
    def _plain_categories(cls, value: object) -> object:
        """Entries may be `{category, why}` or a bare category name."""
        if isinstance(value, list):
            return [{"category": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator(
        "contributing_factors",
        "action_items",
        "key_messages",
        "traps",
        "factor_categories_expected",
        "factor_categories_acceptable",
        mode="before",
    )
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value


# --- scores ----------------------------------------------------------------------------------------------


class Tally(_Model):
    """One case's contribution to an aggregate: ratios aggregate as sum(num)/sum(den) over cases, counts as
    sum(num). A ratio with den 0 says "not applicable here". Serialised compactly as ``[num, den]``."""

    num: float = 0.0
    den: float = 1.0

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: object) -> object:
        if isinstance(value, list | tuple) and len(value) == 2:
            return {"num": value[0], "den": value[1]}
        return value

    @model_serializer
    def _as_pair(self) -> list[float]:
        return [self.num, self.den]


class MomentCheck(_Model):
    name: MomentName
    gold_at: datetime | None
    got_at: datetime | None
    delta_s: float | None = Field(None, description="Distance to the nearest accepted gold time.")
    ok: bool


class MetricError(_Model):
    name: str
    gold_s: int | None
    got_s: int | None
    error_s: int | None


class EvidenceCheck(_Model):
    category: str
    event_id: str
    file: str | None
    precise: bool


class ActionMatch(_Model):
    gold: str
    gold_type: str
    gold_owner: str | None
    matched: str | None = None
    score: float = 0.0
    owner: str | None = None
    type: str | None = None
    owner_ok: bool = False
    type_ok: bool = False


class CaseDetails(_Model):
    """Why each metric came out as it did (the report and per-case diffs show these)."""

    moments: list[MomentCheck] = Field(default_factory=list)
    metric_errors: list[MetricError] = Field(default_factory=list)
    factors_expected: list[str] = Field(default_factory=list)
    factors_acceptable: list[str] = Field(default_factory=list)
    factors_not_expected: list[str] = Field(default_factory=list)
    factors_found: list[str] = Field(default_factory=list)
    invalid_citations: list[str] = Field(default_factory=list)
    evidence: list[EvidenceCheck] = Field(default_factory=list)
    numeric_problems: list[str] = Field(default_factory=list)
    blame_hits: list[str] = Field(default_factory=list)
    actions: list[ActionMatch] = Field(default_factory=list)
    leaks: list[str] = Field(default_factory=list, description="Masked: kind and length, never the value.")
    summary_words: int = 0


class JudgeRubric(_Model):
    """The judge's fixed-choice answer for one draft (G-Eval style rubric)."""

    faithfulness: Literal[1, 2, 3, 4, 5]
    completeness: Literal[1, 2, 3, 4, 5]
    blameless: Literal["yes", "no"]
    reason: str = Field("", max_length=600)


class JudgePairwise(_Model):
    """The judge's fixed-choice answer for two drafts of the same incident."""

    better: Literal["A", "B", "tie"]
    reason: str = Field("", max_length=600)


PairVerdict = Literal["candidate", "baseline", "tie", "inconsistent"]


class JudgeResult(_Model):
    rubric: JudgeRubric | None = None
    verdict: PairVerdict | None = Field(None, description="Both orders agree, or 'inconsistent' (position bias).")
    orders: list[str] = Field(default_factory=list, description="Raw pairwise answers: baseline-first, then swapped.")
    skipped: str | None = None
    error: str | None = None


class CaseResult(_Model):
    case_id: str
    bundle: str
    incident_id: str
    drafter: str = Field(description="As the draft's provenance says (shows fallbacks).")
    prompt: str | None = None
    fallback_reason: str | None = None
    seconds: float
    tallies: dict[str, Tally]
    details: CaseDetails
    judge: JudgeResult | None = None
    excerpt: str = Field("", description="The written sections as plain text, redacted (for pairwise judging).")
    error: str | None = Field(None, description="The case could not be drafted (a PostmortemError).")


# --- summaries, comparisons, baselines -------------------------------------------------------------------------


class CategoryScore(_Model):
    expected: int = 0
    found_expected: int = 0
    proposed: int = Field(0, description="Proposed in cases where it is not merely acceptable.")
    recall: float | None = None
    precision: float | None = None


class ThresholdCheck(_Model):
    metric: str
    value: float | None
    min: float | None = None
    max: float | None = None
    passed: bool


class MetricComparison(_Model):
    metric: str
    baseline: float | None
    candidate: float | None
    delta: float | None
    tolerance: float
    regressed: bool
    improved: bool


class CaseDiff(_Model):
    case_id: str
    metric: str
    baseline: float | None
    candidate: float | None
    worse: bool


class BaselineCase(_Model):
    tallies: dict[str, Tally]
    excerpt: str = ""


class Baseline(_Model):
    """A committed result: ``evals/baselines/<suite>@<drafter>.json``."""

    suite: str
    drafter: DrafterName
    prompt: str | None = None
    model: str | None = None
    pipeline_version: str
    recorded_at: AwareDatetime
    metrics: dict[str, float | None]
    cases: dict[str, BaselineCase]


class RunSummary(_Model):
    run_id: str
    suite: str
    drafter: DrafterName
    prompt: str | None = None
    prompt_sha256: str | None = None
    model: str | None = None
    baseline: str | None = Field(None, description="Path of the baseline compared against, if any.")
    cases: int
    errors: int
    seconds: float
    metrics: dict[str, float | None]
    by_category: dict[str, CategoryScore] = Field(default_factory=dict)
    thresholds: list[ThresholdCheck] = Field(default_factory=list)
    comparisons: list[MetricComparison] = Field(default_factory=list)
    compared_cases: list[str] = Field(default_factory=list, description="Cases in both run and baseline.")
    new_cases: list[str] = Field(default_factory=list)
    missing_cases: list[str] = Field(default_factory=list)
    case_diffs: list[CaseDiff] = Field(default_factory=list)
    passed: bool
    reasons: list[str] = Field(default_factory=list, description="Why the run failed (empty when it passed).")


# --- JSONL events ----------------------------------------------------------------------------------------------


class RunStarted(_Model):
    type: Literal["run_started"] = "run_started"
    run_id: str
    at: AwareDatetime
    suite: str
    suite_path: str
    drafter: DrafterName
    prompt: str | None = None
    prompt_sha256: str | None = None
    model: str | None = None
    judge: bool = False
    baseline: str | None = None
    cases: list[Case]
    pipeline_version: str


class CaseEvent(_Model):
    type: Literal["case"] = "case"
    run_id: str
    at: AwareDatetime
    result: CaseResult


class RunFinished(_Model):
    type: Literal["run_finished"] = "run_finished"
    run_id: str
    at: AwareDatetime
    summary: RunSummary


EvalEvent = Annotated[RunStarted | CaseEvent | RunFinished, Field(discriminator="type")]


def events_path(runs_dir: Path, run_id: str) -> Path:
    return runs_dir / "evals" / f"{run_id}.jsonl"
