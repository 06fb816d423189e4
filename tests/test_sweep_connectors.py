"""A sweep against a local PagerDuty-shaped API: newly resolved incidents are drafted exactly once."""

from __future__ import annotations

from pathlib import Path

from pipeline.connector_source import ConnectorSource
from pipeline.connectors.pagerduty import PagerDutyConfig, PagerDutyConnector
from pipeline.settings import Settings
from pipeline.sweep import sweep
from tests import vendor_servers as vs
from tests.test_connectors import TOKEN, _fast


def test_sweep_over_a_live_pagerduty_api_drafts_each_resolved_incident_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    fake = vs.FakePagerDuty(TOKEN)
    with vs.serve(fake) as url, PagerDutyConnector(PagerDutyConfig(base_url=url, **_fast())) as connector:
        source = ConnectorSource(connector)
        first = sweep(settings, [source], index=False)
        second = sweep(settings, [source], index=False)
    # the fake API serves full records for one incident; the others in its listing 404 on detail: they are
    # recorded as failures (and retried next sweep) without blocking the drafted one
    assert first.drafted == [f"pagerduty-{vs.PD_INCIDENT}"]
    assert first.failed == len(first.failures) >= 1
    assert all("HTTP 404" in error for error in first.failures.values())
    assert second.drafted == [] and second.new == 0
    assert second.retried == first.failed
    drafts = settings.home / "drafts" / f"pagerduty-{vs.PD_INCIDENT}"
    assert (drafts / "v1.json").is_file() and not (drafts / "v2.json").exists()


def test_sweep_command_polls_vendors_listed_in_sources_yaml(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    fake = vs.FakePagerDuty(TOKEN)
    with vs.serve(fake) as url:
        (home / "sources.yaml").write_text(f"- vendor: pagerduty\n  token_env: PD_TOKEN_FOR_TEST\n  base_url: {url}\n")
        env = {**os.environ, "POSTMORTEM_HOME": str(home), "PD_TOKEN_FOR_TEST": TOKEN}
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "sweep", "--once", "--no-index", "--json"],
            capture_output=True, text=True, env=env, check=False, timeout=120,
        )  # fmt: skip
        listing = subprocess.run(
            [sys.executable, "-m", "pipeline", "incidents", "--json"],
            capture_output=True, text=True, env=env, check=True, timeout=120,
        )  # fmt: skip
    report = json.loads(result.stdout)
    assert f"pagerduty-{vs.PD_INCIDENT}" in report["drafted"]
    assert result.returncode == 1  # the listing's other incidents 404 on detail: recorded, exit 1 to retry
    assert TOKEN not in result.stdout + result.stderr
    rows = {row["incident"]: row for row in json.loads(listing.stdout)}  # `postmortem incidents`: the ledger
    drafted = rows.pop(f"pagerduty-{vs.PD_INCIDENT}")
    assert (drafted["status"], drafted["version"], drafted["error"]) == ("drafted", 1, None)
    assert drafted["draft"].endswith("latest.md") and Path(drafted["draft"]).is_file()
    assert rows and all(r["status"] == "failed" and "HTTP 404" in r["error"] for r in rows.values())


def test_a_sources_file_without_its_token_is_a_clear_error(tmp_path: Path) -> None:
    import pytest

    from pipeline.connector_source import load_sources
    from pipeline.errors import ConfigError

    path = tmp_path / "sources.yaml"
    path.write_text("- vendor: pagerduty\n  token_env: SURELY_NOT_SET_ANYWHERE\n")
    with pytest.raises(ConfigError, match="token_env"):
        load_sources(path)
    path.write_text("- vendor: pagerdooty\n")
    with pytest.raises(ConfigError, match="vendor must be one of"):
        load_sources(path)
