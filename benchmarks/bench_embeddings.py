"""Bulk embedding throughput: our LocalMiniLM (dynamic padding) vs Chroma's default embedding function.

Both run the same int8 all-MiniLM-L6-v2 files (`postmortem assets install`) on the same seeded, postmortem-like
sentences of mixed lengths (status one-liners, timeline sentences, paragraphs, a few past the 256-token limit).
Chroma's ONNXMiniLM_L6_V2 pads every input to 256 tokens and is an order of magnitude slower, so by default it embeds
a seeded sample of the sentences (``--chroma-n``; pass ``--chroma-n 2000`` for all of them); the ratio is computed on
exactly that sample, which LocalMiniLM also embeds. Prints sentences/s, the ratio (goal >= 10x) and the largest
|1 - cosine| between the two implementations' vectors for the same sentence.

    .venv/bin/python benchmarks/bench_embeddings.py [--n 2000] [--chroma-n 400] [--threads N] [--max-batch-tokens N]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.assets import embedding_model_status, minilm_home
from pipeline.embeddings import MAX_BATCH_TOKENS, LocalMiniLM
from pipeline.settings import Settings

SERVICES = [
    "checkout-api",
    "payments-gateway",
    "auth-service",
    "search-indexer",
    "orders-db",
    "edge-proxy",
    "kafka-cluster",
    "notification-worker",
    "inventory-api",
    "cdn",
]
SIGNALS = ["5xx error rate", "p99 latency", "replication lag", "consumer lag", "CPU saturation", "disk usage"]
CAUSES = [
    "a config flag that disabled the connection pool",
    "an expired TLS certificate on the internal load balancer",
    "a schema migration that locked the orders table",
    "a retry storm from mobile clients",
    "a noisy neighbour on the shared node pool",
    "a DNS resolver change in us-east-1",
    "a memory leak introduced in the new serializer",
    "an upstream provider outage",
]
ROLES = ["the on-call SRE", "the incident commander", "the database on-call", "customer support", "the payments team"]
SHORT = [
    "Acknowledged.",
    "Rolled back {svc} to v{v}.",
    "Paged {role}.",
    "Status page set to monitoring.",
    "Resolved.",
    "{svc} error rate back to baseline.",
    "Declared SEV{sev}.",
    "Looking into it.",
    "Failover complete.",
]
MEDIUM = [
    "At {hh}:{mm} UTC the {svc} deploy v{v} started and the {sig} alert fired within {n} minutes.",
    "{role} acknowledged the page after {n} minutes and opened the incident channel.",
    "Customers reported failed checkouts while {svc} returned HTTP 503 for {pct}% of requests.",
    "The root cause was {cause}, which only surfaced under peak traffic.",
    "We mitigated by draining traffic from the affected zone and scaling {svc} to {k} replicas.",
    "{sig} on {svc} crossed the paging threshold and stayed above it for {n} minutes.",
    "Action item: add an alert on {sig} for {svc} with an owner from {role_team} by next sprint.",
    "The status page was not updated for {n} minutes, so support had no guidance for customers.",
]


def sentences(n: int, seed: int = 7, mix: str = "sentences") -> list[str]:
    rng = random.Random(seed)

    def fill(template: str) -> str:
        return template.format(
            svc=rng.choice(SERVICES),
            sig=rng.choice(SIGNALS),
            cause=rng.choice(CAUSES),
            role=rng.choice(ROLES),
            role_team=rng.choice(["payments", "platform", "data", "edge"]),
            v=f"{rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
            sev=rng.randint(1, 3),
            hh=f"{rng.randint(0, 23):02d}",
            mm=f"{rng.randint(0, 59):02d}",
            n=rng.randint(2, 90),
            pct=rng.randint(1, 60),
            k=rng.randint(3, 40),
        )

    out = []
    for _ in range(n):
        kind = rng.random()
        if mix == "sections":  # index chunks: summary/impact/timeline sections of a few to many sentences
            count = rng.randint(2, 6) if kind < 0.8 else rng.randint(10, 16)
            out.append(" ".join(fill(rng.choice(MEDIUM)) for _ in range(count)))
        elif kind < 0.35:  # status one-liners
            out.append(fill(rng.choice(SHORT)))
        elif kind < 0.85:  # one timeline sentence
            out.append(fill(rng.choice(MEDIUM)))
        elif kind < 0.97:  # a chat message of two or three sentences
            out.append(" ".join(fill(rng.choice(MEDIUM)) for _ in range(rng.randint(2, 3))))
        else:  # a pasted paragraph, often past the 256-token limit
            out.append(" ".join(fill(rng.choice(MEDIUM)) for _ in range(rng.randint(6, 16))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="sentences to generate and embed with LocalMiniLM")
    parser.add_argument("--chroma-n", type=int, default=400, help="how many of them Chroma's function embeds")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: ORT's)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: POSTMORTEM_EMBEDDING_BATCH_SIZE")
    parser.add_argument("--max-batch-tokens", type=int, default=MAX_BATCH_TOKENS, help="padded tokens per call")
    parser.add_argument(
        "--mix",
        choices=["sentences", "sections"],
        default="sentences",
        help="sentences: timeline/chat lines (default); sections: paragraph-sized index chunks",
    )
    parser.add_argument("--slice", type=int, default=100, help="alternate the two every this many sentences")
    args = parser.parse_args()

    settings = Settings()
    if not all(ok for _, ok, _ in embedding_model_status(settings)):
        sys.exit("the embedding model is not installed: run `postmortem assets install` (or ./run setup)")
    texts = sentences(args.n, mix=args.mix)
    sample_idx = sorted(random.Random(11).sample(range(len(texts)), min(args.chroma_n, len(texts))))
    sample = [texts[i] for i in sample_idx]

    ours = LocalMiniLM(
        settings, intra_op_threads=args.threads, batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens
    )
    lengths = np.array([len(e.ids) for e in _tokenizer(ours).encode_batch(texts)])
    ours.embed(texts[:8])  # session creation and warm-up are not throughput
    wall, cpu = time.perf_counter(), time.process_time()
    ours_all = ours.embed(texts)
    ours_all_wall, ours_all_cpu = time.perf_counter() - wall, time.process_time() - cpu

    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    chroma = ONNXMiniLM_L6_V2()
    chroma.DOWNLOAD_PATH = minilm_home(settings)  # our installed files: no download
    chroma(texts[:8])
    # The sample is embedded slice by slice, alternating the two, so a change in machine load hits both alike.
    timing = {"ours": [0.0, 0.0], "chroma": [0.0, 0.0]}
    ours_parts, chroma_parts = [], []
    for k in range(0, len(sample), args.slice):
        part = sample[k : k + args.slice]
        for name, run, sink in (
            ("ours", ours.embed, ours_parts),
            ("chroma", lambda p: np.asarray(chroma(p), dtype=np.float32), chroma_parts),
        ):
            wall, cpu = time.perf_counter(), time.process_time()
            sink.append(run(part))
            timing[name][0] += time.perf_counter() - wall
            timing[name][1] += time.process_time() - cpu
    ours_sample, theirs = np.vstack(ours_parts), np.vstack(chroma_parts)

    cosine = (ours_sample * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    drift = float(np.abs(ours_all[sample_idx] - ours_sample).max())
    (ours_wall, ours_cpu), (chroma_wall, chroma_cpu) = timing["ours"], timing["chroma"]
    m = len(sample)
    print(
        f"{args.mix}: {len(texts)} (tokens mean {lengths.mean():.0f}, p50 {np.median(lengths):.0f}, "
        f"max {lengths.max()}, {(lengths > 256).mean():.1%} truncated at 256); {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.1f}; threads {args.threads or 'ORT default'}, "
        f"batch <= {args.batch_size or settings.embedding_batch_size} texts / {args.max_batch_tokens} tokens"
    )
    print(
        f"LocalMiniLM, all {len(texts)}:           {len(texts) / ours_all_wall:7.1f} sentences/s  "
        f"({ours_all_wall:.1f} s wall, {len(texts) / ours_all_cpu:.1f} per CPU-s)"
    )
    print(
        f"LocalMiniLM, sample of {m}:        {m / ours_wall:7.1f} sentences/s  "
        f"({ours_wall:.1f} s wall, {m / ours_cpu:.1f} per CPU-s)"
    )
    print(
        f"Chroma ONNXMiniLM_L6_V2, same {m}: {m / chroma_wall:7.1f} sentences/s  "
        f"({chroma_wall:.1f} s wall, {m / chroma_cpu:.1f} per CPU-s)"
    )
    print(
        f"ratio on the same sentences: {chroma_wall / ours_wall:.1f}x wall, {chroma_cpu / ours_cpu:.1f}x CPU  (goal >= 10x)"
    )
    print(
        f"max |1 - cosine| ours vs Chroma: {np.abs(1 - cosine).max():.2e} (min cosine {cosine.min():.7f}); "
        f"batching drift within ours: {drift:.1e}"
    )


def _tokenizer(embedder: LocalMiniLM) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(embedder.model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


if __name__ == "__main__":
    main()
