"""Render a validated Draft as Markdown (SRE template order, with a mermaid timeline) and as JSON.

The JSON is a contract other tools rely on; ``render_json`` is ``Draft.model_dump`` so the model is the
schema. Markdown evidence links point at anchors in the timeline section.

Every value is data, written for its context: text from chat messages, alert labels, manifests, vendor titles
and a model's prose alike goes through ``_md`` (HTML special characters become entities, so no element or
comment survives; Markdown punctuation is backslash-escaped, so no link, image, code span or table cell break
is made; line breaks are spaces, so nothing starts a block or a marker line). Prose (summary, impact) keeps its
paragraphs but not its Markdown: a model's ``**bold**`` or ``[link](…)`` shows as the characters it wrote.
Links are only ours: anchors to validated event ids and http(s) URLs that pass ``safe_url``. Mermaid labels
keep letters, digits and a few harmless punctuation marks, nothing that could end the code fence or start a
directive.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

import orjson

from pipeline.leak_guard import check_model
from pipeline.markers import Markers
from pipeline.models import MOMENT_NAMES, Draft, TimelineEntry
from pipeline.quantities import format_duration
from pipeline.section_key import SectionKey

_MERMAID_UNSAFE = re.compile(r"[^\w .,()'/@!?+=-]")  # anything else (`:;#%{}<>[]\"` and backticks) is a space
_MAX_MERMAID_ITEMS = 16
_MD_UNSAFE = re.compile(r"([\\`*_\[\]|~!])")
_BLOCK_START = re.compile(r"^(?:(?P<mark>[-+=>#])|(?P<digits>\d{1,9})(?P<delim>[.)]))")
_EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URL_SAFE = "/:?#@!$&*+,;=%~-._[]"  # what may stay as it is in a link destination; the rest is %-encoded


def render_json(draft: Draft) -> bytes:
    check_model(draft, f"the JSON draft of {draft.incident.id}")  # refuse a secret rather than write it
    return orjson.dumps(draft.model_dump(mode="json"), option=orjson.OPT_INDENT_2) + b"\n"


def _plain(text: str) -> str:
    """One line: control and separator characters are spaces, runs of white space one space."""
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    return " ".join(cleaned.split())


def _md(text: str) -> str:
    """Source text is data: one line, HTML escaped to entities and Markdown punctuation escaped, so a message
    cannot inject HTML, comments (markers), links, images, code, emphasis or table cells."""
    return _MD_UNSAFE.sub(r"\\\1", html.escape(_plain(text), quote=False))


def _escape_block_start(m: re.Match[str]) -> str:
    if m["mark"]:
        return "\\" + m["mark"]
    return f"{m['digits']}\\{m['delim']}"


def _prose(text: str) -> list[str]:
    """Prose (a drafter's summary or impact statement) as escaped paragraphs separated by blank lines. A
    paragraph begins a line, so a leading `#`, `>`, `-`, `+`, `=` or `1.` is escaped too (no heading, quote,
    list or rule)."""
    paragraphs = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    escaped = [_BLOCK_START.sub(_escape_block_start, _md(p), count=1) for p in paragraphs]
    lines: list[str] = []
    for paragraph in (p for p in escaped if p):
        lines += ["", paragraph] if lines else [paragraph]
    return lines or [""]


def safe_url(url: str | None) -> str | None:
    """An absolute http(s) URL fit for a Markdown link destination, or None: no other scheme (javascript:,
    data:, vbscript:, file:), no file path, no white space; parentheses, quotes and angle brackets %-encoded."""
    if not url or url != url.strip() or any(c.isspace() or unicodedata.category(c) == "Cc" for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return quote(url, safe=_URL_SAFE)


def document_url(base: str | None, document_id: str) -> str | None:
    """Where a past postmortem is published: ``base`` + the id (%-encoded); None without a base."""
    if not base:
        return None
    return safe_url(base + quote(document_id, safe=""))


def _refs(ids: Iterable[str]) -> str:
    """Evidence links to timeline anchors; an id that is not id-shaped is shown as text, never linked."""
    return ", ".join(f"[{i}](#{i})" if _EVENT_ID.match(i) else _md(i) for i in ids)


def _metric(value: int | None) -> str:
    return format_duration(value) if value is not None else "—"


def render_markdown(draft: Draft, *, key: SectionKey) -> str:
    """The draft as Markdown. Each top-level block sits between section markers (HTML comments, invisible when
    rendered) carrying the hash of the generated text and a MAC made with ``key`` (pipeline.markers), so a
    re-draft can tell which sections a person edited (see pipeline.redraft) and nobody without the key can
    make a marker it believes. Without the marker lines the text is exactly the plain rendering."""
    check_model(draft, f"the Markdown draft of {draft.incident.id}")  # refuse a secret rather than write it
    markers = Markers(key, draft.incident.id)
    sections = _sections(draft)
    out: list[str] = sections.pop(0)[1]  # the title line stays first and unmarked: "# Postmortem draft: …"
    for section_id, lines in sections:
        digest = section_hash("\n".join(lines))
        out += [markers.start(section_id, digest), *lines, markers.end(section_id, digest)]
    out.append("")
    return "\n".join(out)


def normalise_section(text: str) -> str:
    """What a section hash covers: line endings and trailing spaces are not edits, nor are blank lines around."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def section_hash(text: str) -> str:
    return hashlib.sha256(normalise_section(text).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _sections(draft: Draft) -> list[tuple[str, list[str]]]:
    """The Markdown as (section id, lines) in SRE template order; the first, the title, is not marked."""
    i = draft.incident
    sections: list[tuple[str, list[str]]] = [("title", [f"# Postmortem draft: {_md(i.title)}", ""])]
    out: list[str] = []
    out.append(
        f"**Incident** {_md(i.id)} · **Severity** {_md(i.severity or 'unset')} · **Services** "
        f"{', '.join(_md(s) for s in i.services) or 'unset'} · **Visibility** {_md(i.visibility)}"
    )
    out += [
        "",
        f"> Draft by the {_md(draft.provenance.drafter)} drafter — a starting point for the owning team to edit.",
        "",
    ]
    sections.append(("header", out))
    sections.append(("summary", ["## Summary", "", *_prose(draft.summary), ""]))
    sections.append(("impact", ["## Impact", "", *_prose(draft.impact.statement), ""]))

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
                f"| {_md(a.description)}{tag} | {a.type} | {_md(a.owner or 'unassigned')} | {_md(a.due or '—')} | "
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
            url = safe_url(r.source)  # a published URL (link_base_url + id); a file path is never a link
            incident = f"[{_md(r.incident_id)}]({url})" if url else _md(r.incident_id)
            why = f"{_md(r.section)}: {_md(r.snippet[:160])}" if r.section else _md(r.snippet[:160])
            out.append(f"| {incident} | {_md(r.title)} | {_md(r.date or '—')} | {r.score:.3f} | {why} |")
        out.append("")
        sections.append(("related", out))
    sections.append(("timeline", ["## Timeline", "", *_mermaid(draft), "", *_timeline_lines(draft.timeline), ""]))
    if draft.quarantine:
        out = ["## Quarantined records", "", "| Source | File | Position | Reason |", "|---|---|---|---|"]
        out += [f"| {_md(q.source)} | {_md(q.file)} | {_md(q.position)} | {_md(q.reason)} |" for q in draft.quarantine]
        out.append("")
        sections.append(("quarantine", out))
    s, p = draft.stats, draft.provenance
    out = [
        "---",
        f"_Records in: {s.records_in} = {s.events} timeline events + {s.duplicates} duplicates + "
        f"{s.collapsed} collapsed into storms + {s.quarantined} quarantined. Drafter: {_md(p.drafter)}"
        f"{f' ({_md(p.model)})' if p.model else ''}; generated {p.generated_at:%Y-%m-%d %H:%M UTC} by "
        f"postmortem-pipeline {_md(p.pipeline_version)}._",
    ]
    sections.append(("footer", out))
    return sections


def _mermaid_label(text: str, limit: int) -> str:
    """Mermaid label text: one line of letters, digits and harmless punctuation. No backtick (the fence), no
    `:`/`;`/`#`/`%`/`{}` (separators, entity codes, directives), no `<>` (HTML labels)."""
    return " ".join(_MERMAID_UNSAFE.sub(" ", text).split())[:limit].strip() or "—"


def _mermaid(draft: Draft) -> list[str]:
    items = draft.highlights[:_MAX_MERMAID_ITEMS]
    if not items:
        return []
    lines = ["```mermaid", "timeline", f"    title {_mermaid_label(draft.incident.title, 120)}"]
    day = None
    for h in items:
        if h.at.date() != day:
            day = h.at.date()
            lines.append(f"    section {day.isoformat()}")
        text = _mermaid_label(h.text, 80)
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
        anchor = f'<a id="{e.id}"></a>' if _EVENT_ID.match(e.id) else ""  # evidence links point here
        lines.append(
            f"{indent}- {anchor}`{e.at:%Y-%m-%d %H:%M:%S}` {e.source.value}/{e.kind.value}{actor}: {text}{count}{seen}"
        )
    return lines
