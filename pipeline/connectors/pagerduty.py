"""PagerDuty REST API v2: resolved incidents, and one incident with its log entries and notes.

Endpoints: ``GET /incidents?statuses[]=resolved&since=…&until=…`` and ``GET /incidents/{id}/log_entries`` (offset
pagination: ``limit``/``offset``, continue while ``more`` is true), ``GET /incidents/{id}``,
``GET /incidents/{id}/notes``. Auth header ``Authorization: Token token=…`` and the v2 ``Accept`` media type.
httpx directly, not pdpyras: the snapshot must be the raw response documents (see ``pipeline.connectors.base``).

Snapshot of incident ``P…`` (the REST shapes ``pipeline.sources.pagerduty`` reads):
``pagerduty/<id>/incident.json`` (``{"incident"}``), ``pagerduty/<id>/log_entries.json`` (every page's
``log_entries`` merged, ``more: false``) and ``pagerduty/<id>/notes.json`` (``{"notes"}``).

``since`` on ``/incidents`` filters by creation time, so ``closed_since`` also asks for incidents created up to
``lookback`` earlier and keeps those resolved at or after ``since``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import Field

from pipeline.connectors.base import (
    ApiClient,
    ClosedIncident,
    Connector,
    ConnectorConfig,
    Pairs,
    Sleep,
    dump,
    iso_z,
    parse_time,
    require,
)
from pipeline.models import Source


class PagerDutyConfig(ConnectorConfig):
    base_url: str = "https://api.pagerduty.com"
    lookback: timedelta = Field(timedelta(days=7), description="Incidents created this long before `since` count.")


class PagerDutyConnector(Connector):
    vendor = "pagerduty"

    def __init__(
        self, config: PagerDutyConfig, *, transport: httpx.BaseTransport | None = None, sleep: Sleep = time.sleep
    ) -> None:
        headers = {
            "Authorization": f"Token token={config.token.get_secret_value()}",
            "Accept": "application/vnd.pagerduty+json;version=2",
        }
        self.config = config
        super().__init__(ApiClient(self.vendor, config, headers, transport=transport, sleep=sleep))

    def closed_since(self, since: datetime, until: datetime | None = None) -> list[ClosedIncident]:
        """Incidents resolved at or after ``since``, oldest first."""
        params: Pairs = [
            ("statuses[]", "resolved"),
            ("since", iso_z(since - self.config.lookback)),
            ("until", iso_z(until or datetime.now(UTC))),
            ("sort_by", "created_at:asc"),
        ]
        found: list[ClosedIncident] = []
        for incident in self._offset_paged("/incidents", "incidents", params)["incidents"]:
            if not isinstance(incident, dict) or not isinstance(incident.get("id"), str):
                continue
            closed = parse_time(incident.get("resolved_at")) or parse_time(incident.get("last_status_change_at"))
            if closed is None or closed < since:
                continue
            links = {"pagerduty_incident": incident["id"]}
            service = incident.get("service")
            if isinstance(service, dict) and isinstance(service.get("summary"), str):
                links["service"] = service["summary"]
            found.append(
                ClosedIncident(
                    id=incident["id"],
                    source=Source.PAGERDUTY,
                    closed_at=closed,
                    title=str(incident.get("title") or incident.get("summary") or incident["id"]),
                    url=incident.get("html_url") if isinstance(incident.get("html_url"), str) else None,
                    links=links,
                )
            )
        return sorted(found, key=lambda c: c.closed_at)

    def snapshot(self, ref: str) -> dict[str, bytes]:
        """The incident, all its log entries and its notes, as raw REST response documents."""
        incident = self.client.get_json(f"/incidents/{ref}")
        require(incident, "incident", dict, f"pagerduty: GET /incidents/{ref}")
        entries = self._offset_paged(f"/incidents/{ref}/log_entries", "log_entries", [("is_overview", "false")])
        notes = self.client.get_json(f"/incidents/{ref}/notes")
        require(notes, "notes", list, f"pagerduty: GET /incidents/{ref}/notes")
        return {
            f"pagerduty/{ref}/incident.json": dump(incident),
            f"pagerduty/{ref}/log_entries.json": dump(entries),
            f"pagerduty/{ref}/notes.json": dump(notes),
        }

    def _offset_paged(self, path: str, key: str, params: Pairs) -> dict[str, Any]:
        merged: dict[str, Any] | None = None
        offset = 0
        limit = min(self.client.config.page_size, 100)
        pages = 0
        while True:
            page = self.client.get_json(path, [*params, ("limit", limit), ("offset", offset)])
            items = require(page, key, list, f"pagerduty: GET {path}")
            if merged is None:
                merged = page
            else:
                merged[key].extend(items)
            pages += 1
            if not page.get("more") or not items:
                break
            self._limit(pages, path)
            offset += len(items)
        merged.update({"offset": 0, "limit": len(merged[key]), "more": False})
        return merged
