"""Slack Web API: one incident channel's history, its threads and the workspace's user names.

Endpoints: ``conversations.history`` and ``conversations.replies`` (cursor pagination through
``response_metadata.next_cursor``), ``users.list`` (same cursors). Slack answers HTTP 200 with ``{"ok": false,
"error": …}`` for most failures: ``invalid_auth``/``not_authed``/``token_revoked``/``account_inactive``/
``missing_scope`` become an authentication ``ConnectorError``, ``ratelimited`` arrives as HTTP 429 with
``Retry-After`` and is retried by the shared client. httpx directly, not slack_sdk: the snapshot must be the raw
response documents (see ``pipeline.connectors.base``).

Snapshot of channel ``C…`` (the files ``pipeline.sources.slack`` reads as Web API dumps):

* ``slack/<channel id>.json`` — ``conversations.history`` with every page's ``messages`` merged into one
  response (``has_more: false``, empty ``next_cursor``); the parser takes the channel from the file stem;
* ``slack/replies/<channel id>.json`` — ``conversations.replies`` of every threaded parent, merged likewise
  (each reply carries its ``thread_ts``, so one document per channel loses nothing);
* ``slack/users.list.json`` — ``users.list``, merged, for display names.

Slack has no notion of a closed incident, so there is no ``closed_since``: other connectors' ``links`` name the
channel to snapshot.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx

from pipeline.connectors.base import ApiClient, Connector, ConnectorConfig, Sleep, dump
from pipeline.errors import ConnectorError

AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
    }
)
# The channel is not there for this token: asking again will not help (see ConnectorError.missing).
MISSING_ERRORS = frozenset({"channel_not_found", "not_in_channel", "thread_not_found"})


class SlackConfig(ConnectorConfig):
    base_url: str = "https://slack.com/api"
    page_size: int = 200


class SlackConnector(Connector):
    vendor = "slack"

    def __init__(
        self, config: SlackConfig, *, transport: httpx.BaseTransport | None = None, sleep: Sleep = time.sleep
    ) -> None:
        headers = {"Authorization": f"Bearer {config.token.get_secret_value()}"}
        super().__init__(ApiClient(self.vendor, config, headers, transport=transport, sleep=sleep))

    def snapshot(self, ref: str, *, oldest: datetime | None = None, latest: datetime | None = None) -> dict[str, bytes]:
        """Files of a bundle for channel ``ref``: history, thread replies and users (raw response shapes)."""
        bounds: dict[str, str] = {}
        if oldest is not None:
            bounds["oldest"] = f"{oldest.timestamp():.6f}"
        if latest is not None:
            bounds["latest"] = f"{latest.timestamp():.6f}"
        history = self._paged("conversations.history", "messages", {"channel": ref, **bounds})
        replies: dict[str, Any] | None = None
        seen: set[str] = set()
        for parent in history["messages"]:
            if not isinstance(parent, dict) or not parent.get("reply_count") or not parent.get("thread_ts"):
                continue
            thread = self._paged("conversations.replies", "messages", {"channel": ref, "ts": str(parent["thread_ts"])})
            if replies is None:
                replies = {**thread, "messages": []}
            # Slack repeats the parent on every page of a thread: keep each ts once.
            replies["messages"].extend(m for m in thread["messages"] if _ts(m) not in seen)
            seen.update(_ts(m) for m in thread["messages"])
        users = self._paged("users.list", "members", {})
        files = {f"slack/{ref}.json": dump(history), "slack/users.list.json": dump(users)}
        if replies is not None:
            files[f"slack/replies/{ref}.json"] = dump(replies)
        return files

    def _paged(self, method: str, key: str, params: dict[str, str]) -> dict[str, Any]:
        """Every page of a cursor-paged method merged into the first page's document."""
        merged: dict[str, Any] | None = None
        cursor = ""
        pages = 0
        while True:
            query: dict[str, str | int] = {**params, "limit": self.client.config.page_size}
            if cursor:
                query["cursor"] = cursor
            page = self.client.get_json(f"/{method}", query)
            self._check(method, page)
            items = page.get(key)
            if not isinstance(items, list):
                raise ConnectorError(f"slack: {method} response has no {key!r} list")
            if merged is None:
                merged = page
            else:
                merged[key].extend(items)
            pages += 1
            meta = page.get("response_metadata")
            cursor = meta.get("next_cursor", "") if isinstance(meta, dict) else ""
            if not cursor:
                break
            self._limit(pages, method)
        merged["has_more"] = False
        if isinstance(merged.get("response_metadata"), dict):
            merged["response_metadata"] = {**merged["response_metadata"], "next_cursor": ""}
        return merged

    @staticmethod
    def _check(method: str, page: object) -> None:
        if not isinstance(page, dict):
            raise ConnectorError(f"slack: {method} answered with a non-object")
        if page.get("ok") is True:
            return
        error = str(page.get("error", "unknown_error"))[:80]
        if error in AUTH_ERRORS:
            raise ConnectorError(f"slack: {method}: authentication refused ({error}); check the Slack token and scopes")
        raise ConnectorError(f"slack: {method} failed: {error}", missing=error in MISSING_ERRORS)


def _ts(message: object) -> str:
    return str(message.get("ts")) if isinstance(message, dict) else ""
