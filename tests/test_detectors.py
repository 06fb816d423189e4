"""Contributing-factor detectors on hand-made timelines."""

from __future__ import annotations

from pathlib import Path

from pipeline.draft.facts import build_facts
from pipeline.models import IncidentManifest
from pipeline.settings import Settings
from pipeline.timeline import build_timeline
from tests.builders import output, row


def _categories(tmp_path: Path, manifest: IncidentManifest, *extra: str) -> set[str]:
    """An hour-long page (detected at 0, resolved at 60) with no status-page update, plus chat lines."""
    rows = [
        row("page", 0, "page_triggered", source="pagerduty", text="checkout-api 5xx above 5%", actor=None),
        row("ack", 3, "acknowledged", source="pagerduty", text="Acknowledged by Dana", actor="dana"),
        *(row(f"m{n}", 5 + n, text=text) for n, text in enumerate(extra)),
        row("resolve", 60, "incident_resolved", source="pagerduty", text="Resolved by Dana", actor="dana"),
    ]
    settings = Settings(home=tmp_path)
    timeline = build_timeline("INC-1", [output(*rows)], settings)
    facts = build_facts(manifest, timeline, settings)
    return {f.category for f in facts.factors}


def test_status_page_silence_is_a_factor_only_when_customers_were_affected(tmp_path: Path) -> None:
    internal = IncidentManifest(id="INC-1")
    assert "communication" not in _categories(tmp_path, internal, "error rate is up on the batch cluster")
    customers = "support says customers are seeing failed checkouts"
    assert "communication" in _categories(tmp_path, internal, customers)
    restricted = IncidentManifest(id="INC-1", visibility="restricted")
    assert "communication" not in _categories(tmp_path, restricted, customers)  # a security incident
