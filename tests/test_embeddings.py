"""Embeddings: the real int8 MiniLM (provisioned by `./run setup`) and a real local OpenAI-compatible HTTP server."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import assets
from pipeline.embeddings import Embedder, LocalMiniLM, OpenAIEmbedder, make_embedder
from pipeline.errors import AssetError, ConfigError, EmbeddingError
from pipeline.settings import Settings
from tests.conftest import ASSETS

MIXED = [
    "ok",
    "The checkout-api deploy v2.14.0 started at 14:02 UTC.",
    "Rollback",
    (
        "Customers saw HTTP 500 errors on checkout for 23 minutes because the new release disabled the connection "
        "pool to the payments gateway; retries from the mobile clients amplified the load on the primary database "
        "until replication lag crossed the failover threshold and the on-call engineer was paged."
    ),
    "",
    "DNS resolution for internal services failed in us-east-1 after a resolver config change.",
    "PagerDuty acknowledged by the on-call SRE.",
]


@pytest.fixture(scope="module")
def settings() -> Settings:
    s = Settings(assets=ASSETS)
    status = assets.embedding_model_status(s)
    assert all(ok for _, ok, _ in status), "run `./run setup` (postmortem assets install) first"
    return s


@pytest.fixture(scope="module")
def minilm(settings: Settings) -> LocalMiniLM:
    return LocalMiniLM(settings)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


# --- LocalMiniLM ------------------------------------------------------------------------------------------------


def test_vectors_are_float32_unit_rows_of_the_model_dimension(minilm: LocalMiniLM) -> None:
    vectors = minilm.embed(MIXED)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(MIXED), 384) == (len(MIXED), minilm.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vectors).all()
    assert minilm.model_id == f"onnx/all-MiniLM-L6-v2-int8@{assets.MINILM_MODEL_SHA256[:8]}"
    assert minilm.embed([]).shape == (0, 384)
    assert isinstance(minilm, Embedder)


def test_semantically_close_sentences_score_higher_than_unrelated_ones(minilm: LocalMiniLM) -> None:
    anchor, close, unrelated = minilm.embed(
        [
            "The primary database ran out of disk space and writes started failing.",
            "Disk on the DB master filled up, so inserts returned errors.",
            "The marketing team unveiled a new company logo at the offsite.",
        ]
    )
    assert float(anchor @ close) > float(anchor @ unrelated) + 0.3


def test_order_is_preserved_and_dynamic_padding_matches_embedding_each_text_alone(settings: Settings) -> None:
    small_batches = LocalMiniLM(settings, batch_size=3)  # several batches, each padded to its own longest text
    together = small_batches.embed(MIXED)
    alone = np.vstack([small_batches.embed([text]) for text in MIXED])
    assert _cos(together, alone).min() > 0.9999
    reversed_order = small_batches.embed(MIXED[::-1])[::-1]
    assert _cos(together, reversed_order).min() > 0.9999
    one_batch = LocalMiniLM(settings, batch_size=64, max_batch_tokens=10**6).embed(MIXED)  # all padded together
    assert _cos(together, one_batch).min() > 0.9999
    budgeted = LocalMiniLM(settings, max_batch_tokens=16).embed(MIXED)  # the long text alone, short ones in pairs
    assert _cos(together, budgeted).min() > 0.9999


def test_long_texts_are_truncated_at_256_tokens(minilm: LocalMiniLM) -> None:
    long_text = " ".join(f"event {i} alert fired on checkout-api" for i in range(200))  # far beyond 256 tokens
    a, b = minilm.embed([long_text, long_text + " and then the database failed over to the replica"])
    assert float(a @ b) > 0.9999


def test_agrees_with_chromas_own_embedding_function_on_our_files_without_network(
    settings: Settings, minilm: LocalMiniLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    # Any download attempt would go through this dead proxy and fail, so passing proves no network was needed.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    home = assets.minilm_home(settings)
    before = sorted(p.name for p in home.rglob("*"))
    chroma = ONNXMiniLM_L6_V2(preferred_providers=["CPUExecutionProvider"])
    chroma.DOWNLOAD_PATH = home  # its documented class attribute; it reads DOWNLOAD_PATH/onnx/
    theirs = np.asarray(chroma(MIXED), dtype=np.float32)
    ours = minilm.embed(MIXED)
    assert _cos(ours, theirs).min() > 0.999
    assert sorted(p.name for p in home.rglob("*")) == before  # nothing downloaded or extracted


def test_missing_model_is_a_clear_error_naming_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="postmortem assets install"):
        LocalMiniLM(Settings(home=tmp_path, assets=tmp_path / "none"))


def test_construction_is_cheap_and_a_corrupt_model_is_refused_on_first_use(settings: Settings, tmp_path: Path) -> None:
    broken = Settings(home=tmp_path, assets=tmp_path / "assets")
    target = assets.minilm_dir(broken)
    shutil.copytree(assets.minilm_dir(settings), target)
    (target / "model.onnx").write_bytes(b"not a model")
    embedder = LocalMiniLM(broken)  # only checks that the files exist
    with pytest.raises(AssetError, match="sha256"):
        embedder.embed(["hello"])


def test_make_embedder_picks_by_provider(settings: Settings) -> None:
    assert isinstance(make_embedder(settings), LocalMiniLM)
    remote = settings.model_copy(
        update={"embedding_provider": "openai", "embedding_base_url": "http://127.0.0.1:9/v1", "embedding_model": "m"}
    )
    embedder = make_embedder(remote)
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.model_id == "openai/m"
    with pytest.raises(ConfigError, match="all-MiniLM-L6-v2"):
        make_embedder(settings.model_copy(update={"embedding_model": "bge-small"}))


# --- OpenAIEmbedder against a real local HTTP server --------------------------------------------------------------


@dataclass
class FakeEndpoint:
    """A scripted OpenAI-compatible /v1/embeddings server: each request pops the next status (default 200)."""

    script: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    @staticmethod
    def vector(text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        return [float(len(text) + 1)] + [b / 10.0 for b in digest[:7]]  # 8 dims, deliberately not unit length


def _handler(endpoint: FakeEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            endpoint.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            status = endpoint.script.pop(0) if endpoint.script else 200
            if status == 429:
                error = {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}
                self._reply(429, {"error": error}, {"Retry-After": "0"})
            elif status == 401:
                error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
                self._reply(401, {"error": {**error, "code": "invalid_api_key"}})
            elif status != 200:
                self._reply(status, {"error": {"message": "upstream exploded", "type": "server_error"}})
            else:
                inputs = body["input"]
                data = [
                    {"object": "embedding", "index": i, "embedding": FakeEndpoint.vector(text)}
                    for i, text in enumerate(inputs)
                ][::-1]  # out of order on purpose: the client must sort by index
                usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
                self._reply(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})

    return Handler


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEndpoint]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeEndpoint()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _remote(endpoint: FakeEndpoint, **update: Any) -> Settings:
    return Settings(
        assets=ASSETS,
        embedding_provider="openai",
        embedding_base_url=endpoint.url,
        embedding_api_key="test-key",
        embedding_model="test-embed",
        **update,
    )


def test_openai_endpoint_retries_a_429_then_returns_normalised_rows_in_order(endpoint: FakeEndpoint) -> None:
    endpoint.script = [429]
    texts = ["alpha", "a much longer sentence about the outage", "", "gamma ray", "delta"]
    embedder = OpenAIEmbedder(_remote(endpoint, embedding_batch_size=2), max_retries=2)
    vectors = embedder.embed(texts)

    inputs = [r["body"]["input"] for r in endpoint.requests]
    assert inputs[0] == inputs[1] == ["alpha", "a much longer sentence about the outage"]  # retried after 429
    assert inputs[2:] == [[" ", "gamma ray"], ["delta"]]  # batches of 2; empty text sent as one space
    assert all(r["path"] == "/v1/embeddings" and r["auth"] == "Bearer test-key" for r in endpoint.requests)
    assert {r["body"]["model"] for r in endpoint.requests} == {"test-embed"}
    assert {r["body"]["encoding_format"] for r in endpoint.requests} == {"float"}

    assert vectors.dtype == np.float32 and vectors.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    expected = np.array([FakeEndpoint.vector(t or " ") for t in texts])
    assert _cos(vectors, expected).min() > 0.999999  # same direction, in input order
    assert embedder.dimension == 8 and embedder.model_id == "openai/test-embed"
    assert len(endpoint.requests) == 4  # the dimension was learned, not probed again


def test_openai_endpoint_auth_failure_is_a_clear_error_and_not_retried(endpoint: FakeEndpoint) -> None:
    endpoint.script = [401]
    with pytest.raises(EmbeddingError, match=r"rejected the API key \(HTTP 401\)"):
        OpenAIEmbedder(_remote(endpoint), max_retries=3).embed(["hello"])
    assert len(endpoint.requests) == 1


def test_openai_endpoint_persistent_5xx_gives_up_after_the_configured_retries(endpoint: FakeEndpoint) -> None:
    endpoint.script = [503, 503, 503]
    with pytest.raises(EmbeddingError, match="HTTP 503"):
        OpenAIEmbedder(_remote(endpoint), max_retries=1).embed(["hello"])
    assert len(endpoint.requests) == 2


def test_openai_env_vars_are_honoured_and_dimension_is_probed_once(
    endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", endpoint.url)
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    embedder = OpenAIEmbedder(Settings(assets=ASSETS, embedding_provider="openai", embedding_model="test-embed"))
    assert embedder.dimension == 8
    assert embedder.dimension == 8
    assert [r["auth"] for r in endpoint.requests] == ["Bearer env-key"]


def test_openai_without_key_or_endpoint_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="API key"):
        OpenAIEmbedder(Settings(assets=ASSETS, embedding_provider="openai"))
