"""The Alertmanager receiver faces a network: it authenticates as Alertmanager's http_config does, refuses to
listen beyond loopback without credentials, cuts slow clients off, caps its connections and stores nothing that
is not an Alertmanager webhook. Everything runs over real sockets on 127.0.0.1.

Not tested here, by design review only: a new group's parent directory is fsynced (LandingStore._group_folder)
— observing that would mean patching os.fsync, and a crash test needs a machine to power off."""

from __future__ import annotations

import base64
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError
from pipeline.receiver import ReceiverConfig, ReceiverServer, check_config, make_server
from tests.conftest import REPO
from tests.test_connectors import _am_payload

TOKEN = "s3cret-receiver-token-9d2f"
GROUP_KEY = '{}/{severity="critical"}:{alertname="CheckoutHigh5xx"}'
GOOD = json.dumps(_am_payload(GROUP_KEY)).encode()

Start = Callable[..., tuple[str, Path]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts receivers on 127.0.0.1 (free ports) with the given ReceiverConfig fields; stops them after."""
    servers: list[tuple[ReceiverServer, threading.Thread]] = []

    def _start(**fields: Any) -> tuple[str, Path]:
        landing = tmp_path / f"landing-{len(servers)}"
        server = make_server(ReceiverConfig(host="127.0.0.1", port=0, landing=landing, **fields))
        thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}", landing

    yield _start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _post(url: str, body: bytes = GOOD, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), exc.headers


def _stored(landing: Path) -> list[Path]:
    return sorted(p for p in landing.rglob("*") if p.is_file())


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- authentication ------------------------------------------------------------------------------------------


def test_a_bearer_token_is_required_once_configured(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pipeline.receiver")
    url, landing = start(token=TOKEN)
    status, body, headers = _post(url)
    assert status == 401 and body == {"error": "credentials required"}
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert _post(url, headers={"Authorization": "Bearer wrong-token"})[0] == 401
    assert _post(url, headers={"Authorization": f"Bearer {TOKEN}x"})[0] == 401
    assert _post(url, headers={"Authorization": f"Basic {TOKEN}"})[0] == 401  # right secret, wrong scheme
    assert _stored(landing) == []
    status, body, _ = _post(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and (landing / body["stored"]).read_bytes() == GOOD
    assert _post(url, headers={"Authorization": f"bearer {TOKEN}"})[0] == 200  # the scheme is case-insensitive
    assert TOKEN not in caplog.text and "wrong-token" not in caplog.text  # never logged, right or wrong


def test_basic_auth_as_alertmanager_sends_it(start: Start) -> None:
    url, landing = start(basic_user="alertmanager", basic_password="pa:ss-wörd")
    assert _post(url)[0] == 401
    assert _post(url, headers=_basic("alertmanager", "wrong"))[0] == 401
    assert _post(url, headers=_basic("someone", "pa:ss-wörd"))[0] == 401
    assert _post(url, headers={"Authorization": "Basic !!not-base64!!"})[0] == 401
    assert _stored(landing) == []
    assert _post(url, headers=_basic("alertmanager", "pa:ss-wörd"))[0] == 200
    assert len(_stored(landing)) == 1


def test_with_both_configured_either_credential_is_accepted(start: Start) -> None:
    url, _ = start(token=TOKEN, basic_user="am", basic_password="pw")
    assert _post(url, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert _post(url, headers=_basic("am", "pw"))[0] == 200
    assert _post(url, headers=_basic("am", TOKEN))[0] == 401


def test_listening_beyond_loopback_needs_credentials(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::", "", "192.0.2.10", "receiver.example"):
        with pytest.raises(ConfigError, match="without authentication"):
            make_server(ReceiverConfig(host=host, port=0, landing=tmp_path / "l"))
    # with a token the same addresses are allowed (checked without binding anything beyond loopback)
    check_config(ReceiverConfig(host="0.0.0.0", port=0, landing=tmp_path / "l", token=TOKEN))
    with pytest.raises(ConfigError, match="both"):
        check_config(ReceiverConfig(host="127.0.0.1", port=0, landing=tmp_path / "l", basic_user="am"))
    with pytest.raises(ConfigError, match="empty"):
        check_config(ReceiverConfig(host="127.0.0.1", port=0, landing=tmp_path / "l", token=""))


def test_postmortem_receive_refuses_a_public_address_without_credentials_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "POSTMORTEM_HOME": str(tmp_path)}
    env.pop("POSTMORTEM_RECEIVER_TOKEN", None)
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "receive", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: refusing to listen on 0.0.0.0 without authentication")


# --- time and connections ------------------------------------------------------------------------------------


class SlowClient(threading.Thread):
    """Sends ``payload`` one byte at a time until the server closes the connection (or ``give_up_s`` passes)."""

    def __init__(self, sock: socket.socket, payload: bytes, give_up_s: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.payload = payload
        self.give_up_s = give_up_s
        self.closed_by_server = False
        self.answer = b""

    def run(self) -> None:
        deadline = time.monotonic() + self.give_up_s
        try:
            for i in range(len(self.payload)):
                if time.monotonic() > deadline:
                    return
                try:
                    self.sock.sendall(self.payload[i : i + 1])
                except OSError:  # EPIPE / ECONNRESET: the server cut us off
                    self.closed_by_server = True
                    return
                time.sleep(0.05)
            self.sock.settimeout(max(deadline - time.monotonic(), 0.1))
            self.answer = self.sock.recv(1024)
            self.closed_by_server = True
        except OSError:
            self.closed_by_server = True
        finally:
            self.sock.close()


def _connect(url: str, timeout: float = 5) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


class Holder:
    """A client that sends its headers and one body byte, then stalls: it holds its share of the in-flight budget.
    It can itself be refused (503) when it arrives while another body holds the budget; `refused()` says so."""

    def __init__(self, url: str, length: int) -> None:
        self.url, self.length = url, length
        self.sock = self._open()

    def _open(self) -> socket.socket:
        sock = _connect(self.url)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % self.length)
        return sock

    def refused(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])  # any answer before its body is complete is a refusal

    def again(self) -> None:
        self.sock.close()
        self.sock = self._open()

    def close(self) -> None:
        self.sock.close()


def _until_busy(url: str, holder: Holder) -> list[tuple[int, dict[str, Any], Any]]:
    """POST until the server answers 503 because `holder` holds the budget (re-sending the holder whenever it
    was the one refused, which happens when it arrived while a POST of ours was being stored)."""
    answers = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answers.append(_post(url))
        if answers[-1][0] == 503:
            break
        if holder.refused():
            holder.again()
        time.sleep(0.05)
    return answers


def test_slow_loris_clients_are_cut_off_and_a_good_client_is_served(start: Start) -> None:
    url, landing = start(header_timeout_s=0.5, body_timeout_s=0.5, max_connections=64)
    headers = b"POST /alertmanager HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 4000 + b"\r\n\r\n"
    lorises = [SlowClient(_connect(url), headers) for _ in range(42)]
    for client in lorises:
        client.start()
    status, body, _ = _post(url)  # while 42 connections trickle their headers
    assert status == 200 and (landing / body["stored"]).read_bytes() == GOOD
    for client in lorises:
        client.join(timeout=90)
    assert all(c.closed_by_server for c in lorises)  # not one got to send its 4 KB of headers
    assert all(c.answer == b"" for c in lorises)  # cut off, not answered
    assert len(_stored(landing)) == 1


def test_a_body_sent_too_slowly_is_cut_off_and_not_stored(start: Start) -> None:
    url, landing = start(body_timeout_s=0.5)
    sock = _connect(url)
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(GOOD)}\r\n\r\n"
    sock.sendall(head.encode())  # the headers at once, then the body a byte at a time
    slow = SlowClient(sock, GOOD)
    slow.start()
    slow.join(timeout=90)
    assert slow.closed_by_server and slow.answer == b""
    assert _stored(landing) == []
    assert _post(url)[0] == 200


def test_the_connection_cap_refuses_the_excess_and_frees_up(start: Start) -> None:
    url, landing = start(max_connections=2, header_timeout_s=60)
    idle = [_connect(url) for _ in range(2)]
    try:
        excess = _connect(url, timeout=20)
        answer = b""
        while chunk := excess.recv(1024):
            answer += chunk
        excess.close()
        assert answer.startswith(b"HTTP/1.0 503") and b"Retry-After: 1" in answer
    finally:
        for sock in idle:
            sock.close()  # the server sees EOF and frees both slots
    statuses = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # like Alertmanager, retry a 503
        try:
            statuses.append(_post(url)[0])
        except (ConnectionError, urllib.error.URLError):
            statuses.append(0)
        if statuses[-1] == 200:
            break
        time.sleep(0.05)
    assert statuses[-1] == 200 and set(statuses) <= {0, 200, 503}
    assert len(_stored(landing)) == 1


def test_bodies_in_flight_share_one_memory_budget(start: Start) -> None:
    url, landing = start(max_body_bytes=2000, max_inflight_bytes=2000, body_timeout_s=60)
    holder = Holder(url, 2000)  # claims all 2000 bytes
    try:
        answers = _until_busy(url, holder)
        status, body, headers = answers[-1]
        assert status == 503 and headers.get("Retry-After") == "1" and body == {"error": "busy, retry"}
    finally:
        holder.close()  # its reservation is released when the server sees the connection end
    deadline = time.monotonic() + 60
    while _post(url)[0] != 200:
        assert time.monotonic() < deadline, "the budget was never released"
        time.sleep(0.05)
    assert len(_stored(landing)) == len([a for a in answers if a[0] == 200]) + 1


def _variant(**changes: Any) -> bytes:
    payload = _am_payload(GROUP_KEY)
    for key, value in changes.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"text": "hello"}', "version"),
        (_variant(version="3"), "version"),
        (_variant(version=4), "version"),
        (_variant(groupKey=None), "groupKey"),
        (_variant(groupKey=""), "groupKey"),
        (_variant(groupKey=["a"]), "groupKey"),
        (_variant(status="pending"), "status"),
        (_variant(alerts={"status": "firing"}), "alerts"),
        (_variant(alerts=["firing"]), "alerts.0"),
        (_variant(alerts=[{"status": "firing"}]), "alerts.0.labels"),
        (_variant(alerts=[{"status": "firing", "labels": {"severity": 2}}]), "alerts.0.labels.severity"),
        (_variant(alerts=[{"status": "weird", "labels": {}}]), "alerts.0.status"),
        (b"[" * 100_000 + b"]" * 100_000, "nests deeper"),
        (b'{"a":' * 200 + b"1" + b"}" * 200, "nests deeper"),
        (b'{"version": "4", "groupKey": "\\ud800"' + b',"x":' + b"[" * 50_000, "nests deeper"),
        (b'{"version": "4", "groupKey": "\\ud800"}', "not JSON"),
        (b"\xff\xfe not utf-8", "not JSON"),
        (b"", "not JSON"),
    ],
)
def test_anything_but_an_alertmanager_webhook_is_400_and_not_stored(start: Start, body: bytes, reason: str) -> None:
    url, landing = start(max_body_bytes=1024 * 1024)
    status, answer, _ = _post(url, body)
    assert status == 400 and reason in answer["error"]
    assert _stored(landing) == []


def test_a_huge_body_is_413_and_not_read(start: Start) -> None:
    url, landing = start(max_body_bytes=4096)
    status, answer, _ = _post(url, b'{"alerts": [' + b'"x",' * 10_000 + b'"x"]}')
    assert status == 413 and "4096" in answer["error"]
    assert _stored(landing) == []


def test_a_body_is_charged_for_its_decoded_size_until_it_is_stored(start: Start) -> None:
    """Decoded JSON is about 30x its bytes: a 100-byte body is charged 32x (3,200 of the 4,000 budget), so a
    second webhook (786 bytes, charged the whole budget) must wait. Charged only its 100 bytes, both would fit."""
    url, _landing = start(max_body_bytes=2000, max_inflight_bytes=4000, body_timeout_s=60)
    holder = Holder(url, 100)
    try:
        assert _until_busy(url, holder)[-1][0] == 503
    finally:
        holder.close()
    deadline = time.monotonic() + 60
    while _post(url)[0] != 200:
        assert time.monotonic() < deadline, "the budget was never released"
        time.sleep(0.05)
