from __future__ import annotations

from pipeline.models import ActionItem, ContributingFactor, DraftContent, Highlight, Lesson
from pipeline.quantities import durations_in, format_duration
from pipeline.validate import Facts, validate_content
from tests.builders import T0

FACTS = Facts(
    known_ids={"ev_a", "ev_b"},
    texts={"ev_a": "Deployed checkout-api v2.14.0 to production", "ev_b": "ack"},
    durations_s={"time_to_detect_s": 300, "time_to_resolve_s": 3900},
    counts={"alert": 12, "page": 1},
)


def _content(**kw: object) -> DraftContent:
    base: dict[str, object] = {
        "summary": "Detected after 5 min; resolved after 1 h 5 min.",
        "impact_statement": "12 alerts",
    }
    base.update(kw)
    return DraftContent.model_validate(base)


def test_a_grounded_draft_passes_unchanged() -> None:
    content = _content(
        contributing_factors=[
            ContributingFactor(
                statement="A deploy (\u201cDeployed checkout-api v2.14.0\u201d).", category="change", evidence=["ev_a"]
            )
        ]
    )
    repaired, report = validate_content(content, FACTS)
    assert report.ok, report
    assert repaired == content


def test_unknown_citations_are_dropped_and_unsupported_items_removed() -> None:
    content = _content(
        contributing_factors=[
            ContributingFactor(statement="x", category="change", evidence=["ev_a", "ev_ghost"]),
            ContributingFactor(statement="y", category="capacity", evidence=["ev_ghost"]),
        ],
        lessons=[Lesson(kind="went_well", statement="z", evidence=["ev_nope"])],
        highlights=[Highlight(event_id="ev_nope", at=T0, text="h")],
        action_items=[ActionItem(description="Add alert", type="detect", evidence=["ev_nope"])],
    )
    repaired, report = validate_content(content, FACTS)
    assert [f.evidence for f in repaired.contributing_factors] == [["ev_a"]]
    assert repaired.lessons == [] and repaired.highlights == [] and repaired.action_items == []
    assert len(report.repairs) == 8
    assert report.ok


def test_numbers_that_match_no_metric_reject_the_draft() -> None:
    _, report = validate_content(_content(summary="It was detected after 7 min."), FACTS)
    assert not report.ok
    assert any("7 min" in p for p in report.problems)
    _, report = validate_content(_content(impact_statement="13 alerts fired"), FACTS)
    assert any("13 alerts" in p for p in report.problems)


def test_blame_language_rejects_the_draft() -> None:
    _, report = validate_content(_content(summary="Dave forgot to renew the cert; human error."), FACTS)
    assert not report.ok
    assert report.blame_hits == ["summary: \u201cforgot\u201d", "summary: \u201chuman error\u201d"]


def test_blaming_action_items_are_removed() -> None:
    content = _content(action_items=[ActionItem(description="Make sure ops stop being careless", type="process")])
    repaired, report = validate_content(content, FACTS)
    assert repaired.action_items == [] and "careless" in report.repairs[0]


def test_quotes_must_be_verbatim_from_cited_evidence() -> None:
    bad = ContributingFactor(
        statement="A deploy (\u201cDeployed billing v1\u201d).", category="change", evidence=["ev_a"]
    )
    _, report = validate_content(_content(contributing_factors=[bad]), FACTS)
    assert any("not in its cited evidence" in p for p in report.problems)


def test_every_formatted_duration_reads_back_within_tolerance() -> None:
    for seconds in [0, 59, 61, 89, 90, 3599, 3600, 3629, 3631, 7199, 86_400, 200_000]:
        (mention,) = durations_in(f"took {format_duration(seconds)}")
        assert abs(mention.value - seconds) <= mention.tolerance, (seconds, mention)


def test_http_500s_are_not_durations() -> None:
    assert durations_in("a wave of 500s and 503 errors") == []
