"""Shared test fixtures. Tests never touch the network beyond 127.0.0.1 and never the user's real home."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.receiver import ReceiverConfig, make_server
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLES = REPO / "data" / "samples"
SHARED_FORMATS = REPO.parent / "shared" / "data" / "formats"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def _installed_assets() -> Path:
    """Where `./run test` installed the offline assets (before any test moves POSTMORTEM_HOME)."""
    from pipeline.settings import Settings

    return Settings().assets_dir


ASSETS = _installed_assets()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "pm-home"
    monkeypatch.setenv("POSTMORTEM_HOME", str(home))
    monkeypatch.setenv("POSTMORTEM_ASSETS", str(ASSETS))
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def shared_formats() -> Path:
    """../shared/data/formats, when present beside the clone (CI has it; a bare clone may not)."""
    if not SHARED_FORMATS.is_dir():
        pytest.skip("../shared/data/formats is not present")
    return SHARED_FORMATS


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (starting one costs ~10 s here)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An Alertmanager webhook receiver on 127.0.0.1 (a free port): its URL and landing directory."""
    landing = tmp_path / "landing"
    settings = Settings(home=tmp_path / "receiver-home", alerts_landing_dir=landing, receiver_max_body_bytes=64 * 1024)
    server = make_server(ReceiverConfig.from_settings(settings, host="127.0.0.1", port=0))
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", landing
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
