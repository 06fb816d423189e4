"""Sentence embeddings for the similar-incident index.

Two implementations of one small protocol:

- `LocalMiniLM` runs the int8 ONNX all-MiniLM-L6-v2 that `postmortem assets install` provisions (the same files
  Chroma's default embedding function reads) through onnxruntime with *dynamic* padding: inputs are tokenised once,
  sorted by length and batched so each batch is padded only to its own longest text (Chroma's function pads every
  input to 256 tokens, ~10x slower on typical postmortem text). Mean pooling over the attention mask and L2
  normalisation match sentence-transformers and Chroma.
- `OpenAIEmbedder` calls any OpenAI-compatible ``/v1/embeddings`` endpoint with the ``openai`` SDK, which retries
  429/5xx (honouring Retry-After) and applies timeouts. Its HTTP client is the egress policy's (pipeline.egress):
  callers say whether texts belong to a restricted incident (``embed(texts, restricted=...)``, restricted unless
  told otherwise), and restricted texts go only to an endpoint on this machine unless policy allows otherwise,
  whatever the proxy variables or a redirect say.

Nothing heavy happens at import or construction: onnxruntime, the tokenizer and the HTTP client are created on
first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from pipeline.assets import MINILM_FILES, MINILM_MODEL_SHA256, MINILM_NAME, minilm_dir
from pipeline.egress import OPENAI_URL, PLACEHOLDER_KEY, EgressPolicy
from pipeline.errors import AssetError, ConfigError, EmbeddingError
from pipeline.settings import Settings

if TYPE_CHECKING:
    from openai import OpenAI

Vectors = npt.NDArray[np.float32]

MINILM_DIMENSION = 384
MINILM_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model; Chroma truncates at the same length
# Padded tokens per onnxruntime call. Small batches keep the attention tensors (batch x 12 heads x len x len) in
# cache: on this 2-vCPU box 512 embeds ~2.5x more sentences per CPU-second than unbounded batches of 64.
MAX_BATCH_TOKENS = 512
_NEEDED = ("model.onnx", "tokenizer.json")
_INSTALL_HINT = "run `postmortem assets install`"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows. ``model_id`` is recorded on every Chroma collection."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str], *, restricted: bool = True) -> Vectors:
        """float32 array of shape ``(len(texts), dimension)``, rows of unit length, in input order.

        ``restricted``: the texts belong to a restricted incident (the default, so a caller that does not say is
        treated as carrying restricted text). An embedder that would send them off the machine refuses with
        EgressError before sending anything."""
        ...


def _normalise(rows: npt.NDArray[np.floating[Any]]) -> Vectors:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1e-12  # torch.nn.functional.normalize's epsilon, as Chroma does
    return np.ascontiguousarray(rows / norms, dtype=np.float32)


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not one string")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, not str")
    return items


class LocalMiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX) on the CPU, batched with dynamic padding. Thread-safe."""

    max_tokens = MINILM_MAX_TOKENS

    def __init__(
        self,
        settings: Settings,
        *,
        intra_op_threads: int | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
    ) -> None:
        self._dir = minilm_dir(settings)
        missing = [name for name in _NEEDED if not (self._dir / name).is_file()]
        if missing:
            raise AssetError(
                f"embedding model {MINILM_NAME} is not installed ({', '.join(missing)} missing in {self._dir}): {_INSTALL_HINT}"
            )
        self._batch_size = batch_size or settings.embedding_batch_size
        self._max_batch_tokens = max_batch_tokens
        self._threads = intra_op_threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._feeds: tuple[str, ...] = ()

    @property
    def model_id(self) -> str:
        return f"onnx/{MINILM_NAME}-int8@{MINILM_MODEL_SHA256[:8]}"

    @property
    def dimension(self) -> int:
        return MINILM_DIMENSION

    @property
    def model_dir(self) -> Path:
        return self._dir

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import hashlib

                import onnxruntime as ort  # type: ignore[import-untyped]
                from tokenizers import Tokenizer

                for spec in MINILM_FILES:
                    if spec.name in _NEEDED:
                        path = self._dir / spec.name
                        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != spec.sha256:
                            raise AssetError(f"{path} is missing or fails its sha256 check: {_INSTALL_HINT}")
                tokenizer = Tokenizer.from_file(str(self._dir / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=MINILM_MAX_TOKENS)
                tokenizer.no_padding()  # the file ships with fixed 128-token padding; we pad per batch ourselves
                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.log_severity_level = 3
                options.inter_op_num_threads = 1
                if self._threads:
                    options.intra_op_num_threads = self._threads
                session = ort.InferenceSession(
                    str(self._dir / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
                )
                self._feeds = tuple(i.name for i in session.get_inputs())
                self._tokenizer, self._session = tokenizer, session
            return self._session, self._tokenizer

    def _batches(
        self, sorted_lengths: npt.NDArray[np.int64], order: npt.NDArray[np.intp]
    ) -> Iterator[npt.NDArray[np.intp]]:
        """Consecutive runs of the length-sorted rows: at most batch_size rows and max_batch_tokens padded tokens."""
        start, n = 0, len(order)
        while start < n:
            end = start + 1  # a text longer than the budget goes alone
            while (
                end < n
                and end - start < self._batch_size
                and (end - start + 1) * int(sorted_lengths[end]) <= self._max_batch_tokens
            ):
                end += 1
            yield order[start:end]
            start = end

    def embed(self, texts: Sequence[str], *, restricted: bool = True) -> Vectors:
        """Runs on this machine: nothing leaves it, restricted or not."""
        items = _texts(texts)
        if not items:
            return np.zeros((0, MINILM_DIMENSION), dtype=np.float32)
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(items)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(items))
        order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: little padding
        pooled = np.empty((len(items), MINILM_DIMENSION), dtype=np.float32)
        for rows in self._batches(lengths[order], order):
            row_lengths = lengths[rows]
            width = int(row_lengths[-1])  # ascending: the last row is the longest
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, : row_lengths[r]] = encodings[i].ids
            mask = (np.arange(width)[None, :] < row_lengths[:, None]).astype(np.int64)
            inputs = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
            hidden = session.run(None, {name: inputs[name] for name in self._feeds})[0]
            weights = mask.astype(np.float32)
            summed = np.einsum("bsd,bs->bd", hidden, weights)
            pooled[rows] = summed / np.clip(weights.sum(axis=1, keepdims=True), 1e-9, None)
        return _normalise(pooled)


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, Azure-style proxies, vLLM, llama.cpp, Ollama…).

    Base URL and key come from ``POSTMORTEM_EMBEDDING_BASE_URL`` / ``POSTMORTEM_EMBEDDING_API_KEY``, else from
    ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``. A configured base URL without a key sends a placeholder key (local
    servers ignore it). The dimension is learned from the first response, unless given (``dimension``).

    Every request goes through the egress policy built from the settings (or ``policy``): one HTTP client for
    restricted texts and one for the rest, so each request is checked for what it carries.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = 60.0,
        max_retries: int = 5,
        batch_size: int | None = None,
        policy: EgressPolicy | None = None,
        dimension: int | None = None,
    ) -> None:
        self._model = settings.embedding_model
        self._policy = policy or EgressPolicy.from_settings(settings)
        self._base_url = settings.embedding_base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = (settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None) or os.environ.get(
            "OPENAI_API_KEY"
        )
        if not key:
            if self._base_url is None:
                raise ConfigError(
                    "the openai embedding provider needs an API key: set POSTMORTEM_EMBEDDING_API_KEY or "
                    "OPENAI_API_KEY (or POSTMORTEM_EMBEDDING_BASE_URL for a local endpoint)"
                )
            key = PLACEHOLDER_KEY
        self._key = key
        self._timeout = timeout
        self._max_retries = max_retries
        self._batch_size = batch_size or settings.embedding_batch_size
        self._lock = threading.Lock()
        self._clients: dict[bool, OpenAI] = {}
        self._dimension: int | None = dimension  # when known (e.g. from an existing index), no probe is sent

    @property
    def model_id(self) -> str:
        return f"openai/{self._model}"

    @property
    def endpoint(self) -> str:
        return self._base_url or OPENAI_URL

    @property
    def dimension(self) -> int:
        """The vector size; asks the endpoint once (one short probe text) if nothing was embedded yet."""
        if self._dimension is None:
            self.embed(["dimension probe"], restricted=False)
        assert self._dimension is not None
        return self._dimension

    def _get_client(self, restricted: bool) -> OpenAI:
        with self._lock:
            if restricted not in self._clients:
                from openai import OpenAI

                http = self._policy.client(purpose="embeddings", restricted=restricted, follow_redirects=True)
                self._clients[restricted] = OpenAI(
                    api_key=self._key,
                    base_url=self.endpoint,
                    timeout=self._timeout,
                    max_retries=self._max_retries,
                    # a legacy httpx client: the SDK accepts it at run time, its types name only httpx2
                    http_client=cast(Any, http),
                )
            return self._clients[restricted]

    def _request(self, batch: list[str], restricted: bool) -> npt.NDArray[np.float64]:
        import openai

        where = f"embedding endpoint {self.endpoint} (model {self._model})"
        try:
            response = self._get_client(restricted).embeddings.create(
                model=self._model, input=batch, encoding_format="float"
            )
        except openai.AuthenticationError as exc:
            raise EmbeddingError(
                f"{where} rejected the API key (HTTP {exc.status_code}): check POSTMORTEM_EMBEDDING_API_KEY / OPENAI_API_KEY"
            ) from exc
        except openai.RateLimitError as exc:
            raise EmbeddingError(f"{where} is still rate-limiting after {self._max_retries} retries") from exc
        except openai.APIStatusError as exc:
            raise EmbeddingError(f"{where} answered HTTP {exc.status_code}: {exc.message}") from exc
        except openai.APITimeoutError as exc:
            raise EmbeddingError(f"{where} timed out after {self._timeout:g} s ({self._max_retries} retries)") from exc
        except openai.APIConnectionError as exc:
            raise EmbeddingError(f"cannot reach {where}: {exc}") from exc
        except openai.OpenAIError as exc:
            raise EmbeddingError(f"{where} failed: {exc}") from exc
        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(len(batch))):
            raise EmbeddingError(f"{where} returned {len(data)} embeddings for {len(batch)} inputs")
        try:
            rows = np.asarray([item.embedding for item in data], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise EmbeddingError(f"{where} returned embeddings of unequal length or non-numbers") from exc
        if rows.ndim != 2 or rows.shape[1] == 0 or not np.isfinite(rows).all():
            raise EmbeddingError(f"{where} returned malformed embeddings (shape {rows.shape})")
        if (np.linalg.norm(rows, axis=1) == 0).any():
            raise EmbeddingError(f"{where} returned an all-zero embedding")
        return rows

    def embed(self, texts: Sequence[str], *, restricted: bool = True) -> Vectors:
        items = [text or " " for text in _texts(texts)]  # the API refuses empty strings
        # Refused before anything is built or sent (EgressError, recorded); the transport checks every request
        # (redirect hops included) as well.
        self._policy.preflight(
            self.endpoint, purpose="embeddings", restricted=restricted, credential=self._key != PLACEHOLDER_KEY
        )
        if not items:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        size = self._batch_size
        parts = [self._request(items[i : i + size], restricted) for i in range(0, len(items), size)]
        widths = {p.shape[1] for p in parts}
        if self._dimension is not None:
            widths.add(self._dimension)
        if len(widths) != 1:
            raise EmbeddingError(f"embedding endpoint {self.endpoint} changed dimension: {sorted(widths)}")
        self._dimension = widths.pop()
        return _normalise(np.vstack(parts))


def make_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for (``POSTMORTEM_EMBEDDING_PROVIDER``: local | openai)."""
    if settings.embedding_provider == "openai":
        return OpenAIEmbedder(settings)
    if settings.embedding_model != MINILM_NAME:
        raise ConfigError(
            f"the local embedding provider runs only {MINILM_NAME}, not {settings.embedding_model!r}; "
            "use POSTMORTEM_EMBEDDING_PROVIDER=openai with an endpoint that serves it"
        )
    return LocalMiniLM(settings)
