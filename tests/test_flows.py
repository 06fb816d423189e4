"""The Prefect flow end to end under one session-wide test harness; tasks unit-tested through task.fn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.bundle import load_bundle
from pipeline.flows import draft_postmortem, gather_source_task, write_task
from pipeline.models import Source
from pipeline.service import compose, gather, normalise
from pipeline.settings import get_settings
from tests.conftest import FIXTURES


def test_gather_task_fn_parses_one_source() -> None:
    bundle = load_bundle(FIXTURES / "slack" / "export")
    output = gather_source_task.fn(bundle, Source.SLACK)
    assert len(output.rows) >= 5
    assert {r.source for r in output.rows} == {"slack"}


def test_write_task_fn_writes_both_files_atomically(tmp_path: Path) -> None:
    bundle = load_bundle(FIXTURES / "slack" / "export")
    draft, _ = compose(bundle, normalise(bundle, gather(bundle), get_settings()), get_settings())
    files = write_task.fn(draft, str(tmp_path))
    assert json.loads(files.json.read_text())["incident"]["id"] == draft.incident.id
    assert files.markdown.read_text().startswith("# Postmortem draft")
    # only the two drafts (no temporary file); the test's POSTMORTEM_HOME (pm-home, with the section key) sits here
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted([files.json.name, files.markdown.name])


@pytest.mark.flow
def test_draft_flow_runs_end_to_end(prefect_harness: None, tmp_path: Path) -> None:
    state = draft_postmortem(str(FIXTURES / "slack" / "export"), str(tmp_path), return_state=True)
    assert state.is_completed(), state
    run = state.result()
    assert run.events > 0 and run.markdown.exists() and run.json_path.exists()
    payload = json.loads(run.json_path.read_text())
    assert payload["stats"]["records_in"] == (
        payload["stats"]["events"]
        + payload["stats"]["duplicates"]
        + payload["stats"]["collapsed"]
        + payload["stats"]["quarantined"]
    )


@pytest.mark.flow
def test_flow_fails_cleanly_on_a_missing_bundle(prefect_harness: None, tmp_path: Path) -> None:
    state = draft_postmortem(str(tmp_path / "nope"), str(tmp_path), return_state=True)
    assert state.is_failed()
    assert "bundle not found" in str(state.message) or "bundle not found" in repr(state.result(raise_on_failure=False))


@pytest.mark.flow
def test_run_evals_flow_scores_the_samples_suite(prefect_harness: None, tmp_path: Path) -> None:
    from pipeline.flows import run_evals

    summary = run_evals("samples.v1", drafter="facts", report_dir=str(tmp_path / "report"))
    assert summary.passed, summary.reasons
    assert (tmp_path / "report" / "report.html").exists()


@pytest.mark.flow
def test_index_postmortems_flow_is_idempotent(prefect_harness: None) -> None:
    from pipeline.flows import index_postmortems
    from tests.conftest import REPO

    first = index_postmortems([str(REPO / "data" / "postmortems")])
    second = index_postmortems([str(REPO / "data" / "postmortems")])
    assert first.counts["added"] >= 30 and first.incidents == first.counts["added"]
    assert second.counts["added"] == 0 and second.counts["unchanged"] == first.counts["added"]


@pytest.mark.flow
def test_serve_runs_the_sweep_on_a_schedule(tmp_path: Path) -> None:
    """`postmortem serve` as a user runs it: a local Prefect server, the sweep deployment on a short interval,
    and a bundle dropped into the landing directory drafted by a scheduled run; Ctrl-C stops it cleanly."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import SAMPLES

    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    shutil.copytree(SAMPLES / "auth-flag-rollout", home / "landing" / "auth-flag-rollout")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"POSTMORTEM_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--interval", "5"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    drafted = home / "drafts" / "INC-2077" / "v1.json"
    try:
        deadline = time.monotonic() + 240
        while not drafted.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(1)
        assert drafted.exists(), "no scheduled sweep drafted the landed bundle"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert "local Prefect server at http://127.0.0.1:" in output
    assert "SweepBusyError" not in output  # overlapping scheduled runs are skipped, not failed
