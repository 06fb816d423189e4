"""The similar-incident index: loading, chunking, both Chroma modes, idempotent writes, filters, access control,
rank fusion, concurrency and damaged stores.

Logic tests (fusion, ids, filters) use small deterministic embedders defined here; the integration tests use the
real all-MiniLM-L6-v2 (`pipeline.embeddings.LocalMiniLM`), which `./run` provisions.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from pipeline.errors import IndexStoreError
from pipeline.index import RRF_K, Index, SearchFilters, SearchHit
from pipeline.index_chunks import CHUNK_TOKENS, chunk_document, token_encoding
from pipeline.index_docs import document_from_markdown, load_paths, parse_date
from pipeline.index_lexical import current_name
from pipeline.index_store import build_where
from pipeline.models import Draft
from pipeline.settings import Settings
from tests.conftest import ASSETS, REPO

CHROMA = REPO / ".venv" / "bin" / "chroma"

# --- test embedders ----------------------------------------------------------------------------------------------


class HashEmbedder:
    """Hashed bag of words -> unit vector. Deterministic, instant; similar word sets give similar vectors."""

    def __init__(self, model_id: str = "test/hash-bow-128", dimension: int = 128) -> None:
        self.model_id = model_id
        self.dimension = dimension

    def embed(self, texts: Sequence[str], *, restricted: bool = True) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dimension] += 1.0 if (h >> 16) & 1 else -1.0
            out[row, 0] += 1e-3  # no zero rows
        unit: npt.NDArray[np.float32] = out / np.linalg.norm(out, axis=1, keepdims=True)
        return unit


class AngleEmbedder:
    """A text's vector is set by a marker word `angleNN`: (cos NN°, sin NN°, 0, …); no marker = 0°. Dense ranks
    are then fully under the test's control, independent of the words BM25 sees."""

    model_id = "test/angle"
    dimension = 8

    def embed(self, texts: Sequence[str], *, restricted: bool = True) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            m = re.search(r"angle(\d+)", text)
            theta = np.radians(int(m[1]) if m else 0)
            out[row, 0], out[row, 1] = np.cos(theta), np.sin(theta)
        return out


# --- corpus ----------------------------------------------------------------------------------------------------

CORPUS: list[dict[str, Any]] = [
    {
        "id": "INC-101",
        "title": "Kafka broker disk full stopped order events",
        "date": "2023-03-14",
        "services": ["kafka", "orders-api"],
        "severity": "SEV2",
        "tags": ["kafka", "disk"],
        "visibility": "public",
        "summary": "A Kafka broker ran out of disk space after log retention was raised from 3 to 14 days. "
        "Producers in orders-api blocked and order events stopped flowing for 47 minutes.",
        "impact": "Order confirmation emails were delayed by up to an hour.",
        "factors": "- Retention change was not sized against broker disk.\n- No alert on broker disk usage.",
        "actions": "- Alert at 75% broker disk.\n- Review retention changes against capacity.",
    },
    {
        "id": "INC-102",
        "title": "TLS certificate expired on the payments edge",
        "date": "2023-06-02",
        "services": ["edge-gateway", "payments-api"],
        "severity": "SEV1",
        "tags": ["tls", "certificate"],
        "visibility": "internal",
        "summary": "The TLS certificate for pay.example.com expired at midnight. Clients failed the TLS handshake "
        "until a renewed certificate was uploaded to the edge gateway.",
        "impact": "All card payments failed for 2 hours.",
        "factors": "- The certificate was renewed by hand and the reminder went to a former employee.",
        "actions": "- Move the certificate to automated renewal.\n- Alert 21 days before expiry.",
    },
    {
        "id": "INC-103",
        "title": "Postgres connection pool exhausted by a batch job",
        "date": "2024-01-20",
        "services": ["orders-db", "orders-api"],
        "severity": "SEV2",
        "tags": ["database", "connection-pool"],
        "visibility": "internal",
        "summary": "A nightly reconciliation job held hundreds of Postgres connections idle in transaction, so "
        "orders-api could not get connections from its pool and returned 503s.",
        "impact": "31% of order requests failed for 53 minutes.",
        "factors": "- The job bypassed PgBouncer.\n- No idle_in_transaction_session_timeout.",
        "actions": "- Route batch jobs through PgBouncer.\n- Set idle transaction timeouts.",
    },
    {
        "id": "INC-104",
        "title": "DNS resolver misconfiguration broke service discovery",
        "date": "2024-05-11",
        "services": ["coredns", "checkout-api"],
        "severity": "SEV2",
        "tags": ["dns", "kubernetes"],
        "visibility": "public",
        "summary": "A CoreDNS config change dropped the cluster.local forward zone. Pods could not resolve service "
        "names and checkout-api calls to inventory failed.",
        "impact": "Checkout was unavailable for 25 minutes.",
        "factors": "- The config change was not tested in staging.",
        "actions": "- Add a synthetic DNS probe per cluster.",
    },
    {
        "id": "INC-105",
        "title": "Leaked API key rotated after exposure in a public repository",
        "date": "2024-02-02",
        "services": ["auth-service"],
        "severity": "SEV1",
        "tags": ["security", "secrets"],
        "visibility": "restricted",
        "teams": ["security"],
        "summary": "An API key for auth-service was committed to a public repository and found by a scanner. "
        "The key was rotated and access logs were reviewed.",
        "impact": "No evidence of misuse.",
        "factors": "- Secret scanning was not enabled for personal forks.",
        "actions": "- Enable push protection for secrets.",
    },
    {
        "id": "INC-106",
        "title": "Bad deploy of checkout-api v2.14 raised 5xx errors",
        "date": "2022-11-30",
        "services": ["checkout-api"],
        "severity": "SEV3",
        "tags": ["deploy", "rollback"],
        "visibility": "public",
        "summary": "Version 2.14 of checkout-api shipped a serializer change that broke old clients. Error rates "
        "rose to 12% until the deploy was rolled back.",
        "impact": "12% of checkout requests failed for 18 minutes.",
        "factors": "- Canary analysis did not include old client versions.",
        "actions": "- Add old-client contract tests to the pipeline.",
    },
    {
        "id": "INC-107",
        "title": "Memory leak in the search indexer caused OOM kills",
        "services": ["search-indexer"],
        "severity": "SEV3",
        "tags": ["memory", "oom"],
        "visibility": "public",
        "summary": "A cache without eviction in search-indexer grew until pods were OOM killed every 40 minutes.",
        "impact": "Search results were stale for up to 2 hours.",
        "factors": "- No memory limit alerting.",
        "actions": "- Bound the cache.",
    },
    {
        "id": "INC-108",
        "title": "Payment provider outage caused checkout failures",
        "date": "2023-09-09",
        "services": ["payments-api"],
        "severity": "SEV2",
        "tags": ["third-party", "dependency"],
        "visibility": "restricted",
        "teams": ["payments-sre", "finance"],
        "summary": "The card payment provider had a regional outage. payments-api had no failover provider, so "
        "checkout failed for card payments.",
        "impact": "Card payments failed for 70 minutes.",
        "factors": "- Single payment provider.",
        "actions": "- Contract a second provider and add automatic failover.",
    },
]


def markdown(spec: dict[str, Any]) -> str:
    meta = {
        k: spec[k] for k in ("id", "title", "date", "services", "severity", "tags", "visibility", "teams") if k in spec
    }
    front = "\n".join(f"{k}: {json.dumps(v)}" for k, v in meta.items())
    body = "\n\n".join(
        f"## {heading}\n\n{spec[key]}"
        for heading, key in (
            ("Summary", "summary"),
            ("Impact", "impact"),
            ("Contributing factors", "factors"),
            ("Action items", "actions"),
        )
        if key in spec
    )
    return f"---\n{front}\n---\n\n# {spec['title']}\n\n{body}\n"


def write_corpus(root: Path, specs: Sequence[dict[str, Any]] = CORPUS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        (root / f"{spec['id']}.md").write_text(markdown(spec), encoding="utf-8")
    return root


def make_draft(incident_id: str, title: str, summary: str, factors: Sequence[str] = ()) -> Draft:
    at = "2025-03-04T14:00:00Z"
    moment = {"at": at, "event_id": None, "rule": "test"}
    return Draft.model_validate(
        {
            "incident": {"id": incident_id, "title": title, "severity": "SEV2", "services": ["kafka"]},
            "key_moments": dict.fromkeys(("started", "detected", "acknowledged", "mitigated", "resolved"), moment),
            "metrics": {},
            "summary": summary,
            "impact": {"statement": "Order events were delayed."},
            "contributing_factors": [{"statement": s, "category": "capacity", "evidence": ["ev_1"]} for s in factors],
            "stats": {"records_in": 0, "events": 0, "duplicates": 0, "collapsed": 0, "quarantined": 0},
            "provenance": {
                "drafter": "facts",
                "generated_at": at,
                "pipeline_version": "test",
                "bundle": "test-bundle",
            },
        }
    )


# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The real embedding model (integration tests)."""
    from pipeline.embeddings import LocalMiniLM

    return LocalMiniLM(Settings(assets=ASSETS))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`chroma run` on 127.0.0.1 for the session; yields its port."""
    path = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = (path / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not start: {(path / 'server.log').read_text(errors='replace')}")
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


@pytest.fixture(params=["embedded", "server"])
def store_settings(request: pytest.FixtureRequest) -> Settings:
    """Settings for a fresh, empty index in either Chroma mode."""
    if request.param == "embedded":
        return Settings()
    port = request.getfixturevalue("chroma_server")
    return Settings(chroma_host="127.0.0.1", chroma_port=port, index_collection=f"test-{uuid.uuid4().hex[:12]}")


def ids(hits: Sequence[SearchHit]) -> list[str]:
    return [h.incident_id for h in hits]


def chroma_ids(index: Index, incident_id: str) -> set[str]:
    """The chunk ids Chroma holds for an incident, in either collection."""
    return {
        i
        for c in index._store.collections.values()
        for i in c.get(where={"incident_id": incident_id}, include=[])["ids"]
    }


# --- loading and chunking ----------------------------------------------------------------------------------------


def test_markdown_front_matter_sections_and_title() -> None:
    text = (
        "---\nid: PM-7\ndate: 2024-02-29\nservices: [Checkout-API, payments-api]\nseverity: sev2\n"
        "tags: tls, Certificate\nvisibility: restricted\nteams: [Security]\n---\n"
        "# Cert expiry on checkout\n\nIntro paragraph.\n\n## Root cause\n\nManual renewal.\n\n"
        "## Follow-ups\n\n```\n## not a heading inside code\n```\n\n## Lessons learned\n\nAutomate.\n"
    )
    doc = document_from_markdown(text, "x.md")
    assert doc.incident_id == "PM-7"
    assert doc.title == "Cert expiry on checkout"
    assert doc.date == date(2024, 2, 29)
    assert doc.services == ("checkout-api", "payments-api")
    assert doc.severity == "SEV2"
    assert doc.tags == ("tls", "certificate")
    assert (doc.visibility, doc.teams) == ("restricted", ("security",))
    sections = {s.name: s.text for s in doc.sections}
    assert list(sections) == ["summary", "factors", "actions", "lessons"]
    assert sections["summary"] == "Intro paragraph."
    assert "## not a heading inside code" in sections["actions"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("# Title only\n\n## Summary\n\ntext\n", "missing id"),
        ("---\nid: [unclosed\n---\n\ntext\n", "front matter is not valid YAML"),
        ("---\nid: X-1\nvisibility: secret\n---\n\ntext\n", "visibility must be one of"),
        ("---\nid: X-1\ndate: 2024-02-30\n---\n\ntext\n", "invalid date"),
        ("---\nid: X-1\ndate: last tuesday\n---\n\ntext\n", "unparseable date"),
        ("---\nid: X-1\n---\n\n", "no text to index"),
        ("---\nid: X-1\nservices: {a: 1}\n---\n\ntext\n", "services must be a list"),
    ],
)
def test_markdown_rejections_carry_reasons(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "pm.md").write_text(text, encoding="utf-8")
    docs, rejected = load_paths([tmp_path])
    assert docs == []
    assert len(rejected) == 1
    assert rejected[0].source == str(tmp_path / "pm.md")
    assert reason in rejected[0].reason


def test_dates_in_source_formats() -> None:
    assert parse_date("2019/07/02") == date(2019, 7, 2)
    assert parse_date("2016/09/23 17:21") == date(2016, 9, 23)
    assert parse_date("2022-06-21 06:27:00+00:00") == date(2022, 6, 21)
    assert parse_date("2019-06") == date(2019, 6, 1)
    assert parse_date("2020") == date(2020, 1, 1)
    assert parse_date(None) is None


def test_jsonl_records_drafts_and_bad_files(tmp_path: Path) -> None:
    lines = [
        {"id": "idb-9", "title": "Queue outage", "description": "Broker ran out of memory.", "date": "2016/09/23 17:21",
         "tags": ["RabbitMQ"], "idb": {"structured_abstract": {"root cause": "Unbounded queue.", "mitigation": "Purged."}}},
        {"id": "k8s-1", "title": None, "company": "Acme", "description": "Nodes went NotReady. More text.",
         "impact": "Pods evicted", "date": "2020"},
        {"title": "no id here", "description": "x"},
    ]  # fmt: skip
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n", encoding="utf-8")
    draft = make_draft("INC-900", "Kafka lag", "Consumers fell behind.", ["Consumer group rebalanced in a loop."])
    (tmp_path / "INC-900.json").write_text(draft.model_dump_json(), encoding="utf-8")
    (tmp_path / "INC-900.md").write_text("# Kafka lag\n\nrendered draft, no front matter\n", encoding="utf-8")
    (tmp_path / "other.json").write_text('{"hello": 1}', encoding="utf-8")
    (tmp_path / "README.md").write_text("# not a postmortem\n", encoding="utf-8")
    docs, rejected = load_paths([tmp_path, tmp_path / "missing.md"])
    by_id = {d.incident_id: d for d in docs}
    assert sorted(by_id) == ["INC-900", "idb-9", "k8s-1"]
    assert {s.name for s in by_id["idb-9"].sections} == {"summary", "factors", "mitigation"}
    assert by_id["idb-9"].tags == ("rabbitmq",)
    assert by_id["idb-9"].visibility == "public"
    assert by_id["k8s-1"].title == "Acme: Nodes went NotReady."
    assert {s.name for s in by_id["k8s-1"].sections} == {"summary", "impact"}
    assert {s.name for s in by_id["INC-900"].sections} == {"summary", "impact", "factors"}
    assert by_id["INC-900"].date == date(2025, 3, 4)
    reasons = {r.source: r.reason for r in rejected}
    assert reasons[f"{jsonl}:3"] == "missing id"
    assert reasons[f"{jsonl}:4"].startswith("invalid JSON")
    assert reasons[str(tmp_path / "other.json")].startswith("not a postmortem draft")
    assert reasons[str(tmp_path / "missing.md")] == "no such file or directory"
    assert len(rejected) == 4  # README.md and the draft's rendered twin INC-900.md are skipped, not rejected


def test_project_postmortems_all_load() -> None:
    folder = REPO / "data" / "postmortems"
    files = [p for p in folder.glob("*.md") if p.name.lower() != "readme.md"]
    if not files:
        pytest.skip("data/postmortems has no postmortems yet")
    docs, rejected = load_paths([folder])
    assert rejected == []
    assert len({d.incident_id for d in docs}) == len(docs) == len(files)
    for doc in docs:
        assert {s.name for s in doc.sections} >= {"summary", "impact"}, doc.source


def test_long_sections_split_by_tokens_and_ids_are_deterministic() -> None:
    encoding = token_encoding(Settings())
    sentence = "The consumer group rebalanced repeatedly because session timeouts were shorter than GC pauses. "
    doc = document_from_markdown(f"---\nid: L-1\n---\n## Timeline\n\n{sentence * 60}\n\n## Impact\n\nShort.\n", "l.md")
    chunks = chunk_document(doc, doc.content_hash(), encoding)
    timeline = [c for c in chunks if c.section == "timeline"]
    assert len(timeline) >= 4
    assert all(len(encoding.encode(c.text)) <= CHUNK_TOKENS for c in chunks)
    assert [c.index for c in timeline] == list(range(len(timeline)))
    assert [c.id for c in chunk_document(doc, doc.content_hash(), encoding)] == [c.id for c in chunks]
    changed = doc.model_copy(update={"title": "new title"})
    assert changed.content_hash() != doc.content_hash()
    assert not {c.id for c in chunk_document(changed, changed.content_hash(), encoding)} & {c.id for c in chunks}


def test_where_clause_shapes() -> None:
    assert build_where(None) is None
    assert build_where(None, ("security",)) == {"teams": {"$contains": "security"}}
    where = build_where(
        SearchFilters(
            service="Checkout-API", severity="sev2", tag="TLS", since=date(2024, 1, 1), until=date(2024, 12, 31)
        ),
        ("security", "finance"),
    )
    assert where == {
        "$and": [
            {"$or": [{"teams": {"$contains": "security"}}, {"teams": {"$contains": "finance"}}]},
            {"services": {"$contains": "checkout-api"}},
            {"tags": {"$contains": "tls"}},
            {"severity": "SEV2"},
            {"date_int": {"$gte": 20240101}},
            {"date_int": {"$lte": 20241231}},
        ]
    }
    with pytest.raises(ValueError, match="after until"):
        SearchFilters(since=date(2024, 2, 1), until=date(2024, 1, 1))


def test_restricted_chunks_live_only_in_the_restricted_collection(tmp_path: Path) -> None:
    index = Index(Settings(), HashEmbedder(), create=True)
    index.index_paths([write_corpus(tmp_path / "corpus")])
    restricted = index._store.collections["restricted"].get(include=["metadatas"])
    assert {m["incident_id"] for m in restricted["metadatas"] or []} == {"INC-105", "INC-108"}
    opened = index._store.collections["open"].get(include=["metadatas"])
    assert {m["visibility"] for m in opened["metadatas"] or []} == {"public", "internal"}
    # a document that becomes restricted moves collections, keeping nothing behind
    spec = dict(CORPUS[0], visibility="restricted", teams=["data"])
    (tmp_path / "corpus" / "INC-101.md").write_text(markdown(spec), encoding="utf-8")
    assert index.index_paths([tmp_path / "corpus"]).updated == ["INC-101"]
    assert index._store.collections["open"].get(where={"incident_id": "INC-101"})["ids"] == []
    assert len(index._store.collections["restricted"].get(where={"incident_id": "INC-101"})["ids"]) == 4
    assert "INC-101" not in ids(index.search("kafka broker disk full", k=10))
    assert ids(index.search("kafka broker disk full", k=1, teams=["data"])) == ["INC-101"]


# --- both Chroma modes, real model -------------------------------------------------------------------------------


def test_index_and_search_in_both_chroma_modes(tmp_path: Path, store_settings: Settings, minilm: Any) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    index = Index(store_settings, minilm, create=True)
    report = index.index_paths([corpus])
    assert report.counts == {"added": len(CORPUS), "updated": 0, "unchanged": 0, "rejected": 0}
    assert index.chunk_count() == report.chunks_written == len(CORPUS) * 4
    hits = index.search("TLS handshake failing because the certificate expired", k=3)
    assert hits[0].incident_id == "INC-102"
    top = hits[0]
    assert top.title == "TLS certificate expired on the payments edge"
    assert (top.date, top.severity, top.visibility) == (date(2023, 6, 2), "SEV1", "internal")
    assert top.services == ["edge-gateway", "payments-api"]
    assert top.dense_rank == 1 and top.lexical_rank == 1
    assert "certificate" in top.snippet.lower()
    assert top.source == "corpus/INC-102.md"  # relative to the indexed folder, not a path of this machine
    assert ids(index.search("kafka broker ran out of disk", k=1)) == ["INC-101"]
    assert ids(index.search("postgres connections idle in transaction", k=1)) == ["INC-103"]
    # a second run over the same files writes nothing
    again = index.index_paths([corpus])
    assert again.counts == {"added": 0, "updated": 0, "unchanged": len(CORPUS), "rejected": 0}
    assert index.chunk_count() == report.chunks_written
    # a fresh Index on the same store (another process would do the same) sees the same thing
    reopened = Index(store_settings, minilm)
    assert ids(reopened.search("TLS certificate expired", k=2)) == ids(index.search("TLS certificate expired", k=2))


def test_similar_to_draft_excludes_the_draft_itself(tmp_path: Path, minilm: Any) -> None:
    index = Index(Settings(), minilm, create=True)
    index.index_paths([write_corpus(tmp_path / "corpus")])
    draft = make_draft(
        "INC-500",
        "Order events stuck: Kafka partition leader disk filled",
        "A broker's data disk filled, producers in orders-api blocked and order events stopped.",
        ["Log retention was increased without resizing the broker disks."],
    )
    index.index_draft(draft, "drafts/INC-500.json")
    assert ids(index.search("order events stopped because a kafka broker disk filled", k=1)) == ["INC-500"]
    hits = index.similar_to_draft(draft, k=3)
    assert "INC-500" not in ids(hits)
    assert hits[0].incident_id == "INC-101"
    assert len(hits) == 3


# --- writes ------------------------------------------------------------------------------------------------------


def test_changed_document_replaces_all_its_chunks(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", CORPUS[:3])
    index = Index(Settings(), HashEmbedder(), create=True)
    index.index_paths([corpus])
    old_chunks = chroma_ids(index, "INC-101")
    assert len(old_chunks) == 4
    assert ids(index.search("retention", k=1, mode="lexical")) == ["INC-101"]
    changed = dict(CORPUS[0], summary="A zookeeper session expiry made the controller resign.", impact=None)
    del changed["impact"], changed["factors"]
    (corpus / "INC-101.md").write_text(markdown(changed), encoding="utf-8")
    report = index.index_paths([corpus])
    assert report.counts == {"added": 0, "updated": 1, "unchanged": 2, "rejected": 0}
    assert report.updated == ["INC-101"]
    new_chunks = chroma_ids(index, "INC-101")
    assert len(new_chunks) == 2
    assert not new_chunks & old_chunks
    assert index.chunk_count() == 2 + 4 + 4
    assert "INC-101" not in ids(index.search("confirmation emails delayed sized", k=3, mode="lexical"))
    assert ids(index.search("zookeeper session expiry", k=1, mode="lexical")) == ["INC-101"]
    assert index.stats()["chunks"] == 10


def test_duplicate_ids_and_removal(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", CORPUS[:2])
    (corpus / "copy.md").write_text(markdown(dict(CORPUS[0], title="A copy")), encoding="utf-8")
    index = Index(Settings(), HashEmbedder(), create=True)
    report = index.index_paths([corpus])
    assert report.counts["added"] == 2
    assert [r.reason for r in report.rejected] == [
        "duplicate incident id INC-101 (already read from corpus/INC-101.md)"  # relative to the folder indexed
    ]
    removed = index.remove(["INC-101", "nope"])
    assert removed.removed == ["INC-101"]
    assert [r.source for r in removed.rejected] == ["nope"]
    assert chroma_ids(index, "INC-101") == set()
    assert ids(index.search("kafka broker disk", k=5)) == ["INC-102"]


def test_embedding_model_mismatch_is_refused(tmp_path: Path) -> None:
    Index(Settings(), HashEmbedder("test/model-a"), create=True).index_paths([write_corpus(tmp_path / "c", CORPUS[:1])])
    with pytest.raises(IndexStoreError) as err:
        Index(Settings(), HashEmbedder("test/model-b"))
    message = str(err.value)
    assert "'test/model-a'" in message and "'test/model-b'" in message
    assert str(Settings().index_dir / "chroma") in message
    with pytest.raises(IndexStoreError, match="dimension 64"):
        Index(Settings(), HashEmbedder("test/model-a", dimension=64), create=True)


def test_lexical_index_is_rebuilt_from_chroma_when_missing(tmp_path: Path) -> None:
    index = Index(Settings(), HashEmbedder(), create=True)
    index.index_paths([write_corpus(tmp_path / "corpus")])
    before = index.search("certificate renewal", k=5, teams=["security"])
    # an interrupted later write left one chunk of a 3-chunk version of INC-102: not complete, so not taken
    opened = index._store.collections["open"]
    got = opened.get(where={"incident_id": "INC-102"}, include=["metadatas", "embeddings", "documents"], limit=1)
    meta = dict(got["metadatas"][0]) | {"content_hash": "interrupted", "seq": 99, "chunks": 3}  # type: ignore[index]
    opened.add(ids=["ch_stray"], embeddings=got["embeddings"], documents=["zebra"], metadatas=[meta])
    (index.lexical_dir / "CURRENT").unlink()
    rebuilt = Index(Settings(), HashEmbedder())
    assert current_name(rebuilt.lexical_dir) is not None
    assert rebuilt.stats()["incidents"] == len(CORPUS)
    assert rebuilt.search("certificate renewal", k=5, teams=["security"]) == before
    assert opened.get(ids=["ch_stray"])["ids"] == []
    assert rebuilt.search("zebra", k=5, mode="lexical") == []


# --- filters and access control ---------------------------------------------------------------------------------

MODES = ["hybrid", "dense", "lexical"]


@pytest.fixture
def corpus_index(tmp_path: Path, store_settings: Settings) -> Index:
    """The corpus in a fresh index, embedded or on the `chroma run` server."""
    index = Index(store_settings, HashEmbedder(), create=True)
    index.index_paths([write_corpus(tmp_path / "corpus")])
    return index


@pytest.mark.parametrize("mode", MODES)
def test_filters(corpus_index: Index, mode: Any) -> None:
    everyone = ["security", "payments-sre"]
    query = "outage failed errors checkout payments orders disk certificate dns memory key"

    def search(**kw: Any) -> list[str]:
        return sorted(ids(corpus_index.search(query, k=10, teams=everyone, mode=mode, filters=SearchFilters(**kw))))

    assert search(service="checkout-api") == ["INC-104", "INC-106"]
    assert search(service="ORDERS-API") == ["INC-101", "INC-103"]
    assert search(severity="sev1") == ["INC-102", "INC-105"]
    assert search(tag="dns") == ["INC-104"]
    assert search(since=date(2024, 1, 1)) == ["INC-103", "INC-104", "INC-105"]
    assert search(until=date(2022, 12, 31)) == ["INC-106"]
    assert search(since=date(2023, 3, 14), until=date(2023, 6, 2)) == ["INC-101", "INC-102"]
    assert search(service="payments-api", severity="SEV2") == ["INC-108"]
    assert search(service="no-such-service") == []
    # INC-107 has no date: it matches no date range, but every other query can find it
    assert "INC-107" in search()
    assert "INC-107" not in search(since=date(1900, 1, 1))


def test_where_scheme_selects_what_the_catalog_mask_selects(corpus_index: Index) -> None:
    """The metadata scheme (lists + $contains, date_int) answers Chroma `where` queries exactly like the snapshot
    mask the searches use; it is also the fallback when Chroma and the catalog disagree on chunk ids."""
    snap = corpus_index._snap
    assert snap is not None
    cases = [
        SearchFilters(service="orders-api"),
        SearchFilters(tag="TLS"),
        SearchFilters(severity="sev2"),
        SearchFilters(since=date(2023, 6, 1), until=date(2024, 1, 31)),
        SearchFilters(service="payments-api", severity="SEV2"),
    ]
    for filters in cases:
        selected = []
        for teams in ((), ("security",), ("finance", "security")):
            mask = snap.incident_mask(filters, teams, ())
            expected = {i for i, ok in zip(snap.entries, mask, strict=True) if ok}
            got: set[str] = set()
            for part, collection in corpus_index._store.collections.items():
                if part == "restricted" and not teams:
                    continue
                where = build_where(filters, teams if part == "restricted" else None)
                got |= {
                    str(m["incident_id"]) for m in collection.get(where=where, include=["metadatas"])["metadatas"] or []
                }
            assert got == expected, (filters, teams)
            selected.append(len(expected))
        assert max(selected) > 0, filters  # each filter selects something, so the comparison means something
    # restricted incidents are selected only with a matching team
    assert "INC-108" not in {e for e, ok in zip(snap.entries, snap.incident_mask(None, (), ()), strict=True) if ok}


def test_filtered_search_survives_a_store_that_lost_chunks(corpus_index: Index) -> None:
    # Chroma refuses unknown ids in `ids=`; a chunk deleted behind the index's back must not break searches.
    lost = corpus_index._store.collections["open"].get(where={"incident_id": "INC-103"})["ids"][:1]
    corpus_index._store.collections["open"].delete(ids=lost)
    hits = corpus_index.search(
        "postgres connection pool", k=5, mode="dense", filters=SearchFilters(service="orders-api")
    )
    assert sorted(ids(hits)) == ["INC-101", "INC-103"]


@pytest.mark.parametrize("mode", MODES)
def test_restricted_postmortems_need_a_matching_team(corpus_index: Index, mode: Any) -> None:
    query = "API key leaked in a public repository and rotated"
    assert "INC-105" not in ids(corpus_index.search(query, k=10, mode=mode))
    assert "INC-105" not in ids(corpus_index.search(query, k=10, mode=mode, teams=["payments-sre"]))
    assert ids(corpus_index.search(query, k=1, mode=mode, teams=["Security"])) == ["INC-105"]
    assert "INC-108" in ids(corpus_index.search("payment provider outage", k=3, mode=mode, teams=["finance"]))
    assert "INC-108" not in ids(corpus_index.search("payment provider outage", k=10, mode=mode))


@pytest.mark.parametrize("mode", MODES)
def test_k_results_come_back_when_restricted_ones_rank_highest(tmp_path: Path, mode: Any) -> None:
    restricted = [
        {"id": f"SEC-{i:02d}", "title": f"Credential stuffing attack wave {i}", "visibility": "restricted",
         "teams": ["security"], "summary": f"Credential stuffing attack against the login endpoint, wave {i}."}
        for i in range(40)
    ]  # fmt: skip
    public = [
        {"id": f"PUB-{i}", "title": f"Login latency incident {i}", "visibility": "public",
         "summary": f"Login endpoint latency rose during a traffic spike {i}; attack suspected but not found."}
        for i in range(6)
    ]  # fmt: skip
    index = Index(Settings(), HashEmbedder(), create=True)
    index.index_paths([write_corpus(tmp_path / "corpus", restricted + public)])
    query = "credential stuffing attack against the login endpoint"
    assert all(i.startswith("SEC-") for i in ids(index.search(query, k=5, mode=mode, teams=["security"])))
    hits = index.search(query, k=5, mode=mode)
    assert len(hits) == 5
    assert all(i.startswith("PUB-") for i in ids(hits))


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_broad_filters_widen_until_k_matches_come_back(tmp_path: Path, mode: Any) -> None:
    # 25% of the chunks match the filter (the "broad filter" path) and all of them rank below the others
    noise = [{"id": f"N-{i:03d}", "title": f"zebra crossing {i}", "summary": "zebra zebra zebra"} for i in range(300)]
    wanted = [
        {"id": f"W-{i:03d}", "title": f"unrelated {i}", "summary": "kettle", "services": ["x-api"]} for i in range(100)
    ]
    for spec in noise + wanted:
        spec["visibility"] = "internal"
    index = Index(Settings(), HashEmbedder(), create=True)
    index.index_paths([write_corpus(tmp_path / "corpus", noise + wanted)])
    assert all(i.startswith("N-") for i in ids(index.search("zebra", k=10, mode=mode)))
    hits = index.search("zebra", k=5, mode=mode, filters=SearchFilters(service="x-api"))
    assert len(hits) == 5
    assert all(i.startswith("W-") for i in ids(hits))


# --- fusion ----------------------------------------------------------------------------------------------------


def test_reciprocal_rank_fusion_on_a_tiny_corpus(tmp_path: Path) -> None:
    # Dense ranks are set by angle markers; lexical ranks by how often the query words occur.
    specs = [
        {"id": "A", "title": "alpha angle01", "visibility": "public", "summary": "Nothing in common with the query."},
        {"id": "B", "title": "bravo angle80", "visibility": "public",
         "summary": "kafka consumer lag kafka consumer lag kafka consumer lag"},
        {"id": "C", "title": "charlie angle10", "visibility": "public", "summary": "kafka consumer lag once"},
        {"id": "D", "title": "delta angle20", "visibility": "public", "summary": "unrelated words"},
        {"id": "E", "title": "echo angle30", "visibility": "public", "summary": "the consumer restarted"},
        {"id": "F", "title": "foxtrot angle40", "visibility": "public", "summary": "still unrelated"},
    ]  # fmt: skip
    index = Index(Settings(), AngleEmbedder(), create=True)
    index.index_paths([write_corpus(tmp_path / "corpus", specs)])
    query = "kafka consumer lag"
    dense = ids(index.search(query, k=6, mode="dense"))
    lexical = ids(index.search(query, k=6, mode="lexical"))
    assert dense == ["A", "C", "D", "E", "F", "B"]
    assert lexical == ["B", "C", "E"]
    hits = index.search(query, k=6)
    expected = {
        i: sum(1 / (RRF_K + ranking.index(i) + 1) for ranking in (dense, lexical) if i in ranking) for i in dense
    }
    assert ids(hits) == sorted(expected, key=lambda i: -expected[i])
    assert ids(hits)[:3] == ["C", "B", "E"]  # C is second in both lists and beats each list's winner
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.incident_id], abs=1e-6)
        assert hit.dense_rank == dense.index(hit.incident_id) + 1
        assert hit.lexical_rank == (lexical.index(hit.incident_id) + 1 if hit.incident_id in lexical else None)


# --- concurrency ---------------------------------------------------------------------------------------------------


class _SlowQueries:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def query(self, **kw: Any) -> Any:
        time.sleep(0.02)
        return self._inner.query(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_searches_during_reindexing_see_whole_documents(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    flip = tmp_path / "flip"
    flip.mkdir()
    versions = []
    for n, (word, sections) in enumerate([("alphaword", 4), ("betaword", 2)]):
        spec: dict[str, Any] = {"id": "FLIP-1", "title": "Zebra outage flipping", "visibility": "public"}
        for key in ("summary", "impact", "factors", "actions")[:sections]:
            spec[key] = f"zebra zebra outage {word} {key} version {n}"
        versions.append(markdown(spec))
    (flip / "FLIP-1.md").write_text(versions[0], encoding="utf-8")
    index = Index(Settings(), HashEmbedder(), create=True)
    index.index_paths([corpus, flip])
    reader_index = Index(Settings(), HashEmbedder())  # a separate handle, as another worker would hold
    # Widen the race: each search pauses between reading the snapshot pointer and querying Chroma, so a writer
    # that deleted the old version's chunks without waiting for in-flight searches would be caught.
    reader_index._store.collections["open"] = _SlowQueries(reader_index._store.collections["open"])  # type: ignore[assignment]
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: dict[str, int] = {"alphaword": 0, "betaword": 0}
    searches = [0]

    def reader() -> None:
        try:
            while not stop.is_set():
                for mode in MODES:
                    hits = reader_index.search("zebra outage", k=3, mode=mode)  # type: ignore[arg-type]
                    assert hits and hits[0].incident_id == "FLIP-1", (mode, hits)
                    words = {w for w in ("alphaword", "betaword") if w in hits[0].snippet}
                    assert len(words) == 1, hits[0].snippet
                    seen[words.pop()] += 1
                    if mode == "hybrid":
                        assert hits[0].dense_rank == 1 and hits[0].lexical_rank == 1, hits[0]
                    searches[0] += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which fails the test
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for round_ in range(12):
            (flip / "FLIP-1.md").write_text(versions[(round_ + 1) % 2], encoding="utf-8")
            report = index.index_paths([corpus, flip])
            assert report.updated == ["FLIP-1"]
            assert not errors
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[0]
    assert searches[0] > 12
    assert seen["alphaword"] > 0 and seen["betaword"] > 0
    assert len(chroma_ids(index, "FLIP-1")) == 4  # the last round wrote version 0 (4 sections); nothing else left
    assert index.chunk_count() == len(CORPUS) * 4 + 4


# --- damaged or missing stores ---------------------------------------------------------------------------------------


def test_missing_store_names_the_path() -> None:
    with pytest.raises(IndexStoreError) as err:
        Index(Settings(), HashEmbedder())
    assert str(Settings().index_dir / "chroma") in str(err.value)


def test_corrupted_chroma_store_names_the_path() -> None:
    store = Settings().index_dir / "chroma"
    store.mkdir(parents=True)
    (store / "chroma.sqlite3").write_bytes(os.urandom(8192))
    with pytest.raises(IndexStoreError) as err:
        Index(Settings(), HashEmbedder())
    assert str(store) in str(err.value)
    assert err.value.where == str(store)


_SEARCH_IN_A_NEW_PROCESS = """
import sys
from pipeline.errors import IndexStoreError
from pipeline.index import Index
from pipeline.settings import Settings
from tests.test_index import HashEmbedder
try:
    Index(Settings(), HashEmbedder()).search("kafka broker disk", k=3, mode="dense")
except IndexStoreError as exc:
    print(exc)
    sys.exit(3)
"""


def test_corrupted_vector_segment_names_the_store(tmp_path: Path) -> None:
    # enough chunks that Chroma persists an HNSW segment (it syncs every 1000 records)
    specs = [
        dict(spec, id=f"{spec['id']}-{n}") for n in range(60) for spec in CORPUS if spec["visibility"] != "restricted"
    ]
    index = Index(Settings(), HashEmbedder(), create=True)
    index.index_paths([write_corpus(tmp_path / "corpus", specs)])
    store = Settings().index_dir / "chroma"
    segments = list(store.glob("*/data_level0.bin"))
    assert segments
    for segment in segments:
        segment.write_bytes(os.urandom(1000))
        (segment.parent / "header.bin").write_bytes(os.urandom(10))
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", _SEARCH_IN_A_NEW_PROCESS],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "POSTMORTEM_HOME": str(Settings().home)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert str(store) in result.stdout


def test_corrupted_lexical_index_names_the_path(tmp_path: Path) -> None:
    index = Index(Settings(), HashEmbedder(), create=True)
    index.index_paths([write_corpus(tmp_path / "corpus", CORPUS[:2])])
    name = current_name(index.lexical_dir)
    assert name is not None
    (index.lexical_dir / name / "catalog.json").write_text('{"format": 1, "incid', encoding="utf-8")
    with pytest.raises(IndexStoreError) as err:
        Index(Settings(), HashEmbedder()).search("kafka")
    assert str(index.lexical_dir / name) in str(err.value)
    (index.lexical_dir / "CURRENT").write_text("snap-missing\n", encoding="utf-8")
    with pytest.raises(IndexStoreError, match="snap-missing"):
        Index(Settings(), HashEmbedder()).search("kafka")


def test_unreachable_server_names_host_and_port() -> None:
    port = _free_port()
    with pytest.raises(IndexStoreError) as err:
        Index(Settings(chroma_host="127.0.0.1", chroma_port=port), HashEmbedder(), create=True)
    assert f"127.0.0.1:{port}" in str(err.value)


def test_a_local_chroma_server_is_reached_directly_whatever_the_proxy_variables_say(
    chroma_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chroma's own httpx session honours HTTP(S)_PROXY even for 127.0.0.1, which would carry restricted chunks
    through a proxy; the store swaps it for an egress-checked session, so the route decided is the route taken."""
    seen: list[str] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            seen.append(self.requestline)
            self.send_error(502)

        do_GET = do_POST = do_PUT = do_DELETE = do_CONNECT = _record

        def log_message(self, format: str, *args: object) -> None:
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        settings = Settings(
            chroma_host="127.0.0.1", chroma_port=chroma_server, index_collection=f"t-{uuid.uuid4().hex}"
        )
        index = Index(settings, HashEmbedder(), create=True)
        report = index.index_paths([write_corpus(tmp_path / "corpus")])
        assert report.rejected == [] and len(report.added) == len(CORPUS)
        assert ids(index.search("certificate renewal", k=5, teams=["security"]))  # restricted chunks were stored
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert seen == []
    log = [json.loads(line) for line in (settings.runs_dir / "egress.jsonl").read_text().splitlines()]
    chroma = [d for d in log if d["purpose"] == "index:chroma"]
    assert chroma and all(d["local"] and d["allowed"] and d["via_proxy"] is None for d in chroma)
