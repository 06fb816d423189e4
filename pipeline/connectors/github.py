"""GitHub REST API: closed incident issues of a repository, and one issue with its timeline and comments.

Endpoints: ``GET /repos/{o}/{r}/issues?state=closed&since=…&labels=incident`` (``Link: <…>; rel="next"``
pagination), ``GET /repos/{o}/{r}/issues/{n}``, ``…/issues/{n}/timeline`` and ``…/issues/{n}/comments`` (Link
pagination, pages concatenated into one JSON array). Auth ``Authorization: Bearer …`` with the
``application/vnd.github+json`` media type and a pinned ``X-GitHub-Api-Version``. A 403 carrying
``X-RateLimit-Remaining: 0`` or ``Retry-After`` is GitHub's rate limit, not an auth failure: it is retried like a
429. httpx directly, not PyGithub: the snapshot must be the raw response documents (see
``pipeline.connectors.base``).

``since`` filters by *update* time and the list includes pull requests: ``closed_since`` drops pull requests and
issues closed before ``since``.

Snapshot of issue ``n`` (shapes ``pipeline.sources.github`` reads; one folder per issue, which is how the parser
ties the lists to their issue): ``github/<owner>__<repo>/<n>/issue.json``, ``…/timeline.json``,
``…/comments.json``.
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
    iso_z,
    parse_time,
)
from pipeline.errors import ConnectorError
from pipeline.models import Source

API_VERSION = "2022-11-28"


class GitHubConfig(ConnectorConfig):
    base_url: str = "https://api.github.com"
    owner: str = Field(min_length=1)
    repo: str = Field(min_length=1)
    labels: str = Field("incident", description="Comma-separated labels an incident issue carries.")


class _RateLimitAwareTransport(httpx.BaseTransport):
    """Turns GitHub's rate-limit 403 (remaining 0, or a Retry-After) into the 429 the shared client retries."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        limited = response.headers.get("X-RateLimit-Remaining") == "0" or "Retry-After" in response.headers
        if response.status_code == 403 and limited:
            headers = dict(response.headers)
            reset = response.headers.get("X-RateLimit-Reset")
            if "Retry-After" not in response.headers and reset and reset.isdigit():
                headers["Retry-After"] = str(max(0, int(reset) - int(time.time())))
            response.read()
            return httpx.Response(429, headers=headers, content=response.content, request=request)
        return response

    def close(self) -> None:
        self._inner.close()


class GitHubConnector(Connector):
    vendor = "github"

    def __init__(
        self, config: GitHubConfig, *, transport: httpx.BaseTransport | None = None, sleep: Sleep = time.sleep
    ) -> None:
        self.config = config
        headers = {
            "Authorization": f"Bearer {config.token.get_secret_value()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        client = ApiClient(
            self.vendor, config, headers, transport=transport, wrap=_RateLimitAwareTransport, sleep=sleep
        )
        super().__init__(client)

    @property
    def _repo_path(self) -> str:
        return f"/repos/{self.config.owner}/{self.config.repo}"

    def closed_since(self, since: datetime) -> list[ClosedIncident]:
        params: dict[str, str | int] = {
            "state": "closed",
            "since": iso_z(since),
            "labels": self.config.labels,
            "sort": "updated",
            "direction": "asc",
        }
        found: list[ClosedIncident] = []
        for issue in self._link_paged(f"{self._repo_path}/issues", params):
            if not isinstance(issue, dict) or "pull_request" in issue or not isinstance(issue.get("number"), int):
                continue
            closed = parse_time(issue.get("closed_at"))
            if closed is None or closed < since:
                continue
            number = str(issue["number"])
            found.append(
                ClosedIncident(
                    id=number,
                    source=Source.GITHUB,
                    closed_at=closed,
                    title=str(issue.get("title") or number),
                    url=issue.get("html_url") if isinstance(issue.get("html_url"), str) else None,
                    links={"github_issue": f"{self.config.owner}/{self.config.repo}#{number}"},
                )
            )
        return sorted(found, key=lambda c: c.closed_at)

    def snapshot(self, ref: str) -> dict[str, bytes]:
        number = ref.rsplit("#", 1)[-1]
        base = f"{self._repo_path}/issues/{number}"
        issue = self.client.get_json(base)
        if not isinstance(issue, dict) or "number" not in issue:
            raise ConnectorError(f"github: GET {base} answered with no issue object")
        timeline = self._link_paged(f"{base}/timeline", {})
        comments = self._link_paged(f"{base}/comments", {})
        folder = f"github/{self.config.owner}__{self.config.repo}/{number}"
        return {
            f"{folder}/issue.json": dump(issue),
            f"{folder}/timeline.json": dump(timeline),
            f"{folder}/comments.json": dump(comments),
        }

    def _link_paged(self, path: str, params: dict[str, str | int]) -> list[Any]:
        items: list[Any] = []
        url: str | None = path
        query: dict[str, str | int] | None = {**params, "per_page": min(self.config.page_size, 100)}
        pages = 0
        while url:
            response = self.client.request("GET", url, params=query)
            page = self.client.decode(response)
            if not isinstance(page, list):
                raise ConnectorError(f"github: GET {path} answered with no JSON array")
            items.extend(page)
            pages += 1
            following = response.links.get("next", {}).get("url")
            if following:
                self._limit(pages, path)
            url, query = following, None
        return items
