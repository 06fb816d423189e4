"""A real local LLM behind the OpenAI API: SmolLM2-135M-Instruct served by llama-cpp-python on 127.0.0.1.

Exercises the real client path (openai SDK, LangChain's ChatOpenAI) end to end: chat, streaming, usage counts and
JSON-schema-constrained output. The model is tiny: the tests check shapes and contracts, never the quality of prose.
Provision with `scripts/provision_local_llm.sh`; without it these tests skip with the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from tests.llm_server import (
    MODEL_ALIAS,
    LlamaServerError,
    find_local_model,
    llama_server_available,
    rewrite_chat_request,
    start_llama_server,
)

pytestmark = pytest.mark.local_llm

TIMEOUT_S = 120.0


class IncidentTriage(BaseModel):
    """A small structured answer, in the shape the drafter's contract uses (extra="forbid", enums, bounded text)."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(max_length=40, description="The affected service.")
    severity: Literal["SEV1", "SEV2", "SEV3"]
    customer_impact: bool


TRIAGE_PROMPT = (
    "Incident: the checkout service returned HTTP 500 for 20 minutes and customers could not pay. "
    "Answer in JSON with the affected service, the severity (SEV1, SEV2 or SEV3) and whether customers were impacted."
)


@dataclass(frozen=True)
class LocalLLM:
    base_url: str
    model: str
    start_s: float


@pytest.fixture(scope="module")
def local_llm() -> Iterator[LocalLLM]:
    if reason := llama_server_available():
        pytest.skip(reason)
    model_path = find_local_model()
    if model_path is None:
        pytest.skip("SmolLM2 GGUF not found under the assets dir (run scripts/provision_local_llm.sh)")
    t0 = time.monotonic()
    with start_llama_server(model_path) as base_url:
        start_s = time.monotonic() - t0
        print(f"\nllama_cpp.server ready in {start_s:.2f} s at {base_url}")
        yield LocalLLM(base_url=base_url, model=MODEL_ALIAS, start_s=start_s)


@pytest.fixture
def openai_client(local_llm: LocalLLM) -> Iterator[Any]:
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=local_llm.base_url, api_key="sk-local", timeout=TIMEOUT_S, max_retries=0) as client:
        yield client


def test_models_endpoint_lists_the_alias(openai_client: Any, local_llm: LocalLLM) -> None:
    assert local_llm.model in [m.id for m in openai_client.models.list()]


def test_openai_chat_completion_with_real_usage(
    openai_client: Any,
    local_llm: LocalLLM,
    record_property: pytest.RecordProperty,
) -> None:
    t0 = time.monotonic()
    resp = openai_client.chat.completions.create(
        model=local_llm.model,
        messages=[
            {"role": "system", "content": "You are a concise site reliability engineer."},
            {"role": "user", "content": "In two sentences, why do we write blameless postmortems?"},
        ],
        max_tokens=64,
        temperature=0,
    )
    elapsed = time.monotonic() - t0
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in {"stop", "length"}
    usage = resp.usage
    assert usage is not None
    assert usage.prompt_tokens > 10  # system + user message + chat template, tokenized for real
    assert 0 < usage.completion_tokens <= 64
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    tok_s = usage.completion_tokens / elapsed
    record_property("completion_tokens_per_s", round(tok_s, 1))
    print(f"\n{usage.completion_tokens} completion tokens in {elapsed:.2f} s: {tok_s:.1f} tok/s")


def test_openai_max_tokens_is_enforced(openai_client: Any, local_llm: LocalLLM) -> None:
    resp = openai_client.chat.completions.create(
        model=local_llm.model,
        messages=[{"role": "user", "content": "Write a long essay about databases."}],
        max_tokens=8,
        temperature=0,
    )
    assert resp.usage.completion_tokens <= 8
    assert resp.choices[0].finish_reason == "length"


def test_openai_streaming(openai_client: Any, local_llm: LocalLLM) -> None:
    stream = openai_client.chat.completions.create(
        model=local_llm.model,
        messages=[{"role": "user", "content": "Name three things an on-call engineer does."}],
        max_tokens=48,
        temperature=0,
        stream=True,
    )
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 1  # really streamed, token by token
    assert "".join(deltas).strip()


def test_openai_json_schema_response_format(openai_client: Any, local_llm: LocalLLM) -> None:
    schema = IncidentTriage.model_json_schema()
    schema["additionalProperties"] = False
    resp = openai_client.chat.completions.create(
        model=local_llm.model,
        messages=[{"role": "user", "content": TRIAGE_PROMPT}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "IncidentTriage", "schema": schema, "strict": True},
        },
        max_tokens=120,
        temperature=0,
    )
    content = resp.choices[0].message.content
    assert content is not None
    triage = IncidentTriage.model_validate_json(content)  # grammar-constrained: always valid, whatever the model
    assert set(json.loads(content)) == {"service", "severity", "customer_impact"}
    assert resp.usage.completion_tokens > 0
    assert triage.severity in {"SEV1", "SEV2", "SEV3"}


def test_openai_sdk_parse_with_pydantic_model(openai_client: Any, local_llm: LocalLLM) -> None:
    """The SDK's structured-output helper: pydantic model in, strict json_schema on the wire, parsed model out."""
    completion = openai_client.chat.completions.parse(
        model=local_llm.model,
        messages=[{"role": "user", "content": TRIAGE_PROMPT}],
        response_format=IncidentTriage,
        max_tokens=120,
        temperature=0,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, IncidentTriage)


def test_native_json_object_with_schema(openai_client: Any, local_llm: LocalLLM) -> None:
    """llama-cpp-python's own spelling of schema-constrained output, which needs no shim."""
    resp = openai_client.chat.completions.create(
        model=local_llm.model,
        messages=[{"role": "user", "content": TRIAGE_PROMPT}],
        response_format={"type": "json_object", "schema": IncidentTriage.model_json_schema()},
        max_tokens=120,
        temperature=0,
    )
    IncidentTriage.model_validate_json(resp.choices[0].message.content or "")


# ---- LangChain ------------------------------------------------------------------------------------------------------


@pytest.fixture
def chat_model(local_llm: LocalLLM) -> Any:
    langchain_openai = pytest.importorskip("langchain_openai")
    return langchain_openai.ChatOpenAI(
        model=local_llm.model,
        base_url=local_llm.base_url,
        api_key="sk-local",
        temperature=0,
        max_tokens=96,  # sent as max_completion_tokens; the server shim maps it to max_tokens
        timeout=TIMEOUT_S,
        max_retries=0,
        use_responses_api=False,  # llama-cpp-python has no Responses API
    )


def test_langchain_chat_openai_invoke_and_stream(chat_model: Any) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    msg = chat_model.invoke(
        [SystemMessage("You are a concise site reliability engineer."), HumanMessage("What is a postmortem?")]
    )
    assert isinstance(msg, AIMessage)
    assert isinstance(msg.content, str) and msg.content.strip()
    usage = msg.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert 0 < usage["output_tokens"] <= 96

    chunks = list(chat_model.stream("Say hello to the on-call engineer."))
    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks).strip()


def test_langchain_with_structured_output_json_schema(chat_model: Any) -> None:
    structured = chat_model.with_structured_output(IncidentTriage, method="json_schema", include_raw=True)
    out = structured.invoke(TRIAGE_PROMPT)
    assert out["parsing_error"] is None
    assert isinstance(out["parsed"], IncidentTriage)
    assert out["raw"].usage_metadata["output_tokens"] > 0


# ---- the helper itself ----------------------------------------------------------------------------------------------


def test_compat_shim_rewrites_only_what_the_server_lacks() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = {
        "messages": [],
        "max_completion_tokens": 7,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}},
    }
    out = rewrite_chat_request(body)
    assert out["response_format"] == {"type": "json_object", "schema": schema}
    assert out["max_tokens"] == 7
    untouched = {"messages": [], "max_tokens": 3, "max_completion_tokens": 9, "response_format": {"type": "text"}}
    assert rewrite_chat_request(dict(untouched)) == untouched


def test_server_that_cannot_start_fails_with_its_output(tmp_path: Path) -> None:
    if reason := llama_server_available():
        pytest.skip(reason)
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    with pytest.raises(LlamaServerError, match=r"exited with .*\n(.|\n)*gguf"), start_llama_server(bogus, timeout_s=60):
        pass
