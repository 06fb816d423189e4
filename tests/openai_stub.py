"""A scripted OpenAI-compatible server on 127.0.0.1 for tests: it speaks the real Chat Completions wire format
(so the real openai SDK and LangChain client talk to it over HTTP), answers from a script, and records every
request body."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], "Step"]


@dataclass
class Step:
    """One scripted answer: an HTTP status (with headers), or a 200 carrying `content`, optionally after a delay."""

    status: int = 200
    content: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    prompt_tokens: int = 100
    completion_tokens: int = 50
    finish_reason: str = "stop"  # "length": the answer hit the token limit


@dataclass
class StubServer:
    base_url: str
    requests: list[dict[str, Any]]
    script: list[Step | Reply]

    def bodies_text(self) -> str:
        return "\n".join(json.dumps(r, ensure_ascii=False) for r in self.requests)

    def user_messages(self) -> list[str]:
        return [m["content"] for r in self.requests for m in r.get("messages", []) if m.get("role") == "user"]


def _completion(body: dict[str, Any], step: Step) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "stub"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": step.content}, "finish_reason": step.finish_reason}
        ],
        "usage": {
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "total_tokens": step.prompt_tokens + step.completion_tokens,
        },
    }


@contextmanager
def openai_stub(script: list[Step | Reply], default: Step | Reply | None = None) -> Iterator[StubServer]:
    """Serve `script` in order (then `default` for any further request)."""
    requests: list[dict[str, Any]] = []
    queue = list(script)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                requests.append(body)
                item = queue.pop(0) if queue else default
            if item is None:
                self._send(500, {"error": {"message": "script exhausted", "type": "server_error"}})
                return
            step = item(body) if callable(item) else item
            if step.delay_s:
                time.sleep(step.delay_s)
            if step.status != 200:
                self._send(
                    step.status, {"error": {"message": f"scripted {step.status}", "type": "error"}}, step.headers
                )
                return
            self._send(200, _completion(body, step), step.headers)

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StubServer(f"http://127.0.0.1:{server.server_address[1]}/v1", requests, queue)
    finally:
        server.shutdown()
        server.server_close()
