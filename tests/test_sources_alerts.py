"""Alertmanager, Grafana, PagerDuty and Opsgenie parsers: own fixtures, shared real payloads, hostile input."""

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

from pipeline.models import Event, EventKind, EventRow, ParseOutput, Source
from pipeline.sources.alertmanager import AlertmanagerParser
from pipeline.sources.base import ParseContext, SourceDocument
from pipeline.sources.grafana import GrafanaParser
from pipeline.sources.opsgenie import OpsgenieParser
from pipeline.sources.pagerduty import PagerDutyParser

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CTX = ParseContext(incident_id="INC-2041")
PARSERS = (GrafanaParser(), AlertmanagerParser(), PagerDutyParser(), OpsgenieParser())
PD_INCIDENT = "Q3CHKA5XX2041B"
OG_ALERT = "3c9e7f12-58ab-4d0e-9b61-7a2f4c8d1e05"


def load(rel: str) -> SourceDocument:
    return SourceDocument(path=rel, data=json.loads((FIXTURES / rel).read_text()))


def ndjson(rel: str) -> list[SourceDocument]:
    lines = (FIXTURES / rel).read_text().splitlines()
    return [SourceDocument(rel, json.loads(line), f"line {n}") for n, line in enumerate(lines, 1) if line]


def ns(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int = 0) -> int:
    """UTC wall-clock time as epoch nanoseconds."""
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return int(moment.timestamp()) * 10**9 + micro * 1000


def kinds(rows: Sequence[EventRow]) -> list[str]:
    return [row.kind for row in rows]


def by_kind(rows: Sequence[EventRow], kind: EventKind) -> list[EventRow]:
    return [row for row in rows if row.kind == kind]


def assert_clean(out: ParseOutput) -> None:
    """No quarantine, and every row is a valid Event with JSON-safe attrs."""
    assert out.quarantined == []
    for row in out.rows:
        Event.from_row(row)
        orjson.dumps(row.attrs)


def pd_docs(*names: str) -> list[SourceDocument]:
    return [load(f"pagerduty/{name}") for name in names]


WEBHOOKS = tuple(f"webhooks/{name}.json" for name in ("01_triggered", "02_acknowledged", "03_annotated", "04_resolved"))
OPSGENIE = ("01_create.json", "02_acknowledge.json", "03_addnote.json", "04_close.json")
OPSGENIE_REST = ("rest/alert.json", "rest/logs.json", "rest/notes.json")  # more in test_sources_opsgenie_rest.py


# --- Alertmanager --------------------------------------------------------------------------------------------


def test_alertmanager_firing_group_is_three_firing_alerts_of_one_signal() -> None:
    out = AlertmanagerParser().parse([load("alertmanager/firing_group.json")], CTX)
    assert_clean(out)
    assert kinds(out.rows) == [EventKind.ALERT_FIRING] * 3
    assert [row.ts_ns for row in out.rows] == [
        ns(2025, 3, 14, 23, 35, 8, micro=482913),
        ns(2025, 3, 14, 23, 35, 38, micro=482913),
        ns(2025, 3, 14, 23, 36, 8, micro=482913),
    ]
    assert {row.signal for row in out.rows} == {"checkouthigherrorrate"}
    assert {row.actor for row in out.rows} == {"Alertmanager"}
    assert {row.source for row in out.rows} == {Source.ALERTMANAGER.value}
    first = out.rows[0]
    assert first.service == "checkout-api"
    assert first.severity == "critical"
    assert first.url is not None and first.url.startswith("http://prometheus-0.monitoring:9090/graph")
    assert first.text == "checkout-api 5xx ratio above 5% (instance=10.42.3.17:8080, pod=checkout-api-7d9f8c6b5-2xkqp)"
    assert [row.position for row in out.rows] == ["/alerts/0", "/alerts/1", "/alerts/2"]
    assert first.native_id == "3f9a1c0e7b2d4a61:1741995308482913000:firing"
    assert first.attrs is not None
    assert first.attrs["alertname"] == "CheckoutHighErrorRate"
    assert first.attrs["fingerprint"] == "3f9a1c0e7b2d4a61"
    assert first.attrs["receiver"] == "pagerduty-payments"
    assert first.attrs["group_key"] == '{}/{team="payments"}:{alertname="CheckoutHighErrorRate"}'
    assert first.attrs["status"] == "firing"
    assert first.attrs["labels"]["pod"] == "checkout-api-7d9f8c6b5-2xkqp"
    # Go's zero time in endsAt means "still firing": no resolved event and nothing quarantined.
    assert by_kind(out.rows, EventKind.ALERT_RESOLVED) == []


def test_alertmanager_resolved_redelivery_reuses_firing_ids_and_adds_resolutions() -> None:
    firing = AlertmanagerParser().parse([load("alertmanager/firing_group.json")], CTX)
    both = AlertmanagerParser().parse(
        [load("alertmanager/firing_group.json"), load("alertmanager/resolved_group.json")], CTX
    )
    assert_clean(both)
    firing_ids = {row.id for row in firing.rows}
    redelivered = [row for row in both.rows if row.file.endswith("resolved_group.json")]
    assert {row.id for row in by_kind(redelivered, EventKind.ALERT_FIRING)} == firing_ids
    resolved = by_kind(redelivered, EventKind.ALERT_RESOLVED)
    assert [row.native_id for row in resolved] == [
        "3f9a1c0e7b2d4a61:1741995308482913000:resolved",
        "8c2e55d1f04b7a93:1741995338482913000:resolved",
        "d41b0e6a9c37f218:1741995368482913000:resolved",
    ]
    assert [row.ts_ns for row in resolved] == [
        ns(2025, 3, 15, 0, 8, 38, micro=482913),
        ns(2025, 3, 15, 0, 8, 8, micro=482913),
        ns(2025, 3, 15, 0, 9, 8, micro=482913),
    ]
    assert all(row.text.startswith("Resolved: ") for row in resolved)
    assert {row.signal for row in resolved} == {"checkouthigherrorrate"}
    assert len({row.id for row in both.rows}) == 6  # 3 firing (delivered twice) + 3 resolved


def test_alertmanager_ndjson_lines_are_separate_documents() -> None:
    out = AlertmanagerParser().parse(ndjson("alertmanager/notifications.ndjson"), CTX)
    assert_clean(out)
    assert kinds(out.rows) == [EventKind.ALERT_FIRING, EventKind.ALERT_FIRING, EventKind.ALERT_RESOLVED]
    crash, latency, latency_resolved = out.rows
    assert crash.position == "line 1 /alerts/0"
    assert latency_resolved.position == "line 2 /alerts/0"
    assert crash.signal == "kubepodcrashlooping"
    assert crash.service == "kube-state-metrics"  # no service label: job comes next
    assert latency.service == "shop"  # then namespace, before app
    assert latency.text == "p99 latency of checkout is 2.9s (threshold 1.5s)."  # description when no summary
    assert crash.ts_ns == ns(2025, 3, 14, 23, 33, 37, micro=100000)
    assert latency_resolved.ts_ns == ns(2025, 3, 15, 0, 10, 2)


def test_alertmanager_array_of_payloads_points_into_each_payload() -> None:
    firing = load("alertmanager/firing_group.json").data
    line = ndjson("alertmanager/notifications.ndjson")[0].data
    out = AlertmanagerParser().parse([SourceDocument("batch.json", [firing, line])], CTX)
    assert_clean(out)
    assert [row.position for row in out.rows] == ["/0/alerts/0", "/0/alerts/1", "/0/alerts/2", "/1/alerts/0"]


def test_alertmanager_fingerprint_falls_back_to_a_stable_label_hash() -> None:
    payload = load("alertmanager/firing_group.json").data
    alert = payload["alerts"][0]
    del alert["fingerprint"]
    reordered = copy.deepcopy(payload)
    reordered["alerts"][0]["labels"] = dict(reversed(list(alert["labels"].items())))
    one = AlertmanagerParser().parse([SourceDocument("a.json", payload)], CTX).rows[0]
    two = AlertmanagerParser().parse([SourceDocument("b.json", reordered)], CTX).rows[0]
    assert one.native_id.startswith("labels-")
    assert one.native_id == two.native_id
    relabelled = copy.deepcopy(payload)
    relabelled["alerts"][0]["labels"]["pod"] = "checkout-api-other"
    three = AlertmanagerParser().parse([SourceDocument("c.json", relabelled)], CTX).rows[0]
    assert three.native_id != one.native_id


def test_alertmanager_resolved_status_with_unset_end_is_only_firing() -> None:
    payload = load("alertmanager/firing_group.json").data
    payload["alerts"][0]["status"] = "resolved"  # endsAt still 0001-01-01
    out = AlertmanagerParser().parse([SourceDocument("a.json", payload)], CTX)
    assert_clean(out)
    assert kinds(out.rows) == [EventKind.ALERT_FIRING] * 3


def test_alertmanager_quarantines_bad_alerts_with_reasons() -> None:
    payload = load("alertmanager/resolved_group.json").data
    del payload["alerts"][1]["startsAt"]
    payload["alerts"][2]["endsAt"] = "2025-03-14T22:00:00Z"  # before startsAt
    payload["alerts"].append({"labels": {"alertname": "X"}, "startsAt": "1970-01-01T00:00:00Z"})
    payload["alerts"].append("not an alert")
    out = AlertmanagerParser().parse([SourceDocument("bad.json", payload)], CTX)
    assert [row.position for row in out.rows] == ["/alerts/0", "/alerts/0"]  # the good alert, firing + resolved
    reasons = {q.position: q.reason for q in out.quarantined}
    assert reasons["/alerts/1"] == "alert has no startsAt"
    assert reasons["/alerts/2"] == "endsAt is before startsAt"
    assert "impossible timestamp" in reasons["/alerts/3"]
    assert reasons["/alerts/4"] == "alert is not an object"
    assert {q.source for q in out.quarantined} == {"alertmanager"}
    assert {q.file for q in out.quarantined} == {"bad.json"}


def test_alertmanager_quarantines_a_payload_of_the_wrong_shape_once() -> None:
    docs = [
        SourceDocument("x.json", {"receiver": "r", "groupKey": "g", "alerts": "nope"}),
        SourceDocument("y.json", [42], "line 3"),
    ]
    out = AlertmanagerParser().parse(docs, CTX)
    assert out.rows == []
    assert [(q.file, q.position, q.reason) for q in out.quarantined] == [
        ("x.json", "/", "payload has no alerts array"),
        ("y.json", "line 3 /0", "alert payload is not an object"),
    ]


# --- Grafana -------------------------------------------------------------------------------------------------


def test_grafana_payload_uses_the_alertmanager_event_model() -> None:
    out = GrafanaParser().parse([load("grafana/checkout_latency.json")], CTX)
    assert_clean(out)
    assert kinds(out.rows) == [EventKind.ALERT_FIRING, EventKind.ALERT_FIRING, EventKind.ALERT_RESOLVED]
    firing, _, resolved = out.rows
    assert {row.source for row in out.rows} == {"grafana"}
    assert {row.actor for row in out.rows} == {"Grafana"}
    assert firing.signal == "checkoutp99latency"
    assert firing.ts_ns == ns(2025, 3, 14, 23, 36, 30)
    assert resolved.ts_ns == ns(2025, 3, 15, 0, 7, 30)
    assert firing.native_id == "6e1f0b9a37c2d854:1741995390000000000:firing"
    assert resolved.native_id == "c98d21f4a0b7e365:1741995390000000000:resolved"
    assert firing.url == "https://grafana.example.com/d/checkout-slo?orgId=1&viewPanel=4"
    assert firing.service == "checkout-api"
    assert firing.severity == "warning"
    assert firing.attrs is not None
    assert firing.attrs["values"] == {"B": 2.84, "C": 1}
    assert firing.attrs["value_string"].startswith("[ var='B' labels={instance=10.42.3.17:8080")
    assert firing.attrs["receiver"] == "sre-webhook"
    assert firing.text == "Checkout p99 latency above 1.5s (instance=10.42.3.17:8080)"


def test_grafana_url_falls_back_to_dashboard_then_rule() -> None:
    payload = load("grafana/checkout_latency.json").data
    del payload["alerts"][0]["panelURL"]
    del payload["alerts"][1]["panelURL"]
    del payload["alerts"][1]["dashboardURL"]
    rows = GrafanaParser().parse([SourceDocument("g.json", payload)], CTX).rows
    assert rows[0].url == "https://grafana.example.com/d/checkout-slo?orgId=1"
    assert rows[1].url is not None and "/alerting/grafana/" in rows[1].url


# --- PagerDuty -----------------------------------------------------------------------------------------------


def test_pagerduty_webhook_lifecycle() -> None:
    out = PagerDutyParser().parse(pd_docs(*WEBHOOKS), CTX)
    assert_clean(out)
    assert kinds(out.rows) == [
        EventKind.PAGE_TRIGGERED,
        EventKind.ACKNOWLEDGED,
        EventKind.NOTE,
        EventKind.INCIDENT_RESOLVED,
    ]
    assert [row.ts_ns for row in out.rows] == [
        ns(2025, 3, 14, 23, 36, 40, micro=512000),
        ns(2025, 3, 14, 23, 39, 12, micro=208000),
        ns(2025, 3, 15, 0, 3, 5, micro=904000),
        ns(2025, 3, 15, 0, 11, 5, micro=733000),
    ]
    assert [row.actor for row in out.rows] == ["checkout-api", "Priya Natarajan", "Marco Bellini", "Priya Natarajan"]
    trigger, ack, note, resolve = out.rows
    assert trigger.signal == "checkouthigherrorrate"
    assert [row.signal for row in (ack, note, resolve)] == [None, None, None]
    assert trigger.text == "Triggered: #8812 [FIRING:3] CheckoutHighErrorRate"
    assert trigger.service == "checkout-api"
    assert trigger.severity == "high"
    assert trigger.url == f"https://acme-shop.pagerduty.com/incidents/{PD_INCIDENT}"
    assert trigger.attrs is not None
    assert {k: trigger.attrs[k] for k in ("incident_id", "incident_number", "status", "urgency", "priority")} == {
        "incident_id": PD_INCIDENT,
        "incident_number": 8812,
        "status": "triggered",
        "urgency": "high",
        "priority": "P1",
    }
    assert note.text == "Rolling back checkout-api to v4.17.3; v4.18.0 suspected (new payment client timeouts)."
    assert note.native_id == "note:PNT4RB7"
    assert note.attrs is not None and note.attrs["incident_id"] == PD_INCIDENT
    assert ack.native_id == f"incident:{PD_INCIDENT}:acknowledged:1741995552"
    assert [row.position for row in out.rows] == ["/"] * 4


def test_pagerduty_rest_forms() -> None:
    incident = PagerDutyParser().parse(pd_docs("rest/incident.json"), CTX)
    assert_clean(incident)
    assert kinds(incident.rows) == [EventKind.PAGE_TRIGGERED, EventKind.INCIDENT_RESOLVED]
    assert [row.ts_ns for row in incident.rows] == [ns(2025, 3, 14, 23, 36, 40), ns(2025, 3, 15, 0, 11, 5)]
    assert [row.actor for row in incident.rows] == [None, "Priya Natarajan"]
    assert incident.rows[0].signal == "checkouthigherrorrate"
    assert incident.rows[0].severity == "high"

    log = PagerDutyParser().parse(pd_docs("rest/log_entries.json"), CTX)
    assert_clean(log)
    assert kinds(log.rows) == [
        EventKind.PAGE_TRIGGERED,
        EventKind.SYSTEM,
        EventKind.ACKNOWLEDGED,
        EventKind.NOTE,
        EventKind.INCIDENT_RESOLVED,
    ]
    assert [row.actor for row in log.rows] == [
        "checkout-api",
        None,
        "Priya Natarajan",
        "Marco Bellini",
        "Priya Natarajan",
    ]
    assert log.rows[0].signal == "checkouthigherrorrate"  # "[#8812] " prefix of the reference summary dropped
    assert log.rows[1].native_id == "log:R2NTFY8812AA02"
    assert log.rows[1].text == "Notified Priya Natarajan by push notification."
    assert log.rows[3].text.startswith("Rolling back checkout-api to v4.17.3")
    assert [row.position for row in log.rows] == [f"/log_entries/{i}" for i in range(5)]

    notes = PagerDutyParser().parse(pd_docs("rest/notes.json"), CTX)
    assert_clean(notes)
    assert kinds(notes.rows) == [EventKind.NOTE, EventKind.NOTE]
    assert [row.native_id for row in notes.rows] == ["note:PNT4RB7", "note:PNT9XC2"]
    assert [row.actor for row in notes.rows] == ["Marco Bellini", "Priya Natarajan"]
    assert notes.rows[1].ts_ns == ns(2025, 3, 15, 0, 10, 12)


@pytest.mark.parametrize("rest", ["rest/incident.json", "rest/log_entries.json"])
def test_pagerduty_webhook_and_rest_ids_meet(rest: str) -> None:
    webhook = {row.kind: row for row in PagerDutyParser().parse(pd_docs(*WEBHOOKS), CTX).rows}
    other = {row.kind: row for row in PagerDutyParser().parse(pd_docs(rest), CTX).rows}
    shared = [EventKind.PAGE_TRIGGERED, EventKind.INCIDENT_RESOLVED]
    if rest.endswith("log_entries.json"):
        shared.append(EventKind.ACKNOWLEDGED)
    for kind in shared:
        assert other[kind].native_id == webhook[kind].native_id
        assert other[kind].id == webhook[kind].id
        assert other[kind].revision < webhook[kind].revision  # the webhook (richest form) wins dedup


def test_pagerduty_whole_bundle_collapses_to_one_event_per_action() -> None:
    docs = pd_docs(*WEBHOOKS, "rest/incident.json", "rest/log_entries.json", "rest/notes.json")
    out = PagerDutyParser().parse(docs, CTX)
    assert_clean(out)
    winners: dict[str, EventRow] = {}
    for row in out.rows:
        if row.id not in winners or row.revision > winners[row.id].revision:
            winners[row.id] = row
    assert sorted(row.native_id for row in winners.values()) == sorted(
        [
            f"incident:{PD_INCIDENT}:triggered",
            "log:R2NTFY8812AA02",
            f"incident:{PD_INCIDENT}:acknowledged:1741995552",
            "note:PNT4RB7",  # webhook, notes endpoint and annotate_log_entry are one note
            "note:PNT9XC2",
            f"incident:{PD_INCIDENT}:resolved",
        ]
    )
    assert winners[next(r.id for r in out.rows if r.native_id == "note:PNT4RB7")].position == "/"


def test_pagerduty_annotate_log_entry_without_the_note_falls_back_to_incident_time() -> None:
    out = PagerDutyParser().parse(pd_docs("rest/log_entries.json"), CTX)
    note = by_kind(out.rows, EventKind.NOTE)[0]
    assert note.native_id == f"incident:{PD_INCIDENT}:note:1741996985"


def test_pagerduty_redelivered_webhook_gets_the_same_ids() -> None:
    first = PagerDutyParser().parse(pd_docs(*WEBHOOKS), CTX)
    again = PagerDutyParser().parse(pd_docs(*reversed(WEBHOOKS)), CTX)
    assert sorted(row.id for row in first.rows) == sorted(row.id for row in again.rows)


def test_pagerduty_escalation_and_other_webhooks() -> None:
    base = load("pagerduty/webhooks/02_acknowledged.json").data
    escalated = copy.deepcopy(base)
    escalated["event"]["event_type"] = "incident.escalated"
    reassigned = copy.deepcopy(base)
    reassigned["event"]["event_type"] = "incident.reassigned"
    priority = copy.deepcopy(base)
    priority["event"]["event_type"] = "incident.priority_updated"
    docs = [SourceDocument(f"{n}.json", d) for n, d in enumerate((escalated, reassigned, priority))]
    out = PagerDutyParser().parse(docs, CTX)
    assert_clean(out)
    assert kinds(out.rows) == [EventKind.ESCALATED, EventKind.ASSIGNED, EventKind.SYSTEM]
    assert out.rows[1].text == "Reassigned: #8812 [FIRING:3] CheckoutHighErrorRate → Priya Natarajan"
    assert out.rows[2].native_id == "webhook:01FQ7ZNB8ACKD0000000000002"
    assert out.rows[2].text == "Priority updated: #8812 [FIRING:3] CheckoutHighErrorRate"


def test_pagerduty_quarantines_bad_log_entries_and_webhooks() -> None:
    page = load("pagerduty/rest/log_entries.json").data
    del page["log_entries"][1]["type"]
    page["log_entries"][2]["created_at"] = "yesterday"
    del page["log_entries"][4]["incident"]
    broken_webhook = load("pagerduty/webhooks/01_triggered.json").data
    broken_webhook["event"]["data"] = None
    docs = [SourceDocument("log.json", page), SourceDocument("hook.json", broken_webhook)]
    out = PagerDutyParser().parse(docs, CTX)
    assert kinds(out.rows) == [EventKind.PAGE_TRIGGERED, EventKind.NOTE]
    assert [(q.file, q.position, q.reason) for q in out.quarantined] == [
        ("log.json", "/log_entries/1", "missing or non-string field 'type'"),
        ("log.json", "/log_entries/2", "created_at: unparseable timestamp 'yesterday'"),
        ("log.json", "/log_entries/4", "resolve_log_entry has no incident reference"),
        ("hook.json", "/", "incident.triggered event carries no incident"),
    ]
    assert out.quarantined[1].excerpt.startswith('{"id":"R3ACKN8812AA03","type":"acknowledge_log_entry"')


# --- Opsgenie ------------------------------------------------------------------------------------------------


def test_opsgenie_lifecycle() -> None:
    out = OpsgenieParser().parse([load(f"opsgenie/{name}") for name in OPSGENIE], CTX)
    assert_clean(out)
    assert kinds(out.rows) == [
        EventKind.PAGE_TRIGGERED,
        EventKind.ACKNOWLEDGED,
        EventKind.NOTE,
        EventKind.INCIDENT_RESOLVED,
    ]
    # createdAt is epoch milliseconds, updatedAt epoch nanoseconds (kept exact).
    assert [row.ts_ns for row in out.rows] == [
        ns(2025, 3, 14, 23, 36, 45, micro=218000),
        1741995590431000207,
        1741996030877000361,
        1741997440092000518,
    ]
    assert [row.actor for row in out.rows] == [
        "Alertmanager",
        "sam.okafor@example.com",
        "sam.okafor@example.com",
        "priya.n@example.com",
    ]
    create, ack, note, close = out.rows
    assert create.native_id == f"alert:{OG_ALERT}:created"
    assert ack.native_id == f"alert:{OG_ALERT}:Acknowledge:1741995590431000207"
    assert create.signal == "checkout5xxratioabove5"
    assert [row.signal for row in (ack, note, close)] == [None, None, None]
    assert create.text == "Checkout 5xx ratio above 5%"
    assert note.text == "On the bridge; checkout-api pods restarting with payment client timeouts."
    assert close.text == "Closed: Checkout 5xx ratio above 5%"
    assert {row.severity for row in out.rows} == {"P2"}
    assert {row.service for row in out.rows} == {"checkout-api"}  # entity empty: the service: tag
    assert create.attrs is not None
    assert create.attrs["tiny_id"] == "417"
    assert create.attrs["tags"] == ["payments", "service:checkout-api", "sev2"]


def test_opsgenie_redelivery_and_field_variants() -> None:
    create = load("opsgenie/01_create.json").data
    again = OpsgenieParser().parse([SourceDocument("again.json", copy.deepcopy(create))], CTX).rows
    first = OpsgenieParser().parse([SourceDocument("first.json", create)], CTX).rows
    assert first[0].id == again[0].id
    variant = copy.deepcopy(create)
    variant["alert"].update({"priority": 3, "entity": "payments-gateway", "username": ""})
    row = OpsgenieParser().parse([SourceDocument("v.json", variant)], CTX).rows[0]
    assert row.severity == "P3"
    assert row.service == "payments-gateway"
    assert row.actor == "Alertmanager"  # username empty: source.name


def test_opsgenie_quarantines_actions_without_their_timestamp() -> None:
    close = load("opsgenie/04_close.json").data
    del close["alert"]["updatedAt"]
    junk = {"action": "Create", "alert": {"alertId": OG_ALERT, "createdAt": "soon"}}
    out = OpsgenieParser().parse([SourceDocument("c.json", close), SourceDocument("j.json", [junk])], CTX)
    assert out.rows == []
    assert [(q.position, q.reason) for q in out.quarantined] == [
        ("/", "Close action has no alert.updatedAt"),
        ("/0", "alert.createdAt: epoch timestamp is not a number: 'soon'"),
    ]


# --- sniffing ------------------------------------------------------------------------------------------------

OWN_DOCS: dict[str, list[str]] = {
    "GrafanaParser": ["grafana/checkout_latency.json"],
    "AlertmanagerParser": ["alertmanager/firing_group.json", "alertmanager/resolved_group.json"],
    "PagerDutyParser": [f"pagerduty/{name}" for name in WEBHOOKS]
    + ["pagerduty/rest/incident.json", "pagerduty/rest/log_entries.json", "pagerduty/rest/notes.json"],
    "OpsgenieParser": [f"opsgenie/{name}" for name in (*OPSGENIE, *OPSGENIE_REST)],
}


def _accepting(doc: SourceDocument) -> list[str]:
    return [type(parser).__name__ for parser in PARSERS if parser.sniff(doc)]


@pytest.mark.parametrize(("owner", "rel"), [(o, r) for o, rels in OWN_DOCS.items() for r in rels])
def test_sniff_accepts_only_its_own_fixtures(owner: str, rel: str) -> None:
    assert _accepting(load(rel)) == [owner]


def test_sniff_ndjson_lines_and_arrays() -> None:
    for doc in ndjson("alertmanager/notifications.ndjson"):
        assert _accepting(doc) == ["AlertmanagerParser"]
    hooks = [load(f"pagerduty/{name}").data for name in WEBHOOKS]
    assert _accepting(SourceDocument("hooks.json", hooks)) == ["PagerDutyParser"]
    og = [load(f"opsgenie/{name}").data for name in OPSGENIE]
    assert _accepting(SourceDocument("og.json", og)) == ["OpsgenieParser"]


def test_sniff_grafana_and_alertmanager_both_ways() -> None:
    grafana = load("grafana/checkout_latency.json").data
    stripped = {k: v for k, v in grafana.items() if k not in ("orgId", "title", "state", "message")}
    stripped["version"] = "4"
    assert _accepting(SourceDocument("g.json", stripped)) == ["AlertmanagerParser"]
    alertmanager = load("alertmanager/firing_group.json").data
    assert _accepting(SourceDocument("a.json", {**alertmanager, "orgId": 1})) == ["GrafanaParser"]
    assert _accepting(SourceDocument("a.json", {**alertmanager, "version": "1"})) == ["GrafanaParser"]


@pytest.mark.parametrize(
    "data",
    [
        None,
        "alerts",
        42,
        [],
        {},
        [{}],
        {"alerts": []},  # no groupKey/receiver: not a notification
        {"event": {"id": "x"}},
        {"incident": {"id": "x", "name": "Checkout degraded", "incident_updates": []}},  # Statuspage-like
        {"meta": {}, "page": {"id": "p"}, "incident": {"id": "x", "type": "incident", "incident_number": 1}},
        {"notes": [{"body": "hi"}]},
        {"notes": [], "comments": []},
        {"log_entries": [{"type": "comment"}]},
        {"action": "created", "alert": {"number": 3, "state": "open"}},  # GitHub code-scanning webhook
        {"issue": {"key": "OPS-1"}, "webhookEvent": "jira:issue_updated"},
        [{"type": "message", "ts": "1741995040.118209", "text": "hi"}],
        {"data": []},  # no Opsgenie response envelope
        {"data": {"id": "x", "type": "incident"}},
        {"data": [{"id": "1", "type": "users", "attributes": {}}]},  # JSON:API
        {"data": [{"log": "Alert created"}]},  # neither createdAt nor offset
    ],
)
def test_sniffs_reject_foreign_shapes(data: Any) -> None:
    assert _accepting(SourceDocument("x.json", data)) == []


# --- the real payloads in ../shared/data/formats ---------------------------------------------------------------

A, R = EventKind.ALERT_FIRING, EventKind.INCIDENT_RESOLVED
SHARED_EXPECTED: dict[str, tuple[str, dict[str, list[EventKind]]]] = {
    "alertmanager_webhook_v4": ("AlertmanagerParser", {"alert.json": [A, A]}),
    "grafana_alerting_webhook": ("GrafanaParser", {"alert_values_v11.json": [A]}),
    "pagerduty_webhook_v3": (
        "PagerDutyParser",
        {
            "triggered_v3.json": [EventKind.PAGE_TRIGGERED],
            "acknowledged_v3.json": [EventKind.ACKNOWLEDGED],
            "annotated_v3.json": [EventKind.NOTE],
            "resolved_v3.json": [R],
        },
    ),
    "pagerduty_rest_incident": (
        "PagerDutyParser",
        {
            "GET_incidents_id.example.json": [EventKind.PAGE_TRIGGERED, EventKind.ACKNOWLEDGED],
            "GET_incidents_id_log_entries.example.json": [EventKind.PAGE_TRIGGERED],
            "GET_log_entries.example.json": [EventKind.PAGE_TRIGGERED],
            "GET_incidents_id_notes.example.json": [EventKind.NOTE, EventKind.NOTE],
        },
    ),
    "opsgenie_webhook": (
        "OpsgenieParser",
        {"create.json": [EventKind.PAGE_TRIGGERED], "addnote.json": [EventKind.NOTE], "close.json": [R]},
    ),
}


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(SHARED_EXPECTED))
def test_shared_real_payloads_parse_cleanly(shared_formats: Path, name: str) -> None:
    owner, expected = SHARED_EXPECTED[name]
    payloads = json.loads((shared_formats / f"{name}.json").read_text())["payloads"]
    assert sorted(payloads) == sorted(expected)
    parser = next(p for p in PARSERS if type(p).__name__ == owner)
    for label, payload in payloads.items():
        doc = SourceDocument(path=f"{name}/{label}", data=payload)
        assert _accepting(doc) == [owner], label
        out = parser.parse([doc], CTX)
        assert_clean(out)
        assert kinds(out.rows) == expected[label], label
        if label != "GET_incidents_id.example.json":  # the REST incident names no one for its trigger
            assert all(row.actor for row in out.rows), label


@pytest.mark.shared
def test_shared_pagerduty_rest_forms_of_one_incident_meet(shared_formats: Path) -> None:
    payloads = json.loads((shared_formats / "pagerduty_rest_incident.json").read_text())["payloads"]
    docs = [SourceDocument(label, payload) for label, payload in payloads.items()]
    out = PagerDutyParser().parse(docs, CTX)
    triggers = by_kind(out.rows, EventKind.PAGE_TRIGGERED)
    assert len(triggers) == 3 and len({row.id for row in triggers}) == 1
    assert {row.signal for row in triggers} == {"theserverisonfire"}


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
        junk = draw(_scalars | _json | st.just("\ud800") | st.just("0001-01-01T00:00:00Z") | st.just("x" * 30_000))
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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_hostile())
def test_parsers_never_raise_on_hostile_input(data: Any) -> None:
    doc = SourceDocument("fuzz.json", data)
    for parser in PARSERS:
        parser.sniff(doc)
        out = parser.parse([doc], CTX)
        assert all(q.reason for q in out.quarantined)
        for row in out.rows:
            Event.from_row(row)
            orjson.dumps(row.attrs)
            row.text.encode()
