"""Every output is as clean as what goes to the LLM: secrets never, PII masked by default.

The test builds one hostile incident bundle (a Slack export, Alertmanager webhooks, Jira follow-ups) with an
AWS key and secret, a Slack bot token, a GitHub token, a JWT, a PEM private key, a Luhn-valid card number, a
password in a URL, an e-mail and a phone number inside an action item, a secret in an alert annotation, one in
a ticket title and one in a malformed record that is quarantined. Then it drafts it through every path and
looks for each raw value in every output: the Markdown and JSON drafts, the Slack post and Jira issues
publishing sends (to recording servers on 127.0.0.1), the eval report and its run log, the search index
(Chroma documents and the BM25 corpus), the LLM requests (a recording OpenAI-compatible stub) and CLI stdout.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.connectors.jira import JiraConfig, JiraConnector
from pipeline.connectors.slack import SlackConfig, SlackConnector
from pipeline.draft import actions
from pipeline.errors import ConfigError, LeakError
from pipeline.eval_metrics import Secret, find_leaks
from pipeline.leak_guard import check_model, check_text
from pipeline.models import Draft, Event, EventKind, Provenance, Source
from pipeline.publish import create_follow_ups, issue_fields, post_summary, summary_text
from pipeline.redact import Redactor
from pipeline.render import render_json
from pipeline.service import compose, draft_bundle, load_timeline
from pipeline.settings import Settings
from tests import vendor_servers as vs
from tests.openai_stub import Step, openai_stub
from tests.test_connectors import TOKEN, _fast

# --- the hostile values ------------------------------------------------------------------------------------

AWS_KEY = "AKIAQ7ZL5ECTEST1234X"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9TESTKEY"
SLACK_TOKEN = "xoxb-2048613-4096227-Zq8XfTr0nYbLw3Kp9MdVc2Hs"
GITHUB_TOKEN = "ghp_R4nd0mT0k3nF0rT3st1ngOnlyAbCdEf123456"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BODY = "MIIEpAIBAAKCAQEA7bqT0pSecretKeyMaterialForTestsOnly9x2Lk"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
CARD = "5555 5555 5555 4444"  # Luhn-valid Mastercard test number
URL_PASSWORD = "hunter2-S3cret"
URL = f"https://deploy:{URL_PASSWORD}@git.internal/platform/deploy.git"
EMAIL = "alice.ng@customer-corp.example"
PHONE = "+1 415 555 0142"
ANNOTATION_TOKEN = "ghp_AnN0tat10nT0kenZ9y8x7w6v5u4t3s2r1q0"  # in an Alertmanager annotation
TICKET_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"  # in a Jira follow-up title
QUARANTINED = "Qu4rant1ne-Pa55word"  # in a malformed Slack record (password=...)

SECRETS = [AWS_KEY, AWS_SECRET, SLACK_TOKEN, GITHUB_TOKEN, JWT, PEM_BODY, URL_PASSWORD, ANNOTATION_TOKEN]
SECRETS += [TICKET_KEY, QUARANTINED]
PII = [EMAIL, PHONE]
# how a value may show up after a transformation: a card with its spaces dropped, an escaped Markdown `_`
ALWAYS_MASKED = [*SECRETS, CARD, CARD.replace(" ", "")]
EVERYTHING = [*ALWAYS_MASKED, *PII]

CHANNEL = "inc-9001-deploys-broken"
DAY = "2025-03-04"


def _ts(minute: int, micro: int = 0) -> str:
    return f"{1741096800 + minute * 60}.{micro:06d}"


def _msg(minute: int, user: str, text: str) -> dict[str, Any]:
    return {"type": "message", "user": user, "text": text, "ts": _ts(minute)}


def _alert(minute: int, status: str, summary: str) -> dict[str, Any]:
    at = f"{DAY}T{14 + minute // 60:02d}:{minute % 60:02d}:00Z"
    alert = {
        "status": status,
        "labels": {"alertname": "DeployApiErrors", "service": "deploy-api", "severity": "page"},
        "annotations": {"summary": summary, "description": "every deploy of deploy-api fails"},
        "startsAt": at,
        "endsAt": at if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    return {
        "receiver": "pagerduty-deploy",
        "status": status,
        "alerts": [alert],
        "groupLabels": {"alertname": "DeployApiErrors"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "https://alertmanager.example",
        "version": "4",
        "groupKey": '{}:{alertname="DeployApiErrors"}',
        "truncatedAlerts": 0,
    }


def _ticket(key: str, title: str, minute: int, labels: list[str]) -> dict[str, Any]:
    created = f"{DAY}T{14 + minute // 60:02d}:{minute % 60:02d}:00.000+0000"
    return {
        "id": "10001",
        "key": key,
        "fields": {
            "summary": title,
            "created": created,
            "updated": created,
            "labels": labels,
            "issuetype": {"name": "Task"},
            "priority": {"name": "High"},
            "status": {"name": "To Do"},
            "assignee": {"displayName": "Bob Okafor", "emailAddress": "bob.okafor@corp.example"},
            "reporter": {"displayName": "Alice Ng"},
            "description": None,
            "duedate": "2025-03-20",
        },
    }


def build_bundle(root: Path) -> Path:
    """A Slack export, Alertmanager webhooks and Jira follow-ups, every planted value in a different field."""
    files: dict[str, Any] = {
        "incident.yaml": yaml.safe_dump(
            {
                "id": "INC-9001",
                "title": f"Deploys broken after credential rotation (see {URL})",
                "severity": "SEV2",
                "services": ["deploy-api"],
                "visibility": "internal",
                "channel": CHANNEL,
            }
        ),
        "slack/channels.json": [{"id": "C09001DEPL", "name": CHANNEL, "created": 1741090000}],
        "slack/users.json": [
            {"id": "U01ALICE", "name": "alice", "real_name": "Alice Ng"},
            {"id": "U02BOB", "name": "bob", "real_name": "Bob Okafor"},
        ],
        f"slack/{CHANNEL}/{DAY}.json": [
            _msg(2, "U01ALICE", "deploy-api is failing every deploy, looking"),
            _msg(
                4, "U02BOB", f"found it in the CI log: AWS_ACCESS_KEY_ID={AWS_KEY} aws_secret_access_key={AWS_SECRET}"
            ),
            _msg(5, "U02BOB", f"and the bot token leaked too: {SLACK_TOKEN}, plus GH {GITHUB_TOKEN}"),
            _msg(6, "U01ALICE", f"session cookie from the report: {JWT}"),
            _msg(7, "U02BOB", f"someone pasted the deploy key:\n```{PEM}```"),
            _msg(8, "U01ALICE", f"customer {EMAIL} called from {PHONE}, paid with card {CARD}"),
            _msg(9, "U02BOB", f"the runbook clones {URL} which is how the password got out"),
            {"type": "message", "user": "U02BOB", "text": f"password={QUARANTINED}", "ts": {"broken": True}},
            _msg(
                12,
                "U01ALICE",
                f"action item: @alice rotate key {AWS_KEY} and tell {EMAIL} ({PHONE}) by 2025-03-01",
            ),
            _msg(13, "U02BOB", f"follow-up: @bob remove {URL} from the runbook"),
            _msg(20, "U01ALICE", "rolled back the credential change, deploys are green again; mitigated"),
            _msg(30, "U01ALICE", "resolved, closing the incident"),
        ],
        "alertmanager/firing.json": _alert(1, "firing", f"deploy-api 5xx: token {ANNOTATION_TOKEN} rejected"),
        "alertmanager/resolved.json": _alert(21, "resolved", f"deploy-api 5xx: token {ANNOTATION_TOKEN} rejected"),
        "jira/OPS-77.json": _ticket("OPS-77", f"Revoke leaked Stripe key {TICKET_KEY}", 15, ["postmortem", "INC-9001"]),
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return root


def _raw_in(text: str, values: list[str] = EVERYTHING) -> list[str]:
    """The planted values found in `text`, also with Markdown/HTML escaping undone (never printed in full)."""
    plain = html.unescape(re.sub(r"\\(.)", r"\1", text))
    return [v[:6] + "…" for v in values if v in text or v in plain]


GOLD = {
    "incident": "INC-9001",
    "failure_mode": "credential rotation broke deploys; every kind of secret pasted in the channel",
    "moments": {},
    "action_items": [
        {"description": "Rotate the leaked AWS key", "owner": "Alice Ng", "type": "prevent"},
        {"description": "Remove the clone URL from the runbook", "owner": "Bob Okafor", "type": "process"},
        {"description": "Revoke leaked Stripe key", "owner": "Bob Okafor", "type": "prevent", "key": "OPS-77"},
    ],
    "traps": [
        {"kind": "secret_aws", "file": f"slack/{CHANNEL}/{DAY}.json", "value_hint": f"{AWS_KEY}, {AWS_SECRET}"},
        {"kind": "secret_slack_token", "file": f"slack/{CHANNEL}/{DAY}.json", "value_hint": SLACK_TOKEN},
        {"kind": "secret_password_in_url", "file": f"slack/{CHANNEL}/{DAY}.json", "value_hint": URL},
        {"kind": "pii_email_phone", "file": f"slack/{CHANNEL}/{DAY}.json", "value_hint": f"{EMAIL}, {PHONE}"},
        {"kind": "pii_card_number", "file": f"slack/{CHANNEL}/{DAY}.json", "value_hint": CARD},
        {"kind": "secret_github_token", "file": "alertmanager/firing.json", "value_hint": ANNOTATION_TOKEN},
        {"kind": "secret_stripe", "file": "jira/OPS-77.json", "value_hint": TICKET_KEY},
    ],
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = build_bundle(tmp_path / "INC-9001")
    (root / "gold.yaml").write_text(yaml.safe_dump(GOLD), encoding="utf-8")
    return root


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(home=tmp_path / "home", **kw)


def _draft(bundle: Path, settings: Settings) -> Draft:
    return draft_bundle(bundle, settings)[1]


def _markdown(draft: Draft, settings: Settings) -> str:
    from pipeline.render import render_markdown
    from pipeline.service import section_key

    return render_markdown(draft, key=section_key(settings))


# --- drafts: Markdown, JSON, files, CLI stdout -----------------------------------------------------------


def test_draft_markdown_and_json_hold_no_secret_and_no_pii(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    draft = _draft(bundle, settings)
    markdown, payload = _markdown(draft, settings), render_json(draft).decode()
    assert _raw_in(markdown) == [] and _raw_in(payload) == []
    assert _raw_in(json.dumps(json.loads(payload), ensure_ascii=False)) == []  # JSON escapes undone too
    # redacted, not dropped: the timeline still says what happened, with placeholders where the values were
    texts = " ".join(e.text for e in draft.timeline)
    for placeholder in ("[AWS_ACCESS_KEY_1]", "[SLACK_TOKEN_1]", "[JWT_1]", "[PRIVATE_KEY_1]", "[CARD_1]"):
        assert placeholder in texts
    assert "https://deploy:[URL_PASSWORD_1]@git.internal" in texts  # only the password part is replaced
    assert "[EMAIL_1]" in texts and "[PHONE_1]" in texts  # PII masked by default
    # the quarantined record is still there for a human, its secret is not
    (quarantined,) = draft.quarantine
    assert "password=[SECRET_" in quarantined.excerpt
    # the alert annotation and the ticket title are redacted where they surface (timeline, action items)
    alerts = [e.text for e in draft.timeline if e.source is Source.ALERTMANAGER]
    assert alerts and all(re.search(r"token \[[A-Z_]+_\d\] rejected", text) for text in alerts)
    assert "[STRIPE_KEY_1]" in " ".join(a.description for a in draft.action_items)
    assert "[URL_PASSWORD_1]" in draft.incident.title


def test_drafts_keep_their_action_items_and_owners(bundle: Path, tmp_path: Path) -> None:
    draft = _draft(bundle, _settings(tmp_path))
    stated = {a.owner: a for a in draft.action_items if not a.suggested}
    assert set(stated) == {"alice", "bob", "Bob Okafor"}
    rotate = stated["alice"]
    assert rotate.description == "Rotate key [AWS_ACCESS_KEY_1] and tell [EMAIL_1] ([PHONE_1])"
    assert rotate.due == "2025-03-01"
    # the "@" of the URL survives the mention parser (dropping it made "https://deploy:pw" + "git.internal" a
    # string no redactor recognises, and "git.internal" an owner)
    assert (
        stated["bob"].description
        == "Remove https://deploy:[URL_PASSWORD_1]@git.internal/platform/deploy.git from the runbook"
    )


def test_cli_draft_writes_and_prints_nothing_raw(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "drafts"
    runner = CliRunner()
    result = runner.invoke(app, ["draft", str(bundle), "--out", str(out), "--no-index"])
    assert result.exit_code == 0, result.output
    assert "INC-9001" in result.output and _raw_in(result.output) == []
    written = sorted(out.iterdir())
    assert {p.suffix for p in written} == {".md", ".json"}
    for path in written:
        assert _raw_in(path.read_text(encoding="utf-8")) == [], path.name
    as_json = runner.invoke(app, ["draft", str(bundle), "--out", str(out), "--no-index", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["incident"]["id"] == "INC-9001"
    assert _raw_in(as_json.stdout) == []


# --- the index and what search prints ----------------------------------------------------------------------


PAST_POSTMORTEM = f"""---
id: PM-8001
title: Deploy credentials leaked in a CI log ({EMAIL})
date: 2024-11-02
services: [deploy-api]
---
## Summary

Deploys of deploy-api failed after a credential rotation. The CI log printed {AWS_KEY} and the runbook cloned
{URL}; {EMAIL} ({PHONE}) reported it. Card {CARD} was in a support ticket.

## Action items

- Rotate the leaked AWS key {AWS_KEY} and remove the clone URL from the runbook
"""


def _index_files_with(root: Path, values: list[str]) -> list[str]:
    """Files anywhere under the index folder (Chroma's SQLite, the lexical snapshot and its BM25 corpus) that
    hold a planted value, compared case-insensitively (BM25 stores lower-cased tokens)."""
    wanted = [v.lower().encode() for v in values]
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            hits += [f"{path.name}: {v[:6].decode()}…" for v in wanted if v in data]
    return hits


def test_index_chroma_bm25_and_search_output_hold_no_raw_value(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("POSTMORTEM_HOME", str(home))
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    past = tmp_path / "past" / "PM-8001.md"
    past.parent.mkdir()
    past.write_text(PAST_POSTMORTEM, encoding="utf-8")
    indexed = runner.invoke(app, ["index", str(past)])
    assert indexed.exit_code == 0, indexed.output
    out = tmp_path / "drafts"
    drafted = runner.invoke(app, ["draft", str(bundle), "--out", str(out)])
    assert drafted.exit_code == 0, drafted.output
    settings = get_settings()

    # the past incident is related to this one; its title and snippet in the new draft are redacted
    draft = Draft.model_validate_json((out / "INC-9001.json").read_bytes())
    assert [r.incident_id for r in draft.related] == ["PM-8001"]
    assert _raw_in(draft.related[0].title + " " + draft.related[0].snippet) == []
    assert _raw_in((out / "INC-9001.md").read_text(encoding="utf-8")) == []

    # Chroma's documents, read back through its own client, and the BM25 corpus of the lexical snapshot
    from pipeline.service import open_index

    index = open_index(settings)
    assert index.stats()["incidents"] == 2
    import chromadb

    client = chromadb.PersistentClient(
        path=str(settings.index_dir / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False)
    )
    documents = [d for c in client.list_collections() for d in client.get_collection(c.name).get()["documents"] or []]
    assert documents and _raw_in("\n".join(documents)) == []
    assert any("[AWS_ACCESS_KEY_1]" in d for d in documents)  # the action item was indexed, redacted
    assert _index_files_with(settings.index_dir, EVERYTHING) == []

    # searching for a raw value finds nothing that contains it, and prints nothing raw
    for value in (AWS_KEY, URL_PASSWORD, EMAIL, TICKET_KEY):
        for hit in index.search(value, k=5):
            assert value not in hit.snippet and value not in hit.title
        result = runner.invoke(app, ["search", value, "--json"])
        assert result.exit_code == 0, result.output
        assert _raw_in(result.stdout) == []
    similar = runner.invoke(app, ["similar", str(bundle)])
    assert similar.exit_code == 0, similar.output
    assert "PM-8001" in similar.output and _raw_in(similar.output) == []
    get_settings.cache_clear()


# --- publishing: the Slack post and the Jira issues as sent ------------------------------------------------


class RecordingSlack(vs.FakeSlack):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.posts: list[dict[str, Any]] = []

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> vs.Answer:
        if path == "/api/chat.postMessage" and method == "POST":
            self.posts.append(body)
            return 200, {}, {"ok": True, "channel": body.get("channel"), "ts": "1741097000.000100"}
        return super().handle(method, path, query, body)


class RecordingJira(vs.FakeJira):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.created: list[dict[str, Any]] = []

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> vs.Answer:
        if path == "/rest/api/3/issue" and method == "POST":
            self.created.append(body["fields"])
            return 201, {}, {"id": str(30000 + len(self.created)), "key": f"OPS-{100 + len(self.created)}"}
        return super().handle(method, path, query, body)


def test_slack_post_and_jira_issues_as_sent_hold_no_raw_value(bundle: Path, tmp_path: Path) -> None:
    draft = _draft(bundle, _settings(tmp_path))
    slack_fake, jira_fake = RecordingSlack(TOKEN), RecordingJira(TOKEN)
    with vs.serve(slack_fake) as url, SlackConnector(SlackConfig(base_url=f"{url}/api", **_fast())) as slack:
        post_summary(slack, vs.CHANNEL, draft, link="https://wiki.example/pm/INC-9001")
    with vs.serve(jira_fake) as url, JiraConnector(JiraConfig(base_url=url, email=jira_fake.email, **_fast())) as jira:
        report = create_follow_ups(jira, "OPS", draft)
    (post,) = slack_fake.posts
    assert post["text"] == summary_text(draft, "https://wiki.example/pm/INC-9001")  # what the eval checks
    assert "[URL_PASSWORD_1]" in post["text"] and _raw_in(json.dumps(post, ensure_ascii=False)) == []
    assert len(report.created) == 2  # the two stated chat items; the Jira ticket already is one
    sent = json.dumps(jira_fake.created, ensure_ascii=False)
    assert "[AWS_ACCESS_KEY_1]" in sent and _raw_in(sent) == []
    assert jira_fake.created[0] == issue_fields("OPS", draft, draft.action_items[1])


def test_publishing_refuses_a_leaky_draft_before_sending(bundle: Path, tmp_path: Path) -> None:
    draft = _draft(bundle, _settings(tmp_path))
    leaky = draft.model_copy(update={"summary": f"{draft.summary} The key was {AWS_KEY}."})
    item = draft.action_items[1].model_copy(update={"description": f"Purge {SLACK_TOKEN} from the history"})
    slack_fake, jira_fake = RecordingSlack(TOKEN), RecordingJira(TOKEN)
    with (
        vs.serve(slack_fake) as url,
        SlackConnector(SlackConfig(base_url=f"{url}/api", **_fast())) as slack,
        pytest.raises(LeakError, match="AWS_ACCESS_KEY") as refused,
    ):
        post_summary(slack, vs.CHANNEL, leaky)
    assert AWS_KEY not in str(refused.value)  # the refusal names the kind, never the value
    with (
        vs.serve(jira_fake) as url,
        JiraConnector(JiraConfig(base_url=url, email=jira_fake.email, **_fast())) as jira,
        pytest.raises(LeakError, match="SLACK_TOKEN"),
    ):
        create_follow_ups(jira, "OPS", draft.model_copy(update={"action_items": [item]}))
    assert slack_fake.posts == [] and jira_fake.created == []


# --- what the LLM is sent, and what comes back -----------------------------------------------------------

_EVENT_ID = re.compile(r"ev_[0-9a-f]{16}")


def _answer_citing_the_email(body: dict[str, Any]) -> Step:
    """A model that does what a model does: it repeats a placeholder it was shown, citing an event it saw."""
    user = "\n".join(m["content"] for m in body["messages"] if m.get("role") == "user")
    if "[EMAIL_1]" not in user:
        return Step(status=400, content="")
    content = {
        "summary": "Deploys of deploy-api failed after a credential rotation; rolling it back restored them.",
        "impact_statement": "deploy-api deploys failed until the rollback.",
        "highlights": [],
        "contributing_factors": [],
        "action_items": [
            {"description": "Call [EMAIL_1] back", "type": "follow_up", "evidence": [_EVENT_ID.findall(user)[0]]}
        ],
        "lessons": [],
    }
    return Step(content=json.dumps(content))


def _llm_draft(bundle: Path, settings: Settings, tmp_path: Path) -> tuple[Draft, str]:
    from pipeline.draft.llm_drafter import LLMDrafter
    from pipeline.llm import LLMClient, LLMConfig, RunLog

    with openai_stub([], default=_answer_citing_the_email) as server:
        config = LLMConfig(model="stub-model", base_url=server.base_url, max_retries=1, backoff_s=0.01)
        client = LLMClient(config, RunLog(tmp_path / "llm_calls.jsonl"), None)
        bundle_obj, timeline = load_timeline(bundle, settings)
        draft, _ = compose(bundle_obj, timeline, settings, LLMDrafter(client, settings))
    assert server.requests, "the stub was never called"
    return draft, server.bodies_text()


def test_llm_requests_and_the_llm_draft_hold_no_raw_value(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    draft, sent = _llm_draft(bundle, settings, tmp_path)
    assert draft.provenance.drafter == "llm", draft.provenance.fallback_reason
    assert _raw_in(sent) == []
    assert "[AWS_ACCESS_KEY_1]" in sent and "[URL_PASSWORD_1]" in sent  # the model still learns what happened
    assert _raw_in(render_json(draft).decode()) == [] and _raw_in(_markdown(draft, settings)) == []
    (item,) = draft.action_items
    assert item.description == "Call [EMAIL_1] back"  # masked in the output: the default
    log = (tmp_path / "llm_calls.jsonl").read_text(encoding="utf-8")
    assert _raw_in(log) == []


def test_unmasked_pii_still_never_reaches_the_llm_and_comes_back_in_the_output(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path, mask_pii_in_outputs=False)
    draft, sent = _llm_draft(bundle, settings, tmp_path)
    assert draft.provenance.drafter == "llm", draft.provenance.fallback_reason
    assert _raw_in(sent) == []  # the LLM is sent placeholders for PII whatever the output policy
    (item,) = draft.action_items
    assert item.description == f"Call {EMAIL} back"  # put back from the LLM's placeholder: outputs keep PII
    assert _raw_in(render_json(draft).decode(), ALWAYS_MASKED) == []


# --- the evaluation: its leak metric, report and run log ---------------------------------------------------


def test_eval_report_and_run_log_hold_no_raw_value_and_count_zero_leaks(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTMORTEM_HOME", str(tmp_path / "home"))
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    suite = tmp_path / "hostile.v1.yaml"
    suite.write_text(
        yaml.safe_dump({"id": "hostile", "version": 1, "description": "planted secrets", "cases": [str(bundle)]}),
        encoding="utf-8",
    )
    report_dir = tmp_path / "report"
    args = ["eval", "--suite", str(suite), "--drafter", "facts", "--no-judge", "--baseline", "none"]
    result = CliRunner().invoke(app, [*args, "--report", str(report_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert _raw_in(result.stdout) == []
    summary = json.loads(result.stdout)
    assert summary["metrics"]["leaks"] == 0
    assert summary["metrics"]["action_item_recall"] > 0  # the gold's items were matched: drafts were scored
    for name in ("report.md", "report.html"):
        assert _raw_in((report_dir / name).read_text(encoding="utf-8")) == [], name
    (log,) = (tmp_path / "home" / "runs" / "evals").glob("*.jsonl")
    records = log.read_text(encoding="utf-8")
    assert '"excerpt"' in records and _raw_in(records) == []
    get_settings.cache_clear()


def test_the_leak_metric_sees_every_output(bundle: Path, tmp_path: Path) -> None:
    """A draft built around the scrubbing (raw timeline texts) is caught in the outputs the old metric never
    read: the timeline in Markdown and JSON, and the publish texts."""
    settings = _settings(tmp_path)
    draft = _draft(bundle, settings)
    _, raw = load_timeline(bundle, settings)
    secrets = [Secret("secret", v) for v in ALWAYS_MASKED] + [Secret("pii", v) for v in PII]
    assert find_leaks(draft, secrets) == []
    unscrubbed = draft.model_copy(update={"timeline": raw.entries()})
    kinds = "AWS_ACCESS_KEY, CARD, GITHUB_TOKEN, JWT, PRIVATE_KEY, SECRET, SLACK_TOKEN, STRIPE_KEY, URL_PASSWORD"
    assert find_leaks(unscrubbed, secrets) == [f"refused by the output guard: markdown ({kinds}); json ({kinds})"]
    # what the guard cannot recognise by pattern (PII) is still found by value, in the output that holds it
    pii_only = draft.model_copy(update={"summary": f"{draft.summary} Reach {EMAIL}."})
    (leak,) = find_leaks(pii_only, secrets)
    assert leak.startswith("pii (") and "markdown" in leak and "json" in leak and "slack" in leak


# --- masking is configurable; secrets are not ----------------------------------------------------------------


def test_unmasked_pii_is_kept_in_outputs_but_secrets_and_cards_never(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path, mask_pii_in_outputs=False)
    draft = _draft(bundle, settings)
    outputs = [_markdown(draft, settings), render_json(draft).decode(), summary_text(draft)]
    outputs += [json.dumps(issue_fields("OPS", draft, item)) for item in draft.action_items]
    for text in outputs:
        assert _raw_in(text, ALWAYS_MASKED) == []
    everything = "\n".join(outputs)
    assert EMAIL in everything and PHONE in everything
    rotate = next(a for a in draft.action_items if a.owner == "alice")
    assert rotate.description == f"Rotate key [AWS_ACCESS_KEY_1] and tell {EMAIL} ({PHONE})"
    # an e-mail kept in the text is not a mention: the owner is still the person who was @-mentioned
    assert {a.owner for a in draft.action_items if not a.suggested} == {"alice", "bob", "Bob Okafor"}


def test_restore_kinds_put_back_only_the_kinds_asked_for(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path, redaction_restore_kinds=["EMAIL"])
    markdown = _markdown(_draft(bundle, settings), settings)
    assert _raw_in(markdown, [*ALWAYS_MASKED, PHONE]) == []
    assert _raw_in(markdown, [EMAIL]) != []  # the one kind put back
    for refused in ("CARD", "AWS_ACCESS_KEY", "NAME"):
        with pytest.raises(ConfigError, match=f"{refused} cannot be put back"):
            _draft(bundle, _settings(tmp_path, redaction_restore_kinds=[refused]))


# --- the last line: a bypassed redaction is refused, never written ----------------------------------------


class _CopiesARawValue:
    """A drafter that writes something it was never given (a stand-in for any future bypass of the scrub)."""

    name = "leaky"

    def __init__(self, value: str) -> None:
        self.value = value

    def draft(self, facts: Any, timeline: Any) -> Any:
        from dataclasses import replace

        from pipeline.draft.facts_drafter import FactsDrafter

        result = FactsDrafter().draft(facts, timeline)
        content = result.content.model_copy(update={"summary": f"{result.content.summary} Ask {self.value}."})
        return replace(result, content=content)


def test_a_value_the_redactor_replaced_is_refused_even_without_a_pattern(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    loaded, timeline = load_timeline(bundle, settings)
    with pytest.raises(LeakError, match="EMAIL") as refused:
        compose(loaded, timeline, settings, _CopiesARawValue(EMAIL))  # an e-mail: only its value gives it away
    assert EMAIL not in str(refused.value)
    with pytest.raises(LeakError, match="URL_PASSWORD"):
        compose(loaded, timeline, settings, _CopiesARawValue(URL_PASSWORD))  # no "://" around it any more


def test_render_refuses_a_draft_holding_a_secret(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    draft = _draft(bundle, settings)
    _, raw = load_timeline(bundle, settings)
    unscrubbed = draft.model_copy(update={"timeline": raw.entries(), "quarantine": raw.quarantine})
    with pytest.raises(LeakError, match="PRIVATE_KEY"):
        render_json(unscrubbed)
    with pytest.raises(LeakError, match="JWT"):
        _markdown(unscrubbed, settings)
    # a generated file name looks like a key to the entropy rule; references are not free text
    named = draft.model_copy(update={"provenance": draft.provenance.model_copy(update={"bundle": "b/" + "Ab3" * 12})})
    check_model(named, "a draft")
    with pytest.raises(LeakError):
        check_text(f"see {TICKET_KEY}", "a report")


# --- siblings of the root cause -----------------------------------------------------------------------------


def _chat(text: str) -> Event:
    from datetime import UTC, datetime

    return Event(
        id="ev_0000000000000001",
        source=Source.SLACK,
        native_id="c:1",
        ts=datetime(2025, 3, 4, 14, 0, tzinfo=UTC),
        kind=EventKind.MESSAGE,
        text=text,
        provenance=Provenance(file="f.json", position="/0"),
    )


def test_the_mention_parser_leaves_emails_and_url_credentials_intact() -> None:
    (item,) = actions.from_chat([_chat(f"action item: @carol rotate {URL} and mail {EMAIL} by 2025-03-09")])
    assert item.owner == "carol" and item.due == "2025-03-09"
    assert URL in item.description and EMAIL in item.description  # nothing stripped: the redactor still sees them
    (item,) = actions.from_chat([_chat("TODO: clone https://deploy:[URL_PASSWORD_1]@git.internal/x again")])
    assert item.owner is None and "[URL_PASSWORD_1]@git.internal" in item.description


def test_a_second_redactor_numbers_after_the_placeholders_it_finds() -> None:
    first = Redactor(kinds={"EMAIL"})
    scrubbed = first.redact("from a@corp.example and b@corp.example")
    assert scrubbed == "from [EMAIL_1] and [EMAIL_2]"
    second = Redactor()
    again = second.redact(f"{scrubbed}, cc c@corp.example, call {PHONE}")
    assert again == "from [EMAIL_1] and [EMAIL_2], cc [EMAIL_3], call [PHONE_1]"
    assert second.restore(again, {"EMAIL"}) == "from [EMAIL_1] and [EMAIL_2], cc c@corp.example, call [PHONE_1]"
    assert second.distinct == {"EMAIL": 1, "PHONE": 1}


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("db_password=a&Zq9!xK2#mP7vL", "Zq9!xK2#mP7vL"),
        ("password=<Zq9xK2mP7vL>", "Zq9xK2mP7vL"),
        ("secret=(Zq9xK2mP7vL)", "Zq9xK2mP7vL"),
        ("api_key=ab;Zq9xK2mP7vLw8R", "Zq9xK2mP7vLw8R"),
        ("POSTGRES_PASSWORD=x,Zq9xK2mP7vLw8R", "Zq9xK2mP7vLw8R"),
        ("password=Tr0ub4dor&3xyz", "3xyz"),
        ("deploy --db-password a&b;cdefgh now", "cdefgh"),
    ],
)
def test_an_unquoted_value_is_a_secret_to_the_next_space_whatever_punctuation_it_holds(text: str, secret: str) -> None:
    """A bare value used to stop at `& < ( , ;`: the rest of the password stayed in clear text and the guard,
    knowing only the part replaced, let it through."""
    redacted = Redactor().redact(f"TODO: rotate it, {text} was pasted here.")
    assert secret not in redacted and "[SECRET_1]" in redacted and redacted.endswith(" was pasted here.")
    with pytest.raises(LeakError):
        check_text(f"summary: {text}", "a hand-built output")


def test_prose_punctuation_and_template_placeholders_are_not_taken_as_part_of_a_secret() -> None:
    assert Redactor().redact("(password=abc123).") == "(password=[SECRET_1])."
    assert Redactor().redact("set password=<your-password> in vault") == "set password=<your-password> in vault"
