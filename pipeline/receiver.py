"""Alertmanager webhook receiver: Alertmanager only pushes, so we listen and land every payload durably.

``POST`` (any path, e.g. ``/alertmanager``) with an Alertmanager webhook body is written, byte for byte, to
``<landing>/<group>/<received-at>-<n>.json`` where ``<group>`` is the first 16 hex digits of sha256(``groupKey``),
``<received-at>`` is UTC ``YYYYmmddTHHMMSS.ffffffZ`` and ``n`` a per-process sequence number, so names sort by
arrival and never collide. The write goes to a temporary file that is fsynced, renamed into place, and the
directory fsynced (and, when the group's folder is new, its parent too, so the folder itself survives a crash);
only then does the sender get ``200``. Each group folder is therefore an Alertmanager bundle (one v4 payload per
file) ``pipeline.bundle.load_bundle`` reads as it stands.

The listener is meant to face a network, so it trusts nothing it is sent:

* **Authentication** as Alertmanager's own ``http_config`` sends it: a bearer token
  (``authorization: {type: Bearer, credentials: …}``) and/or basic auth (``basic_auth: {username, password}``).
  Secrets are compared in constant time (over their sha256, so not even the length leaks) and never logged.
  Without either, only a loopback address may be bound (``make_server`` refuses anything else).
* **Time**: a connection must send its headers within ``header_timeout_s`` and its body within
  ``body_timeout_s`` in total. A socket timeout alone would not do — it bounds each read, and a client that sends
  a byte every few seconds ("slow loris") never trips it — so one watchdog thread shuts down connections whose
  deadline has passed.
* **Memory**: at most ``max_connections`` connections are served at once, a body is at most ``max_body_bytes``
  and read only after the sender authenticated, as it arrives (never allocated up front from ``Content-Length``),
  and the bodies being received at once may together claim at most ``max_inflight_bytes`` (raised to one
  ``max_body_bytes`` if smaller). Beyond either cap a request is answered ``503`` with ``Retry-After`` (Alertmanager
  retries). Body memory is thereby bounded by ``max_inflight_bytes`` whatever the clients do.
* **Shape**: only an Alertmanager webhook is stored — ``version`` "4", a non-empty string ``groupKey``,
  ``status`` firing|resolved and ``alerts`` a list of objects each with a ``status`` and string ``labels`` —
  and its JSON nesting is checked without recursion before it is decoded.

Answers: ``200 {"stored": "<group>/<file>"}``; ``400`` (with the reason) for a body that is not such a payload;
``401`` without valid credentials; ``411``/``413`` for a missing or oversized body; ``503`` when all connections
are busy; ``500`` when the write fails (Alertmanager then retries); ``GET /-/healthy`` → ``200`` (no credentials
needed: it reveals nothing).

stdlib ``http.server`` (threaded) rather than an ASGI app: one endpoint, blocking fsync per request, no extra
moving parts. Run: ``postmortem receive``, or ``make_server(ReceiverConfig(...)).serve_forever()``.
``pipeline.alert_groups`` turns the landed groups into incidents for the sweep.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import itertools
import logging
import os
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from pipeline.atomic import fsync_dir
from pipeline.errors import ConfigError
from pipeline.limits import raw_json_depth_exceeds
from pipeline.settings import Settings

log = logging.getLogger("pipeline.receiver")


class ReceiverConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(9095, ge=0, le=65535, description="0 picks a free port (tests).")
    landing: Path = Field(description="Root of the landing store.")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1)
    token: SecretStr | None = Field(None, description="Bearer token (http_config.authorization.credentials).")
    basic_user: str | None = Field(None, description="Basic-auth user (http_config.basic_auth.username).")
    basic_password: SecretStr | None = Field(None, description="Basic-auth password.")
    header_timeout_s: float = Field(10.0, gt=0, description="Request line and headers must arrive within this.")
    body_timeout_s: float = Field(30.0, gt=0, description="The body must arrive within this, after the headers.")
    max_connections: int = Field(32, ge=1, description="Connections served at once; more are answered 503.")
    max_inflight_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Body bytes being received at once (at least one max_body_bytes)."
    )
    max_json_depth: int = Field(128, ge=2, description="Nesting depth of a payload's JSON.")

    @classmethod
    def from_settings(cls, settings: Settings, *, host: str | None = None, port: int | None = None) -> ReceiverConfig:
        return cls(
            host=host or settings.receiver_host,
            port=settings.receiver_port if port is None else port,
            landing=settings.alerts_landing,
            max_body_bytes=settings.receiver_max_body_bytes,
            token=settings.receiver_token,
            basic_user=settings.receiver_basic_user,
            basic_password=settings.receiver_basic_password,
            header_timeout_s=settings.receiver_header_timeout_s,
            body_timeout_s=settings.receiver_body_timeout_s,
            max_connections=settings.receiver_max_connections,
            max_inflight_bytes=settings.receiver_max_inflight_bytes,
            max_json_depth=settings.max_json_depth,
        )

    @property
    def authenticated(self) -> bool:
        return self.token is not None or self.basic_user is not None


# --- what an Alertmanager webhook is ---------------------------------------------------------------------------


class _Alert(BaseModel):
    """One alert of a notification. Fields Alertmanager adds in later releases are ignored, not refused: the
    payload is stored as its bytes, and refusing it would only make Alertmanager retry it forever."""

    model_config = ConfigDict(extra="ignore", strict=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)


class AlertmanagerWebhook(BaseModel):
    """The webhook_config payload, version 4 (https://prometheus.io/docs/alerting/latest/configuration/)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    version: Literal["4"]
    groupKey: str = Field(min_length=1)  # Alertmanager's spelling
    status: Literal["firing", "resolved"]
    alerts: list[_Alert]


def decode_payload(raw: bytes, max_depth: int) -> tuple[dict[str, object] | None, str | None]:
    """``raw`` decoded as an Alertmanager webhook payload, or why it is not one. Depth is checked on the bytes
    first, so a deeply nested document is refused before any decoder recurses into it."""
    if raw_json_depth_exceeds(raw, max_depth):
        return None, f"body nests deeper than {max_depth} levels"
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"body is not JSON ({str(exc).splitlines()[0][:120]})"
    if not isinstance(payload, dict):
        return None, "body is not a JSON object (an Alertmanager webhook payload)"
    try:
        AlertmanagerWebhook.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        return None, f"not an Alertmanager webhook (version 4): {where}: {first['msg']}"
    return payload, None


def group_dir_name(payload: object) -> str:
    """The landing folder of a payload: a short hash of its Alertmanager ``groupKey``."""
    key = payload.get("groupKey") if isinstance(payload, dict) else None
    if not isinstance(key, str) or not key:
        return "no-group-key"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


# --- the durable store -------------------------------------------------------------------------------------------


class LandingStore:
    """Appends payloads under ``root``; each append is durable (file and directory fsynced, and the root when the
    group folder is new) before it returns."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._durable_groups: set[str] = set()

    def _group_folder(self, name: str) -> Path:
        """The group's folder, created if needed. Until the root's entry for it is on disk a crash could lose the
        folder with every payload fsynced inside it, so the root is fsynced the first time this process uses a
        group (cheap: once per group per process), under the lock so no append returns before that."""
        folder = self.root / name
        with self._lock:
            if name not in self._durable_groups:
                folder.mkdir(parents=True, exist_ok=True)
                fsync_dir(self.root)
                self._durable_groups.add(name)
        return folder

    def append(self, payload: object, raw: bytes, received: datetime | None = None) -> Path:
        received = received or datetime.now(UTC)
        with self._lock:
            n = next(self._counter)
        folder = self._group_folder(group_dir_name(payload))
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
        fsync_dir(folder)
        return target


# --- deadlines and the connection cap --------------------------------------------------------------------------


class _Deadlines:
    """One thread that shuts down every connection whose current phase (headers, then body) has outlived its
    deadline: shutting a socket down wakes the handler blocked reading it, which then ends the connection."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[socket.socket, tuple[float, str]] = {}
        self._stopped = False
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, seconds: float, phase: str) -> None:
        with self._cond:
            self._due[sock] = (time.monotonic() + seconds, phase)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="receiver-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def disarm(self, sock: socket.socket) -> None:
        with self._cond:
            self._due.pop(sock, None)

    def stop(self) -> None:
        """Cut every connection still in a phase, and end the thread."""
        with self._cond:
            for sock in self._due:
                _shutdown(sock)
            self._due.clear()
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                for sock, (due, phase) in list(self._due.items()):
                    if due <= now:
                        del self._due[sock]
                        log.info("receiver: closed a connection that did not send its %s in time", phase)
                        _shutdown(sock)
                nearest = min((due for due, _ in self._due.values()), default=None)
                self._cond.wait(None if nearest is None else max(nearest - now, 0.0))


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its handler
        sock.shutdown(socket.SHUT_RDWR)


# Decoded JSON as Python objects is about this many times its bytes (a 10.4 MB webhook of small labels: 292 MB).
DECODED_FACTOR = 32


class _Budget:
    """Memory for bodies being received and decoded, over all connections: a request reserves DECODED_FACTOR times
    its Content-Length (at most the whole budget) before reading, and releases it once the payload is stored."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def reserve(self, n: int) -> bool:
        with self._lock:
            if self._used + n > self.limit:
                return False
            self._used += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self._used -= n


_CHUNK = 64 * 1024
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class ReceiverServer(ThreadingHTTPServer):
    """A threaded HTTP server with a cap on live connections and a watchdog on their deadlines."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, config: ReceiverConfig) -> None:
        self.config = config
        self.store = LandingStore(config.landing)
        self.deadlines = _Deadlines()
        self._slots = threading.BoundedSemaphore(config.max_connections)
        self.inflight = _Budget(max(config.max_inflight_bytes, config.max_body_bytes))
        super().__init__((config.host, config.port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("receiver: %d connections busy; refused one (503)", self.config.max_connections)
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.deadlines.disarm(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished or was cut off is routine here, not a traceback on stderr."""
        log.debug("receiver: connection from %s ended with an error", client_address[0], exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self.deadlines.stop()


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    server_version = "postmortem-receiver/0.2"

    def setup(self) -> None:
        config = self.server.config
        super().setup()
        self.connection.settimeout(max(config.header_timeout_s, config.body_timeout_s))  # per read; deadlines rule
        self.server.deadlines.arm(self.connection, config.header_timeout_s, "headers")

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        if parsed:
            self.server.deadlines.arm(self.connection, self.server.config.body_timeout_s, "body")
        return parsed

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/-/healthy", "/-/ready"):
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        config = self.server.config
        if not self._authorized():
            log.warning("receiver: refused a request from %s without valid credentials", self.client_address[0])
            self._answer(401, {"error": "credentials required"}, challenge=True)
            return
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length_header is None or not length_header.isdigit():
            self._answer(411, {"error": "Content-Length required"})
            return
        length = int(length_header)
        if length > config.max_body_bytes:
            self._answer(413, {"error": f"body larger than {config.max_body_bytes} bytes"})
            return
        # The budget covers a body from its first byte until it is stored: read, decoded (Python objects hold about
        # DECODED_FACTOR times the JSON's bytes) and validated. One body may take the whole budget, never more.
        charge = min(length * DECODED_FACTOR, self.server.inflight.limit)
        if not self.server.inflight.reserve(charge):
            log.warning("receiver: bodies in flight reached %d bytes; refused one (503)", self.server.inflight.limit)
            self._answer(503, {"error": "busy, retry"}, retry_after=True)
            return
        try:
            raw = self._read_body(length)
            if len(raw) < length:  # cut off by the body deadline, or the client went away
                log.info("receiver: connection from %s ended before its body was complete", self.client_address[0])
                self.close_connection = True
                return
            self.server.deadlines.disarm(self.connection)
            payload, problem = decode_payload(raw, config.max_json_depth)
            if payload is None:
                self._answer(400, {"error": problem or "not an Alertmanager webhook"})
                return
            try:
                stored = self.server.store.append(payload, raw)
            except OSError as exc:
                log.error("receiver: could not store payload: %s", exc)
                self._answer(500, {"error": "could not store payload"})
                return
            del payload
        finally:
            self.server.inflight.release(charge)
        rel = stored.relative_to(self.server.store.root).as_posix()
        log.info("receiver: stored %s (%d bytes)", rel, len(raw))
        self._answer(200, {"stored": rel})

    def _read_body(self, length: int) -> bytes:
        """The body, read as it arrives. ``rfile.read(length)`` would allocate ``length`` bytes up front, so a
        client claiming 10 MB and sending one byte would pin 10 MB; here memory follows the bytes actually sent."""
        chunks: list[bytes] = []
        received = 0
        while received < length:
            chunk = self.rfile.read1(min(_CHUNK, length - received))
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
        return b"".join(chunks)

    def _authorized(self) -> bool:
        """Is the request's Authorization what Alertmanager's http_config would send? Any configured scheme
        passes; with none configured (loopback only, see make_server) every request does."""
        config = self.server.config
        if not config.authenticated:
            return True
        scheme, _, value = (self.headers.get("Authorization") or "").strip().partition(" ")
        value = value.strip()
        if config.token is not None and scheme.lower() == "bearer":
            return _same_secret(value.encode("utf-8", "surrogateescape"), config.token.get_secret_value().encode())
        if config.basic_user is not None and config.basic_password is not None and scheme.lower() == "basic":
            try:
                presented = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            expected = f"{config.basic_user}:{config.basic_password.get_secret_value()}".encode()
            return _same_secret(presented, expected)
        return False

    def _answer(self, status: int, body: dict[str, str], *, challenge: bool = False, retry_after: bool = False) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after:
            self.send_header("Retry-After", "1")
        if challenge:
            config = self.server.config
            if config.token is not None:
                self.send_header("WWW-Authenticate", 'Bearer realm="postmortem"')
            if config.basic_user is not None:
                self.send_header("WWW-Authenticate", 'Basic realm="postmortem", charset="UTF-8"')
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("receiver: " + format, *args)  # the request line and status; never headers


def _same_secret(presented: bytes, expected: bytes) -> bool:
    """Constant-time comparison over digests, so neither the content nor the length of the secret leaks."""
    return hmac.compare_digest(hashlib.sha256(presented).digest(), hashlib.sha256(expected).digest())


def is_loopback(host: str) -> bool:
    """Does binding ``host`` listen only on this machine? Names other than ``localhost`` are not trusted to."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_config(config: ReceiverConfig) -> None:
    """Refuse a configuration that would accept anyone's payloads from the network, or half of basic auth."""
    if (config.basic_user is None) != (config.basic_password is None):
        raise ConfigError(
            "receiver basic auth needs both POSTMORTEM_RECEIVER_BASIC_USER and POSTMORTEM_RECEIVER_BASIC_PASSWORD"
        )
    for name, secret in (("TOKEN", config.token), ("BASIC_PASSWORD", config.basic_password)):
        if secret is not None and not secret.get_secret_value():
            raise ConfigError(f"POSTMORTEM_RECEIVER_{name} is set but empty")
    if not config.authenticated and not is_loopback(config.host):
        raise ConfigError(
            f"refusing to listen on {config.host} without authentication: set POSTMORTEM_RECEIVER_TOKEN (Alertmanager "
            "http_config.authorization) or POSTMORTEM_RECEIVER_BASIC_USER/_PASSWORD (http_config.basic_auth), "
            "or listen on 127.0.0.1"
        )


def make_server(config: ReceiverConfig) -> ReceiverServer:
    """A bound (not yet serving) receiver; ``server.server_address`` holds the real port. Raises ConfigError for an
    unsafe configuration or an address that cannot be bound."""
    check_config(config)
    created = not config.landing.exists()
    config.landing.mkdir(parents=True, exist_ok=True)
    if created:
        fsync_dir(config.landing.parent)
    try:
        return ReceiverServer(config)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
