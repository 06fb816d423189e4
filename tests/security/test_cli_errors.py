"""Clear errors, never tracebacks: every bad input a user can give the `postmortem` command — a file where a folder
belongs, a missing or unreadable file, a token written into a config file, a YAML bomb, a bad POSTMORTEM_ value, a
bad option — is one line on stderr starting with "error:", exit code 2, and no traceback.

Most cases call ``pipeline.cli.main`` (the console script's entry point) in-process with a real argv and
environment; a few run the real command in a subprocess to show the same holds end to end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.settings import get_settings
from tests.conftest import REPO, SAMPLES

BUNDLE = SAMPLES / "edge-cert-expiry"
TOKEN_VALUE = "xoxb-inline-0123456789-abcdef"  # must never be echoed back

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Runs `postmortem ARGS` through the entry point with extra POSTMORTEM_ variables; returns code, out, err."""

    def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(sys, "argv", ["postmortem", *args])
        get_settings.cache_clear()
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            get_settings.cache_clear()
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


def _one_error_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def _bundle_with_manifest(tmp_path: Path, manifest: str) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("gold.yaml"))
    (bundle / "incident.yaml").write_text(manifest, encoding="utf-8")
    return bundle


# --- files and folders ---------------------------------------------------------------------------------------


def test_draft_out_pointing_at_a_file(tmp_path: Path, run: Run) -> None:
    target = tmp_path / "draft.md"
    target.write_text("an existing file")
    line = _one_error_line(*run("draft", str(BUNDLE), "--no-index", "--out", str(target))[::2])
    assert "--out must be a folder" in line and str(target) in line
    assert target.read_text() == "an existing file"
    line = _one_error_line(*run("draft", str(BUNDLE), "--no-index", "--out", str(target / "sub"))[::2])
    assert "--out" in line and "Not a directory" in line


def test_eval_report_pointing_at_a_file(tmp_path: Path, run: Run) -> None:
    target = tmp_path / "report"
    target.write_text("x")
    line = _one_error_line(*run("eval", "--suite", "samples.v1", "--report", str(target))[::2])
    assert "--report must be a folder" in line


@pytest.mark.parametrize("kind", ["missing", "under-a-file", "dangling-link"])
def test_draft_a_bundle_that_is_not_there(tmp_path: Path, run: Run, kind: str) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    path = {"missing": tmp_path / "nope", "under-a-file": tmp_path / "file" / "x", "dangling-link": tmp_path / "link"}
    line = _one_error_line(*run("draft", str(path[kind]), "--no-index")[::2])
    assert "bundle not found" in line


def test_index_a_path_that_is_not_there(tmp_path: Path, run: Run, _isolated_home: Path) -> None:
    line = _one_error_line(*run("index", str(tmp_path / "no-such-folder"))[::2])
    assert "not found" in line and "no-such-folder" in line
    assert not (_isolated_home / "index").exists()  # refused before an index was created


def test_similar_with_a_json_file_that_is_not_a_draft(tmp_path: Path, run: Run) -> None:
    bogus = tmp_path / "x.json"
    bogus.write_text('{"not": "a draft"}')
    assert "is not a draft JSON" in _one_error_line(*run("similar", str(bogus))[::2])


def test_home_under_a_file(tmp_path: Path, run: Run) -> None:
    (tmp_path / "file").write_text("x")
    line = _one_error_line(*run("incidents", env={"POSTMORTEM_HOME": str(tmp_path / "file" / "home")})[::2])
    assert "Not a directory" in line


# --- config files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [f"token: {TOKEN_VALUE}", f"token: {TOKEN_VALUE}\n    token_env: PD_TOKEN", f"api_key: {TOKEN_VALUE}"],
)
def test_an_inline_token_in_sources_yaml_says_where_tokens_belong(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    monkeypatch.setenv("PD_TOKEN", "from-the-environment")
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - vendor: pagerduty\n    {entry}\n")
    code, _, err = run("sweep", "--once", "--no-index", env={"POSTMORTEM_SOURCES_FILE": str(sources)})
    line = _one_error_line(code, err)
    assert "is refused in this file" in line and "token_env" in line and "environment variable" in line
    assert TOKEN_VALUE not in err


def test_an_inline_token_in_publish_yaml_says_where_tokens_belong(tmp_path: Path, run: Run) -> None:
    publish = tmp_path / "publish.yaml"
    publish.write_text(f"slack: {{token: {TOKEN_VALUE}, channel: C0INCIDENTS}}\n")
    code, _, err = run("sweep", "--once", "--no-index", env={"POSTMORTEM_PUBLISH_FILE": str(publish)})
    line = _one_error_line(code, err)
    assert "slack" in line and "token_env" in line and TOKEN_VALUE not in err
    assert not (tmp_path / "pm-home" / "ledger.sqlite3").exists()  # refused before the sweep started


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("a: &x [1, 2]\nb: [*x, *x]\n", "aliases"),  # the seed of a billion-laughs bomb
        ("sources: " + "[" * 200 + "]" * 200 + "\n", "nests deeper"),
    ],
)
@pytest.mark.parametrize("setting", ["POSTMORTEM_SOURCES_FILE", "POSTMORTEM_PUBLISH_FILE"])
def test_yaml_bombs_in_config_files(tmp_path: Path, run: Run, document: str, expected: str, setting: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(document)
    line = _one_error_line(*run("sweep", "--once", "--no-index", env={setting: str(config)})[::2])
    assert expected in line and str(config) in line


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [("id: &i INC-1\ntitle: *i\n", "aliases"), ("id: INC-1\nteams: " + "[" * 100 + "]" * 100 + "\n", "nests deeper")],
)
def test_yaml_bombs_in_a_manifest(tmp_path: Path, run: Run, manifest: str, expected: str) -> None:
    bundle = _bundle_with_manifest(tmp_path, manifest)
    assert expected in _one_error_line(*run("draft", str(bundle), "--no-index", "--out", str(tmp_path / "o"))[::2])


@pytest.mark.parametrize("setting", ["POSTMORTEM_SOURCES_FILE", "POSTMORTEM_PUBLISH_FILE"])
def test_a_folder_where_a_config_file_belongs(tmp_path: Path, run: Run, setting: str) -> None:
    folder = tmp_path / "config.yaml"
    folder.mkdir()
    line = _one_error_line(*run("sweep", "--once", "--no-index", env={setting: str(folder)})[::2])
    assert "Is a directory" in line and str(folder) in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_sources_file(tmp_path: Path, run: Run) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources: []\n")
    sources.chmod(0)
    line = _one_error_line(*run("sweep", "--once", "--no-index", env={"POSTMORTEM_SOURCES_FILE": str(sources)})[::2])
    assert "Permission denied" in line


# --- settings and options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("POSTMORTEM_RECEIVER_PORT", "abc", "POSTMORTEM_RECEIVER_PORT: Input should be a valid integer"),
        ("POSTMORTEM_RECEIVER_PORT", "70000", "POSTMORTEM_RECEIVER_PORT: Input should be less than or equal to"),
        ("POSTMORTEM_MAX_JSON_DEPTH", "-1", "POSTMORTEM_MAX_JSON_DEPTH: Input should be greater than or equal"),
        ("POSTMORTEM_EMBEDDING_PROVIDER", "bogus", "POSTMORTEM_EMBEDDING_PROVIDER: Input should be 'local'"),
        ("POSTMORTEM_REDACTION_RESTORE_KINDS", "EMAIL", "POSTMORTEM_REDACTION_RESTORE_KINDS: expected JSON"),
    ],
)
@pytest.mark.parametrize("command", [["incidents"], ["prompts", "list"], ["draft", str(BUNDLE), "--no-index"]])
def test_a_bad_setting_names_the_variable(
    run: Run, variable: str, value: str, expected: str, command: list[str]
) -> None:
    line = _one_error_line(*run(*command, env={variable: value})[::2])
    assert line.startswith(f"error: invalid setting {expected}")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["draft"], "Missing argument"),
        (["draft", "x", "--bogus"], "No such option: --bogus"),
        (["search", "x", "--k", "0"], "greater than or equal to 1"),
        (["nosuchcommand"], "No such command"),
        (["incidents", "--status", "bogus"], "--status must be pending, drafted or failed"),
        (["serve", "--cron", "not a cron"], "not a cron schedule"),
        (["search", "x", "--since", "yesterday"], "bad filter"),
    ],
)
def test_bad_options_and_arguments(run: Run, args: list[str], expected: str) -> None:
    assert expected in _one_error_line(*run(*args)[::2])


def test_receive_on_a_port_in_use(run: Run) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error_line(*run("receive", "--port", str(port))[::2])
    assert f"cannot listen on 127.0.0.1:{port}" in line


def test_receive_with_half_of_basic_auth(run: Run) -> None:
    line = _one_error_line(*run("receive", "--port", "0", env={"POSTMORTEM_RECEIVER_BASIC_USER": "am"})[::2])
    assert "needs both" in line


# --- hostile text in what the command prints -----------------------------------------------------------------


def test_markup_and_escape_sequences_in_an_id_are_printed_as_text(tmp_path: Path, run: Run) -> None:
    bundle = _bundle_with_manifest(tmp_path, 'id: "[/]INC-[bold]9\\e[31m"\ntitle: "[/red] title"\n')
    code, out, err = run("draft", str(bundle), "--no-index", "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "[/]INC-[bold]9" in out and "[/red] title" in out  # rich markup would have raised MarkupError
    assert "\x1b[31m" not in out


# --- end to end ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["incidents"], {"POSTMORTEM_RECEIVER_PORT": "abc"}, "error: invalid setting POSTMORTEM_RECEIVER_PORT"),
        (["draft"], {}, "error: Missing argument"),
        (["draft", "/nonexistent/bundle"], {}, "error: bundle not found"),
    ],
)
def test_the_installed_command_prints_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env={**os.environ, "POSTMORTEM_HOME": str(tmp_path), **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(expected)
