"""Live connectors to the vendors' real APIs. Each offers ``snapshot(ref) -> {relative path: bytes}`` (raw
response documents that, written into a directory, make a bundle ``pipeline.bundle.load_bundle`` recognises)
and, where the vendor has closed incidents, ``closed_since(since) -> list[ClosedIncident]``.

Nothing here runs at import time; no network without a call.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pipeline.connectors.base import ClosedIncident, Connector, ConnectorConfig
from pipeline.connectors.github import GitHubConfig, GitHubConnector
from pipeline.connectors.jira import JiraConfig, JiraConnector
from pipeline.connectors.opsgenie import OpsgenieConfig, OpsgenieConnector
from pipeline.connectors.pagerduty import PagerDutyConfig, PagerDutyConnector
from pipeline.connectors.slack import SlackConfig, SlackConnector
from pipeline.connectors.statuspage import StatuspageConfig, StatuspageConnector
from pipeline.errors import ConnectorError

__all__ = [
    "ClosedIncident",
    "Connector",
    "ConnectorConfig",
    "GitHubConfig",
    "GitHubConnector",
    "JiraConfig",
    "JiraConnector",
    "OpsgenieConfig",
    "OpsgenieConnector",
    "PagerDutyConfig",
    "PagerDutyConnector",
    "SlackConfig",
    "SlackConnector",
    "StatuspageConfig",
    "StatuspageConnector",
    "write_snapshot",
]


def write_snapshot(files: dict[str, bytes], directory: Path) -> list[Path]:
    """Write a snapshot's files under ``directory`` (created); refuse paths that would leave it."""
    root = directory.resolve()
    written: list[Path] = []
    for name, raw in sorted(files.items()):
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ConnectorError(f"snapshot path {name!r} is not a plain relative path")
        target = root.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw)
        written.append(target)
    return written
