"""Live connectors against fake vendor APIs on 127.0.0.1, and the Alertmanager webhook receiver over real HTTP."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pipeline.bundle import load_bundle
from pipeline.connectors import (
    GitHubConfig,
    GitHubConnector,
    JiraConfig,
    JiraConnector,
    OpsgenieConfig,
    OpsgenieConnector,
    PagerDutyConfig,
    PagerDutyConnector,
    SlackConfig,
    SlackConnector,
    StatuspageConfig,
    StatuspageConnector,
    write_snapshot,
)
from pipeline.errors import ConnectorError
from pipeline.models import Source
from pipeline.receiver import group_dir_name
from pipeline.retry import retry_after_s
from pipeline.service import draft_bundle
from pipeline.settings import Settings
from tests import vendor_servers as vs

TOKEN = "xoxb-SECRET-do-not-log-7f3a9c"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def _fast(**extra: Any) -> dict[str, Any]:
    return {"token": SecretStr(TOKEN), "page_size": 2, "backoff_base_s": 0.01, "max_retries": 3, **extra}


@pytest.fixture
def slack(sleeps: Sleeps) -> Iterator[tuple[vs.FakeSlack, SlackConnector]]:
    fake = vs.FakeSlack(TOKEN)
    with vs.serve(fake) as url, SlackConnector(SlackConfig(base_url=f"{url}/api", **_fast()), sleep=sleeps) as c:
        yield fake, c


@pytest.fixture
def pagerduty(sleeps: Sleeps) -> Iterator[tuple[vs.FakePagerDuty, PagerDutyConnector]]:
    fake = vs.FakePagerDuty(TOKEN)
    with vs.serve(fake) as url, PagerDutyConnector(PagerDutyConfig(base_url=url, **_fast()), sleep=sleeps) as c:
        yield fake, c


@pytest.fixture
def opsgenie(sleeps: Sleeps) -> Iterator[tuple[vs.FakeOpsgenie, OpsgenieConnector]]:
    fake = vs.FakeOpsgenie(TOKEN)
    with vs.serve(fake) as url, OpsgenieConnector(OpsgenieConfig(base_url=url, **_fast()), sleep=sleeps) as c:
        yield fake, c


@pytest.fixture
def jira(sleeps: Sleeps) -> Iterator[tuple[vs.FakeJira, JiraConnector]]:
    fake = vs.FakeJira(TOKEN)
    config = JiraConfig(base_url="", email=fake.email, **_fast())
    with vs.serve(fake) as url, JiraConnector(config.model_copy(update={"base_url": url}), sleep=sleeps) as c:
        yield fake, c


@pytest.fixture
def github(sleeps: Sleeps) -> Iterator[tuple[vs.FakeGitHub, GitHubConnector]]:
    fake = vs.FakeGitHub(TOKEN)
    with vs.serve(fake) as url:
        config = GitHubConfig(base_url=url, owner=vs.GH_OWNER, repo=vs.GH_REPO, **_fast())
        with GitHubConnector(config, sleep=sleeps) as c:
            yield fake, c


@pytest.fixture
def statuspage(sleeps: Sleeps) -> Iterator[tuple[vs.FakeStatuspage, StatuspageConnector]]:
    fake = vs.FakeStatuspage(TOKEN)
    with vs.serve(fake) as url:
        config = StatuspageConfig(base_url=url, page_id=vs.SP_PAGE, **_fast())
        with StatuspageConnector(config, sleep=sleeps) as c:
            yield fake, c


def _calls(fake: vs.FakeVendor, path: str) -> int:
    return sum(1 for _, p, _ in fake.requests if p == path)


def _json(files: dict[str, bytes], name: str) -> Any:
    return json.loads(files[name])


# --- pagination and shapes ----------------------------------------------------------------------------------


def test_slack_snapshot_merges_cursor_pages(slack: tuple[vs.FakeSlack, SlackConnector]) -> None:
    fake, connector = slack
    files = connector.snapshot(vs.CHANNEL)
    history = _json(files, f"slack/{vs.CHANNEL}.json")
    assert history["ok"] is True and history["has_more"] is False
    assert len(history["messages"]) == 7 and history["response_metadata"]["next_cursor"] == ""
    assert _calls(fake, "/api/conversations.history") == 4  # 7 messages, 2 a page
    replies = _json(files, f"slack/replies/{vs.CHANNEL}.json")
    assert [m["ts"] for m in replies["messages"]].count(vs.THREAD_TS) == 1  # parent repeated per page, kept once
    assert len(replies["messages"]) == 4 and _calls(fake, "/api/conversations.replies") == 2
    users = _json(files, "slack/users.list.json")
    assert {u["id"] for u in users["members"]} == {"U0AAA0001", "U0AAA0002", "U0AAA0003"}


def test_pagerduty_closed_since_pages_by_offset(pagerduty: tuple[vs.FakePagerDuty, PagerDutyConnector]) -> None:
    fake, connector = pagerduty
    closed = connector.closed_since(vs.at(-60), until=vs.at(200))
    assert [c.id for c in closed] == [vs.PD_INCIDENT, "PNEW0003", "PNEW0004"]
    assert all(c.source is Source.PAGERDUTY for c in closed)
    main = closed[0]
    assert main.closed_at == vs.at(40) and main.links["pagerduty_incident"] == vs.PD_INCIDENT
    assert _calls(fake, "/incidents") == 3
    _, _, query = next(r for r in fake.requests if r[1] == "/incidents")
    assert query["statuses[]"] == ["resolved"] and "since" in query


def test_pagerduty_snapshot_shapes(pagerduty: tuple[vs.FakePagerDuty, PagerDutyConnector]) -> None:
    fake, connector = pagerduty
    files = connector.snapshot(vs.PD_INCIDENT)
    assert _json(files, f"pagerduty/{vs.PD_INCIDENT}/incident.json")["incident"]["id"] == vs.PD_INCIDENT
    entries = _json(files, f"pagerduty/{vs.PD_INCIDENT}/log_entries.json")
    assert len(entries["log_entries"]) == 5 and entries["more"] is False
    assert _calls(fake, f"/incidents/{vs.PD_INCIDENT}/log_entries") == 3
    assert _json(files, f"pagerduty/{vs.PD_INCIDENT}/notes.json")["notes"][0]["id"] == "PNOTE001"


def test_opsgenie_follows_paging_next(opsgenie: tuple[vs.FakeOpsgenie, OpsgenieConnector]) -> None:
    fake, connector = opsgenie
    closed = connector.closed_since(vs.at(-60))
    assert len(closed) == 4 and closed[-1].id == vs.OG_ALERT
    assert closed[-1].closed_at == vs.at(41)
    assert _calls(fake, "/v2/alerts") == 2
    files = connector.snapshot(vs.OG_ALERT)
    assert sorted(files) == [f"opsgenie/{vs.OG_ALERT}/{n}.json" for n in ("alert", "logs", "notes")]  # raw only
    assert _json(files, f"opsgenie/{vs.OG_ALERT}/alert.json")["data"]["id"] == vs.OG_ALERT
    logs = _json(files, f"opsgenie/{vs.OG_ALERT}/logs.json")
    assert logs["data"] == vs.OG_LOGS and "next" not in logs["paging"]
    assert _calls(fake, f"/v2/alerts/{vs.OG_ALERT}/logs") == 2
    assert _json(files, f"opsgenie/{vs.OG_ALERT}/notes.json")["data"] == vs.OG_NOTES


def test_jira_search_and_start_at_pages(jira: tuple[vs.FakeJira, JiraConnector]) -> None:
    fake, connector = jira
    closed = connector.closed_since(vs.at(-60))
    assert [c.id for c in closed] == [vs.JIRA_KEY, "INC-43", "INC-44"]
    assert closed[0].url == f"{fake.base_url}/browse/{vs.JIRA_KEY}"
    assert _calls(fake, "/rest/api/3/search/jql") == 3
    files = connector.snapshot(vs.JIRA_KEY)
    changelog = _json(files, f"jira/{vs.JIRA_KEY}/changelog.json")
    assert len(changelog["values"]) == 5 and changelog["isLast"] is True and "nextPage" not in changelog
    assert changelog["self"].endswith("startAt=0&maxResults=2")
    assert _calls(fake, f"/rest/api/3/issue/{vs.JIRA_KEY}/changelog") == 3
    assert len(_json(files, f"jira/{vs.JIRA_KEY}/comment.json")["comments"]) == 3


def test_github_link_header_pagination(github: tuple[vs.FakeGitHub, GitHubConnector]) -> None:
    fake, connector = github
    closed = connector.closed_since(vs.at(-60))
    assert [c.id for c in closed] == [str(vs.GH_NUMBER), "43"]  # the pull request and older issues dropped
    assert closed[0].links["github_issue"] == f"{vs.GH_OWNER}/{vs.GH_REPO}#{vs.GH_NUMBER}"
    files = connector.snapshot(str(vs.GH_NUMBER))
    folder = f"github/{vs.GH_OWNER}__{vs.GH_REPO}/{vs.GH_NUMBER}"
    timeline = _json(files, f"{folder}/timeline.json")
    assert len(timeline) == 6 and _calls(fake, f"/repos/acme/ops/issues/{vs.GH_NUMBER}/timeline") == 3
    assert len(_json(files, f"{folder}/comments.json")) == 3


def test_statuspage_pages_until_older(statuspage: tuple[vs.FakeStatuspage, StatuspageConnector]) -> None:
    fake, connector = statuspage
    closed = connector.closed_since(vs.at(-60))
    assert [c.id for c in closed] == [vs.SP_INCIDENT, "inc0newer"]
    assert _calls(fake, f"/v1/pages/{vs.SP_PAGE}/incidents") == 2  # second page is all older: stop
    files = connector.snapshot(vs.SP_INCIDENT)
    assert len(_json(files, f"statuspage/{vs.SP_INCIDENT}.json")["incident_updates"]) == 3


# --- retries and auth -----------------------------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds(
    pagerduty: tuple[vs.FakePagerDuty, PagerDutyConnector], sleeps: Sleeps
) -> None:
    fake, connector = pagerduty
    fake.faults[f"/incidents/{vs.PD_INCIDENT}/notes"] = [(429, {"Retry-After": "7"})]
    files = connector.snapshot(vs.PD_INCIDENT)
    assert f"pagerduty/{vs.PD_INCIDENT}/notes.json" in files
    assert sleeps == [7.0]
    assert _calls(fake, f"/incidents/{vs.PD_INCIDENT}/notes") == 2


def test_slack_429_then_success(slack: tuple[vs.FakeSlack, SlackConnector], sleeps: Sleeps) -> None:
    fake, connector = slack
    fake.faults["/api/conversations.history"] = [(429, {"Retry-After": "2"}), (429, {"Retry-After": "1"})]
    files = connector.snapshot(vs.CHANNEL)
    assert len(_json(files, f"slack/{vs.CHANNEL}.json")["messages"]) == 7
    assert sleeps == [2.0, 1.0]


def test_5xx_backs_off_then_succeeds(jira: tuple[vs.FakeJira, JiraConnector], sleeps: Sleeps) -> None:
    fake, connector = jira
    fake.faults[f"/rest/api/3/issue/{vs.JIRA_KEY}"] = [(503, {}), (502, {})]
    files = connector.snapshot(vs.JIRA_KEY)
    assert _json(files, f"jira/{vs.JIRA_KEY}/issue.json")["key"] == vs.JIRA_KEY
    assert sleeps == [0.01, 0.02]  # exponential


def test_retries_are_bounded(statuspage: tuple[vs.FakeStatuspage, StatuspageConnector], sleeps: Sleeps) -> None:
    fake, connector = statuspage
    fake.faults[f"/v1/pages/{vs.SP_PAGE}/incidents/{vs.SP_INCIDENT}"] = [(500, {})] * 10
    with pytest.raises(ConnectorError, match=r"HTTP 500 after 4 attempts"):
        connector.snapshot(vs.SP_INCIDENT)
    assert len(sleeps) == 3


def test_github_rate_limit_403_is_retried(github: tuple[vs.FakeGitHub, GitHubConnector], sleeps: Sleeps) -> None:
    fake, connector = github
    fake.faults[f"/repos/acme/ops/issues/{vs.GH_NUMBER}"] = [(403, {"X-RateLimit-Remaining": "0", "Retry-After": "3"})]
    connector.snapshot(str(vs.GH_NUMBER))
    assert sleeps == [3.0]


def test_retry_after_http_date() -> None:
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def _wrong_token(config: Any) -> Any:
    return config.model_copy(update={"token": SecretStr("wrong")})


@pytest.mark.parametrize(
    ("make", "call"),
    [
        (lambda url, fake: SlackConnector(SlackConfig(base_url=f"{url}/api", token=SecretStr("bad"))), "slack"),
        (lambda url, fake: PagerDutyConnector(PagerDutyConfig(base_url=url, token=SecretStr("bad"))), "pd"),
        (lambda url, fake: OpsgenieConnector(OpsgenieConfig(base_url=url, token=SecretStr("bad"))), "og"),
        (
            lambda url, fake: JiraConnector(JiraConfig(base_url=url, email="x@example.com", token=SecretStr("bad"))),
            "jira",
        ),
        (
            lambda url, fake: GitHubConnector(
                GitHubConfig(base_url=url, owner="acme", repo="ops", token=SecretStr("b"))
            ),
            "gh",
        ),
        (
            lambda url, fake: StatuspageConnector(
                StatuspageConfig(base_url=url, page_id=vs.SP_PAGE, token=SecretStr("b"))
            ),
            "sp",
        ),
    ],
)
def test_auth_failure_is_a_clear_connector_error(make: Callable[[str, Any], Any], call: str) -> None:
    fakes = {
        "slack": vs.FakeSlack,
        "pd": vs.FakePagerDuty,
        "og": vs.FakeOpsgenie,
        "jira": vs.FakeJira,
        "gh": vs.FakeGitHub,
        "sp": vs.FakeStatuspage,
    }
    fake = fakes[call](TOKEN)
    with (
        vs.serve(fake) as url,
        make(url, fake) as connector,
        pytest.raises(ConnectorError, match="authentication refused") as info,
    ):
        if call == "slack":
            connector.snapshot(vs.CHANNEL)
        else:
            connector.closed_since(vs.at(-60))
    assert len(fake.requests) == 1  # never retried
    assert "bad" not in str(info.value).split("authentication")[0]


def test_token_never_logged(
    caplog: pytest.LogCaptureFixture,
    pagerduty: tuple[vs.FakePagerDuty, PagerDutyConnector],
    jira: tuple[vs.FakeJira, JiraConnector],
    slack: tuple[vs.FakeSlack, SlackConnector],
) -> None:
    caplog.set_level(logging.DEBUG)
    pd_fake, pd = pagerduty
    pd_fake.faults[f"/incidents/{vs.PD_INCIDENT}"] = [(429, {"Retry-After": "0"}), (500, {})]
    pd.snapshot(vs.PD_INCIDENT)
    jira[0].faults["/rest/api/3/search/jql"] = [(502, {})]
    jira[1].closed_since(vs.at(-60))
    slack[1].snapshot(vs.CHANNEL)
    bad = PagerDutyConnector(PagerDutyConfig(base_url=pd_fake.base_url, token=SecretStr(TOKEN + "x")))
    with pytest.raises(ConnectorError) as info:
        bad.closed_since(vs.at(0))
    bad.close()
    text = caplog.text + str(info.value) + repr(PagerDutyConfig(base_url="x", token=SecretStr(TOKEN)))
    assert "retrying" in caplog.text and "HTTP Request" in caplog.text  # the logs did capture the calls
    assert TOKEN not in text


# --- end to end: snapshot -> bundle -> draft -------------------------------------------------------------------


def test_snapshot_bundle_loads_and_drafts(
    tmp_path: Path,
    slack: tuple[vs.FakeSlack, SlackConnector],
    pagerduty: tuple[vs.FakePagerDuty, PagerDutyConnector],
    opsgenie: tuple[vs.FakeOpsgenie, OpsgenieConnector],
    jira: tuple[vs.FakeJira, JiraConnector],
    github: tuple[vs.FakeGitHub, GitHubConnector],
    statuspage: tuple[vs.FakeStatuspage, StatuspageConnector],
) -> None:
    bundle_dir = tmp_path / "INC-42"
    for (_, connector), ref in [
        (slack, vs.CHANNEL),
        (pagerduty, vs.PD_INCIDENT),
        (opsgenie, vs.OG_ALERT),
        (jira, vs.JIRA_KEY),
        (github, str(vs.GH_NUMBER)),
        (statuspage, vs.SP_INCIDENT),
    ]:
        write_snapshot(connector.snapshot(ref), bundle_dir)
    (bundle_dir / "incident.yaml").write_text(
        "id: INC-42\ntitle: Checkout 5xx after checkout-api v3.2.0 deploy\nseverity: SEV2\nservices: [checkout-api]\n"
    )

    bundle = load_bundle(bundle_dir)
    assert set(bundle.sources) == {
        Source.SLACK,
        Source.PAGERDUTY,
        Source.OPSGENIE,
        Source.JIRA,
        Source.GITHUB,
        Source.STATUSPAGE,
    }
    assert not bundle.quarantined
    assert bundle.unrecognised == []  # the raw Opsgenie REST responses are parsed
    assert sorted(d.path for d in bundle.documents[Source.OPSGENIE]) == [
        f"opsgenie/{vs.OG_ALERT}/{n}.json" for n in ("alert", "logs", "notes")
    ]

    _, draft = draft_bundle(bundle_dir, Settings(home=tmp_path / "home"))
    assert draft.incident.id == "INC-42"
    sources = {event.source for event in draft.timeline}
    assert {"slack", "pagerduty", "jira", "github", "statuspage", "opsgenie"} <= {str(s) for s in sources}
    opsgenie_entries = [e for e in draft.timeline if e.source == Source.OPSGENIE]
    assert [(e.kind, e.at, e.provenance.file.rsplit("/", 1)[-1]) for e in opsgenie_entries] == [
        ("page_triggered", vs.at(0.5), "alert.json"),  # the alert response wins over its "created" log
        ("acknowledged", vs.at(3.5), "logs.json"),  # the log wins over report.ackTime
        ("note", vs.at(15), "notes.json"),  # the note's text wins over the "Added note" log
        ("incident_resolved", vs.at(41), "logs.json"),
    ]
    assert opsgenie_entries[2].text == "Rolled back to v3.1.9"
    moments = draft.key_moments
    assert moments.detected.at is not None and moments.resolved.at is not None
    assert moments.started.at == vs.at(-10)  # the deploy bot's production deploy
    assert moments.detected.at == vs.at(0)  # the PagerDuty trigger
    assert moments.mitigated.at == vs.at(20)  # the rollback message in the channel
    assert moments.resolved.at >= vs.at(40)
    assert draft.metrics.time_to_detect_s == 600
    assert not draft.quarantine


# --- the Alertmanager receiver ---------------------------------------------------------------------------------


def _am_payload(group: str, status: str = "firing", minute: float = 0) -> dict[str, Any]:
    alert = {
        "status": status,
        "labels": {"alertname": "CheckoutHigh5xx", "service": "checkout-api", "severity": "critical"},
        "annotations": {"summary": "checkout-api 5xx ratio above 5%"},
        "startsAt": vs.iso(minute),
        "endsAt": vs.iso(minute + 30) if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph?g0.expr=x",
        "fingerprint": "c0ffee0000000001",
    }
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "postmortem",
        "groupLabels": {"alertname": "CheckoutHigh5xx"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [alert],
    }


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_receiver_lands_payloads_by_group_and_loads_as_bundle(receiver: tuple[str, Path]) -> None:
    url, landing = receiver
    group = '{}/{severity="critical"}:{alertname="CheckoutHigh5xx"}'
    first = json.dumps(_am_payload(group)).encode()
    status, answer = _post(f"{url}/alertmanager", first)
    assert status == 200
    stored = landing / answer["stored"]
    assert stored.read_bytes() == first  # byte for byte, written before the 200
    assert stored.parent.name == group_dir_name({"groupKey": group})
    assert _post(f"{url}/alertmanager", json.dumps(_am_payload(group, "resolved")).encode())[0] == 200
    assert _post(f"{url}/alertmanager", json.dumps(_am_payload("{}:{other}")).encode())[0] == 200

    folders = sorted(p for p in landing.iterdir() if p.is_dir())
    assert len(folders) == 2
    mine = landing / group_dir_name({"groupKey": group})
    files = sorted(mine.glob("*.json"))
    assert len(files) == 2 and files[0].name < files[1].name  # arrival order
    assert not list(mine.glob(".incoming-*"))
    bundle = load_bundle(mine)
    assert bundle.sources == [Source.ALERTMANAGER] and not bundle.quarantined


def test_receiver_rejects_non_json(receiver: tuple[str, Path]) -> None:
    url, landing = receiver
    assert _post(url, b"this is not json", "text/plain")[0] == 400
    assert _post(url, b"[1, 2, 3]")[0] == 400  # JSON, but not a webhook object
    assert _post(url, b"{" + b" " * 70_000 + b"}")[0] == 413
    assert not any(landing.rglob("*.json"))
    with urllib.request.urlopen(f"{url}/-/healthy", timeout=10) as response:
        assert response.status == 200


def test_receiver_concurrent_posts_all_land(receiver: tuple[str, Path]) -> None:
    url, landing = receiver
    results: list[int] = []

    def send(n: int) -> None:
        results.append(_post(url, json.dumps(_am_payload("{}:{burst}", minute=n)).encode())[0])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 12
    assert len(list((landing / group_dir_name({"groupKey": "{}:{burst}"})).glob("*.json"))) == 12


def test_pd_lookback_reaches_incidents_created_before_since(
    pagerduty: tuple[vs.FakePagerDuty, PagerDutyConnector],
) -> None:
    _, connector = pagerduty
    # created at T0, resolved at T0+40: found with since between the two only thanks to the lookback
    closed = connector.closed_since(vs.at(30), until=vs.at(200))
    assert vs.PD_INCIDENT in [c.id for c in closed]
    assert connector.config.lookback == timedelta(days=7)
