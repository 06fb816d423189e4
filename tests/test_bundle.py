from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from pipeline.bundle import load_bundle, parse_source
from pipeline.errors import ConfigError
from pipeline.models import Source
from tests.conftest import FIXTURES

ALERT_GROUP = (FIXTURES / "alertmanager" / "firing_group.json").read_text()


def _bundle(tmp_path: Path, files: dict[str, bytes | str]) -> Path:
    root = tmp_path / "bundle"
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def test_recognition_is_by_content_not_name(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path, {"x/notes-from-bob.txt": ALERT_GROUP, "incident.yaml": "id: INC-9\n"}))
    assert bundle.sources == [Source.ALERTMANAGER]
    assert bundle.incident_id == "INC-9"


def test_malformed_json_is_quarantined_with_the_decoder_reason(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path, {"a.json": ALERT_GROUP, "broken.json": '{"alerts": [1, 2'}))
    (bad,) = bundle.quarantined
    assert bad.file == "broken.json" and bad.reason.startswith("malformed JSON")


def test_ndjson_bad_lines_are_quarantined_and_good_lines_parsed(tmp_path: Path) -> None:
    line = json.dumps(json.loads(ALERT_GROUP))
    bundle = load_bundle(_bundle(tmp_path, {"am.ndjson": f"{line}\n{{not json\n{line}\n"}))
    assert [q.position for q in bundle.quarantined] == ["line 2"]
    assert [d.position for d in bundle.documents[Source.ALERTMANAGER]] == ["line 1", "line 3"]


def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path) -> None:
    raw = ALERT_GROUP.encode().replace(b"CheckoutHighErrorRate", b"Checkout\xff\xfeHighErrorRate", 1)
    bundle = load_bundle(_bundle(tmp_path, {"a.json": raw}))
    rows, quarantined = parse_source(bundle, Source.ALERTMANAGER)
    assert rows and not quarantined
    assert any("\ufffd" in str(r.attrs) or "\ufffd" in r.text for r in rows)


def test_nested_zip_members_keep_their_path(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("alerts/group.json", ALERT_GROUP)
    outer = tmp_path / "incident.zip"
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("exports/alerts.zip", inner.getvalue())
        z.writestr("__MACOSX/._junk", b"\x00")
    bundle = load_bundle(outer)
    (doc,) = bundle.documents[Source.ALERTMANAGER]
    assert doc.path == "incident.zip!exports/alerts.zip!alerts/group.json"
    assert bundle.unrecognised == []


def test_hidden_files_and_meta_files_are_ignored(tmp_path: Path) -> None:
    bundle = load_bundle(
        _bundle(tmp_path, {"a.json": ALERT_GROUP, ".DS_Store": b"\x00\x01", "gold.yaml": "x: 1", "README.md": "# hi"})
    )
    assert bundle.unrecognised == [] and bundle.quarantined == []


def test_bad_timezone_in_manifest_is_a_config_error(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path, {"a.json": ALERT_GROUP, "incident.yaml": "timezone: Mars/Olympus\n"}))
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        bundle.context()


def test_naive_timestamps_use_the_manifest_timezone(tmp_path: Path) -> None:
    group = json.loads(ALERT_GROUP)
    group["alerts"] = group["alerts"][:1]
    group["alerts"][0]["startsAt"] = "2025-03-14T23:30:00"
    files = {"a.json": json.dumps(group), "incident.yaml": "timezone: Europe/Berlin\n"}
    bundle = load_bundle(_bundle(tmp_path, files))
    rows, _ = parse_source(bundle, Source.ALERTMANAGER)
    assert rows[0].ts_ns == 1_741_991_400 * 10**9  # 23:30 CET = 22:30 UTC
