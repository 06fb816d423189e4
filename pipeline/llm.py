"""The one boundary to language models: LangChain chat models over any OpenAI-compatible endpoint (OpenAI,
Azure-compatible gateways, Ollama, vLLM, LM Studio, llama.cpp), structured output against a pydantic model,
timeouts, retries with backoff that honour Retry-After, a response cache, and a JSONL log of every call.

Where a request may go is not decided here but by pipeline.egress: the chat model's HTTP clients use the egress
transport (every request and redirect hop checked, proxies applied only to remote hosts), and a LangChain
``provider:model`` — whose own client this module cannot route — is decided by name. Callers say whether a call
carries restricted content (``restricted=``) on every call.

Nothing outside this module imports LangChain or the OpenAI SDK.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from pipeline.atomic import append_line, write_atomic
from pipeline.egress import OPENAI_URL, PLACEHOLDER_KEY, EgressDecision, EgressPolicy
from pipeline.errors import EgressError, LLMError
from pipeline.prompts import Prompt
from pipeline.retry import backoff_s, retry_after_s
from pipeline.settings import Settings

if TYPE_CHECKING:
    import httpx

T = TypeVar("T", bound=BaseModel)
# LangChain's init_chat_model providers (langchain 1.x). A `prefix:` outside this set is part of a model name.
LANGCHAIN_PROVIDERS = frozenset(
    {
        "anthropic",
        "azure_ai",
        "azure_openai",
        "bedrock",
        "bedrock_converse",
        "cohere",
        "deepseek",
        "fireworks",
        "google_anthropic_vertex",
        "google_genai",
        "google_vertexai",
        "groq",
        "huggingface",
        "ibm",
        "mistralai",
        "nvidia",
        "ollama",
        "perplexity",
        "together",
        "upstage",
        "xai",
    }
)
Outcome = Literal["ok", "cache_hit", "invalid_output", "http_error", "timeout", "rate_limited", "server_error"]


@dataclass(frozen=True)
class LLMConfig:
    """Which model, where, and how patiently. Keys come from settings or OPENAI_API_KEY; never logged."""

    model: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 1.0
    context_tokens: int = 8192
    output_reserve_tokens: int = 1500
    response_format: Literal["json_schema", "json_object_schema"] = "json_schema"

    @property
    def provider(self) -> str:
        """``openai`` for plain names, ``openai:NAME`` and names whose prefix is no LangChain provider (Ollama's
        ``qwen2.5:7b`` is a model name, served on the base URL); else the LangChain provider of ``provider:NAME``,
        whose own client ignores the base URL."""
        prefix, colon, _ = self.model.partition(":")
        return prefix if colon and prefix in LANGCHAIN_PROVIDERS else "openai"

    @property
    def model_name(self) -> str:
        """The name the endpoint knows: without the ``provider:`` (or ``openai:``) prefix."""
        prefix, colon, rest = self.model.partition(":")
        return rest if colon and (prefix in LANGCHAIN_PROVIDERS or prefix == "openai") else self.model

    @property
    def url(self) -> str:
        """Where an openai-provider request goes first (redirects are checked hop by hop by the transport)."""
        return self.base_url or OPENAI_URL

    @property
    def endpoint(self) -> str:
        if self.provider != "openai":
            return f"langchain:{self.provider}"
        return urlparse(self.base_url).netloc if self.base_url else "api.openai.com"

    @classmethod
    def from_settings(cls, settings: Settings, model: str | None = None, base_url: str | None = None) -> LLMConfig:
        chosen = model or settings.llm_model
        if not chosen:
            raise LLMError("no model configured: pass --llm MODEL or set POSTMORTEM_LLM_MODEL")
        key = settings.llm_api_key or (
            SecretStr(os.environ["OPENAI_API_KEY"]) if os.environ.get("OPENAI_API_KEY") else None
        )
        return cls(
            model=chosen,
            base_url=base_url or settings.llm_base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=key,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            context_tokens=settings.llm_context_tokens,
            output_reserve_tokens=settings.llm_output_reserve_tokens,
            response_format=settings.llm_response_format,
        )


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0


class CallRecord(BaseModel):
    """One line of the run log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    at: datetime
    incident_id: str
    prompt: str
    prompt_sha256: str
    model: str
    endpoint: str
    attempt: int
    input_tokens: int
    output_tokens: int
    latency_ms: int
    outcome: Outcome
    error: str | None = None


@dataclass
class RunLog:
    path: Path

    def append(self, record: CallRecord) -> None:
        append_line(self.path, record.model_dump_json())

    def records(self) -> list[CallRecord]:
        if not self.path.exists():
            return []
        return [CallRecord.model_validate_json(line) for line in self.path.read_text("utf-8").splitlines() if line]


@dataclass
class ResponseCache:
    """Same redacted input, prompt hash and model -> the stored answer; a re-run costs 0 tokens."""

    root: Path

    def key(self, *parts: str) -> str:
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()

    def get(self, key: str) -> str | None:
        path = self.root / key[:2] / f"{key}.json"
        if not path.exists():
            return None
        content: str = json.loads(path.read_text("utf-8"))["content"]
        return content

    def put(self, key: str, content: str) -> None:
        write_atomic(self.root / key[:2] / f"{key}.json", json.dumps({"content": content}))


@dataclass
class StructuredAnswer(Generic[T]):
    value: T | None
    raw: str
    usage: Usage
    error: str | None = None
    cached: bool = False


HttpClients = tuple["httpx.Client", "httpx.AsyncClient"]
ChatFactory = Callable[[LLMConfig, Prompt, HttpClients], Any]


def _chat_model(config: LLMConfig, prompt: Prompt, http: HttpClients) -> Any:
    """LangChain chat model for the config. Plain model names (and `openai:NAME`) use ChatOpenAI with the base
    URL over `http` (the egress-checked clients); `provider:NAME` uses LangChain's init_chat_model when that
    provider's package is installed (the caller has decided that destination by name)."""
    provider, name = config.provider, config.model_name
    if provider != "openai":
        try:
            from langchain.chat_models import init_chat_model  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise LLMError(
                f"model {config.model!r} needs the langchain package and langchain-{provider}; "
                "or use an OpenAI-compatible base URL"
            ) from None
        return init_chat_model(name, model_provider=provider, temperature=prompt.params.temperature)
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=name,
        base_url=config.base_url,
        api_key=config.api_key or SecretStr(PLACEHOLDER_KEY),
        timeout=config.timeout_s,
        http_client=http[0],
        http_async_client=http[1],
        openai_proxy=None,  # routing is the egress transport's (OPENAI_PROXY would conflict with our clients)
        max_retries=0,  # retries are ours, so Retry-After is honoured and every attempt is logged
        temperature=prompt.params.temperature,
        max_completion_tokens=prompt.params.max_tokens,
        top_p=prompt.params.top_p,
        use_responses_api=False,  # Chat Completions: what every OpenAI-compatible server speaks
    )


@dataclass
class LLMClient:
    """Calls one configured model. ``policy`` decides where requests may go (default: the process settings'
    policy); its transports carry every request of the chat model."""

    config: LLMConfig
    log: RunLog
    cache: ResponseCache | None = None
    chat_factory: ChatFactory = _chat_model
    sleep: Callable[[float], None] = time.sleep
    policy: EgressPolicy = field(default_factory=EgressPolicy.default)
    calls: int = field(default=0, init=False)
    _http: dict[bool, HttpClients] = field(default_factory=dict, init=False, repr=False)

    def decision(self, *, restricted: bool) -> EgressDecision:
        """Where a call would go and whether it may (not recorded): the provider by name, else the base URL
        with the proxy that would carry it."""
        if self.config.provider != "openai":
            return self.policy.decide_provider(self.config.provider, purpose="llm", restricted=restricted)
        return self.policy.decide(
            self.config.url, purpose="llm", restricted=restricted, credential=self.config.api_key is not None
        )

    def refusal(self, *, restricted: bool) -> str | None:
        """Why content of this kind may not be sent to the configured model (the refusal is recorded), or None.
        Callers ask before preparing a request, to fall back with the reason."""
        decision = self.decision(restricted=restricted)
        if decision.allowed:
            return None
        self.policy.record(decision)
        return decision.reason

    def _clients(self, restricted: bool) -> HttpClients:
        """One pair of egress-checked httpx clients per kind of content, reused across calls."""
        if restricted not in self._http:
            self._http[restricted] = (
                self.policy.client(purpose="llm", restricted=restricted, follow_redirects=True),
                self.policy.async_client(purpose="llm", restricted=restricted, follow_redirects=True),
            )
        return self._http[restricted]

    def structured(
        self, prompt: Prompt, schema: type[T], *, incident_id: str, variables: dict[str, Any], restricted: bool
    ) -> StructuredAnswer[T]:
        """Ask for an answer that validates against `schema`. Transport failures are retried and then raised
        as LLMError; an answer that is not valid JSON for the schema is returned with `error` set, for the
        caller to re-ask or fall back. `restricted` says whether the variables carry a restricted incident's
        content: the egress policy then refuses (EgressError, never retried) any destination not on this
        machine — the base URL, a proxy, a redirect hop or a LangChain provider."""
        system, user = prompt.render(**variables)
        cache_key = (
            self.cache.key(self.config.model, self.config.endpoint, prompt.sha256, schema.__name__, system, user)
            if self.cache
            else ""
        )
        if self.cache is not None and (content := self.cache.get(cache_key)) is not None:
            self._log(prompt, incident_id, 0, Usage(), 0, "cache_hit")
            value, error = _parse(schema, content)
            return StructuredAnswer(value, content, Usage(), error, cached=True)

        if self.config.provider != "openai":  # its own client: decided by name, before anything is built
            self.policy.enforce(self.decision(restricted=restricted))
        else:
            self.policy.preflight(
                self.config.url, purpose="llm", restricted=restricted, credential=self.config.api_key is not None
            )
        model = _structured(
            self.chat_factory(self.config, prompt, self._clients(restricted)), schema, self.config, prompt
        )
        from langchain_core.messages import HumanMessage, SystemMessage

        messages = [SystemMessage(content=system), HumanMessage(content=user)]
        for attempt in range(1, self.config.max_retries + 2):
            started = time.perf_counter()
            try:
                result = model.invoke(messages)
            except EgressError:
                raise  # a refused destination (e.g. a redirect hop off the machine): asking again will not help
            except Exception as exc:  # noqa: BLE001 - classified below; unknown errors are re-raised
                if (cut := _cut_off(exc)) is not None:  # an answer, but truncated: the caller re-asks or falls back
                    content, usage = cut
                    latency = int((time.perf_counter() - started) * 1000)
                    self.calls += 1
                    error = "answer cut off at the length limit (finish_reason=length); it is not valid JSON"
                    self._log(prompt, incident_id, attempt, usage, latency, "invalid_output", error)
                    return StructuredAnswer(None, content, usage, error)
                outcome, retry_after = _classify(exc)
                latency = int((time.perf_counter() - started) * 1000)
                self._log(prompt, incident_id, attempt, Usage(), latency, outcome, _short(exc))
                if outcome == "http_error" or attempt > self.config.max_retries:
                    raise LLMError(
                        f"{self.config.endpoint} {outcome} after {attempt} attempt(s): {_short(exc)}"
                    ) from None
                self.sleep(retry_after if retry_after is not None else backoff_s(attempt, self.config.backoff_s))
                continue
            latency = int((time.perf_counter() - started) * 1000)
            self.calls += 1
            raw_message = result["raw"] if isinstance(result, dict) else result
            content = _content(raw_message)
            usage = _usage(raw_message)
            value, error = _parse(schema, content)
            self._log(prompt, incident_id, attempt, usage, latency, "ok" if error is None else "invalid_output", error)
            if error is None and self.cache is not None:
                self.cache.put(cache_key, content)
            return StructuredAnswer(value, content, usage, error)
        raise LLMError("unreachable: retry loop ended without an answer")  # pragma: no cover

    def _log(
        self,
        prompt: Prompt,
        incident_id: str,
        attempt: int,
        usage: Usage,
        latency_ms: int,
        outcome: Outcome,
        error: str | None = None,
    ) -> None:
        self.log.append(
            CallRecord(
                id=uuid.uuid4().hex,
                at=datetime.now(UTC),
                incident_id=incident_id,
                prompt=prompt.ref,
                prompt_sha256=prompt.sha256,
                model=self.config.model,
                endpoint=self.config.endpoint,
                attempt=attempt,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                latency_ms=latency_ms,
                outcome=outcome,
                error=error[:300] if error else None,
            )
        )


def _structured(chat: Any, schema: type[BaseModel], config: LLMConfig, prompt: Prompt) -> Any:
    """Constrain the answer to the schema in the endpoint's dialect; either way the raw text comes back, so a
    bad answer can be re-asked, logged and cached like any other.

    * ``json_schema`` — OpenAI's ``response_format`` (OpenAI, Azure, vLLM, Ollama, LM Studio). We pass the
      schema as a dict, not the class: with the class the SDK parses, and raises, inside the call.
    * ``json_object_schema`` — llama.cpp's server (llama-cpp-python 0.3.x rejects ``json_schema`` but
      constrains ``{"type": "json_object", "schema": ...}`` with a grammar, and ignores
      ``max_completion_tokens``, so ``max_tokens`` is sent as well).
    """
    json_schema = schema.model_json_schema()
    if config.response_format == "json_object_schema":
        return chat.bind(
            response_format={"type": "json_object", "schema": json_schema}, max_tokens=prompt.params.max_tokens
        )
    return chat.with_structured_output(json_schema, method="json_schema", include_raw=True)


def _parse(schema: type[T], content: str) -> tuple[T | None, str | None]:
    try:
        return schema.model_validate_json(_strip_fences(content)), None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:8])
        return None, f"answer does not match the {schema.__name__} schema: {problems}"


def _strip_fences(content: str) -> str:
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def _content(message: Any) -> str:
    content = getattr(message, "content", "")
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def _usage(message: Any) -> Usage:
    meta = getattr(message, "usage_metadata", None) or {}
    return Usage(input_tokens=int(meta.get("input_tokens", 0)), output_tokens=int(meta.get("output_tokens", 0)))


def _cut_off(exc: Exception) -> tuple[str, Usage] | None:
    """The truncated content and usage when the SDK refused to parse an answer that hit the token limit (it raises
    LengthFinishReasonError for ``finish_reason == "length"`` on the structured-output path), else None."""
    import openai

    if not isinstance(exc, openai.LengthFinishReasonError):
        return None
    completion = exc.completion
    content = (completion.choices[0].message.content or "") if completion.choices else ""
    usage = completion.usage
    tokens = Usage(
        input_tokens=usage.prompt_tokens if usage else 0, output_tokens=usage.completion_tokens if usage else 0
    )
    return content, tokens


def _classify(exc: Exception) -> tuple[Outcome, float | None]:
    """Map an SDK/transport error to an outcome and a server-requested delay."""
    import httpx
    import openai

    response = getattr(exc, "response", None)
    retry_after = retry_after_s(response.headers.get("retry-after")) if response is not None else None
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return "timeout", retry_after
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited", retry_after
    if isinstance(exc, openai.InternalServerError | openai.APIConnectionError):
        return "server_error", retry_after
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return "rate_limited", retry_after
        if status >= 500:
            return "server_error", retry_after
        return "http_error", None
    raise exc


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"
