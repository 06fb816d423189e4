"""Every bundled sample incident drafts cleanly and agrees with its gold annotations (gold.yaml):
key moments, factor categories, quarantine and unrecognised files, and planted blame bait stays out."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.blame import blame_hits
from pipeline.models import MOMENT_NAMES, Draft
from pipeline.render import render_markdown
from pipeline.section_key import SectionKey
from pipeline.service import draft_bundle
from pipeline.settings import Settings
from tests.conftest import SAMPLES

BUNDLES = sorted(p for p in SAMPLES.iterdir() if (p / "gold.yaml").is_file())
TOLERANCE_S = 60


@pytest.fixture(scope="module")
def drafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Draft]]:
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    return {b.name: draft_bundle(b, settings) for b in BUNDLES}


def _gold(bundle: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((bundle / "gold.yaml").read_text(encoding="utf-8")))


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_there_are_at_least_six_samples_with_gold() -> None:
    assert len(BUNDLES) >= 6


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda b: b.name)
def test_sample_drafts_validly_with_balanced_counts(bundle: Path, drafted: dict[str, tuple[Any, Draft]]) -> None:
    _, draft = drafted[bundle.name]
    assert draft.validation is not None and draft.validation.ok, draft.validation
    assert draft.stats.balanced, draft.stats
    known = {e.id for e in draft.timeline} | {m for e in draft.timeline for m in e.merged_ids}
    for factor in draft.contributing_factors:
        assert set(factor.evidence) <= known
    for item in draft.action_items:
        assert set(item.evidence) <= known
    prose = " ".join([draft.summary, draft.impact.statement, *(f.statement for f in draft.contributing_factors)])
    assert blame_hits(prose) == []
    markdown = render_markdown(draft, key=SectionKey(bytes(32)))
    assert markdown.index("## Summary") < markdown.index("## Impact") < markdown.index("## Key moments")
    assert markdown.index("## Contributing factors") < markdown.index("## Action items") < markdown.index("## Timeline")
    assert "```mermaid" in markdown


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda b: b.name)
def test_key_moments_match_gold(bundle: Path, drafted: dict[str, tuple[Any, Draft]]) -> None:
    gold = _gold(bundle)["moments"]
    _, draft = drafted[bundle.name]
    misses = []
    for name in MOMENT_NAMES:
        expected = gold.get(name) or {}
        accepted = [_at(v) for v in [expected.get("at"), *expected.get("also_acceptable", [])] if v]
        got = draft.key_moments.get(name).at
        if not accepted:
            continue
        if got is None or not any(abs((got - a).total_seconds()) <= TOLERANCE_S for a in accepted):
            misses.append(f"{name}: got {got}, gold {expected.get('at')} ({draft.key_moments.get(name).rule})")
    assert not misses, misses


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda b: b.name)
def test_factor_categories_match_gold(bundle: Path, drafted: dict[str, tuple[Any, Draft]]) -> None:
    gold = _gold(bundle)
    _, draft = drafted[bundle.name]
    found = {f.category for f in draft.contributing_factors}
    assert set(gold["factor_categories_expected"]) <= found
    unwanted = {c["category"] if isinstance(c, dict) else c for c in gold.get("factor_categories_not_expected", [])}
    assert not (found & unwanted), found & unwanted


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda b: b.name)
def test_quarantine_and_unrecognised_match_gold(bundle: Path, drafted: dict[str, tuple[Any, Draft]]) -> None:
    gold = _gold(bundle)
    loaded, draft = drafted[bundle.name]
    assert sorted(loaded.unrecognised) == sorted(u["file"] for u in gold.get("unrecognised") or [])
    expected = gold.get("quarantine") or []
    assert len(draft.quarantine) == len(expected)
    for want in expected:
        assert any(q.file == want["file"] and want.get("reason_contains", "") in q.reason for q in draft.quarantine), (
            want
        )
