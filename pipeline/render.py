"""Render a validated Draft as Markdown (SRE template order, with a mermaid timeline) and as JSON.

The JSON is a contract other tools rely on; ``render_json`` is ``Draft.model_dump`` so the model is the
schema. Markdown evidence links point at anchors in the timeline section.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import orjson

from pipeline.models import MOMENT_NAMES, Draft, TimelineEntry
from pipeline.quantities import format_duration

_MERMAID_UNSAFE = re.compile(r"[:;#<>{}\[\]`\"]")
_MAX_MERMAID_ITEMS = 16
_MD_UNSAFE = re.compile(r"([|\\`*_\[\]<>])")


def render_json(draft: Draft) -> bytes:
    return orjson.dumps(draft.model_dump(mode="json"), option=orjson.OPT_INDENT_2) + b"\n"


def _md(text: str) -> str:
    """Source text is data: escape Markdown so a message cannot inject links, tables or HTML."""
    return _MD_UNSAFE.sub(r"\\\1", " ".join(text.split()))


def _refs(ids: Iterable[str]) -> str:
    return ", ".join(f"[{i}](#{i})" for i in ids)


def _metric(value: int | None) -> str:
    return format_duration(value) if value is not None else "—"


def render_markdown(draft: Draft) -> str:
    """The draft as Markdown. Each top-level block sits between section markers (HTML comments, invisible when
    rendered) carrying the hash of the generated text, so a re-draft can tell which sections a person edited
    (see pipeline.redraft). Without the marker lines the text is exactly the plain rendering."""
    sections = _sections(draft)
    out: list[str] = sections.pop(0)[1]  # the title line stays first and unmarked: "# Postmortem draft: …"
    for section_id, lines in sections:
        out += [section_start(section_id, section_hash("\n".join(lines))), *lines, section_end(section_id)]
    out.append("")
    return "\n".join(out)


# --- section markers (the contract pipeline.redraft reads) ----------------------------------------------

SECTION_START = re.compile(r"^<!-- pm:section id=(?P<id>[a-z0-9_-]+) hash=(?P<hash>[0-9a-f]{16}) -->$")
SECTION_END = re.compile(r"^<!-- pm:end (?P<id>[a-z0-9_-]+) -->$")


def normalise_section(text: str) -> str:
    """What a section hash covers: line endings and trailing spaces are not edits, nor are blank lines around."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def section_hash(text: str) -> str:
    return hashlib.sha256(normalise_section(text).encode("utf-8")).hexdigest()[:16]


def section_start(section_id: str, digest: str) -> str:
    return f"<!-- pm:section id={section_id} hash={digest} -->"


def section_end(section_id: str) -> str:
    return f"<!-- pm:end {section_id} -->"


def _sections(draft: Draft) -> list[tuple[str, list[str]]]:
    """The Markdown as (section id, lines) in SRE template order; the first, the title, is not marked."""
    i = draft.incident
    sections: list[tuple[str, list[str]]] = [("title", [f"# Postmortem draft: {_md(i.title)}", ""])]
    out: list[str] = []
    out.append(
        f"**Incident** {i.id} · **Severity** {i.severity or 'unset'} · **Services** "
        f"{', '.join(i.services) or 'unset'} · **Visibility** {i.visibility}"
    )
    out += [
        "",
        f"> Draft by the {draft.provenance.drafter} drafter — a starting point for the owning team to edit.",
        "",
    ]
    sections.append(("header", out))
    sections.append(("summary", ["## Summary", "", draft.summary, ""]))
    sections.append(("impact", ["## Impact", "", draft.impact.statement, ""]))

    out = [
        "## Key moments and metrics",
        "",
        "| Moment | Time (UTC) | Evidence | Rule |",
        "|---|---|---|---|",
    ]
    for name in MOMENT_NAMES:
        m = draft.key_moments.get(name)
        when = m.at.strftime("%Y-%m-%d %H:%M:%S") if m.at else "—"
        out.append(f"| {name} | {when} | {_refs([m.event_id]) if m.event_id else '—'} | {_md(m.rule)} |")
    mt = draft.metrics
    out += [
        "",
        f"**TTD** {_metric(mt.time_to_detect_s)} · **TTA** {_metric(mt.time_to_acknowledge_s)} · "
        f"**TTM** {_metric(mt.time_to_mitigate_s)} · **TTR** {_metric(mt.time_to_resolve_s)}",
        "",
    ]
    sections.append(("key-moments", out))

    out = ["## Contributing factors", ""]
    if not draft.contributing_factors:
        out.append("_None detected automatically — add what the responders know._")
    for f in draft.contributing_factors:
        out.append(f"- **{f.category.replace('_', ' ')}** — {_md(f.statement)} ({_refs(f.evidence)})")
    out.append("")
    sections.append(("contributing-factors", out))
    out = ["## Action items", ""]
    if draft.action_items:
        out += ["| Action | Type | Owner | Due | Priority | Evidence |", "|---|---|---|---|---|---|"]
        for a in draft.action_items:
            tag = " _(suggested)_" if a.suggested else ""
            out.append(
                f"| {_md(a.description)}{tag} | {a.type} | {_md(a.owner or 'unassigned')} | {a.due or '—'} | "
                f"{a.priority} | {_refs(a.evidence) or '—'} |"
            )
    else:
        out.append("_No action items were stated or suggested._")
    out.append("")
    sections.append(("action-items", out))
    out = ["## Lessons", ""]
    titles = {
        "went_well": "What went well",
        "went_wrong": "What went wrong",
        "got_lucky": "Where we got lucky",
    }
    for kind, title in titles.items():
        items = [lesson for lesson in draft.lessons if lesson.kind == kind]
        if items:
            out.append(f"**{title}**")
            out += [f"- {_md(lesson.statement)} ({_refs(lesson.evidence)})" for lesson in items]
            out.append("")
    if not draft.lessons:
        out += ["_No lesson is supported by the evidence yet._", ""]
    sections.append(("lessons", out))

    if draft.related:
        out = [
            "## Related incidents",
            "",
            "| Incident | Title | Date | Score | Why it matched |",
            "|---|---|---|---|---|",
        ]
        for r in draft.related:
            title = f"[{_md(r.title)}]({r.source})" if r.source else _md(r.title)
            why = f"{r.section}: {_md(r.snippet[:160])}" if r.section else _md(r.snippet[:160])
            out.append(f"| {_md(r.incident_id)} | {title} | {r.date or '—'} | {r.score:.3f} | {why} |")
        out.append("")
        sections.append(("related", out))
    sections.append(("timeline", ["## Timeline", "", *_mermaid(draft), "", *_timeline_lines(draft.timeline), ""]))
    if draft.quarantine:
        out = ["## Quarantined records", "", "| Source | File | Position | Reason |", "|---|---|---|---|"]
        out += [f"| {q.source} | {_md(q.file)} | {_md(q.position)} | {_md(q.reason)} |" for q in draft.quarantine]
        out.append("")
        sections.append(("quarantine", out))
    s, p = draft.stats, draft.provenance
    out = [
        "---",
        f"_Records in: {s.records_in} = {s.events} timeline events + {s.duplicates} duplicates + "
        f"{s.collapsed} collapsed into storms + {s.quarantined} quarantined. Drafter: {p.drafter}"
        f"{f' ({p.model})' if p.model else ''}; generated {p.generated_at:%Y-%m-%d %H:%M UTC} by "
        f"postmortem-pipeline {p.pipeline_version}._",
    ]
    sections.append(("footer", out))
    return sections


def _mermaid(draft: Draft) -> list[str]:
    items = draft.highlights[:_MAX_MERMAID_ITEMS]
    if not items:
        return []
    lines = ["```mermaid", "timeline", f"    title {_MERMAID_UNSAFE.sub(' ', draft.incident.title)}"]
    day = None
    for h in items:
        if h.at.date() != day:
            day = h.at.date()
            lines.append(f"    section {day.isoformat()}")
        text = _MERMAID_UNSAFE.sub(" ", h.text)[:80]
        lines.append(f"        {h.at:%H.%M} UTC : {text}")
    lines.append("```")
    return lines


def _timeline_lines(entries: list[TimelineEntry]) -> list[str]:
    lines: list[str] = []
    for e in entries:
        indent = "    " if e.parent_id else ""
        count = f" ×{e.count} (until {e.last_at:%H:%M:%S})" if e.count > 1 and e.last_at else ""
        seen = f" (also seen in {', '.join(s.value for s in e.also_seen_in)})" if e.also_seen_in else ""
        actor = f" **{_md(e.actor)}**" if e.actor else ""
        text = _md(e.text[:300])
        lines.append(
            f'{indent}- <a id="{e.id}"></a>`{e.at:%Y-%m-%d %H:%M:%S}` {e.source.value}/{e.kind.value}{actor}: '
            f"{text}{count}{seen}"
        )
    return lines
