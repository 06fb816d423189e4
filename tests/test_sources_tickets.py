"""Jira, GitHub and Statuspage parsers: own fixtures, shared real payloads, hostile input."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.models import Event, EventKind, EventRow, ParseOutput
from pipeline.sources.base import ParseContext, SourceDocument
from pipeline.sources.github import GitHubParser
from pipeline.sources.jira import JiraParser, adf_to_text
from pipeline.sources.statuspage import StatuspageParser

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CTX = ParseContext(incident_id="INC-2025-0314")
JIRA, GITHUB, STATUSPAGE = JiraParser(), GitHubParser(), StatuspageParser()
PARSERS = {"jira": JIRA, "github": GITHUB, "statuspage": STATUSPAGE}

JIRA_ISSUE = "jira/ops1287_issue_expand_changelog.json"
JIRA_COMMENTS = "jira/ops1287_comments.json"
JIRA_WEBHOOK = "jira/ops1287_webhook_issue_updated.json"
JIRA_CHANGELOG = "jira/ops1287_changelog_page.json"
JIRA_FOLLOWUPS = "jira/followups_search.json"
GH_ISSUE = "github/issue_412.json"
GH_TIMELINE = "github/issue_412_timeline.json"
GH_EVENTS = "github/issue_412_events.json"
GH_COMMENTS = "github/issue_412_comments.json"
SP_WEBHOOK = "statuspage/checkout_incident_webhook.json"
SP_LIST = "statuspage/incidents_list.json"
GH_KEY = "acme/payments-service#412"

OWN_DOCS = {
    "jira": [JIRA_ISSUE, JIRA_COMMENTS, JIRA_WEBHOOK, JIRA_CHANGELOG, JIRA_FOLLOWUPS],
    "github": [GH_ISSUE, GH_TIMELINE, GH_EVENTS, GH_COMMENTS],
    "statuspage": [SP_WEBHOOK, SP_LIST],
}


def load(rel: str) -> SourceDocument:
    return SourceDocument(path=rel, data=json.loads((FIXTURES / rel).read_text()))


def doc(data: Any, path: str = "inline.json") -> SourceDocument:
    return SourceDocument(path=path, data=data)


def ns(*args: int, micro: int = 0) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 10**9 + micro * 1000


def by_kind(rows: Sequence[EventRow], kind: EventKind) -> list[EventRow]:
    return [row for row in rows if row.kind == kind]


def by_native(rows: Sequence[EventRow]) -> dict[str, EventRow]:
    return {row.native_id: row for row in rows}


def assert_clean(out: ParseOutput) -> None:
    """No quarantine, and every row is a valid Event with JSON-safe attrs."""
    assert out.quarantined == []
    for row in out.rows:
        Event.from_row(row)
        orjson.dumps(row.attrs)


def reasons(out: ParseOutput) -> list[str]:
    return [q.reason for q in out.quarantined]


# --- Jira ----------------------------------------------------------------------------------------------------


def test_jira_rest_issue_with_changelog_kinds_times_and_attrs() -> None:
    out = JIRA.parse([load(JIRA_ISSUE)], CTX)
    assert_clean(out)
    assert [row.kind for row in out.rows] == [
        EventKind.TICKET_CREATED,
        EventKind.STATUS_CHANGE,  # Open -> In Progress
        EventKind.ASSIGNED,
        EventKind.LABELED,
        EventKind.STATUS_CHANGE,  # resolution
        EventKind.STATUS_CHANGE,  # In Progress -> Done
        EventKind.COMMENT,
    ]
    ticket = out.rows[0]
    assert ticket.native_id == "20417:created"
    assert ticket.ts_ns == ns(2025, 3, 14, 8, 12, 5, micro=318_000)  # 09:12:05.318+0100
    assert ticket.revision == ns(2025, 3, 14, 10, 47, 30, micro=4_000)  # fields.updated
    assert ticket.actor == "Tomás Ortega"
    assert ticket.service == "checkout-api"
    assert ticket.url == "https://acme-sre.atlassian.net/browse/OPS-1287"
    assert ticket.attrs == {
        "key": "OPS-1287",
        "title": "Checkout API returning 5xx after payments-config rollout",
        "labels": ["incident", "sev2"],
        "assignee": "Priya Raman",
        "due": None,
        "priority": "Highest",
        "status": "Done",
        "type": "Incident",
        "reporter": "Tomás Ortega",
    }
    transitions = [
        (row.attrs["from"], row.attrs["to"])
        for row in by_kind(out.rows, EventKind.STATUS_CHANGE)
        if row.attrs and row.attrs["field"] == "status"
    ]
    assert transitions == [("Open", "In Progress"), ("In Progress", "Done")]
    done = by_native(out.rows)["20417:history:118262:1"]
    assert done.text == "OPS-1287 status: In Progress → Done"
    assert done.ts_ns == ns(2025, 3, 14, 10, 47, 29, micro=950_000)
    assert done.actor == "Priya Raman"
    resolution = by_native(out.rows)["20417:history:118262:0"]
    assert resolution.attrs == {"field": "resolution", "from": None, "to": "Done"}
    labeled = by_kind(out.rows, EventKind.LABELED)[0]
    assert labeled.attrs == {
        "field": "labels",
        "from": "incident",
        "to": "incident sev2",
        "added": ["sev2"],
        "removed": [],
    }
    assert labeled.text == "OPS-1287 labels: +sev2"
    assigned = by_kind(out.rows, EventKind.ASSIGNED)[0]
    assert assigned.text == "OPS-1287 assigned to Priya Raman"
    assert assigned.position == "/changelog/histories/0/items/1"


def test_jira_adf_comment_bodies_become_plain_text() -> None:
    out = JIRA.parse([load(JIRA_COMMENTS)], CTX)
    assert_clean(out)
    first, second = out.rows
    assert first.kind == second.kind == EventKind.COMMENT
    assert first.text == (
        "issue 20417 comment: Rolling back payments-config to rev 8841. @Tomás Ortega please hold the 10:00 "
        "deploy train.\nrollback started 09:19\ncanary healthy\nwatching p99"
    )
    assert "max_retries: 0 in the new config.\npayments:\nmax_retries: 0" in second.text
    assert '"type"' not in first.text + second.text
    assert first.actor == "Priya Raman"
    assert first.ts_ns == ns(2025, 3, 14, 8, 20, 11, micro=402_000)


def test_adf_flattening_handles_nesting_breaks_and_junk() -> None:
    adf = {
        "type": "doc",
        "content": [
            {"type": "heading", "content": [{"type": "text", "text": "Impact"}]},
            {"type": "paragraph", "content": [{"type": "emoji", "attrs": {"shortName": ":fire:"}}, 7, None]},
        ],
    }
    assert adf_to_text(adf) == "Impact\n:fire:"
    assert adf_to_text("  plain *wiki* text ") == "plain *wiki* text"
    assert adf_to_text(42) == ""
    deep: dict[str, Any] = {"type": "text", "text": "bottom"}
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = {"type": "paragraph", "content": [deep]}
    assert adf_to_text(deep) == "bottom"


def test_jira_comment_ids_meet_across_rest_issue_comments_endpoint_and_revisions() -> None:
    issue_rows = by_native(JIRA.parse([load(JIRA_ISSUE)], CTX).rows)
    page = JIRA.parse([load(JIRA_COMMENTS)], CTX)
    page_rows = by_native(page.rows)
    assert set(page_rows) == {"20417:comment:310551", "20417:comment:310577"}
    assert "20417:comment:310551" in issue_rows  # the embedded copy of the same comment
    assert page_rows["20417:comment:310551"].revision == 0  # never edited
    edited = page_rows["20417:comment:310577"]
    assert edited.revision == ns(2025, 3, 14, 9, 9, 2)  # updated differs from created
    # Parsed with the issue in the same bundle the comments page learns the key, service and browse URL.
    together = by_native(JIRA.parse([load(JIRA_COMMENTS), load(JIRA_ISSUE)], CTX).rows)
    assert together["20417:comment:310577"].text.startswith("OPS-1287 comment: Error rate back")
    assert together["20417:comment:310577"].service == "checkout-api"
    assert together["20417:comment:310577"].url == (
        "https://acme-sre.atlassian.net/browse/OPS-1287?focusedCommentId=310577"
    )


def test_jira_webhook_history_meets_the_rest_history() -> None:
    webhook = JIRA.parse([load(JIRA_WEBHOOK)], CTX)
    assert_clean(webhook)
    rows = by_native(webhook.rows)
    assert set(rows) == {"20417:created", "20417:history:118262:0", "20417:history:118262:1"}
    rest = by_native(JIRA.parse([load(JIRA_ISSUE)], CTX).rows)
    for native in rows:
        assert rows[native].id == rest[native].id
        assert rows[native].kind == rest[native].kind
    status = rows["20417:history:118262:1"]
    assert status.attrs == {"field": "status", "from": "In Progress", "to": "Done"}
    assert status.ts_ns == 1_741_949_250_412 * 10**6  # the webhook timestamp (epoch ms)
    assert status.actor == "Priya Raman"  # the webhook's user
    assert status.position == "/changelog/items/1"
    # A re-delivery of the same webhook produces the very same ids.
    again = JIRA.parse([load(JIRA_WEBHOOK)], CTX)
    assert [r.id for r in again.rows] == [r.id for r in webhook.rows]


def test_jira_changelog_page_takes_its_issue_from_self() -> None:
    alone = JIRA.parse([load(JIRA_CHANGELOG)], CTX)
    assert_clean(alone)
    # Without a document naming OPS-1287's id, the key from the self URL anchors the ids (stable fallback).
    assert [r.native_id for r in alone.rows] == [
        "OPS-1287:history:118201:0",
        "OPS-1287:history:118201:1",
        "OPS-1287:history:118230:0",
    ]
    assert alone.rows[0].text == "OPS-1287 status: Open → In Progress"
    assert alone.rows[0].url == "https://acme-sre.atlassian.net/browse/OPS-1287"
    # With the issue in the bundle the key maps to the id, and the rows meet the issue's expanded changelog.
    together = JIRA.parse([load(JIRA_CHANGELOG), load(JIRA_ISSUE)], CTX)
    page_ids = [r.native_id for r in together.rows if r.file == JIRA_CHANGELOG]
    assert page_ids == ["20417:history:118201:0", "20417:history:118201:1", "20417:history:118230:0"]
    issue_ids = {r.native_id for r in together.rows if r.file == JIRA_ISSUE}
    assert set(page_ids) <= issue_ids


def test_jira_followup_tickets_carry_action_item_attrs() -> None:
    out = JIRA.parse([load(JIRA_FOLLOWUPS)], CTX)
    assert_clean(out)
    assert [r.kind for r in out.rows] == [EventKind.TICKET_CREATED, EventKind.TICKET_CREATED]
    first, second = (r.attrs for r in out.rows)
    assert first == {
        "key": "OPS-1291",
        "title": "Validate payments-config schema in CI before rollout",
        "labels": ["follow-up", "payments"],
        "assignee": "Priya Raman",
        "due": "2025-03-28",
        "priority": "High",
        "status": "To Do",
        "type": "Task",
        "reporter": "Tomás Ortega",
    }
    assert second is not None
    assert second["labels"] == ["postmortem-action"]
    assert (second["assignee"], second["due"], second["status"]) == ("Dmitri Volkov", "2025-04-04", "In Progress")
    assert out.rows[0].ts_ns == ns(2025, 3, 14, 15, 2, 11)  # +0000
    assert out.rows[1].revision == ns(2025, 3, 16, 7, 45, 12)
    assert [r.position for r in out.rows] == ["/issues/0", "/issues/1"]
    assert out.rows[1].service == "checkout-api"


def test_jira_quarantines_broken_records_with_reasons_and_keeps_the_rest() -> None:
    issue = load(JIRA_ISSUE).data
    histories = issue["changelog"]["histories"]
    histories[0]["created"] = "1970-01-18T06:27:50.429+0000"
    del histories[1]["items"][0]["field"]
    histories[2]["items"] = []
    del issue["fields"]["comment"]["comments"][0]["id"]
    out = JIRA.parse([doc(issue, "broken.json")], CTX)
    assert sorted(reasons(out)) == sorted(
        [
            "history 118201 created: impossible timestamp '1970-01-18T06:27:50.429+0000' (outside 2000..2100)",
            "history 118230 item 0 has no field",
            "history 118262 has no items",
            "comment has no id",
        ]
    )
    positions = {q.position for q in out.quarantined}
    assert positions == {
        "/changelog/histories/0",
        "/changelog/histories/1/items/0",
        "/changelog/histories/2",
        "/fields/comment/comments/0",
    }
    assert [r.kind for r in out.rows] == [EventKind.TICKET_CREATED]  # the ticket itself still parses

    no_created = load(JIRA_FOLLOWUPS).data
    del no_created["issues"][1]["fields"]["created"]
    out = JIRA.parse([doc(no_created)], CTX)
    assert reasons(out) == ["issue OPS-1292 has no fields.created"]
    assert [r.attrs["key"] for r in out.rows if r.attrs] == ["OPS-1291"]

    bad_time = load(JIRA_COMMENTS).data
    bad_time["comments"][1]["created"] = "14/03/2025 10:05"
    out = JIRA.parse([doc(bad_time)], CTX)
    assert reasons(out) == ["comment 310577 created: unparseable timestamp '14/03/2025 10:05'"]
    assert len(out.rows) == 1

    out = JIRA.parse([doc({"issues": "nope"})], CTX)
    assert reasons(out) == ["not a Jira document (webhook, issue, changelog page, comments page or search result)"]


def test_jira_webhook_variants() -> None:
    comment = load(JIRA_COMMENTS).data["comments"][1]
    created = {
        "timestamp": 1741946748000,
        "webhookEvent": "comment_created",
        "comment": comment,
        "issue": {
            "id": "20417",
            "key": "OPS-1287",
            "self": "https://acme-sre.atlassian.net/rest/api/2/issue/20417",
            "fields": {"summary": "Checkout API returning 5xx"},
        },
    }
    out = JIRA.parse([doc(created)], CTX)
    assert_clean(out)  # a trimmed issue (no created) is no ticket and no complaint
    assert [r.native_id for r in out.rows] == ["20417:comment:310577"]
    assert out.rows[0].text.startswith("OPS-1287 comment:")

    deleted = dict(created, webhookEvent="comment_deleted")
    out = JIRA.parse([doc(deleted)], CTX)
    assert [(r.kind, r.native_id) for r in out.rows] == [(EventKind.SYSTEM, "20417:comment:310577:deleted")]

    lonely = {"webhookEvent": "jira:issue_updated", "issue": {"id": "1", "key": "X-1", "fields": {}}}
    out = JIRA.parse([doc(lonely)], CTX)
    assert reasons(out) == ["issue X-1 has no fields.created"]

    no_time = load(JIRA_WEBHOOK).data
    del no_time["timestamp"]
    rows = by_native(JIRA.parse([doc(no_time)], CTX).rows)
    assert rows["20417:history:118262:1"].ts_ns == ns(2025, 3, 14, 10, 47, 30, micro=4_000)  # fields.updated


# --- GitHub -------------------------------------------------------------------------------------------------


def gh_bundle() -> list[SourceDocument]:
    return [load(GH_ISSUE), load(GH_TIMELINE), load(GH_EVENTS), load(GH_COMMENTS)]


def test_github_issue_is_a_followup_ticket() -> None:
    out = GITHUB.parse([load(GH_ISSUE)], CTX)
    assert_clean(out)
    (ticket,) = out.rows
    assert ticket.kind == EventKind.TICKET_CREATED
    assert ticket.native_id == f"{GH_KEY}:created"
    assert ticket.ts_ns == ns(2025, 3, 14, 16, 20, 41)
    assert ticket.revision == ns(2025, 3, 20, 13, 2, 9)
    assert ticket.actor == "tortega"
    assert ticket.url == "https://github.com/acme/payments-service/issues/412"
    assert ticket.attrs == {
        "key": GH_KEY,
        "title": "Reject payments-config with max_retries: 0 at load time",
        "labels": ["postmortem", "reliability"],
        "assignee": "dvolkov",
        "due": None,
        "priority": None,
        "status": "closed",
        "type": "issue",
        "reporter": "tortega",
    }


def test_github_timeline_kinds_and_texts() -> None:
    out = GITHUB.parse([load(GH_TIMELINE)], CTX)
    assert_clean(out)
    assert [r.kind for r in out.rows] == [
        EventKind.LABELED,
        EventKind.ASSIGNED,
        EventKind.COMMENT,
        EventKind.SYSTEM,  # cross-referenced by the fixing PR
        EventKind.COMMENT,
        EventKind.STATUS_CHANGE,
    ]
    labeled, assigned, comment, xref, _, closed = out.rows
    assert labeled.attrs == {
        "field": "labels",
        "added": ["postmortem"],
        "removed": [],
        "key": GH_KEY,
        "event": "labeled",
    }
    assert labeled.native_id == "event:16601842201"
    assert assigned.text == f"{GH_KEY} assigned to dvolkov"
    assert assigned.attrs is not None and assigned.attrs["to"] == "dvolkov"
    assert comment.native_id == "comment:2731190874"
    assert comment.text.startswith(f"{GH_KEY} comment: Loader now fails fast")
    assert comment.revision == ns(2025, 3, 17, 10, 2, 55)  # edited after posting
    assert comment.url == "https://github.com/acme/payments-service/issues/412#issuecomment-2731190874"
    assert xref.text == (
        f"{GH_KEY} cross-referenced from acme/payments-service#418: config: reject max_retries < 1 at load time"
    )
    assert xref.native_id.startswith("timeline:")
    assert closed.attrs == {
        "field": "state",
        "from": "open",
        "to": "closed",
        "state_reason": "completed",
        "key": GH_KEY,
        "event": "closed",
    }
    assert closed.actor == "priya-r"
    assert closed.ts_ns == ns(2025, 3, 20, 13, 2, 8)
    assert closed.url == "https://github.com/acme/payments-service/issues/412"


def test_github_same_event_and_comment_ids_across_timeline_events_and_comments() -> None:
    out = GITHUB.parse(gh_bundle(), CTX)
    assert_clean(out)
    per_file: dict[str, set[str]] = {}
    for row in out.rows:
        per_file.setdefault(row.file, set()).add(row.id)
    assert per_file[GH_EVENTS] <= per_file[GH_TIMELINE]
    assert per_file[GH_COMMENTS] <= per_file[GH_TIMELINE]
    assert len(per_file[GH_EVENTS]) == 3 and len(per_file[GH_COMMENTS]) == 2
    distinct = {row.id for row in out.rows}
    assert len(distinct) == 7  # ticket + 6 timeline items; events and comments add nothing new
    # The events list names no issue: it was resolved from the sibling issue document.
    events = [r for r in out.rows if r.file == GH_EVENTS]
    assert all(r.attrs and r.attrs["key"] == GH_KEY for r in events)


def test_github_timeline_item_without_id_gets_a_stable_hash() -> None:
    first = GITHUB.parse([load(GH_TIMELINE)], CTX).rows[3]
    second = GITHUB.parse([load(GH_TIMELINE)], CTX).rows[3]
    assert first.native_id == second.native_id
    moved = load(GH_TIMELINE).data
    moved[3]["created_at"] = "2025-03-17T09:51:31Z"
    assert GITHUB.parse([doc(moved)], CTX).rows[3].native_id != first.native_id


def test_github_lists_without_an_issue_are_quarantined_with_the_reason() -> None:
    out = GITHUB.parse([load(GH_EVENTS)], CTX)
    assert out.rows == []
    assert [q.reason for q in out.quarantined] == [
        "cannot tell which issue this list belongs to: no issue_url/html_url in its items "
        "and no single issue document of the same repository beside it"
    ]
    # Two candidate issues of the same repository beside it: refuse to guess.
    other = load(GH_ISSUE).data
    other["number"] = 413
    other["url"] = other["url"].replace("/412", "/413")
    other["html_url"] = other["html_url"].replace("/412", "/413")
    docs = [load(GH_EVENTS), load(GH_ISSUE), doc(other, "github/issue_413.json")]
    out = GITHUB.parse(docs, CTX)
    assert len(out.quarantined) == 1 and out.quarantined[0].file == GH_EVENTS
    # An issue of another repository is no candidate.
    foreign = load(GH_ISSUE).data
    foreign["repository_url"] = "https://api.github.com/repos/acme/web"
    out = GITHUB.parse([load(GH_EVENTS), doc(foreign, "github/web.json")], CTX)
    assert [q.file for q in out.quarantined] == [GH_EVENTS]


def test_github_quarantines_broken_items_and_keeps_the_rest() -> None:
    timeline = load(GH_TIMELINE).data
    del timeline[0]["created_at"]
    timeline[1]["created_at"] = "2025-13-40T00:00:00Z"
    del timeline[2]["id"]
    timeline[4] = "not an object"
    out = GITHUB.parse([doc(timeline)], CTX)
    assert reasons(out) == [
        "labeled event has no created_at",
        "assigned event time: unparseable timestamp '2025-13-40T00:00:00Z'",
        "comment has no id",
        "timeline item is not an object",
    ]
    assert [q.position for q in out.quarantined] == ["/0", "/1", "/2", "/4"]
    assert [r.kind for r in out.rows] == [EventKind.SYSTEM, EventKind.STATUS_CHANGE]

    issue = load(GH_ISSUE).data
    issue["created_at"] = None
    out = GITHUB.parse([doc(issue)], CTX)
    assert reasons(out) == [f"issue {GH_KEY} created_at: timestamp is not a string: 'None'"]


# --- Statuspage ---------------------------------------------------------------------------------------------


def test_statuspage_webhook_updates_in_order() -> None:
    out = STATUSPAGE.parse([load(SP_WEBHOOK)], CTX)
    assert_clean(out)
    assert {r.kind for r in out.rows} == {EventKind.STATUS_UPDATE}
    ordered = sorted(out.rows, key=lambda r: r.ts_ns)
    assert [r.attrs["status"] for r in ordered if r.attrs] == [
        "investigating",
        "identified",
        "monitoring",
        "resolved",
    ]
    investigating, _, monitoring, resolved = ordered
    assert investigating.native_id == "update:a2s5d8f1g4h7"
    assert investigating.ts_ns == ns(2025, 3, 14, 8, 13, 20, micro=954_000)
    assert investigating.text == "Some customers cannot complete checkout. We are investigating."
    assert investigating.position == "/incident/incident_updates/3"  # newest first in the payload
    assert monitoring.ts_ns == ns(2025, 3, 14, 8, 24, 5, micro=310_000)
    assert resolved.attrs == {
        "status": "resolved",
        "incident_id": "t1q9w4e7r2ya",
        "impact": "major",
        "title": "Checkout failures for some customers",
    }
    for row in out.rows:
        assert (row.actor, row.service, row.severity, row.url) == (
            "Statuspage",
            "Checkout",
            "major",
            "https://stspg.io/acm3x9k2",
        )


def test_statuspage_list_and_webhook_ids_meet_and_edits_win() -> None:
    hook = STATUSPAGE.parse([load(SP_WEBHOOK)], CTX)
    listed = STATUSPAGE.parse([load(SP_LIST)], CTX)
    assert_clean(listed)
    assert sorted(r.id for r in hook.rows) == sorted(r.id for r in listed.rows)
    assert listed.rows[0].position == "/incidents/0/incident_updates/0"
    edited = load(SP_WEBHOOK).data
    edited["incident"]["incident_updates"][1]["updated_at"] = "2025-03-14T08:30:00Z"
    rows = by_native(STATUSPAGE.parse([doc(edited)], CTX).rows)
    assert rows["update:b8n1v4c7x0z3"].revision == ns(2025, 3, 14, 8, 30)
    assert rows["update:a2s5d8f1g4h7"].revision == 0


def test_statuspage_incident_without_updates_and_broken_updates() -> None:
    bare = load(SP_WEBHOOK).data["incident"]
    bare["incident_updates"] = []
    out = STATUSPAGE.parse([doc(bare)], CTX)
    assert_clean(out)
    (row,) = out.rows
    assert row.native_id == "incident:t1q9w4e7r2ya:resolved"
    assert row.ts_ns == ns(2025, 3, 14, 8, 13, 20, micro=901_000)
    assert row.attrs is not None and row.attrs["status"] == "resolved"

    broken = load(SP_WEBHOOK).data
    updates = broken["incident"]["incident_updates"]
    del updates[0]["status"]
    updates[1]["display_at"] = updates[1]["created_at"] = "soon"
    del updates[2]["id"]
    out = STATUSPAGE.parse([doc(broken)], CTX)
    assert reasons(out) == [
        "incident update f0h3j6k9l2m5 has no status",
        "incident update b8n1v4c7x0z3 has no usable display_at/created_at: 'soon'",
        "incident update has no id",
    ]
    assert [r.attrs["status"] for r in out.rows if r.attrs] == ["investigating"]

    backfilled = load(SP_WEBHOOK).data
    backfilled["incident"]["incident_updates"][3]["display_at"] = "2025-03-14T08:05:00Z"
    rows = by_native(STATUSPAGE.parse([doc(backfilled)], CTX).rows)
    assert rows["update:a2s5d8f1g4h7"].ts_ns == ns(2025, 3, 14, 8, 5)  # display_at is the time shown


# --- sniffing -----------------------------------------------------------------------------------------------


def _accepting(document: SourceDocument) -> list[str]:
    return [name for name, parser in PARSERS.items() if parser.sniff(document)]


@pytest.mark.parametrize(("owner", "rel"), [(o, r) for o, rels in OWN_DOCS.items() for r in rels])
def test_sniff_accepts_only_its_own_fixtures(owner: str, rel: str) -> None:
    assert _accepting(load(rel)) == [owner]


SLACK_DAY = [
    {"type": "message", "user": "U07PRIYA", "text": "rolling back payments-config", "ts": "1741940351.000200"},
    {"type": "message", "subtype": "channel_join", "user": "U07TOMAS", "text": "joined", "ts": "1741940360.000300"},
]
SLACK_USERS = [{"id": "U07PRIYA", "name": "priya", "real_name": "Priya Raman", "profile": {"display_name": "priya"}}]
ALERTMANAGER = {
    "version": "4",
    "groupKey": '{}:{alertname="CheckoutHighErrorRate"}',
    "receiver": "sre-pager",
    "status": "firing",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "CheckoutHighErrorRate"}, "startsAt": "2025-03-14T08:07:00Z"}
    ],
}
PAGERDUTY_REST_INCIDENT = {
    "incident": {
        "id": "Q1P2R3",
        "incident_number": 2041,
        "status": "resolved",
        "urgency": "high",
        "created_at": "2025-03-14T08:08:00Z",
        "html_url": "https://acme.pagerduty.com/incidents/Q1P2R3",
    }
}
PAGERDUTY_INCIDENTS = {"incidents": [PAGERDUTY_REST_INCIDENT["incident"]], "limit": 25, "offset": 0, "more": False}
GITHUB_ISSUES_WEBHOOK_COMMENT = {"comments": [{"id": 1, "body": "hi", "user": {"login": "x"}}], "total": 1}


@pytest.mark.parametrize(
    "data",
    [
        SLACK_DAY,
        SLACK_USERS,
        ALERTMANAGER,
        PAGERDUTY_REST_INCIDENT,
        PAGERDUTY_INCIDENTS,
        GITHUB_ISSUES_WEBHOOK_COMMENT,
        {"issues": [1, 2]},
        {"issues": [{"number": 3}]},
        {"values": [{"a": 1}]},
        {"comments": []},
        {"incidents": []},
        {"incident": {"id": "x", "status": "resolved"}},
        {"key": "OPS-1", "fields": "nope"},
        {"webhookEvent": "sprint_started", "sprint": {}},
        [{"event": "closed"}],
        [{"body": "text", "user": {"login": "x"}}],
        [],
        {},
        "text",
        None,
    ],
)
def test_sniffs_reject_foreign_shapes(data: Any) -> None:
    assert _accepting(doc(data)) == []


def test_sniffs_look_at_the_first_element_only() -> None:
    timeline = load(GH_TIMELINE).data
    assert GITHUB.sniff(doc(timeline + ["junk"] * 1000))
    assert not GITHUB.sniff(doc(["junk", *timeline]))


# --- the real payloads in ../shared/data/formats -------------------------------------------------------------


def _shared(shared_formats: Path, name: str) -> dict[str, Any]:
    payloads: dict[str, Any] = json.loads((shared_formats / f"{name}.json").read_text())["payloads"]
    return payloads


@pytest.mark.shared
def test_shared_jira_payloads(shared_formats: Path) -> None:
    payloads = _shared(shared_formats, "jira_cloud_issue")
    docs = {label: doc(data, label) for label, data in payloads.items()}
    assert all(_accepting(d) == ["jira"] for d in docs.values())

    webhook = JIRA.parse([docs["webhook_issue_updated__status.json"]], CTX)
    assert_clean(webhook)
    assert [(r.kind, r.native_id) for r in webhook.rows] == [
        (EventKind.TICKET_CREATED, "10000:created"),
        (EventKind.STATUS_CHANGE, "10000:history:10000:0"),
    ]
    assert webhook.rows[0].ts_ns == ns(2017, 1, 30, 17, 30, 41, micro=962_000)  # +0100
    assert webhook.rows[1].text == "TEST-1 status: To Do → In Progress"

    comments = JIRA.parse([docs["rest_v3_GET_issue_comment.example.json"]], CTX)
    assert_clean(comments)
    assert [(r.kind, r.native_id) for r in comments.rows] == [(EventKind.COMMENT, "10010:comment:10000")]
    assert "Lorem ipsum dolor sit amet" in comments.rows[0].text

    # The two Atlassian spec examples are placeholders that cannot become events, and say why:
    # the issue example has no fields.created, the changelog example dates its histories 1970-01-18.
    issue = JIRA.parse([docs["rest_v3_GET_issue.example.json"]], CTX)
    assert reasons(issue) == ["issue ED-1 has no fields.created"]
    assert [(r.kind, r.native_id) for r in issue.rows] == [(EventKind.COMMENT, "10010:comment:10000")]
    changelog = JIRA.parse([docs["rest_v3_GET_issue_changelog.example.json"]], CTX)
    assert changelog.rows == []
    assert [q.position for q in changelog.quarantined] == ["/values/0", "/values/1"]
    assert all("impossible timestamp '1970-01-18" in r for r in reasons(changelog))


@pytest.mark.shared
def test_shared_github_payloads(shared_formats: Path) -> None:
    payloads = _shared(shared_formats, "github_issue_timeline")
    docs = [doc(data, f"gh/{label}.json") for label, data in payloads.items()]
    assert all(_accepting(d) == ["github"] for d in docs)
    out = GITHUB.parse(docs, CTX)
    assert_clean(out)
    counts: dict[str, int] = {}
    for row in out.rows:
        counts[row.kind] = counts.get(row.kind, 0) + 1
    assert counts == {
        EventKind.TICKET_CREATED: 1,
        EventKind.SYSTEM: 1 + 1 + 6 + 1,  # timeline: subscribed, cross-referenced, 6 lock/unlock; events: subscribed
        EventKind.ASSIGNED: 3 + 1,
        EventKind.STATUS_CHANGE: 1,
        EventKind.LABELED: 1,
        EventKind.COMMENT: 3 + 2,
    }
    assert all(r.attrs and r.attrs["key"] == "PyGithub/PyGithub#28" for r in out.rows)
    ids = [r.id for r in out.rows]
    assert len(set(ids)) == len(ids) - 2  # the events list repeats two timeline events


@pytest.mark.shared
def test_shared_statuspage_payloads(shared_formats: Path) -> None:
    payloads = _shared(shared_formats, "statuspage_incident_webhook")
    docs = [doc(data, label) for label, data in payloads.items()]
    assert all(_accepting(d) == ["statuspage"] for d in docs)
    out = STATUSPAGE.parse(docs, CTX)
    assert_clean(out)
    assert [(r.kind, r.attrs["status"] if r.attrs else None) for r in out.rows] == [
        (EventKind.STATUS_UPDATE, "resolved"),
        (EventKind.STATUS_UPDATE, "identified"),
    ]
    assert out.rows[0].service == "Management Portal (example)"
    assert out.rows[0].url == "http://stspg.io/646947c1e"


@pytest.mark.shared
def test_shared_other_formats_are_not_ours(shared_formats: Path) -> None:
    for path in sorted(shared_formats.glob("*.json")):
        if path.stem in ("jira_cloud_issue", "github_issue_timeline", "statuspage_incident_webhook"):
            continue
        for label, data in json.loads(path.read_text())["payloads"].items():
            assert _accepting(doc(data, label)) == [], (path.name, label)
    for path in sorted((shared_formats / "slack_export").rglob("*.json")):
        assert _accepting(doc(json.loads(path.read_text()), path.name)) == [], path.name


# --- hostile input -------------------------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
_FIXTURE_DATA = [load(rel).data for rels in OWN_DOCS.values() for rel in rels]


def _mutate(data: Any, draw: st.DrawFn) -> Any:
    """Replace one nested value of a real payload with junk (a missing/mistyped field, a lone surrogate...)."""
    data = copy.deepcopy(data)
    node = data
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            return data
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            node = child
            continue
        junk = draw(_scalars | _json | st.just("\ud800") | st.just("1970-01-01T00:00:00Z") | st.just("x" * 30_000))
        if isinstance(node, dict) and draw(st.booleans()):
            del node[key]
        else:
            node[key] = junk
        return data


@st.composite
def _hostile(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(_json)
    return _mutate(draw(st.sampled_from(_FIXTURE_DATA)), draw)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_hostile())
def test_parsers_never_raise_on_hostile_input(data: Any) -> None:
    document = SourceDocument("fuzz.json", data)
    for parser in PARSERS.values():
        parser.sniff(document)
        out = parser.parse([document], CTX)
        assert all(q.reason for q in out.quarantined)
        for row in out.rows:
            Event.from_row(row)
            orjson.dumps(row.attrs)
            row.text.encode()
