"""Run a real local LLM (llama-cpp-python's OpenAI-compatible server) for tests. A helper, not a test module.

`scripts/provision_local_llm.sh` installs `llama-cpp-python[server]` into the venv and the SmolLM2-135M-Instruct GGUF
under the assets dir; `find_local_model()` looks where it puts it and `start_llama_server()` serves it on 127.0.0.1.

llama-cpp-python 0.3.36's server speaks an older dialect of Chat Completions than today's clients send:
- `response_format={"type": "json_schema", "json_schema": {"schema": S}}` (openai SDK `.parse()`, LangChain
  `with_structured_output(method="json_schema")`) is rejected with HTTP 500 ("Input should be 'text' or
  'json_object'"); its own spelling of the same grammar-constrained output is `{"type": "json_object", "schema": S}`;
- `max_completion_tokens` (what ChatOpenAI sends for `max_tokens`) is silently ignored: generation runs to n_ctx.
So by default the server runs through this module (`python -P tests/llm_server.py <llama_cpp.server args>`), which
is `python -m llama_cpp.server` plus a small ASGI shim that rewrites those two request fields and nothing else.
`start_llama_server(..., openai_compat=False)` runs the bare `-m llama_cpp.server`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

MODEL_SUBDIR = Path("models") / "smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
DEFAULT_N_CTX = 4096
DEFAULT_THREADS = int(os.environ.get("POSTMORTEM_LLM_THREADS", "2"))
STARTUP_TIMEOUT_S = float(os.environ.get("POSTMORTEM_LLM_STARTUP_TIMEOUT_S", "120"))

# llama_cpp.server reads its settings from unprefixed environment variables (pydantic-settings) and lets HOST, PORT
# and CONFIG_FILE override the command line; an inherited PORT or API_KEY would silently move or lock the server.
_SERVER_ENV_KEYS = frozenset(
    [
        "api_key",
        "cache",
        "cache_size",
        "cache_type",
        "chat_format",
        "chat_template_kwargs",
        "clip_model_path",
        "config_file",
        "disable_ping_events",
        "draft_model",
        "draft_model_num_pred_tokens",
        "embedding",
        "flash_attn",
        "hf_model_repo_id",
        "hf_pretrained_model_name_or_path",
        "hf_tokenizer_config_path",
        "host",
        "interrupt_requests",
        "kv_overrides",
        "last_n_tokens_size",
        "logits_all",
        "lora_base",
        "lora_path",
        "main_gpu",
        "model",
        "model_alias",
        "models",
        "mul_mat_q",
        "n_batch",
        "n_ctx",
        "n_gpu_layers",
        "n_threads",
        "n_threads_batch",
        "n_ubatch",
        "numa",
        "offload_kqv",
        "port",
        "root_path",
        "rope_freq_base",
        "rope_freq_scale",
        "rope_scaling_type",
        "rpc_servers",
        "seed",
        "split_mode",
        "ssl_certfile",
        "ssl_keyfile",
        "tensor_split",
        "type_k",
        "type_v",
        "use_mlock",
        "use_mmap",
        "verbose",
        "vocab_only",
        "yarn_attn_factor",
        "yarn_beta_fast",
        "yarn_beta_slow",
        "yarn_ext_factor",
        "yarn_orig_ctx",
    ]
)


class LlamaServerError(RuntimeError):
    """The llama.cpp server did not start or died; the message carries the tail of its output."""


def _model_dirs() -> list[Path]:
    """Where scripts/provision_local_llm.sh installs the model, most specific first."""
    dirs: list[Path] = []
    if assets := os.environ.get("POSTMORTEM_ASSETS"):
        dirs.append(Path(assets) / MODEL_SUBDIR)
    if home := os.environ.get("POSTMORTEM_HOME"):
        dirs.append(Path(home) / "assets" / MODEL_SUBDIR)
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    dirs.append(data_home / "postmortem-pipeline" / "assets" / MODEL_SUBDIR)
    return dirs


def find_local_model() -> Path | None:
    """The provisioned SmolLM2 GGUF, or None. `POSTMORTEM_LOCAL_LLM_MODEL` names any other GGUF explicitly."""
    if explicit := os.environ.get("POSTMORTEM_LOCAL_LLM_MODEL"):
        path = Path(explicit)
        return path if path.is_file() else None
    for d in _model_dirs():
        candidate = d / MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def llama_server_available() -> str | None:
    """None when the venv can run `python -m llama_cpp.server`, else the reason it cannot."""
    import importlib.util

    for mod in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not importable (run scripts/provision_local_llm.sh)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no output>"
    return "\n".join(text.splitlines()[-lines:]) or "<no output>"


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly on SIGINT
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


@contextlib.contextmanager
def start_llama_server(
    model_path: Path,
    port: int | None = None,
    *,
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: int = DEFAULT_THREADS,
    timeout_s: float = STARTUP_TIMEOUT_S,
    python: str | None = None,
    openai_compat: bool = True,
) -> Iterator[str]:
    """Serve `model_path` with `python -m llama_cpp.server` on 127.0.0.1; yield the OpenAI base URL (…/v1).

    The chat format is left unset so the server uses the chat template stored in the GGUF. Requests are served one
    at a time (interrupt_requests off: a new request waits rather than cutting a running one short). With
    `openai_compat` (default) the json_schema / max_completion_tokens shim described in the module docstring is on.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(model_path)
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    launcher = ["-P", str(Path(__file__).resolve())] if openai_compat else ["-m", "llama_cpp.server"]
    cmd = [
        python or sys.executable,
        *launcher,
        "--model", str(model_path),
        "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(n_threads),
        "--n_threads_batch", str(n_threads),
        "--n_gpu_layers", "0",
        "--interrupt_requests", "false",
        "--verbose", "false",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k.lower() not in _SERVER_ENV_KEYS}
    env.setdefault("OMP_NUM_THREADS", str(n_threads))
    # ggml's OpenMP threads spin-wait between ops; on a shared 2-core machine a descheduled spinner turns ~40 tok/s
    # into ~5 tok/s. PASSIVE makes them sleep instead.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + timeout_s
            while not _ready(base_url):
                if proc.poll() is not None:
                    raise LlamaServerError(
                        f"llama_cpp.server exited with {proc.returncode} before it was ready:\n{_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise LlamaServerError(
                        f"llama_cpp.server not ready after {timeout_s:.0f} s on {base_url}:\n{_tail(log_path)}"
                    )
                time.sleep(0.1)
            yield base_url
        finally:
            _stop(proc)


# ---- the OpenAI-compatibility shim, run inside the server process -------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def rewrite_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """Translate today's Chat Completions fields into the ones llama-cpp-python 0.3.36 understands."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        body["response_format"] = {"type": "json_object", **({"schema": schema} if schema is not None else {})}
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        body["max_tokens"] = body["max_completion_tokens"]
    return body


class OpenAICompatMiddleware:
    """Pure-ASGI middleware: rewrite the JSON body of POST …/chat/completions with `rewrite_chat_request`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            body = json.dumps(rewrite_chat_request(parsed)).encode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        scope = {**scope, "headers": headers}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)


def _serve() -> None:
    """`python -m llama_cpp.server` with the shim around its app (same command-line arguments)."""
    import llama_cpp.server.__main__ as server_main

    create_app = server_main.create_app

    def create_app_with_compat(*args: Any, **kwargs: Any) -> Any:
        return OpenAICompatMiddleware(create_app(*args, **kwargs))

    server_main.create_app = create_app_with_compat  # type: ignore[assignment]
    server_main.main()


if __name__ == "__main__":
    _serve()
