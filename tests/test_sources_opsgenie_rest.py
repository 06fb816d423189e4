"""Opsgenie Alert API v2 responses (GET /v2/alerts/{id}, …/logs, …/notes) through ``OpsgenieParser``: the
lifecycle they describe, ids shared with the webhook form, pairing logs and notes with their alert, quarantine."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.models import Event, EventKind, EventRow, ParseOutput
from pipeline.settings import Settings
from pipeline.sources.base import ParseContext, SourceDocument
from pipeline.sources.opsgenie import OpsgenieParser
from pipeline.sources.registry import all_parsers, recognise
from pipeline.timeline import build_timeline

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "opsgenie"
CTX = ParseContext(incident_id="INC-2041")
ALERT = "3c9e7f12-58ab-4d0e-9b61-7a2f4c8d1e05"
REST = ("alert", "logs", "notes")
WEBHOOKS = ("01_create.json", "02_acknowledge.json", "03_addnote.json", "04_close.json")


def raw(name: str) -> Any:
    return json.loads((FIXTURES / "rest" / f"{name}.json").read_text())


def rest_docs(folder: str = "opsgenie/rest", names: Sequence[str] = REST) -> list[SourceDocument]:
    return [SourceDocument(f"{folder}/{name}.json", raw(name)) for name in names]


def ns(day: int, hour: int, minute: int, second: int, milli: int) -> int:
    """March 2025, UTC, as epoch nanoseconds."""
    return int(datetime(2025, 3, day, hour, minute, second, tzinfo=UTC).timestamp()) * 10**9 + milli * 10**6


def parse(docs: Sequence[SourceDocument]) -> ParseOutput:
    out = OpsgenieParser().parse(docs, CTX)
    for row in out.rows:
        Event.from_row(row)
        orjson.dumps(row.attrs)
    return out


def winners(rows: Sequence[EventRow]) -> list[EventRow]:
    """What the timeline keeps of exact duplicates (highest revision, first seen on a tie), in time order."""
    kept: dict[str, EventRow] = {}
    for row in rows:
        if row.id not in kept or row.revision > kept[row.id].revision:
            kept[row.id] = row
    return sorted(kept.values(), key=lambda row: row.ts_ns)


def alert_with(ident: str, message: str) -> dict[str, Any]:
    doc = raw("alert")
    doc["data"].update({"id": ident, "message": message})
    return doc


# --- the lifecycle -------------------------------------------------------------------------------------------


def test_rest_lifecycle_kinds_times_actors_and_ids() -> None:
    out = parse(rest_docs())
    assert out.quarantined == []
    assert len(out.rows) == 10  # alert: created, ack, close; 6 logs; 1 note
    kept = winners(out.rows)
    assert [row.kind for row in kept] == [
        EventKind.PAGE_TRIGGERED,
        EventKind.SYSTEM,  # the SMS notification
        EventKind.ESCALATED,
        EventKind.ACKNOWLEDGED,
        EventKind.NOTE,
        EventKind.INCIDENT_RESOLVED,
    ]
    assert [row.ts_ns for row in kept] == [
        ns(14, 23, 36, 45, 218),
        ns(14, 23, 36, 46, 102),
        ns(14, 23, 39, 45, 600),
        ns(14, 23, 39, 50, 431),
        ns(14, 23, 47, 10, 877),
        ns(15, 0, 10, 40, 92),
    ]
    assert [row.actor for row in kept] == [
        "Alertmanager",
        "sam.okafor@example.com",
        "System",
        "sam.okafor@example.com",
        "sam.okafor@example.com",
        "priya.n@example.com",
    ]
    assert [row.native_id for row in kept] == [
        f"alert:{ALERT}:created",
        f"alert:{ALERT}:log:1741995406102_1741995406102000207",
        f"alert:{ALERT}:log:1741995585600_1741995585600000318",
        f"alert:{ALERT}:Acknowledge",
        f"alert:{ALERT}:note:1741996030877",
        f"alert:{ALERT}:Close",
    ]
    create, notification, escalation, ack, note, close = kept
    # the richer form of each action won: the alert for its creation, logs for ack/close, notes for the note
    assert [row.file for row in kept] == [
        "opsgenie/rest/alert.json",
        "opsgenie/rest/logs.json",
        "opsgenie/rest/logs.json",
        "opsgenie/rest/logs.json",
        "opsgenie/rest/notes.json",
        "opsgenie/rest/logs.json",
    ]
    assert create.text == "Checkout 5xx ratio above 5%"
    assert create.signal == "checkout5xxratioabove5"
    assert create.position == "/data"
    assert [row.signal for row in kept[1:]] == [None] * 5
    assert notification.text == "Sent [SMS] notification to [sam.okafor@example.com] about [CreateAlert]"
    assert escalation.text == "Alert escalated to next level [payments-secondary]"
    assert ack.text == "Acknowledged: Checkout 5xx ratio above 5%"
    assert ack.position == "/data/3"
    assert note.text == "On the bridge; checkout-api pods restarting with payment client timeouts."
    assert close.text == "Closed: Checkout 5xx ratio above 5%"
    assert {row.service for row in kept} == {"checkout-api"}  # entity empty: the service: tag
    assert {row.severity for row in kept} == {"P2"}
    assert create.attrs is not None and ack.attrs is not None
    assert create.attrs["tiny_id"] == "417"
    assert create.attrs["tags"] == ["payments", "service:checkout-api", "sev2"]
    assert create.attrs["integration"] == "Webhook to incident-bot"
    assert ack.attrs["log"] == "Alert acknowledged via web"


def test_report_times_lose_to_the_logs_but_stand_alone() -> None:
    out = parse(rest_docs(names=["alert"]))
    assert out.quarantined == []
    create, ack, close = out.rows
    assert [row.kind for row in out.rows] == [
        EventKind.PAGE_TRIGGERED,
        EventKind.ACKNOWLEDGED,
        EventKind.INCIDENT_RESOLVED,
    ]
    assert ack.ts_ns == create.ts_ns + 185_213 * 10**6  # createdAt + report.ackTime
    assert close.ts_ns == ns(15, 0, 10, 40, 92)
    assert (ack.actor, close.actor) == ("sam.okafor@example.com", "priya.n@example.com")
    assert (ack.position, close.position) == ("/data/report/ackTime", "/data/report/closeTime")
    logs = {
        row.native_id: row for row in parse(rest_docs(names=["alert", "logs"])).rows if row.file.endswith("logs.json")
    }
    for report_row in (ack, close):
        log_row = logs[report_row.native_id]
        assert log_row.id == report_row.id and log_row.revision > report_row.revision
    created_log = logs[create.native_id]
    assert created_log.revision < create.revision and created_log.actor == "System"


def test_closed_alert_without_close_time_closes_at_updated_at() -> None:
    doc = raw("alert")
    del doc["data"]["report"]["closeTime"]
    out = parse([SourceDocument("a/alert.json", doc)])
    close = next(row for row in out.rows if row.kind == EventKind.INCIDENT_RESOLVED)
    assert close.ts_ns == ns(15, 0, 10, 40, 95)
    assert close.native_id == f"alert:{ALERT}:Close"
    assert close.attrs is not None and "updatedAt" in close.attrs["approximate_time"]
    doc["data"]["status"] = "open"
    still_open = parse([SourceDocument("a/alert.json", doc)])
    assert EventKind.INCIDENT_RESOLVED not in [row.kind for row in still_open.rows]


def test_list_alerts_response_and_later_acks_keep_their_own_ids() -> None:
    listed = {"data": [raw("alert")["data"], alert_with("other-1", "Disk full on db-3")["data"]], "paging": {}}
    logs = raw("logs")
    logs["data"].insert(4, {**logs["data"][3], "log": "Alert unacknowledged via web", "offset": "u1"})
    logs["data"].insert(5, {**logs["data"][3], "log": "Alert acknowledged via mobile", "offset": "a2"})
    logs["data"][5]["createdAt"] = "2025-03-14T23:45:00.000Z"
    docs = [SourceDocument("og/alerts.json", listed), SourceDocument("og/a/alert.json", raw("alert"))]
    docs.append(SourceDocument("og/a/logs.json", logs))
    out = parse(docs)
    assert out.quarantined == []
    created = [row for row in out.rows if row.kind == EventKind.PAGE_TRIGGERED]
    assert [row.position for row in created] == ["/data/0", "/data/1", "/data", "/data/0"]
    assert len({row.id for row in created}) == 2
    by_offset = {row.native_id.rsplit(":", 1)[-1]: row for row in out.rows if ":log:" in row.native_id}
    assert by_offset["u1"].kind == EventKind.SYSTEM
    assert by_offset["a2"].kind == EventKind.ACKNOWLEDGED  # a second ack: its own id, not the first ack's
    first_ack = [row for row in out.rows if row.native_id == f"alert:{ALERT}:Acknowledge" and row.revision == 1]
    assert [row.position for row in first_ack] == ["/data/3"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Alert created via API", EventKind.PAGE_TRIGGERED),
        ("Alert acknowledged via mobile", EventKind.ACKNOWLEDGED),
        ("Alert unacknowledged via web", EventKind.SYSTEM),
        ("Alert closed automatically", EventKind.INCIDENT_RESOLVED),
        ("Added note: the pool is closed and acknowledged", EventKind.NOTE),  # words after ":" are free text
        ("Escalated to [payments-secondary] by escalation [Payments_Escalation]", EventKind.ESCALATED),
        ("Assigned ownership of the alert to [priya.n@example.com]", EventKind.ASSIGNED),
        ("[sam.okafor@example.com] took ownership", EventKind.ASSIGNED),
        ("Sent [email] notification to [priya.n@example.com] about [CloseAlert]", EventKind.SYSTEM),
        ("Notified [sam.okafor@example.com] of acknowledged alert", EventKind.SYSTEM),
        ("Alert snoozed until 2025-03-15T00:30:00Z", EventKind.SYSTEM),
        ("", EventKind.SYSTEM),
    ],
)
def test_log_texts_are_classified(text: str, kind: EventKind) -> None:
    entry = {"log": text, "type": "system", "owner": "System", "createdAt": "2025-03-14T23:50:00Z", "offset": "7"}
    out = parse([*rest_docs("og", ["alert"]), SourceDocument("og/logs.json", {"data": [entry]})])
    assert out.quarantined == []
    row = out.rows[-1]
    assert (row.file, row.kind) == ("og/logs.json", kind)
    if kind not in (EventKind.PAGE_TRIGGERED, EventKind.ACKNOWLEDGED, EventKind.INCIDENT_RESOLVED):
        assert row.text == (text or "Opsgenie log entry (system)")


# --- webhook and REST forms of one alert ---------------------------------------------------------------------


def test_webhook_and_rest_forms_share_the_creation() -> None:
    hooks = [SourceDocument(f"opsgenie/{name}", json.loads((FIXTURES / name).read_text())) for name in WEBHOOKS]
    out = parse([*hooks, *rest_docs()])
    assert out.quarantined == []
    creations = [row for row in out.rows if row.kind == EventKind.PAGE_TRIGGERED]
    assert len(creations) == 3  # webhook Create, the alert, the "created" log
    assert len({row.id for row in creations}) == 1
    timeline = build_timeline(CTX.incident_id, [out], Settings())
    assert timeline.stats.balanced
    assert timeline.stats.records_in == len(out.rows) == 14
    triggered = timeline.events([EventKind.PAGE_TRIGGERED], entries_only=False)
    assert len(triggered) == 1
    assert triggered[0].provenance.file == "opsgenie/rest/alert.json"  # the alert (revision 1) wins


# --- pairing logs and notes with their alert -----------------------------------------------------------------


def test_logs_and_notes_without_their_alert_are_quarantined() -> None:
    out = parse(rest_docs(names=["logs", "notes"]))
    assert out.rows == []
    assert len(out.quarantined) == 7  # six logs, one note: every record accounted for
    reasons = {q.reason for q in out.quarantined}
    assert len(reasons) == 2
    assert all("keep the alert response (GET /v2/alerts/{id}) beside its logs/notes" in r for r in reasons)
    assert all("the bundle holds no alert response" in r for r in reasons)
    assert [q.position for q in out.quarantined][:2] == ["/data/0", "/data/1"]
    assert {q.source for q in out.quarantined} == {"opsgenie"}


def test_logs_in_another_folder_use_the_only_alert_of_the_bundle() -> None:
    docs = [*rest_docs("opsgenie/a", ["alert"]), *rest_docs("exports/misc", ["logs", "notes"])]
    out = parse(docs)
    assert out.quarantined == []
    assert {row.attrs["alert_id"] for row in out.rows if row.attrs} == {ALERT}


def test_two_alerts_in_two_folders_pair_with_their_own_logs() -> None:
    other = "9b1c0d2e-3f4a-4b5c-8d6e-7f8091a2b3c4"
    other_logs = {
        "data": [{"log": "Alert acknowledged via web", "owner": "lee@example.com", "createdAt": "2025-03-14T23:50:00Z"}]
    }
    docs = [
        SourceDocument("og/one/alert.json", raw("alert")),
        SourceDocument("og/one/logs.json", raw("logs")),
        SourceDocument("og.zip!two/alert.json", alert_with(other, "Disk full on db-3")),
        SourceDocument("og.zip!two/logs.json", other_logs),
        SourceDocument("og.zip!two/notes.json", raw("notes")),
    ]
    out = parse(docs)
    assert out.quarantined == []
    owners = {(row.file, row.attrs["alert_id"]) for row in out.rows if row.attrs and "log" in row.attrs}
    assert owners == {("og/one/logs.json", ALERT), ("og.zip!two/logs.json", other)}
    second_ack = next(row for row in out.rows if row.file == "og.zip!two/logs.json")
    assert second_ack.native_id == f"alert:{other}:Acknowledge"
    assert second_ack.actor == "lee@example.com"
    assert second_ack.ts_ns == ns(14, 23, 50, 0, 0)
    assert second_ack.text == "Acknowledged: Disk full on db-3"
    note = next(row for row in out.rows if row.file == "og.zip!two/notes.json")
    assert note.native_id.startswith(f"alert:{other}:note:")


def test_logs_beside_no_alert_in_a_bundle_of_two_alerts_are_quarantined() -> None:
    docs = [
        SourceDocument("og/one/alert.json", raw("alert")),
        SourceDocument("og/two/alert.json", alert_with("other-2", "Disk full on db-3")),
        SourceDocument("og/logs.json", raw("logs")),
        SourceDocument("og/three/alerts.json", {"data": [raw("alert")["data"], alert_with("x", "X")["data"]]}),
        SourceDocument("og/three/notes.json", raw("notes")),
    ]
    out = parse(docs)
    by_file = {q.file: q.reason for q in out.quarantined}
    assert len([q for q in out.quarantined if q.file == "og/logs.json"]) == 6
    assert "3 alert responses, none in that folder" in by_file["og/logs.json"]
    assert "'og/three' holds 2 alert responses" in by_file["og/three/notes.json"]
    assert "in its own folder beside its logs/notes" in by_file["og/three/notes.json"]
    assert not any(row.file in by_file for row in out.rows)


# --- malformed records ---------------------------------------------------------------------------------------


def test_malformed_records_are_quarantined_with_reasons() -> None:
    alert = raw("alert")
    alert["data"]["report"]["ackTime"] = "soon"
    logs = raw("logs")
    del logs["data"][1]["createdAt"]
    logs["data"][2]["createdAt"] = "yesterday"
    logs["data"][4] = "not a log"
    del logs["data"][5]["offset"]
    notes = raw("notes")
    notes["data"].append({"note": "   ", "createdAt": "2025-03-14T23:50:00Z"})
    notes["data"].append({"note": "late", "createdAt": "1999-12-31T23:59:59Z"})
    docs = [SourceDocument("og/alert.json", alert), SourceDocument("og/logs.json", logs)]
    docs.append(SourceDocument("og/notes.json", notes, "line 2"))
    out = parse(docs)
    assert [(q.file, q.position, q.reason) for q in out.quarantined] == [
        ("og/alert.json", "/data/report", "report.ackTime is not a number of milliseconds: 'soon'"),
        ("og/logs.json", "/data/1", "missing timestamp 'createdAt'"),
        ("og/logs.json", "/data/2", "createdAt: unparseable timestamp 'yesterday'"),
        ("og/logs.json", "/data/4", "log record is not an object"),
        ("og/notes.json", "line 2 /data/1", "note has no text"),
        (
            "og/notes.json",
            "line 2 /data/2",
            "createdAt: impossible timestamp '1999-12-31T23:59:59Z' (outside 2000..2100)",
        ),
    ]
    assert len(out.rows) + len(out.quarantined) == 3 + 6 + 3  # records in: nothing lost
    close = next(row for row in out.rows if row.file == "og/logs.json" and row.kind == EventKind.INCIDENT_RESOLVED)
    assert close.attrs is not None and close.attrs["log_id"] == "1741997440092:5"  # no offset: createdAt ms + index


def test_alert_without_id_or_created_at() -> None:
    no_id = raw("alert")
    no_id["data"]["id"] = "  "
    no_created = raw("alert")
    del no_created["data"]["createdAt"]
    out = parse([SourceDocument("a/alert.json", no_id), SourceDocument("b/alert.json", no_created)])
    assert out.rows == []
    assert [(q.file, q.reason) for q in out.quarantined] == [
        ("a/alert.json", "missing or non-string field 'id'"),
        ("b/alert.json", "missing timestamp 'createdAt'"),
    ]
    # an alert without createdAt still claims the logs beside it (they carry their own times)
    logs = parse([SourceDocument("b/alert.json", no_created), SourceDocument("b/logs.json", raw("logs"))])
    assert len(logs.rows) == 6 and len(logs.quarantined) == 1


def test_records_in_equals_rows_plus_quarantined_for_mixed_bundles() -> None:
    hooks = [SourceDocument(f"opsgenie/{name}", json.loads((FIXTURES / name).read_text())) for name in WEBHOOKS]
    broken = raw("logs")
    broken["data"][0] = None
    docs = [
        *hooks,
        *rest_docs("x"),
        SourceDocument("y/logs.json", broken),
        SourceDocument("z/notes.json", raw("notes")),
    ]
    out = parse(docs)
    # webhooks, the alert's 3 facts, its logs and notes; y/logs and z/notes pair with the bundle's only alert
    records = 4 + 3 + 6 + 1 + 6 + 1
    assert len(out.rows) + len(out.quarantined) == records
    timeline = build_timeline(CTX.incident_id, [out], Settings())
    assert timeline.stats.balanced and timeline.stats.records_in == records


# --- sniffing ------------------------------------------------------------------------------------------------

EMPTY_PAGE = {
    "data": [],
    "paging": {"first": "https://api.opsgenie.com/v2/alerts/x/notes"},
    "took": 0.0,
    "requestId": "r",
}


@pytest.mark.parametrize(
    "data",
    [raw("alert"), raw("logs"), raw("notes"), EMPTY_PAGE, {"data": [raw("alert")["data"]], "paging": {}}],
    ids=["alert", "logs", "notes", "empty-page", "list-alerts"],
)
def test_sniff_accepts_rest_responses_and_only_opsgenie_does(data: Any) -> None:
    doc = SourceDocument("x.json", data)
    assert [type(p).__name__ for p in all_parsers() if p.sniff(doc)] == ["OpsgenieParser"]
    assert isinstance(recognise(doc, all_parsers()), OpsgenieParser)


def test_an_empty_page_holds_no_record() -> None:
    out = parse([SourceDocument("og/notes.json", EMPTY_PAGE)])
    assert out == ParseOutput([], [])


@pytest.mark.parametrize(
    "data",
    [
        {"data": []},  # no Opsgenie envelope
        {"data": [], "requestId": "r", "meta": {}},
        {"data": {"id": "x", "type": "issue"}},
        {"data": {"repository": {"issue": {"number": 7}}}},  # GitHub GraphQL
        {"data": [{"id": "1", "type": "users", "attributes": {}}]},  # JSON:API
        {"data": [{"log": "x"}]},  # neither createdAt nor offset
        {"data": [{"note": 3, "createdAt": "2025-03-14T23:50:00Z"}]},
        {"data": ["Alert created"]},
        {"data": "Alert created"},
        {"alert": raw("alert")["data"]},
    ],
)
def test_sniff_rejects_unrelated_json(data: Any) -> None:
    assert not OpsgenieParser().sniff(SourceDocument("x.json", data))


def test_sniff_does_not_care_about_file_names() -> None:
    data = copy.deepcopy(raw("logs"))
    assert OpsgenieParser().sniff(SourceDocument("slack/general/2025-03-14.json", data))
    assert not OpsgenieParser().sniff(SourceDocument("opsgenie/x/logs.json", {"messages": []}))
