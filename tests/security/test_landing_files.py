"""Files and names: landing bundles are read without following links, one bad bundle fails alone and loudly, and
every incident id gets its own drafts folder (no two ids share one, however they are spelt or however long)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.draft.facts_drafter import FactsDrafter
from pipeline.ledger import Ledger
from pipeline.paths import MAX_NAME_BYTES, draft_folder, safe_name
from pipeline.settings import Settings
from pipeline.sweep import LandingSource, SweepReport, sweep
from tests.conftest import REPO, SAMPLES

TEMPLATE = SAMPLES / "edge-cert-expiry"
MARKER = "OUTSIDE-THE-BUNDLE-4f1c9e"  # text that exists only outside every bundle


def _bundle(landing: Path, folder: str, incident_id: str) -> Path:
    target = landing / folder
    shutil.copytree(TEMPLATE, target, ignore=shutil.ignore_patterns("gold.yaml"))
    manifest = yaml.safe_load((TEMPLATE / "incident.yaml").read_text(encoding="utf-8"))
    manifest["id"] = incident_id
    (target / "incident.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return target


def _outside_secret(tmp_path: Path) -> Path:
    """A Slack-export-shaped file outside the landing directory: a parser would happily read it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "private.json"
    secret.write_text(json.dumps([{"type": "message", "user": "U1", "ts": "1759386000.000100", "text": MARKER}]))
    return secret


def _sweep(home: Path, landing: Path) -> SweepReport:
    return sweep(Settings(home=home), [LandingSource(landing)], drafter_factory=lambda s: FactsDrafter(), index=False)


def _everything_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_a_link_to_a_file_outside_a_bundle_never_reaches_a_snapshot_or_a_draft(tmp_path: Path) -> None:
    home, landing = tmp_path / "home", tmp_path / "landing"
    secret = _outside_secret(tmp_path)
    good = _bundle(landing, "good", "INC-GOOD")
    linked = _bundle(landing, "linked", "INC-LINKED")
    (linked / "slack" / "extra.json").symlink_to(secret)
    # a whole bundle that is a link to a folder elsewhere, and a bundle whose sub-folder is a link
    elsewhere = _bundle(tmp_path / "elsewhere", "b", "INC-ELSEWHERE")
    (landing / "dropped-link").symlink_to(elsewhere, target_is_directory=True)
    subdir = _bundle(landing, "subdir", "INC-SUBDIR")
    (subdir / "more").symlink_to(secret.parent, target_is_directory=True)

    report = _sweep(home, landing)

    assert report.drafted == ["INC-GOOD"] and report.new == 1
    assert set(report.failures) == {"INC-LINKED", "dropped-link", "INC-SUBDIR"}
    assert all("symbolic link" in reason for reason in report.failures.values())
    assert "slack/extra.json" in report.failures["INC-LINKED"]
    everything = _everything_under(home)
    assert MARKER.encode() not in everything  # not in snapshots/, drafts/ or the ledger
    assert not any(p.is_symlink() for p in (home / "snapshots").rglob("*"))
    assert not (home / "snapshots" / "INC-LINKED").exists()
    assert good.is_dir() and (home / "drafts" / "INC-GOOD" / "v1.json").is_file()


def test_a_broken_link_fails_its_own_bundle_loudly_and_the_others_are_drafted(tmp_path: Path) -> None:
    home, landing = tmp_path / "home", tmp_path / "landing"
    for n in range(3):
        _bundle(landing, f"b{n}", f"INC-90{n}")
    (landing / "b1" / "slack" / "gone.json").symlink_to(tmp_path / "does-not-exist.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTMORTEM_LLM")}
    env |= {"POSTMORTEM_HOME": str(home), "POSTMORTEM_LANDING_DIR": str(landing)}
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "sweep", "--once", "--no-index"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr  # the rest was drafted; exit 2 is kept for a command that did nothing
    assert "Traceback" not in run.stderr
    assert "new 2" in run.stdout and "failed 1" in run.stdout
    (failed_line,) = [line for line in run.stderr.splitlines() if line.startswith("failed: INC-901")]
    assert "symbolic link" in failed_line and "slack/gone.json" in failed_line
    for ok in ("INC-900", "INC-902"):
        assert (home / "drafts" / ok / "latest.md").is_file()
    with Ledger.for_home(home) as ledger:
        record = ledger.get("INC-901")
        assert record is not None and record.status == "failed" and record.error and "symbolic link" in record.error
        assert {r.incident_id for r in ledger.all() if r.status == "drafted"} == {"INC-900", "INC-902"}


def test_a_fifo_in_a_bundle_fails_that_bundle_instead_of_hanging_the_sweep(tmp_path: Path) -> None:
    home, landing = tmp_path / "home", tmp_path / "landing"
    _bundle(landing, "ok", "INC-OK")
    bad = _bundle(landing, "fifo", "INC-FIFO")
    os.mkfifo(bad / "slack" / "pipe.json")
    report = _sweep(home, landing)
    assert report.drafted == ["INC-OK"]
    assert "not a regular file" in report.failures["INC-FIFO"]


def test_ids_that_sanitise_alike_get_their_own_folders_and_every_draft_survives(tmp_path: Path) -> None:
    home, landing = tmp_path / "home", tmp_path / "landing"
    ids = ["INC/7", "INC_7", "INC 7", "INC~2F7", ".INC_7", "INC_7."]
    for n, incident_id in enumerate(ids):
        _bundle(landing, f"b{n}", incident_id)
    report = _sweep(home, landing)
    assert sorted(report.drafted) == sorted(ids) and report.failed == 0
    folders = {incident_id: draft_folder(home / "drafts", incident_id) for incident_id in ids}
    assert len(set(folders.values())) == len(ids)
    assert folders["INC_7"].name == "INC_7"  # an id that was already a safe name keeps its folder
    for incident_id, folder in folders.items():
        for name in ("v1.json", "latest.json"):
            assert json.loads((folder / name).read_text())["incident"]["id"] == incident_id
    assert len({p.name for p in (home / "snapshots").iterdir()}) == len(ids)
    listing = subprocess.run(
        [sys.executable, "-m", "pipeline", "incidents", "--json"],
        env={**os.environ, "POSTMORTEM_HOME": str(home)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    rows = {row["incident"]: row for row in json.loads(listing.stdout)}
    assert {incident_id: Path(rows[incident_id]["draft"]).parent for incident_id in ids} == folders
    assert all(Path(row["draft"]).is_file() for row in rows.values())


def test_an_id_of_300_bytes_is_drafted_and_redrafted(tmp_path: Path) -> None:
    home, landing = tmp_path / "home", tmp_path / "landing"
    long_id = "INC-" + "é/" * 96 + "x" * 8  # 300 bytes of UTF-8, with characters that need escaping
    assert len(long_id.encode()) == 300
    bundle = _bundle(landing, "long", long_id)
    first = _sweep(home, landing)
    assert first.drafted == [long_id], first.failures
    (bundle / "slack" / "late.json").write_text(
        json.dumps([{"type": "message", "user": "U2", "ts": "1759390000.000100", "text": "late export"}])
    )
    second = _sweep(home, landing)
    assert second.redrafted == 1, second.failures
    folder = draft_folder(home / "drafts", long_id)
    assert len(folder.name.encode()) <= MAX_NAME_BYTES
    assert (folder / "v2.json").is_file() and json.loads((folder / "v2.json").read_text())["incident"]["id"] == long_id


def test_links_planted_in_the_alertmanager_landing_are_not_followed(tmp_path: Path) -> None:
    from pipeline.alert_groups import AlertGroupSource
    from pipeline.receiver import LandingStore, group_dir_name
    from tests import vendor_servers as vs
    from tests.test_connectors import _am_payload

    root, key = tmp_path / "alertmanager", '{}:{alertname="X"}'
    store = LandingStore(root)
    for status, minute in (("firing", 0), ("resolved", 40)):
        payload = _am_payload(key, status, minute)
        store.append(payload, json.dumps(payload).encode(), received=vs.at(minute))
    outside = tmp_path / "outside.json"
    planted = _am_payload(key, "firing", 10)
    planted["commonAnnotations"] = {"summary": MARKER}
    outside.write_text(json.dumps(planted))
    group = root / group_dir_name({"groupKey": key})
    (group / "20250304T141000.000000Z-000099.json").symlink_to(outside)  # named like a landed payload
    (root / ("f" * 16)).symlink_to(group, target_is_directory=True)  # a whole group that is a link
    source = AlertGroupSource(root, now=lambda: vs.at(100))
    (closed,) = source.closed_since(vs.at(-60))
    files = source.snapshot(closed)
    assert len([n for n in files if n.startswith("alertmanager/")]) == 2
    assert MARKER.encode() not in b"".join(files.values())


# --- the name function itself ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "incident_id", ["INC-2041", "pagerduty-Q1ABC2", "jira-OPS-42", "alertmanager-0f3a9c1d2b4e5f60-20250304T140000Z"]
)
def test_ids_that_were_already_safe_keep_the_name_they_always_had(incident_id: str) -> None:
    assert safe_name(incident_id) == incident_id  # existing drafts and ledgers keep working


def test_names_of_tricky_ids_are_distinct_and_never_path_syntax() -> None:
    tricky = ["", ".", "..", "~", "~~", "/", "a/b", "a_b", "a b", "a~2Fb", "a\x00b", "a\\b", "\ud800", "-", "_"]
    tricky += ["x" * 600, "x" * 600 + "y", "é" * 300, "INC/7", "INC_7", "INC 7", "INC~2F7"]
    names = [safe_name(i) for i in tricky]
    assert len(set(names)) == len(tricky)
    for name in names:
        assert name not in ("", ".", "..") and "/" not in name and "\x00" not in name
        assert len(name.encode("utf-8")) <= MAX_NAME_BYTES


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_safe_name_is_injective(a: str, b: str) -> None:
    if a != b:
        assert safe_name(a) != safe_name(b)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=400))
def test_every_name_fits_a_file_name(incident_id: str) -> None:
    name = safe_name(incident_id)
    assert 0 < len(name.encode("utf-8")) <= MAX_NAME_BYTES and "/" not in name and name not in (".", "..")
