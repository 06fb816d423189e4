"""The `postmortem` command as a user runs it (a real subprocess for error paths, CliRunner otherwise)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()
SLACK_EXPORT = FIXTURES / "slack" / "export"


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POSTMORTEM_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )


def test_draft_json_to_stdout_follows_the_contract(tmp_path: Path) -> None:
    result = runner.invoke(app, ["draft", str(SLACK_EXPORT), "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    for key in ("incident", "key_moments", "metrics", "summary", "impact", "contributing_factors", "action_items",
                "timeline", "quarantine", "provenance"):  # fmt: skip
        assert key in payload
    assert set(payload["incident"]) >= {"id", "title", "severity", "services"}
    assert set(payload["key_moments"]) == {"started", "detected", "acknowledged", "mitigated", "resolved"}
    for moment in payload["key_moments"].values():
        assert set(moment) >= {"at", "event_id", "rule"}
    assert set(payload["metrics"]) == {
        "time_to_detect_s", "time_to_acknowledge_s", "time_to_mitigate_s", "time_to_resolve_s"
    }  # fmt: skip
    for entry in payload["timeline"]:
        assert set(entry) >= {"id", "at", "source", "kind", "actor", "text", "count"}
        assert entry["at"].endswith("Z") or entry["at"].endswith("+00:00")
    for item in payload["action_items"]:
        assert set(item) >= {"description", "type", "owner", "due", "priority", "evidence", "suggested"}
    assert set(payload["provenance"]) >= {"drafter", "model", "prompt", "tokens"}
    assert payload["provenance"]["drafter"] == "facts"
    assert payload["quarantine"] and set(payload["quarantine"][0]) >= {"source", "position", "reason"}
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".json", ".md"]


def test_draft_reads_a_zip_bundle(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for file in SLACK_EXPORT.rglob("*.json"):
            z.write(file, file.relative_to(SLACK_EXPORT).as_posix())
    result = runner.invoke(app, ["draft", str(archive), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "timeline events" in result.stdout


def test_missing_bundle_is_one_clear_line(tmp_path: Path) -> None:
    result = _cli("draft", str(tmp_path / "missing"), home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: bundle not found: {tmp_path / 'missing'}"
    assert "Traceback" not in result.stderr


def test_empty_bundle_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _cli("draft", str(tmp_path / "empty"), home=tmp_path)
    assert result.returncode == 2
    assert "bundle holds no source files" in result.stderr and "Traceback" not in result.stderr


def test_unrecognised_files_are_listed_not_fatal(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    (bundle / "slack").mkdir(parents=True)
    for file in SLACK_EXPORT.rglob("*.json"):
        target = bundle / "slack" / file.relative_to(SLACK_EXPORT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.read_bytes())
    (bundle / "notes.txt").write_text("call with vendor at 3pm\n")
    (bundle / "settings.json").write_text('{"theme": "dark"}')
    result = _cli("draft", str(bundle), "--out", str(tmp_path / "out"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "unrecognised file skipped: notes.txt" in result.stderr
    assert "unrecognised file skipped: settings.json" in result.stderr


def test_bad_manifest_is_a_clear_error(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "incident.yaml").write_text("id: INC-1\nvisibility: secret\n")
    (bundle / "a.json").write_text("{}")
    result = _cli("draft", str(bundle), home=tmp_path)
    assert result.returncode == 2
    assert "incident.yaml: visibility" in result.stderr


def test_draft_with_an_llm_says_which_drafter_it_used(tmp_path: Path) -> None:
    from pipeline.bundle import load_bundle
    from pipeline.draft.facts import build_facts
    from pipeline.draft.facts_drafter import FactsDrafter
    from pipeline.service import gather, normalise
    from pipeline.settings import get_settings
    from tests.conftest import SAMPLES
    from tests.openai_stub import Step, openai_stub

    sample = SAMPLES / "checkout-bad-deploy"
    bundle = load_bundle(sample)
    timeline = normalise(bundle, gather(bundle), get_settings())
    answer = FactsDrafter().write(build_facts(bundle.manifest, timeline, get_settings()), timeline).model_dump_json()
    with openai_stub([], default=Step(content=answer)) as server:
        result = runner.invoke(
            app, ["draft", str(sample), "--out", str(tmp_path), "--llm", "stub-model", "--base-url", server.base_url]
        )
    assert result.exit_code == 0, result.output
    assert "drafter: llm (stub-model)" in result.stdout
    payload = json.loads((tmp_path / "INC-2041.json").read_text())
    assert payload["provenance"]["model"] == "stub-model"
    assert payload["provenance"]["prompt"].startswith("draft_postmortem@1")
    assert server.requests, "the model was called over HTTP"


def test_sweep_once_drafts_a_landed_bundle_exactly_once(tmp_path: Path) -> None:
    import shutil

    from tests.conftest import SAMPLES

    home = tmp_path / "home"
    landing = home / "landing"
    landing.mkdir(parents=True)
    shutil.copytree(SAMPLES / "auth-flag-rollout", landing / "auth-flag-rollout")
    first = _cli("sweep", "--once", "--no-index", "--json", home=home)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["new"] == 1 and report["drafted"] == ["INC-2077"]
    second = _cli("sweep", "--once", "--no-index", "--json", home=home)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["new"] == 0 and json.loads(second.stdout)["drafted"] == []
