"""Re-drafting keeps a person's edits: section markers, edited/untouched detection, suggestions, deletions."""

from __future__ import annotations

import re
from datetime import date

import pytest

from pipeline.models import Draft, Quarantined, RelatedIncident
from pipeline.redraft import MarkedSection, parse_sections, redraft
from pipeline.render import SECTION_END, SECTION_START, render_markdown, section_hash
from pipeline.service import draft_bundle
from pipeline.settings import Settings
from tests.conftest import SAMPLES

TODAY = date(2026, 11, 27)
MARKER = re.compile(r"^<!-- pm:")


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
    md = render_markdown(draft)
    sections = [item for item in parse_sections(md) if isinstance(item, MarkedSection)]
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
    result = redraft(render_markdown(draft), render_markdown(newer), today=TODAY)
    assert result.markdown == render_markdown(newer)
    assert result.kept_sections == [] and result.suggestions == []
    assert "summary" in result.regenerated_sections and set(result.added_sections) == {"related", "quarantine"}


def test_edited_section_is_kept_with_a_suggestion_and_deleted_section_stays_deleted(draft: Draft, newer: Draft) -> None:
    original = render_markdown(draft)
    edited = _replace_section_body(
        original, "summary", "## Summary\n\nThe api-eu certificate expired; our renewal job had silently stopped.\n"
    )
    edited = _drop_section(edited, "lessons")
    edited += "\n## Notes from the review meeting\n\nAgreed to move certificates to the managed issuer.\n"

    result = redraft(edited, render_markdown(newer), base_md=original, today=TODAY)
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
    assert f"-{draft.summary}" in diff and f"+{newer.summary}" in diff
    assert "```diff\n" + diff + "\n```" in md
    summary_block = md[md.index("<!-- pm:section id=summary") : md.index("<!-- pm:end summary -->")]
    assert "our renewal job" in summary_block and "Suggested update" in summary_block

    # deletions stay deleted, and say so
    assert result.removed_sections == ["lessons"] and "## Lessons" not in md
    assert "<!-- pm:removed id=lessons -->" in md
    assert any("lessons" in note and "deleted" in note for note in result.notes)

    # new sections arrive in template order
    assert set(result.added_sections) == {"related", "quarantine"}
    assert md.index("## Action items") < md.index("## Related incidents") < md.index("## Timeline")
    assert md.index("## Timeline") < md.index("## Quarantined records")


def test_redrafting_again_is_stable_and_accepting_the_suggestion_hands_the_section_back(
    draft: Draft, newer: Draft
) -> None:
    original = render_markdown(draft)
    edited = _drop_section(_replace_section_body(original, "summary", "## Summary\n\nOur own summary.\n"), "lessons")
    first = redraft(edited, render_markdown(newer), base_md=original, today=TODAY)

    # the same new draft again (e.g. a retried sweep): no second suggestion, nothing resurrected
    again = redraft(first.markdown, render_markdown(newer), base_md=render_markdown(newer), today=TODAY)
    assert again.kept_sections == ["summary"] and again.suggestions == []
    assert again.markdown.count("Suggested update") == 1
    assert again.removed_sections == ["lessons"] and "## Lessons" not in again.markdown

    # without base_md the removed marker still keeps the section out
    no_base = redraft(first.markdown, render_markdown(newer), today=TODAY)
    assert "## Lessons" not in no_base.markdown and no_base.removed_sections == ["lessons"]

    # the person accepts the new text verbatim and deletes the suggestion: the pipeline owns it again
    items = [i for i in parse_sections(render_markdown(newer)) if isinstance(i, MarkedSection) and i.id == "summary"]
    accepted_body = "\n".join(items[0].body)
    accepted = _replace_section_body(again.markdown, "summary", accepted_body)
    newest = newer.model_copy(update={"summary": newer.summary + " Third version."})
    final = redraft(accepted, render_markdown(newest), today=TODAY)
    assert "summary" in final.regenerated_sections and newest.summary in final.markdown


def test_without_base_the_diff_is_from_the_current_text_and_edited_sections_no_longer_generated_stay(
    draft: Draft, newer: Draft
) -> None:
    with_extra = render_markdown(newer)
    edited = _replace_section_body(with_extra, "quarantine", "## Quarantined records\n\nChecked by hand: harmless.\n")
    result = redraft(edited, render_markdown(draft), today=TODAY)  # the newest draft has no quarantine
    assert "Checked by hand: harmless." in result.markdown and "quarantine" in result.kept_sections
    assert any("quarantine" in n and "kept" in n for n in result.notes)
    assert "## Related incidents" not in result.markdown  # untouched and no longer generated: dropped

    edited_summary = _replace_section_body(render_markdown(draft), "summary", "## Summary\n\nMine.\n")
    plain = redraft(edited_summary, render_markdown(newer), today=TODAY)
    assert "-Mine." in plain.suggestions[0].diff and f"+{newer.summary}" in plain.suggestions[0].diff
    assert "(diff: current text → new generated)" in plain.markdown


def test_whitespace_only_changes_are_not_edits_and_fences_survive_backticks(draft: Draft, newer: Draft) -> None:
    md = render_markdown(draft).replace("\n", "  \r\n")  # an editor added trailing spaces and CRLF
    result = redraft(md, render_markdown(newer), today=TODAY)
    assert result.kept_sections == []

    timeline_edit = _replace_section_body(render_markdown(draft), "timeline", "## Timeline\n\n```mermaid\nx\n```\n")
    res = redraft(
        timeline_edit, render_markdown(newer.model_copy(update={"timeline": newer.timeline[:3]})), today=TODAY
    )
    assert "timeline" in res.kept_sections
    assert "````diff" in res.markdown  # a longer fence, since the diff itself holds ``` lines


def test_title_follows_the_new_draft_only_when_untouched(draft: Draft) -> None:
    original = render_markdown(draft)
    retitled = draft.model_copy(update={"incident": draft.incident.model_copy(update={"title": "Renamed incident"})})
    new_md = render_markdown(retitled)
    assert original.startswith("# Postmortem draft") and new_md.startswith("# Postmortem draft: Renamed incident\n")

    assert redraft(original, new_md, base_md=original, today=TODAY).markdown == new_md
    assert redraft(original, new_md, today=TODAY).markdown.startswith(original.split("\n", 1)[0])  # no base: kept
    mine = "# Our title for this one" + original[original.index("\n") :]
    assert redraft(mine, new_md, base_md=original, today=TODAY).markdown.startswith("# Our title for this one\n")
