"""An evaluation run as a report fit to paste into a pull request: Markdown with PNG plots beside it (referenced
relatively) and one self-contained HTML file (the same plots embedded as base64). Plots use matplotlib's Agg
backend (no display, imported only when a report is rendered).

``render_report(run, out_dir) -> (markdown_path, html_path)``; ``summary_rows(run)`` gives the summary table as
strings for a terminal. A report whose text holds a secret is refused (``LeakError``) before anything is written:
the per-case leak metric has already checked each case's record against that case's originals.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.atomic import write_atomic
from pipeline.eval_metrics import METRICS, SPECS, MetricSpec, case_values
from pipeline.eval_models import CaseResult, MetricComparison, ThresholdCheck
from pipeline.evaluate import RunResult
from pipeline.leak_guard import check_text

METRIC_PLOT = "metric-comparison.png"
CASE_PLOT = "case-heatmap.png"

# per-case columns: (metric, short header)
CASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key_moment_accuracy", "moments"),
    ("metric_error_s", "metric err"),
    ("factor_recall", "factor rec"),
    ("factor_precision", "factor prec"),
    ("citation_validity", "citations"),
    ("evidence_precision", "evidence"),
    ("action_item_recall", "actions"),
    ("action_owner_accuracy", "owners"),
    ("action_type_accuracy", "types"),
    ("numeric_problems", "numeric"),
    ("blame_hits", "blame"),
    ("leaks", "leaks"),
    ("fallbacks", "fallback"),
    ("summary_words", "words"),
)
_ERROR_SCALE_S = 600.0
_METRIC_NOISE_S = 5  # gold rounds microsecond times to whole seconds; smaller errors are not findings  # a metric error this large shows as fully red in the heat map


# --- formatting ---------------------------------------------------------------------------------------------


def fmt(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    spec = SPECS[name]
    if spec.kind == "count":
        return f"{value:g}"
    if spec.unit == "":
        return f"{value * 100:.1f}%"
    if spec.unit == "s":
        return f"{value:.1f} s"
    if spec.unit == "/5":
        return f"{value:.2f}/5"
    return f"{value:.1f}"


def fmt_delta(name: str, delta: float | None) -> str:
    if delta is None:
        return ""
    if abs(delta) < 1e-9:
        return "±0"
    spec = SPECS[name]
    if spec.kind == "ratio" and spec.unit == "":
        return f"{delta * 100:+.1f} pp"
    if spec.unit == "s":
        return f"{delta:+.1f} s"
    return f"{delta:+.3g}"


def _bound(check: ThresholdCheck | None) -> str:
    if check is None:
        return ""
    parts = []
    if check.min is not None:
        parts.append(f"≥ {fmt(check.metric, check.min)}")
    if check.max is not None:
        parts.append(f"≤ {fmt(check.metric, check.max)}")
    return " and ".join(parts)


def _status(check: ThresholdCheck | None, comparison: MetricComparison | None) -> str:
    marks = []
    if check is not None and not check.passed:
        marks.append("❌ threshold")
    if comparison is not None and comparison.regressed:
        marks.append("🔻 regressed")
    elif comparison is not None and comparison.improved:
        marks.append("▲ better")
    if not marks and check is not None:
        marks.append("✅")
    return ", ".join(marks)


def _measured(run: RunResult) -> list[MetricSpec]:
    base = run.baseline.metrics if run.baseline else {}
    return [s for s in METRICS if run.summary.metrics.get(s.name) is not None or base.get(s.name) is not None]


def summary_rows(run: RunResult) -> list[tuple[str, str, str, str, str, str]]:
    """(metric, candidate, baseline, delta, threshold, status) for every metric the run or baseline measured."""
    checks = {t.metric: t for t in run.summary.thresholds}
    comps = {c.metric: c for c in run.summary.comparisons}
    rows = []
    for spec in _measured(run):
        comp = comps.get(spec.name)
        rows.append(
            (
                spec.label,
                fmt(spec.name, run.summary.metrics.get(spec.name)),
                fmt(spec.name, comp.baseline) if comp else "",
                fmt_delta(spec.name, comp.delta) if comp else "",
                _bound(checks.get(spec.name)),
                _status(checks.get(spec.name), comp),
            )
        )
    return rows


# --- a tiny document model, rendered to both Markdown and HTML --------------------------------------------------


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True)
class _Para:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class _List:
    items: list[str]


@dataclass(frozen=True)
class _Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class _Image:
    alt: str
    file: str


@dataclass(frozen=True)
class _Details:
    summary: str
    blocks: list[Any]


_MD_PUNCT = str.maketrans({c: "\\" + c for c in "\\`[]|"})
_HTML_START = re.compile(r"<(?![\s=]|$)|&(?=[#A-Za-z])")  # what could open a tag, comment, autolink or entity


def _md_text(text: str) -> str:
    """Report text is data (case ids, errors and fallback reasons can quote incident text): one line, a `<` or
    `&` that could start HTML (an element, a comment, an autolink, an entity) as an entity, and the characters
    of links, images, code and table cells escaped. "<= 0" in a threshold reason stays as it is."""
    flat = " ".join(text.split()).translate(_MD_PUNCT)
    return _HTML_START.sub(lambda m: "&lt;" if m[0] == "<" else "&amp;", flat)


def _to_markdown(blocks: Sequence[Any]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, _Heading):
            out += ["#" * b.level + " " + _md_text(b.text), ""]
        elif isinstance(b, _Para):
            out += [f"**{_md_text(b.text)}**" if b.strong else _md_text(b.text), ""]
        elif isinstance(b, _List):
            out += [f"- {_md_text(i)}" for i in b.items] + [""]
        elif isinstance(b, _Table):
            out.append("| " + " | ".join(_md_text(h) for h in b.headers) + " |")
            out.append("|" + "|".join("---" for _ in b.headers) + "|")
            out += ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, _Image):
            out += [f"![{_md_text(b.alt)}]({b.file})", ""]  # a plot beside the report, by its relative name
        elif isinstance(b, _Details):
            out += ["<details>", f"<summary>{html.escape(b.summary)}</summary>", ""]
            out += _to_markdown(b.blocks).splitlines()
            out += ["</details>", ""]
    return "\n".join(out)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1f2328;line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
img{max-width:100%;border:1px solid #d0d7de;margin:.5em 0}
h1{border-bottom:1px solid #d0d7de;padding-bottom:.3em}
details{margin:.3em 0}
"""


def _to_html(blocks: Sequence[Any], images: dict[str, bytes]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, _Heading):
            out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, _Para):
            text = html.escape(b.text)
            out.append(f"<p><strong>{text}</strong></p>" if b.strong else f"<p>{text}</p>")
        elif isinstance(b, _List):
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, _Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, _Image):
            data = base64.b64encode(images[b.file]).decode("ascii")
            out.append(f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(b.alt)}"></p>')
        elif isinstance(b, _Details):
            out.append(f"<details><summary>{html.escape(b.summary)}</summary>{_to_html(b.blocks, images)}</details>")
    return "\n".join(out)


# --- the report -----------------------------------------------------------------------------------------------


def _case_row(case: CaseResult) -> list[str]:
    if case.error is not None:
        return [case.case_id, *["—" for _ in CASE_COLUMNS], f"error: {case.error}"]
    values = case_values(case.tallies)
    note = case.drafter if case.fallback_reason is None else f"{case.drafter}: {case.fallback_reason}"
    return [case.case_id, *[fmt(m, values.get(m)) for m, _ in CASE_COLUMNS], note]


def _case_details(case: CaseResult) -> list[str]:
    d = case.details
    items = []
    if case.error:
        items.append(f"error: {case.error}")
    if case.fallback_reason:
        items.append(f"fell back to the FactsDrafter: {case.fallback_reason}")
    for m in d.moments:
        if not m.ok:
            got = f"{m.got_at:%Y-%m-%d %H:%M:%S}" if m.got_at else "none"
            off = f", {m.delta_s:.0f} s off" if m.delta_s is not None else ""
            items.append(f"moment {m.name}: got {got}, gold {m.gold_at:%Y-%m-%d %H:%M:%S}{off}")
    for e in d.metric_errors:
        if e.error_s is not None and e.error_s > _METRIC_NOISE_S:
            items.append(f"{e.name}: {e.got_s} s vs gold {e.gold_s} s")
    missing = sorted(set(d.factors_expected) - set(d.factors_found))
    if missing:
        items.append("expected factor categories not found: " + ", ".join(missing))
    extra = sorted(set(d.factors_found) - set(d.factors_expected) - set(d.factors_acceptable))
    if extra:
        items.append("factor categories gold does not expect: " + ", ".join(extra))
    items += [f"invalid citation: {i}" for i in d.invalid_citations]
    imprecise = [e for e in d.evidence if not e.precise]
    if imprecise:
        items.append(
            "evidence outside gold's files: "
            + "; ".join(f"{e.category} cites {e.file or e.event_id}" for e in imprecise[:8])
        )
    for a in d.actions:
        if a.matched is None:
            items.append(f"gold action item not found: {a.gold}")
        else:
            if not a.owner_ok:
                items.append(f"owner of “{a.gold}”: {a.owner or 'none'} (gold {a.gold_owner or 'none'})")
            if not a.type_ok:
                items.append(f"type of “{a.gold}”: {a.type} (gold {a.gold_type})")
    items += [f"numeric problem: {p}" for p in d.numeric_problems]
    items += [f"blame: {b}" for b in d.blame_hits]
    items += [f"leak: {leak}" for leak in d.leaks]
    if case.judge is not None:
        j = case.judge
        if j.rubric is not None:
            items.append(
                f"judge: faithfulness {j.rubric.faithfulness}/5, completeness {j.rubric.completeness}/5, "
                f"blameless {j.rubric.blameless} — {j.rubric.reason}"
            )
        if j.verdict is not None:
            items.append(f"judge vs baseline: {j.verdict} (answers {', '.join(j.orders)})")
        if j.skipped or j.error:
            items.append(f"judge: {j.skipped or j.error}")
    return items


def build_blocks(run: RunResult, plots: Sequence[_Image]) -> list[Any]:
    s = run.summary
    verdict = "PASS" if s.passed else "FAIL"
    blocks: list[Any] = [_Heading(1, f"Evaluation {s.suite} @ {s.drafter}: {verdict}")]
    prompt = f"{s.prompt} (sha256 {s.prompt_sha256[:12]})" if s.prompt and s.prompt_sha256 else s.prompt or "—"
    blocks.append(
        _Table(
            ["run", "drafter", "prompt", "model", "baseline", "cases", "errors", "time"],
            [
                [
                    s.run_id,
                    s.drafter,
                    prompt,
                    s.model or "—",
                    Path(s.baseline).name if s.baseline else "none",
                    str(s.cases),
                    str(s.errors),
                    f"{s.seconds:.1f} s",
                ]
            ],
        )
    )
    if s.reasons:
        blocks += [_Para("Why it failed:", strong=True), _List(s.reasons)]
    else:
        blocks.append(_Para("Every threshold holds and nothing regressed against the baseline.", strong=True))
    blocks.append(_Heading(2, "Metrics"))
    if s.baseline:
        blocks.append(
            _Para(
                f"Baseline compared over the {len(s.compared_cases)} case(s) both runs share"
                + (f"; new cases not compared: {', '.join(s.new_cases)}" if s.new_cases else "")
                + (f"; baseline cases not in this run: {', '.join(s.missing_cases)}" if s.missing_cases else "")
                + "."
            )
        )
    blocks.append(
        _Table(["metric", "candidate", "baseline", "Δ", "threshold", "status"], [list(r) for r in summary_rows(run)])
    )
    blocks += [p for p in plots if p.file == METRIC_PLOT]
    if s.by_category:
        blocks.append(_Heading(2, "Contributing factors by category"))
        blocks.append(
            _Table(
                [
                    "category",
                    "expected",
                    "found (of expected)",
                    "proposed (not merely acceptable)",
                    "recall",
                    "precision",
                ],
                [
                    [
                        cat,
                        str(c.expected),
                        str(c.found_expected),
                        str(c.proposed),
                        fmt("factor_recall", c.recall),
                        fmt("factor_precision", c.precision),
                    ]
                    for cat, c in s.by_category.items()
                ],
            )
        )
    blocks.append(_Heading(2, "Cases"))
    blocks += [p for p in plots if p.file == CASE_PLOT]
    blocks.append(_Table(["case", *[h for _, h in CASE_COLUMNS], "drafter"], [_case_row(c) for c in run.cases]))
    if s.baseline:
        blocks.append(_Heading(2, "Changes against the baseline"))
        if s.case_diffs:
            worse = sum(d.worse for d in s.case_diffs)
            blocks.append(_Para(f"{worse} case metric(s) got worse, {len(s.case_diffs) - worse} got better."))
            table = _Table(
                ["case", "metric", "baseline", "candidate", "change"],
                [
                    [
                        d.case_id,
                        SPECS[d.metric].label,
                        fmt(d.metric, d.baseline),
                        fmt(d.metric, d.candidate),
                        "worse" if d.worse else "better",
                    ]
                    for d in s.case_diffs
                ],
            )
            blocks.append(table if len(s.case_diffs) <= 15 else _Details("per-case changes", [table]))
        else:
            blocks.append(_Para("No case changed on any metric."))
    judged = [c for c in run.cases if c.judge is not None]
    if judged:
        blocks.append(_Heading(2, "LLM judge"))
        blocks.append(
            _Para(
                "Fixed-choice rubric (faithfulness 1–5, completeness 1–5, blameless yes/no); against the baseline the "
                "pairwise question is asked in both orders, and answers that flip with the order count as "
                "'inconsistent' (position bias), not as a win."
            )
        )
        rows = []
        for c in judged:
            j = c.judge
            assert j is not None
            r = j.rubric
            rows.append(
                [
                    c.case_id,
                    f"{r.faithfulness}/5" if r else "—",
                    f"{r.completeness}/5" if r else "—",
                    r.blameless if r else "—",
                    j.verdict or "—",
                    j.skipped or j.error or (r.reason if r else ""),
                ]
            )
        blocks.append(_Table(["case", "faithfulness", "completeness", "blameless", "vs baseline", "note"], rows))
    detail_blocks = [
        _Details(f"{c.case_id}: {len(items)} finding(s)", [_List(items)])
        for c in run.cases
        if (items := _case_details(c))
    ]
    if detail_blocks:
        blocks.append(_Heading(2, "Findings per case"))
        blocks += detail_blocks
    blocks.append(_Para(f"Every case as a typed event: {run.events_path.name} (under the runs directory, evals/)."))
    return blocks


# --- plots ------------------------------------------------------------------------------------------------------


def _goodness(name: str, value: float | None) -> float:
    if value is None:
        return math.nan
    spec = SPECS[name]
    if spec.kind == "count":
        return 1.0 if value == 0 else 0.0
    if spec.unit == "s":
        return max(0.0, 1.0 - value / _ERROR_SCALE_S)
    if spec.unit == "/5":
        return (value - 1) / 4
    if spec.better == "none":
        return math.nan
    return value


def _short(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    spec = SPECS[name]
    if spec.kind == "ratio" and spec.unit == "":
        return f"{value * 100:.0f}%"
    if spec.unit == "s":
        return f"{value:.0f}s"
    return f"{value:g}"


def _plot_metrics(run: RunResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cand = run.summary.metrics
    comps = {c.metric: c for c in run.summary.comparisons}
    base = {m: comps[m].baseline for m in comps}
    has_base = bool(base)
    measured = [s for s in _measured(run) if s.better != "none" and s.compare]
    panels = [
        ("Rates (higher is better)", [s for s in measured if s.kind == "ratio" and s.unit in ("", "/5")], "%"),
        ("Errors (lower is better)", [s for s in measured if s.unit == "s"], "s"),
        ("Counts (lower is better)", [s for s in measured if s.kind == "count"], ""),
    ]
    panels = [p for p in panels if p[1]]
    height = max(3.0, 0.38 * max(len(p[1]) for p in panels) + 1.4)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), height), squeeze=False)
    for ax, (title, specs, unit) in zip(axes[0], panels, strict=True):

        def scaled(spec: MetricSpec, value: float | None, unit: str = unit) -> float:
            if value is None:
                return 0.0
            if unit == "%":
                return value * 100 / 5 if spec.unit == "/5" else value * 100
            return value

        labels = [s.label + (" (/5 as %)" if s.unit == "/5" else "") for s in specs]
        ys = list(range(len(specs)))
        width = 0.38 if has_base else 0.6
        cvals = [scaled(s, cand.get(s.name)) for s in specs]
        if has_base:
            bvals = [scaled(s, base.get(s.name)) for s in specs]
            ax.barh([y - width / 2 for y in ys], bvals, height=width, color="#8c959f", label="baseline")
            ax.barh([y + width / 2 for y in ys], cvals, height=width, color="#0969da", label="candidate")
        else:
            ax.barh(ys, cvals, height=width, color="#0969da", label="candidate")
        for spec, y, value in zip(specs, ys, cvals, strict=True):
            comp = comps.get(spec.name)
            colour = "#cf222e" if comp is not None and comp.regressed else "#1f2328"
            ax.text(
                value,
                y + (width / 2 if has_base else 0),
                f" {fmt(spec.name, cand.get(spec.name))}",
                va="center",
                fontsize=7,
                color=colour,
            )
        ax.set_yticks(ys, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        if unit == "%":
            ax.set_xlim(0, 118)
        else:
            top = max([*cvals, *([scaled(s, base.get(s.name)) for s in specs] if has_base else []), 1.0])
            ax.set_xlim(0, top * 1.3)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{run.summary.suite} @ {run.summary.drafter}: candidate vs baseline", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_cases(run: RunResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cases = run.cases
    columns = [(m, h) for m, h in CASE_COLUMNS if SPECS[m].better != "none"]
    grid = np.full((len(cases), len(columns)), np.nan)
    worse = {(d.case_id, d.metric) for d in run.summary.case_diffs if d.worse}
    fig, ax = plt.subplots(figsize=(1.0 * len(columns) + 3.2, 0.42 * len(cases) + 1.8))
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#d0d7de")
    for i, case in enumerate(cases):
        values = case_values(case.tallies) if case.error is None else {}
        for j, (metric, _) in enumerate(columns):
            value = values.get(metric)
            grid[i, j] = good = _goodness(metric, value)
            text = _short(metric, value) if case.error is None else "error"
            dark = not math.isnan(good) and (good >= 0.8 or good <= 0.15)
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "#1f2328")
            if (case.case_id, metric) in worse:
                ax.add_patch(
                    matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2)
                )
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), [h for _, h in columns], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(cases)), [c.case_id for c in cases], fontsize=8)
    title = "Per case (green good, red bad, grey n/a"
    title += "; black frame = worse than baseline)" if worse else ")"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_report(run: RunResult, out_dir: Path) -> tuple[Path, Path]:
    """Write report.md (+ the PNG plots beside it) and a self-contained report.html into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    if run.summary.metrics and any(v is not None for v in run.summary.metrics.values()):
        _plot_metrics(run, out_dir / METRIC_PLOT)
        plots.append(_Image("Baseline vs candidate per metric", METRIC_PLOT))
    if any(c.error is None for c in run.cases):
        _plot_cases(run, out_dir / CASE_PLOT)
        plots.append(_Image("Per-case heat map", CASE_PLOT))
    blocks = build_blocks(run, plots)
    text = _to_markdown(blocks)
    # every text of the HTML page is in the Markdown too (the page adds only the plots, as base64)
    check_text(text, f"the eval report of {run.summary.run_id}")
    markdown = write_atomic(out_dir / "report.md", text)
    images = {p.file: (out_dir / p.file).read_bytes() for p in plots}
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(run.summary.suite)} @ {html.escape(run.summary.drafter)}</title>"
        f"<style>{_CSS}</style></head><body>\n{_to_html(blocks, images)}\n</body></html>\n"
    )
    html_path = write_atomic(out_dir / "report.html", page)
    return markdown, html_path
