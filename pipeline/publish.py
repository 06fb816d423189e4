"""Publishing a finished draft: a summary and link posted to the incident's Slack channel, and Jira follow-up
issues for its action items — never for suggestions nobody accepted, never twice for the same work (items that
already are tickets, or that match an issue already linked to the incident, are skipped with the reason)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.connectors.jira import JiraConnector
from pipeline.connectors.slack import SlackConnector
from pipeline.errors import ConnectorError
from pipeline.models import ActionItem, Draft, Source

_SIMILAR = 0.5  # word-set Jaccard above which an action item and an existing issue are the same work
_TICKET_SOURCES = frozenset({Source.JIRA, Source.GITHUB})


def post_summary(slack: SlackConnector, channel: str, draft: Draft, link: str | None = None) -> str:
    """Post the draft's summary to `channel`; returns the message ts."""
    lines = [f"*Postmortem draft: {draft.incident.title}* ({draft.incident.id})", draft.summary]
    if link:
        lines.append(f"<{link}|Open the draft>")
    data = slack.client.post_json(
        "/chat.postMessage", {"channel": channel, "text": "\n".join(lines), "unfurl_links": False}
    )
    if not isinstance(data, dict) or not data.get("ok"):
        error = data.get("error") if isinstance(data, dict) else "unexpected answer"
        raise ConnectorError(f"slack: chat.postMessage to {channel} refused: {error}")
    return str(data.get("ts", ""))


@dataclass
class FollowUpReport:
    created: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


def _similar(a: str, b: str) -> bool:
    wa, wb = _words(a), _words(b)
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= _SIMILAR


def linked_summaries(jira: JiraConnector, incident_key: str) -> list[str]:
    """Summaries of the issues linked to the incident ticket."""
    issue = jira.client.get_json(f"/rest/api/3/issue/{incident_key}", {"fields": "issuelinks"})
    links = issue.get("fields", {}).get("issuelinks", []) if isinstance(issue, dict) else []
    found = []
    for link in links if isinstance(links, list) else []:
        other = (link.get("outwardIssue") or link.get("inwardIssue") or {}) if isinstance(link, dict) else {}
        summary = other.get("fields", {}).get("summary") if isinstance(other, dict) else None
        if isinstance(summary, str):
            found.append(summary)
    return found


def _adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def create_follow_ups(
    jira: JiraConnector, project: str, draft: Draft, incident_key: str | None = None
) -> FollowUpReport:
    """One Jira task per stated action item that is not tracked yet."""
    report = FollowUpReport()
    existing = linked_summaries(jira, incident_key) if incident_key else []
    sources = {e.id: e.source for e in draft.timeline}
    for item in draft.action_items:
        if item.suggested:
            report.skipped[item.description] = "a suggestion nobody has accepted yet"
            continue
        if any(sources.get(i) in _TICKET_SOURCES for i in item.evidence):
            report.skipped[item.description] = "already a ticket"
            continue
        twin = next((s for s in existing if _similar(s, item.description)), None)
        if twin is not None:
            report.skipped[item.description] = f"already linked: {twin}"
            continue
        report.created.append(_create(jira, project, draft, item))
    return report


def _create(jira: JiraConnector, project: str, draft: Draft, item: ActionItem) -> str:
    fields: dict[str, Any] = {
        "project": {"key": project},
        "summary": item.description[:250],
        "issuetype": {"name": "Task"},
        "labels": ["postmortem-action", re.sub(r"[^A-Za-z0-9_-]", "-", draft.incident.id)],
        "description": _adf(
            f"Action item ({item.type}) from the postmortem of {draft.incident.id}: {draft.incident.title}"
        ),
    }
    if item.due:
        fields["duedate"] = item.due
    data = jira.client.post_json("/rest/api/3/issue", {"fields": fields})
    key = data.get("key") if isinstance(data, dict) else None
    if not isinstance(key, str):
        raise ConnectorError("jira: creating a follow-up issue returned no key")
    return key
