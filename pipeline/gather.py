"""Gather one incident from every tool it touched into one snapshot.

The sweep learns of a closed incident from one vendor (a resolved PagerDuty incident, a resolved Jira ticket).
The story is spread wider: the war-room Slack channel, the Statuspage incident, the Jira ticket. ``Gatherer``
snapshots the incident's record, reads the URLs in it (``pipeline.links``), snapshots the records they name
through the configured connectors, and returns everything as one bundle with two files of its own:

* ``incident.yaml`` — ``id`` (the sweep's incident id) and ``aliases`` (the gathered records' ids, so the
  ledger maps "Jira INC-42 resolved" onto the PagerDuty incident that already gathered it);
* ``gathered.json`` — what was gathered, through which link, and every link not followed with the reason.

Policy (``GatherPolicy``): links are followed ``hops`` deep (default 1: links in the incident's own record);
links found in chat are never followed (a channel cites last month's incident as often as this one's ticket);
at most ``max_linked`` linked records. A linked record that does not exist for the token (404, Slack
``channel_not_found``) is skipped and noted; any other failure (timeout, 5xx, auth) fails the whole gather, so
the sweep retries the incident rather than drafting it from half its sources. A linked Slack channel is read
from ``slack_lookback`` before to ``slack_lookahead`` after the incident closed.

Deterministic: the same records give the same bytes (no clocks in the files), so unchanged inputs hash the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field

from pipeline.alert_groups import AlertGroupSource
from pipeline.connectors.github import GitHubConnector
from pipeline.connectors.slack import SlackConnector
from pipeline.errors import ConnectorError
from pipeline.ledger import short_error
from pipeline.links import LinkRef, find_links

MANIFEST = "incident.yaml"
REPORT = "gathered.json"


class GatherPolicy(BaseModel):
    """How far the sweep follows links from an incident's record (``gather:`` in sources.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    follow_links: bool = True
    hops: int = Field(1, ge=0, le=3, description="1: follow links in the incident's own record only.")
    max_linked: int = Field(8, ge=0, le=50, description="Linked records gathered per incident at most.")
    never_follow_from: frozenset[str] = Field(
        frozenset({"slack"}), description="Vendors whose links are not followed (chat cites other incidents)."
    )
    slack_lookback: timedelta = timedelta(days=30)
    slack_lookahead: timedelta = timedelta(days=7)
    link_hosts: dict[str, list[str]] = Field(
        default_factory=dict, description="More hosts per vendor: self-hosted Jira, GitHub Enterprise, …"
    )


class SnapshotConnector(Protocol):
    vendor: str

    def snapshot(self, ref: str) -> dict[str, bytes]: ...


Readable = SnapshotConnector | AlertGroupSource  # the landed Alertmanager groups are read like a connector


class Gatherer:
    """Snapshots an incident and the records it links to, with one connector per vendor."""

    def __init__(self, connectors: Mapping[str, Readable], policy: GatherPolicy | None = None) -> None:
        self.connectors = dict(connectors)
        self.policy = policy or GatherPolicy()

    def gather(self, vendor: str, ref: str, *, incident_id: str, closed_at: datetime | None) -> dict[str, bytes]:
        """The incident's bundle files. Raises ConnectorError when the incident's own record, or a linked one
        that exists, cannot be read."""
        policy = self.policy
        primary = LinkRef(vendor, ref)
        files: dict[str, bytes] = {}
        gathered: list[dict[str, Any]] = []
        aliases: set[str] = set()
        skipped: list[dict[str, Any]] = []
        seen = {primary}
        queue: deque[tuple[LinkRef, int, str | None]] = deque([(primary, 0, None)])
        while queue:
            link, depth, via = queue.popleft()
            try:
                alias, part = self._snapshot(link, closed_at)
            except ConnectorError as exc:
                if link == primary or not exc.missing:
                    raise
                skipped.append(_note(link, via, f"not found: {short_error(str(exc))}"))
                continue
            files.update(part)
            gathered.append({**_note(link, via), "files": sorted(part)})
            aliases.add(alias)
            if not policy.follow_links or depth >= policy.hops or link.vendor in policy.never_follow_from:
                continue
            for found in find_links(part, policy.link_hosts):
                target = self._resolve(found)
                if target in seen or found in seen:
                    continue
                seen.update((found, target))
                reason = self._refusal(target, len(gathered) + len(queue) - 1)
                if reason:
                    skipped.append(_note(found, link.incident_id, reason))
                else:
                    queue.append((target, depth + 1, link.incident_id))
        others = sorted(aliases - {incident_id})
        manifest = {"id": incident_id, **({"aliases": others} if others else {})}
        files[MANIFEST] = yaml.safe_dump(manifest, sort_keys=False).encode("utf-8")
        report = {"incident_id": incident_id, "gathered": gathered, "not_followed": skipped}
        files[REPORT] = orjson.dumps(report, option=orjson.OPT_INDENT_2)
        return files

    def _snapshot(self, link: LinkRef, closed_at: datetime | None) -> tuple[str, dict[str, bytes]]:
        """The record's files, and the id the sweep knows it by."""
        connector = self.connectors[link.vendor]
        if isinstance(connector, AlertGroupSource):
            episode = connector.episode_near(link.ref, closed_at)
            if episode is None:
                raise ConnectorError(f"alertmanager: group {link.ref} has not landed here", missing=True)
            return episode.incident_id, connector.episode_files(episode)
        if isinstance(connector, SlackConnector) and closed_at is not None:
            window = {
                "oldest": closed_at - self.policy.slack_lookback,
                "latest": closed_at + self.policy.slack_lookahead,
            }
            return link.incident_id, connector.snapshot(link.ref, **window)
        return link.incident_id, connector.snapshot(link.ref)

    def _resolve(self, link: LinkRef) -> LinkRef:
        """A GitHub link (``owner/repo#n``) in the configured repository becomes that connector's ref (``n``)."""
        connector = self.connectors.get(link.vendor)
        if link.vendor == "github" and isinstance(connector, GitHubConnector):
            repo, _, number = link.ref.rpartition("#")
            config = connector.config
            if repo.lower() == f"{config.owner}/{config.repo}".lower():
                return LinkRef("github", number)
        return link

    def _refusal(self, link: LinkRef, linked_so_far: int) -> str | None:
        if link.vendor not in self.connectors:
            return f"no {link.vendor} connector configured"
        if link.vendor == "github" and "#" in link.ref:
            return "not in the configured GitHub repository"
        if linked_so_far >= self.policy.max_linked:
            return f"more than {self.policy.max_linked} linked records"
        return None


def _note(link: LinkRef, via: str | None, reason: str | None = None) -> dict[str, Any]:
    note: dict[str, Any] = {"vendor": link.vendor, "ref": link.ref, "via": via}
    if reason is not None:
        note["reason"] = reason
    return note
