"""Scheduled sweeps: idempotent, isolated failures with retries, crash-safe (SIGKILL mid-sweep, then re-run)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml

from pipeline.draft.base import Drafter
from pipeline.draft.facts_drafter import FactsDrafter
from pipeline.ledger import Ledger
from pipeline.settings import Settings
from pipeline.sweep import (
    ClosedIncident,
    IncidentSource,
    LandingSource,
    SweepBusyError,
    snapshot_hash,
    sweep,
    sweep_lock,
)
from tests.conftest import REPO, SAMPLES

TEMPLATE = SAMPLES / "edge-cert-expiry"
N_INCIDENTS = 200
FAIL_RATE = 0.10
SEED = 20251002


def _make_bundle(landing: Path, n: int) -> str:
    """A copy of a small sample bundle with its own incident id, title and start time."""
    incident_id = f"INC-{7000 + n}"
    target = landing / f"bundle-{n:03d}"
    shutil.copytree(TEMPLATE, target, ignore=shutil.ignore_patterns("gold.yaml"))
    manifest = yaml.safe_load((TEMPLATE / "incident.yaml").read_text(encoding="utf-8"))
    manifest["id"] = incident_id
    manifest["title"] = f"api-eu TLS certificate expired (replay {n})"
    minutes = 5 * 60 + n % 100  # 05:00-06:39, all before detection
    manifest["overrides"]["started"]["at"] = f"2025-10-02T{minutes // 60:02d}:{minutes % 60:02d}:00Z"
    (target / "incident.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return incident_id


@pytest.fixture(scope="module")
def landing_200(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    landing = tmp_path_factory.mktemp("landing") / "landing"
    landing.mkdir()
    ids = [_make_bundle(landing, n) for n in range(N_INCIDENTS)]
    return landing, ids


class FlakySource:
    """A landing source whose snapshot fails on the first call for a seeded 10% of incidents."""

    def __init__(self, inner: LandingSource, seed: int, rate: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.seed = seed
        self.rate = rate
        self.calls: dict[str, int] = {}

    def closed_since(self, since: datetime) -> list[ClosedIncident]:
        return self.inner.closed_since(since)

    def will_fail(self, ref: str) -> bool:
        return random.Random(f"{self.seed}:{ref}").random() < self.rate

    def snapshot(self, incident: ClosedIncident) -> dict[str, bytes]:
        ref = incident.ref
        self.calls[ref] = self.calls.get(ref, 0) + 1
        if self.calls[ref] == 1 and self.will_fail(ref):
            raise ConnectionError(f"vendor API timed out fetching {ref}")
        return self.inner.snapshot(incident)


class CountingFactory:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, settings: Settings) -> Drafter:
        self.calls += 1
        return FactsDrafter()


def _assert_complete(home: Path, ids: list[str]) -> dict[str, int]:
    """Every incident drafted exactly once (v1 only, one ledger draft row), nothing half-written."""
    drafts = home / "drafts"
    figures = {"drafted": 0, "duplicates": 0, "partial_files": 0}
    for incident_id in ids:
        names = sorted(p.name for p in (drafts / incident_id).iterdir())
        if names != ["latest.json", "latest.md", "v1.json", "v1.md"]:
            figures["duplicates"] += 1
        for name in ("v1.json", "latest.json"):
            orjson.loads((drafts / incident_id / name).read_bytes())  # every JSON parses
        md = (drafts / incident_id / "v1.md").read_text(encoding="utf-8")
        assert re.search(r"<!-- pm:end footer mac=[0-9a-f]{32} -->$", md.rstrip()), incident_id
        figures["drafted"] += 1
    leftovers = [p for p in home.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]
    figures["partial_files"] = len(leftovers)
    snapshot_dirs = list((home / "snapshots").iterdir())
    assert len(snapshot_dirs) == len(ids)
    for incident_dir in snapshot_dirs:
        assert len(list(incident_dir.iterdir())) == 1, incident_dir  # one complete snapshot, no temp dirs
    with Ledger.for_home(home) as ledger:
        records = ledger.all()
        assert {r.incident_id for r in records} == set(ids)
        assert all(r.status == "drafted" and r.version == 1 and r.drafted_version == 1 for r in records)
        rows = ledger.drafts()
        assert sorted(r.incident_id for r in rows) == sorted(ids)  # one audit row each
        assert all(r.drafter == "facts" for r in rows)
    assert figures["duplicates"] == 0 and figures["partial_files"] == 0, figures
    return figures


def test_200_incidents_with_10_percent_failures_are_all_drafted_exactly_once(
    landing_200: tuple[Path, list[str]], tmp_path: Path
) -> None:
    landing, ids = landing_200
    settings = Settings(home=tmp_path / "home")
    source = FlakySource(LandingSource(landing), SEED, FAIL_RATE)
    expected_failures = {f"bundle-{n:03d}" for n in range(N_INCIDENTS) if source.will_fail(f"bundle-{n:03d}")}
    assert 10 <= len(expected_failures) <= 35  # ~10% of 200

    factory = CountingFactory()
    started = time.perf_counter()
    first = sweep(settings, [source], drafter_factory=factory, index=False)
    first_s = time.perf_counter() - started
    assert first.new == N_INCIDENTS - len(expected_failures)
    assert first.failed == len(expected_failures) and first.redrafted == 0 and first.unchanged == 0
    assert factory.calls == first.new  # each incident drafted once
    with Ledger.for_home(settings.home) as ledger:
        failed = [r for r in ledger.all() if r.status == "failed"]
        assert {r.ref for r in failed} == expected_failures
        assert all(r.attempts == 1 and r.error and "ConnectionError" in r.error for r in failed)
        assert all(r.snapshot_hash is None for r in failed)

    second = sweep(settings, [source], drafter_factory=factory, index=False)
    assert second.retried == len(expected_failures)
    assert second.new == len(expected_failures) and second.failed == 0
    assert second.unchanged <= N_INCIDENTS  # the overlap window re-lists; unchanged inputs are skipped
    assert factory.calls == N_INCIDENTS

    third = sweep(settings, [source], drafter_factory=factory, index=False)
    assert (third.new, third.redrafted, third.failed, third.retried) == (0, 0, 0, 0)
    assert factory.calls == N_INCIDENTS  # idempotent: nothing drafted again

    figures = _assert_complete(settings.home, ids)
    measured = {**figures, "failed_first": first.failed, "retried": second.retried, "first_sweep_s": round(first_s, 2)}
    print(f"\nreliability (200 incidents, 10% snapshot failures): {measured}; {first.summary()}; {second.summary()}")


_CHILD = """
import sys
from pathlib import Path
from pipeline.draft.facts_drafter import FactsDrafter
from pipeline.settings import Settings
from pipeline.sweep import LandingSource, sweep

def tick(incident_id, version):
    print(incident_id, version, flush=True)

sweep(Settings(home=Path(sys.argv[1])), [LandingSource(Path(sys.argv[2]))],
      drafter_factory=lambda s: FactsDrafter(), index=False, on_drafted=tick)
print("DONE", flush=True)
"""


def test_a_sweep_killed_mid_way_completes_on_rerun(landing_200: tuple[Path, list[str]], tmp_path: Path) -> None:
    landing, ids = landing_200
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(REPO), "POSTMORTEM_HOME": str(home)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), str(landing)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert child.stdout is not None
    for seen, _line in enumerate(child.stdout, start=1):
        if seen >= 40:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with Ledger.for_home(home) as ledger:
        before = {r.incident_id: r.status for r in ledger.all()}
    assert 40 <= sum(s == "drafted" for s in before.values()) < N_INCIDENTS  # stopped part-way

    factory = CountingFactory()
    report = sweep(Settings(home=home), [LandingSource(landing)], drafter_factory=factory, index=False)
    assert report.failed == 0
    assert report.new == N_INCIDENTS - sum(s == "drafted" for s in before.values())
    assert report.unchanged == sum(s == "drafted" for s in before.values())
    assert factory.calls == report.new
    _assert_complete(home, ids)


# --- smaller behaviours ------------------------------------------------------------------------------------


def _landing(tmp_path: Path, count: int) -> tuple[Path, list[str]]:
    landing = tmp_path / "landing"
    landing.mkdir()
    return landing, [_make_bundle(landing, n) for n in range(count)]


def test_changed_inputs_make_v2_and_keep_human_edits_in_latest(tmp_path: Path) -> None:
    landing, ids = _landing(tmp_path, 2)
    settings = Settings(home=tmp_path / "home")
    source = LandingSource(landing)
    assert sweep(settings, [source], drafter_factory=lambda s: FactsDrafter(), index=False).new == 2

    latest = settings.drafts_dir / ids[0] / "latest.md"
    text = latest.read_text(encoding="utf-8")
    start = text.index("## Summary\n\n") + len("## Summary\n\n")
    end = text.index("\n", start)
    latest.write_text(text[:start] + "Our own words about what happened." + text[end:], encoding="utf-8")

    # a late ticket export changes the inputs of the first incident only
    late = landing / "bundle-000" / "tickets" / "SUP-5521.json"
    payload = json.loads(late.read_text(encoding="utf-8"))
    payload["fields"]["summary"] = "Customers report TLS errors on api-eu (updated)"
    late.write_text(json.dumps(payload), encoding="utf-8")
    os.utime(landing / "bundle-000", None)

    report = sweep(settings, [source], drafter_factory=lambda s: FactsDrafter(), index=False)
    assert (report.new, report.redrafted, report.failed) == (0, 1, 0)
    assert report.edits_kept == {ids[0]: ["summary"]}
    folder = settings.drafts_dir / ids[0]
    assert sorted(p.name for p in folder.iterdir()) == [
        "latest.json",
        "latest.md",
        "v1.json",
        "v1.md",
        "v2.json",
        "v2.md",
    ]
    merged = (folder / "latest.md").read_text(encoding="utf-8")
    assert "Our own words about what happened." in merged
    with Ledger.for_home(settings.home) as ledger:
        record = ledger.get(ids[0])
        assert record is not None and record.version == 2 and record.status == "drafted"
        assert [d.version for d in ledger.drafts(ids[0])] == [1, 2]
        assert ledger.get(ids[1]) is not None
    assert len(list((settings.home / "snapshots" / ids[0]).iterdir())) == 2


def test_a_failing_draft_is_isolated_and_retried_then_recorded(tmp_path: Path) -> None:
    landing, _ = _landing(tmp_path, 3)
    (landing / "bundle-001" / "incident.yaml").write_text("id: INC-7001\ntimezone: Mars/Olympus\n", encoding="utf-8")
    settings = Settings(home=tmp_path / "home")
    report = sweep(settings, [LandingSource(landing)], drafter_factory=lambda s: FactsDrafter(), index=False)
    assert (report.new, report.failed) == (2, 1)
    assert "timezone" in report.failures["INC-7001"]
    for _ in range(4):
        again = sweep(
            settings, [LandingSource(landing)], drafter_factory=lambda s: FactsDrafter(), index=False, max_attempts=3
        )
    assert again.failed == 0 and again.retried == 0  # gave up after 3 attempts with the same inputs
    with Ledger.for_home(settings.home) as ledger:
        record = ledger.get("INC-7001")
        assert record is not None and record.status == "failed" and record.attempts == 3
        assert record.error is not None and len(record.error) <= 500


def test_a_source_that_cannot_list_keeps_its_cursor(tmp_path: Path) -> None:
    class Down:
        name = "vendor"

        def closed_since(self, since: datetime) -> list[ClosedIncident]:
            raise TimeoutError("vendor unreachable")

        def snapshot(self, incident: ClosedIncident) -> dict[str, bytes]:
            raise AssertionError("not called")

    landing, _ = _landing(tmp_path, 1)
    settings = Settings(home=tmp_path / "home")
    down: IncidentSource = Down()
    report = sweep(settings, [down, LandingSource(landing)], drafter_factory=lambda s: FactsDrafter(), index=False)
    assert report.new == 1 and "TimeoutError" in report.source_errors["vendor"]
    with Ledger.for_home(settings.home) as ledger:
        assert ledger.last_success("vendor") == datetime.fromtimestamp(0, UTC)
        last = ledger.last_success("landing")
        assert last is not None and last > datetime.now(UTC).replace(year=2020)


def test_landing_ignores_partial_drops_and_reads_zips(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.make_archive(str(landing / "edge"), "zip", TEMPLATE)
    shutil.copytree(TEMPLATE, landing / ".copying")
    shutil.copytree(TEMPLATE, landing / "other.part")
    source = LandingSource(landing)
    found = source.closed_since(datetime.fromtimestamp(0, UTC))
    assert [(c.incident_id, c.ref) for c in found] == [("INC-2150", "edge.zip")]
    assert source.closed_since(datetime.now(UTC).replace(year=2999)) == []
    files = source.snapshot(found[0])
    assert list(files) == ["edge.zip"] and snapshot_hash(files) == snapshot_hash(source.snapshot(found[0]))
    settings = Settings(home=tmp_path / "home")
    report = sweep(settings, [source], drafter_factory=lambda s: FactsDrafter(), index=False)
    assert report.new == 1
    draft = orjson.loads((settings.drafts_dir / "INC-2150" / "v1.json").read_bytes())
    assert draft["incident"]["id"] == "INC-2150"


def test_a_bundle_copied_with_old_mtimes_after_a_sweep_is_still_found(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    settings = Settings(home=tmp_path / "home")
    assert sweep(settings, [LandingSource(landing)], index=False, overlap_s=0).new == 0
    time.sleep(0.05)
    shutil.copytree(TEMPLATE, landing / "late")  # copy2 keeps the 2025 mtimes; the inode change time is now
    report = sweep(
        settings, [LandingSource(landing)], drafter_factory=lambda s: FactsDrafter(), index=False, overlap_s=0
    )
    assert report.new == 1 and report.drafted == ["INC-2150"]


def test_one_sweep_at_a_time_and_partials_are_cleaned(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    stale = settings.home / "snapshots" / "INC-1" / ".tmp-abc-123"
    stale.mkdir(parents=True)
    (stale / "half.json").write_text("{", encoding="utf-8")
    half = settings.home / "drafts" / "INC-1" / ".v1.md.x1y2.tmp"
    half.parent.mkdir(parents=True)
    half.write_text("# half", encoding="utf-8")
    with sweep_lock(settings.home), pytest.raises(SweepBusyError):
        sweep(settings, [], index=False)
    report = sweep(settings, [], index=False)
    assert report.cleaned_partials == 2 and not stale.exists() and not half.exists()


def test_ledger_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    with Ledger.for_home(tmp_path) as ledger:
        ledger.begin("INC-1", source="s", ref="r", snapshot_hash="h1", closed_at=None)
        conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
        with pytest.raises(RuntimeError), ledger._transaction() as tx:
            tx.execute("UPDATE incidents SET status = 'drafted', version = 9 WHERE incident_id = 'INC-1'")
            raise RuntimeError("crash between statements")
        record = ledger.get("INC-1")
        assert record is not None and record.status == "pending" and record.version == 1
