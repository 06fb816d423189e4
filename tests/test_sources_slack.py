"""Slack parser: export folders/zips and Web API dumps (fixtures in tests/fixtures/slack/)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.models import Event, EventRow, ParseOutput, event_id
from pipeline.sources.base import ParseContext, SourceDocument
from pipeline.sources.slack import SlackParser, detect_change

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "slack"
CHANNEL_ID = "C07HX4INC41"
PARENT_TS = "1741995615.339829"
SAM_TS = "1741997370.448101"


def _load(rel: str) -> Any:
    return json.loads((FIXTURES / rel).read_text())


def _doc(rel: str, path: str | None = None) -> SourceDocument:
    return SourceDocument(path=path or rel, data=_load(rel))


EXPORT = [
    "export/channels.json",
    "export/users.json",
    "export/incident-2041/2025-03-14.json",
    "export/incident-2041/2025-03-15.json",
]
API = [
    "api/conversations_history.json",
    "api/conversations_replies.json",
    "api/users_list.json",
    "api/conversations_list.json",
]


def _parse(docs: list[SourceDocument], channel: str | None = None) -> ParseOutput:
    return SlackParser().parse(docs, ParseContext(incident_id="INC-2041", channel=channel))


def _by_native(rows: list[EventRow]) -> dict[str, EventRow]:
    return {row.native_id: row for row in rows}


@pytest.fixture
def export() -> ParseOutput:
    return _parse([_doc(rel) for rel in EXPORT])


@pytest.fixture
def api() -> ParseOutput:
    return _parse([_doc(rel) for rel in API], channel="incident-2041")


# --- sniff ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", EXPORT + API)
def test_sniff_accepts_every_fixture(rel: str) -> None:
    assert SlackParser().sniff(_doc(rel))


OTHER_SHAPES: dict[str, object] = {
    "alertmanager": {
        "version": "4",
        "status": "firing",
        "receiver": "sre",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "alerts": [{"status": "firing", "labels": {"alertname": "HighErrorRate"}, "startsAt": "2025-03-14T23:35Z"}],
    },
    "pagerduty_webhook": {"event": {"id": "01", "event_type": "incident.triggered", "data": {"id": "Q1"}}},
    "pagerduty_log_entries": {"log_entries": [{"id": "R1", "type": "trigger_log_entry"}], "more": False},
    "github_timeline": [
        {"id": 1, "event": "labeled", "actor": {"login": "octo"}, "created_at": "2025-03-15T00:00:00Z"},
    ],
    "github_comments": [{"id": 7, "user": {"login": "octo"}, "body": "lgtm", "created_at": "2025-03-15T00:00:00Z"}],
    "github_labels": [{"id": 3, "name": "bug", "color": "d73a4a", "default": True}],
    "jira_comments": {"comments": [], "startAt": 0, "maxResults": 50, "total": 0},
    "slack_error": {"ok": False, "error": "channel_not_found"},
    "arbitrary_dict": {"messages": [{"ts": "1741995040.118209", "type": "message"}]},
    "list_of_numbers": [1, 2, 3],
    "list_of_strings": ["a", "b"],
    "string": "hello",
    "null": None,
}


@pytest.mark.parametrize("label", sorted(OTHER_SHAPES))
def test_sniff_rejects_other_vendors(label: str) -> None:
    assert not SlackParser().sniff(SourceDocument(path=f"{label}.json", data=OTHER_SHAPES[label]))


def test_sniff_tolerates_a_broken_first_message_and_accepts_empty_directories() -> None:
    parser = SlackParser()
    broken_first = [{"type": "message", "text": "no ts"}, {"type": "message", "ts": "1741995040.118209"}]
    assert parser.sniff(SourceDocument(path="c/2025-03-14.json", data=broken_first))
    assert parser.sniff(SourceDocument(path="dms.json", data=[]))
    dms = [{"id": "D07AB12CD34", "created": 1741995400, "members": ["U05K7T3N2QP", "U06A1B2C3D4"]}]
    assert parser.sniff(SourceDocument(path="dms.json", data=dms))


# --- export ---------------------------------------------------------------------------------------------


def test_export_counts_and_kinds(export: ParseOutput) -> None:
    assert len(export.rows) == 8
    assert len(export.quarantined) == 1
    assert Counter(row.kind for row in export.rows) == {"message": 5, "deploy": 2, "system": 1}
    assert len({row.native_id for row in export.rows}) == 8
    for row in export.rows:
        Event.from_row(row)  # every row fits the boundary model


def test_native_ids_use_the_channel_id_and_ids_are_stable(export: ParseOutput) -> None:
    assert all(row.native_id.startswith(f"{CHANNEL_ID}:") for row in export.rows)
    assert all(row.id == event_id("slack", row.native_id) for row in export.rows)
    again = _parse([_doc(rel) for rel in EXPORT])
    assert [row.id for row in again.rows] == [row.id for row in export.rows]
    assert {row.attrs["channel"] for row in export.rows if row.attrs} == {"incident-2041"}


def test_timestamps_are_utc_across_midnight(export: ParseOutput) -> None:
    rows = _by_native(export.rows)
    parent = rows[f"{CHANNEL_ID}:{PARENT_TS}"]
    late_reply = rows[f"{CHANNEL_ID}:1741996931.770419"]
    assert datetime.fromtimestamp(parent.ts_ns / 1e9, tz=UTC).isoformat() == "2025-03-14T23:40:15.339829+00:00"
    assert parent.ts_ns == 1_741_995_615_339_829_000
    assert datetime.fromtimestamp(late_reply.ts_ns // 10**9, tz=UTC) == datetime(2025, 3, 15, 0, 2, 11, tzinfo=UTC)
    assert late_reply.file == "export/incident-2041/2025-03-15.json"
    assert late_reply.position == "/0"


def test_actors_resolved_from_users_json(export: ParseOutput) -> None:
    actors = {row.native_id.split(":", 1)[1]: row.actor for row in export.rows}
    assert actors[PARENT_TS] == "priya"  # profile.display_name
    assert actors["1741995870.551209"] == "Marco Bellini"  # empty display_name -> real_name
    assert actors[SAM_TS] == "Sam O."
    assert actors["1741995040.118209"] == "Deploy Bot"  # the app's bot user, from users.json
    assert actors["1741997208.201599"] == "deploybot"  # legacy bot_message: username


def test_actor_falls_back_to_message_user_profile_then_id() -> None:
    day = _load("export/incident-2041/2025-03-14.json")
    out = _parse([SourceDocument(path="export/incident-2041/2025-03-14.json", data=day)])
    actors = {row.native_id: row.actor for row in out.rows}
    assert actors[f"incident-2041:{PARENT_TS}"] == "priya"  # user_profile carried by the message
    assert actors["incident-2041:1741995870.551209"] == "U05L2M8R4XT"  # nothing known: the id
    hinted = SlackParser().parse(
        [SourceDocument(path="export/incident-2041/2025-03-14.json", data=day)],
        ParseContext(incident_id="INC-2041", users={"U05L2M8R4XT": "Marco B."}),
    )
    assert {row.native_id: row.actor for row in hinted.rows}["incident-2041:1741995870.551209"] == "Marco B."


def test_mentions_and_links_are_rendered(export: ParseOutput) -> None:
    parent = _by_native(export.rows)[f"{CHANNEL_ID}:{PARENT_TS}"]
    assert parent.text == "Checkout 5xx at ~18% since 23:35, see checkout overview. @Marco Bellini can you look?"
    assert parent.attrs is not None
    assert parent.attrs["mentions"] == ["Marco Bellini"]
    assert parent.attrs["raw_text"].startswith("Checkout 5xx at ~18% since 23:35, see <https://grafana.example.com")
    assert parent.attrs["reactions"] == [{"name": "eyes", "count": 2}]
    assert parent.attrs["reply_count"] == 2
    plain = _by_native(export.rows)[f"{CHANNEL_ID}:1741995870.551209"]
    assert plain.attrs is not None
    assert "raw_text" not in plain.attrs
    assert plain.attrs["mentions"] == []


def test_render_other_markup() -> None:
    text = (
        "<!here> <!subteam^S07ONCALL|@payments-oncall> in <#C07HX4INC41> and <#C0OTHER|ops>: "
        "<mailto:a@b.example> &lt;3 &amp; <@U0UNKNOWN|old.name>"
    )
    doc = SourceDocument(path="x/2025-03-14.json", data=[{"type": "message", "ts": "1741995040.000001", "text": text}])
    out = SlackParser().parse([doc, _doc("export/channels.json")], ParseContext(incident_id="i"))
    assert out.rows[0].text == "@here @payments-oncall in #incident-2041 and #ops: a@b.example <3 & @old.name"


def test_thread_replies_link_to_their_parent(export: ParseOutput) -> None:
    rows = _by_native(export.rows)
    parent = rows[f"{CHANNEL_ID}:{PARENT_TS}"]
    assert parent.thread_id is None
    replies = [row for row in export.rows if row.thread_id is not None]
    assert sorted(row.native_id for row in replies) == [
        f"{CHANNEL_ID}:1741995870.551209",
        f"{CHANNEL_ID}:1741996931.770419",  # the reply in the next day's file
    ]
    assert {row.thread_id for row in replies} == {parent.id}


def test_edit_sets_revision(export: ParseOutput) -> None:
    rows = _by_native(export.rows)
    edited = rows[f"{CHANNEL_ID}:{SAM_TS}"]
    assert edited.revision == 1_741_997_405 * 10**9
    assert edited.attrs is not None
    assert edited.attrs["edited"] is True
    assert edited.attrs["mentions"] == ["priya"]
    unedited = rows[f"{CHANNEL_ID}:{PARENT_TS}"]
    assert unedited.revision == 0
    assert unedited.attrs is not None
    assert unedited.attrs["edited"] is False


def test_bot_deploys_become_deploy_events(export: ParseOutput) -> None:
    deploys = {row.native_id: row for row in export.rows if row.kind == "deploy"}
    assert set(deploys) == {f"{CHANNEL_ID}:1741995040.118209", f"{CHANNEL_ID}:1741997208.201599"}
    first = deploys[f"{CHANNEL_ID}:1741995040.118209"]
    assert first.attrs is not None
    assert first.attrs["change"] == "deploy"
    assert first.attrs["bot"] is True
    assert "rollback" not in first.attrs
    rollback = deploys[f"{CHANNEL_ID}:1741997208.201599"]
    assert rollback.attrs is not None
    assert rollback.attrs["rollback"] is True
    # a person talking about a deploy is a message, not a deploy
    human = _by_native(export.rows)[f"{CHANNEL_ID}:1741995870.551209"]
    assert human.kind == "message"
    assert human.attrs is not None
    assert human.attrs["bot"] is False


def test_bot_user_without_bot_id_and_non_production_changes() -> None:
    def bot(ts: str, text: str | None, **extra: Any) -> dict[str, Any]:
        message = {"type": "message", "subtype": "bot_message", "bot_id": "B1", "username": "deploybot"}
        message |= {"ts": f"1741996000.000{ts}", **extra}
        if text is not None:
            message["text"] = text
        return message

    messages = [
        {
            "type": "message",
            "user": "U07DEPLOYBT",
            "ts": "1741996000.000100",
            "text": "Rolling out config change payments-timeout=3s to production",
        },
        bot("200", "flag checkout_v2 enabled for 100%", username="flagr"),
        bot("300", "Deployed checkout-api v4.18.1 to staging"),
        bot("400", "Deploy of checkout-api v4.18.1 to production failed"),
        bot("500", None, attachments=[{"fallback": "Deployed search v2 to prod", "color": "good"}]),
    ]
    out = _parse([_doc("export/users.json"), SourceDocument(path="incident-2041/2025-03-15.json", data=messages)])
    kinds = [(row.kind, (row.attrs or {}).get("change")) for row in out.rows]
    assert kinds == [
        ("deploy", "config"),
        ("deploy", "flag"),
        ("message", None),
        ("message", None),
        ("deploy", "deploy"),
    ]
    assert out.rows[0].actor == "Deploy Bot"
    assert out.rows[4].text == "Deployed search v2 to prod"


@pytest.mark.parametrize(
    ("text", "change"),
    [
        ("Deployed api v2.3.1 to production", "deploy"),
        ("deploying payments-api 8f3a2c1 to prod-eu-west-1", "deploy"),
        ("Released web 2025.03.15 :rocket:", "deploy"),
        ("Rolling out config change to production: db pool 40 -> 80", "config"),
        ("Feature flag checkout_v2 disabled in production", "flag"),
        ("flag checkout_v2 enabled for 100%", "flag"),
        ("Deployed config-service v1.2 to production", "deploy"),
        ("Deployed api v2.3.1 to staging", None),
        ("Deployment of api v2.3.1 to production failed", None),
        ("Deploy scheduled for 02:00 UTC", None),
        ("Build 5521 passed", None),
        ("", None),
    ],
)
def test_detect_change(text: str, change: str | None) -> None:
    assert detect_change(text) == change


def test_system_messages(export: ParseOutput) -> None:
    systems = [row for row in export.rows if row.kind == "system"]
    assert len(systems) == 1
    join = systems[0]
    assert join.text == "@priya has joined the channel"
    assert join.attrs is not None
    assert join.attrs["subtype"] == "channel_join"
    assert join.actor == "priya"


def test_file_share(export: ParseOutput) -> None:
    row = _by_native(export.rows)[f"{CHANNEL_ID}:1741997702.913339"]
    assert row.kind == "message"
    assert row.text == "Snapshot of the spike for the doc"
    assert row.attrs is not None
    assert row.attrs["files"] == ["checkout-5xx-2025-03-14.png"]


def test_message_without_ts_is_quarantined(export: ParseOutput) -> None:
    (entry,) = export.quarantined
    assert entry.source == "slack"
    assert entry.file == "export/incident-2041/2025-03-14.json"
    assert entry.position == "/4"
    assert entry.reason == "message has no ts"
    assert "on my way" in entry.excerpt


def test_broken_records_and_documents_are_quarantined() -> None:
    day = [
        {"type": "message", "ts": "1741995040.118209", "text": "ok"},
        42,
        {"type": "message", "ts": "not-a-ts", "text": "bad"},
        {"type": "message", "ts": "0946684700.000000", "text": "1999"},
        {"type": "message", "subtype": "message_changed", "ts": "1741995041.000000", "message": "oops"},
    ]
    docs = [
        SourceDocument(path="c/2025-03-14.json", data=day),
        SourceDocument(path="users.json", data=[{"id": "U1", "profile": {}}, {"name": "ghost", "profile": {}}]),
        SourceDocument(path="weird.json", data={"hello": "world"}),
    ]
    out = _parse(docs)
    assert len(out.rows) == 1
    reasons = {(q.file, q.position): q.reason for q in out.quarantined}
    assert reasons[("c/2025-03-14.json", "/1")] == "message is not an object"
    assert reasons[("c/2025-03-14.json", "/2")].startswith("message has an invalid ts: malformed slack ts")
    assert "outside 2000..2100" in reasons[("c/2025-03-14.json", "/3")]
    assert reasons[("c/2025-03-14.json", "/4")] == "message_changed.message is not an object"
    assert reasons[("users.json", "/1")] == "missing or non-string field 'user id'"
    assert reasons[("weird.json", "/")] == "not a Slack export file or Web API response"
    assert len(out.quarantined) == 6


# --- channel of a document ---------------------------------------------------------------------------------


def test_channel_from_zip_member_and_id_folder() -> None:
    day = _load("export/incident-2041/2025-03-14.json")
    by_name = _parse([SourceDocument(path="slack.zip!incident-2041/2025-03-14.json", data=day)])
    assert {row.native_id.split(":")[0] for row in by_name.rows} == {"incident-2041"}
    by_id = _parse(
        [
            SourceDocument(path="slack.zip!C07HX4INC41/2025-03-14.json", data=day),
            SourceDocument(path="slack.zip!channels.json", data=_load("export/channels.json")),
        ]
    )
    assert {row.native_id.split(":")[0] for row in by_id.rows} == {CHANNEL_ID}
    assert {(row.attrs or {})["channel"] for row in by_id.rows} == {"incident-2041"}


def test_api_channel_from_context_or_file_stem() -> None:
    history = _doc("api/conversations_history.json")
    from_ctx = _parse([history], channel="#incident-2041")
    assert {row.native_id.split(":")[0] for row in from_ctx.rows} == {"incident-2041"}
    from_stem = _parse(
        [SourceDocument(path="dumps/history.json", data={"ok": True, "messages": history.data["messages"][1:]})]
    )
    assert {row.native_id.split(":")[0] for row in from_stem.rows} == {"history"}


# --- API dumps ------------------------------------------------------------------------------------------


def test_api_counts_and_replies_parent_dedupes(api: ParseOutput) -> None:
    assert api.quarantined == []
    assert len(api.rows) == 8
    assert Counter(row.kind for row in api.rows) == {"message": 6, "deploy": 2}
    parent_rows = [row for row in api.rows if row.native_id == f"{CHANNEL_ID}:{PARENT_TS}"]
    assert [row.file for row in parent_rows] == [
        "api/conversations_history.json",
        "api/conversations_replies.json",
    ]
    assert len({row.id for row in parent_rows}) == 1
    assert len({row.native_id for row in api.rows}) == 6
    replies = [row for row in api.rows if row.thread_id is not None]
    assert len(replies) == 2
    assert {row.thread_id for row in replies} == {parent_rows[0].id}
    assert {row.actor for row in replies} == {"Marco Bellini"}


def test_api_and_export_give_the_same_native_ids(export: ParseOutput, api: ParseOutput) -> None:
    export_ids = {row.native_id for row in export.rows}
    api_ids = {row.native_id for row in api.rows}
    assert api_ids <= export_ids
    assert len(api_ids) == 6
    # without any channel directory on either side the channel name keys both alike
    bare_export = _parse([_doc(EXPORT[2]), _doc(EXPORT[3])])
    bare_api = _parse([_doc(API[0]), _doc(API[1])], channel="incident-2041")
    assert {row.native_id for row in bare_api.rows} <= {row.native_id for row in bare_export.rows}
    # and both forms together in one bundle
    both = _parse([_doc(rel) for rel in EXPORT + API], channel="incident-2041")
    assert {row.native_id for row in both.rows} == export_ids


def test_message_changed_supersedes_the_original(export: ParseOutput, api: ParseOutput) -> None:
    versions = sorted(
        (row for row in export.rows + api.rows if row.native_id == f"{CHANNEL_ID}:{SAM_TS}"),
        key=lambda row: row.revision,
    )
    assert len(versions) == 3  # export copy, history copy, message_changed event
    newest = versions[-1]
    assert newest.revision > versions[0].revision == versions[1].revision
    assert newest.text == "Error rate back under 0.5% since 00:07. @priya moving us to monitoring"
    assert newest.ts_ns == versions[0].ts_ns  # still placed at the original post time
    assert newest.actor == "Sam O."
    assert newest.position == "/messages/0"


def test_directories_produce_no_rows() -> None:
    out = _parse([_doc("export/users.json"), _doc("export/channels.json"), _doc(API[2]), _doc(API[3])])
    assert out == ParseOutput([], [])
    members = {"ok": True, "members": ["U05K7T3N2QP"], "response_metadata": {"next_cursor": ""}}
    doc = SourceDocument(path="members.json", data=members)
    assert SlackParser().sniff(doc)
    assert _parse([doc]) == ParseOutput([], [])


# --- hostile input ---------------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
_message = st.fixed_dictionaries(
    {"type": st.just("message"), "ts": st.one_of(st.text(max_size=20), st.just("1741995040.118209"), _json)},
    optional={
        "text": st.one_of(st.text(), _json),
        "user": _json,
        "subtype": st.one_of(st.sampled_from(["bot_message", "message_changed", "channel_join"]), _json),
        "thread_ts": _json,
        "edited": _json,
        "files": _json,
        "reactions": _json,
        "message": _json,
        "bot_profile": _json,
        "attachments": _json,
        "channel": _json,
        "reply_count": _json,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    day=st.lists(st.one_of(_message, _json), max_size=5),
    other=_json,
    users=st.lists(_json, max_size=3),
)
def test_parse_never_raises(day: list[Any], other: Any, users: list[Any]) -> None:
    docs = [
        SourceDocument(path="c/2025-03-14.json", data=day),
        SourceDocument(path="x.json", data=other),
        SourceDocument(path="users.json", data={"ok": True, "members": users}),
        SourceDocument(path="h.json", data={"ok": True, "messages": day}),
    ]
    out = _parse(docs, channel="c")
    for row in out.rows:
        Event.from_row(row)
        json.dumps(row.attrs)


def test_lone_surrogates_and_huge_text() -> None:
    day = [{"type": "message", "ts": "1741995040.118209", "user": "U\ud800", "text": "x" * 50_000 + "\udfff"}]
    out = _parse([SourceDocument(path="c/2025-03-14.json", data=day)])
    (row,) = out.rows
    assert len(row.text) < 20_100
    assert "cut" in row.text
    row.text.encode("utf-8")
    assert row.actor is not None
    row.actor.encode("utf-8")


# --- the real shared payloads ----------------------------------------------------------------------------


@pytest.mark.shared
def test_shared_slack_export_folder(shared_formats: Path) -> None:
    root = shared_formats / "slack_export"
    docs = [
        SourceDocument(path=f"slack_export/{p.relative_to(root).as_posix()}", data=json.loads(p.read_text()))
        for p in sorted(root.rglob("*.json"))
    ]
    assert len(docs) == 9
    parser = SlackParser()
    assert all(parser.sniff(doc) for doc in docs)
    out = parser.parse(docs, ParseContext(incident_id="shared"))
    assert out.quarantined == []
    assert len(out.rows) == 16
    assert Counter(row.kind for row in out.rows) == {"message": 14, "system": 2}
    assert {(row.attrs or {})["subtype"] for row in out.rows if row.kind == "system"} == {
        "channel_join",
        "tombstone",
    }
    # day files live in the folder named after the channel; channels.json maps it to its id
    assert {row.native_id.split(":")[0] for row in out.rows} == {"CO69735E8A"}
    ids = {row.id for row in out.rows}
    replies = [row for row in out.rows if row.thread_id is not None]
    assert len(replies) == 4
    assert len({row.thread_id for row in replies}) == 3
    assert all(row.thread_id in ids for row in replies)  # every parent (incl. the tombstone) is present
    assert all(row.actor for row in out.rows)
    edited = [row for row in out.rows if row.revision]
    assert [(row.revision, (row.attrs or {})["bot"]) for row in edited] == [(1_737_160_371 * 10**9, True)]
    file_only = _by_native(out.rows)["CO69735E8A:1736582524.607359"]
    assert file_only.text.startswith("shared file: ")


@pytest.mark.shared
def test_shared_slack_message_variants(shared_formats: Path) -> None:
    payloads = json.loads((shared_formats / "slack_message_variants.json").read_text())["payloads"]
    assert len(payloads) == 8
    parser = SlackParser()
    docs = [SourceDocument(path=f"variants/{label}.json", data=[message]) for label, message in payloads.items()]
    assert all(parser.sniff(doc) for doc in docs)
    out = parser.parse(docs, ParseContext(incident_id="shared"))
    assert out.quarantined == []
    assert len(out.rows) == 8
    by_label = dict(zip(payloads, out.rows, strict=True))
    assert {label for label, row in by_label.items() if row.kind == "system"} == {"channel_join"}
    assert all(row.kind == "message" for label, row in by_label.items() if label != "channel_join")
    assert (by_label["reactions"].attrs or {})["reactions"] == [{"name": "LMB", "count": 5}]
    assert len((by_label["thread_reply"].attrs or {})["files"]) == 4
    assert by_label["thread_reply"].thread_id == event_id("slack", "variants:1674024422.432859")
    assert by_label["thread_parent"].thread_id is None
    assert by_label["edited"].revision == 1_682_638_084 * 10**9
    assert (by_label["bot_message"].attrs or {})["bot"] is True
    assert by_label["bot_message"].actor == "B0J7E0W12"
    assert (by_label["other_subtype"].attrs or {})["subtype"] == "me_message"


@pytest.mark.shared
def test_shared_slack_web_api(shared_formats: Path) -> None:
    payloads = json.loads((shared_formats / "slack_web_api_conversations.json").read_text())["payloads"]
    parser = SlackParser()
    docs = [SourceDocument(path=f"api/{label}.json", data=payload) for label, payload in payloads.items()]
    assert all(parser.sniff(doc) for doc in docs)
    out = parser.parse(docs, ParseContext(incident_id="shared", channel="general"))
    assert out.quarantined == []
    assert len(out.rows) == 6
    assert {row.kind for row in out.rows} == {"message"}
    # conversations.list maps the channel name from the context to its id
    assert {row.native_id.split(":")[0] for row in out.rows} == {"C012AB3CD"}
    parent = _by_native(out.rows)["C012AB3CD:1482960137.003543"]
    replies = [row for row in out.rows if row.thread_id is not None]
    assert [row.text for row in replies] == ["one island", "two island", "three for the land"]
    assert {row.thread_id for row in replies} == {parent.id}


@pytest.mark.shared
def test_shared_other_vendor_payloads_are_not_slack(shared_formats: Path) -> None:
    parser = SlackParser()
    checked = 0
    for path in sorted(shared_formats.glob("*.json")):
        if path.name.startswith("slack"):
            continue
        for label, payload in json.loads(path.read_text())["payloads"].items():
            assert not parser.sniff(SourceDocument(path=label, data=payload)), (path.name, label)
            checked += 1
    assert checked >= 20
