from __future__ import annotations

import base64
import hashlib
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
