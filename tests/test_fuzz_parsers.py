"""Hostile input for every parser: mutated real-shape fixtures and arbitrary JSON. A parser may quarantine
anything, but never raise, and every quarantine entry carries a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.bundle import load_bundle
from pipeline.errors import BundleError
from pipeline.models import EventRow
from pipeline.sources.base import MAX_TS_NS, MIN_TS_NS, ParseContext, SourceDocument
from pipeline.sources.registry import all_parsers
from tests.conftest import FIXTURES

PARSERS = all_parsers()
FIXTURE_DOCS = [
    json.loads(p.read_text(encoding="utf-8")) for p in sorted(FIXTURES.rglob("*.json")) if p.stat().st_size < 200_000
]
HOSTILE_SCALARS = st.sampled_from(
    [
        None,
        True,
        0,
        -1,
        2**63,
        -1e308,
        1e308,
        "",
        "not-a-date",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2025-02-30T10:00:00Z",
        "1e999",
        "\ud800",
        "x" * 100_000,
        "\x00\x01",
        "1736510400.123456.7",
    ]
)
JSON = st.recursive(
    HOSTILE_SCALARS | st.text(max_size=20) | st.integers() | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
CTX = ParseContext(incident_id="INC-FUZZ")


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:5]):
            found += _paths(v, (*prefix, i))
    return found


def _mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value if action == "replace" else [doc]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete" and isinstance(parent, dict):
        del parent[last]
    else:
        parent[last] = value
    return doc


@st.composite
def mutated_fixture(draw: st.DrawFn) -> Any:
    doc = json.loads(json.dumps(draw(st.sampled_from(FIXTURE_DOCS))))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "replace"]))
        doc = _mutate(doc, path, action, draw(JSON))
    return doc


def _check(rows: list[EventRow], quarantined: list[Any]) -> None:
    for q in quarantined:
        assert q.reason.strip()
    for r in rows:
        assert MIN_TS_NS <= r.ts_ns < MAX_TS_NS
        assert isinstance(r.text, str)
        r.text.encode("utf-8")  # no lone surrogates leak out


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.source.value)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_fixture())
def test_parsers_survive_mutated_real_shapes(parser: Any, doc: Any) -> None:
    document = SourceDocument(path="fuzz.json", data=doc)
    if not parser.sniff(document):
        return
    rows, quarantined = parser.parse([document], CTX)
    _check(rows, quarantined)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.source.value)
@settings(max_examples=100, deadline=None)
@given(doc=JSON)
def test_parsers_survive_arbitrary_json(parser: Any, doc: Any) -> None:
    document = SourceDocument(path="fuzz.json", data=doc)
    parser.sniff(document)
    rows, quarantined = parser.parse([document], CTX)
    _check(rows, quarantined)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(lambda s: ("{" + s).encode("utf-8", "surrogatepass")))
def test_bundle_loader_survives_arbitrary_bytes(tmp_path: Path, raw: bytes) -> None:
    bundle_dir = tmp_path / "b"
    bundle_dir.mkdir(exist_ok=True)
    (bundle_dir / "blob.json").write_bytes(raw)
    try:
        bundle = load_bundle(bundle_dir)
    except BundleError:
        return
    assert bundle.unrecognised or bundle.quarantined or bundle.documents or raw.strip() == b""
