"""Tokens the LLM drafter sends vs the raw transcript, on the 5,500-message sample incident.

Runs the real LLMDrafter (redaction, packing, map step, validation) against the scripted OpenAI-compatible
server on 127.0.0.1 (answers are the FactsDrafter's, so no model is needed) and prints, in one run:
  * tokens sent (every request's messages, counted with tiktoken) / tokens of the raw transcript (goal <= 1/10)
  * whether every gold key-moment event is in what the model saw
  * number of LLM calls, and that no request exceeded the configured context
  * tokens spent by a re-run of the unchanged draft (goal 0)

Usage: .venv/bin/python benchmarks/bench_budget.py [--context 8192] [--map-calls 0 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SAMPLE = REPO / "data" / "samples" / "us-east-regional-outage"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--map-calls", type=int, nargs="+", default=[0, 2, 8])
    args = parser.parse_args()

    from pipeline.budget import count_tokens, event_line
    from pipeline.draft.facts import build_facts
    from pipeline.draft.facts_drafter import FactsDrafter
    from pipeline.draft.llm_drafter import LLMDrafter
    from pipeline.llm import LLMClient, LLMConfig, ResponseCache, RunLog
    from pipeline.service import compose, load_timeline
    from pipeline.settings import Settings
    from tests.openai_stub import Step, openai_stub

    home = Path(tempfile.mkdtemp())
    settings = Settings(home=home)
    bundle, timeline = load_timeline(SAMPLE, settings)
    events = timeline.events(entries_only=False)
    transcript = sum(count_tokens(event_line(e), settings) + 1 for e in events)
    answer = FactsDrafter().write(build_facts(bundle.manifest, timeline, settings), timeline).model_dump_json()
    gold = yaml.safe_load((SAMPLE / "gold.yaml").read_text())
    gold_times = [m["at"] for m in gold["moments"].values() if m and m.get("at")]
    print(f"sample: {SAMPLE.name}: {len(events):,} events, raw transcript {transcript:,} tokens (o200k_base)")

    for map_calls in args.map_calls:
        run_settings = Settings(home=home / f"map{map_calls}", llm_map_max_calls=map_calls)
        config = LLMConfig(
            model="stub", base_url=None, context_tokens=args.context, output_reserve_tokens=1500, backoff_s=0.01
        )

        def notes(body: dict[str, object]) -> Step:
            if "<<<EVENTS" in str(body):
                return Step(content='{"notes": []}')
            return Step(content=answer)

        with openai_stub([], default=notes) as server:
            config = LLMConfig(**{**config.__dict__, "base_url": server.base_url})
            client = LLMClient(
                config, RunLog(run_settings.runs_dir / "calls.jsonl"), ResponseCache(run_settings.cache_dir)
            )
            draft, _ = compose(bundle, timeline, run_settings, LLMDrafter(client, run_settings))
            requests = list(server.requests)
            rerun, _ = compose(bundle, timeline, run_settings, LLMDrafter(client, run_settings))
            rerun_requests = len(server.requests) - len(requests)
        sizes = [
            sum(count_tokens(str(m["content"]), run_settings) for m in r["messages"])  # type: ignore[index]
            for r in requests
        ]
        # each request's input plus the answer it reserves (max tokens) must fit the context
        reserved = [int(r.get("max_completion_tokens") or r.get("max_tokens") or 0) for r in requests]  # type: ignore[call-overload]
        fits = all(size + out <= args.context for size, out in zip(sizes, reserved, strict=True))
        seen = "\n".join(str(m["content"]) for r in requests for m in r["messages"])  # type: ignore[index]
        present = []
        for at in gold_times:
            stamp = datetime.fromisoformat(at.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
            present.append(stamp in seen)
        sent = sum(sizes)
        print(
            f"map calls allowed {map_calls}: {len(requests)} LLM calls, {sent:,} tokens sent = "
            f"{sent / transcript:.3f} of the transcript (goal <= 0.100); largest request {max(sizes):,} tokens "
            f"(input + reserved answer within the {args.context:,} context: {fits}); "
            f"gold key events seen {sum(present)}/{len(present)}; drafter {draft.provenance.drafter}; "
            f"coverage: {draft.provenance.coverage}"
        )
        print(
            f"  re-run of the unchanged draft: {rerun_requests} requests, "
            f"{rerun.provenance.tokens.get('input', 0) + rerun.provenance.tokens.get('output', 0)} tokens (goal 0)"
        )


if __name__ == "__main__":
    main()
