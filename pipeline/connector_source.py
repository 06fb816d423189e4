"""A live vendor connector as a sweep source: the incidents it reports closed, snapshotted through its API
into a bundle the parsers read."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pipeline.connectors.base import ClosedIncident as VendorIncident
from pipeline.sweep import ClosedIncident


class ClosingConnector(Protocol):
    vendor: str

    def closed_since(self, since: datetime) -> list[VendorIncident]: ...

    def snapshot(self, ref: str) -> dict[str, bytes]: ...


class ConnectorSource:
    """Adapts a connector (PagerDuty, Opsgenie, Jira, GitHub, Statuspage) to the sweep's IncidentSource.
    Incident ids are ``<vendor>-<native id>``, so two vendors never collide in the ledger."""

    def __init__(self, connector: ClosingConnector, name: str | None = None) -> None:
        self.connector = connector
        self.name = name or connector.vendor

    def closed_since(self, since: datetime) -> list[ClosedIncident]:
        return [
            ClosedIncident(
                incident_id=f"{self.connector.vendor}-{c.id}", ref=c.id, closed_at=c.closed_at, source=self.name
            )
            for c in self.connector.closed_since(since)
        ]

    def snapshot(self, ref: str) -> dict[str, bytes]:
        return self.connector.snapshot(ref)
