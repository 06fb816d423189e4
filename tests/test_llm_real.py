"""The LLMDrafter through a REAL model: SmolLM2-135M-Instruct served by llama.cpp on 127.0.0.1, the same code
path as production (LangChain ChatOpenAI, schema-constrained output, validation, re-ask, fallback). The tiny
model's prose is weak; the test proves the path works and the result is valid, never judges quality."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.bundle import load_bundle
from pipeline.draft.llm_drafter import LLMDrafter
from pipeline.llm import LLMClient, LLMConfig, RunLog
from pipeline.service import compose, gather, normalise
from pipeline.settings import Settings
from tests.conftest import SAMPLES
from tests.llm_server import MODEL_ALIAS, find_local_model, llama_server_available, start_llama_server

pytestmark = pytest.mark.local_llm


@pytest.fixture(scope="module")
def llama_base_url() -> Iterator[str]:
    reason = llama_server_available()
    if reason:
        if os.environ.get("POSTMORTEM_REQUIRE_LOCAL_LLM"):
            pytest.fail(f"CI requires the local model: {reason}")
        pytest.skip(reason)
    model = find_local_model()
    assert model is not None
    # the plain llama_cpp.server, no request rewriting: our llm.py speaks its json_object+schema dialect itself
    with start_llama_server(model, n_ctx=8192, openai_compat=False) as base_url:
        yield base_url


def test_real_model_drafts_a_valid_postmortem(llama_base_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", llm_map_max_calls=0)
    config = LLMConfig(
        model=MODEL_ALIAS,
        base_url=llama_base_url,
        timeout_s=900,
        max_retries=1,
        context_tokens=8192,
        output_reserve_tokens=1500,
        response_format="json_object_schema",
    )
    client = LLMClient(config, RunLog(tmp_path / "llm_calls.jsonl"))
    bundle = load_bundle(SAMPLES / "checkout-bad-deploy")
    timeline = normalise(bundle, gather(bundle), settings)
    draft, report = compose(bundle, timeline, settings, LLMDrafter(client, settings))

    assert report.ok and draft.validation is not None and draft.validation.ok
    assert draft.provenance.model == MODEL_ALIAS
    assert draft.provenance.drafter in ("llm", "facts (fallback from llm)")
    if draft.provenance.drafter != "llm":
        assert draft.provenance.fallback_reason  # a fallback always says why
    records = client.log.records()
    assert records and all(r.endpoint.startswith("127.0.0.1") for r in records)
    answered = [r for r in records if r.outcome in ("ok", "invalid_output")]
    assert answered, [r.outcome for r in records]
    assert all(r.input_tokens > 500 and r.output_tokens > 0 for r in answered)  # real counts from the server
    assert draft.provenance.tokens["input"] == sum(r.input_tokens for r in answered)
