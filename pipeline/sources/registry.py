"""Source parsers: real vendor formats in, ``EventRow``s (or quarantined records with reasons) out.

Recognition is by content. Order matters where shapes overlap: Grafana's webhook is an Alertmanager
payload with extra keys, so Grafana is asked first.
"""

from __future__ import annotations

from pipeline.sources.alertmanager import AlertmanagerParser
from pipeline.sources.base import SourceDocument, SourceParser
from pipeline.sources.github import GitHubParser
from pipeline.sources.grafana import GrafanaParser
from pipeline.sources.jira import JiraParser
from pipeline.sources.opsgenie import OpsgenieParser
from pipeline.sources.pagerduty import PagerDutyParser
from pipeline.sources.slack import SlackParser
from pipeline.sources.statuspage import StatuspageParser

__all__ = ["all_parsers", "recognise"]


def all_parsers() -> list[SourceParser]:
    """Every parser, most specific first."""
    return [
        GrafanaParser(),
        AlertmanagerParser(),
        PagerDutyParser(),
        OpsgenieParser(),
        JiraParser(),
        GitHubParser(),
        StatuspageParser(),
        SlackParser(),
    ]


def recognise(doc: SourceDocument, parsers: list[SourceParser]) -> SourceParser | None:
    """The first parser whose sniff accepts the document, or None."""
    for parser in parsers:
        if parser.sniff(doc):
            return parser
    return None
