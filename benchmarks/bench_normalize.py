"""Normalisation throughput on ~1M mixed events, and `postmortem draft` wall time.

Prints, from one run:
  * normalise / orjson-parse-only            (goal <= 1.5x)
  * naive per-record loop / normalise        (goal >= 10x)
  * peak RSS of each method (each runs in its own process)
  * `postmortem draft` wall time on sample bundles, direct and as the Prefect flow

Usage: .venv/bin/python benchmarks/bench_normalize.py [--events 1000000] [--skip-naive]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)


# --- data --------------------------------------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generate(root: Path, total: int, seed: int = 7) -> dict[str, int]:
    """Write a bundle of real-format files: 60% Slack, 30% Alertmanager (NDJSON), 10% PagerDuty log entries.
    About 2% of alert notifications are re-deliveries, as webhooks are."""
    rng = random.Random(seed)
    counts = {"slack": int(total * 0.6), "alertmanager": int(total * 0.3)}
    counts["pagerduty"] = total - counts["slack"] - counts["alertmanager"]
    users = [f"U0{n:09d}" for n in range(40)]
    (root / "slack" / "inc-bench").mkdir(parents=True)
    (root / "slack" / "users.json").write_text(
        json.dumps(
            [{"id": u, "name": f"user{i}", "profile": {"display_name": f"user{i}"}} for i, u in enumerate(users)]
        )
    )
    per_file = 10_000
    words = [
        "checkout",
        "latency",
        "errors",
        "pool",
        "db",
        "rollback",
        "deploy",
        "looking",
        "ack",
        "cpu",
        "traffic",
        "region",
        "dns",
        "cert",
    ]
    n = 0
    for f in range(0, counts["slack"], per_file):
        msgs = []
        for _ in range(min(per_file, counts["slack"] - f)):
            ts = T0.timestamp() + n * 0.05
            msg = {"type": "message", "user": rng.choice(users), "ts": f"{ts:.6f}",
                   "text": " ".join(rng.choices(words, k=12)), "client_msg_id": f"m{n}"}  # fmt: skip
            if n % 17 == 3:
                msg["thread_ts"] = f"{T0.timestamp() + (n - 3) * 0.05:.6f}"
            msgs.append(msg)
            n += 1
        (root / "slack" / "inc-bench" / f"part-{f // per_file:04d}.json").write_text(json.dumps(msgs))
    alert_names = [f"Alert{k}" for k in range(300)]
    with (root / "alertmanager.ndjson").open("w") as out:
        written = 0
        while written < counts["alertmanager"]:
            alerts = []
            for _ in range(min(10, counts["alertmanager"] - written)):
                name = rng.choice(alert_names)
                start = T0 + timedelta(seconds=written * 0.1)
                alerts.append({
                    "status": "firing", "labels": {"alertname": name, "service": "svc", "severity": "page",
                                                    "pod": f"p{written}"},
                    "annotations": {"summary": f"{name} on pod p{written}"}, "startsAt": _iso(start),
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": f"{written:016x}",
                })  # fmt: skip
                written += 1
            payload = {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "pd", "groupLabels": {},
                       "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "alerts": alerts}  # fmt: skip
            line = json.dumps(payload)
            out.write(line + "\n")
            if rng.random() < 0.02:
                out.write(line + "\n")
    (root / "pagerduty").mkdir()
    written = 0
    page = 0
    while written < counts["pagerduty"]:
        entries = []
        for _ in range(min(5_000, counts["pagerduty"] - written)):
            inc = f"PINC{written // 4}"
            kind = ("trigger_log_entry", "notify_log_entry", "acknowledge_log_entry", "resolve_log_entry")[written % 4]
            entries.append({
                "id": f"R{written}", "type": kind, "summary": f"{kind} for {inc}",
                "created_at": _iso(T0 + timedelta(seconds=written)),
                "agent": {"id": "PU1", "type": "user_reference", "summary": "Responder"},
                "incident": {"id": inc, "type": "incident_reference", "summary": f"[#{written}] Alert{written % 300}"},
                "service": {"id": "PS1", "type": "service_reference", "summary": "svc"},
            })  # fmt: skip
            written += 1
        (root / "pagerduty" / f"log_entries_{page:03d}.json").write_text(
            json.dumps({"log_entries": entries, "limit": 5000, "offset": page * 5000, "more": False})
        )
        page += 1
    return counts


# --- methods (each run in a child process) -------------------------------------------------------------------


def method_orjson(root: Path) -> int:
    import orjson

    records = 0
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = file.read_bytes()
        if file.suffix == ".ndjson":
            for line in raw.splitlines():
                records += len(orjson.loads(line)["alerts"])
        else:
            doc = orjson.loads(raw)
            records += len(doc) if isinstance(doc, list) else len(doc.get("log_entries", []))
    return records


def method_pipeline(root: Path) -> int:
    from pipeline.service import load_timeline
    from pipeline.settings import Settings

    _, timeline = load_timeline(root, Settings(home=Path(tempfile.mkdtemp())))
    assert timeline.stats.balanced
    return timeline.stats.records_in


def method_naive(root: Path) -> int:
    """What a straightforward implementation does: stdlib json, one validated model per record, dicts and
    sorted() for dedup, storms and ordering."""
    from pipeline.models import Event, EventKind, Provenance, Source, event_id

    events: dict[str, Event] = {}
    users: dict[str, str] = {}
    records = 0

    def add(source: Source, native: str, ts: datetime, kind: EventKind, text: str, file: Path, pos: str) -> None:
        nonlocal records
        records += 1
        e = Event(id=event_id(source.value, native), source=source, native_id=native, ts=ts, kind=kind, text=text,
                  provenance=Provenance(file=str(file), position=pos))  # fmt: skip
        events[e.id] = e

    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        if file.name == "users.json":
            users.update({u["id"]: u["name"] for u in json.loads(file.read_text())})
        elif file.suffix == ".ndjson":
            for n, line in enumerate(file.read_text().splitlines()):
                for i, a in enumerate(json.loads(line)["alerts"]):
                    ts = datetime.fromisoformat(a["startsAt"])
                    add(Source.ALERTMANAGER, f"{a['fingerprint']}:{ts}", ts, EventKind.ALERT_FIRING,
                        a["annotations"]["summary"], file, f"line {n} /alerts/{i}")  # fmt: skip
        elif "pagerduty" in file.parts:
            for i, le in enumerate(json.loads(file.read_text())["log_entries"]):
                add(Source.PAGERDUTY, le["id"], datetime.fromisoformat(le["created_at"]), EventKind.NOTE,
                    le["summary"], file, f"/log_entries/{i}")  # fmt: skip
        else:
            for i, m in enumerate(json.loads(file.read_text())):
                ts = datetime.fromtimestamp(float(m["ts"]), tz=UTC)
                add(Source.SLACK, f"C:{m['ts']}", ts, EventKind.MESSAGE, m["text"], file, f"/{i}")
    ordered = sorted(events.values(), key=lambda e: (e.ts, e.id))
    storms: dict[str, list[Event]] = {}
    for e in ordered:
        if e.kind is EventKind.ALERT_FIRING:
            storms.setdefault(e.text.split(" ")[0], []).append(e)
    return records


METHODS = {"orjson": method_orjson, "pipeline": method_pipeline, "naive": method_naive}


def child(method: str, root: Path) -> None:
    start = time.perf_counter()
    records = METHODS[method](root)
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "seconds": elapsed, "records": records, "peak_mb": peak_mb}))


def run_child(method: str, root: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, "--root", str(root)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def wall(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True, cwd=REPO, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--root")
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.root))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bundle"
        root.mkdir()
        t = time.perf_counter()
        counts = generate(root, args.events)
        size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
        print(
            f"generated {sum(counts.values()):,} records {counts} ({size_mb:.0f} MB) in {time.perf_counter() - t:.1f} s"
        )
        results = {m: run_child(m, root) for m in METHODS if not (m == "naive" and args.skip_naive)}
    for r in results.values():
        print(
            f"{r['method']:>9}: {r['seconds']:7.2f} s  {r['records']:>9,.0f} records  peak RSS {r['peak_mb']:7.0f} MB"
        )
    pipe, raw = results["pipeline"]["seconds"], results["orjson"]["seconds"]
    print(f"normalise / orjson parse-only        = {pipe / raw:.2f}x   (goal <= 1.5x)")
    if "naive" in results:
        print(f"naive per-record loop / normalise    = {results['naive']['seconds'] / pipe:.1f}x   (goal >= 10x)")

    env = {**os.environ, "POSTMORTEM_HOME": tempfile.mkdtemp(), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    cli = [sys.executable, "-m", "pipeline", "draft"]
    samples = REPO / "data" / "samples"
    bundles = sorted(p for p in samples.iterdir() if p.is_dir())
    largest = max(bundles, key=lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()))
    for bundle in (samples / "checkout-bad-deploy", largest):
        print(f"postmortem draft {bundle.name:<28} wall {wall([*cli, str(bundle)], env):5.2f} s   (goal <= 3 s)")
    flow = wall([*cli, str(samples / "checkout-bad-deploy"), "--flow"], env)
    print(f"postmortem draft --flow (Prefect)   wall {flow:5.2f} s   (ephemeral server start + orchestration)")


if __name__ == "__main__":
    main()
