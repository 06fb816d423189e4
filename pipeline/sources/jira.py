"""Jira Cloud: webhooks and REST responses about issues, their changelogs and their comments.

Accepted documents (recognised by shape, never by file name):

* a webhook ``{timestamp, webhookEvent: "jira:issue_updated" | "jira:issue_created" | "comment_created" | …,
  user, issue, changelog?, comment?}``;
* ``GET /rest/api/{2,3}/issue/{key}`` — ``{id, key, self, fields}``, optionally with ``changelog.histories``
  (``?expand=changelog``) and ``fields.comment.comments`` (a plain list in some spec examples);
* ``GET …/issue/{key}/changelog`` — a page ``{self, values: [history, …]}``; only ``self`` names the issue;
* ``GET …/issue/{key}/comment`` — ``{startAt, total, comments: [...]}``; the issue id is only in each
  comment's ``self`` (``…/issue/10010/comment/10000``);
* a JQL search response ``{issues: [...]}``.

Rows: an issue becomes ``TICKET_CREATED`` at ``fields.created`` (attrs key/title/labels/assignee/due/priority/
status/type/reporter; the newest snapshot wins through ``revision`` = ``fields.updated``). Each changelog
history item becomes ``STATUS_CHANGE`` (status, resolution), ``LABELED`` (labels), ``ASSIGNED`` (assignee) or
``SYSTEM`` (any other field), with attrs ``{field, from, to}``. Comments become ``COMMENT``; bodies are wiki
text (v2/webhooks) or Atlassian Document Format (v3), which is flattened to plain text.

Native ids are anchored on the immutable numeric issue id, not on the key (a key changes when an issue moves
project, and the comments endpoint only knows the id): ``<issue id>:created``,
``<issue id>:history:<history id>:<item index>``, ``<issue id>:comment:<comment id>``. A key seen in a
changelog ``self`` URL is mapped to its id through the other Jira documents of the bundle; when no document
names the id, the key itself is the anchor, and when nothing names the issue at all the anchor is
``unknown-issue`` (history and comment ids are unique within a Jira site, so these stay stable).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar

from pipeline.errors import ParseError
from pipeline.models import EventKind, ParseOutput, Source
from pipeline.sources.base import (
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    epoch_to_ns,
    one_line,
    require_dict,
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

__all__ = ["JiraParser", "adf_to_text"]

UNKNOWN_ISSUE = "unknown-issue"
MAX_VALUE_CHARS = 200  # from/to values of a changelog item in attrs and text
MAX_NAME_CHARS = 256
MAX_ADF_NODES = 50_000  # a hostile ADF document cannot make flattening unbounded

_ISSUE_IN_URL = re.compile(r"/rest/api/(?:\d+|latest)/issue/([^/?#]+)")
_COMMENT_URL = re.compile(r"/rest/api/(?:\d+|latest)/issue/[^/?#]+/comment/")
_DIGITS = re.compile(r"^\d+$")
_SEARCH_KEYS = frozenset({"expand", "startAt", "maxResults", "total", "issues", "isLast", "nextPageToken"})

_STATUS_FIELDS = frozenset({"status", "resolution"})
_INLINE_NODES = frozenset({"mention", "emoji", "status", "date", "inlineCard", "blockCard", "embedCard"})
_BLOCK_NODES = frozenset(
    {
        "paragraph",
        "heading",
        "blockquote",
        "codeBlock",
        "listItem",
        "bulletList",
        "orderedList",
        "panel",
        "rule",
        "table",
        "tableRow",
        "mediaGroup",
        "mediaSingle",
        "expand",
        "nestedExpand",
        "decisionItem",
        "taskItem",
    }
)


def _one_line(text: str) -> str:
    return one_line(text, MAX_VALUE_CHARS)


# --- small helpers ------------------------------------------------------------------------------------------


def _id(mapping: Mapping[str, Any], key: str, what: str) -> str:
    value = _short(mapping.get(key), 128)
    if value is None:
        raise ParseError(f"{what} has no {key}")
    return value


def _person(value: object, ctx: ParseContext) -> str | None:
    """A Jira user's name: ``displayName``, then ``name``, then a manifest hint for the account id."""
    if not isinstance(value, dict):
        return None
    name = _short(value.get("displayName")) or _short(value.get("name"))
    if name is None:
        account = value.get("accountId")
        if isinstance(account, str):
            name = _short(ctx.users.get(account))
    return name


def _named(value: object) -> str | None:
    return _short(value.get("name")) if isinstance(value, dict) else None


def adf_to_text(node: object) -> str:
    """Plain text of an Atlassian Document Format tree (blocks on their own lines); strings pass through."""
    if isinstance(node, str):
        return clean_text(node).strip()
    if not isinstance(node, dict | list):
        return ""
    parts: list[str] = []
    stack: list[object] = [node]
    seen = 0
    while stack and seen < MAX_ADF_NODES:
        current = stack.pop()
        seen += 1
        if current is _BREAK:
            parts.append("\n")
            continue
        if isinstance(current, list):
            stack.extend(reversed(current))
            continue
        if not isinstance(current, dict):
            continue
        kind = current.get("type")
        raw_attrs = current.get("attrs")
        attrs = raw_attrs if isinstance(raw_attrs, dict) else {}
        if kind == "text":
            text = current.get("text")
            if isinstance(text, str):
                parts.append(text)
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind in _INLINE_NODES:
            inline = attrs.get("text") or attrs.get("shortName") or attrs.get("url") or attrs.get("timestamp")
            shown = _short(inline, MAX_VALUE_CHARS * 4) if not isinstance(inline, float) else None
            if shown:
                parts.append(shown)
        if kind in _BLOCK_NODES:
            stack.append(_BREAK)  # popped after the block's content
        content = current.get("content")
        if isinstance(content, list):
            stack.extend(reversed(content))
    lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
    return clean_text("\n".join(line for line in lines if line))


_BREAK = object()


def _browse_base(self_url: object) -> str | None:
    """``https://site.atlassian.net`` out of a REST ``self`` URL."""
    if not isinstance(self_url, str) or not self_url.startswith(("https://", "http://")):
        return None
    cut = self_url.find("/rest/api/")
    if cut <= 0:
        return None
    return clean_text(self_url[:cut][:300])


def _issue_ref_in_url(url: object) -> str | None:
    """The issue id or key a REST URL names (``…/issue/TT-1/changelog`` -> ``TT-1``)."""
    if not isinstance(url, str):
        return None
    match = _ISSUE_IN_URL.search(url[:2000])
    return _short(match.group(1), 128) if match else None


# --- document shapes ----------------------------------------------------------------------------------------


def _is_issue(data: object) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("key"), str)
        and isinstance(data.get("fields"), dict)
        and ("id" in data or "self" in data)
        and "webhookEvent" not in data
    )


def _is_history(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("items"), list) and "id" in data


def _is_jira_comment(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    self_url = data.get("self")
    if isinstance(self_url, str) and _COMMENT_URL.search(self_url[:2000]):
        return True
    author = data.get("author")
    return (
        "id" in data
        and "body" in data
        and "created" in data
        and isinstance(author, dict)
        and ("accountId" in author or "displayName" in author)
    )


def _shape(data: object) -> str | None:
    """Which Jira document this is, or None."""
    if not isinstance(data, dict):
        return None
    event = data.get("webhookEvent")
    if isinstance(event, str):
        if isinstance(data.get("issue"), dict) or isinstance(data.get("comment"), dict):
            return "webhook"
        return None
    if _is_issue(data):
        return "issue"
    values = data.get("values")
    if isinstance(values, list):
        self_url = data.get("self")
        if isinstance(self_url, str) and "/changelog" in self_url and _ISSUE_IN_URL.search(self_url[:2000]):
            return "changelog"
        if values and _is_history(values[0]) and "created" in values[0]:
            return "changelog"
        return None
    comments = data.get("comments")
    if isinstance(comments, list):
        if comments:
            return "comments" if _is_jira_comment(comments[0]) else None
        return "comments" if {"startAt", "maxResults", "total"} <= data.keys() else None
    issues = data.get("issues")
    if isinstance(issues, list):
        if issues:
            return "search" if _is_issue(issues[0]) else None
        return "search" if data.keys() <= _SEARCH_KEYS and len(data) > 1 else None
    return None


# --- the bundle-wide view of which issue is which -----------------------------------------------------------


@dataclass(slots=True)
class _IssueInfo:
    anchor: str  # numeric issue id, or the key when no id is known
    key: str | None = None
    service: str | None = None
    base: str | None = None  # https://site.atlassian.net

    @property
    def label(self) -> str:
        if self.key:
            return self.key
        return f"issue {self.anchor}" if self.anchor != UNKNOWN_ISSUE else "Jira issue"

    def browse(self, suffix: str = "") -> str | None:
        if self.base and self.key:
            return f"{self.base}/browse/{self.key}{suffix}"
        return None


def _first_component(fields: Mapping[str, Any]) -> str | None:
    components = fields.get("components")
    if isinstance(components, list) and components:
        return _named(components[0])
    return None


def _embedded_comments(fields: Mapping[str, Any]) -> list[Any]:
    """``fields.comment`` is ``{comments: [...]}`` in real responses and a bare list in some spec examples."""
    comment = fields.get("comment")
    if isinstance(comment, dict):
        comment = comment.get("comments")
    return comment if isinstance(comment, list) else []


@dataclass(slots=True)
class _Directory:
    """Issue ids, keys, components and history/comment ownership gathered from every document first."""

    by_anchor: dict[str, _IssueInfo] = field(default_factory=dict)
    key_to_id: dict[str, str] = field(default_factory=dict)
    history_owner: dict[str, str] = field(default_factory=dict)
    comment_owner: dict[str, str] = field(default_factory=dict)

    def learn(self, issue: object) -> None:
        if not isinstance(issue, dict):
            return
        issue_id = _short(issue.get("id"), 128)
        key = _short(issue.get("key"), 128)
        anchor = issue_id or key
        if anchor is None:
            return
        if issue_id and key:
            self.key_to_id.setdefault(key, issue_id)
        raw_fields = issue.get("fields")
        fields: Mapping[str, Any] = raw_fields if isinstance(raw_fields, dict) else {}
        info = self.by_anchor.setdefault(anchor, _IssueInfo(anchor))
        info.key = info.key or key
        info.service = info.service or _first_component(fields)
        info.base = info.base or _browse_base(issue.get("self"))
        changelog = issue.get("changelog")
        histories = changelog.get("histories") if isinstance(changelog, dict) else None
        for history in histories if isinstance(histories, list) else ():
            hid = _short(history.get("id"), 128) if isinstance(history, dict) else None
            if hid:
                self.history_owner.setdefault(hid, anchor)
        for comment in _embedded_comments(fields):
            if isinstance(comment, dict) and (cid := _short(comment.get("id"), 128)):
                owner = self.anchor_for(_issue_ref_in_url(comment.get("self")), anchor)
                self.comment_owner.setdefault(cid, owner)

    def anchor_for(self, ref: str | None, fallback: str | None = None) -> str:
        """The anchor of an id-or-key reference: digits are ids; keys map to ids when a document told us."""
        if ref is None:
            return fallback or UNKNOWN_ISSUE
        if _DIGITS.match(ref):
            return ref
        return self.key_to_id.get(ref, ref)

    def info(self, anchor: str, *, base: str | None = None) -> _IssueInfo:
        known = self.by_anchor.get(anchor)
        if known is not None:
            return known
        key = None if _DIGITS.match(anchor) or anchor == UNKNOWN_ISSUE else anchor
        return _IssueInfo(anchor, key=key, base=base)


def _issues_in(data: object, shape: str | None) -> Iterator[object]:
    if shape == "issue":
        yield data
    elif shape == "webhook" and isinstance(data, dict):
        yield data.get("issue")
    elif shape == "search" and isinstance(data, dict):
        issues = data.get("issues")
        yield from issues if isinstance(issues, list) else ()


# --- the parser ---------------------------------------------------------------------------------------------


class JiraParser:
    source: ClassVar[Source] = Source.JIRA

    def sniff(self, doc: SourceDocument) -> bool:
        return _shape(doc.data) is not None

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput:
        builder = OutputBuilder(self.source)
        directory = _Directory()
        shapes = [_shape(doc.data) for doc in docs]
        for doc, shape in zip(docs, shapes, strict=True):
            for issue in _issues_in(doc.data, shape):
                directory.learn(issue)
        for doc, shape in zip(docs, shapes, strict=True):
            run = _Run(builder, directory, doc, ctx)
            if shape == "webhook":
                run.webhook(doc.data)
            elif shape == "issue":
                run.issue("", doc.data, partial=False)
            elif shape == "search":
                for index, issue in enumerate(doc.data["issues"]):
                    run.issue(f"/issues/{index}", issue, partial=False)
            elif shape == "changelog":
                run.changelog_page(doc.data)
            elif shape == "comments":
                run.comments_page(doc.data)
            else:
                with builder.record(doc, "", doc.data):
                    raise ParseError(
                        "not a Jira document (webhook, issue, changelog page, comments page or search result)"
                    )
        return builder.output()


@dataclass(slots=True)
class _Run:
    """Parsing of one document."""

    b: OutputBuilder
    directory: _Directory
    doc: SourceDocument
    ctx: ParseContext

    # issues ------------------------------------------------------------------------------------------------

    def issue(
        self,
        ptr: str,
        issue: object,
        *,
        partial: bool,
        history_ts: int | None = None,
        actor: str | None = None,
        webhook: Mapping[str, Any] | None = None,
    ) -> None:
        """The ticket row, the changelog and the embedded comments of one issue object."""
        anchor: str | None = None
        fields: Mapping[str, Any] = {}
        with self.b.record(self.doc, ptr or "/", issue):
            record = require_dict(issue, "issue")
            issue_id = _short(record.get("id"), 128)
            key = _short(record.get("key"), 128)
            if issue_id is None and key is None:
                raise ParseError("issue has neither id nor key")
            anchor = issue_id or key
            raw_fields = record.get("fields")
            if isinstance(raw_fields, dict):
                fields = raw_fields
            # A comment or changelog webhook may carry a trimmed issue: no ticket row then, and no complaint.
            if not partial or "created" in fields:
                fields = require_dict(raw_fields, "issue fields")
                self._ticket(ptr, record, fields, self.directory.info(anchor or UNKNOWN_ISSUE))
        if anchor is None or not isinstance(issue, dict):
            return
        info = self.directory.info(anchor)
        if webhook is not None:
            changelog = webhook.get("changelog")
            where = "/changelog"
            if history_ts is None:
                history_ts = _opt_ts(fields.get("updated"), self.ctx)
        else:
            changelog = issue.get("changelog")
            where = f"{ptr}/changelog"
        if isinstance(changelog, dict) and isinstance(changelog.get("histories"), list):
            for index, history in enumerate(changelog["histories"]):
                self.history(f"{where}/histories/{index}", history, info)
        elif changelog is not None:
            self.history(where, changelog, info, default_ts=history_ts, default_actor=actor)
        inner = "/comments" if isinstance(fields.get("comment"), dict) else ""
        for index, item in enumerate(_embedded_comments(fields)):
            self.comment(f"{ptr}/fields/comment{inner}/{index}", item, container=info)

    def _ticket(self, ptr: str, record: Mapping[str, Any], fields: Mapping[str, Any], info: _IssueInfo) -> None:
        key = _short(record.get("key"), 128)
        if key is None:
            raise ParseError("issue has no key")
        created = fields.get("created")
        if created is None:
            raise ParseError(f"issue {key} has no fields.created")
        ts_ns = _ts(created, f"issue {key} fields.created", self.ctx)
        updated = _opt_ts(fields.get("updated"), self.ctx)
        summary = _short(fields.get("summary"), 500)
        type_name = _named(fields.get("issuetype"))
        raw_labels = fields.get("labels")
        labels = [s for s in (_short(x, 255) for x in raw_labels) if s] if isinstance(raw_labels, list) else []
        due = _short(fields.get("duedate"), 40)
        if due is not None:
            try:
                due = date.fromisoformat(due[:10]).isoformat()
            except ValueError:
                due = None
        reporter = _person(fields.get("reporter"), self.ctx)
        attrs: dict[str, Any] = {
            "key": key,
            "title": summary,
            "labels": labels,
            "assignee": _person(fields.get("assignee"), self.ctx),
            "due": due,
            "priority": _named(fields.get("priority")),
            "status": _named(fields.get("status")),
            "type": type_name,
            "reporter": reporter,
        }
        base = _browse_base(record.get("self"))
        self.b.add(
            native_id=f"{info.anchor}:created",
            ts_ns=ts_ns,
            kind=EventKind.TICKET_CREATED,
            text=f"{type_name or 'Ticket'} {key} created: {summary or '(no summary)'}",
            file=self.doc.path,
            position=self.doc.where(ptr),
            actor=reporter or _person(fields.get("creator"), self.ctx),
            service=_first_component(fields),
            url=f"{base}/browse/{key}" if base else None,
            revision=updated if updated is not None and updated > ts_ns else 0,
            attrs=attrs,
        )

    # webhook -----------------------------------------------------------------------------------------------

    def webhook(self, data: dict[str, Any]) -> None:
        event = _short(data.get("webhookEvent"), 64) or "?"
        actor = _person(data.get("user"), self.ctx)
        stamp: int | None = None
        if data.get("timestamp") is not None:
            try:
                stamp = epoch_to_ns(data.get("timestamp"))
            except (ParseError, OverflowError):
                stamp = None  # histories fall back to fields.updated; a row that needs it says so
        issue = data.get("issue")
        issue_info: _IssueInfo | None = None
        if isinstance(issue, dict):
            partial = "changelog" in data or "comment" in data
            self.issue("/issue", issue, partial=partial, history_ts=stamp, actor=actor, webhook=data)
            ref = _short(issue.get("id"), 128) or _short(issue.get("key"), 128)
            if ref is not None:
                issue_info = self.directory.info(self.directory.anchor_for(ref))
        elif "changelog" in data:
            with self.b.record(self.doc, "/changelog", data.get("changelog")):
                raise ParseError("webhook changelog without an issue object")
        comment = data.get("comment")
        if comment is not None:
            if event == "comment_deleted":
                self.deleted_comment(comment, issue_info, stamp, actor)
            else:
                self.comment("/comment", comment, container=issue_info)
        if event == "jira:issue_deleted" and issue_info is not None:
            with self.b.record(self.doc, "/", data):
                if stamp is None:
                    raise ParseError("issue_deleted webhook has no timestamp")
                self.b.add(
                    native_id=f"{issue_info.anchor}:deleted",
                    ts_ns=stamp,
                    kind=EventKind.SYSTEM,
                    text=f"{issue_info.label} deleted",
                    file=self.doc.path,
                    position=self.doc.where("/"),
                    actor=actor,
                    service=issue_info.service,
                    attrs={"key": issue_info.key, "event": event},
                )

    def deleted_comment(
        self, comment: object, container: _IssueInfo | None, stamp: int | None, actor: str | None
    ) -> None:
        with self.b.record(self.doc, "/comment", comment):
            record = require_dict(comment, "comment")
            cid = _id(record, "id", "comment")
            info = self._comment_issue(record, cid, container)
            if stamp is None:
                raise ParseError("comment_deleted webhook has no timestamp")
            self.b.add(
                native_id=f"{info.anchor}:comment:{cid}:deleted",
                ts_ns=stamp,
                kind=EventKind.SYSTEM,
                text=f"{info.label} comment {cid} deleted",
                file=self.doc.path,
                position=self.doc.where("/comment"),
                actor=actor,
                service=info.service,
                attrs={"key": info.key, "comment_id": cid},
            )

    # changelog ---------------------------------------------------------------------------------------------

    def changelog_page(self, data: dict[str, Any]) -> None:
        ref = _issue_ref_in_url(data.get("self"))
        base = _browse_base(data.get("self"))
        values = data.get("values")
        for index, history in enumerate(values if isinstance(values, list) else []):
            hid = _short(history.get("id"), 128) if isinstance(history, dict) else None
            owner = self.directory.history_owner.get(hid) if hid else None
            anchor = self.directory.anchor_for(ref, owner)
            self.history(f"/values/{index}", history, self.directory.info(anchor, base=base))

    def history(
        self,
        ptr: str,
        history: object,
        info: _IssueInfo,
        *,
        default_ts: int | None = None,
        default_actor: str | None = None,
    ) -> None:
        with self.b.record(self.doc, ptr, history):
            record = require_dict(history, "changelog history")
            hid = _id(record, "id", "changelog history")
            created = record.get("created")
            if created is not None:
                ts_ns = _ts(created, f"history {hid} created", self.ctx)
            elif default_ts is not None:
                ts_ns = default_ts
            else:
                raise ParseError(f"history {hid} has no created time")
            items = record.get("items")
            if not isinstance(items, list):
                raise ParseError(f"history {hid} has no items list")
            if not items:
                raise ParseError(f"history {hid} has no items")
            actor = _person(record.get("author"), self.ctx) or default_actor
            for index, item in enumerate(items):
                with self.b.record(self.doc, f"{ptr}/items/{index}", item):
                    self._item(ptr, index, require_dict(item, "changelog item"), hid, ts_ns, actor, info)

    def _item(
        self,
        ptr: str,
        index: int,
        item: Mapping[str, Any],
        hid: str,
        ts_ns: int,
        actor: str | None,
        info: _IssueInfo,
    ) -> None:
        name = _short(item.get("field"), 128)
        if name is None:
            raise ParseError(f"history {hid} item {index} has no field")
        old = _short(item.get("fromString"), MAX_VALUE_CHARS * 4) or _short(item.get("from"), MAX_VALUE_CHARS)
        new = _short(item.get("toString"), MAX_VALUE_CHARS * 4) or _short(item.get("to"), MAX_VALUE_CHARS)
        old = _one_line(old) if old else None
        new = _one_line(new) if new else None
        lowered = name.lower()
        attrs: dict[str, Any] = {"field": name, "from": old, "to": new}
        label = info.label
        if lowered in _STATUS_FIELDS:
            kind = EventKind.STATUS_CHANGE
            text = f"{label} {lowered}: {old or '(none)'} → {new or '(none)'}"
        elif lowered == "labels":
            kind = EventKind.LABELED
            before, after = (old or "").split(), (new or "").split()
            added = [x for x in after if x not in before]
            removed = [x for x in before if x not in after]
            attrs |= {"added": added, "removed": removed}
            changes = " ".join([f"+{x}" for x in added] + [f"-{x}" for x in removed])
            text = f"{label} labels: {changes or new or '(none)'}"
        elif lowered == "assignee":
            kind = EventKind.ASSIGNED
            text = f"{label} assigned to {new}" if new else f"{label} unassigned (was {old or 'nobody'})"
        else:
            kind = EventKind.SYSTEM
            text = f"{label} {name}: {old or '(none)'} → {new or '(none)'}"
        self.b.add(
            native_id=f"{info.anchor}:history:{hid}:{index}",
            ts_ns=ts_ns,
            kind=kind,
            text=text,
            file=self.doc.path,
            position=self.doc.where(f"{ptr}/items/{index}"),
            actor=actor,
            service=info.service,
            url=info.browse(),
            attrs=attrs,
        )

    # comments ----------------------------------------------------------------------------------------------

    def comments_page(self, data: dict[str, Any]) -> None:
        raw = data.get("comments")
        comments: list[Any] = raw if isinstance(raw, list) else []
        # Every comment of one page belongs to the same issue: any comment's self URL names it.
        refs = (_issue_ref_in_url(c.get("self")) for c in comments if isinstance(c, dict))
        page_ref = next((ref for ref in refs if ref), None)
        page_info = self.directory.info(self.directory.anchor_for(page_ref)) if page_ref else None
        for index, comment in enumerate(comments):
            self.comment(f"/comments/{index}", comment, container=page_info)

    def _comment_issue(self, record: Mapping[str, Any], cid: str, container: _IssueInfo | None) -> _IssueInfo:
        """The issue of a comment: its own ``self`` URL (every format carries it), then its container."""
        ref = _issue_ref_in_url(record.get("self"))
        if ref is not None:
            anchor = self.directory.anchor_for(ref)
        elif container is not None:
            anchor = container.anchor
        else:
            anchor = self.directory.comment_owner.get(cid, UNKNOWN_ISSUE)
        info = self.directory.info(anchor, base=_browse_base(record.get("self")))
        if container is not None and info.key is None:
            return _IssueInfo(anchor, key=container.key, service=container.service, base=container.base)
        return info

    def comment(self, ptr: str, comment: object, *, container: _IssueInfo | None) -> None:
        with self.b.record(self.doc, ptr, comment):
            record = require_dict(comment, "comment")
            cid = _id(record, "id", "comment")
            created = record.get("created")
            if created is None:
                raise ParseError(f"comment {cid} has no created time")
            ts_ns = _ts(created, f"comment {cid} created", self.ctx)
            updated = _opt_ts(record.get("updated"), self.ctx)
            body = adf_to_text(record.get("body"))
            info = self._comment_issue(record, cid, container)
            self.b.add(
                native_id=f"{info.anchor}:comment:{cid}",
                ts_ns=ts_ns,
                kind=EventKind.COMMENT,
                text=f"{info.label} comment: {body}" if body else f"{info.label} comment (empty)",
                file=self.doc.path,
                position=self.doc.where(ptr),
                actor=_person(record.get("author"), self.ctx),
                service=info.service,
                url=info.browse(f"?focusedCommentId={cid}"),
                revision=updated if updated is not None and updated > ts_ns else 0,
                attrs={"key": info.key, "comment_id": cid},
            )
