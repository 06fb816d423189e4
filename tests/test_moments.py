from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.errors import ConfigError
from pipeline.models import IncidentManifest, MomentOverride
from pipeline.moments import compute_metrics, find_key_moments
from pipeline.settings import Settings
from pipeline.timeline import build_timeline
from tests.builders import T0, output, row


def _events(*rows):  # type: ignore[no-untyped-def]
    return build_timeline("INC-1", [output(*rows)], Settings()).events()


def test_paging_lifecycle_gives_all_five_moments_and_metrics() -> None:
    events = _events(
        row("fp", 0, "alert_firing", source="alertmanager", signal="higherrorrate"),
        row("incident:P1:acknowledged:1", 4, "acknowledged", source="pagerduty"),
        row("u1", 20, "status_update", source="statuspage", attrs={"status": "monitoring"}),
        row("fp-r", 25, "alert_resolved", source="alertmanager", signal="higherrorrate"),
        row("u2", 50, "status_update", source="statuspage", attrs={"status": "resolved"}),
        row("incident:P1:resolved", 45, "incident_resolved", source="pagerduty"),
    )
    moments = find_key_moments(events, IncidentManifest())
    assert moments.started.at == T0 and "alert still firing" in moments.started.rule
    assert moments.detected.at == T0
    assert "pagerduty" in moments.acknowledged.rule
    assert moments.mitigated.rule == "status page moved to monitoring"
    assert moments.resolved.rule == "last incident resolution (pagerduty)"
    metrics = compute_metrics(moments)
    assert metrics.model_dump() == {
        "time_to_detect_s": 0,
        "time_to_acknowledge_s": 240,
        "time_to_mitigate_s": 1200,
        "time_to_resolve_s": 2700,
    }


def test_human_report_before_alerts_detects_and_chat_acks() -> None:
    events = _events(
        row("m1", 0, text="customers are reporting checkout errors", actor="sam"),
        row("m2", 3, text="ack, looking", actor="maria"),
        row("fp", 10, "alert_firing", source="grafana", signal="checkoutlatency"),
        row("m3", 30, text="rollback complete, error rates recovering", actor="maria"),
    )
    moments = find_key_moments(events, IncidentManifest())
    assert moments.detected.rule == "first human report of a problem in chat"
    assert moments.detected.at == T0
    assert moments.acknowledged.rule == "first responder message after detection"
    assert moments.mitigated.rule == "explicit mitigation message in chat"
    assert moments.resolved.at is None and moments.resolved.rule.startswith("not found")
    assert compute_metrics(moments).time_to_resolve_s is None


def test_negated_mitigation_is_not_mitigation() -> None:
    events = _events(
        row("fp", 0, "alert_firing", source="alertmanager", signal="x5xx"),
        row("m1", 5, text="error rates are not recovering yet"),
    )
    assert find_key_moments(events, IncidentManifest()).mitigated.at is None


def test_bot_messages_do_not_acknowledge() -> None:
    events = _events(
        row("fp", 0, "alert_firing", source="alertmanager", signal="x5xx"),
        row("m1", 1, text="ack", attrs={"bot": True}),
    )
    assert find_key_moments(events, IncidentManifest()).acknowledged.at is None


def test_manifest_overrides_win() -> None:
    events = _events(
        row("fp", 30, "alert_firing", source="alertmanager", signal="certexpiry"),
        row("m1", 10, text="customers are reporting TLS errors"),
    )
    started = datetime(2025, 3, 4, 13, 0, tzinfo=UTC)
    manifest = IncidentManifest(
        overrides={"started": MomentOverride(at=started, note="support saw tickets first")},
    )
    moments = find_key_moments(events, manifest)
    assert moments.started.at == started
    assert moments.started.rule == "manifest override (support saw tickets first)"
    assert compute_metrics(moments).time_to_detect_s == 70 * 60


def test_override_by_unknown_event_id_is_a_clear_error() -> None:
    events = _events(row("fp", 0, "alert_firing", source="alertmanager", signal="x"))
    manifest = IncidentManifest(overrides={"resolved": MomentOverride(event_id="ev_nope")})
    with pytest.raises(ConfigError, match="ev_nope"):
        find_key_moments(events, manifest)


def test_status_page_resolves_when_there_is_no_paging_record() -> None:
    events = _events(
        row("fp", 0, "alert_firing", source="grafana", signal="tlsexpiry"),
        row("u1", 30, "status_update", source="statuspage", attrs={"status": "resolved"}),
    )
    assert find_key_moments(events, IncidentManifest()).resolved.rule == "status page resolved"


def test_flapping_warning_is_not_the_start() -> None:
    """A warning that flaps all day (fired, recovered, fired again) does not mark when this incident began."""
    flaps = []
    for i in range(4):
        start = -50 + i * 12
        flaps.append(row(f"flap{i}", start, "alert_firing", source="alertmanager", signal="indexerlag"))
        flaps.append(row(f"flap{i}-ok", start + 5, "alert_resolved", source="alertmanager", signal="indexerlag"))
    flaps = [f._replace(severity="warning") for f in flaps]
    crit = row("crit", 0, "alert_firing", source="alertmanager", signal="searchlatency")._replace(severity="critical")
    moments = find_key_moments(_events(*flaps, crit), IncidentManifest())
    assert moments.detected.at == T0
    assert moments.started.at == T0


def test_warning_still_firing_at_the_page_marks_the_start() -> None:
    warn = row("w", -2, "alert_firing", source="alertmanager", signal="pgbouncerwaiting")
    page = row("p", 0, "alert_firing", source="alertmanager", signal="connectionshigh")
    moments = find_key_moments(
        _events(warn._replace(severity="warning"), page._replace(severity="page")), IncidentManifest()
    )
    assert moments.detected.at == T0
    assert compute_metrics(moments).time_to_detect_s == 120


def test_an_override_after_detection_still_drafts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A person may set started later than the first alert: the draft says nothing negative, and warns."""
    import shutil

    from pipeline.service import draft_bundle
    from tests.conftest import SAMPLES

    bundle = tmp_path / "b"
    shutil.copytree(SAMPLES / "edge-cert-expiry", bundle)
    manifest = (bundle / "incident.yaml").read_text()
    (bundle / "incident.yaml").write_text(manifest.replace("2025-10-02T06:14:00Z", "2025-10-02T07:30:00Z"))
    _, draft = draft_bundle(bundle, Settings(home=tmp_path / "home"))
    assert draft.metrics.time_to_detect_s is not None and draft.metrics.time_to_detect_s < 0
    assert draft.validation is not None and draft.validation.ok
    assert any("before started" in w for w in draft.validation.warnings)
