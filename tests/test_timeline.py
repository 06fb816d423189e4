from __future__ import annotations

from pipeline.models import Quarantined
from pipeline.settings import Settings
from pipeline.timeline import build_timeline
from tests.builders import output, row

SETTINGS = Settings(storm_window_s=600, storm_min_count=3, cross_source_window_s=300)


def test_exact_duplicates_keep_the_highest_revision_and_are_counted() -> None:
    original = row("C1:100", 1, text="deploy is fine")
    edited = row("C1:100", 1, text="deploy is NOT fine", revision=5)
    redelivered = row("C1:100", 1, text="deploy is fine")
    timeline = build_timeline("INC-1", [output(original, edited, redelivered)], SETTINGS)
    entries = timeline.entries()
    assert [e.text for e in entries] == ["deploy is NOT fine"]
    assert timeline.stats.duplicates == 2
    assert timeline.stats.balanced


def test_entries_are_in_utc_time_order_with_stable_ties() -> None:
    rows = [row("b", 5), row("a", 5), row("c", 1), row("x", 3, source="jira", kind="comment")]
    timeline = build_timeline("INC-1", [output(*rows)], SETTINGS)
    at = [e.at for e in timeline.entries()]
    assert at == sorted(at)
    assert all(a.utcoffset() is not None and a.utcoffset().total_seconds() == 0 for a in at)
    again = build_timeline("INC-1", [output(*reversed(rows))], SETTINGS)
    assert [e.id for e in again.entries()] == [e.id for e in timeline.entries()]


def test_alert_storm_collapses_into_one_entry_with_count_and_span() -> None:
    storm = [
        row(f"pod{i}", 1 + i, "alert_firing", source="alertmanager", signal="highconnections", actor="Alertmanager")
        for i in range(5)
    ]
    far = row("later", 60, "alert_firing", source="alertmanager", signal="highconnections")
    timeline = build_timeline("INC-1", [output(*storm, far)], SETTINGS)
    entries = timeline.entries()
    assert [e.count for e in entries] == [5, 1]
    assert entries[0].last_at is not None and (entries[0].last_at - entries[0].at).total_seconds() == 240
    assert len(entries[0].merged_ids) == 4
    assert timeline.stats.collapsed == 4
    assert timeline.stats.balanced
    # every folded event stays citable and resolves to its entry
    for member in entries[0].merged_ids:
        assert member in timeline.known_ids
        assert timeline.resolve_id(member) == entries[0].id


def test_two_alerts_are_not_a_storm() -> None:
    rows = [row(f"p{i}", i, "alert_firing", source="alertmanager", signal="cpuhigh") for i in range(2)]
    timeline = build_timeline("INC-1", [output(*rows)], SETTINGS)
    assert [e.count for e in timeline.entries()] == [1, 1]


def test_same_alert_via_alertmanager_and_pagerduty_is_one_entry() -> None:
    alert = row("fp1", 0, "alert_firing", source="alertmanager", signal="higherrorrate", service="checkout")
    page = row("incident:P1:triggered", 1, "page_triggered", source="pagerduty", signal="firing1higherrorratecheckout")
    unrelated = row("incident:P2:triggered", 2, "page_triggered", source="pagerduty", signal="diskfull")
    timeline = build_timeline("INC-1", [output(alert), output(page, unrelated)], SETTINGS)
    entries = timeline.entries()
    assert len(entries) == 2
    merged = entries[0]
    assert merged.source.value == "alertmanager"
    assert [s.value for s in merged.also_seen_in] == ["pagerduty"]
    assert page.id in merged.merged_ids
    assert timeline.stats.duplicates == 1


def test_page_outside_the_window_is_kept() -> None:
    alert = row("fp1", 0, "alert_firing", source="alertmanager", signal="higherrorrate")
    page = row("incident:P1:triggered", 30, "page_triggered", source="pagerduty", signal="higherrorrate")
    timeline = build_timeline("INC-1", [output(alert, page)], SETTINGS)
    assert len(timeline.entries()) == 2


def test_threads_fold_under_their_parent() -> None:
    parent = row("C1:1", 0, text="seeing 5xx")
    other = row("C1:2", 2, text="unrelated chatter")
    reply1 = row("C1:3", 3, text="looking", thread="C1:1")
    reply2 = row("C1:4", 5, text="rolled back", thread="C1:1")
    orphan = row("C1:5", 4, text="reply to a parent outside the export", thread="C1:0")
    timeline = build_timeline("INC-1", [output(reply2, other, parent, orphan, reply1)], SETTINGS)
    entries = timeline.entries()
    assert [e.text for e in entries] == [
        "seeing 5xx",
        "looking",
        "rolled back",
        "unrelated chatter",
        "reply to a parent outside the export",
    ]
    assert entries[1].parent_id == parent.id and entries[2].parent_id == parent.id
    assert entries[4].parent_id is None


def test_counts_balance_with_quarantine() -> None:
    bad = Quarantined(source="slack", file="f.json", position="/3", reason="missing ts")
    rows = [row("a", 1), row("a", 1), row("b", 2)]
    storm = [row(f"s{i}", i, "alert_firing", source="grafana", signal="latency") for i in range(4)]
    timeline = build_timeline("INC-1", [output(*rows, *storm)], SETTINGS, extra_quarantine=[bad])
    s = timeline.stats
    assert (s.records_in, s.events, s.duplicates, s.collapsed, s.quarantined) == (8, 3, 1, 3, 1)
    assert s.balanced
    assert timeline.quarantine == [bad]


def test_empty_timeline() -> None:
    timeline = build_timeline("INC-1", [], SETTINGS)
    assert timeline.entries() == []
    assert timeline.stats.balanced and timeline.stats.records_in == 0
