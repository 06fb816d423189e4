"""Opsgenie Alert API v2: closed alerts, and one alert with its activity log and notes.

Endpoints: ``GET /v2/alerts?query=status:closed AND updatedAt>=<epoch ms>`` (offset pagination: ``offset``/
``limit``, continue while ``paging.next`` is present), ``GET /v2/alerts/{id}?identifierType=id``,
``GET /v2/alerts/{id}/logs`` and ``GET /v2/alerts/{id}/notes`` (``offset``-token pagination via ``paging.next``).
Auth header ``Authorization: GenieKey …``. httpx directly, not opsgenie-sdk: the snapshot must be the raw
response documents (see ``pipeline.connectors.base``).

Snapshot of alert ``<id>``:

* ``opsgenie/<id>/rest/alert.json``, ``…/logs.json``, ``…/notes.json`` — the raw responses (pages merged). Today's
  ``pipeline.sources.opsgenie`` reads only webhook deliveries, so ``load_bundle`` lists these as unrecognised
  (kept for provenance and for a future REST parser);
* ``opsgenie/<id>/webhooks.json`` — the same facts in the outgoing-webhook shape the parser reads, one delivery
  per action: ``Create`` at ``createdAt``; ``Acknowledge``/``Close`` at ``createdAt + report.ackTime/closeTime``
  by ``report.acknowledgedBy/closedBy``; ``AddNote`` per note. ``integrationName`` says they were derived from
  the REST API, not delivered by Opsgenie.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import httpx

from pipeline.connectors.base import (
    ApiClient,
    ClosedIncident,
    Connector,
    ConnectorConfig,
    Sleep,
    dump,
    parse_time,
    require,
)
from pipeline.errors import ConnectorError
from pipeline.models import Source

DERIVED = "postmortem-pipeline (derived from Opsgenie REST API)"


class OpsgenieConfig(ConnectorConfig):
    base_url: str = "https://api.opsgenie.com"
    query: str = "status:closed"


class OpsgenieConnector(Connector):
    vendor = "opsgenie"

    def __init__(
        self, config: OpsgenieConfig, *, transport: httpx.BaseTransport | None = None, sleep: Sleep = time.sleep
    ) -> None:
        headers = {"Authorization": f"GenieKey {config.token.get_secret_value()}"}
        self.config = config
        super().__init__(ApiClient(self.vendor, config, headers, transport=transport, sleep=sleep))

    def closed_since(self, since: datetime) -> list[ClosedIncident]:
        """Alerts closed at or after ``since`` (their last update), oldest first."""
        query = f"{self.config.query} AND updatedAt>={int(since.timestamp() * 1000)}"
        params: dict[str, str | int] = {"query": query, "sort": "updatedAt", "order": "asc"}
        found: list[ClosedIncident] = []
        for alert in self._paged("/v2/alerts", params)["data"]:
            if not isinstance(alert, dict) or not isinstance(alert.get("id"), str):
                continue
            closed = _closed_at(alert)
            if closed is None or closed < since:
                continue
            links = {"opsgenie_alert": alert["id"]}
            if isinstance(alert.get("alias"), str):
                links["alias"] = alert["alias"]
            found.append(
                ClosedIncident(
                    id=alert["id"],
                    source=Source.OPSGENIE,
                    closed_at=closed,
                    title=str(alert.get("message") or alert["id"]),
                    links=links,
                )
            )
        return sorted(found, key=lambda c: c.closed_at)

    def snapshot(self, ref: str) -> dict[str, bytes]:
        where = f"opsgenie: GET /v2/alerts/{ref}"
        alert_doc = self.client.get_json(f"/v2/alerts/{ref}", {"identifierType": "id"})
        alert = require(alert_doc, "data", dict, where)
        logs = self._paged(f"/v2/alerts/{ref}/logs", {"identifierType": "id", "direction": "next"})
        notes = self._paged(f"/v2/alerts/{ref}/notes", {"identifierType": "id", "direction": "next"})
        return {
            f"opsgenie/{ref}/rest/alert.json": dump(alert_doc),
            f"opsgenie/{ref}/rest/logs.json": dump(logs),
            f"opsgenie/{ref}/rest/notes.json": dump(notes),
            f"opsgenie/{ref}/webhooks.json": dump(as_webhooks(alert, notes["data"])),
        }

    def _paged(self, path: str, params: dict[str, str | int]) -> dict[str, Any]:
        """Follow ``paging.next`` (an absolute URL carrying the next offset) and merge every page's ``data``."""
        merged: dict[str, Any] | None = None
        url: str = path
        query: dict[str, str | int] | None = {**params, "limit": min(self.client.config.page_size, 100)}
        pages = 0
        while True:
            page = self.client.get_json(url, query)
            items = require(page, "data", list, f"opsgenie: GET {path}")
            if merged is None:
                merged = page
            else:
                merged["data"].extend(items)
            pages += 1
            paging = page.get("paging")
            following = paging.get("next") if isinstance(paging, dict) else None
            if not isinstance(following, str) or not following or not items:
                break
            self._limit(pages, path)
            url, query = following, None
        if isinstance(merged.get("paging"), dict):
            merged["paging"] = {k: v for k, v in merged["paging"].items() if k != "next"}
        return merged


def _closed_at(alert: dict[str, Any]) -> datetime | None:
    created = parse_time(alert.get("createdAt"))
    report = alert.get("report")
    if created is not None and isinstance(report, dict) and isinstance(report.get("closeTime"), int):
        return created + timedelta(milliseconds=report["closeTime"])
    if alert.get("status") == "closed":
        return parse_time(alert.get("updatedAt"))
    return None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def as_webhooks(alert: dict[str, Any], notes: list[Any]) -> list[dict[str, Any]]:
    """The alert's lifecycle as outgoing-webhook deliveries (the shape ``pipeline.sources.opsgenie`` reads)."""
    created = parse_time(alert.get("createdAt"))
    if created is None or not isinstance(alert.get("id"), str):
        raise ConnectorError("opsgenie: alert has no id or createdAt")
    base = {
        "alertId": alert["id"],
        "message": alert.get("message", ""),
        "tinyId": str(alert.get("tinyId", "")),
        "alias": alert.get("alias"),
        "tags": alert.get("tags", []),
        "entity": alert.get("entity", ""),
        "priority": alert.get("priority"),
        "source": alert.get("source"),
        "createdAt": _ms(created),
    }
    integration = alert.get("integration")
    source = {"name": integration.get("name", "") if isinstance(integration, dict) else "", "type": "API"}

    def delivery(action: str, at: datetime, user: object, **extra: object) -> dict[str, Any]:
        body = {**base, "updatedAt": _ms(at), **extra}
        if isinstance(user, str) and user:
            body["username"] = user
        return {"action": action, "alert": body, "source": source, "integrationName": DERIVED}

    deliveries = [delivery("Create", created, alert.get("owner") or alert.get("source"))]
    raw_report = alert.get("report")
    report: dict[str, Any] = raw_report if isinstance(raw_report, dict) else {}
    for action, key, who in (("Acknowledge", "ackTime", "acknowledgedBy"), ("Close", "closeTime", "closedBy")):
        if isinstance(report.get(key), int):
            deliveries.append(delivery(action, created + timedelta(milliseconds=report[key]), report.get(who)))
    for note in notes:
        at = parse_time(note.get("createdAt")) if isinstance(note, dict) else None
        if at is not None and isinstance(note, dict):
            deliveries.append(delivery("AddNote", at, note.get("owner"), note=str(note.get("note", ""))))
    deliveries.sort(key=lambda d: int(d["alert"]["updatedAt"]))
    return deliveries
