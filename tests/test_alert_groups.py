"""Alertmanager groups landed by the receiver become incidents: one per episode, closed after the flap window,
drafted by the sweep exactly once — or gathered by the PagerDuty incident the group triggered."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from pipeline.alert_groups import AlertGroupSource
from pipeline.connector_source import ConnectorSource
from pipeline.connectors import PagerDutyConfig, PagerDutyConnector
from pipeline.gather import Gatherer
from pipeline.receiver import LandingStore, group_dir_name
from pipeline.settings import Settings
from pipeline.sweep import sweep
from tests import vendor_servers as vs
from tests.test_connectors import TOKEN, _am_payload, _fast, _post

GROUP_KEY = '{}/{severity="critical"}:{alertname="CheckoutHigh5xx"}'
GROUP = group_dir_name({"groupKey": GROUP_KEY})


def _land(store: LandingStore, status: str, minute: float, group_key: str = GROUP_KEY) -> None:
    payload = _am_payload(group_key, status, minute)
    store.append(payload, json.dumps(payload).encode(), received=vs.at(minute))


def _source(landing: Path, now_minute: float) -> AlertGroupSource:
    return AlertGroupSource(landing, now=lambda: vs.at(now_minute))


def test_an_episode_closes_once_the_flap_window_has_passed(tmp_path: Path) -> None:
    store = LandingStore(tmp_path)
    _land(store, "firing", 0)
    _land(store, "firing", 5)  # Alertmanager's repeat notification
    _land(store, "resolved", 40)
    assert _source(tmp_path, 50).closed_since(vs.at(-60)) == []  # could still flap
    (closed,) = _source(tmp_path, 71).closed_since(vs.at(-60))
    assert closed.closed_at == vs.at(70) and closed.incident_id == f"alertmanager-{GROUP}-20250304T140000Z"
    assert _source(tmp_path, 71).closed_since(vs.at(71)) == []  # the sweep's cursor has passed it


def test_a_flap_is_one_episode_and_a_refire_later_is_the_next(tmp_path: Path) -> None:
    store = LandingStore(tmp_path)
    _land(store, "firing", 0)
    _land(store, "resolved", 40)
    _land(store, "firing", 55)  # within 30 min of resolving: the same outage
    _land(store, "resolved", 60)
    _land(store, "firing", 60 * 24)  # the next day: a new incident, still open
    source = _source(tmp_path, 60 * 24 + 10)
    first, second = source.episodes(tmp_path / GROUP)
    assert len(first.files) == 4 and first.closed_at == vs.at(90)
    assert second.started_at == vs.at(60 * 24) and second.closed_at is None
    assert [c.ref for c in source.closed_since(vs.at(0))] == [first.ref]


def test_a_group_that_never_resolves_closes_when_stale_and_firing_again_starts_anew(tmp_path: Path) -> None:
    store = LandingStore(tmp_path)
    _land(store, "firing", 0)
    _land(store, "firing", 60 * 4)  # repeat_interval 4h
    source = _source(tmp_path, 60 * 4 + 60 * 11)
    assert source.closed_since(vs.at(0)) == []  # silent 11h: still within stale_after (12h)
    _land(store, "firing", 60 * 20)
    source = _source(tmp_path, 60 * 20 + 5)
    first, second = source.episodes(tmp_path / GROUP)
    assert first.closed_at == vs.at(60 * 16) and len(first.files) == 2
    assert second.closed_at is None


def test_unreadable_payloads_are_kept_and_do_not_end_an_episode(tmp_path: Path) -> None:
    store = LandingStore(tmp_path)
    _land(store, "firing", 0)
    store.append({"groupKey": GROUP_KEY}, b'{"groupKey": "x", "status": ', received=vs.at(10))
    _land(store, "resolved", 40)
    source = _source(tmp_path, 100)
    (closed,) = source.closed_since(vs.at(0))
    files = source.snapshot(closed)
    assert len([n for n in files if n.startswith(f"alertmanager/{GROUP}/")]) == 3
    assert yaml.safe_load(files["incident.yaml"]) == {
        "id": closed.incident_id,
        "title": "checkout-api 5xx ratio above 5%",
    }


def test_webhooks_received_over_http_are_drafted_once_when_the_group_resolves(
    tmp_path: Path, receiver: tuple[str, Path]
) -> None:
    url, landing = receiver
    for status in ("firing", "firing", "resolved"):
        assert _post(f"{url}/alertmanager", json.dumps(_am_payload(GROUP_KEY, status)).encode())[0] == 200
    settings = Settings(home=tmp_path / "home", alerts_landing_dir=landing)
    later = datetime.now().astimezone() + timedelta(hours=1)
    source = AlertGroupSource(landing, now=lambda: later)
    first = sweep(settings, [source], index=False)
    assert first.new == 1 and first.failed == 0
    (incident_id,) = first.drafted
    draft = json.loads((settings.drafts_dir / incident_id / "v1.json").read_text())
    assert draft["incident"]["id"] == incident_id
    assert draft["incident"]["title"] == "checkout-api 5xx ratio above 5%"
    assert {e["source"] for e in draft["timeline"]} == {"alertmanager"}
    second = sweep(settings, [source], index=False)
    assert second.new == second.redrafted == 0 and second.drafted == []


def test_the_pagerduty_incident_a_group_triggered_gathers_that_episode(tmp_path: Path) -> None:
    landing = tmp_path / "alertmanager"
    store = LandingStore(landing)
    _land(store, "firing", -1)
    _land(store, "resolved", 38)
    groups = AlertGroupSource(landing, now=lambda: vs.at(200))
    # Alertmanager's PagerDuty integration sends sha256(groupKey) as the dedup key: the incident_key
    fake = vs.FakePagerDuty(TOKEN, incident_key=hashlib.sha256(GROUP_KEY.encode()).hexdigest())
    settings = Settings(home=tmp_path / "home")
    with vs.serve(fake) as url, PagerDutyConnector(PagerDutyConfig(base_url=url, **_fast(page_size=50))) as pd:
        gatherer = Gatherer({"pagerduty": pd, "alertmanager": groups})
        report = sweep(settings, [groups, ConnectorSource(pd, gatherer=gatherer)], index=False)
    primary = f"pagerduty-{vs.PD_INCIDENT}"
    episode = f"alertmanager-{GROUP}-20250304T135900Z"
    assert primary in report.drafted and episode not in report.drafted
    assert report.linked == {episode: primary}
    snapshot = next((settings.home / "snapshots" / primary).iterdir())
    assert yaml.safe_load((snapshot / "incident.yaml").read_text())["aliases"] == [episode]
    draft = json.loads((settings.drafts_dir / primary / "v1.json").read_text())
    assert {"alertmanager", "pagerduty"} <= {e["source"] for e in draft["timeline"]}


def test_postmortem_receive_listens_on_the_configured_port(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "POSTMORTEM_HOME": str(tmp_path), "POSTMORTEM_RECEIVER_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "receive"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=2) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.2)
        status, answer_body = _post(f"http://127.0.0.1:{port}/", json.dumps(_am_payload(GROUP_KEY)).encode())
        assert status == 200 and answer_body["stored"].startswith(f"{GROUP}/")
        assert (tmp_path / "alertmanager" / answer_body["stored"]).is_file()
    finally:
        server.terminate()
        server.wait(timeout=10)
