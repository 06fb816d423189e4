"""Fake vendor APIs on 127.0.0.1 for the connector tests. A helper, not a test module.

Each fake speaks one vendor's real API shape (paths, pagination style, auth header, error form) over one small
incident — "checkout-api 5xx after the v3.2.0 deploy", 2025-03-04 — written for these tests in the shapes of the
vendors' documented responses. Every fake honours the page size the client asks for, so a test sets
``page_size=2`` to get three or more pages.

``serve(fake)`` runs a threaded HTTP server and yields its base URL. ``fake.faults[path]`` is a queue of
``(status, headers)`` answered (in order) before the real answer for that path: ``[(429, {"Retry-After": "1"})]``,
``[(503, {})]``. ``fake.requests`` records ``(method, path, query)`` of every call.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

T0 = datetime(2025, 3, 4, 14, 0, tzinfo=UTC)  # the first page
Answer = tuple[int, dict[str, str], Any]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return at(minutes).strftime("%Y-%m-%dT%H:%M:%SZ")


def jira_time(minutes: float) -> str:
    return at(minutes).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def slack_ts(minutes: float, micro: int = 0) -> str:
    return f"{int(at(minutes).timestamp())}.{micro:06d}"


def epoch_ms(minutes: float) -> int:
    return int(at(minutes).timestamp() * 1000)


class FakeVendor:
    """Routes requests; subclasses implement ``authorized`` and ``handle``."""

    name = "fake"

    def __init__(self, token: str) -> None:
        self.token = token
        self.base_url = ""
        self.faults: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.lock = threading.Lock()

    def authorized(self, headers: Any) -> bool:
        return bool(headers.get("Authorization") == f"Bearer {self.token}")

    def unauthorized(self) -> Answer:
        return 401, {}, {"message": "Bad credentials"}

    def dispatch(self, method: str, target: str, headers: Any, body: bytes) -> Answer:
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        with self.lock:
            self.requests.append((method, parts.path, query))
            queue = self.faults.get(parts.path)
            fault = queue.pop(0) if queue else None
        if fault is not None:
            status, extra = fault
            return status, extra, {"error": f"injected {status}"}
        if not self.authorized(headers):
            return self.unauthorized()
        payload = json.loads(body) if body else None
        return self.handle(method, parts.path, query, payload)

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        raise NotImplementedError

    @staticmethod
    def arg(query: dict[str, list[str]], key: str, default: str = "") -> str:
        values = query.get(key)
        return values[0] if values else default


def _not_found() -> Answer:
    return 404, {}, {"error": "not found"}


# --- Slack -----------------------------------------------------------------------------------------------------

CHANNEL = "C0INC4242"
THREAD_TS = slack_ts(2, 100)


def _slack_messages() -> list[dict[str, Any]]:
    """conversations.history: newest first, as Slack returns it."""
    messages: list[dict[str, Any]] = [
        {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": "B0DEPLOY1",
            "username": "deploybot",
            "text": "Deployed checkout-api v3.2.0 to production",
            "ts": slack_ts(-10),
        },
        {
            "type": "message",
            "user": "U0AAA0001",
            "text": "checkout is returning 500s for most customers, looking into it",
            "ts": THREAD_TS,
            "thread_ts": THREAD_TS,
            "reply_count": 3,
            "reply_users_count": 2,
            "latest_reply": slack_ts(9),
        },
        {"type": "message", "user": "U0AAA0002", "text": "I am on it, checking the deploy", "ts": slack_ts(5)},
        {
            "type": "message",
            "user": "U0AAA0002",
            "text": "Rolled back checkout-api to v3.1.9, mitigated: error rate is dropping",
            "ts": slack_ts(20),
        },
        {"type": "message", "user": "U0AAA0001", "text": "Error rate back to baseline, resolved", "ts": slack_ts(40)},
        {
            "type": "message",
            "user": "U0AAA0001",
            "text": "action item: add canary analysis to the checkout-api pipeline <@U0AAA0002> by 2025-03-20",
            "ts": slack_ts(45),
        },
        {"type": "message", "user": "U0AAA0003", "text": "thanks all, writing the postmortem", "ts": slack_ts(50)},
    ]
    return sorted(messages, key=lambda m: m["ts"], reverse=True)


def _slack_replies() -> list[dict[str, Any]]:
    parent = next(m for m in _slack_messages() if m["ts"] == THREAD_TS)
    replies = [
        {"text": "seeing the same in payments-gateway logs", "user": "U0AAA0003", "ts": slack_ts(3)},
        {"text": "errors started right after the deploy", "user": "U0AAA0002", "ts": slack_ts(6)},
        {"text": "confirmed, rolling back", "user": "U0AAA0001", "ts": slack_ts(9)},
    ]
    return [
        parent,
        *({"type": "message", "thread_ts": THREAD_TS, "parent_user_id": "U0AAA0001", **r} for r in replies),
    ]


SLACK_USERS = [
    {
        "id": uid,
        "team_id": "T0TEAM001",
        "name": handle,
        "deleted": False,
        "real_name": real,
        "tz": "Europe/Berlin",
        "is_bot": False,
        "profile": {"display_name": handle, "real_name": real, "team": "T0TEAM001"},
    }
    for uid, handle, real in (
        ("U0AAA0001", "dana", "Dana Ortiz"),
        ("U0AAA0002", "lee", "Lee Park"),
        ("U0AAA0003", "sam", "Sam Weber"),
    )
]


class FakeSlack(FakeVendor):
    name = "slack"

    def unauthorized(self) -> Answer:
        return 200, {}, {"ok": False, "error": "invalid_auth"}

    def _page(self, items: list[Any], key: str, query: dict[str, list[str]], extra: dict[str, Any]) -> Answer:
        limit = int(self.arg(query, "limit", "100"))
        cursor = self.arg(query, "cursor")
        start = int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0
        chunk = items[start : start + limit]
        following = start + limit
        more = following < len(items)
        next_cursor = base64.b64encode(f"next_ts:{following}".encode()).decode() if more else ""
        return 200, {}, {"ok": True, key: chunk, **extra, "response_metadata": {"next_cursor": next_cursor}}

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        if path == "/api/conversations.history":
            if self.arg(query, "channel") != CHANNEL:
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            limit = int(self.arg(query, "limit", "100"))
            cursor = self.arg(query, "cursor")
            start = int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0
            more = start + limit < len(_slack_messages())
            status, headers, page = self._page(_slack_messages(), "messages", query, {"pin_count": 0})
            page["has_more"] = more
            return status, headers, page
        if path == "/api/conversations.replies":
            if self.arg(query, "ts") != THREAD_TS:
                return 200, {}, {"ok": False, "error": "thread_not_found"}
            return self._page(_slack_replies(), "messages", query, {"has_more": False})
        if path == "/api/users.list":
            return self._page(SLACK_USERS, "members", query, {"cache_ts": int(T0.timestamp())})
        return 404, {}, {"ok": False, "error": "unknown_method"}


# --- PagerDuty -----------------------------------------------------------------------------------------------

PD_INCIDENT = "PINC0042"
JIRA_KEY_FOR_LINKS = "INC-42"  # JIRA_KEY, named before the Jira section
PD_API = "https://api.pagerduty.com"


def _pd_ref(kind: str, ident: str, summary: str) -> dict[str, str]:
    return {"id": ident, "type": f"{kind}_reference", "summary": summary, "self": f"{PD_API}/{kind}s/{ident}"}


def _pd_incident(ident: str, number: int, title: str, created: float, resolved: float | None) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "incident",
        "summary": f"[#{number}] {title}",
        "self": f"{PD_API}/incidents/{ident}",
        "html_url": f"https://acme.pagerduty.com/incidents/{ident}",
        "incident_number": number,
        "title": title,
        "created_at": iso(created),
        "updated_at": iso(resolved if resolved is not None else created),
        "status": "resolved" if resolved is not None else "triggered",
        "incident_key": f"key-{ident}",
        "service": _pd_ref("service", "PSVC0001", "checkout-api"),
        "assignments": [],
        "last_status_change_at": iso(resolved if resolved is not None else created),
        "resolved_at": iso(resolved) if resolved is not None else None,
        "urgency": "high",
        "priority": {"id": "PPRIO01", "type": "priority_reference", "summary": "P1"},
        "escalation_policy": _pd_ref("escalation_policy", "PESC0001", "Checkout on-call"),
        "teams": [_pd_ref("team", "PTEAM001", "payments-sre")],
    }


PD_INCIDENTS = [
    _pd_incident("POLD0001", 40, "Disk space low on batch-01", -3000, -2900),
    _pd_incident("POLD0002", 41, "Queue lag on payments-worker", -600, -500),
    _pd_incident(PD_INCIDENT, 42, "High 5xx rate on checkout-api", 0, 40),
    _pd_incident("PNEW0003", 43, "Cert expiry warning for edge", 60, 70),
    _pd_incident("PNEW0004", 44, "Latency on search-api", 90, 120),
]


def _pd_log_entries() -> list[dict[str, Any]]:
    incident = {
        "id": PD_INCIDENT,
        "type": "incident_reference",
        "summary": "[#42] High 5xx rate on checkout-api",
        "self": f"{PD_API}/incidents/{PD_INCIDENT}",
        "html_url": f"https://acme.pagerduty.com/incidents/{PD_INCIDENT}",
    }
    dana = _pd_ref("user", "PUSR0001", "Dana Ortiz")
    service = _pd_ref("service", "PSVC0001", "checkout-api")
    rows = [
        ("QLOG0001", "trigger_log_entry", 0, service, {"type": "api"}, "Triggered through the API"),
        ("QLOG0002", "notify_log_entry", 0.5, service, {"type": "auto"}, "Notified Dana Ortiz by push"),
        ("QLOG0003", "acknowledge_log_entry", 4, dana, {"type": "website"}, "Acknowledged by Dana Ortiz"),
        (
            "QLOG0004",
            "annotate_log_entry",
            12,
            dana,
            {"type": "note", "summary": "Rollback of v3.2.0 started", "content": "Rollback of v3.2.0 started"},
            "Note added",
        ),
        ("QLOG0005", "resolve_log_entry", 40, dana, {"type": "website"}, "Resolved by Dana Ortiz"),
    ]
    return [
        {
            "id": ident,
            "type": kind,
            "summary": summary,
            "self": f"{PD_API}/log_entries/{ident}?incident_id={PD_INCIDENT}",
            "html_url": f"https://acme.pagerduty.com/incidents/{PD_INCIDENT}/log_entries/{ident}",
            "created_at": iso(minute),
            "agent": agent,
            "channel": channel,
            "incident": incident,
            "teams": [_pd_ref("team", "PTEAM001", "payments-sre")],
            "contexts": [],
        }
        for ident, kind, minute, agent, channel, summary in rows
    ]


PD_NOTES = [
    {
        "id": "PNOTE001",
        "user": _pd_ref("user", "PUSR0001", "Dana Ortiz"),
        "channel": {"summary": "The PagerDuty website or APIs"},
        "content": "Rollback of v3.2.0 started",
        "created_at": iso(12),
        "updated_at": iso(12),
    }
]


# A note an incident commander would add: the war room, the ticket, the status page, plus links the sweep must
# not follow (another repository's issue, a channel the bot cannot see, a wiki page).
GONE_CHANNEL = "C0GONE0001"
PD_LINK_NOTE = {
    "id": "PNOTE002",
    "user": _pd_ref("user", "PUSR0001", "Dana Ortiz"),
    "channel": {"summary": "The PagerDuty website or APIs"},
    "content": (
        f"War room: https://acme.slack.com/archives/{CHANNEL} (old room https://acme.slack.com/archives/{GONE_CHANNEL})."
        f" Ticket <https://acme.atlassian.net/browse/{JIRA_KEY_FOR_LINKS}|{JIRA_KEY_FOR_LINKS}>, status page "
        f"https://manage.statuspage.io/pages/pg0acme42/incidents/inc0checkout, runbook fix "
        "https://github.com/acme/runbooks/issues/9, wiki https://acme.atlassian.net/wiki/spaces/SRE/pages/1"
    ),
    "created_at": iso(3),
    "updated_at": iso(3),
}


class FakePagerDuty(FakeVendor):
    name = "pagerduty"

    def __init__(self, token: str, notes: list[dict[str, Any]] | None = None, incident_key: str | None = None) -> None:
        super().__init__(token)
        self.notes = PD_NOTES if notes is None else notes
        self.incident_key = incident_key  # e.g. Alertmanager's sha256 of the group key that triggered it

    def authorized(self, headers: Any) -> bool:
        return bool(headers.get("Authorization") == f"Token token={self.token}")

    def unauthorized(self) -> Answer:
        return 401, {}, {"error": {"message": "Unauthorized", "code": 2006}}

    def _page(self, key: str, items: list[Any], query: dict[str, list[str]]) -> Answer:
        limit = int(self.arg(query, "limit", "25"))
        offset = int(self.arg(query, "offset", "0"))
        chunk = items[offset : offset + limit]
        more = offset + limit < len(items)
        return 200, {}, {key: chunk, "limit": limit, "offset": offset, "more": more, "total": None}

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        if path == "/incidents":
            wanted = query.get("statuses[]", [])
            since = datetime.fromisoformat(self.arg(query, "since").replace("Z", "+00:00"))
            chosen = [
                i
                for i in PD_INCIDENTS
                if (not wanted or i["status"] in wanted)
                and datetime.fromisoformat(i["created_at"].replace("Z", "+00:00")) >= since
            ]
            return self._page("incidents", chosen, query)
        prefix = f"/incidents/{PD_INCIDENT}"
        if path == prefix:
            incident = next(i for i in PD_INCIDENTS if i["id"] == PD_INCIDENT)
            if self.incident_key is not None:
                incident = {**incident, "incident_key": self.incident_key}
            return 200, {}, {"incident": incident}
        if path == f"{prefix}/log_entries":
            return self._page("log_entries", _pd_log_entries(), query)
        if path == f"{prefix}/notes":
            return 200, {}, {"notes": self.notes}
        return _not_found()


# --- Opsgenie --------------------------------------------------------------------------------------------------

OG_ALERT = "8418d193-2dab-4490-b331-8c02cdd196b7"


def _og_alert(ident: str, tiny: int, message: str, created: float, closed: float) -> dict[str, Any]:
    return {
        "id": ident,
        "tinyId": str(tiny),
        "alias": f"alias-{tiny}",
        "message": message,
        "status": "closed",
        "acknowledged": True,
        "isSeen": True,
        "tags": ["checkout-api", "prod"],
        "snoozed": False,
        "count": 1,
        "lastOccurredAt": iso(created),
        "createdAt": iso(created),
        "updatedAt": iso(closed),
        "source": "prometheus",
        "owner": "dana@example.com",
        "priority": "P1",
        "teams": [{"id": "team-1"}],
        "responders": [{"type": "team", "id": "team-1"}],
        "integration": {"id": "int-1", "name": "Prometheus", "type": "Prometheus"},
        "report": {
            "ackTime": 180_000,
            "closeTime": int((closed - created) * 60_000),
            "acknowledgedBy": "dana@example.com",
            "closedBy": "dana@example.com",
        },
        "entity": "checkout-api",
    }


OG_ALERTS = [
    _og_alert(f"0000000{n}-aaaa-bbbb-cccc-000000000000", 100 + n, f"Old alert {n}", -50 + n, -40 + n)
    for n in range(1, 4)
] + [_og_alert(OG_ALERT, 7, "checkout-api 5xx ratio above 5%", 0.5, 41)]

OG_LOGS = [
    {"log": "Alert created via Prometheus", "type": "system", "owner": "System", "createdAt": iso(0.5), "offset": "1"},
    {
        "log": "Alert acknowledged via web",
        "type": "alertRecipient",
        "owner": "dana@example.com",
        "createdAt": iso(3.5),
        "offset": "2",
    },
    {"log": "Added note", "type": "note", "owner": "dana@example.com", "createdAt": iso(15), "offset": "3"},
    {"log": "Alert closed via web", "type": "system", "owner": "dana@example.com", "createdAt": iso(41), "offset": "4"},
]
OG_NOTES = [{"note": "Rolled back to v3.1.9", "owner": "dana@example.com", "createdAt": iso(15), "offset": "1"}]


class FakeOpsgenie(FakeVendor):
    name = "opsgenie"

    def authorized(self, headers: Any) -> bool:
        return bool(headers.get("Authorization") == f"GenieKey {self.token}")

    def unauthorized(self) -> Answer:
        return 401, {}, {"message": "Could not authenticate", "took": 0.0, "requestId": "r-0"}

    def _page(self, path: str, items: list[Any], query: dict[str, list[str]]) -> Answer:
        limit = int(self.arg(query, "limit", "20"))
        offset = int(self.arg(query, "offset", "0"))
        chunk = items[offset : offset + limit]
        paging: dict[str, str] = {"first": f"{self.base_url}{path}?offset=0&limit={limit}"}
        if offset + limit < len(items):
            rest = {k: v[0] for k, v in query.items() if k not in ("offset", "limit")}
            paging["next"] = f"{self.base_url}{path}?{urlencode({**rest, 'offset': offset + limit, 'limit': limit})}"
        return 200, {}, {"data": chunk, "paging": paging, "took": 0.02, "requestId": f"req-{offset}"}

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        if path == "/v2/alerts":
            text = self.arg(query, "query")
            if "status:closed" not in text or "updatedAt>=" not in text:
                return 422, {}, {"message": "query not understood"}
            return self._page(path, OG_ALERTS, query)
        if path == f"/v2/alerts/{OG_ALERT}":
            alert = next(a for a in OG_ALERTS if a["id"] == OG_ALERT)
            return 200, {}, {"data": alert, "took": 0.01, "requestId": "req-alert"}
        if path == f"/v2/alerts/{OG_ALERT}/logs":
            return self._page(path, OG_LOGS, query)
        if path == f"/v2/alerts/{OG_ALERT}/notes":
            return self._page(path, OG_NOTES, query)
        return _not_found()


# --- Jira Cloud ------------------------------------------------------------------------------------------------

JIRA_KEY = "INC-42"
JIRA_ID = "10042"


def _jira_user(account: str, name: str) -> dict[str, Any]:
    return {"accountId": account, "displayName": name, "active": True, "timeZone": "Europe/Berlin"}


def _jira_issue(base: str, ident: str, key: str, summary: str, resolved: float, labels: list[str]) -> dict[str, Any]:
    return {
        "id": ident,
        "self": f"{base}/rest/api/3/issue/{ident}",
        "key": key,
        "fields": {
            "summary": summary,
            "issuetype": {"id": "10001", "name": "Incident"},
            "status": {"name": "Done", "statusCategory": {"key": "done"}},
            "priority": {"name": "Highest"},
            "labels": labels,
            "created": jira_time(1),
            "updated": jira_time(resolved),
            "resolutiondate": jira_time(resolved),
            "resolution": {"name": "Done"},
            "assignee": _jira_user("acc-1", "Dana Ortiz"),
            "reporter": _jira_user("acc-2", "Lee Park"),
            "description": {
                "type": "doc",
                "version": 1,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Checkout 5xx after deploy"}]}],
            },
        },
    }


def _jira_history(ident: str, minute: float, field: str, before: str, after: str) -> dict[str, Any]:
    return {
        "id": ident,
        "author": _jira_user("acc-1", "Dana Ortiz"),
        "created": jira_time(minute),
        "items": [
            {"field": field, "fieldtype": "jira", "from": None, "fromString": before, "to": None, "toString": after}
        ],
    }


JIRA_HISTORIES = [
    _jira_history("20001", 2, "status", "Open", "Investigating"),
    _jira_history("20002", 5, "assignee", "", "Dana Ortiz"),
    _jira_history("20003", 20, "status", "Investigating", "Mitigated"),
    _jira_history("20004", 40, "status", "Mitigated", "Done"),
    _jira_history("20005", 41, "resolution", "", "Done"),
]


def _jira_comment(base: str, ident: str, minute: float, text: str) -> dict[str, Any]:
    return {
        "self": f"{base}/rest/api/3/issue/{JIRA_ID}/comment/{ident}",
        "id": ident,
        "author": _jira_user("acc-2", "Lee Park"),
        "body": {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
        },
        "created": jira_time(minute),
        "updated": jira_time(minute),
    }


class FakeJira(FakeVendor):
    name = "jira"
    email = "sre-bot@example.com"

    def __init__(self, token: str, remote_links: list[dict[str, Any]] | None = None) -> None:
        super().__init__(token)
        self.remote_links = remote_links or []

    def authorized(self, headers: Any) -> bool:
        expected = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        return bool(headers.get("Authorization") == f"Basic {expected}")

    def unauthorized(self) -> Answer:
        return 401, {}, {"errorMessages": ["Client must be authenticated to access this resource."], "errors": {}}

    def issues(self) -> list[dict[str, Any]]:
        base = self.base_url
        return [
            _jira_issue(base, "10040", "INC-40", "Batch disk full", -2900, ["incident"]),
            _jira_issue(base, "10041", "INC-41", "Queue lag", -500, ["incident"]),
            _jira_issue(base, JIRA_ID, JIRA_KEY, "Checkout 5xx after checkout-api v3.2.0 deploy", 41, ["incident"]),
            _jira_issue(base, "10043", "INC-43", "Edge certificate warning", 70, ["incident"]),
            _jira_issue(base, "10044", "INC-44", "Search latency", 120, ["incident"]),
        ]

    def comments(self) -> list[dict[str, Any]]:
        return [
            _jira_comment(self.base_url, "30001", 6, "Customers report failed checkouts since 14:00"),
            _jira_comment(self.base_url, "30002", 21, "Rollback to v3.1.9 done, error rate falling"),
            _jira_comment(self.base_url, "30003", 42, "Postmortem scheduled"),
        ]

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        if path == "/rest/api/3/search/jql" and method == "POST":
            if not isinstance(body, dict) or "resolved >=" not in str(body.get("jql")):
                return 400, {}, {"errorMessages": ["bad jql"]}
            size = int(body.get("maxResults", 50))
            start = int(body.get("nextPageToken") or 0)
            chunk = self.issues()[start : start + size]
            last = start + size >= len(self.issues())
            page: dict[str, Any] = {"issues": chunk, "isLast": last}
            if not last:
                page["nextPageToken"] = str(start + size)
            return 200, {}, page
        if path == f"/rest/api/3/issue/{JIRA_KEY}":
            return 200, {}, next(i for i in self.issues() if i["key"] == JIRA_KEY)
        if path == f"/rest/api/3/issue/{JIRA_KEY}/changelog":
            start, size = int(self.arg(query, "startAt", "0")), int(self.arg(query, "maxResults", "50"))
            chunk = JIRA_HISTORIES[start : start + size]
            last = start + size >= len(JIRA_HISTORIES)
            own = f"{self.base_url}/rest/api/3/issue/{JIRA_KEY}/changelog?startAt={start}&maxResults={size}"
            page = {
                "self": own,
                "maxResults": size,
                "startAt": start,
                "total": len(JIRA_HISTORIES),
                "isLast": last,
                "values": chunk,
            }
            if not last:
                page["nextPage"] = own.replace(f"startAt={start}", f"startAt={start + size}")
            return 200, {}, page
        if path == f"/rest/api/3/issue/{JIRA_KEY}/remotelink":
            return 200, {}, self.remote_links
        if path == f"/rest/api/3/issue/{JIRA_KEY}/comment":
            start, size = int(self.arg(query, "startAt", "0")), int(self.arg(query, "maxResults", "50"))
            every = self.comments()
            return (
                200,
                {},
                {"startAt": start, "maxResults": size, "total": len(every), "comments": every[start : start + size]},
            )
        return 404, {}, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}


def jira_remote_link(url: str, title: str, app: str = "PagerDuty") -> dict[str, Any]:
    """A remote link as Jira Cloud returns it (GET /rest/api/3/issue/{key}/remotelink)."""
    return {
        "id": 10000 + len(url),
        "self": f"https://acme.atlassian.net/rest/api/3/issue/{JIRA_KEY}/remotelink/{10000 + len(url)}",
        "globalId": f"system={url}",
        "application": {"type": app.lower(), "name": app},
        "relationship": "mentioned in",
        "object": {"url": url, "title": title, "icon": {}, "status": {"resolved": True, "icon": {}}},
    }


# --- GitHub ----------------------------------------------------------------------------------------------------

GH_OWNER, GH_REPO, GH_NUMBER = "acme", "ops", 42
GH_WEB = f"https://github.com/{GH_OWNER}/{GH_REPO}"


def _gh_user(login: str, ident: int) -> dict[str, Any]:
    return {"login": login, "id": ident, "type": "User", "site_admin": False}


class FakeGitHub(FakeVendor):
    name = "github"

    def api(self) -> str:
        return f"{self.base_url}/repos/{GH_OWNER}/{GH_REPO}"

    def issue(self, number: int, title: str, closed: float, *, pull: bool = False) -> dict[str, Any]:
        api = self.api()
        body: dict[str, Any] = {
            "url": f"{api}/issues/{number}",
            "repository_url": api,
            "comments_url": f"{api}/issues/{number}/comments",
            "events_url": f"{api}/issues/{number}/events",
            "html_url": f"{GH_WEB}/{'pull' if pull else 'issues'}/{number}",
            "id": 900_000 + number,
            "number": number,
            "title": title,
            "user": _gh_user("lee", 2),
            "labels": [{"id": 1, "name": "incident", "color": "d73a4a"}],
            "state": "closed",
            "locked": False,
            "assignee": _gh_user("dana", 1),
            "assignees": [_gh_user("dana", 1)],
            "comments": 2,
            "created_at": iso(1),
            "updated_at": iso(closed),
            "closed_at": iso(closed),
            "author_association": "MEMBER",
            "body": "Tracking issue for the checkout incident",
        }
        if pull:
            body["pull_request"] = {"url": f"{api}/pulls/{number}", "html_url": f"{GH_WEB}/pull/{number}"}
        return body

    def issues(self) -> list[dict[str, Any]]:
        return [
            self.issue(40, "Batch disk full", -2900),
            self.issue(41, "Revert v3.2.0", 25, pull=True),
            self.issue(GH_NUMBER, "Checkout 5xx after v3.2.0", 42),
            self.issue(43, "Edge cert warning", 70),
            self.issue(39, "Ancient incident", -9000),
        ]

    def timeline(self) -> list[dict[str, Any]]:
        api = self.api()
        dana = _gh_user("dana", 1)
        return [
            {
                "id": 7001,
                "url": f"{api}/issues/events/7001",
                "actor": dana,
                "event": "labeled",
                "label": {"name": "incident", "color": "d73a4a"},
                "created_at": iso(1.5),
            },
            {
                "id": 7002,
                "url": f"{api}/issues/events/7002",
                "actor": dana,
                "event": "assigned",
                "assignee": dana,
                "created_at": iso(2),
            },
            *[dict(c, event="commented", actor=c["user"]) for c in self.comments()],
            {
                "id": 7003,
                "url": f"{api}/issues/events/7003",
                "actor": dana,
                "event": "closed",
                "state_reason": "completed",
                "created_at": iso(42),
            },
        ]

    def comments(self) -> list[dict[str, Any]]:
        api = self.api()
        return [
            {
                "id": 8000 + n,
                "url": f"{api}/issues/comments/{8000 + n}",
                "html_url": f"{GH_WEB}/issues/{GH_NUMBER}#issuecomment-{8000 + n}",
                "issue_url": f"{api}/issues/{GH_NUMBER}",
                "user": _gh_user(login, uid),
                "created_at": iso(minute),
                "updated_at": iso(minute),
                "author_association": "MEMBER",
                "body": text,
            }
            for n, (login, uid, minute, text) in enumerate(
                [
                    ("lee", 2, 7, "The v3.2.0 deploy changed the payments client timeout"),
                    ("dana", 1, 22, "Reverted in #41; error rate is back to normal"),
                    ("sam", 3, 43, "Follow-up: add a canary stage before production"),
                ],
                start=1,
            )
        ]

    def _linked(self, path: str, items: list[Any], query: dict[str, list[str]]) -> Answer:
        size = int(self.arg(query, "per_page", "30"))
        page = int(self.arg(query, "page", "1"))
        chunk = items[(page - 1) * size : page * size]
        headers: dict[str, str] = {}
        if page * size < len(items):
            rest = {k: v[0] for k, v in query.items() if k != "page"}
            headers["Link"] = (
                f'<{self.base_url}{path}?{urlencode({**rest, "page": page + 1})}>; rel="next", '
                f'<{self.base_url}{path}?{urlencode({**rest, "page": 1})}>; rel="first"'
            )
        return 200, headers, chunk

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        base = f"/repos/{GH_OWNER}/{GH_REPO}/issues"
        if path == base:
            since = datetime.fromisoformat(self.arg(query, "since").replace("Z", "+00:00"))
            chosen = [
                i
                for i in self.issues()
                if i["state"] == self.arg(query, "state")
                and datetime.fromisoformat(i["updated_at"].replace("Z", "+00:00")) >= since
                and self.arg(query, "labels") in {label["name"] for label in i["labels"]}
            ]
            return self._linked(path, chosen, query)
        if path == f"{base}/{GH_NUMBER}":
            return 200, {}, next(i for i in self.issues() if i["number"] == GH_NUMBER)
        if path == f"{base}/{GH_NUMBER}/timeline":
            return self._linked(path, self.timeline(), query)
        if path == f"{base}/{GH_NUMBER}/comments":
            return self._linked(path, self.comments(), query)
        return 404, {}, {"message": "Not Found"}


# --- Statuspage ------------------------------------------------------------------------------------------------

SP_PAGE = "pg0acme42"
SP_INCIDENT = "inc0checkout"


def _sp_incident(ident: str, name: str, updates: list[tuple[str, float, str]], resolved: float) -> dict[str, Any]:
    return {
        "id": ident,
        "page_id": SP_PAGE,
        "name": name,
        "status": updates[0][0],
        "impact": "major",
        "created_at": iso(updates[-1][1]),
        "updated_at": iso(updates[0][1]),
        "monitoring_at": next((iso(m) for s, m, _ in updates if s == "monitoring"), None),
        "resolved_at": iso(resolved),
        "shortlink": f"https://stspg.io/{ident}",
        "backfilled": False,
        "scheduled_for": None,
        "incident_updates": [
            {
                "id": f"{ident}-u{n}",
                "incident_id": ident,
                "status": status,
                "body": text,
                "created_at": iso(minute),
                "updated_at": iso(minute),
                "display_at": iso(minute),
                "affected_components": [
                    {"code": "cmp1", "name": "Checkout", "old_status": "operational", "new_status": "major_outage"}
                ],
                "deliver_notifications": True,
            }
            for n, (status, minute, text) in enumerate(updates)
        ],
        "components": [{"id": "cmp1", "name": "Checkout", "status": "operational"}],
    }


def _sp_incidents() -> list[dict[str, Any]]:
    """Newest first, as the API lists them."""
    old = [
        _sp_incident(f"inc0old{n}", f"Old incident {n}", [("resolved", -3000 - n * 100, "Fixed")], -3000 - n * 100)
        for n in range(3)
    ]
    main = _sp_incident(
        SP_INCIDENT,
        "Checkout failures",
        [
            ("resolved", 45, "Checkout is working normally again."),
            ("monitoring", 25, "A fix has been applied and we are monitoring the results."),
            ("investigating", 10, "We are investigating failed checkouts."),
        ],
        45,
    )
    newer = _sp_incident("inc0newer", "Search slowness", [("resolved", 130, "Resolved")], 130)
    return [newer, main, *old]


class FakeStatuspage(FakeVendor):
    name = "statuspage"

    def authorized(self, headers: Any) -> bool:
        return bool(headers.get("Authorization") == f"OAuth {self.token}")

    def unauthorized(self) -> Answer:
        return 401, {}, {"error": "Could not authenticate"}

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        base = f"/v1/pages/{SP_PAGE}/incidents"
        if path == base:
            size, page = int(self.arg(query, "per_page", "100")), int(self.arg(query, "page", "1"))
            return 200, {}, _sp_incidents()[(page - 1) * size : page * size]
        if path == f"{base}/{SP_INCIDENT}":
            return 200, {}, next(i for i in _sp_incidents() if i["id"] == SP_INCIDENT)
        return 404, {}, {"error": "not found"}


# --- fleets: many small incidents, with failing calls ---------------------------------------------------------


def fleet_incident(n: int) -> str:
    return f"PF{n:06d}"


def fleet_channel(n: int) -> str:
    return f"CF{n:07d}"


class FlakyCalls:
    """The first request for each (path, channel) fails with 503 for a seeded ``rate`` of them; listing calls
    never fail (a failed listing only delays a whole source, which other tests cover)."""

    never_fail: frozenset[str] = frozenset()

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.seed = seed
        self.seen: set[tuple[str, str]] = set()
        self.failed: list[tuple[str, str]] = []

    def fails(self, path: str, query: dict[str, list[str]]) -> bool:
        key = (path, query.get("channel", [""])[0])
        if path in self.never_fail or key in self.seen:
            return False
        self.seen.add(key)
        if random.Random(f"{self.seed}:{key}").random() < self.rate:
            self.failed.append(key)
            return True
        return False


class FakePagerDutyFleet(FakePagerDuty):
    """``n`` resolved incidents an hour apart; each note links the incident's own Slack channel."""

    def __init__(self, token: str, n: int, flaky: FlakyCalls) -> None:
        super().__init__(token)
        self.n = n
        self.flaky = flaky
        flaky.never_fail = frozenset({"/incidents"})

    def incident(self, n: int) -> dict[str, Any]:
        doc = _pd_incident(fleet_incident(n), 1000 + n, f"Error burst on svc-{n:03d}", 60 * n, 60 * n + 40)
        doc["service"] = _pd_ref("service", f"PSVC{n:04d}", f"svc-{n:03d}")
        return doc

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        with self.lock:
            failing = self.flaky.fails(path, query)
        if failing:
            return 503, {}, {"error": {"message": "Service Unavailable"}}
        if path == "/incidents":
            since = datetime.fromisoformat(self.arg(query, "since").replace("Z", "+00:00"))
            chosen = [
                i
                for i in map(self.incident, range(self.n))
                if datetime.fromisoformat(i["created_at"].replace("Z", "+00:00")) >= since
            ]
            return self._page("incidents", chosen, query)
        parts = path.strip("/").split("/")
        if len(parts) < 2 or not parts[1].startswith("PF") or not parts[1][2:].isdigit():
            return _not_found()
        n = int(parts[1][2:])
        if n >= self.n:
            return _not_found()
        minute = 60 * n
        dana = _pd_ref("user", "PUSR0001", "Dana Ortiz")
        if len(parts) == 2:
            return 200, {}, {"incident": self.incident(n)}
        if parts[2] == "log_entries":
            ref = {"id": fleet_incident(n), "type": "incident_reference", "summary": self.incident(n)["summary"]}
            rows = [
                ("trigger_log_entry", 0, "Triggered through the API"),
                ("acknowledge_log_entry", 4, "Acknowledged by Dana Ortiz"),
                ("resolve_log_entry", 40, "Resolved by Dana Ortiz"),
            ]
            entries = [
                {
                    "id": f"QF{n:06d}{k}",
                    "type": kind,
                    "summary": text,
                    "created_at": iso(minute + at),
                    "agent": dana,
                    "channel": {"type": "website"},
                    "incident": ref,
                }
                for k, (kind, at, text) in enumerate(rows)
            ]
            return self._page("log_entries", entries, query)
        if parts[2] == "notes":
            note = {
                "id": f"PNF{n:05d}",
                "user": dana,
                "content": f"War room: https://acme.slack.com/archives/{fleet_channel(n)}",
                "created_at": iso(minute + 2),
                "updated_at": iso(minute + 2),
            }
            return 200, {}, {"notes": [note]}
        return _not_found()


class FakeSlackFleet(FakeSlack):
    """The fleet's channels: a short incident conversation in each."""

    def __init__(self, token: str, n: int, flaky: FlakyCalls) -> None:
        super().__init__(token)
        self.n = n
        self.flaky = flaky

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        with self.lock:
            failing = self.flaky.fails(path, query)
        if failing:
            return 503, {}, {"ok": False, "error": "service_unavailable"}
        if path == "/api/conversations.history":
            channel = self.arg(query, "channel")
            if not channel.startswith("CF") or not channel[2:].isdigit() or int(channel[2:]) >= self.n:
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            minute = 60 * int(channel[2:])
            said = [
                (1, "U0AAA0001", "errors spiking, looking"),
                (6, "U0AAA0002", "bad config push, reverting"),
                (20, "U0AAA0002", "reverted, mitigated: errors dropping"),
                (40, "U0AAA0001", "all clear, resolved"),
            ]
            messages = [{"type": "message", "user": u, "text": t, "ts": slack_ts(minute + m)} for m, u, t in said]
            return self._page(messages[::-1], "messages", query, {"has_more": False, "pin_count": 0})
        return super().handle(method, path, query, body)


# --- the server --------------------------------------------------------------------------------------------------


def _handler(fake: FakeVendor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, payload = fake.dispatch(method, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serve(fake: FakeVendor) -> Iterator[str]:
    """Run ``fake`` on 127.0.0.1 (a free port) and yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=lambda: server.serve_forever(poll_interval=0.05), name=f"fake-{fake.name}", daemon=True
    )
    thread.start()
    try:
        yield fake.base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
