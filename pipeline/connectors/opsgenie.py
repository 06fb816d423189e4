"""Opsgenie Alert API v2: closed alerts, and one alert with its activity log and notes.

Endpoints: ``GET /v2/alerts?query=status:closed AND updatedAt>=<epoch ms>`` (offset pagination: ``offset``/
``limit``, continue while ``paging.next`` is present), ``GET /v2/alerts/{id}?identifierType=id``,
``GET /v2/alerts/{id}/logs`` and ``GET /v2/alerts/{id}/notes`` (``offset``-token pagination via ``paging.next``).
Auth header ``Authorization: GenieKey …``. httpx directly, not opsgenie-sdk: the snapshot must be the raw
response documents (see ``pipeline.connectors.base``).

Snapshot of alert ``<id>``: ``opsgenie/<id>/alert.json``, ``…/logs.json`` and ``…/notes.json`` — the raw responses
(pages merged, ``paging.next`` dropped). ``pipeline.sources.opsgenie`` reads them as they are; the logs and notes do
not name their alert, so they stay in one folder with the alert response, which is how the parser pairs them.
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
from pipeline.models import Source


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
        require(alert_doc, "data", dict, where)
        logs = self._paged(f"/v2/alerts/{ref}/logs", {"identifierType": "id", "direction": "next"})
        notes = self._paged(f"/v2/alerts/{ref}/notes", {"identifierType": "id", "direction": "next"})
        return {
            f"opsgenie/{ref}/alert.json": dump(alert_doc),
            f"opsgenie/{ref}/logs.json": dump(logs),
            f"opsgenie/{ref}/notes.json": dump(notes),
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
