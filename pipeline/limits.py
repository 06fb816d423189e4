"""Size, depth and count limits for everything this package reads: YAML files (manifests, sources.yaml,
publish.yaml, suites, prompts) and JSON documents.

YAML is checked on its event stream before anything is constructed, so an alias bomb ("billion laughs") or a
deeply nested document is refused in time linear in its bytes and never expanded. JSON depth is measured without
recursion, so a deep document is a clear error rather than a RecursionError in whatever walks it next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from pipeline.errors import LimitExceeded

try:  # the C parser when libyaml is there; the pure-Python one is the same grammar, slower
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int = 1024**2
    max_depth: int = 32
    max_aliases: int = 0

    @classmethod
    def from_settings(cls, settings: Any) -> YamlLimits:
        return cls(settings.max_yaml_bytes, settings.max_yaml_depth, settings.max_yaml_aliases)


def load_yaml(raw: bytes | str, *, what: str, limits: YamlLimits | None = None) -> Any:
    """Parse one YAML document after checking its size, nesting depth and alias count.

    Raises LimitExceeded (naming `what` and the setting) when a limit is passed and yaml.YAMLError /
    UnicodeDecodeError for text that is not YAML; callers turn both into their own one-line errors."""
    limits = limits or YamlLimits()
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > limits.max_bytes:
        raise LimitExceeded(f"{what} is {size} bytes, more than {limits.max_bytes}", setting="max_yaml_bytes")
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    depth = aliases = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > limits.max_depth:
                raise LimitExceeded(f"{what} nests deeper than {limits.max_depth} levels", setting="max_yaml_depth")
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise LimitExceeded(
                    f"{what} uses YAML aliases (*{event.anchor}); more than {limits.max_aliases} are refused",
                    setting="max_yaml_aliases",
                )
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


def raw_json_depth_exceeds(raw: bytes, max_depth: int) -> bool:
    """Does JSON text nest deeper than `max_depth`, judged from its brackets before any decoder recurses into
    it? Brackets inside strings are skipped (escapes honoured), so the count is exact for valid JSON."""
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > max_depth:
                return True
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return False
