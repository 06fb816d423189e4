"""Size, depth and count limits for everything this package reads: YAML files (manifests, sources.yaml,
publish.yaml, suites, prompts), JSON documents and zip archives.

YAML is checked on its event stream before anything is constructed, so an alias bomb ("billion laughs") or a
deeply nested document is refused in time linear in its bytes and never expanded. JSON depth is measured without
recursion, so a deep document is a clear error rather than a RecursionError in whatever walks it next. A zip's
member count is bounded from its end record before ``zipfile`` builds an entry per member.
"""

from __future__ import annotations

import io
import json
import re
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import orjson
import yaml

from pipeline.errors import LimitExceeded
from pipeline.settings import get_settings

try:  # the C parser when libyaml is there; the pure-Python one is the same grammar, slower
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

ORJSON_MAX_DEPTH = 1024  # orjson refuses deeper documents ("depth limit exceeded"); a test pins this
# A JSON string, escapes honoured; an unterminated one runs to the end. Possessive, so linear on any input.
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_CHUNK = 1 << 20
_LOOKAHEAD = 64  # characters a decoder may read past an error before reporting it
_COUNT_BELOW = 64 * 1024  # texts shorter than this have their brackets counted before padding
_EOCD_SIZE, _ZIP64_LOCATOR_SIZE, _ZIP64_EOCD_SIZE = 22, 20, 56


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int = 1024**2
    max_depth: int = 32
    max_aliases: int = 0

    @classmethod
    def from_settings(cls, settings: Any) -> YamlLimits:
        return cls(settings.max_yaml_bytes, settings.max_yaml_depth, settings.max_yaml_aliases)


@dataclass(frozen=True)
class BundleLimits:
    """What one incident bundle may hold (see the matching POSTMORTEM_MAX_* settings for their meaning).
    The defaults are the settings' defaults; ``from_settings`` is how the pipeline builds it."""

    max_bundle_bytes: int = 2 * 1024**3
    max_file_bytes: int = 512 * 1024**2
    max_bundle_files: int = 100_000
    max_zip_depth: int = 3
    max_compression_ratio: int = 200
    max_json_depth: int = 128
    yaml: YamlLimits = YamlLimits()

    @classmethod
    def from_settings(cls, settings: Any) -> BundleLimits:
        return cls(
            max_bundle_bytes=settings.max_bundle_bytes,
            max_file_bytes=settings.max_file_bytes,
            max_bundle_files=settings.max_bundle_files,
            max_zip_depth=settings.max_zip_depth,
            max_compression_ratio=settings.max_compression_ratio,
            max_json_depth=settings.max_json_depth,
            yaml=YamlLimits.from_settings(settings),
        )


def load_yaml(raw: bytes | str, *, what: str, limits: YamlLimits | None = None) -> Any:
    """Parse one YAML document after checking its size, nesting depth and aliases on the event stream.

    Aliases are counted, and when some are allowed, each one is charged the size and height of the node it
    repeats: the document as it would expand may hold no more nodes than ``max_yaml_bytes`` (no more than a
    document of that size without aliases could) nor nest deeper than ``max_yaml_depth``. An alias to a node
    that contains it (a recursive structure) is refused. Raises LimitExceeded (naming `what` and the setting)
    when a limit is passed and yaml.YAMLError / UnicodeDecodeError for text that is not YAML; callers turn both
    into their own one-line errors. Without `limits`, the process settings (POSTMORTEM_MAX_YAML_*) apply."""
    limits = limits or YamlLimits.from_settings(get_settings())
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > limits.max_bytes:
        raise LimitExceeded(f"{what} is {size} bytes, more than {limits.max_bytes}", setting="max_yaml_bytes")
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    open_nodes: list[list[Any]] = []  # per open collection: [nodes in it, height of its tallest child, anchor]
    anchored: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, height) of the finished node
    aliases = expanded = 0
    for event in yaml.parse(text, Loader=_Loader):
        nodes, height = 0, 0
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if len(open_nodes) >= limits.max_depth:
                raise LimitExceeded(f"{what} nests deeper than {limits.max_depth} levels", setting="max_yaml_depth")
            open_nodes.append([1, 0, event.anchor])
            expanded += 1
            continue
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            nodes, tallest, anchor = open_nodes.pop()
            height = tallest + 1
        elif isinstance(event, yaml.ScalarEvent):
            nodes, height, anchor = 1, 0, event.anchor
            expanded += 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise LimitExceeded(
                    f"{what} uses YAML aliases (*{event.anchor}); more than {limits.max_aliases} are refused",
                    setting="max_yaml_aliases",
                )
            if event.anchor not in anchored:  # undefined (the loader says so), or a node that contains it
                if any(frame[2] == event.anchor for frame in open_nodes):
                    raise yaml.YAMLError(f"{what}: alias *{event.anchor} refers to a node that contains it")
                continue
            nodes, height = anchored[event.anchor]
            anchor, expanded = None, expanded + nodes
            if len(open_nodes) + height > limits.max_depth:
                raise LimitExceeded(
                    f"{what} nests deeper than {limits.max_depth} levels through *{event.anchor}",
                    setting="max_yaml_depth",
                )
            if expanded > limits.max_bytes:
                raise LimitExceeded(
                    f"{what} expands through its aliases to more than {limits.max_bytes} nodes",
                    setting="max_yaml_bytes",
                )
        else:
            continue
        if anchor is not None:
            anchored[anchor] = (nodes, height)
        if open_nodes:
            open_nodes[-1][0] += nodes
            open_nodes[-1][1] = max(open_nodes[-1][1], height)
    return yaml.load(text, Loader=_Loader)  # a SafeLoader (C or Python), checked above


def json_depth_exceeds(value: object, max_depth: int) -> bool:
    """Does `value` (decoded JSON: dicts, lists, scalars) nest deeper than `max_depth`? Iterative: no recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def raw_json_depth_exceeds(raw: bytes | str, max_depth: int) -> bool:
    """Does JSON text nest deeper than `max_depth`, judged from its brackets before any decoder recurses into
    it? Strings are cut out first (escapes honoured), so the count is exact for the part of the text a decoder
    would accept; past a syntax error it can only over-count, never under-count what a decoder recursed into.
    The scan ends with the first document, as a decoder does (NDJSON: the first line).

    Linear and vectorised (one regular expression, then a running sum in chunks): fast enough to run on a
    whole file, unlike a per-byte loop. ``loads_json`` needs it only when the stdlib decoder takes over."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", data)).translate(_BRACKET_STEPS)
    steps = np.frombuffer(brackets, dtype=np.int8)
    depth = 0
    for start in range(0, len(steps), _CHUNK):
        running = np.cumsum(steps[start : start + _CHUNK], dtype=np.int64) + depth
        closed = np.flatnonzero(running <= 0)  # the first document ends here: a decoder reads no further
        if closed.size:
            running = running[: closed[0] + 1]
        if int(running.max()) > max_depth:
            return True
        if closed.size:
            return False
        depth = int(running[-1])
    return False


def loads_json(text: str, max_depth: int) -> Any:
    """Decode one JSON document with orjson, refusing one that nests deeper than `max_depth` (LimitExceeded,
    naming POSTMORTEM_MAX_JSON_DEPTH) before anything recurses into it. Raises ValueError with the decoder's
    reason for text that is not JSON.

    orjson stops cleanly past ``ORJSON_MAX_DEPTH`` levels. A document that could be deeper than `max_depth` is
    decoded inside ``ORJSON_MAX_DEPTH - max_depth`` one-element arrays, so orjson's own limit falls exactly at
    `max_depth`: the check costs one copy of the text, not a walk of the decoded data (and a short text with
    few brackets skips even that). Lone surrogate escapes, which orjson refuses and the stdlib accepts, go to
    the stdlib decoder after a bracket scan, since it recurses without a limit of its own."""
    depth = min(max_depth, ORJSON_MAX_DEPTH)
    pad = ORJSON_MAX_DEPTH - depth
    if len(text) <= depth or (len(text) < _COUNT_BELOW and text.count("[") + text.count("{") <= depth):
        pad = 0  # cannot be that deep; counting pays for itself only on short texts (NDJSON lines)
    try:
        value = orjson.loads(f"{'[' * pad}{text}{']' * pad}" if pad else text)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).split(":")[0]
        if "depth limit" in reason:
            raise _too_deep(depth) from None
        if pad and "surrogate" not in reason:
            reason = _bare_reason(text, exc.pos - pad, reason)
        if "surrogate" not in reason:
            raise ValueError(reason) from None
        if pad and raw_json_depth_exceeds(text, depth):
            raise _too_deep(depth) from None
        return json.loads(text)  # parsers clean the lone surrogates later
    for _ in range(pad):
        if not isinstance(value, list) or len(value) != 1:  # "1], [2": valid only inside the padding
            raise ValueError(_bare_reason(text, len(text), "not one JSON document"))
        value = value[0]
    return value


def _bare_reason(text: str, at: int, fallback: str) -> str:
    """The decoder's reason for `text` without the padding, which changes some messages ("expected ']'" where
    the text alone has "unexpected content after document"). The text alone fails at or before where the padded
    one did (`at`), so decoding a little past there is enough (the first line of an NDJSON file, not the whole
    file); only when that cut itself is what failed (a literal or number running past it) is the whole text
    decoded."""
    for end in (max(at, 0) + _LOOKAHEAD, len(text) + 1):
        try:
            orjson.loads(text[:end])
        except orjson.JSONDecodeError as bare:
            if bare.pos <= at or end > len(text):
                return str(bare).split(":")[0]
    return fallback


def _too_deep(depth: int) -> LimitExceeded:
    return LimitExceeded(f"JSON nests deeper than {depth} levels", setting="max_json_depth")


def zip_member_bound(file: BinaryIO) -> int:
    """At most how many entries ``zipfile.ZipFile(file)`` will build, read from the end-of-central-directory
    record before it builds them: it materialises every entry of the central directory at once, so a small
    archive can declare millions. The bound is the larger of the declared count and the number of entry
    signatures in the central directory (a record that under-declares still cannot parse more entries than
    that). 0 when no end record is found (zipfile will refuse the file)."""
    size = file.seek(0, io.SEEK_END)
    tail_start = max(0, size - _EOCD_SIZE - 0xFFFF)
    file.seek(tail_start)
    tail = file.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        return 0
    _, _, _, _, entries, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[at : at + _EOCD_SIZE])
    cd_end = tail_start + at
    locator = tail[at - _ZIP64_LOCATOR_SIZE : at] if at >= _ZIP64_LOCATOR_SIZE else b""
    if locator[:4] == b"PK\x06\x07":
        cd_end -= _ZIP64_LOCATOR_SIZE + _ZIP64_EOCD_SIZE
        file.seek(max(0, cd_end))
        record = file.read(_ZIP64_EOCD_SIZE)
        if len(record) == _ZIP64_EOCD_SIZE and record[:4] == b"PK\x06\x06":
            entries, cd_size = struct.unpack("<QQ", record[32:48])
    start = max(0, cd_end - cd_size)
    file.seek(start)
    signatures, carry, left = 0, b"", cd_end - start
    while left > 0:
        chunk = file.read(min(left, _CHUNK))
        if not chunk:
            break
        left -= len(chunk)
        window = carry + chunk
        signatures += window.count(b"PK\x01\x02")
        carry = window[-3:]
    return max(int(entries), signatures)
