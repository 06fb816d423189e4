"""Slack: workspace exports (folder or zip) and Web API dumps -> MESSAGE / DEPLOY / SYSTEM rows.

Accepted documents (recognised by shape, never by file name):

* export day files: a JSON array of message objects; the channel is the folder the file sits in;
* export directories: ``users.json`` (user objects) and ``channels.json`` / ``groups.json`` / ``dms.json`` /
  ``mpims.json`` (conversation objects), plus the empty ``[]`` files Slack writes when there are none;
* Web API responses: ``conversations.history`` / ``conversations.replies`` (``{"ok": true, "messages"}``),
  ``users.list`` (``{"ok": true, "members"}``), ``conversations.list`` (``{"ok": true, "channels"}``).

Directories are lookups (user id -> display name, channel id <-> name), not records: they produce no rows.

A message's ``native_id`` is ``"<channel>:<ts>"`` where channel is the conversation id when the bundle
lets us know it (channels.json / conversations.list), else its name. The channel of an export day file is
its folder; of an API dump, ``ctx.channel`` or else the file stem. So the parent message that
``conversations.replies`` repeats, or the same message seen in an export and an API dump of one bundle, gets
the same id; an edited version (``edited.ts`` or a ``message_changed`` event) keeps the id and carries a
higher ``revision``. Thread replies get ``thread_id`` = the event id of ``"<channel>:<thread_ts>"``.

Kinds: chat (plain, me_message, thread_broadcast, file shares, bot posts) -> MESSAGE; a bot post announcing a
deploy / config push / flag change reaching production -> DEPLOY (attrs["change"]); every other subtype
(joins, topic/purpose, tombstones, deletions, pins, bot_add ...) -> SYSTEM.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pipeline.errors import ParseError
from pipeline.models import EventKind, EventRow, ParseOutput, Source, event_id
from pipeline.sources.base import (
    MAX_TEXT_CHARS,
    MAX_TS_NS,
    MIN_TS_NS,
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    require_dict,
    require_str,
    slack_ts_to_ns,
)

DocKind = Literal["messages", "users", "channels", "empty", "api_messages", "api_users", "api_channels", "api_ids"]

_SNIFF_WINDOW = 3  # how many leading array elements the sniff looks at (a broken first message is tolerated)
_NAME_CHARS = 200
_RAW_TEXT_KEEP = 280  # the raw Slack markup is kept in attrs only when it is at most this long
_MAX_LIST = 50  # reactions / files / mentions kept per message

# Subtypes that are conversation (a person or bot saying something); every other subtype is SYSTEM.
_MESSAGE_SUBTYPES = frozenset(
    {
        "me_message",
        "thread_broadcast",
        "reply_broadcast",
        "file_share",
        "file_comment",
        "file_mention",
        "bot_message",
        "slackbot_response",
    }
)

# --- change detection in bot messages ------------------------------------------------------------------

_FLAG_WORD = re.compile(r"(?<![\w-])(?:feature[ _-]?)?(?:flags?|toggles?)(?![\w-])", re.IGNORECASE)
_FLAG_ACTION = re.compile(
    r"\b(?:enabled?|disabled?|turned (?:on|off)|toggled|flipped|switched|ramped|set to|"
    r"roll(?:ed|ing) out)\b|\b\d{1,3}\s?%",
    re.IGNORECASE,
)
_CONFIG_WORD = re.compile(r"(?<![\w-])(?:config(?:uration)?s?|configmap|settings?)(?![\w-])", re.IGNORECASE)
_CONFIG_ACTION = re.compile(
    r"\b(?:push(?:ed|ing)?|appl(?:y|ied|ying)|roll(?:ed|ing)? out|rollout|deploy(?:ed|ing)?|"
    r"chang(?:e|ed|ing)|updat(?:e|ed|ing)|reload(?:ed|ing)?)\b",
    re.IGNORECASE,
)
_DEPLOY_WORD = re.compile(
    r"\b(?:deploy(?:ed|ing|ment)?|releas(?:e|ed|ing)|roll(?:ed|ing)\s+(?:out|back)|rollout|rollback|"
    r"shipp(?:ed|ing)|promot(?:ed|ing))\b",
    re.IGNORECASE,
)
_ROLLBACK = re.compile(r"\b(?:roll(?:ed|ing)\s+back|rollback|revert(?:ed|ing)?)\b", re.IGNORECASE)
_PROD = re.compile(r"\b(?:prod|production|prd|live)\b", re.IGNORECASE)
_NON_PROD = re.compile(r"\b(?:staging|stage|stg|dev|development|qa|test(?:ing)?|sandbox|preview|uat)\b", re.IGNORECASE)
_NOT_DONE = re.compile(
    r"\b(?:fail(?:ed|ure|ing|s)?|abort(?:ed)?|cancell?ed|errored|blocked|skipped|dry[- ]run|"
    r"scheduled|awaiting|waiting for|pending approval|needs approval)\b",
    re.IGNORECASE,
)

# Slack markup: <@U123>, <@U123|alice>, <#C123|general>, <!here>, <!subteam^S1|@oncall>, <url|label>, <url>.
_TOKEN = re.compile(r"<([^<>\n]{1,2000})>")


# Every change word above contains one of these (lower-case ASCII). On ASCII text, where IGNORECASE matching is
# plain lower-casing, a text holding none of them cannot announce a change: the regexes need not run.
_CHANGE_STEMS = ("flag", "toggle", "config", "setting", "deploy", "releas", "roll", "shipp", "promot")


def detect_change(text: str) -> str | None:
    """'deploy' / 'config' / 'flag' when a bot's text announces a change reaching production, else None."""
    if not text:
        return None
    if text.isascii():
        lower = text.lower()
        if not any(stem in lower for stem in _CHANGE_STEMS):
            return None
    if _NOT_DONE.search(text):
        return None
    if _NON_PROD.search(text) and not _PROD.search(text):
        return None
    if _FLAG_WORD.search(text) and _FLAG_ACTION.search(text):
        return "flag"
    if _CONFIG_WORD.search(text) and _CONFIG_ACTION.search(text):
        return "config"
    if _DEPLOY_WORD.search(text):
        return "deploy"
    return None


# --- document shapes ------------------------------------------------------------------------------------


def _is_message(item: object) -> bool:
    return (
        isinstance(item, dict)
        and "ts" in item
        and (item.get("type") == "message" or isinstance(item.get("subtype"), str))
    )


def _is_user(item: object) -> bool:
    if not isinstance(item, dict) or "ts" in item or "event" in item or not isinstance(item.get("id"), str):
        return False
    if isinstance(item.get("profile"), dict):
        return True
    return isinstance(item.get("name"), str) and any(
        key in item for key in ("real_name", "is_bot", "team_id", "deleted")
    )


_CHANNEL_MARKERS = (
    "is_channel",
    "is_group",
    "is_im",
    "is_mpim",
    "is_private",
    "is_archived",
    "created",
    "members",
    "name_normalized",
)


def _is_channel(item: object) -> bool:
    if not isinstance(item, dict) or "ts" in item or "event" in item or "profile" in item:
        return False
    if not isinstance(item.get("id"), str):
        return False
    named = isinstance(item.get("name"), str) or isinstance(item.get("members"), list)
    return named and any(key in item for key in _CHANNEL_MARKERS)


def _classify_list(data: list[Any]) -> DocKind | None:
    if not data:
        return "empty"  # dms.json / groups.json / mpims.json of a workspace without any
    if any(_is_message(item) for item in data[:_SNIFF_WINDOW]):
        return "messages"
    if _is_user(data[0]):
        return "users"
    if _is_channel(data[0]):
        return "channels"
    return None


def classify(data: object) -> DocKind | None:
    """Which Slack document this is, looking only at its top level and first elements; None if not Slack."""
    if isinstance(data, list):
        return _classify_list(data)
    if not isinstance(data, dict) or data.get("ok") is not True:
        return None
    messages, members, channels = data.get("messages"), data.get("members"), data.get("channels")
    if isinstance(messages, list):
        return "api_messages"
    if isinstance(members, list):
        if members and isinstance(members[0], str):
            return "api_ids"  # conversations.members: bare user ids
        return "api_users"
    if isinstance(channels, list):
        return "api_channels"
    return None


# --- helpers ----------------------------------------------------------------------------------------------


def _name(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = clean_text(value).strip()
    return text[:_NAME_CHARS] or None


def _user_name(user: Mapping[str, Any]) -> str | None:
    """profile.display_name, then real names, then the handle (users.json, users.list or user_profile)."""
    profile = user.get("profile")
    prof: Mapping[str, Any] = profile if isinstance(profile, dict) else user
    for value in (prof.get("display_name"), prof.get("real_name"), user.get("real_name"), user.get("name")):
        name = _name(value)
        if name:
            return name
    return None


def _ts_key(ns: int) -> str:
    """Canonical Slack ts string ("1736510400.123456") so 1736510400.123456 and "…123456" key alike."""
    return f"{ns // 10**9}.{ns % 10**9 // 1000:06d}"


def _fast_ts(value: object) -> int | None:
    """``slack_ts_to_ns`` for the canonical shape "1736510400.123456" (10 digits, no leading zero, 6-digit
    fraction, in range), whose ``_ts_key`` is the string itself; None for anything else (use the slow path)."""
    if type(value) is str and len(value) == 17 and value[10] == "." and value[0] != "0" and value.isascii():
        whole, frac = value[:10], value[11:]
        if whole.isdigit() and frac.isdigit():
            ns = int(whole) * 1_000_000_000 + int(frac) * 1000
            if MIN_TS_NS <= ns < MAX_TS_NS:
                return ns
    return None


def _fast_name(value: object) -> str | None:
    """``_name`` with a shortcut for short ASCII strings (where ``clean_text`` returns its input)."""
    if type(value) is str and len(value) <= MAX_TEXT_CHARS and value.isascii():
        return value.strip()[:_NAME_CHARS] or None
    return _name(value)


def _path_parts(path: str) -> list[str]:
    member = path.replace("\\", "/").rsplit("!", 1)[-1]
    return [part for part in member.split("/") if part]


def _stem(path: str) -> str:
    parts = _path_parts(path)
    name = parts[-1] if parts else path
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem or "unknown"


def _channel_hint(value: str | None) -> str | None:
    name = _name(value)
    if name is None:
        return None
    return name.lstrip("#") or None


@dataclass
class _Directory:
    """Lookups gathered from every document of the bundle before any message is turned into a row."""

    hints: Mapping[str, str]
    users: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)  # from messages' user_profile, a fallback
    bots: set[str] = field(default_factory=set)
    channel_names: dict[str, str] = field(default_factory=dict)  # id -> name
    channel_ids: dict[str, str] = field(default_factory=dict)  # name -> id
    known_ids: set[str] = field(default_factory=set)

    def user_name(self, uid: str | None) -> str | None:
        if not uid:
            return None
        return self.users.get(uid) or _name(self.hints.get(uid)) or self.profiles.get(uid)

    def add_user(self, entry: object) -> None:
        user = require_dict(entry, "user entry")
        uid = require_str(user, "id", "user id")
        name = _user_name(user)
        if name:
            self.users[uid] = name
        if user.get("is_bot") is True or user.get("is_app_user") is True:
            self.bots.add(uid)

    def add_channel(self, entry: object) -> None:
        channel = require_dict(entry, "channel entry")
        cid = require_str(channel, "id", "channel id")
        self.known_ids.add(cid)
        name = _channel_hint(channel.get("name"))
        if name:
            self.channel_names[cid] = name
            self.channel_ids.setdefault(name, cid)

    def note_profile(self, item: object) -> None:
        if not isinstance(item, dict):
            return
        uid, profile = item.get("user"), item.get("user_profile")
        if isinstance(uid, str) and isinstance(profile, dict) and uid not in self.profiles:
            name = _user_name(profile)
            if name:
                self.profiles[uid] = name

    def channel_key(self, raw: str) -> str:
        """The conversation id when the bundle tells us, else the name as given."""
        if raw in self.known_ids:
            return raw
        return self.channel_ids.get(raw, raw)

    def channel_label(self, key: str) -> str:
        return self.channel_names.get(key, key)

    def render(self, text: str) -> tuple[str, list[str]]:
        """Slack markup to readable text: mentions -> @name, links -> label; also the mentioned names."""
        mentions: list[str] = []

        def replace(match: re.Match[str]) -> str:
            target, _, label = match.group(1).partition("|")
            if target.startswith("@"):
                uid = target[1:]
                name = self.user_name(uid) or label.lstrip("@") or uid
                if name not in mentions:
                    mentions.append(name)
                return f"@{name}"
            if target.startswith("#"):
                cid = target[1:]
                return "#" + (label or self.channel_names.get(cid) or cid)
            if target.startswith("!"):
                if label:
                    return label
                command = target[1:]
                if command.startswith("subteam^"):
                    return "@" + command.split("^", 1)[1]
                return "@" + command.split("^", 1)[0]
            return label or target.removeprefix("mailto:")

        rendered = _TOKEN.sub(replace, text)
        rendered = rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        return rendered, mentions[:_MAX_LIST]


def _file_names(message: Mapping[str, Any]) -> list[str]:
    files = message.get("files")
    names: list[str] = []
    if isinstance(files, list):
        for item in files[:_MAX_LIST]:
            if isinstance(item, dict):
                name = _name(item.get("name")) or _name(item.get("title"))
                if name:
                    names.append(name)
    return names


def _reactions(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    reactions = message.get("reactions")
    out: list[dict[str, Any]] = []
    if isinstance(reactions, list):
        for item in reactions[:_MAX_LIST]:
            if not isinstance(item, dict):
                continue
            name = _name(item.get("name"))
            if not name:
                continue
            count = item.get("count")
            if not isinstance(count, int) or isinstance(count, bool):
                users = item.get("users")
                count = len(users) if isinstance(users, list) else 1
            out.append({"name": name, "count": count})
    return out


def _attachment_text(message: Mapping[str, Any]) -> str:
    """Text of legacy attachments (deploy bots often post only these)."""
    attachments = message.get("attachments")
    parts: list[str] = []
    if isinstance(attachments, list):
        for item in attachments[:5]:
            if not isinstance(item, dict):
                continue
            for key in ("pretext", "title", "text", "fallback"):
                value = clean_text(item.get(key)).strip()
                if value and value not in parts:
                    parts.append(value)
                    if key == "text":
                        break
    return clean_text(" ".join(parts))


def _edited_ns(message: Mapping[str, Any]) -> int | None:
    edited = message.get("edited")
    if not isinstance(edited, dict):
        return None
    try:
        return slack_ts_to_ns(edited.get("ts"))
    except ParseError:
        return 1  # edited at an unknown time: still newer than the unedited copy


def _message_ts(message: Mapping[str, Any], what: str = "message") -> int:
    if "ts" not in message:
        raise ParseError(f"{what} has no ts")
    try:
        return slack_ts_to_ns(message.get("ts"))
    except ParseError as exc:
        raise ParseError(f"{what} has an invalid ts: {exc}") from None


# --- the parser ---------------------------------------------------------------------------------------------

_SLACK = Source.SLACK.value
_MESSAGE = EventKind.MESSAGE.value
_SYSTEM = EventKind.SYSTEM.value
_DEPLOY = EventKind.DEPLOY.value
_new_row = tuple.__new__  # EventRow without its Python-level __new__ (same instance, all 16 fields given)


class SlackParser:
    source: ClassVar[Source] = Source.SLACK

    def sniff(self, doc: SourceDocument) -> bool:
        return classify(doc.data) is not None

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput:
        builder = OutputBuilder(self.source)
        directory = _Directory(hints=ctx.users)
        classified: list[tuple[SourceDocument, DocKind]] = []
        for doc in docs:
            kind = classify(doc.data)
            if kind is None:
                builder.quarantine(
                    file=doc.path,
                    position=doc.where(),
                    reason="not a Slack export file or Web API response",
                    record=doc.data,
                )
            else:
                classified.append((doc, kind))

        # Pass 1: lookups (users, channels, message user_profiles) from every document.
        for doc, kind in classified:
            data = doc.data
            if kind in ("users", "channels"):
                self._directory(builder, directory, doc, kind, data, "")
            elif kind == "api_users":
                self._directory(builder, directory, doc, "users", data["members"], "/members")
            elif kind == "api_channels":
                self._directory(builder, directory, doc, "channels", data["channels"], "/channels")
        for doc, kind in classified:
            items = doc.data if kind == "messages" else doc.data["messages"] if kind == "api_messages" else []
            note_profile = directory.note_profile
            for item in items:
                if isinstance(item, dict) and "user_profile" in item:  # note_profile ignores every other item
                    note_profile(item)

        # Pass 2: messages.
        for doc, kind in classified:
            if kind == "messages":
                channel = self._export_channel(doc, ctx)
                self._messages(builder, directory, doc, doc.data, "", channel)
            elif kind == "api_messages":
                channel = _channel_hint(ctx.channel) or _stem(doc.path)
                self._messages(builder, directory, doc, doc.data["messages"], "/messages", channel)
        return builder.output()

    @staticmethod
    def _export_channel(doc: SourceDocument, ctx: ParseContext) -> str:
        parts = _path_parts(doc.path)
        if len(parts) >= 2:
            folder = _channel_hint(parts[-2])
            if folder:
                return folder
        return _channel_hint(ctx.channel) or _stem(doc.path)

    @staticmethod
    def _directory(
        builder: OutputBuilder,
        directory: _Directory,
        doc: SourceDocument,
        kind: str,
        entries: list[Any],
        pointer: str,
    ) -> None:
        add = directory.add_user if kind == "users" else directory.add_channel
        for index, entry in enumerate(entries):
            with builder.record(doc, f"{pointer}/{index}", entry):
                add(entry)

    def _messages(
        self,
        builder: OutputBuilder,
        directory: _Directory,
        doc: SourceDocument,
        items: list[Any],
        pointer: str,
        channel: str,
    ) -> None:
        # Per-document work done once: the channel key/label; and per user id once: the name and bot flag.
        # (The directory is complete before any message is read, so these never change during the loop.)
        key = directory.channel_key(channel)
        label = directory.channel_label(key)
        prefix = f"{doc.position} " if doc.position else ""
        users: dict[str, tuple[str | None, str | None, bool]] = {}
        append = builder.rows.append
        message = self._message
        for index, item in enumerate(items):
            where = f"{pointer}/{index}"
            # The body of OutputBuilder.record, without a context manager per message.
            try:
                row = message(directory, users, doc.path, prefix + where, item, key, label)
            except ParseError as exc:
                builder.quarantine(file=doc.path, position=doc.where(where), reason=str(exc), record=item)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                reason = f"malformed record ({type(exc).__name__}: {str(exc)[:120]})"
                builder.quarantine(file=doc.path, position=doc.where(where), reason=reason, record=item)
            else:
                append(row)

    def _message(
        self,
        directory: _Directory,
        users: dict[str, tuple[str | None, str | None, bool]],
        file: str,
        position: str,
        item: object,
        key: str,
        label: str,
    ) -> EventRow:
        outer = require_dict(item, "message")
        message = outer
        floor = 0  # minimum revision (a message_changed event supersedes the original)
        if outer.get("subtype") == "message_changed":
            message = require_dict(outer.get("message"), "message_changed.message")
            try:
                floor = _message_ts(outer, "message_changed event")
            except ParseError:
                floor = 1
        # The document decides the channel (a message's own "channel" field is ignored) so that every copy of
        # a message in one bundle keys alike.
        ts_ns = _fast_ts(message.get("ts"))
        if ts_ns is None:
            ts_ns = _message_ts(message)
            ts_key = _ts_key(ts_ns)
        else:
            ts_key = message["ts"]

        subtype_value = message.get("subtype")
        subtype = subtype_value if isinstance(subtype_value, str) and subtype_value else None
        user_value = message.get("user")
        if type(user_value) is str:
            known = users.get(user_value)
            if known is None:
                uid = _fast_name(user_value)
                known = (uid, directory.user_name(uid), uid is not None and uid in directory.bots)
                users[user_value] = known
            user_id, user_name, user_is_bot = known
        else:
            user_id = _name(user_value)
            user_name = directory.user_name(user_id)
            user_is_bot = user_id is not None and user_id in directory.bots
        bot_profile = message.get("bot_profile")
        bot_profile = bot_profile if isinstance(bot_profile, dict) else {}
        bot = subtype == "bot_message" or bool(message.get("bot_id")) or bool(bot_profile) or user_is_bot
        actor = (
            user_name
            or _name(bot_profile.get("name"))
            or _name(message.get("username"))
            or user_id
            or _name(message.get("bot_id"))
        )

        thread_id: str | None = None
        thread_ts = message.get("thread_ts")
        if thread_ts is not None:
            thread_ns = _fast_ts(thread_ts)
            if thread_ns is not None:
                thread_key = thread_ts
            else:
                try:
                    thread_ns = slack_ts_to_ns(thread_ts)
                except ParseError:
                    thread_ns = ts_ns  # an unreadable thread_ts only loses the thread link
                thread_key = _ts_key(thread_ns)
            if thread_ns != ts_ns:
                thread_id = event_id(_SLACK, f"{key}:{thread_key}")

        raw_value = message.get("text")
        if type(raw_value) is str and len(raw_value) <= MAX_TEXT_CHARS and raw_value.isascii():
            raw_text = raw_value  # what clean_text returns for it
        else:
            raw_text = clean_text(raw_value)
        mentions: list[str]
        if "<" in raw_text:  # markup tokens all start with "<"
            text, mentions = directory.render(raw_text)
        else:
            text, mentions = raw_text, []
            if "&" in text:
                text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        text = text.strip()
        files = _file_names(message) if "files" in message else []
        extra = _attachment_text(message) if "attachments" in message else ""
        if not text:
            if files:
                text = "shared file: " + ", ".join(files)
            elif extra:
                text = directory.render(extra)[0]
            elif subtype:
                text = f"[{subtype}]"

        edited_ns = _edited_ns(message) if "edited" in message else None
        revision = max(edited_ns or 0, floor)
        reply_count = message.get("reply_count")
        attrs: dict[str, Any] = {
            "channel": label,
            "user_id": user_id,
            "subtype": subtype,
            "reactions": _reactions(message) if "reactions" in message else [],
            "files": files,
            "edited": edited_ns is not None or floor > 0,
            "reply_count": reply_count if isinstance(reply_count, int) and not isinstance(reply_count, bool) else None,
            "bot": bot,
            "mentions": mentions,
        }
        if raw_text != text and len(raw_text) <= _RAW_TEXT_KEEP:
            attrs["raw_text"] = raw_text

        kind = _MESSAGE if subtype is None or subtype in _MESSAGE_SUBTYPES else _SYSTEM
        if bot and kind == _MESSAGE:
            change = detect_change(f"{text} {directory.render(extra)[0]}" if extra else text)
            if change:
                kind = _DEPLOY
                attrs["change"] = change
                if _ROLLBACK.search(text) or _ROLLBACK.search(extra):
                    attrs["rollback"] = True

        native_id = f"{key}:{ts_key}"
        # OutputBuilder.add, inlined: the same EventRow, built without keyword-argument plumbing.
        return _new_row(
            EventRow,
            (
                event_id(_SLACK, native_id),
                _SLACK,
                native_id,
                ts_ns,
                kind,
                actor,
                text,
                None,  # service
                None,  # severity
                thread_id,
                None,  # url
                file,
                position,
                None,  # signal
                revision,
                attrs,
            ),
        )
