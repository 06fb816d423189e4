"""Egress: nothing restricted leaves the machine, judged from the effective destination (provider, base URL, proxy,
every redirect hop), and every decision is recorded without a token in it.

"Remote" destinations are real remote host names (api.openai.com, embeddings.remote.example, …) while
HTTP_PROXY/HTTPS_PROXY/ALL_PROXY point at a recording proxy on 127.0.0.1 that records each request line
(CONNECT host:port included) and answers 502 without forwarding anything: whatever would leave the machine is
caught there, and nothing does. The LLM and embeddings paths use the real LangChain/OpenAI clients over HTTP.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pipeline.connectors.base import ApiClient, ConnectorConfig
from pipeline.connectors.slack import SlackConfig, SlackConnector
from pipeline.egress import EgressDecision, EgressPolicy
from pipeline.embeddings import OpenAIEmbedder
from pipeline.errors import EgressError
from pipeline.eval_metrics import Judge
from pipeline.evaluate import load_gold
from pipeline.index import Index
from pipeline.llm import LLMClient, LLMConfig, RunLog
from pipeline.models import Draft
from pipeline.service import draft_bundle, make_drafter, with_related
from pipeline.settings import Settings
from tests.conftest import SAMPLES
from tests.openai_stub import Step, openai_stub
from tests.test_embeddings import FakeEndpoint
from tests.test_embeddings import _handler as embeddings_handler
from tests.test_llm_drafter import _valid_answer

RESTRICTED = SAMPLES / "payments-provider-outage"
PUBLIC = SAMPLES / "checkout-bad-deploy"
INTERNAL = SAMPLES / "orders-db-pool-exhaustion"
API_KEY = "sk-test-egress-DO-NOT-LOG-4b1d9e"
VENDOR_TOKEN = "xoxb-egress-DO-NOT-LOG-77aa31"
PROXY_PASSWORD = "proxy-pass-DO-NOT-LOG-9c2e"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


# --- the recording proxy and recording servers ------------------------------------------------------------------


@dataclass
class Recorder:
    url: str = ""
    lines: list[str] = field(default_factory=list)


def _recording_handler(record: Recorder, answer: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _any(self) -> None:
            record.lines.append(self.requestline)
            length = int(self.headers.get("Content-Length") or 0)
            if length and self.command != "CONNECT":
                self.rfile.read(length)
            status, headers = answer(self)
            try:
                self.send_response(status)
                for key, value in {"Content-Length": "0", "Connection": "close", **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        do_CONNECT = do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

    return Handler


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on 127.0.0.1 (a free port) for the block; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def _serve(record: Recorder, answer: Any) -> Iterator[Recorder]:
    with _serving(_recording_handler(record, answer)) as url:
        record.url = url
        yield record


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Every proxy variable names the recording proxy (with credentials, which must never be logged)."""
    with _serve(Recorder(), lambda handler: (502, {})) as record:
        authed = record.url.replace("http://", f"http://pm-user:{PROXY_PASSWORD}@")
        for name in PROXY_VARS:
            monkeypatch.setenv(name, authed)
        for name in ("NO_PROXY", "no_proxy", "OPENAI_BASE_URL", "OPENAI_PROXY", "REQUEST_METHOD"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        yield record


@contextmanager
def redirector(location: str) -> Iterator[Recorder]:
    """A server on 127.0.0.1 that answers every request with 307 to `location` (a 307 keeps method and body)."""
    with _serve(Recorder(), lambda handler: (307, {"Location": location})) as record:
        yield record


@contextmanager
def embeddings_server() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint()
    with _serving(embeddings_handler(fake)) as url:
        fake.url = f"{url}/v1"
        yield fake


def _settings(**kw: Any) -> Settings:
    return Settings(llm_max_retries=0, llm_cache=False, **kw)


def _decisions(settings: Settings) -> list[EgressDecision]:
    path = settings.runs_dir / "egress.jsonl"
    if not path.exists():
        return []
    return [EgressDecision.model_validate_json(line) for line in path.read_text("utf-8").splitlines()]


def _assert_no_secrets(settings: Settings) -> None:
    text = (settings.runs_dir / "egress.jsonl").read_text("utf-8")
    for secret in (API_KEY, VENDOR_TOKEN, PROXY_PASSWORD, "pm-user", "Bearer"):
        assert secret not in text


def _draft_with(settings: Settings, bundle: Path, model: str, base_url: str | None) -> Draft:
    return draft_bundle(bundle, settings, make_drafter(settings, model, base_url))[1]


# --- the language model ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "base_url"),
    [
        ("gpt-4o-mini", None),  # OpenAI's own endpoint
        ("gpt-4o-mini", "https://api.openai.com/v1"),
        ("openai:gpt-4o-mini", "https://llm.remote.example/v1"),
        ("anthropic:claude-3-5-haiku-latest", None),  # a LangChain provider calls its own endpoint...
        ("anthropic:claude-3-5-haiku-latest", "http://127.0.0.1:9/v1"),  # ...whatever the base URL says
    ],
)
def test_restricted_incident_never_reaches_a_remote_model(proxy: Recorder, model: str, base_url: str | None) -> None:
    settings = _settings()
    draft = _draft_with(settings, RESTRICTED, model, base_url)
    assert draft.incident.visibility == "restricted"
    assert draft.provenance.drafter == "facts (fallback from llm)"
    reason = draft.provenance.fallback_reason or ""
    assert "restricted" in reason
    if model.startswith("anthropic:"):
        assert "LangChain provider 'anthropic'" in reason and "127.0.0.1" in reason
    assert proxy.lines == []
    (decision,) = _decisions(settings)
    assert (decision.purpose, decision.restricted, decision.allowed, decision.local) == ("llm", True, False, False)
    _assert_no_secrets(settings)


def test_open_incident_to_a_remote_model_is_routed_through_the_proxy(proxy: Recorder) -> None:
    """The route is checked, not skipped: an allowed remote call goes where the environment sends it."""
    settings = _settings()
    draft = _draft_with(settings, PUBLIC, "gpt-4o-mini", None)
    assert draft.provenance.drafter == "facts (fallback from llm)"  # the proxy answered 502
    assert "model call failed" in (draft.provenance.fallback_reason or "")
    assert proxy.lines == ["CONNECT api.openai.com:443 HTTP/1.1"]
    (decision,) = _decisions(settings)
    assert decision.allowed and not decision.local and not decision.restricted
    assert decision.destination == "api.openai.com:443"
    assert decision.via_proxy == proxy.url.removeprefix("http://")  # host:port only, no credentials
    assert decision.credential
    _assert_no_secrets(settings)


@pytest.mark.parametrize("model", ["stub-model", "qwen2.5:7b"])  # Ollama names hold a colon and no provider
def test_local_model_is_reached_directly_even_with_proxy_variables_set(proxy: Recorder, model: str) -> None:
    settings = _settings()
    with openai_stub([], default=Step(content=_valid_answer(RESTRICTED, settings))) as server:
        draft = _draft_with(settings, RESTRICTED, model, server.base_url)
    assert server.requests, "the local server was not reached"
    assert {r["model"] for r in server.requests} == {model}
    assert proxy.lines == []
    assert draft.incident.visibility == "restricted"
    decisions = _decisions(settings)
    assert decisions and all(d.allowed and d.local and d.restricted and d.via_proxy is None for d in decisions)
    assert {d.destination for d in decisions} == {server.base_url.split("/")[2]}


@pytest.mark.parametrize("restricted", [True, False])
def test_a_redirect_off_the_machine_is_decided_hop_by_hop(proxy: Recorder, restricted: bool) -> None:
    settings = _settings()
    bundle = RESTRICTED if restricted else PUBLIC
    with redirector("https://api.openai.com/v1/chat/completions") as local:
        draft = _draft_with(settings, bundle, "gpt-4o-mini", f"{local.url}/v1")
    assert len(local.lines) == 1  # the first hop was local; the refusal is not retried
    assert draft.provenance.drafter == "facts (fallback from llm)"
    first, second = _decisions(settings)
    assert first.local and first.allowed
    assert second.destination == "api.openai.com:443" and not second.local
    if restricted:
        assert "refused by the egress policy" in (draft.provenance.fallback_reason or "")
        assert not second.allowed and proxy.lines == []  # the 307 (body and all) never left
    else:
        assert second.allowed and proxy.lines == ["CONNECT api.openai.com:443 HTTP/1.1"]


def test_judge_does_not_send_a_restricted_incident_through_a_provider_or_remote_url(proxy: Recorder) -> None:
    settings = _settings()
    draft = draft_bundle(RESTRICTED, settings)[1]
    gold = load_gold(RESTRICTED)
    policy = EgressPolicy.from_settings(settings)
    for config in (LLMConfig(model="gpt-4o-mini"), LLMConfig(model="anthropic:claude-3-5-haiku-latest")):
        client = LLMClient(config, RunLog(settings.runs_dir / "llm_calls.jsonl"), policy=policy)
        result = Judge(client, settings).grade(draft, gold, "text")
        assert result.skipped and "restricted" in result.skipped and result.rubric is None
    assert proxy.lines == []
    assert [d.allowed for d in _decisions(settings)] == [False, False]


# --- embeddings and the similar-incident index ------------------------------------------------------------------


def _embedding_settings(base_url: str, **kw: Any) -> Settings:
    return _settings(embedding_provider="openai", embedding_base_url=base_url, embedding_model="test-embed", **kw)


def test_restricted_text_is_not_embedded_remotely_and_related_search_is_lexical(proxy: Recorder) -> None:
    """Documented behaviour: with a remote embedding endpoint, a restricted draft is not indexed (rejected, with
    the reason) and its related incidents come from the lexical index alone; open incidents are unaffected."""
    public = draft_bundle(PUBLIC, _settings())[1]
    internal = draft_bundle(INTERNAL, _settings())[1]
    restricted = draft_bundle(RESTRICTED, _settings())[1]
    with embeddings_server() as local:  # the index was built while the endpoint was on this machine
        settings = _embedding_settings(local.url)
        index = Index(settings, OpenAIEmbedder(settings), create=True)
        index.index_draft(public, "public.md")
        index.index_draft(internal, "internal.md")
    assert proxy.lines == []

    remote = _embedding_settings("https://embeddings.remote.example/v1")
    embedder = OpenAIEmbedder(remote, dimension=8)  # the index's dimension: no probe request
    with pytest.raises(EgressError, match=r"restricted content is not sent to embeddings\.remote\.example:443"):
        embedder.embed(["card 4111 1111 1111 1111 declined for ACME"], restricted=True)
    reopened = Index(remote, embedder)
    report = reopened.index_draft(restricted, "restricted.md", ["payments"])
    assert report.added == [] and len(report.rejected) == 1
    assert (
        "restricted, not indexed" in report.rejected[0].reason
        and "embeddings.remote.example" in report.rejected[0].reason
    )
    related = with_related(restricted, reopened, ["payments"], k=2)
    assert related.related and {r.incident_id for r in related.related} <= {public.incident.id, internal.incident.id}
    assert proxy.lines == []  # nothing was sent: not the restricted text, not the query
    refused = [d for d in _decisions(remote) if not d.allowed]
    assert refused and all(d.purpose == "embeddings" and d.restricted for d in refused)
    _assert_no_secrets(remote)


def test_restricted_text_is_embedded_by_a_local_endpoint_with_proxy_variables_set(proxy: Recorder) -> None:
    restricted = draft_bundle(RESTRICTED, _settings())[1]
    public = draft_bundle(PUBLIC, _settings())[1]
    with embeddings_server() as local:
        settings = _embedding_settings(local.url)
        index = Index(settings, OpenAIEmbedder(settings), create=True)
        index.index_draft(public, "public.md")
        report = index.index_draft(restricted, "restricted.md", ["payments"])
        related = with_related(restricted, index, ["payments"], k=1)
        sent = json.dumps([r["body"] for r in local.requests])
    assert report.added == [restricted.incident.id] and report.rejected == []
    assert restricted.incident.title.split()[0] in sent  # the restricted text went to the local endpoint
    assert related.related and related.related[0].incident_id == public.incident.id
    assert proxy.lines == []
    decisions = _decisions(settings)
    assert any(d.restricted and d.allowed and d.local for d in decisions)


# --- connectors and publishing ------------------------------------------------------------------------------------


def test_a_connector_token_is_never_sent_over_plain_http_to_a_remote_host(proxy: Recorder) -> None:
    settings = Settings()
    config = SlackConfig(base_url="http://slack.remote.example/api", token=SecretStr(VENDOR_TOKEN))
    with pytest.raises(EgressError, match=r"credential is never sent over plain http to slack\.remote\.example:80"):
        SlackConnector(config)
    # https is fine (no request is made here); a plain-http pagination link to another host is refused per request
    SlackConnector(config.model_copy(update={"base_url": "https://slack.remote.example/api"})).close()
    with redirector("http://unused.example/") as local:
        client = ApiClient(
            "test",
            ConnectorConfig(base_url=local.url, token=SecretStr(VENDOR_TOKEN), max_retries=0),
            {"Authorization": f"Bearer {VENDOR_TOKEN}"},
        )
        with pytest.raises(EgressError, match=r"plain http to pager\.remote\.example:80"):
            client.get_json("http://pager.remote.example/api/incidents?page=2")
        client.close()
        assert local.lines == []
    assert proxy.lines == []
    refused = [d for d in _decisions(settings) if not d.allowed]
    assert [(d.purpose, d.credential, d.scheme) for d in refused] == [
        ("connector:slack", True, "http"),
        ("connector:test", True, "http"),
    ]
    _assert_no_secrets(settings)


def test_a_restricted_incident_is_not_published_to_remote_slack_or_jira(
    proxy: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipeline.service import make_publisher
    from pipeline.sweep import LandingSource, sweep

    settings = Settings()
    landing = settings.home / "landing"
    landing.mkdir(parents=True)
    shutil.copytree(RESTRICTED, landing / RESTRICTED.name)
    settings.publish_path.write_text(
        "link_base: https://wiki.example/pm/\n"
        "slack: {token_env: PM_EGRESS_SLACK, channel: C0INC4242, base_url: 'https://slack.remote.example/api'}\n"
        "jira: {token_env: PM_EGRESS_JIRA, base_url: 'https://jira.remote.example', email: bot@example.com, "
        "project: PAY}\n"
    )
    monkeypatch.setenv("PM_EGRESS_SLACK", VENDOR_TOKEN)
    monkeypatch.setenv("PM_EGRESS_JIRA", VENDOR_TOKEN)
    publisher = make_publisher(settings)
    assert publisher is not None
    report = sweep(settings, [LandingSource(landing)], index=False, on_drafted=publisher)
    assert report.new == 1 and report.failed == 0
    (incident_id,) = publisher.withheld
    assert publisher.errors == {}
    reason = publisher.withheld[incident_id]
    assert "publish:slack" in reason and "publish:jira" in reason and "restricted content" in reason
    state = json.loads(next(settings.drafts_dir.rglob("published.json")).read_text("utf-8"))
    assert "posted_ts" not in state and state["follow_ups"] == {} and "restricted" in state["withheld"]
    assert proxy.lines == []
    refused = [d for d in _decisions(settings) if d.purpose.startswith("publish:")]
    assert [(d.purpose, d.allowed) for d in refused] == [("publish:slack", False), ("publish:jira", False)]
    _assert_no_secrets(settings)


# --- the policy's view of destinations -----------------------------------------------------------------------------


def test_locality_and_proxy_rules() -> None:
    env = {
        "HTTPS_PROXY": "http://proxy.corp:3128",
        "http_proxy": "proxy.corp:8080",
        "NO_PROXY": ".corp.example,10.0.0.0/8",
    }
    policy = EgressPolicy(local_hosts=["gpu-box.lan", "192.168.7.0/24"], environ=env)
    for host in (
        "127.0.0.1",
        "127.9.9.9",
        "localhost",
        "LOCALHOST.",
        "::1",
        "::ffff:127.0.0.1",
        "gpu-box.lan",
        "192.168.7.20",
    ):
        assert policy.is_local(host), host
    for host in ("0.0.0.0", "127.0.0.1.nip.io", "api.openai.com", "192.168.8.1", "localhost.evil.example", ""):
        assert not policy.is_local(host), host

    def via(url: str) -> str | None:
        proxy = policy.proxy_for(httpx.URL(url))
        return str(proxy) if proxy else None

    assert via("https://api.openai.com/v1") == "http://proxy.corp:3128"
    assert via("http://api.example.com/") == "http://proxy.corp:8080"
    assert via("http://127.0.0.1:8000/v1") is None  # local: never through a proxy
    assert via("https://jira.corp.example/") is None and via("https://corp.example/") is None  # NO_PROXY domain
    assert via("https://10.1.2.3/") is None  # NO_PROXY network
    assert via("https://notcorp.example/") == "http://proxy.corp:3128"
    # Under CGI, HTTP_PROXY is a request header (httpoxy) and is ignored; lower-case http_proxy still applies.
    cgi = EgressPolicy(environ={"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"})
    assert cgi.proxy_for(httpx.URL("http://api.example.com/")) is None

    decide = policy.decide
    assert not decide("https://gpu-box.lan/v1", purpose="llm", restricted=True, credential=True).via_proxy
    assert decide("https://gpu-box.lan/v1", purpose="llm", restricted=True, credential=True).allowed
    assert decide("http://gpu-box.lan/v1", purpose="llm", restricted=True, credential=True).allowed
    assert not decide("http://api.example.com/", purpose="llm", restricted=False, credential=True).allowed
    assert decide("http://api.example.com/", purpose="llm", restricted=False, credential=False).allowed
    assert not decide("ftp://127.0.0.1/", purpose="llm", restricted=False, credential=False).allowed
    allowing = EgressPolicy(allow_restricted_remote=True, environ={})
    assert allowing.decide("https://api.openai.com/v1", purpose="llm", restricted=True, credential=True).allowed
    # ... but never a credential over plain http to a remote host
    assert not allowing.decide("http://api.openai.com/v1", purpose="llm", restricted=True, credential=True).allowed
