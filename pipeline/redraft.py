"""Re-draft without losing a person's edits.

Rendered drafts wrap every top-level block in signed markers (pipeline.markers; pipeline.render writes them)::

    <!-- pm:section id=summary hash=<sha256[:16] of the generated text> mac=<HMAC> -->
    ## Summary
    ...
    <!-- pm:end summary mac=<HMAC> -->

``redraft(existing, new, markers=…)`` walks the existing document:

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

Only markers whose MAC verifies (this installation's key, this incident) are structure. A line that looks like
a marker but does not verify — pasted by a person, carried in by a chat message or a model, signed with another
key — is ordinary text of the section it sits in, and the result's ``notes`` say so.

A document in which *no* section marker verifies — written before markers were signed (no ``mac=``), or signed
with a key that is gone — is read with the untrusted grammar (pipeline.markers) to find its sections, but none
of them is trusted: each counts as edited by a person, so nothing in it is overwritten and the new text arrives
as a suggestion; removal markers in it are not believed. The markers written back are signed, so from the next
re-draft on the document behaves normally (a section is handed back to the pipeline once its text equals the
generated text, e.g. after the person applies the suggestion).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pipeline.markers import Markers, Start, has_untrusted_start, looks_like_marker
from pipeline.render import normalise_section, section_hash

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
class SuggestionBlock:
    """An earlier suggestion: its date and the lines between its markers (re-signed when written back)."""

    date: str
    lines: list[str]


@dataclass
class MarkedSection:
    id: str
    marker_hash: str
    body: list[str]  # the person's (or the pipeline's) text, without suggestion blocks
    suggestions: list[SuggestionBlock]
    trusted: bool = True  # False: found by the untrusted grammar (no marker in the document verified)

    @property
    def edited(self) -> bool:
        return not self.trusted or section_hash("\n".join(self.body)) != self.marker_hash


@dataclass
class FreeText:
    lines: list[str]


@dataclass
class RemovedSection:
    id: str


DocumentItem = MarkedSection | FreeText | RemovedSection


@dataclass
class ParsedDocument:
    items: list[DocumentItem]
    notes: list[str]
    untrusted: bool  # sections were found by the untrusted grammar: none of them is trusted

    def sections(self) -> dict[str, MarkedSection]:
        return {item.id: item for item in self.items if isinstance(item, MarkedSection)}


_TextSink = Callable[[int, str, list[str]], None]


def parse_sections(markdown: str, markers: Markers) -> ParsedDocument:
    """Split a document into marked sections, removed-section markers and free text, in order. Only markers
    that verify with ``markers`` are structure (see the module docstring). A section whose end marker was
    deleted runs to the next section marker."""
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    reader, untrusted = markers, False
    if not any(markers.read_start(ln.strip()) for ln in lines) and any(has_untrusted_start(ln) for ln in lines):
        reader, untrusted = markers.untrusted(), True
    items: list[DocumentItem] = []
    notes: list[str] = []
    text: list[str] = []

    def as_text(number: int, line: str, into: list[str]) -> None:
        if looks_like_marker(line) and not untrusted:
            notes.append(
                f"line {number + 1}: a pm marker that this installation did not sign for this incident; read as text"
            )
        into.append(line)

    i = 0
    while i < len(lines):
        line = lines[i].strip()
        removed = reader.read_removed(line)
        start = reader.read_start(line) if removed is None else None
        if removed is None and start is None:
            as_text(i, lines[i], text)
            i += 1
            continue
        if text:
            items.append(FreeText(text))
            text = []
        if removed is not None:
            items.append(RemovedSection(removed))
            i += 1
            continue
        assert start is not None
        section = MarkedSection(id=start.id, marker_hash=start.hash, body=[], suggestions=[], trusted=not untrusted)
        i = _read_section(lines, i + 1, section, start, reader, as_text)
        items.append(section)
    if text:
        items.append(FreeText(text))
    if untrusted:
        notes.append(
            "no section marker in the document is signed by this installation's key (written by an earlier version, "
            "or the key changed): every section counts as edited by a person"
        )
    return ParsedDocument(items, notes, untrusted)


def _read_section(
    lines: list[str], i: int, section: MarkedSection, start: Start, reader: Markers, as_text: _TextSink
) -> int:
    """Read a section's body and suggestion blocks from line ``i``; return the index after it."""
    while i < len(lines):
        line = lines[i].strip()
        if reader.is_end(line, start):
            return i + 1
        if reader.read_start(line):
            return i
        day = reader.read_suggestion(line, section.id)
        if day is not None:
            block: list[str] = []
            i += 1
            while i < len(lines) and not reader.is_suggestion_end(lines[i].strip(), section.id, day):
                block.append(lines[i])
                i += 1
            section.suggestions.append(SuggestionBlock(day, block))
            i += 1
            continue
        as_text(i, lines[i], section.body)
        i += 1
    return i


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


def _suggestion_block(diff: str, when: date, base_known: bool) -> SuggestionBlock:
    what = (
        "the generated text of this section changed since it was edited (diff: previous generated → new)"
        if base_known
        else "new generated text for this section (diff: current text → new generated)"
    )
    fence = _fence(diff)
    lines = [
        f"> **Suggested update (pipeline, {when.isoformat()}):** {what}. Merge what applies, then delete this block.",
        "",
        f"{fence}diff",
        *diff.split("\n"),
        fence,
    ]
    return SuggestionBlock(when.isoformat(), lines)


def _trim(lines: list[str]) -> list[str]:
    """Drop trailing blank lines (a section is emitted as body, blank line, end marker)."""
    out = list(lines)
    while out and not out[-1].strip():
        out.pop()
    return out


def _emit(
    markers: Markers, section_id: str, digest: str, body: list[str], suggestions: list[SuggestionBlock]
) -> list[str]:
    """A section with its (newly signed) markers; the body verbatim, suggestion blocks after it, each set off by
    blank lines."""
    start, end = markers.start(section_id, digest), markers.end(section_id, digest)
    if not suggestions:
        return [start, *body, end]
    lines = [start, *_trim(body), ""]
    for block in suggestions:
        sid, day = section_id, block.date
        lines += [markers.suggestion(sid, day), *block.lines, markers.suggestion_end(sid, day), ""]
    return [*lines, end]


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
    markers: Markers,
    base_md: str | None = None,
    today: date | None = None,
) -> RedraftResult:
    """Merge a freshly generated draft into the document people may have edited (see the module docstring).

    ``markers`` reads and signs the markers of this incident's documents (the installation key and the incident
    id: ``Markers(key, draft.incident.id)``, as pipeline.render signed the new draft). ``base_md`` (optional) is
    the generated draft the existing document started from — the previous version's file; with it the
    suggestion diff shows only what the pipeline learned, and deleted sections are exact."""
    when = today or datetime.now(UTC).date()
    new = parse_sections(new_draft_md, markers).sections()
    base = parse_sections(base_md, markers).sections() if base_md is not None else None
    parsed = parse_sections(existing_md, markers)
    existing = parsed.items
    present = {item.id for item in existing if isinstance(item, MarkedSection | RemovedSection)}

    kept: list[str] = []
    regenerated: list[str] = []
    suggestions: list[Suggestion] = []
    removed: list[str] = []
    added: list[str] = []
    notes: list[str] = list(parsed.notes)
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
            out.append((item.id, [markers.removed(item.id)]))
            continue
        fresh = new.get(item.id)
        if not item.edited:
            if fresh is None:
                notes.append(f"{item.id}: no longer generated; removed (it had not been edited)")
                continue
            regenerated.append(item.id)
            out.append((item.id, _emit(markers, item.id, fresh.marker_hash, fresh.body, [])))
            continue
        kept.append(item.id)
        if fresh is None:
            notes.append(f"{item.id}: no longer generated; kept because it was edited")
            out.append((item.id, _emit(markers, item.id, item.marker_hash, item.body, item.suggestions)))
            continue
        blocks = list(item.suggestions)
        if fresh.marker_hash != item.marker_hash:
            origin = base.get(item.id) if base is not None else None
            base_known = origin is not None and origin.marker_hash == item.marker_hash
            before = "\n".join(origin.body if origin is not None and base_known else item.body)
            diff = _diff(item.id, before, "\n".join(fresh.body))
            if diff:
                suggestions.append(Suggestion(item.id, diff))
                blocks.append(_suggestion_block(diff, when, base_known))
        out.append((item.id, _emit(markers, item.id, fresh.marker_hash, item.body, blocks)))

    order = list(new)
    for index_in_order, section_id in enumerate(order):
        if section_id in present:
            continue
        deleted = section_id in base if base is not None else section_id in ALWAYS_PRESENT
        if deleted:
            removed.append(section_id)
            notes.append(f"{section_id}: deleted by a person; stays deleted")
            lines = [markers.removed(section_id)]
        else:
            added.append(section_id)
            fresh = new[section_id]
            lines = _emit(markers, section_id, fresh.marker_hash, fresh.body, [])
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
