"""Find the other tools' records an incident's records point at, by the URLs people and integrations paste.

A PagerDuty note "war room: https://acme.slack.com/archives/C0INC42", a Jira ticket quoting its PagerDuty
incident, a Statuspage incident named in a ticket comment: each URL names a vendor record the sweep can
snapshot too, so one incident is gathered from every tool into one bundle. Recognised (public web addresses, and
the hosts in ``extra_hosts`` for self-hosted Jira or GitHub Enterprise):

=========== ================================================================ ==================================
vendor      URL                                                              ref
=========== ================================================================ ==================================
slack       ``https://<workspace>.slack.com/archives/<C…|G…>[/p…]``,          channel id
            ``https://app.slack.com/client/<T…>/<C…>``
pagerduty   ``https://<account>.pagerduty.com/incidents/<id>``                incident id
opsgenie    ``https://<account>.app[.eu].opsgenie.com/alert/detail/<uuid>``   alert id
jira        ``https://<site>.atlassian.net/browse/<KEY-N>``                   issue key
github      ``https://github.com/<owner>/<repo>/issues/<n>``                  ``<owner>/<repo>#<n>``
statuspage  ``https://manage.statuspage.io/pages/<page>/incidents/<id>``,      incident id
            ``https://<page>.statuspage.io/incidents/<id>``
=========== ================================================================ ==================================

One link is not a URL: a PagerDuty incident that Alertmanager triggered carries ``"incident_key"`` = sha256
hex of the Alertmanager group key (Alertmanager's dedup key), whose first 16 digits name the group's folder in
the receiver's landing store: vendor ``alertmanager``, ref those 16 digits.

Pure functions over bytes: no network, no vendor connector imported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_URL = re.compile(rb"https?://[^\s\"'<>|\\)\]}`]+")
_ALERTMANAGER_KEY = re.compile(rb'"incident_key"\s*:\s*"([0-9a-f]{64})"')


@dataclass(frozen=True, order=True)
class LinkRef:
    """A record in another tool: its vendor and the ref that vendor's connector snapshots."""

    vendor: str
    ref: str

    @property
    def incident_id(self) -> str:
        """The id the sweep gives this record when it is an incident of its own (``<vendor>-<ref>``)."""
        return f"{self.vendor}-{self.ref}"


@dataclass(frozen=True)
class _Rule:
    vendor: str
    host: re.Pattern[str]
    path: re.Pattern[str]


def _host(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"^(?:{pattern})$", re.IGNORECASE)


_RULES = (
    _Rule(
        "slack",
        _host(r"(?:[a-z0-9-]+\.)*slack\.com"),
        re.compile(r"^/(?:archives|client/[TE][A-Z0-9]{6,20})/([CG][A-Z0-9]{6,20})(?:/|$)"),
    ),
    _Rule("pagerduty", _host(r"[a-z0-9-]+\.pagerduty\.com"), re.compile(r"^/incidents/([A-Z0-9]{6,20})(?:/|$)")),
    _Rule(
        "opsgenie",
        _host(r"[a-z0-9-]+\.app(?:\.eu)?\.opsgenie\.com"),
        re.compile(r"^/alert/detail/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?:-\d+)?)(?:/|$)"),
    ),
    _Rule("jira", _host(r"[a-z0-9-]+\.atlassian\.net"), re.compile(r"^/browse/([A-Z][A-Z0-9_]{0,30}-\d{1,9})(?:/|$)")),
    _Rule(
        "github",
        _host(r"github\.com"),
        re.compile(r"^/([A-Za-z0-9][A-Za-z0-9-]{0,38})/([A-Za-z0-9._-]{1,100})/issues/(\d{1,9})(?:/|$)"),
    ),
    _Rule(
        "statuspage",
        _host(r"manage\.statuspage\.io|[a-z0-9-]+\.statuspage\.io"),
        re.compile(r"^(?:/pages/[a-z0-9]{6,20})?/incidents/([a-z0-9]{12})(?:/|$)"),
    ),
)


def _ref(vendor: str, match: re.Match[str]) -> str:
    if vendor == "github":
        owner, repo, number = match.groups()
        return f"{owner}/{repo}#{number}"
    return match.group(1)


def parse_link(url: str, extra_hosts: Mapping[str, Iterable[str]] | None = None) -> LinkRef | None:
    """The record a URL names, or None. ``extra_hosts`` maps a vendor to more hosts its URLs live on (a
    self-hosted Jira, GitHub Enterprise, a Statuspage custom domain)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    netloc = parts.netloc.lower()
    if not host:
        return None
    for rule in _RULES:
        known = extra_hosts.get(rule.vendor, ()) if extra_hosts else ()
        if rule.host.match(host) or any(h.lower() in (host, netloc) for h in known):
            match = rule.path.match(parts.path)
            if match:
                return LinkRef(rule.vendor, _ref(rule.vendor, match))
    return None


def find_links(
    files: Mapping[str, bytes], extra_hosts: Mapping[str, Iterable[str]] | None = None
) -> dict[LinkRef, str]:
    """Every record the files' URLs name, with the first file that names it (for provenance). JSON's escaped
    slashes (``https:\\/\\/``, as in Slack exports) are read as slashes."""
    found: dict[LinkRef, str] = {}
    for name in sorted(files):
        raw = files[name].replace(b"\\/", b"/")
        for match in _URL.finditer(raw):
            url = match.group().decode("utf-8", "replace").rstrip(".,;:!?")
            link = parse_link(url, extra_hosts)
            if link is not None and link not in found:
                found[link] = name
        for key in _ALERTMANAGER_KEY.finditer(raw):
            found.setdefault(LinkRef("alertmanager", key.group(1)[:16].decode("ascii")), name)
    return found
