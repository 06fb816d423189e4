"""Secrets and PII never reach the index: a draft full of planted secrets is indexed, then every stored chunk
(Chroma documents and the lexical snapshot) is searched for the original values."""

from __future__ import annotations

from pathlib import Path

import chromadb

from pipeline.bundle import load_bundle, parse_source
from pipeline.redact import Redactor
from pipeline.service import draft_bundle, open_index
from pipeline.settings import Settings
from tests.conftest import SAMPLES


def test_indexed_draft_holds_no_planted_secret_or_pii(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    sample = SAMPLES / "checkout-bad-deploy"
    _, draft = draft_bundle(sample, settings)
    index = open_index(settings, create=True)
    report = index.index_draft(draft, "INC-2041.md")
    assert report.added == ["INC-2041"]

    bundle = load_bundle(sample)
    probe = Redactor()
    for source in bundle.sources:
        probe.redact_many([r.text for r in parse_source(bundle, source).rows])
    originals = [r.value for r in probe.mapping.values()]
    assert originals  # the sample plants an AWS key, an email and a phone number

    client = chromadb.PersistentClient(
        path=str(settings.index_dir / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False)
    )
    stored: list[str] = []
    for collection in client.list_collections():
        stored += client.get_collection(collection.name).get(include=["documents"])["documents"] or []
    assert stored
    blob = "\n".join(stored)
    for value in originals:
        assert value not in blob
    hits = index.search("AKIA", k=3)
    assert all(not any(v in h.snippet for v in originals) for h in hits)


def test_markdown_postmortem_secrets_are_redacted_before_indexing(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    key, email = "AKIAQ7X3EXAMPLE4KEYZ", "oncall.lead@example.com"
    doc = tmp_path / "pm.md"
    doc.write_text(
        "---\nid: PM-9\ntitle: Leaked key rotated\ndate: 2024-01-02\n---\n## Summary\n\n"
        f"A deploy log printed {key}; {email} rotated it within the hour.\n"
    )
    index = open_index(settings, create=True)
    assert index.index_paths([doc]).added == ["PM-9"]
    client = chromadb.PersistentClient(
        path=str(settings.index_dir / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False)
    )
    stored = "\n".join(
        d for c in client.list_collections() for d in client.get_collection(c.name).get()["documents"] or []
    )
    assert key not in stored and email not in stored
    assert "[AWS_ACCESS_KEY_1]" in stored and "[EMAIL_1]" in stored  # redacted, not dropped
    (hit,) = index.search("leaked key rotated", k=1)
    assert key not in hit.snippet
