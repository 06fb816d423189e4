"""Re-draft without losing a person's edits.

Rendered drafts wrap every top-level block in markers (pipeline.render)::

    <!-- pm:section id=summary hash=<sha256[:16] of the generated text> -->
    ## Summary
    ...
    <!-- pm:end summary -->

``redraft(existing, new)`` walks the existing document:

* a section whose text still hashes to its marker is the pipeline's: it is replaced by the new one;
* a section whose text no longer matches was edited by a person: their text stays, and when the generated
  text changed a suggestion block is appended inside the section — ``> **Suggested update (pipeline, DATE):**``
  and a unified diff in a fenced ``diff`` block — between ``<!-- pm:suggestion … -->`` markers. Suggestion
  blocks accumulate (each dated) until the person deletes them; they do not count as edits. The section's
  marker takes the new generated hash, so accepting the new text verbatim hands the section back to the
  pipeline;
* a section the person deleted stays deleted: a ``<!-- pm:removed id=… -->`` marker is left in its place so
  later re-drafts know it too (with ``base_md`` — the generated draft the document came from — a deletion is
  recognised exactly; without it, a missing always-present section counts as deleted, a missing optional one
  — related incidents, quarantine — as new);
* text outside any section (a person's own headings and notes) is kept where it was; the title line (line 1,
  unmarked so the document still starts with ``# Postmortem draft``) follows the new draft only when it
  still equals the base draft's title;
* sections that appear for the first time are inserted after their predecessor in template order.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pipeline.render import (
    SECTION_END,
    SECTION_START,
    normalise_section,
    section_end,
    section_hash,
    section_start,
)

#: Sections every rendered draft has; the others (related, quarantine) come and go with the facts.
ALWAYS_PRESENT = frozenset(
    {
        "header",
        "summary",
        "impact",
        "key-moments",
        "contributing-factors",
        "action-items",
        "lessons",
        "timeline",
        "footer",
    }
)
SUGGESTION_START = re.compile(r"^<!-- pm:suggestion id=(?P<id>[a-z0-9_-]+)(?: date=(?P<date>[0-9-]+))? -->$")
SUGGESTION_END = re.compile(r"^<!-- pm:end-suggestion (?P<id>[a-z0-9_-]+) -->$")
REMOVED = re.compile(r"^<!-- pm:removed id=(?P<id>[a-z0-9_-]+) -->$")
_BACKTICKS = re.compile(r"`+")


@dataclass(frozen=True)
class Suggestion:
    section: str
    diff: str


@dataclass(frozen=True)
class RedraftResult:
    markdown: str
    kept_sections: list[str]
    regenerated_sections: list[str]
    suggestions: list[Suggestion]
    removed_sections: list[str] = field(default_factory=list)
    added_sections: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class MarkedSection:
    id: str
    marker_hash: str
    body: list[str]  # the person's (or the pipeline's) text, without suggestion blocks
    suggestions: list[list[str]]  # earlier suggestion blocks, verbatim with their markers

    @property
    def edited(self) -> bool:
        return section_hash("\n".join(self.body)) != self.marker_hash


@dataclass
class FreeText:
    lines: list[str]


@dataclass
class RemovedSection:
    id: str


DocumentItem = MarkedSection | FreeText | RemovedSection


def parse_sections(markdown: str) -> list[DocumentItem]:
    """Split a document into marked sections, removed-section markers and free text, in order. A section whose
    end marker was deleted runs to the next section marker."""
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    items: list[DocumentItem] = []
    text: list[str] = []
    i = 0
    while i < len(lines):
        start = SECTION_START.match(lines[i].strip())
        removed = REMOVED.match(lines[i].strip())
        if removed:
            if text:
                items.append(FreeText(text))
                text = []
            items.append(RemovedSection(removed["id"]))
            i += 1
            continue
        if not start:
            text.append(lines[i])
            i += 1
            continue
        if text:
            items.append(FreeText(text))
            text = []
        section = MarkedSection(id=start["id"], marker_hash=start["hash"], body=[], suggestions=[])
        i += 1
        while i < len(lines):
            line = lines[i].strip()
            end = SECTION_END.match(line)
            if end and end["id"] == section.id:
                i += 1
                break
            if SECTION_START.match(line):
                break
            suggestion = SUGGESTION_START.match(line)
            if suggestion and suggestion["id"] == section.id:
                block = [lines[i]]
                i += 1
                while i < len(lines):
                    block.append(lines[i])
                    i += 1
                    closing = SUGGESTION_END.match(block[-1].strip())
                    if closing and closing["id"] == section.id:
                        break
                section.suggestions.append(block)
                continue
            section.body.append(lines[i])
            i += 1
        items.append(section)
    if text:
        items.append(FreeText(text))
    return items


def _sections_of(markdown: str) -> dict[str, MarkedSection]:
    return {item.id: item for item in parse_sections(markdown) if isinstance(item, MarkedSection)}


def _fence(text: str) -> str:
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def _diff(section_id: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        normalise_section(before).split("\n"),
        normalise_section(after).split("\n"),
        fromfile=f"{section_id} (before)",
        tofile=f"{section_id} (new draft)",
        lineterm="",
    )
    return "\n".join(lines)


def _suggestion_block(section_id: str, diff: str, when: date, base_known: bool) -> list[str]:
    what = (
        "the generated text of this section changed since it was edited (diff: previous generated → new)"
        if base_known
        else "new generated text for this section (diff: current text → new generated)"
    )
    fence = _fence(diff)
    return [
        f"<!-- pm:suggestion id={section_id} date={when.isoformat()} -->",
        f"> **Suggested update (pipeline, {when.isoformat()}):** {what}. Merge what applies, then delete this block.",
        "",
        f"{fence}diff",
        *diff.split("\n"),
        fence,
        f"<!-- pm:end-suggestion {section_id} -->",
    ]


def _trim(lines: list[str]) -> list[str]:
    """Drop trailing blank lines (a section is emitted as body, blank line, end marker)."""
    out = list(lines)
    while out and not out[-1].strip():
        out.pop()
    return out


def _emit(section_id: str, digest: str, body: list[str], suggestions: list[list[str]]) -> list[str]:
    """A section with its markers; the body verbatim, suggestion blocks after it, each set off by blank lines."""
    if not suggestions:
        return [section_start(section_id, digest), *body, section_end(section_id)]
    lines = [section_start(section_id, digest), *_trim(body), ""]
    for block in suggestions:
        lines += [*block, ""]
    return [*lines, section_end(section_id)]


def _first_line(markdown: str | None) -> str | None:
    if markdown is None:
        return None
    line = markdown.split("\n", 1)[0].rstrip("\r")
    return line if line.startswith("# ") else None


def _title_update(existing: list[DocumentItem], new_md: str, base_md: str | None) -> str | None:
    """The title line (first, outside any section) follows the new draft only when it is provably untouched:
    it still equals the base draft's title. Without a base a person's title is never overwritten."""
    first = existing[0] if existing else None
    if not isinstance(first, FreeText) or not first.lines:
        return None
    current, new_title, base_title = first.lines[0].rstrip(), _first_line(new_md), _first_line(base_md)
    if new_title is None or base_title is None or current != base_title:
        return None
    return new_title


def redraft(
    existing_md: str,
    new_draft_md: str,
    *,
    base_md: str | None = None,
    today: date | None = None,
) -> RedraftResult:
    """Merge a freshly generated draft into the document people may have edited (see the module docstring).

    ``base_md`` (optional) is the generated draft the existing document started from — the previous version's
    file; with it the suggestion diff shows only what the pipeline learned, and deleted sections are exact."""
    when = today or datetime.now(UTC).date()
    new = _sections_of(new_draft_md)
    base = _sections_of(base_md) if base_md is not None else None
    existing = parse_sections(existing_md)
    present = {item.id for item in existing if isinstance(item, MarkedSection | RemovedSection)}

    kept: list[str] = []
    regenerated: list[str] = []
    suggestions: list[Suggestion] = []
    removed: list[str] = []
    added: list[str] = []
    notes: list[str] = []
    out: list[tuple[str | None, list[str]]] = []  # (section id or None, lines)

    title = _title_update(existing, new_draft_md, base_md)
    for position, item in enumerate(existing):
        if isinstance(item, FreeText):
            lines = item.lines
            if position == 0 and title is not None:
                lines = [title, *lines[1:]]
            out.append((None, lines))
            continue
        if isinstance(item, RemovedSection):
            removed.append(item.id)
            out.append((item.id, [f"<!-- pm:removed id={item.id} -->"]))
            continue
        fresh = new.get(item.id)
        if not item.edited:
            if fresh is None:
                notes.append(f"{item.id}: no longer generated; removed (it had not been edited)")
                continue
            regenerated.append(item.id)
            out.append((item.id, _emit(item.id, fresh.marker_hash, fresh.body, [])))
            continue
        kept.append(item.id)
        if fresh is None:
            notes.append(f"{item.id}: no longer generated; kept because it was edited")
            out.append((item.id, _emit(item.id, item.marker_hash, item.body, item.suggestions)))
            continue
        blocks = list(item.suggestions)
        if fresh.marker_hash != item.marker_hash:
            origin = base.get(item.id) if base is not None else None
            base_known = origin is not None and origin.marker_hash == item.marker_hash
            before = "\n".join(origin.body if origin is not None and base_known else item.body)
            diff = _diff(item.id, before, "\n".join(fresh.body))
            if diff:
                suggestions.append(Suggestion(item.id, diff))
                blocks.append(_suggestion_block(item.id, diff, when, base_known))
        out.append((item.id, _emit(item.id, fresh.marker_hash, item.body, blocks)))

    order = list(new)
    for index_in_order, section_id in enumerate(order):
        if section_id in present:
            continue
        deleted = section_id in base if base is not None else section_id in ALWAYS_PRESENT
        if deleted:
            removed.append(section_id)
            notes.append(f"{section_id}: deleted by a person; stays deleted")
            lines = [f"<!-- pm:removed id={section_id} -->"]
        else:
            added.append(section_id)
            fresh = new[section_id]
            lines = _emit(section_id, fresh.marker_hash, fresh.body, [])
        earlier = set(order[:index_in_order])
        at = 0
        for index, (sid, _) in enumerate(out):
            if sid is not None and sid in earlier:
                at = index + 1
        if at == 0 and out and out[0][0] is None and section_id != "header":
            at = 1  # keep a person's preamble first
        out.insert(at, (section_id, lines))
        present.add(section_id)

    body = "\n".join(line for _, lines in out for line in lines).rstrip("\n") + "\n"
    return RedraftResult(
        markdown=body,
        kept_sections=kept,
        regenerated_sections=regenerated,
        suggestions=suggestions,
        removed_sections=removed,
        added_sections=added,
        notes=notes,
    )
