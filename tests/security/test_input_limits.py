"""No input may exhaust memory or time: zip bombs (nested, lying headers, too many members, too deep), files
and bundles past their size caps, YAML alias bombs and deep YAML, deep JSON (with and without a lone surrogate
escape), and symbolic links that would read outside the bundle. Every hostile input is built here; what passes
a limit is quarantined with a reason naming its POSTMORTEM_ setting, or refused with a clear error."""

from __future__ import annotations

import io
import json
import os
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.bundle import Bundle, load_bundle
from pipeline.connector_source import load_sources
from pipeline.errors import BundleError, ConfigError, LimitExceeded, PromptError
from pipeline.eval_models import EvalError
from pipeline.evaluate import load_gold, load_suite_file
from pipeline.index_docs import DocumentError, document_from_markdown
from pipeline.limits import (
    ORJSON_MAX_DEPTH,
    YamlLimits,
    json_depth_exceeds,
    load_yaml,
    loads_json,
    raw_json_depth_exceeds,
    zip_member_bound,
)
from pipeline.models import Source
from pipeline.prompts import load_prompt_file
from pipeline.publish import load_publish_config
from pipeline.service import load_timeline
from pipeline.settings import Settings
from pipeline.sweep import manifest_aliases
from tests.conftest import FIXTURES

ALERT_GROUP = (FIXTURES / "alertmanager" / "firing_group.json").read_bytes()
SECRET = b"TOP-SECRET-outside-the-bundle-7f3a"
MB = 1024**2
# 9 levels of 9 aliases: 9^9 (387 million) strings once expanded, from about 340 bytes
BILLION_LAUGHS = "lol: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 9)
)


def _settings(tmp_path: Path, **limits: int) -> Settings:
    return Settings(home=tmp_path / "home", **limits)  # type: ignore[arg-type]


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _zip(members: dict[str, bytes], *, level: int = 9) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def _zeros_zip(name: str, size: int) -> bytes:
    """A zip holding `size` zero bytes, written in chunks (the test never holds the inflated member either)."""
    out, info = io.BytesIO(), zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w") as archive, archive.open(info, "w", force_zip64=True) as member:
        chunk = bytes(MB)
        for _ in range(size // MB):
            member.write(chunk)
    return out.getvalue()


def _peak_bytes(run: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _everything(bundle: Bundle) -> bytes:
    """Every byte a bundle exposes downstream: documents, their paths, quarantine entries and excerpts."""
    docs = [[d.path, d.position, d.data] for docs in bundle.documents.values() for d in docs]
    entries = [q.model_dump() for q in bundle.quarantined]
    return orjson.dumps([docs, entries, bundle.unrecognised], default=str)


def _reasons(bundle: Bundle) -> dict[str, str]:
    return {q.file: q.reason for q in bundle.quarantined}


# --- zips --------------------------------------------------------------------------------------------------


def test_nested_zip_bomb_is_quarantined_and_memory_stays_bounded(tmp_path: Path) -> None:
    leaf = _zeros_zip("zeros.json", 64 * MB)  # ~64 KB that inflates 1000:1
    middle = _zip({f"m{i}.zip": leaf for i in range(8)}, level=0)
    outer = _zip({f"o{i}.zip": middle for i in range(8)}, level=0)  # 64 x 64 MB = 4 GB once expanded
    root = _tree(tmp_path / "b", {"bomb.zip": outer, "alerts.json": ALERT_GROUP})

    bundle, peak = _peak_bytes(lambda: load_bundle(root, _settings(tmp_path)))

    assert peak < 200 * MB
    assert len(bundle.documents[Source.ALERTMANAGER]) == 1
    assert len(bundle.quarantined) == 64
    assert all(q.file.endswith("!zeros.json") and q.excerpt == "" for q in bundle.quarantined)
    assert all("POSTMORTEM_MAX_COMPRESSION_RATIO" in q.reason for q in bundle.quarantined)


def test_counts_balance_with_a_quarantined_bomb_next_to_good_files(tmp_path: Path) -> None:
    line = orjson.dumps(json.loads(ALERT_GROUP)).decode()
    root = _tree(
        tmp_path / "b",
        {
            "bomb.zip": _zeros_zip("inner/zeros.json", 32 * MB),
            "a.json": ALERT_GROUP,
            "am.ndjson": f"{line}\n{line}\n".encode(),
        },
    )
    _, timeline = load_timeline(root, _settings(tmp_path))
    stats = timeline.stats
    assert stats.balanced and stats.records_in == stats.events + stats.duplicates + stats.collapsed + stats.quarantined
    assert [q.file for q in timeline.quarantine] == ["bomb.zip!inner/zeros.json"]
    assert stats.events > 0 and stats.quarantined == 1


@pytest.mark.parametrize("declared", [1000, 3_000_000_000], ids=["under-declared", "over-declared"])
def test_a_zip_header_that_lies_about_the_size_is_never_trusted(tmp_path: Path, declared: int) -> None:
    archive = bytearray(_zip({"big.json": b'{"pad": "' + b" " * (24 * MB) + b'"}'}))
    struct.pack_into("<L", archive, 22, declared)  # the local header's uncompressed size
    central = archive.rfind(b"PK\x01\x02")
    struct.pack_into("<L", archive, central + 24, declared)  # and the central directory's
    root = _tree(tmp_path / "b", {"lies.zip": bytes(archive), "a.json": ALERT_GROUP})

    bundle, peak = _peak_bytes(lambda: load_bundle(root, _settings(tmp_path, max_compression_ratio=10_000)))

    (entry,) = bundle.quarantined
    assert entry.file == "lies.zip!big.json" and entry.excerpt == ""
    if declared > MB:  # claims more than a file may hold: refused from the header, never inflated
        assert "POSTMORTEM_MAX_FILE_BYTES" in entry.reason
    else:  # claims less: reading stops at the claim, and the checksum no longer matches
        assert entry.reason.startswith("unreadable zip member") and "CRC" in entry.reason
    assert peak < 8 * MB


def test_too_many_members_are_refused_before_zipfile_lists_them(tmp_path: Path) -> None:
    many = _zip({f"f{i:03d}.json": ALERT_GROUP for i in range(50)})
    limits = _settings(tmp_path, max_bundle_files=10)
    with pytest.raises(BundleError, match=r"50 members.*POSTMORTEM_MAX_BUNDLE_FILES"):
        load_bundle(_file(tmp_path, "many.zip", many), limits)

    bundle = load_bundle(_tree(tmp_path / "b", {"many.zip": many, "a.json": ALERT_GROUP}), limits)
    assert "POSTMORTEM_MAX_BUNDLE_FILES" in _reasons(bundle)["many.zip"]


def test_an_end_record_that_under_declares_members_does_not_hide_them(tmp_path: Path) -> None:
    archive = bytearray(_zip({f"f{i:03d}.json": b"{}" for i in range(50)}))
    end = archive.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", archive, end + 8, 1, 1)  # "1 entry" on this disk and in total
    assert zip_member_bound(io.BytesIO(bytes(archive))) == 50
    with pytest.raises(BundleError, match="POSTMORTEM_MAX_BUNDLE_FILES"):
        load_bundle(_file(tmp_path, "b.zip", bytes(archive)), _settings(tmp_path, max_bundle_files=10))


def test_files_past_the_count_cap_are_one_entry_and_not_read(tmp_path: Path) -> None:
    root = _tree(tmp_path / "b", {f"f{i:02d}.json": ALERT_GROUP for i in range(20)})
    bundle = load_bundle(root, _settings(tmp_path, max_bundle_files=5))
    assert sum(len(docs) for docs in bundle.documents.values()) == 5
    (entry,) = bundle.quarantined
    assert entry.file == "f05.json" and "more than 5 files" in entry.reason
    assert "POSTMORTEM_MAX_BUNDLE_FILES" in entry.reason


def test_a_folder_of_many_names_is_not_listed_whole(tmp_path: Path) -> None:
    root = _tree(tmp_path / "b", {"a.json": ALERT_GROUP, "z.json": ALERT_GROUP})
    for i in range(20):
        (root / f"d{i:02d}").mkdir()  # empty folders: no file reaches the cap before the listing does
    bundle = load_bundle(root, _settings(tmp_path, max_bundle_files=5))
    (entry,) = bundle.quarantined
    assert entry.file == "." and "22 entries, more than 5" in entry.reason and "after d04" in entry.reason
    assert [d.path for d in bundle.documents[Source.ALERTMANAGER]] == ["a.json"]


def test_zips_nested_too_deep_are_quarantined(tmp_path: Path) -> None:
    archive = _zip({"alerts.json": ALERT_GROUP})
    for level in range(5):
        archive = _zip({f"level{level}.zip": archive, f"a{level}.json": ALERT_GROUP})
    root = _tree(tmp_path / "b", {"deep.zip": archive})

    bundle = load_bundle(root, _settings(tmp_path))  # max_zip_depth 3
    (entry,) = bundle.quarantined
    assert entry.file.count("!") == 4 and "POSTMORTEM_MAX_ZIP_DEPTH" in entry.reason
    assert len(bundle.documents[Source.ALERTMANAGER]) == 4  # the files of the levels that were opened

    flat = load_bundle(root, _settings(tmp_path, max_zip_depth=0))
    assert [q.file for q in flat.quarantined] == ["deep.zip!level4.zip"]


def test_a_highly_compressed_member_is_quarantined_and_its_neighbours_read(tmp_path: Path) -> None:
    padded = b'{"pad": "' + b" " * (4 * MB) + b'"}'  # about 1000:1
    root = _tree(tmp_path / "b", {"x.zip": _zip({"padded.json": padded, "alerts.json": ALERT_GROUP})})
    bundle = load_bundle(root, _settings(tmp_path))
    assert "POSTMORTEM_MAX_COMPRESSION_RATIO" in _reasons(bundle)["x.zip!padded.json"]
    assert [d.path for d in bundle.documents[Source.ALERTMANAGER]] == ["x.zip!alerts.json"]
    assert "x.zip!padded.json" not in _reasons(load_bundle(root, _settings(tmp_path, max_compression_ratio=5000)))


@pytest.mark.parametrize("as_zip", [False, True], ids=["directory", "zip"])
def test_the_total_bytes_cap_quarantines_the_rest_by_name_unread(tmp_path: Path, as_zip: bool) -> None:
    size = len(ALERT_GROUP)
    files = {f"f{i}.json": ALERT_GROUP for i in range(6)}
    root = _tree(tmp_path / "b", {"all.zip": _zip(files, level=0)} if as_zip else files)
    bundle = load_bundle(root, _settings(tmp_path, max_bundle_bytes=3 * size + 10))
    assert len(bundle.documents[Source.ALERTMANAGER]) == 3
    assert len(bundle.quarantined) == 3
    assert all("POSTMORTEM_MAX_BUNDLE_BYTES" in q.reason and q.excerpt == "" for q in bundle.quarantined)


def test_a_file_larger_than_the_file_cap_is_quarantined_unread(tmp_path: Path) -> None:
    root = _tree(tmp_path / "b", {"big.json": b"[" + b"1," * 40_000 + b"1]", "a.json": ALERT_GROUP})
    bundle = load_bundle(root, _settings(tmp_path, max_file_bytes=50_000))
    assert "POSTMORTEM_MAX_FILE_BYTES" in _reasons(bundle)["big.json"]
    assert Source.ALERTMANAGER in bundle.documents


# --- YAML --------------------------------------------------------------------------------------------------


def test_billion_laughs_is_refused_while_streaming_before_anything_is_built() -> None:
    # A syntax error after the bomb: a loader that composed or built the document would report that error;
    # the refusal comes first, from the event stream, so nothing was expanded.
    with pytest.raises(LimitExceeded) as refused:
        load_yaml(BILLION_LAUGHS + "broken: [\n", what="incident.yaml", limits=YamlLimits())
    assert refused.value.setting == "max_yaml_aliases" and "incident.yaml" in str(refused.value)
    with pytest.raises(LimitExceeded) as budget:  # aliases allowed: their expansion is charged instead
        load_yaml(BILLION_LAUGHS + "broken: [\n", what="incident.yaml", limits=YamlLimits(max_aliases=10_000))
    assert budget.value.setting == "max_yaml_bytes" and "expands" in str(budget.value)


def test_billion_laughs_manifest_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    root = _tree(tmp_path / "b", {"incident.yaml": BILLION_LAUGHS.encode(), "a.json": ALERT_GROUP})
    with pytest.raises(ConfigError, match=r"incident\.yaml uses YAML aliases.*POSTMORTEM_MAX_YAML_ALIASES"):
        load_bundle(root, _settings(tmp_path))
    assert manifest_aliases({"incident.yaml": BILLION_LAUGHS.encode()}) == []  # the sweep's reader too


def test_deep_yaml_is_refused() -> None:
    deep = "a:\n" + "".join(f"{'  ' * n}- \n" for n in range(1, 200)) + "[" * 10_000 + "]" * 10_000
    with pytest.raises(LimitExceeded, match="POSTMORTEM_MAX_YAML_DEPTH"):
        load_yaml(deep, what="x.yaml", limits=YamlLimits())
    with pytest.raises(LimitExceeded, match="POSTMORTEM_MAX_YAML_DEPTH"):
        load_yaml("[" * 100_000 + "]" * 100_000, what="x.yaml", limits=YamlLimits())
    with pytest.raises(yaml.YAMLError, match="contains it"):  # recursive: would never finish expanding
        load_yaml("a: &a [1, *a]\n", what="x.yaml", limits=YamlLimits(max_aliases=5))
    assert load_yaml("base: &b {x: 1}\nother: {<<: *b, y: 2}\n", what="x", limits=YamlLimits(max_aliases=1)) == {
        "base": {"x": 1},
        "other": {"x": 1, "y": 2},
    }


def _write(tmp_path: Path, rel: str, text: str) -> Path:
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("where", "load", "error"),
    [
        ("sources.yaml", lambda p: load_sources(p), ConfigError),
        ("publish.yaml", lambda p: load_publish_config(p), ConfigError),
        ("prompts/p/v1.yaml", lambda p: load_prompt_file(p), PromptError),
        ("suites/s.v1.yaml", lambda p: load_suite_file(p), EvalError),
        ("case/gold.yaml", lambda p: load_gold(p.parent), EvalError),
    ],
)
def test_every_yaml_the_package_reads_refuses_alias_bombs(
    tmp_path: Path, where: str, load: Callable[[Path], Any], error: type[Exception]
) -> None:
    path = _write(tmp_path, where, BILLION_LAUGHS)
    with pytest.raises(error, match="POSTMORTEM_MAX_YAML_ALIASES") as refused:
        load(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_front_matter_alias_bomb_rejects_the_document() -> None:
    with pytest.raises(DocumentError, match="POSTMORTEM_MAX_YAML_ALIASES"):
        document_from_markdown(f"---\n{BILLION_LAUGHS}---\n# t\n## Summary\nx\n", "pm.md")


# --- JSON --------------------------------------------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_deep_json_file_is_quarantined_not_a_recursion_error(tmp_path: Path) -> None:
    pretty = b"\n".join([b"["] * 300 + [b"]"] * 300)
    mid = b"[" * 500 + b"]" * 500  # orjson itself would decode this; the pipeline's depth is 128
    root = _tree(tmp_path / "b", {"deep.json": DEEP, "pretty.json": pretty, "mid.json": mid, "a.json": ALERT_GROUP})
    bundle = load_bundle(root, _settings(tmp_path))
    reasons = _reasons(bundle)
    assert set(reasons) == {"deep.json", "pretty.json", "mid.json"}
    assert all("deeper than 128" in r and "POSTMORTEM_MAX_JSON_DEPTH" in r for r in reasons.values())
    assert Source.ALERTMANAGER in bundle.documents


def test_deep_ndjson_line_is_quarantined_and_the_other_lines_parsed(tmp_path: Path) -> None:
    line = orjson.dumps(json.loads(ALERT_GROUP))
    for first in (False, True):
        lines = [DEEP, line, line] if first else [line, DEEP, line]
        bundle = load_bundle(_tree(tmp_path / f"b{first}", {"am.ndjson": b"\n".join(lines)}), _settings(tmp_path))
        (entry,) = bundle.quarantined
        assert entry.position == f"line {1 if first else 2}" and "POSTMORTEM_MAX_JSON_DEPTH" in entry.reason
        assert len(bundle.documents[Source.ALERTMANAGER]) == 2


def test_lone_surrogate_before_deep_json_is_a_clear_quarantine(tmp_path: Path) -> None:
    group = json.loads(ALERT_GROUP)
    group["commonAnnotations"]["summary"] = "cut emoji \ud83d"  # a lone surrogate escape: orjson refuses it
    good = json.dumps(group).encode()
    assert b"\\ud83d" in good
    hostile = b'["\\ud800", ' + DEEP + b"]"
    root = _tree(tmp_path / "b", {"good.json": good, "deep.json": hostile, "lines.ndjson": good + b"\n" + hostile})
    bundle = load_bundle(root, _settings(tmp_path))
    assert {(q.file, q.position) for q in bundle.quarantined} == {("deep.json", "/"), ("lines.ndjson", "line 2")}
    assert all("POSTMORTEM_MAX_JSON_DEPTH" in q.reason for q in bundle.quarantined)
    assert len(bundle.documents[Source.ALERTMANAGER]) == 2  # the stdlib fallback still reads good.json


def test_json_depth_setting_is_honoured(tmp_path: Path) -> None:
    nine = b'{"a": ' * 9 + b"1" + b"}" * 9
    root = _tree(tmp_path / "b", {"nine.json": nine, "a.json": ALERT_GROUP})
    assert "nine.json" in _reasons(load_bundle(root, _settings(tmp_path, max_json_depth=8)))
    assert "nine.json" not in _reasons(load_bundle(root, _settings(tmp_path, max_json_depth=9)))


def test_orjson_depth_limit_is_the_one_the_padding_relies_on() -> None:
    orjson.loads(b"[" * ORJSON_MAX_DEPTH + b"]" * ORJSON_MAX_DEPTH)
    with pytest.raises(orjson.JSONDecodeError, match="depth limit"):
        orjson.loads(b"[" * (ORJSON_MAX_DEPTH + 1) + b"]" * (ORJSON_MAX_DEPTH + 1))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='ab[]{}"\\,: ', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(
    value=JSON_VALUES,
    cut=st.integers(min_value=0, max_value=200),
    junk=st.sampled_from(["", "]", "}", ",1", "x", "\n{}"]),
)
def test_loads_json_agrees_with_orjson_within_the_depth(value: Any, cut: int, junk: str) -> None:
    whole = orjson.dumps(value).decode()
    for text in (whole, whole[:cut] + junk, whole + junk):
        try:
            expected: Any = ("ok", orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            expected = ("error", str(exc).split(":")[0])
        try:
            got: Any = ("ok", loads_json(text, 8))
        except LimitExceeded:
            assert raw_json_depth_exceeds(text, 8)
            continue
        except ValueError as exc:
            got = ("error", str(exc))
        assert got == expected
        if got[0] == "ok":
            assert not json_depth_exceeds(got[1], 8)


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES)
def test_the_raw_bracket_scan_matches_the_decoded_depth(value: Any) -> None:
    text = orjson.dumps(value)
    for depth in (1, 2, 3, 5):
        assert raw_json_depth_exceeds(text, depth) == json_depth_exceeds(value, depth)


# --- links and special files ---------------------------------------------------------------------------------


def test_symbolic_links_are_listed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_bytes(b'{"alerts": [], "token": "' + SECRET + b'"}')
    (outside / "incident.yaml").write_bytes(b"id: " + SECRET + b"\n")
    root = _tree(tmp_path / "b", {"a.json": ALERT_GROUP})
    (root / "leak.json").symlink_to(outside / "secret.json")
    (root / "dir").symlink_to(outside, target_is_directory=True)
    (root / "incident.yaml").symlink_to(outside / "incident.yaml")
    (root / "dangling.json").symlink_to(tmp_path / "nowhere")

    bundle = load_bundle(root, _settings(tmp_path))

    assert _reasons(bundle) == dict.fromkeys(
        ("dangling.json", "dir", "incident.yaml", "leak.json"), "symbolic link not followed"
    )
    assert SECRET not in _everything(bundle) and SECRET.decode() not in bundle.incident_id
    assert bundle.incident_id == "b"


def test_a_fifo_in_a_bundle_is_quarantined_without_blocking(tmp_path: Path) -> None:
    root = _tree(tmp_path / "b", {"a.json": ALERT_GROUP})
    os.mkfifo(root / "pipe.json")
    assert _reasons(load_bundle(root, _settings(tmp_path))) == {
        "pipe.json": "not a regular file (a pipe, socket or device); not read"
    }
