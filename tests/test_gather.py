"""Cross-vendor gathering: links in an incident's records pull its Slack channel, ticket and status page into one
snapshot, against vendor-shaped APIs on 127.0.0.1; the sweep drafts the outage once however many tools close it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipeline.connector_source import ConnectorSource, load_sources
from pipeline.connectors import (
    JiraConfig,
    JiraConnector,
    PagerDutyConfig,
    PagerDutyConnector,
    SlackConfig,
    SlackConnector,
    StatuspageConfig,
    StatuspageConnector,
)
from pipeline.errors import ConfigError, ConnectorError
from pipeline.gather import Gatherer, GatherPolicy
from pipeline.links import LinkRef, find_links, parse_link
from pipeline.settings import Settings
from pipeline.sweep import ClosedIncident, sweep
from tests import vendor_servers as vs
from tests.test_connectors import TOKEN, _fast

# --- links ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.slack.com/archives/C0INC4242", LinkRef("slack", "C0INC4242")),
        ("https://acme.slack.com/archives/C0INC4242/p1741096920000100", LinkRef("slack", "C0INC4242")),
        ("https://app.slack.com/archives/G0PRIVATE1", LinkRef("slack", "G0PRIVATE1")),
        ("https://app.slack.com/client/T0TEAM001/C0INC4242/thread/C0INC4242-1", LinkRef("slack", "C0INC4242")),
        ("https://acme.pagerduty.com/incidents/Q1ABCDEF2GH", LinkRef("pagerduty", "Q1ABCDEF2GH")),
        ("https://acme.pagerduty.com/incidents/PINC0042/log_entries/QLOG1", LinkRef("pagerduty", "PINC0042")),
        (
            "https://acme.app.eu.opsgenie.com/alert/detail/8418d193-2dab-4490-b331-8c02cdd196b7/details",
            LinkRef("opsgenie", "8418d193-2dab-4490-b331-8c02cdd196b7"),
        ),
        ("https://acme.atlassian.net/browse/INC-42", LinkRef("jira", "INC-42")),
        ("https://github.com/acme/ops/issues/42#issuecomment-1", LinkRef("github", "acme/ops#42")),
        ("https://manage.statuspage.io/pages/pg0acme42/incidents/inc0checkout", LinkRef("statuspage", "inc0checkout")),
        ("https://acmestatus.statuspage.io/incidents/inc0checkout", LinkRef("statuspage", "inc0checkout")),
        # not records the sweep can snapshot
        ("https://acme.atlassian.net/wiki/spaces/SRE/pages/1", None),
        ("https://github.com/acme/ops/pull/7", None),
        ("https://acme.slack.com/archives/D0DIRECT01", None),
        ("https://evil.example/browse/INC-42", None),
        ("https://slack.com.evil.example/archives/C0INC4242", None),
        ("not a url", None),
    ],
)
def test_parse_link_knows_each_vendors_record_urls(url: str, expected: LinkRef | None) -> None:
    assert parse_link(url) == expected


def test_self_hosted_jira_needs_its_host_named() -> None:
    url = "https://jira.acme.internal/browse/OPS-7"
    assert parse_link(url) is None
    assert parse_link(url, {"jira": ["jira.acme.internal"]}) == LinkRef("jira", "OPS-7")


def test_find_links_reads_json_escapes_and_slack_markup_and_names_the_first_file() -> None:
    files = {
        "b.json": b'{"text": "see <https:\\/\\/acme.atlassian.net\\/browse\\/INC-42|INC-42>."}',
        "a.json": b'{"note": "war room https://acme.slack.com/archives/C0INC4242, thanks!"}',
        "c.json": b'{"again": "https://acme.atlassian.net/browse/INC-42"}',
    }
    assert find_links(files) == {
        LinkRef("slack", "C0INC4242"): "a.json",
        LinkRef("jira", "INC-42"): "b.json",
    }


# --- gathering against local vendor APIs ---------------------------------------------------------------------


@dataclass
class Vendors:
    pagerduty: PagerDutyConnector
    jira: JiraConnector
    slack: SlackConnector
    statuspage: StatuspageConnector
    fakes: dict[str, vs.FakeVendor]

    def gatherer(self, **policy: object) -> Gatherer:
        connectors = {
            "pagerduty": self.pagerduty,
            "jira": self.jira,
            "slack": self.slack,
            "statuspage": self.statuspage,
        }
        return Gatherer(connectors, GatherPolicy.model_validate(policy))


PD_REMOTE_LINK = vs.jira_remote_link(
    f"https://acme.pagerduty.com/incidents/{vs.PD_INCIDENT}", "[#42] High 5xx rate on checkout-api"
)


@contextmanager
def _vendors() -> Iterator[Vendors]:
    fakes: dict[str, vs.FakeVendor] = {
        "pagerduty": vs.FakePagerDuty(TOKEN, notes=[*vs.PD_NOTES, vs.PD_LINK_NOTE]),
        "jira": vs.FakeJira(TOKEN, remote_links=[PD_REMOTE_LINK]),
        "slack": vs.FakeSlack(TOKEN),
        "statuspage": vs.FakeStatuspage(TOKEN),
    }
    with ExitStack() as stack:
        urls = {name: stack.enter_context(vs.serve(fake)) for name, fake in fakes.items()}
        fast = _fast(page_size=50)
        yield Vendors(
            pagerduty=stack.enter_context(PagerDutyConnector(PagerDutyConfig(base_url=urls["pagerduty"], **fast))),
            jira=stack.enter_context(JiraConnector(JiraConfig(base_url=urls["jira"], email=vs.FakeJira.email, **fast))),
            slack=stack.enter_context(SlackConnector(SlackConfig(base_url=f"{urls['slack']}/api", **fast))),
            statuspage=stack.enter_context(
                StatuspageConnector(StatuspageConfig(base_url=urls["statuspage"], page_id=vs.SP_PAGE, **fast))
            ),
            fakes=fakes,
        )


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with _vendors() as v:
        yield v


def _gather(v: Vendors, gatherer: Gatherer) -> dict[str, bytes]:
    return gatherer.gather("pagerduty", vs.PD_INCIDENT, incident_id=f"pagerduty-{vs.PD_INCIDENT}", closed_at=vs.at(40))


def test_a_pagerduty_incident_gathers_the_channel_ticket_and_status_page_it_links(vendors: Vendors) -> None:
    files = _gather(vendors, vendors.gatherer())
    assert f"pagerduty/{vs.PD_INCIDENT}/notes.json" in files
    assert f"slack/{vs.CHANNEL}.json" in files and "slack/users.list.json" in files
    assert f"jira/{vs.JIRA_KEY}/issue.json" in files
    assert f"statuspage/{vs.SP_INCIDENT}.json" in files
    manifest = yaml.safe_load(files["incident.yaml"])
    assert manifest == {
        "id": f"pagerduty-{vs.PD_INCIDENT}",
        "aliases": [f"jira-{vs.JIRA_KEY}", f"slack-{vs.CHANNEL}", f"statuspage-{vs.SP_INCIDENT}"],
    }
    report = json.loads(files["gathered.json"])
    assert [(g["vendor"], g["via"]) for g in report["gathered"]] == [
        ("pagerduty", None),
        ("slack", f"pagerduty-{vs.PD_INCIDENT}"),
        ("jira", f"pagerduty-{vs.PD_INCIDENT}"),
        ("statuspage", f"pagerduty-{vs.PD_INCIDENT}"),
    ]
    reasons = {(n["vendor"], n["ref"]): n["reason"] for n in report["not_followed"]}
    assert set(reasons) == {("slack", vs.GONE_CHANNEL), ("github", "acme/runbooks#9")}
    assert (
        reasons[("slack", vs.GONE_CHANNEL)].startswith("not found: ")
        and "channel_not_found" in reasons[("slack", vs.GONE_CHANNEL)]
    )
    assert reasons[("github", "acme/runbooks#9")] == "no github connector configured"
    # the channel is read in a window around the close, not its whole history
    history = [q for m, p, q in vendors.fakes["slack"].requests if p == "/api/conversations.history"]
    assert {q["channel"][0] for q in history} == {vs.CHANNEL, vs.GONE_CHANNEL}
    assert all(float(q["oldest"][0]) == (vs.at(40) - GatherPolicy().slack_lookback).timestamp() for q in history)
    # deterministic: the same records give the same bytes
    assert _gather(vendors, vendors.gatherer()) == files


def test_links_are_followed_one_hop_and_never_from_chat(vendors: Vendors) -> None:
    files = _gather(vendors, vendors.gatherer())
    # the Slack channel and the Jira ticket link further (messages cite other tickets): none of that is gathered
    assert {g["vendor"] for g in json.loads(files["gathered.json"])["gathered"]} == {
        "pagerduty",
        "slack",
        "jira",
        "statuspage",
    }
    only_own = _gather(vendors, vendors.gatherer(follow_links=False))
    assert {name.split("/")[0] for name in only_own} == {"pagerduty", "incident.yaml", "gathered.json"}
    assert yaml.safe_load(only_own["incident.yaml"]) == {"id": f"pagerduty-{vs.PD_INCIDENT}"}
    capped = json.loads(_gather(vendors, vendors.gatherer(max_linked=1))["gathered.json"])
    assert len(capped["gathered"]) == 2
    assert sum(n["reason"] == "more than 1 linked records" for n in capped["not_followed"]) >= 2


def test_a_linked_record_that_cannot_be_read_fails_the_gather_so_the_sweep_retries(vendors: Vendors) -> None:
    vendors.fakes["jira"].faults[f"/rest/api/3/issue/{vs.JIRA_KEY}"] = [(503, {})] * 10
    with pytest.raises(ConnectorError, match="HTTP 503"):
        _gather(vendors, vendors.gatherer())


# --- the sweep: one outage, one draft ------------------------------------------------------------------------


def test_an_outage_closed_in_two_tools_is_drafted_once_from_every_tool(tmp_path: Path, vendors: Vendors) -> None:
    settings = Settings(home=tmp_path / "home")
    gatherer = vendors.gatherer()
    pagerduty = ConnectorSource(vendors.pagerduty, gatherer=gatherer)
    jira = ConnectorSource(vendors.jira, gatherer=gatherer)
    # Jira is listed first and sorts first by id; the paging incident still gathers first and claims the ticket
    first = sweep(settings, [jira, pagerduty], index=False)
    primary = f"pagerduty-{vs.PD_INCIDENT}"
    assert primary in first.drafted and f"jira-{vs.JIRA_KEY}" not in first.drafted
    assert first.linked == {f"jira-{vs.JIRA_KEY}": primary}
    assert not (settings.drafts_dir / f"jira-{vs.JIRA_KEY}").exists()
    draft = json.loads((settings.drafts_dir / primary / "v1.json").read_text())
    assert draft["incident"]["id"] == primary
    assert draft["incident"]["title"] == "#42 High 5xx rate on checkout-api"  # the page's own words, not "Incident …"
    assert {e["source"] for e in draft["timeline"]} >= {"pagerduty", "slack", "jira", "statuspage"}

    second = sweep(settings, [jira, pagerduty], index=False)
    assert second.drafted == [] and second.new == second.redrafted == 0

    # the ticket closing again later (a new Jira source, so its cursor starts at the beginning) re-gathers the
    # outage it belongs to: same inputs, so nothing is drafted, and never a draft of its own
    later = ConnectorSource(vendors.jira, name="jira-again", gatherer=gatherer)
    third = sweep(settings, [later, pagerduty], index=False)
    assert third.linked == {f"jira-{vs.JIRA_KEY}": primary}
    assert third.drafted == [] and third.unchanged >= 1
    assert not (settings.drafts_dir / primary / "v2.json").exists()


def test_sources_yaml_configures_gather_only_vendors_and_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PD_T", TOKEN)
    monkeypatch.setenv("SLACK_T", TOKEN)
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {vendor: pagerduty, token_env: PD_T, base_url: 'http://127.0.0.1:9'}\n"
        "  - {vendor: slack, token_env: SLACK_T, base_url: 'http://127.0.0.1:9/api'}\n"
        "gather: {hops: 2, max_linked: 3, link_hosts: {jira: [jira.acme.internal]}}\n"
    )
    sources = load_sources(path)
    assert [s.name for s in sources] == ["pagerduty"]  # Slack closes nothing: it is only read when linked
    gatherer = sources[0].gatherer
    assert set(gatherer.connectors) == {"pagerduty", "slack"}
    assert (gatherer.policy.hops, gatherer.policy.max_linked) == (2, 3)
    path.write_text("sources: []\ngather: {hops: 9}\n")
    with pytest.raises(ConfigError, match="gather: hops"):
        load_sources(path)
    path.write_text("sourcez: []\n")
    with pytest.raises(ConfigError, match="unknown top-level keys"):
        load_sources(path)


def test_a_source_without_a_gatherer_still_names_its_incident(vendors: Vendors) -> None:
    source = ConnectorSource(vendors.pagerduty)
    incident = ClosedIncident(f"pagerduty-{vs.PD_INCIDENT}", vs.PD_INCIDENT, vs.at(40), "pagerduty")
    files = source.snapshot(incident)
    assert yaml.safe_load(files["incident.yaml"]) == {"id": f"pagerduty-{vs.PD_INCIDENT}"}
    assert not any(name.startswith("slack/") for name in files)


def test_a_ticket_that_closes_first_gathers_the_page_its_remote_link_names(tmp_path: Path, vendors: Vendors) -> None:
    """PagerDuty's Jira integration adds a remote link to the incident: a ticket swept before the page resolves
    gathers it (and, one hop only, not the page's own links), and the page resolving later is that incident."""
    settings = Settings(home=tmp_path / "home")
    gatherer = vendors.gatherer()
    jira = ConnectorSource(vendors.jira, gatherer=gatherer)
    first = sweep(settings, [jira], index=False)
    primary = f"jira-{vs.JIRA_KEY}"
    assert primary in first.drafted
    snapshot = next((settings.home / "snapshots" / primary).iterdir())
    assert yaml.safe_load((snapshot / "incident.yaml").read_text())["aliases"] == [f"pagerduty-{vs.PD_INCIDENT}"]
    assert (snapshot / "jira" / vs.JIRA_KEY / "remotelink.json").is_file()
    assert not (snapshot / "slack").exists()  # the page's note links the channel: that is a second hop
    draft = json.loads((settings.drafts_dir / primary / "v1.json").read_text())
    assert {e["source"] for e in draft["timeline"]} == {"jira", "pagerduty"}

    pagerduty = ConnectorSource(vendors.pagerduty, gatherer=gatherer)
    later = sweep(settings, [jira, pagerduty], index=False)
    assert later.linked == {f"pagerduty-{vs.PD_INCIDENT}": primary}
    assert f"pagerduty-{vs.PD_INCIDENT}" not in later.drafted
    assert not (settings.drafts_dir / f"pagerduty-{vs.PD_INCIDENT}").exists()


def test_a_landed_bundle_that_names_its_aliases_takes_the_page_when_it_resolves(
    tmp_path: Path, vendors: Vendors
) -> None:
    import shutil

    from pipeline.sweep import LandingSource
    from tests.conftest import SAMPLES

    landing = tmp_path / "landing"
    bundle = landing / "checkout-bad-deploy"
    shutil.copytree(SAMPLES / "checkout-bad-deploy", bundle)
    manifest = yaml.safe_load((bundle / "incident.yaml").read_text())
    manifest["aliases"] = [f"pagerduty-{vs.PD_INCIDENT}"]
    (bundle / "incident.yaml").write_text(yaml.safe_dump(manifest))
    settings = Settings(home=tmp_path / "home")
    pagerduty = ConnectorSource(vendors.pagerduty, gatherer=vendors.gatherer())
    first = sweep(settings, [LandingSource(landing)], index=False)
    assert first.drafted == [manifest["id"]]
    second = sweep(settings, [LandingSource(landing), pagerduty], index=False)
    assert second.linked == {f"pagerduty-{vs.PD_INCIDENT}": manifest["id"]}
    assert f"pagerduty-{vs.PD_INCIDENT}" not in second.drafted
