"""Similar-incident search: retrieval quality on public postmortems, and latency/recall/memory at scale.

Prints, from one run:
  (1) quality on ../shared/data/postmortems.jsonl (skipped with a message when absent), real all-MiniLM-L6-v2:
      * known-item pairs from `same_incident_as` (query with one write-up's title + description, expect the other
        write-up of the same incident): MRR@10, recall@1, recall@10
      * k8s.af stories, graded relevance = number of shared normalised `tags`: nDCG@10
      for dense-only, lexical-only and hybrid (RRF k=60), each with "max" (best chunk per incident) and "sum"
      (sum of the best 3 chunks' RRF scores) aggregation
  (2) scale: N chunks (default 100,000) of generated incident text. Chunk vectors are NOT embedded one by one
      (that would take ~30 min here): a few thousand unique generated sentences are embedded with the real model
      and each chunk's vector is the normalised sum of its three sentences' vectors, so the vectors have the
      clustered structure of real text. Reports build throughput (with its parts), an incremental re-index,
      query p50/p95 with embedding excluded, recall@10 of Chroma's HNSW against exact numpy search on the same
      vectors, and peak RSS.

Each part runs in its own process, so each peak RSS is its own.

Usage: .venv/bin/python benchmarks/bench_search.py [--chunks 100000] [--queries 200] [--part quality|scale]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "postmortems.jsonl"

Vectors = npt.NDArray[np.float32]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _settings(home: Path) -> Any:
    from pipeline.settings import Settings

    assets = Settings().assets_dir  # the installed assets, before HOME moves
    return Settings(home=home, assets=assets)


class CachingEmbedder:
    """The real model, remembering texts it has embedded (queries repeat across modes)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.model_id: str = inner.model_id
        self.dimension: int = inner.dimension
        self._cache: dict[str, Vectors] = {}
        self.seconds = 0.0
        self.texts = 0

    def embed(self, texts: Sequence[str], *, restricted: bool = True) -> Vectors:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            start = time.perf_counter()
            for text, row in zip(todo, self._inner.embed(todo, restricted=restricted), strict=True):
                self._cache[text] = row
            self.seconds += time.perf_counter() - start
            self.texts += len(todo)
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)


# --- (1) quality -----------------------------------------------------------------------------------------------

_TAG_ALIASES = {
    "eks": "aws",
    "amazon vpc cni plugin": "aws",
    "kube2iam": "aws iam",
    "kiam": "aws iam",
    "apiserver": "api server",
    "api server oomkill": "oomkill",
    "systemoom": "oomkill",
    "oom": "oomkill",
    "kubelet": "kubelet",
    "cluster-autoscaler": "cluster autoscaler",
    "coredns-autoscaler": "coredns",
    "podpriority": "pod priorities",
    "frozen cronjob": "cronjob",
    "ipvs conntrack": "conntrack",
    "gke node auto-repair": "gke",
    "skipper-ingress": "ingress",
    "nginx ingress": "ingress",
}


def normalise_tag(tag: str) -> str:
    """k8s.af `involved` tags: lower-case, no backticks/quotes, AWS products folded into "aws", known aliases."""
    t = " ".join(tag.lower().replace("`", "").replace('"', "").split())
    if t.startswith(("aws ", "amazon ")) and t not in ("aws iam",):
        t = "aws"
    return _TAG_ALIASES.get(t, t)


def quality(path: Path) -> None:
    if not path.is_file():
        print(f"(1) quality: skipped — {path} is not present")
        return
    from pipeline.embeddings import LocalMiniLM
    from pipeline.index import Index

    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_id = {r["id"]: r for r in records}
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        settings = _settings(Path(tmp))
        embedder = CachingEmbedder(LocalMiniLM(settings))
        start = time.perf_counter()
        index = Index(settings, embedder, create=True)
        report = index.index_paths([path])
        build_s = time.perf_counter() - start
        print(
            f"(1) quality: {path.name}: {report.counts['added']} records, {report.chunks_written} chunks indexed in "
            f"{build_s:.1f} s (embedding {embedder.seconds:.1f} s, {embedder.texts / max(embedder.seconds, 1e-9):.0f} "
            f"chunks/s); rejected {report.counts['rejected']}"
        )
        indexes = {"max": index, "sum": Index(settings, embedder, aggregate="sum")}

        def text(record: dict[str, Any]) -> str:
            return "\n".join(p for p in (record.get("title"), record.get("description")) if p)

        known = [(r["id"], other) for r in records for other in r.get("same_incident_as") or [] if other in by_id]
        k8s = [r for r in records if r["id"].startswith("k8saf-")]
        tags = {r["id"]: {normalise_tag(t) for t in r.get("tags") or []} for r in k8s}
        graded = []
        for r in k8s:
            rel = {o["id"]: len(tags[r["id"]] & tags[o["id"]]) for o in k8s if o["id"] != r["id"]}
            rel = {i: g for i, g in rel.items() if g > 0}
            if rel:
                graded.append((r, rel))
        print(
            f"    known-item queries: {len(known)} (both directions of {len(known) // 2} pairs); "
            f"k8s.af graded queries: {len(graded)} of {len(k8s)} stories"
        )
        print(f"    {'mode':<8} {'agg':<4} {'MRR@10':>7} {'R@1':>6} {'R@10':>6} {'nDCG@10':>8} {'ms/query':>9}")
        rows = {}
        for mode in ("dense", "lexical", "hybrid"):
            for aggregate in ("max", "sum"):
                ix = indexes[aggregate]
                rr, r1, r10, times = [], [], [], []
                for qid, target in known:
                    t0 = time.perf_counter()
                    hits = [h.incident_id for h in ix.search(text(by_id[qid]), k=10, mode=mode, exclude=[qid])]
                    times.append(time.perf_counter() - t0)
                    rank = hits.index(target) + 1 if target in hits else None
                    rr.append(1 / rank if rank else 0.0)
                    r1.append(1.0 if rank == 1 else 0.0)
                    r10.append(1.0 if rank else 0.0)
                ndcgs = []
                for r, rel in graded:
                    t0 = time.perf_counter()
                    hits = [h.incident_id for h in ix.search(text(r), k=10, mode=mode, exclude=[r["id"]])]
                    times.append(time.perf_counter() - t0)
                    dcg = sum((2 ** rel.get(h, 0) - 1) / math.log2(i + 2) for i, h in enumerate(hits))
                    ideal = sorted(rel.values(), reverse=True)[:10]
                    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
                    ndcgs.append(dcg / idcg)
                rows[(mode, aggregate)] = (statistics.mean(rr), statistics.mean(ndcgs))
                print(
                    f"    {mode:<8} {aggregate:<4} {statistics.mean(rr):>7.3f} {statistics.mean(r1):>6.3f} "
                    f"{statistics.mean(r10):>6.3f} {statistics.mean(ndcgs):>8.3f} {1000 * statistics.mean(times):>9.1f}"
                )
        balance = {m: (rows[(m, "max")][0] + rows[(m, "max")][1]) / 2 for m in ("dense", "lexical", "hybrid")}
        print("    mean of MRR@10 and nDCG@10 (max): " + ", ".join(f"{m} {v:.3f}" for m, v in balance.items()))
        for aggregate in ("max", "sum"):
            mrr, ndcg = rows[("hybrid", aggregate)]
            beats = all(mrr > rows[(m, aggregate)][0] and ndcg > rows[(m, aggregate)][1] for m in ("dense", "lexical"))
            print(f"    hybrid/{aggregate} beats dense and lexical on both MRR and nDCG: {'yes' if beats else 'NO'}")
        print("    (ms/query includes the query embedding, cached after its first use across modes)")
    print(f"    peak RSS: {_rss_mb():.0f} MB")


# --- (2) scale -------------------------------------------------------------------------------------------------

SERVICES = [
    "checkout-api",
    "payments-api",
    "orders-api",
    "orders-db",
    "ledger-service",
    "kafka",
    "redis-cache",
    "search-indexer",
    "auth-service",
    "edge-gateway",
    "coredns",
    "api-gateway",
    "inventory-service",
    "notification-worker",
    "billing-batch",
    "s3-uploader",
    "user-profile-api",
    "etcd",
    "ingress-nginx",
    "elasticsearch",
    "rabbitmq",
    "fraud-scoring",
    "shipping-quotes",
    "media-transcoder",
]
SYMPTOMS = [
    "returned HTTP 503 errors to clients",
    "timed out on calls to its upstream",
    "ran out of disk space",
    "hit the limit of its connection pool",
    "was OOM killed every few minutes",
    "served p99 latency above two seconds",
    "dropped messages from the queue",
    "failed TLS handshakes with partners",
    "lost quorum between its replicas",
    "stopped consuming events",
    "served stale data from cache",
    "crash-looped right after start",
    "exhausted its file descriptors",
    "threw null pointer exceptions on every request",
    "rejected valid logins",
    "double-charged a share of customers",
    "filled its dead-letter queue",
    "lagged hours behind on replication",
    "saturated the node CPU",
    "returned empty search results",
]
CAUSES = [
    "a configuration change to the rate limiter",
    "a certificate that expired at midnight",
    "a noisy neighbour on the shared node pool",
    "a schema migration that locked the orders table",
    "a DNS change that removed the internal zone",
    "a bad deploy of the new release",
    "a retry storm from mobile clients",
    "a cloud provider outage in one region",
    "an expired API key for a vendor",
    "a memory leak in the cache layer",
    "log retention raised without resizing disks",
    "a cron job that ran during peak traffic",
    "a feature flag rolled out to all users at once",
    "a kernel upgrade that changed conntrack limits",
    "an autoscaler that could not add nodes",
    "a load balancer health check that called the database",
    "clock skew between hosts",
    "a leaked credential that had to be rotated",
    "a network partition between zones",
    "a dependency upgrade with a breaking default",
]
ACTIONS = [
    "The team rolled back the deploy",
    "On-call failed over to the secondary region",
    "Engineers raised the connection limit",
    "The certificate was renewed and uploaded",
    "The consumers were restarted",
    "The queue was drained and replayed",
    "The feature flag was turned off",
    "Traffic was shed at the edge",
    "The noisy job was suspended",
    "The node pool was scaled out",
]
SEVERITIES = ["SEV1", "SEV2", "SEV3", "SEV4"]
TAGS = [
    "database",
    "network",
    "dns",
    "tls",
    "deploy",
    "config",
    "capacity",
    "memory",
    "disk",
    "queue",
    "cache",
    "security",
    "vendor",
    "kubernetes",
]
SECTIONS = ["summary", "impact", "factors", "actions", "timeline"]


def make_sentences(rng: random.Random, n: int) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        svc, sym, cause, act = rng.choice(SERVICES), rng.choice(SYMPTOMS), rng.choice(CAUSES), rng.choice(ACTIONS)
        template = rng.randrange(5)
        minutes = rng.choice([5, 12, 20, 35, 47, 60, 90, 120])
        out.add(
            [
                f"{svc} {sym} after {cause}.",
                f"{act} and {svc} recovered within {minutes} minutes.",
                f"The on-call engineer noticed that {svc} {sym}.",
                f"Root cause: {cause} affected {svc}.",
                f"Customers saw errors because {svc} {sym} for {minutes} minutes.",
            ][template]
        )
    return sorted(out)


class TableEmbedder:
    """Vectors looked up by text (composed from embedded sentences); embedding time is thereby excluded."""

    def __init__(self, model_id: str, dimension: int) -> None:
        self.model_id = model_id
        self.dimension = dimension
        self.table: dict[str, Vectors] = {}

    def embed(self, texts: Sequence[str], *, restricted: bool = True) -> Vectors:
        out: Vectors = np.stack([self.table[t] for t in texts]).astype(np.float32)
        return out


class _Timed:
    """Proxy that adds the time spent in one method to a counter."""

    def __init__(self, inner: Any, method: str, counter: list[float]) -> None:
        self._inner, self._method, self._counter = inner, method, counter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def timed(*args: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return attr(*args, **kw)
            finally:
                self._counter[0] += time.perf_counter() - start

        return timed


def _timed_function(module: Any, name: str, counter: list[float]) -> None:
    inner: Callable[..., Any] = getattr(module, name)

    def timed(*args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kw)
        finally:
            counter[0] += time.perf_counter() - start

    setattr(module, name, timed)


def _unit(rows: npt.NDArray[np.floating[Any]]) -> Vectors:
    out: Vectors = (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)
    return out


def scale(n_chunks: int, n_queries: int, n_sentences: int) -> None:
    import pipeline.index as index_module
    from pipeline.embeddings import LocalMiniLM
    from pipeline.index import Index, SearchFilters
    from pipeline.index_docs import DocSection, IndexDocument

    rng = random.Random(11)
    n_incidents = max(1, n_chunks // len(SECTIONS))
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        settings = _settings(Path(tmp))
        sentences = make_sentences(rng, n_sentences)
        minilm = LocalMiniLM(settings)
        start = time.perf_counter()
        svec = minilm.embed(sentences)
        embed_s = time.perf_counter() - start
        print(
            f"(2) scale: {len(sentences)} unique generated sentences embedded with the real model in {embed_s:.1f} s "
            f"({len(sentences) / embed_s:.0f}/s); chunk vectors = normalised sum of 3 sentence vectors"
        )
        embedder = TableEmbedder("bench/minilm-composed-sentences", svec.shape[1])
        docs: list[IndexDocument] = []
        day0 = date(2019, 1, 1)
        for i in range(n_incidents):
            services = tuple(sorted(set(rng.sample(SERVICES, rng.choice([1, 1, 2, 3])))))
            roll = rng.random()
            visibility = "restricted" if roll < 0.10 else "public" if roll < 0.15 else "internal"
            title = f"INC-{i:06d} {services[0]} {rng.choice(SYMPTOMS)}"
            sections = []
            for name in SECTIONS:
                picks = rng.sample(range(len(sentences)), 3)
                text = " ".join(sentences[p] for p in picks)
                vector = _unit(svec[picks].sum(axis=0))
                embedder.table[f"{title}\n{text}"] = vector
                sections.append(DocSection(name=name, text=text))
            docs.append(
                IndexDocument(
                    incident_id=f"INC-{i:06d}",
                    title=title,
                    date=day0 + timedelta(days=rng.randrange(2500)),
                    services=services,
                    severity=rng.choice(SEVERITIES),
                    tags=tuple(sorted(set(rng.sample(TAGS, 2)))),
                    visibility=visibility,
                    teams=("security",) if visibility == "restricted" else (),
                    sections=tuple(sections),
                    source=f"generated/{i}.md",
                )
            )
        chunk_total = n_incidents * len(SECTIONS)
        chroma_s, bm25_s, snap_s = [0.0], [0.0], [0.0]
        _timed_function(index_module, "build_bm25", bm25_s)
        _timed_function(index_module, "write_snapshot", snap_s)
        index = Index(settings, embedder, create=True)
        for part in ("open", "restricted"):
            index._store.collections[part] = _Timed(index._store.collections[part], "upsert", chroma_s)  # type: ignore[assignment]
        start = time.perf_counter()
        report = index.index_documents(docs)
        build_s = time.perf_counter() - start
        assert report.chunks_written == chunk_total, report.counts
        print(
            f"    build: {chunk_total} chunks / {n_incidents} incidents in {build_s:.1f} s = "
            f"{chunk_total / build_s:.0f} chunks/s (embedding excluded) — Chroma upsert {chroma_s[0]:.1f} s, "
            f"BM25 build {bm25_s[0]:.1f} s, snapshot write {snap_s[0]:.1f} s, rest (chunking, hashing) "
            f"{build_s - chroma_s[0] - bm25_s[0] - snap_s[0]:.1f} s"
        )
        # incremental: 10 changed documents
        changed = []
        for doc in docs[:10]:
            text = doc.sections[0].text + " Updated after review."
            embedder.table[f"{doc.title}\n{text}"] = embedder.table[f"{doc.title}\n{doc.sections[0].text}"]
            changed.append(
                doc.model_copy(update={"sections": (DocSection(name="summary", text=text), *doc.sections[1:])})
            )
        start = time.perf_counter()
        again = index.index_documents(changed)
        print(
            f"    re-index 10 changed incidents: {time.perf_counter() - start:.1f} s "
            f"(updated {len(again.updated)}; the BM25 index is rebuilt over all chunks on every write)"
        )
        start = time.perf_counter()
        unchanged = index.index_documents(docs[10:])
        print(
            f"    re-index {len(unchanged.unchanged)} unchanged incidents: {time.perf_counter() - start:.1f} s (skipped)"
        )

        # queries: two random sentences each, vectors composed the same way
        queries: list[tuple[str, Vectors]] = []
        for _ in range(n_queries):
            picks = rng.sample(range(len(sentences)), 2)
            text = " ".join(sentences[p] for p in picks)
            vector = _unit(svec[picks].sum(axis=0))
            embedder.table[text] = vector
            queries.append((text, vector))
        fresh = Index(settings, embedder)
        start = time.perf_counter()
        fresh.search(queries[0][0], k=10)
        print(
            f"    first search on a freshly opened index (loads the lexical snapshot): {time.perf_counter() - start:.2f} s"
        )

        open_collection = fresh._store.collections["open"]

        def timings(fn: Callable[[str, Vectors], Any]) -> list[float]:
            fn(*queries[0])  # warm
            out = []
            for text, vector in queries:
                t0 = time.perf_counter()
                fn(text, vector)
                out.append(1000 * (time.perf_counter() - t0))
            return out

        results: dict[str, list[float]] = {}
        hnsw_ids: list[list[str]] = []

        def raw(text: str, vector: Vectors) -> None:
            got = open_collection.query(query_embeddings=vector[None, :], n_results=10, include=["distances"])
            hnsw_ids.append(got["ids"][0])

        results["Chroma query, k=10, no filter"] = timings(raw)
        service = "checkout-api"
        service_where: Any = {"services": {"$contains": service}}
        results["Chroma query, k=10, where services $contains"] = timings(
            lambda t, v: open_collection.query(
                query_embeddings=v[None, :],
                n_results=10,
                where=service_where,
                include=["distances"],
            )
        )
        snap0 = fresh._snap
        assert snap0 is not None
        allowed_ids = snap0.chunk_ids(snap0.incident_mask(SearchFilters(service=service), (), ()), restricted=False)
        results[f"Chroma query, k=10, ids=<{len(allowed_ids)} ids of that service>"] = timings(
            lambda t, v: open_collection.query(
                query_embeddings=v[None, :], n_results=10, ids=allowed_ids, include=["distances"]
            )
        )
        results["Index.search dense   k=10"] = timings(lambda t, v: fresh.search(t, k=10, mode="dense"))
        results["Index.search lexical k=10"] = timings(lambda t, v: fresh.search(t, k=10, mode="lexical"))
        results["Index.search hybrid  k=10"] = timings(lambda t, v: fresh.search(t, k=10))
        results["Index.search hybrid  k=10, teams=[security]"] = timings(
            lambda t, v: fresh.search(t, k=10, teams=["security"])
        )
        results["Index.search hybrid  k=10, service filter"] = timings(
            lambda t, v: fresh.search(t, k=10, filters=SearchFilters(service=service))
        )
        broad = SearchFilters(since=date(2019, 12, 1))
        results["Index.search hybrid  k=10, since filter (~85% of chunks)"] = timings(
            lambda t, v: fresh.search(t, k=10, filters=broad)
        )
        print(f"    query latency over {n_queries} queries, embedding excluded (ms), service = {service}:")
        for name, values in results.items():
            print(f"      {name:<56} p50 {_pct(values, 50):7.1f}   p95 {_pct(values, 95):7.1f}")

        # recall of HNSW vs exact search on the same vectors (chunk level, open collection)
        snap = fresh._snap
        assert snap is not None
        rows = [c for c in snap.chunks if snap.entries[c.incident_id].visibility != "restricted"]
        matrix = np.stack([embedder.table[f"{snap.entries[c.incident_id].title}\n{c.text}"] for c in rows])
        row_of = {c.id: r for r, c in enumerate(rows)}
        assert open_collection.count() == len(rows)
        recalls = []
        for (_, vector), found in zip(queries, hnsw_ids[1:], strict=True):  # hnsw_ids[0] is the warm-up
            exact = np.argpartition(-(matrix @ vector), 10)[:10]
            recalls.append(len({row_of[i] for i in found} & set(exact.tolist())) / 10)
        filt = np.array([service in snap.entries[c.incident_id].services for c in rows])
        frecalls = []
        for _, vector in queries[:50]:
            got = open_collection.query(query_embeddings=vector[None, :], n_results=10, ids=allowed_ids, include=[])
            scores = np.where(filt, matrix @ vector, -np.inf)
            exact = np.argpartition(-scores, 10)[:10]
            frecalls.append(len({row_of[i] for i in got["ids"][0]} & set(exact.tolist())) / 10)
        print(
            f"    recall@10 of Chroma HNSW vs exact numpy search ({len(matrix)} open chunks): "
            f"{statistics.mean(recalls):.3f} unfiltered, {statistics.mean(frecalls):.3f} restricted to one service's ids "
            f"({int(filt.sum())} chunks match)"
        )
    print(f"    peak RSS: {_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--part", choices=["quality", "scale"])
    args = parser.parse_args()
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if args.part == "quality":
        quality(args.data)
        return
    if args.part == "scale":
        scale(args.chunks, args.queries, args.sentences)
        return
    start = time.perf_counter()
    for part in ("quality", "scale"):
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--part", part], check=True)
    print(f"total wall time: {time.perf_counter() - start:.0f} s on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
