"""Re-drafting keeps a person's edits: section markers, edited/untouched detection, suggestions, deletions."""

from __future__ import annotations

import re
from datetime import date

import pytest

from pipeline.markers import Markers
from pipeline.models import Draft, Quarantined, RelatedIncident
from pipeline.redraft import MarkedSection, RedraftResult, parse_sections, redraft
from pipeline.render import render_markdown, section_hash
from pipeline.section_key import SectionKey
from pipeline.service import draft_bundle
from pipeline.settings import Settings
from tests.conftest import SAMPLES

TODAY = date(2026, 11, 27)
MARKER = re.compile(r"^<!-- pm:")
SECTION_START = re.compile(r"^<!-- pm:section id=(?P<id>[a-z0-9_-]+) hash=(?P<hash>[0-9a-f]{16}) mac=[0-9a-f]{32} -->$")
SECTION_END = re.compile(r"^<!-- pm:end (?P<id>[a-z0-9_-]+) mac=[0-9a-f]{32} -->$")
KEY = SectionKey(bytes(range(32)))


def _esc(prose: str) -> str:
    """The sample's prose as rendered: Markdown punctuation in it (here only `_`) is escaped."""
    return prose.replace("_", r"\_")


def _render(draft: Draft) -> str:
    return render_markdown(draft, key=KEY)


def _markers(draft: Draft) -> Markers:
    return Markers(KEY, draft.incident.id)


def _redraft(draft: Draft, existing: str, new: str, *, base_md: str | None = None, today: date) -> RedraftResult:
    return redraft(existing, new, markers=_markers(draft), base_md=base_md, today=today)


@pytest.fixture(scope="module")
def draft() -> Draft:
    _, d = draft_bundle(SAMPLES / "edge-cert-expiry", Settings())
    return d


@pytest.fixture(scope="module")
def newer(draft: Draft) -> Draft:
    """The same incident after new inputs: a changed summary and impact, a quarantined record, related incidents."""
    return draft.model_copy(
        update={
            "summary": draft.summary + " A late customer ticket was added.",
            "impact": draft.impact.model_copy(update={"statement": draft.impact.statement + " (updated)"}),
            "quarantine": [Quarantined(source="unknown", file="x.json", position="/", reason="malformed JSON")],
            "related": [RelatedIncident(incident_id="INC-1", title="Old cert expiry", score=0.9)],
        }
    )


def _replace_section_body(md: str, section_id: str, new_body: str) -> str:
    lines = md.split("\n")
    start = next(i for i, ln in enumerate(lines) if (m := SECTION_START.match(ln)) and m["id"] == section_id)
    end = next(i for i, ln in enumerate(lines) if (m := SECTION_END.match(ln)) and m["id"] == section_id)
    return "\n".join([*lines[: start + 1], new_body, *lines[end:]])


def _drop_section(md: str, section_id: str) -> str:
    lines = md.split("\n")
    start = next(i for i, ln in enumerate(lines) if (m := SECTION_START.match(ln)) and m["id"] == section_id)
    end = next(i for i, ln in enumerate(lines) if (m := SECTION_END.match(ln)) and m["id"] == section_id)
    return "\n".join([*lines[:start], *lines[end + 1 :]])


def test_every_top_level_section_is_marked_with_the_hash_of_its_text(draft: Draft) -> None:
    md = _render(draft)
    sections = [item for item in parse_sections(md, _markers(draft)).items if isinstance(item, MarkedSection)]
    ids = [s.id for s in sections]
    expected = ["header", "summary", "impact", "key-moments", "contributing-factors", "action-items", "lessons"]
    expected += ["timeline", *(["quarantine"] if draft.quarantine else []), "footer"]
    assert ids == expected
    for s in sections:
        assert s.marker_hash == section_hash("\n".join(s.body))
        assert not s.edited
    headings = [ln for ln in md.split("\n") if ln.startswith("## ")]
    assert len([i for i in ids if i not in ("header", "footer")]) == len(headings)
    # the markers are the only addition: without them, the document is the plain rendering
    plain = "\n".join(ln for ln in md.split("\n") if not MARKER.match(ln))
    assert "<!--" not in plain and plain.startswith("# Postmortem draft") and plain.endswith("._\n")


def test_untouched_document_is_replaced_by_the_new_draft(draft: Draft, newer: Draft) -> None:
    result = _redraft(draft, _render(draft), _render(newer), today=TODAY)
    assert result.markdown == _render(newer)
    assert result.kept_sections == [] and result.suggestions == []
    assert "summary" in result.regenerated_sections and set(result.added_sections) == {"related", "quarantine"}


def test_edited_section_is_kept_with_a_suggestion_and_deleted_section_stays_deleted(draft: Draft, newer: Draft) -> None:
    original = _render(draft)
    edited = _replace_section_body(
        original, "summary", "## Summary\n\nThe api-eu certificate expired; our renewal job had silently stopped.\n"
    )
    edited = _drop_section(edited, "lessons")
    edited += "\n## Notes from the review meeting\n\nAgreed to move certificates to the managed issuer.\n"

    result = _redraft(draft, edited, _render(newer), base_md=original, today=TODAY)
    md = result.markdown

    assert result.kept_sections == ["summary"]
    assert "impact" in result.regenerated_sections and "summary" not in result.regenerated_sections
    assert "our renewal job had silently stopped" in md  # the person's words survive
    assert newer.impact.statement in md  # untouched sections take the new text
    assert "Notes from the review meeting" in md  # free text outside sections is kept

    # the suggestion: a marked block with the date and a unified diff of what the pipeline learned
    assert [s.section for s in result.suggestions] == ["summary"]
    assert "> **Suggested update (pipeline, 2026-11-27):**" in md
    diff = result.suggestions[0].diff
    assert diff.startswith("--- summary (before)\n+++ summary (new draft)")
    assert f"-{_esc(draft.summary)}" in diff and f"+{_esc(newer.summary)}" in diff
    assert "```diff\n" + diff + "\n```" in md
    summary_block = md[md.index("<!-- pm:section id=summary") : md.index("<!-- pm:end summary ")]
    assert "our renewal job" in summary_block and "Suggested update" in summary_block

    # deletions stay deleted, and say so
    assert result.removed_sections == ["lessons"] and "## Lessons" not in md
    assert "<!-- pm:removed id=lessons mac=" in md
    assert any("lessons" in note and "deleted" in note for note in result.notes)

    # new sections arrive in template order
    assert set(result.added_sections) == {"related", "quarantine"}
    assert md.index("## Action items") < md.index("## Related incidents") < md.index("## Timeline")
    assert md.index("## Timeline") < md.index("## Quarantined records")


def test_redrafting_again_is_stable_and_accepting_the_suggestion_hands_the_section_back(
    draft: Draft, newer: Draft
) -> None:
    original = _render(draft)
    edited = _drop_section(_replace_section_body(original, "summary", "## Summary\n\nOur own summary.\n"), "lessons")
    first = _redraft(draft, edited, _render(newer), base_md=original, today=TODAY)

    # the same new draft again (e.g. a retried sweep): no second suggestion, nothing resurrected
    again = _redraft(draft, first.markdown, _render(newer), base_md=_render(newer), today=TODAY)
    assert again.kept_sections == ["summary"] and again.suggestions == []
    assert again.markdown.count("Suggested update") == 1
    assert again.removed_sections == ["lessons"] and "## Lessons" not in again.markdown

    # without base_md the removed marker still keeps the section out
    no_base = _redraft(draft, first.markdown, _render(newer), today=TODAY)
    assert "## Lessons" not in no_base.markdown and no_base.removed_sections == ["lessons"]

    # the person accepts the new text verbatim and deletes the suggestion: the pipeline owns it again
    items = [
        i
        for i in parse_sections(_render(newer), _markers(draft)).items
        if isinstance(i, MarkedSection) and i.id == "summary"
    ]
    accepted_body = "\n".join(items[0].body)
    accepted = _replace_section_body(again.markdown, "summary", accepted_body)
    newest = newer.model_copy(update={"summary": newer.summary + " Third version."})
    final = _redraft(draft, accepted, _render(newest), today=TODAY)
    assert "summary" in final.regenerated_sections and _esc(newest.summary) in final.markdown


def test_without_base_the_diff_is_from_the_current_text_and_edited_sections_no_longer_generated_stay(
    draft: Draft, newer: Draft
) -> None:
    with_extra = _render(newer)
    edited = _replace_section_body(with_extra, "quarantine", "## Quarantined records\n\nChecked by hand: harmless.\n")
    result = _redraft(draft, edited, _render(draft), today=TODAY)  # the newest draft has no quarantine
    assert "Checked by hand: harmless." in result.markdown and "quarantine" in result.kept_sections
    assert any("quarantine" in n and "kept" in n for n in result.notes)
    assert "## Related incidents" not in result.markdown  # untouched and no longer generated: dropped

    edited_summary = _replace_section_body(_render(draft), "summary", "## Summary\n\nMine.\n")
    plain = _redraft(draft, edited_summary, _render(newer), today=TODAY)
    assert "-Mine." in plain.suggestions[0].diff and f"+{_esc(newer.summary)}" in plain.suggestions[0].diff
    assert "(diff: current text → new generated)" in plain.markdown


def test_whitespace_only_changes_are_not_edits_and_fences_survive_backticks(draft: Draft, newer: Draft) -> None:
    md = _render(draft).replace("\n", "  \r\n")  # an editor added trailing spaces and CRLF
    result = _redraft(draft, md, _render(newer), today=TODAY)
    assert result.kept_sections == []

    timeline_edit = _replace_section_body(_render(draft), "timeline", "## Timeline\n\n```mermaid\nx\n```\n")
    res = _redraft(
        draft, timeline_edit, _render(newer.model_copy(update={"timeline": newer.timeline[:3]})), today=TODAY
    )
    assert "timeline" in res.kept_sections
    assert "````diff" in res.markdown  # a longer fence, since the diff itself holds ``` lines


def test_title_follows_the_new_draft_only_when_untouched(draft: Draft) -> None:
    original = _render(draft)
    retitled = draft.model_copy(update={"incident": draft.incident.model_copy(update={"title": "Renamed incident"})})
    new_md = _render(retitled)
    assert original.startswith("# Postmortem draft") and new_md.startswith("# Postmortem draft: Renamed incident\n")

    assert _redraft(draft, original, new_md, base_md=original, today=TODAY).markdown == new_md
    assert _redraft(draft, original, new_md, today=TODAY).markdown.startswith(
        original.split("\n", 1)[0]
    )  # no base: kept
    mine = "# Our title for this one" + original[original.index("\n") :]
    assert _redraft(draft, mine, new_md, base_md=original, today=TODAY).markdown.startswith(
        "# Our title for this one\n"
    )
