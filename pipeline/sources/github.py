"""GitHub issues through the REST API: the issue, its timeline, its events and its comments.

Accepted documents (recognised by shape, never by file name):

* ``GET /repos/{o}/{r}/issues/{n}`` — one issue object ``{number, title, labels, assignees, state, created_at,
  html_url, repository_url, user, …}``;
* ``GET …/issues/{n}/timeline`` — a list mixing event objects (``event``: subscribed, assigned, labeled,
  closed, cross-referenced, …) with comment objects (``event: "commented"``);
* ``GET …/issues/{n}/events`` — a list of event objects (the repository-wide list carries ``issue`` in each);
* ``GET …/issues/{n}/comments`` — a list of comment objects ``{id, body, user, created_at, updated_at, …}``.

Rows: the issue becomes ``TICKET_CREATED`` (attrs key/title/labels/assignee/due/priority/status/type/reporter;
the newest snapshot wins through ``revision`` = ``updated_at``). Comments become ``COMMENT``; closed/reopened
``STATUS_CHANGE`` (attrs ``{field: "state", from, to}``); labeled/unlabeled ``LABELED``; assigned/unassigned
``ASSIGNED``; every other event ``SYSTEM``.

Native ids: ``<owner/repo>#<n>:created``; ``comment:<id>`` (the same for a comment in the timeline and in the
comments list); ``event:<id>`` (the same for an event in the timeline and in the events list); timeline items
without an id (cross-referenced, committed) get ``timeline:<hash of issue, event, time, actor, source>``.

A list does not say which issue it belongs to. It is derived from the items' own URLs (``issue_url``, an
``html_url`` such as ``…/issues/28#issuecomment-…``, or an embedded ``issue``); failing that, from the one
issue document of the same repository beside it in the bundle (same folder first); failing that, the list is
quarantined with the reason.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pipeline.errors import ParseError
from pipeline.models import EventKind, ParseOutput, Source
from pipeline.sources.base import (
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    require_dict,
)
from pipeline.sources.base import (
    one_line as _one_line,
)
from pipeline.sources.base import (
    optional_ts as _opt_ts,
)
from pipeline.sources.base import (
    required_ts as _ts,
)
from pipeline.sources.base import (
    short_text as _short,
)

__all__ = ["GitHubParser"]

MAX_NAME_CHARS = 256

_API_ISSUE = re.compile(r"/repos/([^/?#\s]+/[^/?#\s]+)/(?:issues|pulls)/(\d+)(?:[/?#]|$)")
_HTML_ISSUE = re.compile(r"^https?://[^/\s]+/([^/?#\s]+/[^/?#\s]+)/(?:issues|pull)/(\d+)(?:[/?#]|$)")
_API_REPO = re.compile(r"/repos/([^/?#\s]+/[^/?#\s]+?)(?:/|$)")
_API_HOST = re.compile(r"^https?://([^/\s]+)(?:/api/v3)?$")

_STATE_EVENTS = {"closed": ("open", "closed"), "reopened": ("closed", "open")}


# --- small helpers ------------------------------------------------------------------------------------------


def _login(value: object, ctx: ParseContext) -> str | None:
    """A GitHub user's login (a manifest hint may map it to a display name); strings pass through."""
    login = _short(value.get("login")) if isinstance(value, dict) else _short(value)
    if login is None:
        return None
    hint = ctx.users.get(login)
    return _short(hint) or login if isinstance(hint, str) else login


def _url(value: object) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return _short(value, 500)
    return None


@dataclass(frozen=True, slots=True)
class _IssueRef:
    repo: str  # owner/name
    number: int
    html_url: str | None = None

    @property
    def key(self) -> str:
        return f"{self.repo}#{self.number}"


def _ref_in_url(value: object) -> _IssueRef | None:
    """The issue an API URL (``/repos/o/r/issues/28``) or a web URL (``github.com/o/r/issues/28#…``) names."""
    if not isinstance(value, str):
        return None
    text = value[:2000]
    match = _HTML_ISSUE.match(text)
    if match:
        repo = clean_text(match.group(1))
        return _IssueRef(repo, int(match.group(2)), _url(text.split("#", 1)[0]))
    match = _API_ISSUE.search(text)
    if match:
        repo, number = clean_text(match.group(1)), int(match.group(2))
        return _IssueRef(repo, number, _web_url(text[: match.start()], repo, number))
    return None


def _web_url(api_prefix: str, repo: str, number: int) -> str | None:
    """The web page of an issue named by an API URL: api.github.com -> github.com, GHE host/api/v3 -> host."""
    host = _API_HOST.match(api_prefix)
    if host is None:
        return None
    web = "https://github.com" if host.group(1) == "api.github.com" else api_prefix[: host.end(1)]
    return f"{web}/{repo}/issues/{number}"


def _repo_in_url(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    match = _API_REPO.search(value[:2000])
    return clean_text(match.group(1)) if match else None


def _issue_ref(issue: Mapping[str, Any]) -> _IssueRef | None:
    """The identity of an issue object: repository from its URLs, number from ``number``."""
    number = issue.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        return None
    html = _url(issue.get("html_url"))
    repo = _repo_in_url(issue.get("repository_url"))
    if repo is None:
        for candidate in (issue.get("url"), html):
            ref = _ref_in_url(candidate)
            if ref is not None:
                repo = ref.repo
                break
    if repo is None:
        return None
    return _IssueRef(repo, number, html)


# --- document shapes ----------------------------------------------------------------------------------------


def _is_issue(data: object) -> bool:
    if not isinstance(data, dict) or "fields" in data or "webhookEvent" in data:
        return False
    number = data.get("number")
    return (
        isinstance(number, int)
        and not isinstance(number, bool)
        and isinstance(data.get("title"), str)
        and "created_at" in data
        and "state" in data
        and (
            isinstance(data.get("repository_url"), str)
            or _ref_in_url(data.get("html_url")) is not None
            or _ref_in_url(data.get("url")) is not None
        )
    )


def _is_slack_like(item: Mapping[str, Any]) -> bool:
    return "ts" in item or item.get("type") == "message"


def _is_event(item: object) -> bool:
    if not isinstance(item, dict) or _is_slack_like(item) or not isinstance(item.get("event"), str):
        return False
    url = item.get("url")
    actor = item.get("actor")
    return (
        (isinstance(url, str) and "/repos/" in url)
        or (isinstance(actor, dict) and "login" in actor)
        or isinstance(item.get("node_id"), str)
    )


def _is_comment(item: object) -> bool:
    if not isinstance(item, dict) or _is_slack_like(item):
        return False
    user = item.get("user")
    if "body" not in item or not isinstance(user, dict) or "login" not in user:
        return False
    html, url, issue_url = item.get("html_url"), item.get("url"), item.get("issue_url")
    return (
        (isinstance(html, str) and ("/issues/" in html or "/pull/" in html))
        or (isinstance(url, str) and "/issues/comments/" in url)
        or isinstance(issue_url, str)
    )


def _shape(data: object) -> str | None:
    if isinstance(data, list):
        if data and (_is_event(data[0]) or _is_comment(data[0])):
            return "items"
        return None
    return "issue" if _is_issue(data) else None


# --- the parser ---------------------------------------------------------------------------------------------


class GitHubParser:
    source: ClassVar[Source] = Source.GITHUB

    def sniff(self, doc: SourceDocument) -> bool:
        return _shape(doc.data) is not None

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput:
        builder = OutputBuilder(self.source)
        shapes = [_shape(doc.data) for doc in docs]
        issues: list[tuple[SourceDocument, _IssueRef]] = []
        for doc, shape in zip(docs, shapes, strict=True):
            if shape == "issue" and (ref := _issue_ref(doc.data)) is not None:
                issues.append((doc, ref))
        for doc, shape in zip(docs, shapes, strict=True):
            run = _Run(builder, doc, ctx)
            if shape == "issue":
                run.issue(doc.data)
            elif shape == "items":
                run.items(doc.data, issues)
            else:
                with builder.record(doc, "", doc.data):
                    raise ParseError("not a GitHub issue, timeline, events or comments document")
        return builder.output()


def _sibling_issue(
    doc: SourceDocument, items: Sequence[Any], issues: Sequence[tuple[SourceDocument, _IssueRef]]
) -> _IssueRef | None:
    """The one issue document of the same repository beside this list: same folder first, then the bundle."""
    repos = {r for item in items[:50] if isinstance(item, dict) and (r := _repo_in_url(item.get("url")))}
    candidates = [(d, ref) for d, ref in issues if not repos or ref.repo in repos]
    folder = posixpath.dirname(doc.path)
    for pool in (
        [ref for d, ref in candidates if posixpath.dirname(d.path) == folder],
        [r for _, r in candidates],
    ):
        unique = set(pool)
        if len(unique) == 1:
            return unique.pop()
        if unique:
            return None  # ambiguous: refuse to guess
    return None


def _item_ref(item: object) -> _IssueRef | None:
    """The issue an item names itself (not the issue it cross-references)."""
    if not isinstance(item, dict):
        return None
    for key in ("html_url", "issue_url"):
        ref = _ref_in_url(item.get(key))
        if ref is not None:
            return ref
    embedded = item.get("issue")
    if isinstance(embedded, dict):
        return _issue_ref(embedded)
    return None


@dataclass(slots=True)
class _Run:
    """Parsing of one document."""

    b: OutputBuilder
    doc: SourceDocument
    ctx: ParseContext

    def issue(self, data: dict[str, Any]) -> None:
        with self.b.record(self.doc, "/", data):
            ref = _issue_ref(data)
            if ref is None:
                raise ParseError("issue has no number or no repository URL")
            ts_ns = _ts(data.get("created_at"), f"issue {ref.key} created_at", self.ctx)
            updated = _opt_ts(data.get("updated_at"), self.ctx)
            raw_labels = data.get("labels")
            labels: list[str] = []
            for label in raw_labels if isinstance(raw_labels, list) else []:
                name = _short(label.get("name") if isinstance(label, dict) else label)
                if name:
                    labels.append(name)
            assignees = data.get("assignees")
            first = assignees[0] if isinstance(assignees, list) and assignees else data.get("assignee")
            title = _short(data.get("title"), 500)
            reporter = _login(data.get("user"), self.ctx)
            attrs: dict[str, Any] = {
                "key": ref.key,
                "title": title,
                "labels": labels,
                "assignee": _login(first, self.ctx),
                "due": None,
                "priority": None,
                "status": _short(data.get("state"), 32),
                "type": "pull_request" if isinstance(data.get("pull_request"), dict) else "issue",
                "reporter": reporter,
            }
            self.b.add(
                native_id=f"{ref.key}:created",
                ts_ns=ts_ns,
                kind=EventKind.TICKET_CREATED,
                text=f"GitHub issue {ref.key} created: {title or '(no title)'}",
                file=self.doc.path,
                position=self.doc.where("/"),
                actor=reporter,
                url=ref.html_url,
                revision=updated if updated is not None and updated > ts_ns else 0,
                attrs=attrs,
            )

    def items(self, items: list[Any], issues: Sequence[tuple[SourceDocument, _IssueRef]]) -> None:
        doc_ref = next((ref for ref in map(_item_ref, items) if ref is not None), None)
        if doc_ref is None and not any(isinstance(i, dict) and isinstance(i.get("issue"), dict) for i in items):
            doc_ref = _sibling_issue(self.doc, items, issues)
            if doc_ref is None:
                with self.b.record(self.doc, "", items[:3]):
                    raise ParseError(
                        "cannot tell which issue this list belongs to: no issue_url/html_url in its items "
                        "and no single issue document of the same repository beside it"
                    )
                return
        for index, item in enumerate(items):
            ptr = f"/{index}"
            with self.b.record(self.doc, ptr, item):
                record = require_dict(item, "timeline item")
                ref = _item_ref(record) if doc_ref is None else doc_ref
                if isinstance(record.get("issue"), dict):  # repository-wide events name their own issue
                    ref = _issue_ref(record["issue"]) or ref
                if ref is None:
                    raise ParseError("cannot tell which issue this item belongs to")
                event = record.get("event")
                if event == "commented" or (event is None and "body" in record):
                    self.comment(ptr, record, ref)
                elif isinstance(event, str) and event:
                    self.event(ptr, record, ref, _short(event, 64) or "event")
                else:
                    raise ParseError("item is neither an event (no 'event') nor a comment (no 'body')")

    def comment(self, ptr: str, record: Mapping[str, Any], ref: _IssueRef) -> None:
        cid = _short(record.get("id"), 64)
        if cid is None:
            raise ParseError("comment has no id")
        ts_ns = _ts(record.get("created_at"), f"comment {cid} created_at", self.ctx)
        updated = _opt_ts(record.get("updated_at"), self.ctx)
        body = clean_text(record.get("body")).strip()
        url = _url(record.get("html_url"))
        if url is None and ref.html_url:
            url = f"{ref.html_url}#issuecomment-{cid}"
        self.b.add(
            native_id=f"comment:{cid}",
            ts_ns=ts_ns,
            kind=EventKind.COMMENT,
            text=f"{ref.key} comment: {body}" if body else f"{ref.key} comment (empty)",
            file=self.doc.path,
            position=self.doc.where(ptr),
            actor=_login(record.get("user"), self.ctx) or _login(record.get("actor"), self.ctx),
            url=url,
            revision=updated if updated is not None and updated > ts_ns else 0,
            attrs={"key": ref.key, "comment_id": cid},
        )

    def event(self, ptr: str, record: Mapping[str, Any], ref: _IssueRef, event: str) -> None:
        raw_time = record.get("created_at") or record.get("submitted_at")
        author = record.get("author")
        if raw_time is None and isinstance(author, dict):  # "committed" items carry git author data
            raw_time = author.get("date")
        if raw_time is None:
            raise ParseError(f"{event} event has no created_at")
        ts_ns = _ts(raw_time, f"{event} event time", self.ctx)
        actor = _login(record.get("actor"), self.ctx) or _login(record.get("user"), self.ctx)
        if actor is None and isinstance(author, dict):
            actor = _short(author.get("name"))
        event_id = _short(record.get("id"), 64)
        if event_id is not None:
            native_id = f"event:{event_id}"
        else:
            source = record.get("source")
            source_issue = source.get("issue") if isinstance(source, dict) else None
            parts = [
                ref.key,
                event,
                str(raw_time),
                actor or "",
                str(source_issue.get("url")) if isinstance(source_issue, dict) else "",
                str(record.get("sha") or record.get("commit_id") or ""),
            ]
            digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "replace"), digest_size=10)
            native_id = f"timeline:{digest.hexdigest()}"
        kind, text, attrs = self._describe(record, ref, event)
        attrs |= {"key": ref.key, "event": event}
        self.b.add(
            native_id=native_id,
            ts_ns=ts_ns,
            kind=kind,
            text=text,
            file=self.doc.path,
            position=self.doc.where(ptr),
            actor=actor,
            url=ref.html_url,
            attrs=attrs,
        )

    def _describe(self, record: Mapping[str, Any], ref: _IssueRef, event: str) -> tuple[str, str, dict[str, Any]]:
        key = ref.key
        if event in _STATE_EVENTS:
            old, new = _STATE_EVENTS[event]
            attrs: dict[str, Any] = {"field": "state", "from": old, "to": new}
            reason = _short(record.get("state_reason"), 64)
            if reason:
                attrs["state_reason"] = reason
            return EventKind.STATUS_CHANGE, f"{key} {event}", attrs
        if event in ("labeled", "unlabeled"):
            label = record.get("label")
            name = _short(label.get("name") if isinstance(label, dict) else label) or "?"
            added, removed = ([name], []) if event == "labeled" else ([], [name])
            attrs = {"field": "labels", "added": added, "removed": removed}
            return EventKind.LABELED, f"{key} {event} {name}", attrs
        if event in ("assigned", "unassigned"):
            who = _login(record.get("assignee"), self.ctx)  # absent in old (2012-era) event payloads
            old_who, new_who = (None, who) if event == "assigned" else (who, None)
            attrs = {"field": "assignee", "from": old_who, "to": new_who}
            text = f"{key} {event}" + (f" {'to' if event == 'assigned' else 'from'} {who}" if who else "")
            return EventKind.ASSIGNED, text, attrs
        return EventKind.SYSTEM, self._system_text(record, key, event), {}

    def _system_text(self, record: Mapping[str, Any], key: str, event: str) -> str:
        words = event.replace("_", " ").replace("-", " ")
        rename = record.get("rename")
        if event == "renamed" and isinstance(rename, dict):
            old = _one_line(clean_text(rename.get("from"))) or "?"
            new = _one_line(clean_text(rename.get("to"))) or "?"
            return f"{key} renamed: {old} → {new}"
        source = record.get("source")
        source_issue = source.get("issue") if isinstance(source, dict) else None
        if event == "cross-referenced" and isinstance(source_issue, dict):
            other = _issue_ref(source_issue)
            title = _one_line(clean_text(source_issue.get("title")))
            where = other.key if other else "another issue"
            return f"{key} cross-referenced from {where}" + (f": {title}" if title else "")
        commit = _short(record.get("commit_id") or record.get("sha"), 64)
        if commit:
            return f"{key} {words} (commit {commit[:12]})"
        milestone = record.get("milestone")
        if isinstance(milestone, dict) and (milestone_title := _short(milestone.get("title"))):
            return f"{key} {words} {milestone_title}"
        return f"{key} {words}"
