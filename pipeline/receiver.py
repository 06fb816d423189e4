"""Alertmanager webhook receiver: Alertmanager only pushes, so we listen and land every payload durably.

``POST`` (any path, e.g. ``/alertmanager``) with a JSON object body is written, byte for byte, to
``<landing>/<group>/<received-at>-<n>.json`` where ``<group>`` is the first 16 hex digits of sha256(``groupKey``)
(``no-group-key`` when the payload has none), ``<received-at>`` is UTC ``YYYYmmddTHHMMSS.ffffffZ`` and ``n`` a
per-process sequence number, so names sort by arrival and never collide. The write goes to a temporary file that is
fsynced, renamed into place, and the directory fsynced; only then does the sender get ``200``. Each group folder is
therefore an Alertmanager bundle (one v4 payload per file) ``pipeline.bundle.load_bundle`` reads as it stands.

Answers: ``200 {"stored": "<group>/<file>"}``; ``400`` for a body that is not a JSON object; ``411``/``413`` for a
missing or oversized body; ``500`` when the write fails (Alertmanager then retries); ``GET /-/healthy`` → ``200``.

stdlib ``http.server`` (threaded) rather than an ASGI app: one endpoint, blocking fsync per request, no extra
moving parts; ``ReceiverConfig`` holds host/port/landing/max body. Run: ``postmortem receive``, or
``make_server(ReceiverConfig(...)).serve_forever()``. ``pipeline.alert_groups`` turns the landed groups into
incidents for the sweep.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import tempfile
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("pipeline.receiver")


class ReceiverConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(9095, ge=0, le=65535, description="0 picks a free port (tests).")
    landing: Path = Field(description="Root of the landing store.")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1)


def group_dir_name(payload: object) -> str:
    """The landing folder of a payload: a short hash of its Alertmanager ``groupKey``."""
    key = payload.get("groupKey") if isinstance(payload, dict) else None
    if not isinstance(key, str) or not key:
        return "no-group-key"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


class LandingStore:
    """Appends payloads under ``root``; each append is durable (file and directory fsynced) before it returns."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def append(self, payload: object, raw: bytes, received: datetime | None = None) -> Path:
        received = received or datetime.now(UTC)
        with self._lock:
            n = next(self._counter)
        folder = self.root / group_dir_name(payload)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{received.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}-{n:06d}.json"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
        return target


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Handler(BaseHTTPRequestHandler):
    server_version = "postmortem-receiver/0.1"
    store: ClassVar[LandingStore]
    max_body: ClassVar[int]

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/-/healthy", "/-/ready"):
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._answer(411, {"error": "Content-Length required"})
            return
        length = int(length_header)
        if length > self.max_body:
            self._answer(413, {"error": f"body larger than {self.max_body} bytes"})
            self.close_connection = True
            return
        raw = self.rfile.read(length)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._answer(400, {"error": "body is not JSON"})
            return
        if not isinstance(payload, dict):
            self._answer(400, {"error": "body is not a JSON object (an Alertmanager webhook payload)"})
            return
        try:
            stored = self.store.append(payload, raw)
        except OSError as exc:
            log.error("receiver: could not store payload: %s", exc)
            self._answer(500, {"error": "could not store payload"})
            return
        rel = stored.relative_to(self.store.root).as_posix()
        log.info("receiver: stored %s (%d bytes)", rel, len(raw))
        self._answer(200, {"stored": rel})

    def _answer(self, status: int, body: dict[str, str]) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("receiver: " + format, *args)


def make_server(config: ReceiverConfig) -> ThreadingHTTPServer:
    """A bound (not yet serving) receiver; ``server.server_address`` holds the real port."""
    config.landing.mkdir(parents=True, exist_ok=True)
    handler = type(
        "ReceiverHandler", (_Handler,), {"store": LandingStore(config.landing), "max_body": config.max_body_bytes}
    )
    server = ThreadingHTTPServer((config.host, config.port), handler)
    server.daemon_threads = True
    return server
