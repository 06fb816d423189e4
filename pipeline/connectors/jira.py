"""Jira Cloud REST API v3: issues resolved since a time (JQL), and one issue with its changelog and comments.

Endpoints: ``POST /rest/api/3/search/jql`` (the current enhanced search; token pagination through
``nextPageToken`` until ``isLast``), ``GET /rest/api/3/issue/{key}``, ``GET /rest/api/3/issue/{key}/changelog`` and
``GET /rest/api/3/issue/{key}/comment`` (``startAt``/``maxResults`` pagination against ``total``/``isLast``) and
``GET /rest/api/3/issue/{key}/remotelink`` (a bare array: the links integrations such as PagerDuty's add to the
ticket, which is where ``pipeline.gather`` finds the incident's other records).
Auth: HTTP Basic with the account e-mail and an API token. httpx directly, not the ``jira`` package: the snapshot
must be the raw response documents (see ``pipeline.connectors.base``).

Snapshot of issue ``KEY-1`` (the shapes ``pipeline.sources.jira`` reads): ``jira/<key>/issue.json``,
``jira/<key>/changelog.json`` (every page's ``values`` merged; ``self`` of the first page kept, since it is what
names the issue), ``jira/<key>/comment.json`` (every page's ``comments`` merged) and ``jira/<key>/remotelink.json``
(links, not events: the bundle loader reads it as metadata).
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
    Sleep,
    dump,
    parse_time,
    require,
)
from pipeline.errors import ConnectorError
from pipeline.models import Source


class JiraConfig(ConnectorConfig):
    base_url: str = Field(description="https://<site>.atlassian.net")
    email: str = Field(min_length=3, description="The account the API token belongs to.")
    jql: str = Field("labels = incident", description="Which issues are incidents; ANDed with the time bound.")
    page_size: int = 50


class JiraConnector(Connector):
    vendor = "jira"

    def __init__(
        self, config: JiraConfig, *, transport: httpx.BaseTransport | None = None, sleep: Sleep = time.sleep
    ) -> None:
        self.config = config
        auth = httpx.BasicAuth(config.email, config.token.get_secret_value())
        super().__init__(ApiClient(self.vendor, config, {}, auth=auth, transport=transport, sleep=sleep))

    def closed_since(self, since: datetime) -> list[ClosedIncident]:
        """Issues matching ``jql`` resolved at or after ``since``, oldest first."""
        # JQL reads dates in the API user's profile time zone: ask from a day earlier, then filter exactly here.
        bound = (since.astimezone(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
        jql = f'({self.config.jql}) AND resolved >= "{bound}" ORDER BY resolved ASC'
        found: list[ClosedIncident] = []
        site = self.config.base_url.rstrip("/")
        for issue in self._search(jql):
            if not isinstance(issue, dict) or not isinstance(issue.get("key"), str):
                continue
            raw_fields = issue.get("fields")
            fields: dict[str, Any] = raw_fields if isinstance(raw_fields, dict) else {}
            closed = parse_time(fields.get("resolutiondate"))
            if closed is None or closed < since:
                continue
            links = {"jira_issue": issue["key"]}
            found.append(
                ClosedIncident(
                    id=issue["key"],
                    source=Source.JIRA,
                    closed_at=closed,
                    title=str(fields.get("summary") or issue["key"]),
                    url=f"{site}/browse/{issue['key']}",
                    links=links,
                )
            )
        return sorted(found, key=lambda c: c.closed_at)

    def _search(self, jql: str) -> list[Any]:
        issues: list[Any] = []
        token: str | None = None
        pages = 0
        fields = ["summary", "status", "resolutiondate", "labels", "created", "updated"]
        while True:
            body: dict[str, Any] = {"jql": jql, "maxResults": self.config.page_size, "fields": fields}
            if token:
                body["nextPageToken"] = token
            page = self.client.post_json("/rest/api/3/search/jql", body)
            issues.extend(require(page, "issues", list, "jira: POST /rest/api/3/search/jql"))
            pages += 1
            token = page.get("nextPageToken")
            if page.get("isLast", True) or not isinstance(token, str) or not token:
                return issues
            self._limit(pages, "search/jql")

    def snapshot(self, ref: str) -> dict[str, bytes]:
        issue = self.client.get_json(f"/rest/api/3/issue/{ref}")
        require(issue, "fields", dict, f"jira: GET /rest/api/3/issue/{ref}")
        changelog = self._start_at_paged(f"/rest/api/3/issue/{ref}/changelog", "values")
        comments = self._start_at_paged(f"/rest/api/3/issue/{ref}/comment", "comments")
        remote_links = self.client.get_json(f"/rest/api/3/issue/{ref}/remotelink")
        if not isinstance(remote_links, list):
            raise ConnectorError(f"jira: GET /rest/api/3/issue/{ref}/remotelink did not answer with a list")
        return {
            f"jira/{ref}/issue.json": dump(issue),
            f"jira/{ref}/changelog.json": dump(changelog),
            f"jira/{ref}/comment.json": dump(comments),
            f"jira/{ref}/remotelink.json": dump(remote_links),
        }

    def _start_at_paged(self, path: str, key: str) -> dict[str, Any]:
        merged: dict[str, Any] | None = None
        start = 0
        pages = 0
        while True:
            page = self.client.get_json(path, {"startAt": start, "maxResults": self.config.page_size})
            items = require(page, key, list, f"jira: GET {path}")
            if merged is None:
                merged = page
            else:
                merged[key].extend(items)
            pages += 1
            start += len(items)
            total = page.get("total")
            done = page.get("isLast") is True or not items or (isinstance(total, int) and start >= total)
            if done:
                break
            self._limit(pages, path)
        count = len(merged[key])
        merged.update({"startAt": 0, "maxResults": count, "total": count})
        if "isLast" in merged:
            merged["isLast"] = True
        merged.pop("nextPage", None)
        return merged
