from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import PromptError
from pipeline.prompts import PROMPTS_DIR, get_prompt, list_prompts


def test_every_prompt_file_loads_with_its_hash() -> None:
    prompts = list_prompts()
    assert {p.ref for p in prompts} >= {"draft_postmortem@1", "summarise_events@1"}
    for p in prompts:
        assert p.sha256 == hashlib.sha256(Path(p.path).read_bytes()).hexdigest()
        assert p.output in {"DraftContent", "EventNotes"}


def test_latest_and_pinned_versions(tmp_path: Path) -> None:
    root = tmp_path / "prompts"
    for version in (1, 2):
        folder = root / "p"
        folder.mkdir(parents=True, exist_ok=True)
        text = f"id: p\nversion: {version}\ndescription: d\noutput: DraftContent\nsystem: s$x\nuser: u\n"
        (folder / f"v{version}.yaml").write_text(text)
    assert get_prompt("p", root).version == 2
    assert get_prompt("p@1", root).version == 1
    with pytest.raises(PromptError, match="no version 3"):
        get_prompt("p@3", root)


def test_missing_variable_fails_loudly() -> None:
    prompt = get_prompt("draft_postmortem@1")
    with pytest.raises(PromptError, match="'facts'"):
        prompt.render(title="t", timeline="", coverage="", feedback="")


def test_a_file_in_the_wrong_place_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "v1.yaml").write_text((PROMPTS_DIR / "summarise_events" / "v1.yaml").read_text())
    with pytest.raises(PromptError, match="must match its place"):
        list_prompts(tmp_path)


def test_prompts_cli() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["prompts", "list"])
    assert listed.exit_code == 0 and "draft_postmortem@1" in listed.stdout
    shown = runner.invoke(app, ["prompts", "show", "draft_postmortem@1"])
    assert shown.exit_code == 0 and "<<<TIMELINE" in shown.stdout
