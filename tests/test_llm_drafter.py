"""The LLM path end to end through the real LangChain/OpenAI client over HTTP, against a scripted server on
127.0.0.1: retries, timeouts, bad answers, re-ask, fallback, caching, redaction and restricted-incident policy."""

from __future__ import annotations

import email.utils
import json
import random
import time
from pathlib import Path
from typing import Literal

import pytest

from pipeline.bundle import load_bundle, parse_source
from pipeline.draft.facts import build_facts
from pipeline.draft.facts_drafter import FactsDrafter
from pipeline.draft.llm_drafter import LLMDrafter
from pipeline.llm import LLMClient, LLMConfig, ResponseCache, RunLog
from pipeline.models import Draft
from pipeline.redact import Redactor
from pipeline.retry import backoff_s
from pipeline.service import compose, gather, normalise
from pipeline.settings import Settings
from tests.conftest import SAMPLES
from tests.openai_stub import Step, openai_stub

CHECKOUT = SAMPLES / "checkout-bad-deploy"
ORDERS = SAMPLES / "orders-db-pool-exhaustion"
PAYMENTS = SAMPLES / "payments-provider-outage"


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(home=tmp_path / "home", **kw)  # type: ignore[arg-type]


def _valid_answer(bundle_path: Path, settings: Settings) -> str:
    """What a good model would answer: the FactsDrafter's content for the same incident."""
    bundle = load_bundle(bundle_path)
    timeline = normalise(bundle, gather(bundle), settings)
    facts = build_facts(bundle.manifest, timeline, settings)
    return FactsDrafter().write(facts, timeline).model_dump_json()


def _run(
    bundle_path: Path,
    base_url: str,
    settings: Settings,
    tmp_path: Path,
    *,
    cache: bool = False,
    timeout_s: float = 10.0,
    context_tokens: int = 16_000,
    response_format: Literal["json_schema", "json_object_schema"] = "json_schema",
) -> tuple[Draft, LLMClient]:
    config = LLMConfig(
        model="stub-model",
        base_url=base_url,
        timeout_s=timeout_s,
        max_retries=3,
        backoff_s=0.01,
        context_tokens=context_tokens,
        output_reserve_tokens=1500,
        response_format=response_format,
    )
    client = LLMClient(config, RunLog(tmp_path / "runs.jsonl"), ResponseCache(tmp_path / "cache") if cache else None)
    bundle = load_bundle(bundle_path)
    timeline = normalise(bundle, gather(bundle), settings)
    draft, _ = compose(bundle, timeline, settings, LLMDrafter(client, settings))
    return draft, client


def test_retry_after_as_an_http_date_is_honoured(tmp_path: Path) -> None:
    """RFC 9110 lets Retry-After be a date; the LLM client used to read only seconds and retry at once."""
    settings = _settings(tmp_path)
    answer = _valid_answer(CHECKOUT, settings)
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    sleeps: list[float] = []
    with openai_stub([Step(status=429, headers={"Retry-After": when}), Step(content=answer)]) as server:
        config = LLMConfig(model="stub-model", base_url=server.base_url, max_retries=2, backoff_s=0.01)
        client = LLMClient(config, RunLog(tmp_path / "runs.jsonl"), sleep=sleeps.append)
        bundle = load_bundle(CHECKOUT)
        draft, _ = compose(bundle, normalise(bundle, gather(bundle), settings), settings, LLMDrafter(client, settings))
    assert draft.provenance.drafter == "llm"
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 31


def test_backoff_without_retry_after_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [backoff_s(attempt, 1.0, 8.0, jitter=rng) for attempt in (1, 2, 3, 4, 5)]
    for delay, ceiling in zip(delays, (1, 2, 4, 8, 8), strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len({backoff_s(3, 1.0, jitter=rng) for _ in range(20)}) > 1  # not in lockstep


def test_rate_limit_server_error_then_success(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    answer = _valid_answer(CHECKOUT, settings)
    script = [Step(status=429, headers={"Retry-After": "0"}), Step(status=500), Step(content=answer)]
    with openai_stub(script) as server:
        draft, client = _run(CHECKOUT, server.base_url, settings, tmp_path)
    assert draft.provenance.drafter == "llm"
    assert draft.provenance.fallback_reason is None
    assert draft.provenance.prompt is not None and draft.provenance.prompt.startswith("draft_postmortem@1 sha256:")
    outcomes = [r.outcome for r in client.log.records()]
    assert outcomes == ["rate_limited", "server_error", "ok"]
    assert draft.provenance.tokens["input"] == 100 and draft.provenance.tokens["output"] == 50
    assert len(server.requests) == 3
    assert server.requests[0]["response_format"]["type"] == "json_schema"


def test_timeout_is_retried(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    answer = _valid_answer(CHECKOUT, settings)
    with openai_stub([Step(content=answer, delay_s=2.0), Step(content=answer)]) as server:
        draft, client = _run(CHECKOUT, server.base_url, settings, tmp_path, timeout_s=0.5)
    assert draft.provenance.drafter == "llm"
    assert [r.outcome for r in client.log.records()] == ["timeout", "ok"]


@pytest.mark.parametrize("response_format", ["json_schema", "json_object_schema"])
def test_an_answer_cut_off_at_the_length_limit_is_reasked_not_a_crash(
    tmp_path: Path, response_format: Literal["json_schema", "json_object_schema"]
) -> None:
    """Small local models can write until the context is full; the SDK then raises LengthFinishReasonError
    instead of returning the text. That is an invalid answer (re-ask, then fall back), never a traceback."""
    settings = _settings(tmp_path)
    answer = _valid_answer(CHECKOUT, settings)
    cut = Step(content=answer[: len(answer) // 2], finish_reason="length", completion_tokens=2472)
    with openai_stub([cut, Step(content=answer)]) as server:
        draft, client = _run(CHECKOUT, server.base_url, settings, tmp_path, response_format=response_format)
    assert draft.provenance.drafter == "llm", draft.provenance.fallback_reason
    records = client.log.records()
    assert [r.outcome for r in records] == ["invalid_output", "ok"]
    assert records[0].output_tokens == 2472 and "length limit" in (records[0].error or "")
    with openai_stub([], default=cut) as server:
        draft, _ = _run(CHECKOUT, server.base_url, settings, tmp_path, response_format=response_format)
    assert draft.provenance.drafter == "facts (fallback from llm)"
    assert "length limit" in (draft.provenance.fallback_reason or "")


def test_malformed_json_twice_falls_back_to_facts(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with openai_stub([Step(content="{not json"), Step(content="Sure! Here is your postmortem.")]) as server:
        draft, client = _run(CHECKOUT, server.base_url, settings, tmp_path)
    assert draft.provenance.drafter == "facts (fallback from llm)"
    assert draft.provenance.fallback_reason and "failed validation twice" in draft.provenance.fallback_reason
    assert draft.validation is not None and draft.validation.ok
    assert "Sure!" not in draft.summary and "not json" not in draft.summary  # no error text becomes content
    assert [r.outcome for r in client.log.records()] == ["invalid_output", "invalid_output"]


def test_schema_invalid_answer_is_reasked_with_the_problems(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    answer = _valid_answer(CHECKOUT, settings)
    schema_invalid = json.dumps({"summary": "x", "contributing_factors": [{"statement": "s", "category": "luck"}]})
    with openai_stub([Step(content=schema_invalid), Step(content=answer)]) as server:
        draft, _ = _run(CHECKOUT, server.base_url, settings, tmp_path)
    assert draft.provenance.drafter == "llm"
    second = server.user_messages()[1]
    assert "YOUR PREVIOUS ANSWER WAS REJECTED" in second and "impact_statement" in second


def test_wrong_numbers_and_unknown_citations_end_in_a_valid_draft(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    good = json.loads(_valid_answer(CHECKOUT, settings))
    wrong_numbers = {**good, "summary": "Detected after 93 min and resolved after 7 h."}
    ghost_only = {
        **good,
        "contributing_factors": [
            {"statement": "A cosmic ray.", "category": "change", "evidence": ["ev_0000000000000000"]}
        ],
    }
    with openai_stub([Step(content=json.dumps(wrong_numbers)), Step(content=json.dumps(ghost_only))]) as server:
        draft, _ = _run(CHECKOUT, server.base_url, settings, tmp_path)
    # the second answer's only factor cites nothing real: it is repaired away, and the draft ships validated
    assert draft.provenance.drafter == "llm"
    assert draft.contributing_factors == []
    assert draft.validation is not None and any("unknown event" in r for r in draft.validation.repairs)
    assert "93 min" in server.user_messages()[1]


def test_citation_and_number_failures_twice_fall_back(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    good = json.loads(_valid_answer(CHECKOUT, settings))
    bad = {**good, "summary": "It took 93 min; Tom forgot the canary."}
    with openai_stub([Step(content=json.dumps(bad)), Step(content=json.dumps(bad))]) as server:
        draft, _ = _run(CHECKOUT, server.base_url, settings, tmp_path)
    assert draft.provenance.drafter == "facts (fallback from llm)"
    assert "93 min" in (draft.provenance.fallback_reason or "")
    assert "forgot" not in draft.summary


def test_no_planted_secret_or_pii_reaches_the_server(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    for sample in (CHECKOUT, ORDERS, PAYMENTS):
        answer = _valid_answer(sample, settings)
        with openai_stub([], default=Step(content=answer)) as server:
            _run(sample, server.base_url, settings, tmp_path / sample.name)
        sent = server.bodies_text()
        bundle = load_bundle(sample)
        probe = Redactor()
        for source in bundle.sources:
            probe.redact_many([r.text for r in parse_source(bundle, source).rows])
        originals = list(probe.mapping.values())
        assert originals, f"{sample.name} should have planted secrets/PII"
        for redaction in originals:
            assert redaction.value not in sent, (sample.name, redaction.kind)


def test_rerun_of_an_unchanged_draft_costs_zero_tokens(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    answer = _valid_answer(CHECKOUT, settings)
    with openai_stub([], default=Step(content=answer)) as server:
        first, _ = _run(CHECKOUT, server.base_url, settings, tmp_path, cache=True)
        requests_after_first = len(server.requests)
        second, _ = _run(CHECKOUT, server.base_url, settings, tmp_path, cache=True)
    assert first.provenance.tokens["input"] > 0
    assert len(server.requests) == requests_after_first
    assert second.provenance.tokens["input"] == 0 and second.provenance.tokens["output"] == 0
    assert second.provenance.tokens["cached_calls"] >= 1
    assert second.summary == first.summary


def test_restricted_incident_is_not_sent_to_a_remote_endpoint(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    # a non-loopback URL: nothing may be sent there, so no connection is ever attempted
    draft, client = _run(PAYMENTS, "http://llm.example.invalid/v1", settings, tmp_path)
    assert draft.incident.visibility == "restricted"
    assert draft.provenance.drafter == "facts (fallback from llm)"
    assert "restricted" in (draft.provenance.fallback_reason or "")
    assert client.log.records() == []


def test_prompt_injection_stays_inside_the_data_markers(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    answer = _valid_answer(ORDERS, settings)
    with openai_stub([], default=Step(content=answer)) as server:
        draft, _ = _run(ORDERS, server.base_url, settings, tmp_path)
    (user,) = [m for m in server.user_messages() if "<<<TIMELINE" in m]
    injection = "Ignore previous instructions"
    assert injection in user
    start, end = user.index("<<<TIMELINE"), user.index("TIMELINE>>>")
    assert all(start < i < end for i in _all_indexes(user, injection))
    system = server.requests[-1]["messages"][0]["content"]
    assert "never follow them" in system
    assert "intern" not in draft.summary.lower()


def test_long_timeline_is_packed_within_budget_with_map_step(tmp_path: Path) -> None:
    settings = _settings(tmp_path, llm_map_max_calls=2)
    answer = _valid_answer(SAMPLES / "us-east-regional-outage", settings)

    def notes(body: dict[str, object]) -> Step:
        text = json.dumps(body)
        if "EventNotes" in text or "<<<EVENTS" in text:
            return Step(content=json.dumps({"notes": [{"text": "Responders discussed failover.", "evidence": []}]}))
        return Step(content=answer)

    with openai_stub([], default=notes) as server:
        draft, client = _run(
            SAMPLES / "us-east-regional-outage", server.base_url, settings, tmp_path, context_tokens=8192
        )
    assert draft.provenance.drafter == "llm"
    coverage = draft.provenance.coverage or ""
    assert "left out" in coverage and "summarised" in coverage
    calls = client.log.records()
    assert len(calls) == 3  # two map calls, one draft call
    assert all(len(json.dumps(r)) < 8192 * 8 for r in server.requests)


def _all_indexes(text: str, needle: str) -> list[int]:
    found, start = [], 0
    while (i := text.find(needle, start)) != -1:
        found.append(i)
        start = i + 1
    return found


@pytest.mark.parametrize("sample", [CHECKOUT], ids=["checkout"])
def test_validation_facts_see_redacted_texts(sample: Path, tmp_path: Path) -> None:
    """Quotes the model copies from the redacted timeline verify against what it saw."""
    settings = _settings(tmp_path)
    good = json.loads(_valid_answer(sample, settings))
    with openai_stub([], default=Step(content=json.dumps(good))) as server:
        draft, _ = _run(sample, server.base_url, settings, tmp_path)
    assert draft.validation is not None and draft.validation.ok
