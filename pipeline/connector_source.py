"""A live vendor connector as a sweep source: the incidents it reports closed, gathered through the connectors
(the incident's record and the records it links to, see ``pipeline.gather``) into a bundle the parsers read."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import SecretStr, ValidationError

from pipeline.alert_groups import AlertGroupSource
from pipeline.connectors.base import ClosedIncident as VendorIncident
from pipeline.connectors.base import refuse_inline_secrets
from pipeline.errors import ConfigError, LimitExceeded
from pipeline.gather import Gatherer, GatherPolicy, Readable, SnapshotConnector
from pipeline.limits import load_yaml
from pipeline.sweep import ClosedIncident


class ClosingConnector(SnapshotConnector, Protocol):
    def closed_since(self, since: datetime) -> list[VendorIncident]: ...


# Order within a sweep (lower first): incidents from tools that link the others are gathered first.
RANKS = {"pagerduty": 0, "opsgenie": 0, "statuspage": 1, "jira": 2, "github": 2}


class ConnectorSource:
    """Adapts a connector (PagerDuty, Opsgenie, Jira, GitHub, Statuspage) to the sweep's IncidentSource.
    Incident ids are ``<vendor>-<native id>``, so two vendors never collide in the ledger. Without a gatherer
    only the incident's own record is snapshotted (still with its incident.yaml)."""

    def __init__(self, connector: ClosingConnector, name: str | None = None, gatherer: Gatherer | None = None) -> None:
        self.connector = connector
        self.name = name or connector.vendor
        self.gatherer = gatherer or Gatherer({connector.vendor: connector}, GatherPolicy(follow_links=False))
        self.rank = RANKS.get(connector.vendor, 3)

    def closed_since(self, since: datetime) -> list[ClosedIncident]:
        return [
            ClosedIncident(
                incident_id=f"{self.connector.vendor}-{c.id}", ref=c.id, closed_at=c.closed_at, source=self.name
            )
            for c in self.connector.closed_since(since)
        ]

    def snapshot(self, incident: ClosedIncident) -> dict[str, bytes]:
        return self.gatherer.gather(
            self.connector.vendor, incident.ref, incident_id=incident.incident_id, closed_at=incident.closed_at
        )


def _vendors() -> dict[str, tuple[type[Any], type[Any]]]:
    from pipeline.connectors.github import GitHubConfig, GitHubConnector
    from pipeline.connectors.jira import JiraConfig, JiraConnector
    from pipeline.connectors.opsgenie import OpsgenieConfig, OpsgenieConnector
    from pipeline.connectors.pagerduty import PagerDutyConfig, PagerDutyConnector
    from pipeline.connectors.slack import SlackConfig, SlackConnector
    from pipeline.connectors.statuspage import StatuspageConfig, StatuspageConnector

    return {
        "pagerduty": (PagerDutyConfig, PagerDutyConnector),
        "opsgenie": (OpsgenieConfig, OpsgenieConnector),
        "jira": (JiraConfig, JiraConnector),
        "github": (GitHubConfig, GitHubConnector),
        "statuspage": (StatuspageConfig, StatuspageConnector),
        "slack": (SlackConfig, SlackConnector),
    }


def load_sources(path: Path, alert_groups: AlertGroupSource | None = None) -> list[ConnectorSource]:
    """Connectors the sweep polls, and how it gathers each incident, from YAML such as::

        sources:
          - vendor: pagerduty
            token_env: PAGERDUTY_TOKEN      # the token is read from this environment variable, never the file
          - vendor: jira
            token_env: JIRA_TOKEN
            base_url: https://acme.atlassian.net
            email: sre-bot@acme.example
          - vendor: slack                   # no closed incidents of its own: read when an incident links a channel
            token_env: SLACK_TOKEN
        gather:                             # optional, see pipeline.gather.GatherPolicy
          hops: 1
          max_linked: 8

    A bare list is the ``sources`` list with the default gathering. ``alert_groups``, when given, lets a paging
    incident gather the Alertmanager episode that triggered it. Other keys of an entry are the vendor's
    connector settings (base_url, page_size, jql, page_id, ...)."""
    try:
        document = load_yaml(path.read_bytes(), what=str(path)) or []
    except (OSError, yaml.YAMLError, UnicodeDecodeError, LimitExceeded) as exc:
        raise ConfigError(f"cannot read sources file {path}: {exc}") from None
    if isinstance(document, dict):
        unknown = set(document) - {"sources", "gather"}
        if unknown:
            raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)} (expected sources, gather)")
        entries, gather = document.get("sources") or [], document.get("gather") or {}
    else:
        entries, gather = document, {}
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: sources must be a list")
    try:
        policy = GatherPolicy.model_validate(gather)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path} gather: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    named = [(entry.get("name") if isinstance(entry, dict) else None, _connector(path, n, entry)) for n, entry in
             enumerate(entries, start=1)]  # fmt: skip
    connectors: dict[str, Readable] = {"alertmanager": alert_groups} if alert_groups is not None else {}
    for _, connector in named:
        connectors.setdefault(connector.vendor, connector)
    gatherer = Gatherer(connectors, policy)
    return [
        ConnectorSource(connector, name=name, gatherer=gatherer)
        for name, connector in named
        if hasattr(connector, "closed_since")
    ]


def _connector(path: Path, n: int, entry: object) -> Any:
    vendors = _vendors()
    if not isinstance(entry, dict) or entry.get("vendor") not in vendors:
        raise ConfigError(f"{path} entry {n}: vendor must be one of {', '.join(sorted(vendors))}")
    refuse_inline_secrets(entry, f"{path} entry {n}")
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
    return connector_type(config)
