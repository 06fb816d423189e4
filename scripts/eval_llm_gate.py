"""CI gate for prompt changes: serve SmolLM2 with llama.cpp on 127.0.0.1 and run the llm-smoke suite against
its committed baseline. Exit code 1 on a threshold failure or a regression.

Usage: .venv/bin/python scripts/eval_llm_gate.py [--record-baseline]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

os.environ.setdefault("POSTMORTEM_LLM_RESPONSE_FORMAT", "json_object_schema")  # llama.cpp's dialect
os.environ.setdefault("POSTMORTEM_LLM_CONTEXT_TOKENS", "8192")
os.environ.setdefault("POSTMORTEM_LLM_MAP_MAX_CALLS", "0")
os.environ.setdefault("POSTMORTEM_LLM_TIMEOUT_S", "900")


def main() -> int:
    from pipeline.eval_report import render_report, summary_rows
    from pipeline.evaluate import run_suite, write_baseline
    from pipeline.settings import Settings
    from tests.llm_server import MODEL_ALIAS, find_local_model, llama_server_available, start_llama_server

    reason = llama_server_available()
    if reason:
        print(f"local model unavailable: {reason}", file=sys.stderr)
        return 2
    model = find_local_model()
    assert model is not None
    with start_llama_server(model, n_ctx=8192, openai_compat=False) as base_url:
        run = run_suite(
            "llm-smoke.v1", Settings(), drafter="llm", llm_model=MODEL_ALIAS, base_url=base_url, judge=False
        )
    md, _ = render_report(run, run.report_dir())
    for row in summary_rows(run):
        print(" | ".join(row))
    if "--record-baseline" in sys.argv:
        print(f"baseline written: {write_baseline(run)}")
    print(("PASS" if run.passed else "FAIL: " + "; ".join(run.summary.reasons)) + f"  (report {md})")
    return run.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
