"""Read an incident bundle (a directory or a .zip, possibly holding zips) into decoded documents, recognise
each by its content, and parse them per source.

A file that is not JSON/NDJSON, or JSON that no parser recognises, is listed as unrecognised (not fatal).
A file that looks like JSON but does not decode is quarantined with the decoder's reason, and so is every
bad NDJSON line: nothing is lost silently.

Reading is bounded by ``BundleLimits`` (the POSTMORTEM_MAX_* settings), because a bundle is input from
outside: the bundle is walked once with one file in memory at a time; every read stops one byte past what the
limits allow, whatever a zip header declares; zips inside zips are spooled to a temporary file. A file that
passes a limit is quarantined with a reason naming the setting, and so is a symbolic link, which is never
followed. Only a bundle that cannot be read at all raises BundleError.
"""

from __future__ import annotations

import errno
import heapq
import lzma
import os
import stat
import tempfile
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from pipeline.errors import BundleError, ConfigError, LimitExceeded
from pipeline.limits import BundleLimits, YamlLimits, load_yaml, loads_json, raw_json_depth_exceeds, zip_member_bound
from pipeline.models import IncidentManifest, ParseOutput, Quarantined, Source
from pipeline.settings import Settings, get_settings
from pipeline.sources.base import ParseContext, SourceDocument, SourceParser, excerpt
from pipeline.sources.registry import all_parsers, recognise

MANIFEST_NAMES = frozenset({"incident.yaml", "incident.yml"})
# Files that describe a bundle rather than hold source records: never parsed, never reported as unrecognised.
# gathered.json: what the sweep gathered (pipeline.gather); remotelink.json: a Jira issue's remote links, which have
# no time of their own and are read only to find the incident's other records.
META_NAMES = MANIFEST_NAMES | {"gold.yaml", "gold.yml", "README.md", "readme.md", "gathered.json", "remotelink.json"}
_SKIP_PARTS = frozenset({"__MACOSX", ".git", ".DS_Store"})
_JSON_START = (b"{", b"[")
_ZIP_MAGIC = b"PK\x03\x04"
_RATIO_FLOOR = 1024**2  # a member inflating to less than this is small whatever its ratio (JSON of one repeated value)
_READ_CHUNK = 1024**2
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block the walk
_OPEN_DIR = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
# What a damaged or hostile member raises from zipfile and its decompressors.
_MEMBER_ERRORS = (
    zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError, ValueError, zlib.error, lzma.LZMAError,
)  # fmt: skip


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


def load_bundle(path: Path | str, limits: Settings | BundleLimits | None = None) -> Bundle:
    """Read every file of the bundle within `limits` (default: the process settings); raise BundleError if the
    bundle is missing, unreadable or empty, ConfigError if its incident.yaml is invalid."""
    root = Path(path)
    if not root.exists():
        raise BundleError("bundle not found", root)
    if not isinstance(limits, BundleLimits):
        limits = BundleLimits.from_settings(limits or get_settings())
    bundle = Bundle(path=root, manifest=IncidentManifest())
    parsers = all_parsers()
    grouped: dict[Source, list[SourceDocument]] = defaultdict(list)
    manifests: list[tuple[str, bytes]] = []
    data_files = 0
    for name, raw in _Walk(limits, bundle.quarantined).bundle(root):
        base = PurePosixPath(name.split("!")[-1]).name
        if base in META_NAMES:
            if base in MANIFEST_NAMES and raw is not None:
                manifests.append((name, raw))
            continue
        data_files += 1
        if raw is None:  # not read: the walk quarantined it
            continue
        docs = _decode(name, raw, bundle.quarantined, limits.max_json_depth)
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
    bundle.manifest = _manifest(manifests, root, limits.yaml)
    if data_files == 0:
        raise BundleError("bundle holds no source files", root)
    bundle.documents = dict(grouped)
    return bundle


def parse_source(bundle: Bundle, source: Source) -> ParseOutput:
    """Parse the documents of one source (one Prefect gather task each, in the flow)."""
    parser = bundle.parsers[source]
    return parser.parse(bundle.documents[source], bundle.context())


class _ArchiveRefused(Exception):
    """A zip that cannot be opened: quarantined when it is a file of the bundle, BundleError when it is the bundle."""


class _Walk:
    """One pass over a bundle in sorted order, yielding (name, bytes) per file, or (name, None) for a file listed
    but not read: a meta file other than the manifest, or one this walk quarantined (a symbolic link, a file
    past a limit). It counts files and the bytes it has read or inflated. Past ``max_bundle_bytes`` the rest is
    quarantined by name without being read; past ``max_bundle_files`` one entry stands for the rest, which are
    neither read nor listed (listing them is the cost that limit bounds)."""

    def __init__(self, limits: BundleLimits, quarantine: list[Quarantined]) -> None:
        self.limits = limits
        self.quarantine = quarantine
        self.files = 0
        self.bytes = 0
        self.full: str | None = None  # the reason, once max_bundle_bytes is reached
        self.stopped = False  # max_bundle_files passed

    def bundle(self, root: Path) -> Iterator[tuple[str, bytes | None]]:
        if root.is_file():
            if not zipfile.is_zipfile(root):
                raise BundleError("a bundle must be a directory or a .zip archive", root)
            with root.open("rb") as handle:
                try:
                    yield from self._zip(handle, root.name, 0)
                except _ArchiveRefused as exc:
                    raise BundleError(str(exc), root) from None
            return
        top = os.open(root, _OPEN_DIR & ~os.O_NOFOLLOW)  # the bundle itself may be a link: its caller named it
        try:
            yield from self._directory(top, "")
        finally:
            os.close(top)

    def refuse(self, name: str, reason: str, setting: str | None = None) -> None:
        text = str(LimitExceeded(reason, setting=setting)) if setting else reason
        self.quarantine.append(Quarantined(source="unknown", file=name, position="/", reason=text))

    def _admit(self, name: str) -> bool:
        if self.stopped:
            return False
        self.files += 1
        if self.files > self.limits.max_bundle_files:
            self.stopped = True
            most = self.limits.max_bundle_files
            self.refuse(
                name, f"the bundle holds more than {most} files; this and the rest were not read", "max_bundle_files"
            )
            return False
        return True

    def _directory(self, dir_fd: int, prefix: str) -> Iterator[tuple[str, bytes | None]]:
        # At most max_bundle_files + 1 entries are kept (the first in name order): a folder of millions of
        # names costs a scan, not their list.
        most, seen = self.limits.max_bundle_files + 1, [0]

        def visible(scan: Iterator[os.DirEntry[str]]) -> Iterator[os.DirEntry[str]]:
            for entry in scan:
                if entry.name not in _SKIP_PARTS and not entry.name.startswith("."):
                    seen[0] += 1
                    yield entry

        with os.scandir(dir_fd) as scan:
            entries = heapq.nsmallest(most, visible(scan), key=lambda e: e.name)
        for entry in entries:
            if self.stopped:
                return
            name = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                try:
                    sub = os.open(entry.name, _OPEN_DIR, dir_fd=dir_fd)
                except OSError as exc:
                    if self._admit(name):
                        self.refuse(name, _unopenable(exc))
                        yield name, None
                    continue
                try:
                    yield from self._directory(sub, f"{name}/")
                finally:
                    os.close(sub)
            elif self._admit(name):
                yield from self._file(dir_fd, entry.name, name)
        if seen[0] > most and not self.stopped:  # only folders among the kept entries: the rest is past the cap
            self.stopped = True
            self.refuse(
                prefix or ".",
                f"a folder holds {seen[0]} entries, more than {most - 1}; those after {entries[-1].name} were not read",
                "max_bundle_files",
            )

    def _file(self, dir_fd: int, file_name: str, name: str) -> Iterator[tuple[str, bytes | None]]:
        if _is_meta(name) or self._full(name):
            yield name, None
            return
        try:  # O_NOFOLLOW: a link, even one swapped in since the listing, is refused here and never read
            fd = os.open(file_name, _OPEN_FILE, dir_fd=dir_fd)
        except OSError as exc:
            self.refuse(name, _unopenable(exc))
            yield name, None
            return
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                self.refuse(name, "not a regular file (a pipe, socket or device); not read")
                yield name, None
                return
            if handle.read(4) == _ZIP_MAGIC:
                yield from self._archive(handle, name, 0)
                return
            handle.seek(0)
            yield name, self._take(handle, name, info.st_size)

    def _archive(self, file: BinaryIO, name: str, depth: int) -> Iterator[tuple[str, bytes | None]]:
        try:
            yield from self._zip(file, name, depth)
        except _ArchiveRefused as exc:
            self.refuse(name, str(exc))
            yield name, None

    def _zip(self, file: BinaryIO, name: str, depth: int) -> Iterator[tuple[str, bytes | None]]:
        try:
            declared = zip_member_bound(file)
            if declared > self.limits.max_bundle_files:
                most = self.limits.max_bundle_files
                raise _ArchiveRefused(
                    str(
                        LimitExceeded(
                            f"zip archive declares {declared} members, more than {most}", setting="max_bundle_files"
                        )
                    )
                )
            file.seek(0)
            archive = zipfile.ZipFile(file)
        except _MEMBER_ERRORS as exc:
            raise _ArchiveRefused(f"unreadable zip archive ({exc})") from None
        with archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if self.stopped:
                    return
                parts = PurePosixPath(info.filename).parts
                if info.is_dir() or any(p in _SKIP_PARTS or p.startswith(".") for p in parts):
                    continue
                member = f"{name}!{info.filename}"
                if not self._admit(member):
                    return
                if _is_meta(member) or self._full(member):
                    yield member, None
                    continue
                raw = self._member(archive, info, member)
                if raw is None or raw[:4] != _ZIP_MAGIC:
                    yield member, raw
                    continue
                if depth >= self.limits.max_zip_depth:
                    most = self.limits.max_zip_depth
                    self.refuse(
                        member, f"a zip nested more than {most} levels inside zips; not opened", "max_zip_depth"
                    )
                    yield member, None
                    continue
                with tempfile.TemporaryFile() as spool:
                    spool.write(raw)
                    del raw  # the inflated archive lives on disk while its members are read
                    yield from self._archive(spool, member, depth + 1)

    def _member(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, member: str) -> bytes | None:
        if info.flag_bits & 0x1:
            self.refuse(member, "encrypted zip member; not read")
            return None
        ratio_cap = max(info.compress_size * self.limits.max_compression_ratio, _RATIO_FLOOR)
        try:
            with archive.open(info) as stream:
                return self._take(stream, member, info.file_size, (ratio_cap, info.compress_size))
        except _MEMBER_ERRORS as exc:
            self.refuse(member, f"unreadable zip member ({exc})")
            return None

    def _take(self, stream: IO[bytes], name: str, declared: int, ratio: tuple[int, int] | None = None) -> bytes | None:
        """Read one file or member within the limits, trusting `declared` (its size on disk or in a zip header)
        only to refuse early and to size the first read; None when refused (quarantined here)."""
        limits = self.limits
        room = limits.max_bundle_bytes - self.bytes
        ratio_cap = ratio[0] if ratio else limits.max_file_bytes
        bound = min(limits.max_file_bytes, ratio_cap, room)
        raw = b"" if declared > bound else _read_at_most(stream, bound, declared)
        size = max(declared, len(raw))
        if size > limits.max_file_bytes:
            self.refuse(name, f"{size} bytes or more, more than {limits.max_file_bytes} per file", "max_file_bytes")
        elif ratio and size > ratio_cap:
            self.refuse(name, _ratio_reason(size, ratio[1], limits.max_compression_ratio), "max_compression_ratio")
        elif size > room:
            self.full = str(
                LimitExceeded(
                    f"the bundle expands to more than {limits.max_bundle_bytes} bytes; not read",
                    setting="max_bundle_bytes",
                )
            )
            self.refuse(name, self.full)
        else:
            self.bytes += len(raw)
            return raw
        return None

    def _full(self, name: str) -> bool:
        if self.full is not None:
            self.refuse(name, self.full)
        return self.full is not None


def _read_at_most(stream: IO[bytes], limit: int, expected: int) -> bytes:
    """At most limit + 1 bytes: one read when `expected` (the declared size) is honest, chunks when the stream
    holds more than it declared, so a lying header costs no more memory than the limit."""
    first = stream.read(min(limit, expected) + 1)
    if len(first) <= min(limit, expected) or len(first) > limit:
        return first
    parts, got = [first], len(first)
    while got <= limit:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _ratio_reason(size: int, compressed: int, ratio: int) -> str:
    return f"zip member inflates {size} bytes or more from {compressed}, more than {ratio}:1"


def _unopenable(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.EMLINK):  # what O_NOFOLLOW reports for a link (EMLINK on FreeBSD)
        return "symbolic link not followed"
    return f"unreadable ({exc.strerror})"


def _is_meta(name: str) -> bool:
    """A meta file other than the manifest: listed, never read."""
    base = PurePosixPath(name.split("!")[-1]).name
    return base in META_NAMES and base not in MANIFEST_NAMES


def _manifest(candidates: list[tuple[str, bytes]], root: Path, limits: YamlLimits) -> IncidentManifest:
    if not candidates:
        return IncidentManifest(id=root.stem)
    name, raw = min(candidates, key=lambda c: c[0].count("/"))
    try:
        data = load_yaml(raw, what=name, limits=limits)
    except LimitExceeded as exc:
        raise ConfigError(str(exc)) from None
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


def _decode(name: str, raw: bytes, quarantine: list[Quarantined], max_depth: int) -> list[SourceDocument] | None:
    """Decode one file into documents; None when it is not JSON-like at all (unrecognised)."""
    head = raw.lstrip()[:1]
    if raw.startswith(b"\xef\xbb\xbf"):
        head = raw[3:].lstrip()[:1]
    if head not in _JSON_START:
        return None
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        return [SourceDocument(path=name, data=loads_json(text, max_depth))]
    except LimitExceeded as too_deep:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2 or not raw_json_depth_exceeds(lines[0], max_depth):  # one deep document, not NDJSON
            quarantine.append(_bad_file(name, "/", str(too_deep), text))
            return []
        return _decode_ndjson(name, text, quarantine, max_depth)
    except ValueError as whole_error:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2:
            quarantine.append(_bad_file(name, "/", f"malformed JSON ({whole_error})", text))
            return []
        return _decode_ndjson(name, text, quarantine, max_depth)


def _decode_ndjson(name: str, text: str, quarantine: list[Quarantined], max_depth: int) -> list[SourceDocument]:
    docs: list[SourceDocument] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            docs.append(SourceDocument(path=name, data=loads_json(line, max_depth), position=f"line {number}"))
        except LimitExceeded as exc:
            quarantine.append(_bad_file(name, f"line {number}", str(exc), line))
        except ValueError as exc:
            quarantine.append(_bad_file(name, f"line {number}", f"malformed NDJSON line ({exc})", line))
    return docs


def _bad_file(name: str, position: str, reason: str, text: str) -> Quarantined:
    return Quarantined(source="unknown", file=name, position=position, reason=reason, excerpt=excerpt(text[:200]))
