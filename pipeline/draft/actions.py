"""Action items people stated: in chat ("action item:", "follow-up:", "TODO", "we should …") and as tickets
labelled as follow-ups. Owner is the assignee or the person mentioned; due is kept when a date is stated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from pipeline.models import ActionItem, ActionType, Event, EventKind

_STATED = re.compile(
    r"(?:^|\n|\.\s)\s*(?:\*|-|•)?\s*(?:(?:action[ -]?items?|follow[ -]?ups?|to-do|ai)\s*[:\-–]|todo\b\s*[:\-–]?)\s*(?P<what>.+)",
    re.IGNORECASE,
)
_WE_SHOULD = re.compile(
    r"\bwe (?:should|need to|must|ought to)\s+(?!have\b|'ve\b)(?P<what>[^.?!\n]{8,})", re.IGNORECASE
)
# A mention starts a word: the "@" of an e-mail address or of a URL's credentials (`user:pw@host`, or
# `[URL_PASSWORD_1]@host` once redacted) is not one, and must survive (dropping it hides the value from the
# redactor and makes "host" an owner).
_MENTION = re.compile(r"(?<![\w.%+\-:/\]])@(?P<name>[A-Za-z][\w.\-]*(?:\s[A-Z][a-z]+)?)")
_OWNER_WILL = re.compile(r"^(?P<name>[A-Z][a-z]+)\s+(?:will|to)\s+", re.UNICODE)
# The owner named at the start of a stated item: "@dana.o: …", "@dana to …", "Dana will …" (not kept in the text).
_LEADING_OWNER = re.compile(
    r"^(?:@[A-Za-z][\w.\-]*(?:\s[A-Z][a-z]+)?\s*[:,\-–]?\s*(?:(?:will|to|should)\s+)?|[A-Z][a-z]+\s+(?:will|to)\s+)"
)
_DUE = re.compile(r"\b(?:by|before|due)\s+(?P<date>\d{4}-\d{2}-\d{2})\b", re.IGNORECASE)
_FOLLOW_UP_LABELS = re.compile(r"follow[-_ ]?up|postmortem|post-mortem|action[-_ ]?item|corrective|remediation", re.I)
# What kind of work an action item is (the taxonomy of the Google SRE workbook's postmortem action items):
# detect — see it sooner (alerts, pages, probes); mitigate — hurt less or recover faster while it happens
# (failover, fallback, backoff, autoscaling, caps); prevent — stop it happening (fixes, validation, guards,
# isolation, safer rollouts); process — how people work (reviews, announcements, game days, schedules);
# follow_up — a one-off task of this incident (notify customers, re-ship). Each phrase that matches scores 1,
# or 2 when it starts within the first three words (the action's verb phrase); the best score wins, ties in the
# order below, and nothing matching is a follow-up.
_TYPE_PHRASES: tuple[tuple[ActionType, re.Pattern[str]], ...] = (
    (
        "detect",
        re.compile(
            r"\b(?:alert(?:s|ing)?|(?<!status )pages?|pager|paging|monitor\w*|dashboards?|slos?|probes?|synthetic|"
            r"hysteresis|thresholds?|detect\w*|reminders?|observability|route \S+ to)\b",
            re.I,
        ),
    ),
    (
        "mitigate",
        re.compile(
            r"\b(?:fail ?over|failover|fallback|fail-?open|roll ?back|rollback|circuit[- ]breakers?|backoff|jitter|"
            r"coalesc\w*|autoscal\w*|ttl|snapshots?|backups?|promot\w*|degrad\w*|cap|caps|throttl\w*|shed\w*|"
            r"kill[- ]switch|redundan\w*|multi-?region|both cdns|stale|automat\w*)\b",
            re.I,
        ),
    ),
    (
        "prevent",
        re.compile(
            r"\b(?:fix|fixes|validat\w*|lint\w*|ci|enforce\w*|requir\w*|separat\w*|isolat\w*|replica|"
            r"replication|rf=\d|lock_timeout|timeouts?|retry budget|stop retrying|credentials?|secret scanning|"
            r"push protection|least privilege|permissions?|saniti[sz]\w*|escap\w*|tune|gc|clock skew|chrony|opt-in|"
            r"audit\w*|batch\w*|quotas?|limits?|capacity|renew\w*|expir\w*|sync|health ?checks?|/healthz|"
            r"tests?|canary|staged rollout|ramp|guards?|deprecat\w*|remove|delete|upgrade)\b",
            re.I,
        ),
    ),
    (
        "process",
        re.compile(
            r"\b(?:process|game ?days?|drills?|announc\w*|communicat\w*|status page|reviews?|approv\w*|approvers?|"
            r"schedul\w*|peak|change window|freeze|runbooks?|train\w*|checklists?|on-?call|escalat\w*|document\w*|"
            r"dry run|staging first|split|do-not-disturb|break through|calendar|#[\w-]+)",
            re.I,
        ),
    ),
    (
        "follow_up",
        re.compile(r"\b(?:notify (?:the )?(?:\d+ )?(?:affected )?customers|re-?ship\w*|before .{0,20}retry)\b", re.I),
    ),
)
_LEAD_WORDS = 3
_PRIORITY = {"highest": "high", "high": "high", "p1": "high", "p2": "high", "critical": "high", "blocker": "high",
             "medium": "medium", "p3": "medium", "normal": "medium",
             "low": "low", "lowest": "low", "p4": "low", "p5": "low", "minor": "low", "trivial": "low"}  # fmt: skip


def classify(description: str) -> ActionType:
    """The kind of work an action item is (see ``_TYPE_PHRASES``)."""
    words = description.split()
    lead_end = len(" ".join(words[:_LEAD_WORDS]))
    best: ActionType = "follow_up"
    best_score = 0
    for action_type, pattern in _TYPE_PHRASES:
        score = sum(2 if m.start() < lead_end else 1 for m in pattern.finditer(description))
        if score > best_score:
            best, best_score = action_type, score
    return best


def _tidy(text: str) -> str:
    text = " ".join(text.split()).strip(" .;:-")
    return text[:1].upper() + text[1:] if text else text


def _owner(text: str, event: Event) -> str | None:
    mention = _MENTION.search(text)
    if mention:
        return mention.group("name").strip()
    will = _OWNER_WILL.match(text)
    if will:
        return will.group("name")
    mentions = event.attrs.get("mentions")
    if isinstance(mentions, list) and mentions and isinstance(mentions[0], str):
        return mentions[0]
    return None


def _due(text: str) -> str | None:
    match = _DUE.search(text)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group("date")).isoformat()
    except ValueError:
        return None


def from_chat(events: Sequence[Event]) -> list[ActionItem]:
    items: list[ActionItem] = []
    for e in events:
        if e.kind is not EventKind.MESSAGE or e.attrs.get("bot"):
            continue
        match = _STATED.search(e.text) or _WE_SHOULD.search(e.text)
        if match is None:
            continue
        what = match.group("what").split("\n")[0]
        task = _LEADING_OWNER.sub("", what.lstrip(), count=1)  # "@dana roll out X" is Dana's task "Roll out X"
        description = _tidy(_MENTION.sub(lambda m: m.group("name"), _DUE.sub("", task)))
        if len(description) < 8:
            continue
        items.append(
            ActionItem(
                description=description,
                type=classify(description),
                owner=_owner(what, e),
                due=_due(what),
                evidence=[e.id],
            )
        )
    return items


def _labels(e: Event) -> list[str]:
    labels = e.attrs.get("labels")
    return [str(label) for label in labels] if isinstance(labels, list) else []


def is_follow_up_ticket(e: Event) -> bool:
    return e.kind is EventKind.TICKET_CREATED and any(_FOLLOW_UP_LABELS.search(label) for label in _labels(e))


def is_customer_ticket(e: Event) -> bool:
    if e.kind is not EventKind.TICKET_CREATED:
        return False
    text = " ".join([*_labels(e), str(e.attrs.get("type") or "")])
    return bool(re.search(r"customer|support|reported", text, re.IGNORECASE))


def from_tickets(events: Sequence[Event]) -> list[ActionItem]:
    items: list[ActionItem] = []
    for e in events:
        if not is_follow_up_ticket(e):
            continue
        title = str(e.attrs.get("title") or e.text)
        key = e.attrs.get("key")
        description = _tidy(f"{title} ({key})" if key else title)
        priority = _PRIORITY.get(str(e.attrs.get("priority") or "").lower(), "medium")
        due = e.attrs.get("due")
        items.append(
            ActionItem(
                description=description,
                type=classify(title),
                owner=str(e.attrs["assignee"]) if e.attrs.get("assignee") else None,
                due=str(due)[:10] if due else None,
                priority=priority,
                evidence=[e.id],
            )
        )
    return items


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


def merge(stated: list[ActionItem], tickets: list[ActionItem]) -> list[ActionItem]:
    """A chat item that a ticket already tracks is folded into the ticket (the ticket keeps both citations)."""
    merged = list(tickets)
    for item in stated:
        words = _words(item.description)
        twin = next(
            (
                i
                for i, t in enumerate(merged)
                if words and len(words & _words(t.description)) / len(words | _words(t.description)) >= 0.4
            ),
            None,
        )
        if twin is None:
            merged.append(item)
            continue
        ticket = merged[twin]
        merged[twin] = ticket.model_copy(
            update={
                "evidence": [*ticket.evidence, *item.evidence],
                "owner": ticket.owner or item.owner,
                "due": ticket.due or item.due,
            }
        )
    return merged
