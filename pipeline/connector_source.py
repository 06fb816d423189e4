"""A live vendor connector as a sweep source: the incidents it reports closed, snapshotted through its API
into a bundle the parsers read."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import SecretStr, ValidationError

from pipeline.connectors.base import ClosedIncident as VendorIncident
from pipeline.errors import ConfigError
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


def _vendors() -> dict[str, tuple[type[Any], type[Any]]]:
    from pipeline.connectors.github import GitHubConfig, GitHubConnector
    from pipeline.connectors.jira import JiraConfig, JiraConnector
    from pipeline.connectors.opsgenie import OpsgenieConfig, OpsgenieConnector
    from pipeline.connectors.pagerduty import PagerDutyConfig, PagerDutyConnector
    from pipeline.connectors.statuspage import StatuspageConfig, StatuspageConnector

    return {
        "pagerduty": (PagerDutyConfig, PagerDutyConnector),
        "opsgenie": (OpsgenieConfig, OpsgenieConnector),
        "jira": (JiraConfig, JiraConnector),
        "github": (GitHubConfig, GitHubConnector),
        "statuspage": (StatuspageConfig, StatuspageConnector),
    }


def load_sources(path: Path) -> list[ConnectorSource]:
    """Connectors the sweep polls, from a YAML list such as::

        - vendor: pagerduty
          token_env: PAGERDUTY_TOKEN        # the token is read from this environment variable, never the file
        - vendor: github
          token_env: GITHUB_TOKEN
          owner: acme
          repo: incidents

    Other keys are the vendor's connector settings (base_url, page_size, jql, page_id, ...)."""
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read sources file {path}: {exc}") from None
    if not isinstance(entries, list):
        raise ConfigError(f"{path} must be a list of sources")
    vendors = _vendors()
    sources: list[ConnectorSource] = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or entry.get("vendor") not in vendors:
            raise ConfigError(f"{path} entry {n}: vendor must be one of {', '.join(sorted(vendors))}")
        fields = {k: v for k, v in entry.items() if k not in ("vendor", "token_env", "name")}
        token_env = str(entry.get("token_env") or "")
        token = os.environ.get(token_env, "") if token_env else ""
        if not token:
            raise ConfigError(f"{path} entry {n}: set token_env to an environment variable that holds the token")
        config_type, connector_type = vendors[entry["vendor"]]
        try:
            config = config_type(token=SecretStr(token), **fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(f"{path} entry {n}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        sources.append(ConnectorSource(connector_type(config), name=entry.get("name")))
    return sources
