"""Publishing against Slack- and Jira-shaped APIs on 127.0.0.1: a summary post, and follow-up issues created
once — never for suggestions, tickets that already exist, or work already linked to the incident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.connectors.jira import JiraConfig, JiraConnector
from pipeline.connectors.slack import SlackConfig, SlackConnector
from pipeline.errors import ConnectorError
from pipeline.publish import create_follow_ups, post_summary
from pipeline.service import draft_bundle
from pipeline.settings import Settings
from tests import vendor_servers as vs
from tests.conftest import SAMPLES
from tests.test_connectors import TOKEN, _fast

LINKED = "Fix the serializer properly for every minor field and re-ship through canary"


class PublishingSlack(vs.FakeSlack):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.posts: list[dict[str, Any]] = []

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> vs.Answer:
        if path == "/api/chat.postMessage" and method == "POST":
            if body.get("channel") != vs.CHANNEL:
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            self.posts.append(body)
            return 200, {}, {"ok": True, "channel": vs.CHANNEL, "ts": "1739890000.000100"}
        return super().handle(method, path, query, body)


class PublishingJira(vs.FakeJira):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.created: list[dict[str, Any]] = []

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> vs.Answer:
        if path == "/rest/api/3/issue/INC-2041" and method == "GET":
            link = {"type": {"name": "Relates"}, "outwardIssue": {"key": "CHK-900", "fields": {"summary": LINKED}}}
            return 200, {}, {"key": "INC-2041", "fields": {"issuelinks": [link]}}
        if path == "/rest/api/3/issue" and method == "POST":
            self.created.append(body["fields"])
            return 201, {}, {"id": str(20000 + len(self.created)), "key": f"CHK-{1000 + len(self.created)}"}
        return super().handle(method, path, query, body)


@pytest.fixture(scope="module")
def draft(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _, result = draft_bundle(SAMPLES / "checkout-bad-deploy", Settings(home=tmp_path_factory.mktemp("home")))
    return result


def test_summary_is_posted_to_the_incident_channel(draft: Any) -> None:
    fake = PublishingSlack(TOKEN)
    with vs.serve(fake) as url, SlackConnector(SlackConfig(base_url=f"{url}/api", **_fast())) as slack:
        ts = post_summary(slack, vs.CHANNEL, draft, link="https://wiki.example/pm/INC-2041")
        with pytest.raises(ConnectorError, match="channel_not_found"):
            post_summary(slack, "C0NOTHERE", draft)
    assert ts == "1739890000.000100"
    (post,) = fake.posts
    assert draft.incident.title in post["text"] and "https://wiki.example/pm/INC-2041" in post["text"]


def test_follow_ups_are_created_once_and_only_for_untracked_stated_work(draft: Any, tmp_path: Path) -> None:
    fake = PublishingJira(TOKEN)
    with vs.serve(fake) as url:
        config = JiraConfig(base_url=url, email=fake.email, **_fast())
        with JiraConnector(config) as jira:
            report = create_follow_ups(jira, "CHK", draft, incident_key="INC-2041")
    reasons = report.skipped
    assert "already a ticket" in reasons.values()  # CHK-812/813 came from Jira follow-up tickets
    assert "a suggestion nobody has accepted yet" in reasons.values()
    assert any(r.startswith("already linked:") for r in reasons.values())
    stated = [a for a in draft.action_items if not a.suggested]
    assert (
        len(report.created)
        == len(fake.created)
        == len(stated) - sum(1 for r in reasons.values() if r == "already a ticket" or r.startswith("already linked"))
    )
    assert report.created and all(key.startswith("CHK-1") for key in report.created)
    for fields in fake.created:
        assert fields["project"] == {"key": "CHK"} and "postmortem-action" in fields["labels"]
        assert "INC-2041" in fields["labels"]


def test_sweep_publishes_each_version_and_never_files_a_follow_up_twice(tmp_path: Path) -> None:
    import shutil

    from pipeline.service import make_publisher
    from pipeline.sweep import LandingSource, sweep

    home = tmp_path / "home"
    landing = home / "landing"
    landing.mkdir(parents=True)
    shutil.copytree(SAMPLES / "checkout-bad-deploy", landing / "checkout-bad-deploy")
    slack, jira = PublishingSlack(TOKEN), PublishingJira(TOKEN)
    with vs.serve(slack) as slack_url, vs.serve(jira) as jira_url:
        (home / "publish.yaml").write_text(
            "link_base: https://wiki.example/pm/\n"
            f"slack: {{token_env: PM_TEST_SLACK, channel: {vs.CHANNEL}, base_url: '{slack_url}/api'}}\n"
            f"jira: {{token_env: PM_TEST_JIRA, base_url: '{jira_url}', email: {jira.email}, project: CHK}}\n"
        )
        env = pytest.MonkeyPatch()
        env.setenv("PM_TEST_SLACK", TOKEN)
        env.setenv("PM_TEST_JIRA", TOKEN)
        try:
            settings = Settings(home=home)
            first = sweep(settings, [LandingSource(landing)], index=False, on_drafted=make_publisher(settings))
            filed_once = len(jira.created)
            # late data arrives: the bundle changes, the incident is re-drafted as v2
            (landing / "checkout-bad-deploy" / "late-note.json").write_text(
                (SAMPLES / "checkout-bad-deploy" / "pagerduty" / "evt-03.json").read_text()
            )
            second = sweep(settings, [LandingSource(landing)], index=False, on_drafted=make_publisher(settings))
        finally:
            env.undo()
    assert first.drafted == ["INC-2041"] and filed_once >= 1
    assert second.drafted == ["INC-2041"]  # changed inputs: v2
    assert len(slack.posts) == 1 + len(second.drafted)  # one announcement per drafted version
    assert len(jira.created) == filed_once  # the re-draft filed nothing again
    assert "https://wiki.example/pm/INC-2041" in slack.posts[0]["text"]


def test_a_gathered_incident_is_announced_in_its_own_channel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.connector_source import ConnectorSource
    from pipeline.connectors.pagerduty import PagerDutyConfig, PagerDutyConnector
    from pipeline.gather import Gatherer
    from pipeline.service import make_publisher
    from pipeline.sweep import sweep

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PM_TEST_SLACK", TOKEN)
    slack_fake = PublishingSlack(TOKEN)
    pd_fake = vs.FakePagerDuty(TOKEN, notes=[*vs.PD_NOTES, vs.PD_LINK_NOTE])
    with vs.serve(slack_fake) as slack_url, vs.serve(pd_fake) as pd_url:
        # the configured channel does not exist in the fake: only the incident's own channel can take the post
        (home / "publish.yaml").write_text(
            f"slack: {{token_env: PM_TEST_SLACK, channel: C0INCIDENTS, base_url: '{slack_url}/api'}}\n"
        )
        settings = Settings(home=home)
        with (
            PagerDutyConnector(PagerDutyConfig(base_url=pd_url, **_fast(page_size=50))) as pd,
            SlackConnector(SlackConfig(base_url=f"{slack_url}/api", **_fast(page_size=50))) as slack,
        ):
            source = ConnectorSource(pd, gatherer=Gatherer({"pagerduty": pd, "slack": slack}))
            publisher = make_publisher(settings)
            assert publisher is not None
            report = sweep(settings, [source], index=False, on_drafted=publisher)
    incident = f"pagerduty-{vs.PD_INCIDENT}"
    assert incident in report.drafted and not publisher.errors
    (post,) = slack_fake.posts
    assert post["channel"] == vs.CHANNEL and incident in post["text"]
