"""Read an incident bundle (a directory or a .zip, possibly holding zips) into decoded documents, recognise
each by its content, and parse them per source.

A file that is not JSON/NDJSON, or JSON that no parser recognises, is listed as unrecognised (not fatal).
A file that looks like JSON but does not decode is quarantined with the decoder's reason, and so is every
bad NDJSON line: nothing is lost silently.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import yaml
from pydantic import ValidationError

from pipeline.errors import BundleError, ConfigError
from pipeline.models import IncidentManifest, ParseOutput, Quarantined, Source
from pipeline.sources.base import ParseContext, SourceDocument, SourceParser, excerpt
from pipeline.sources.registry import all_parsers, recognise

MANIFEST_NAMES = frozenset({"incident.yaml", "incident.yml"})
# Files that describe a bundle rather than hold source records: never parsed, never reported as unrecognised.
# gathered.json: what the sweep gathered (pipeline.gather); remotelink.json: a Jira issue's remote links, which have
# no time of their own and are read only to find the incident's other records.
META_NAMES = MANIFEST_NAMES | {"gold.yaml", "gold.yml", "README.md", "readme.md", "gathered.json", "remotelink.json"}
MAX_MEMBER_BYTES = 512 * 1024 * 1024  # refuse zip members that would inflate beyond this
_SKIP_PARTS = frozenset({"__MACOSX", ".git", ".DS_Store"})
_JSON_START = (b"{", b"[")


@dataclass
class Bundle:
    """A loaded bundle: its manifest, documents grouped by the parser that recognised them, and leftovers."""

    path: Path
    manifest: IncidentManifest
    documents: dict[Source, list[SourceDocument]] = field(default_factory=dict)
    unrecognised: list[str] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    parsers: dict[Source, SourceParser] = field(default_factory=dict)

    @property
    def incident_id(self) -> str:
        return self.manifest.id or self.path.stem

    @property
    def sources(self) -> list[Source]:
        return sorted(self.documents, key=list(Source).index)

    def context(self) -> ParseContext:
        return ParseContext(
            incident_id=self.incident_id, default_tz=_zone(self.manifest), channel=self.manifest.channel
        )


def _zone(manifest: IncidentManifest) -> ZoneInfo:
    name = manifest.timezone or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"incident.yaml timezone {name!r} is not an IANA time zone name") from None


def load_bundle(path: Path | str) -> Bundle:
    """Read every file of the bundle; raise BundleError if the bundle is missing, unreadable or empty."""
    root = Path(path)
    if not root.exists():
        raise BundleError("bundle not found", root)
    files = list(_walk(root))
    manifest = _manifest(files, root)
    bundle = Bundle(path=root, manifest=manifest)
    parsers = all_parsers()
    grouped: dict[Source, list[SourceDocument]] = defaultdict(list)
    data_files = 0
    for name, raw in files:
        if PurePosixPath(name.split("!")[-1]).name in META_NAMES:
            continue
        data_files += 1
        docs = _decode(name, raw, bundle.quarantined)
        if docs is None:
            bundle.unrecognised.append(name)
            continue
        recognised_any = False
        for doc in docs:
            parser = recognise(doc, parsers)
            if parser is None:
                continue
            recognised_any = True
            grouped[parser.source].append(doc)
            bundle.parsers[parser.source] = parser
        if not recognised_any and docs:
            bundle.unrecognised.append(name)
    if data_files == 0:
        raise BundleError("bundle holds no source files", root)
    bundle.documents = dict(grouped)
    return bundle


def parse_source(bundle: Bundle, source: Source) -> ParseOutput:
    """Parse the documents of one source (one Prefect gather task each, in the flow)."""
    parser = bundle.parsers[source]
    return parser.parse(bundle.documents[source], bundle.context())


def _walk(root: Path) -> Iterator[tuple[str, bytes]]:
    if root.is_file():
        if not zipfile.is_zipfile(root):
            raise BundleError("a bundle must be a directory or a .zip archive", root)
        yield from _walk_zip(root.name, root.read_bytes())
        return
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root)
        if not file.is_file() or any(part in _SKIP_PARTS or part.startswith(".") for part in rel.parts):
            continue
        raw = file.read_bytes()
        if raw[:4] == b"PK\x03\x04":
            yield from _walk_zip(rel.as_posix(), raw)
        else:
            yield rel.as_posix(), raw


def _walk_zip(name: str, raw: bytes) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as exc:
        raise BundleError(f"unreadable zip archive ({exc})", name) from None
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or any(p in _SKIP_PARTS or p.startswith(".") for p in parts):
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                raise BundleError(f"zip member {info.filename} inflates to {info.file_size} bytes", name)
            member = archive.read(info)
            if member[:4] == b"PK\x03\x04":
                yield from _walk_zip(f"{name}!{info.filename}", member)
            else:
                yield f"{name}!{info.filename}", member


def _manifest(files: list[tuple[str, bytes]], root: Path) -> IncidentManifest:
    candidates = [(n, raw) for n, raw in files if PurePosixPath(n.split("!")[-1]).name in MANIFEST_NAMES]
    if not candidates:
        return IncidentManifest(id=root.stem)
    name, raw = min(candidates, key=lambda c: c[0].count("/"))
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must be a mapping of fields (id, title, severity, ...)")
    data = {k: (str(v) if k == "id" and v is not None else v) for k, v in data.items()}
    try:
        manifest = IncidentManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{name}: {where}: {first['msg']}") from None
    return manifest if manifest.id else manifest.model_copy(update={"id": root.stem})


def _decode(name: str, raw: bytes, quarantine: list[Quarantined]) -> list[SourceDocument] | None:
    """Decode one file into documents; None when it is not JSON-like at all (unrecognised)."""
    head = raw.lstrip()[:1]
    if raw.startswith(b"\xef\xbb\xbf"):
        head = raw[3:].lstrip()[:1]
    if head not in _JSON_START:
        return None
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        return [SourceDocument(path=name, data=_loads(text))]
    except ValueError as whole_error:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2:
            quarantine.append(_bad_file(name, "/", f"malformed JSON ({whole_error})", text))
            return []
        return _decode_ndjson(name, text, quarantine)


def _decode_ndjson(name: str, text: str, quarantine: list[Quarantined]) -> list[SourceDocument]:
    docs: list[SourceDocument] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            docs.append(SourceDocument(path=name, data=_loads(line), position=f"line {number}"))
        except ValueError as exc:
            quarantine.append(_bad_file(name, f"line {number}", f"malformed NDJSON line ({exc})", line))
    return docs


def _loads(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise ValueError(str(exc).split(":")[0]) from None
        # orjson rejects lone surrogate escapes that the stdlib accepts; parsers clean the text later.
        return json.loads(text)


def _bad_file(name: str, position: str, reason: str, text: str) -> Quarantined:
    return Quarantined(source="unknown", file=name, position=position, reason=reason, excerpt=excerpt(text[:200]))
