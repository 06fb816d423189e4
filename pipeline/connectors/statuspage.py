"""Atlassian Statuspage manage API v1: a page's resolved incidents, and one incident with its updates.

Endpoints: ``GET /v1/pages/{page_id}/incidents`` (a bare JSON array; ``page``/``per_page`` pagination, the last
page is shorter than ``per_page``) and ``GET /v1/pages/{page_id}/incidents/{id}``. Auth header
``Authorization: OAuth …``. httpx directly (see ``pipeline.connectors.base``).

Snapshot of incident ``<id>``: ``statuspage/<id>.json`` — the incident object with its ``incident_updates``,
which ``pipeline.sources.statuspage`` reads.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
from pydantic import Field

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

CLOSED = frozenset({"resolved", "completed", "postmortem"})


class StatuspageConfig(ConnectorConfig):
    base_url: str = "https://api.statuspage.io"
    page_id: str = Field(min_length=1)


class StatuspageConnector(Connector):
    vendor = "statuspage"

    def __init__(
        self, config: StatuspageConfig, *, transport: httpx.BaseTransport | None = None, sleep: Sleep = time.sleep
    ) -> None:
        self.config = config
        headers = {"Authorization": f"OAuth {config.token.get_secret_value()}"}
        super().__init__(ApiClient(self.vendor, config, headers, transport=transport, sleep=sleep))

    def closed_since(self, since: datetime) -> list[ClosedIncident]:
        """Incidents resolved at or after ``since`` (the list is newest first: paging stops once a whole page is
        older than ``since``)."""
        path = f"/v1/pages/{self.config.page_id}/incidents"
        per_page = min(self.config.page_size, 100)
        found: list[ClosedIncident] = []
        number = 1
        while True:
            page = self.client.get_json(path, {"page": number, "per_page": per_page})
            if not isinstance(page, list):
                raise ConnectorError(f"statuspage: GET {path} answered with no JSON array")
            recent = False
            for incident in page:
                if not isinstance(incident, dict) or not isinstance(incident.get("id"), str):
                    continue
                updated = parse_time(incident.get("updated_at"))
                recent = recent or (updated is not None and updated >= since)
                closed = parse_time(incident.get("resolved_at"))
                if incident.get("status") not in CLOSED or closed is None or closed < since:
                    continue
                found.append(_closed(incident, closed))
            if len(page) < per_page or not recent:
                break
            self._limit(number, path)
            number += 1
        return sorted(found, key=lambda c: c.closed_at)

    def snapshot(self, ref: str) -> dict[str, bytes]:
        path = f"/v1/pages/{self.config.page_id}/incidents/{ref}"
        incident = self.client.get_json(path)
        require(incident, "incident_updates", list, f"statuspage: GET {path}")
        return {f"statuspage/{ref}.json": dump(incident)}


def _closed(incident: dict[str, Any], closed: datetime) -> ClosedIncident:
    url = incident.get("shortlink")
    return ClosedIncident(
        id=incident["id"],
        source=Source.STATUSPAGE,
        closed_at=closed,
        title=str(incident.get("name") or incident["id"]),
        url=url if isinstance(url, str) else None,
        links={"statuspage_incident": incident["id"]},
    )
