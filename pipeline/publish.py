"""Publishing a finished draft: a summary and link posted to the incident's Slack channel, and Jira follow-up
issues for its action items — never for suggestions nobody accepted, never twice for the same work (items that
already are tickets, or that match an issue already linked to the incident, are skipped with the reason)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from pipeline.atomic import write_atomic
from pipeline.connectors.base import refuse_inline_secrets
from pipeline.connectors.jira import JiraConfig, JiraConnector
from pipeline.connectors.slack import SlackConfig, SlackConnector
from pipeline.errors import ConfigError, ConnectorError, EgressError, LeakError, LimitExceeded
from pipeline.leak_guard import check_strings, check_text, strings_of
from pipeline.limits import load_yaml
from pipeline.models import ActionItem, Draft, Source
from pipeline.paths import draft_folder

_SIMILAR = 0.5  # word-set Jaccard above which an action item and an existing issue are the same work
_TICKET_SOURCES = frozenset({Source.JIRA, Source.GITHUB})


def summary_text(draft: Draft, link: str | None = None) -> str:
    """The Slack message announcing a draft (no network: the eval checks exactly this text for leaks)."""
    title, ident = slack_escape(" ".join(draft.incident.title.split())), slack_escape(draft.incident.id)
    lines = [f"*Postmortem draft: {title}* ({ident})", slack_escape(draft.summary)]
    if link and link.startswith(("https://", "http://")):
        lines.append(f"<{slack_escape(link).replace('|', '%7C')}|Open the draft>")
    return "\n".join(lines)


def slack_escape(text: str) -> str:
    """Slack mrkdwn control characters as entities, so incident text cannot ping (``<!channel>``), mention
    (``<@U…>``) or forge links (``<url|text>``): Slack's own rule is to escape exactly ``&``, ``<`` and ``>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post_summary(slack: SlackConnector, channel: str, draft: Draft, link: str | None = None) -> str:
    """Post the draft's summary to `channel`; returns the message ts. A text holding a secret is refused
    (LeakError) before anything is sent."""
    text = summary_text(draft, link)
    check_text(text, f"the Slack summary of {draft.incident.id}")
    data = slack.client.post_json("/chat.postMessage", {"channel": channel, "text": text, "unfurl_links": False})
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


def issue_fields(project: str, draft: Draft, item: ActionItem) -> dict[str, Any]:
    """The Jira fields of one follow-up issue (no network: the eval checks exactly these for leaks)."""
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
    return fields


def _create(jira: JiraConnector, project: str, draft: Draft, item: ActionItem) -> str:
    fields = issue_fields(project, draft, item)
    check_strings(list(strings_of(fields)), f"a Jira follow-up of {draft.incident.id}", entropy=False)
    data = jira.client.post_json("/rest/api/3/issue", {"fields": fields})
    key = data.get("key") if isinstance(data, dict) else None
    if not isinstance(key, str):
        raise ConnectorError("jira: creating a follow-up issue returned no key")
    return key


# --- after a sweep drafts an incident ---------------------------------------------------------------------------


class PublishConfig(BaseModel):
    """publish.yaml: where drafts are announced and follow-ups filed. Tokens come from named environment variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    link_base: str | None = Field(None, description="Drafts are linked as <link_base><incident id>.")
    slack: dict[str, Any] | None = Field(
        None,
        description="token_env, channel (used when no incident channel was gathered), incident_channel (default "
        "true: post in the incident's own channel when the sweep gathered one), optional base_url.",
    )
    jira: dict[str, Any] | None = Field(None, description="token_env, base_url, email, project.")


def load_publish_config(path: Path) -> PublishConfig:
    try:
        config = PublishConfig.model_validate(load_yaml(path.read_bytes(), what=str(path)) or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ConfigError(f"cannot use publish file {path}: {where}: {first['msg']}") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError, LimitExceeded) as exc:
        raise ConfigError(f"cannot use publish file {path}: {str(exc).splitlines()[0]}") from None
    for name in ("slack", "jira"):
        refuse_inline_secrets(getattr(config, name) or {}, f"{path} {name}")
    return config


def _token(section: dict[str, Any], what: str) -> SecretStr:
    name = str(section.get("token_env") or "")
    value = os.environ.get(name, "") if name else ""
    if not value:
        raise ConfigError(f"publish file: {what}.token_env must name an environment variable holding the token")
    return SecretStr(value)


def _no_aliases(incident_id: str) -> list[str]:
    return []


class Publisher:
    """Announces each drafted version and files follow-ups once per action item (remembered per incident in
    drafts/<id>/published.json, so a re-draft never files the same follow-up twice).

    ``aliases`` gives an incident's ids in other tools (the ledger's, recorded when the sweep gathered them): the
    summary goes to the incident's own Slack channel (``slack-C…``) and follow-ups are checked against the issues
    linked to its Jira ticket (``jira-KEY``).

    A restricted incident is published only where the egress policy lets its text go (a Slack or Jira on this
    machine, or POSTMORTEM_ALLOW_RESTRICTED_REMOTE): otherwise nothing is sent, the decision is recorded in
    runs/egress.jsonl and the reason is kept in ``withheld`` and in published.json (not retried)."""

    def __init__(
        self, config: PublishConfig, drafts_root: Path, aliases: Callable[[str], list[str]] = _no_aliases
    ) -> None:
        self.config = config
        self.drafts_root = drafts_root
        self.aliases = aliases
        self.errors: dict[str, str] = {}
        self.withheld: dict[str, str] = {}

    def __call__(self, incident_id: str, version: int) -> None:
        folder = draft_folder(self.drafts_root, incident_id)
        draft = Draft.model_validate_json((folder / f"v{version}.json").read_bytes())
        state_path = folder / "published.json"
        state: dict[str, Any] = json.loads(state_path.read_text("utf-8")) if state_path.exists() else {}
        filed: dict[str, str] = state.setdefault("follow_ups", {})
        others = self.aliases(incident_id)
        restricted = draft.incident.visibility == "restricted"
        withheld: list[str] = []
        try:
            for step in ("slack", "jira"):
                try:
                    if step == "slack":
                        self._announce(draft, version, state, _first(others, "slack-"), restricted)
                    else:
                        self._file(draft, incident_id, filed, _first([incident_id, *others], "jira-"), restricted)
                except EgressError as exc:  # refused by policy: nothing was sent; a retry would be refused too
                    withheld.append(str(exc))
        except (ConnectorError, LeakError) as exc:  # drafting succeeded; publishing is retried with the next version
            self.errors[incident_id] = str(exc)
            state.setdefault("errors", []).append(f"v{version}: {exc}")
        if withheld:
            self.withheld[incident_id] = "; ".join(withheld)
            state["withheld"] = f"v{version}: " + "; ".join(withheld)
        write_atomic(state_path, json.dumps(state, indent=2, sort_keys=True))

    def _announce(
        self, draft: Draft, version: int, state: dict[str, Any], incident_channel: str | None, restricted: bool
    ) -> None:
        section = self.config.slack
        if not section or state.get("posted_version") == version:
            return
        use_incident_channel = section.get("incident_channel", True) is not False
        channel = incident_channel if incident_channel and use_incident_channel else section.get("channel")
        if not channel:
            return
        config = SlackConfig(token=_token(section, "slack"), **{k: v for k, v in section.items() if k in ("base_url",)})
        link = f"{self.config.link_base}{draft.incident.id}" if self.config.link_base else None
        with SlackConnector(config) as slack:
            slack.client.carry(purpose="publish:slack", restricted=restricted)
            state["posted_ts"] = post_summary(slack, str(channel), draft, link)
        state["posted_channel"] = str(channel)
        state["posted_version"] = version

    def _file(
        self, draft: Draft, incident_id: str, filed: dict[str, str], incident_key: str | None, restricted: bool
    ) -> None:
        section = self.config.jira
        if not section:
            return
        fields = {k: v for k, v in section.items() if k in ("base_url", "email")}
        config = JiraConfig(token=_token(section, "jira"), **fields)
        pending = draft.model_copy(
            update={"action_items": [a for a in draft.action_items if a.description not in filed]}
        )
        with JiraConnector(config) as jira:
            jira.client.carry(purpose="publish:jira", restricted=restricted)
            report = create_follow_ups(jira, str(section["project"]), pending, incident_key)
        created = iter(report.created)
        for item in pending.action_items:
            if item.description not in report.skipped:
                filed[item.description] = next(created)


def _first(ids: list[str], prefix: str) -> str | None:
    """The native id of the first ``<prefix><native id>`` in ``ids``."""
    return next((i.removeprefix(prefix) for i in ids if i.startswith(prefix)), None)
