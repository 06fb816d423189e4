"""Scheduled drafting: find incidents closed since the last sweep, snapshot their inputs, draft the new or
changed ones, write the files atomically and record everything in the ledger.

A sweep is safe to stop at any point and to run again:

* one sweep at a time per home (an OS file lock, released when the process dies);
* snapshots land in ``HOME/snapshots/<incident>/<hash>/`` by writing a temporary directory and renaming it;
  draft files are written by ``write_atomic``; leftovers of a stopped sweep (``.tmp-*`` directories, ``.*.tmp``
  files) are removed when the next sweep starts;
* the ledger row goes ``pending`` before drafting and ``drafted`` (with the draft's audit row, in one
  transaction) after the files are written, so a stopped sweep re-drafts the same version — never a second;
* an incident whose inputs hash to what the ledger already drafted is ``unchanged`` and costs one snapshot;
* one failing incident is recorded (``failed``, short error, attempts + 1) and retried by later sweeps
  (after ``retry_backoff_s * 2**(attempts-1)``, at most ``max_attempts`` times for the same inputs) without
  holding up the others; a source that cannot even list its incidents keeps its cursor where it was.

Drafts go to ``HOME/drafts/<incident>/v<N>.md`` and ``.json`` (N grows when the inputs change) plus
``latest.md``/``latest.json``. ``latest.md`` is the copy people edit: a new version is merged into it by
``pipeline.redraft`` (edited sections kept, with the pipeline's update as a suggestion).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import stat
import time
import uuid
import zipfile
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

import yaml
from pydantic import BaseModel, ConfigDict, Field

from pipeline import service
from pipeline.atomic import fsync_dir, write_atomic
from pipeline.draft.base import Drafter
from pipeline.errors import BundleError, ConfigError, LimitExceeded, PostmortemError
from pipeline.ledger import IncidentRecord, Ledger, short_error
from pipeline.limits import load_yaml
from pipeline.markers import Markers
from pipeline.paths import draft_folder, snapshot_folder
from pipeline.redraft import redraft
from pipeline.render import render_json, render_markdown
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.index import Index

EPOCH = datetime.fromtimestamp(0, UTC)
DEFAULT_RANK = 5  # a source's optional ``rank``: lower goes first within a sweep (see ``sweep``)
_SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".lock")
_TMP_PREFIX = ".tmp-"
_LIMIT_DEFAULTS: dict[str, int] = {
    name: Settings.model_fields[name].default
    for name in ("max_bundle_files", "max_bundle_bytes", "max_file_bytes", "max_yaml_bytes")
}


class SweepBusyError(PostmortemError):
    """Another sweep holds this home's sweep lock."""


# --- sources ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosedIncident:
    """An incident a source reports as closed: its id (the ledger key), the source's own reference for it and
    when it closed."""

    incident_id: str
    ref: str
    closed_at: datetime
    source: str


@runtime_checkable
class IncidentSource(Protocol):
    """Where closed incidents come from. ``snapshot`` returns the incident's bundle as relative path -> bytes;
    its content hash identifies the inputs (same bytes, same draft). A top-level ``incident.yaml`` in it may
    list ``aliases``: the incident's ids in other tools, which the ledger then maps onto this incident."""

    name: str

    def closed_since(self, since: datetime) -> list[ClosedIncident]: ...

    def snapshot(self, incident: ClosedIncident) -> dict[str, bytes]: ...


def _visible(rel: PurePosixPath | Path) -> bool:
    return not any(part.startswith(".") or part == "__MACOSX" for part in rel.parts)


class LandingSource:
    """Bundles (directories or .zip files) dropped into a landing directory are closed incidents.

    Drop a bundle by renaming it into place (copy to ``.name`` or ``name.part`` first): names starting with a
    dot or ending in .tmp/.part/.partial are ignored. The closing time is the newest modification time in the
    bundle (modification or inode-change time, so a copy that keeps old mtimes counts when it lands), and
    adding a late export to a bundle makes it show up again (and, with new bytes, re-drafted). The
    incident id is ``id`` from the bundle's top-level incident.yaml, else the bundle's name (like
    ``Bundle.incident_id``).

    Links are never followed: a bundle that is, or holds, a symbolic link (to a file outside it, or to nothing)
    or anything but regular files and folders is refused when it is snapshotted, with the link named, so it fails
    on its own in the ledger and the sweep report while the other bundles are drafted. Listing never fails for
    one bundle's sake (it reads only ``lstat``). ``max_files``/``max_bytes``/``max_file_bytes`` bound what one
    snapshot may read into memory (POSTMORTEM_MAX_BUNDLE_FILES, _MAX_BUNDLE_BYTES, _MAX_FILE_BYTES)."""

    def __init__(
        self,
        root: Path,
        name: str = "landing",
        *,
        max_files: int = _LIMIT_DEFAULTS["max_bundle_files"],
        max_bytes: int = _LIMIT_DEFAULTS["max_bundle_bytes"],
        max_file_bytes: int = _LIMIT_DEFAULTS["max_file_bytes"],
    ) -> None:
        self.root = root
        self.name = name
        self.limits = _ReadLimits(max_files, max_bytes, max_file_bytes)

    @classmethod
    def from_settings(cls, settings: Settings) -> LandingSource:
        return cls(
            settings.landing,
            max_files=settings.max_bundle_files,
            max_bytes=settings.max_bundle_bytes,
            max_file_bytes=settings.max_file_bytes,
        )

    def _entries(self) -> Iterator[Path]:
        if not os.path.lexists(self.root):
            return  # nothing has landed yet
        if not stat.S_ISDIR(self.root.lstat().st_mode):
            raise ConfigError(f"the landing directory {self.root} is not a folder (POSTMORTEM_LANDING_DIR)")
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or entry.name.endswith(_SKIP_SUFFIXES):
                continue
            try:
                mode = entry.lstat().st_mode
            except OSError:
                continue  # gone since the directory was listed
            if stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
                yield entry  # a link is listed so that its snapshot refuses it by name, loudly
            elif stat.S_ISREG(mode) and _is_zip(entry):
                yield entry

    def closed_since(self, since: datetime) -> list[ClosedIncident]:
        found: list[ClosedIncident] = []
        for entry in self._entries():
            closed_at = datetime.fromtimestamp(_newest_change(entry), UTC)
            if closed_at >= since:
                found.append(ClosedIncident(_landing_id(entry), entry.name, closed_at, self.name))
        return found

    def snapshot(self, incident: ClosedIncident) -> dict[str, bytes]:
        ref = incident.ref
        entry = self.root / ref
        if PurePosixPath(ref).name != ref or ref in ("", ".", "..") or not os.path.lexists(entry):
            raise BundleError("landing bundle not found", entry)
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise BundleError(
                f"landing bundle is a symbolic link (to {entry.readlink()}); links are not followed", entry
            )
        if stat.S_ISREG(mode):
            return {entry.name: _read_regular(entry, None, entry.name, self.limits.max_file_bytes, entry)}
        files = _read_tree(entry, self.limits)
        if not files:
            raise BundleError("landing bundle holds no files", entry)
        return files


@dataclass(frozen=True)
class _ReadLimits:
    max_files: int
    max_bytes: int
    max_file_bytes: int


def _is_zip(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _read_regular(path: Path | str, dir_fd: int | None, shown: str, max_bytes: int, bundle: Path) -> bytes:
    """The bytes of a regular file, opened without following a link (O_NOFOLLOW) and without blocking on a FIFO
    swapped in after it was listed; at most ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BundleError(
                f"landing bundle holds a symbolic link ({shown}); links are not followed", bundle
            ) from None
        raise BundleError(f"landing bundle file {shown} cannot be read ({exc.strerror})", bundle) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"landing bundle holds {shown}, which is not a regular file", bundle)
        if info.st_size > max_bytes:
            raise LimitExceeded(
                f"{bundle.name}/{shown} is {info.st_size} bytes, more than {max_bytes}", setting="max_file_bytes"
            )
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while it was read
        raise LimitExceeded(f"{bundle.name}/{shown} is more than {max_bytes} bytes", setting="max_file_bytes")
    return data


_Walk = Generator[tuple[str, list[str], list[str], int], None, None]


def _read_tree(entry: Path, limits: _ReadLimits) -> dict[str, bytes]:
    """Every visible regular file under the bundle folder ``entry``, keyed ``<bundle>/<relative path>``.

    os.fwalk hands out each folder as an open descriptor and never descends through a link; every name is
    ``lstat``-ed relative to that descriptor and every file opened with O_NOFOLLOW, so a link swapped in between
    listing and reading is refused too. Unreadable folders fail the bundle (fwalk would skip them silently)."""

    def refuse(exc: OSError) -> None:
        raise BundleError(f"landing bundle folder cannot be read ({exc.strerror}: {exc.filename})", entry)

    files: dict[str, bytes] = {}
    total = 0
    walk = cast(_Walk, os.fwalk(entry, follow_symlinks=False, onerror=refuse))  # a generator: it can be closed
    with closing(walk):  # closes the folder descriptors at once when a refusal leaves the walk early
        for dirpath, dirnames, filenames, dir_fd in walk:
            rel_dir = PurePosixPath(Path(dirpath).relative_to(entry).as_posix())
            dirnames[:] = sorted(d for d in dirnames if _visible(rel_dir / d))
            for name in sorted([*dirnames, *(f for f in filenames if _visible(rel_dir / f))]):
                rel = (rel_dir / name).as_posix()
                try:
                    mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
                except OSError as exc:
                    raise BundleError(f"landing bundle entry {rel} cannot be read ({exc.strerror})", entry) from None
                if stat.S_ISLNK(mode):
                    target = os.readlink(name, dir_fd=dir_fd)
                    raise BundleError(
                        f"landing bundle holds a symbolic link ({rel} -> {target}); links are not followed", entry
                    )
                if stat.S_ISDIR(mode):
                    continue
                if not stat.S_ISREG(mode):
                    raise BundleError(f"landing bundle holds {rel}, which is not a regular file", entry)
                if len(files) >= limits.max_files:
                    raise LimitExceeded(
                        f"landing bundle {entry.name} holds more than {limits.max_files} files",
                        setting="max_bundle_files",
                    )
                data = _read_regular(name, dir_fd, rel, limits.max_file_bytes, entry)
                total += len(data)
                if total > limits.max_bytes:
                    raise LimitExceeded(
                        f"landing bundle {entry.name} holds more than {limits.max_bytes} bytes",
                        setting="max_bundle_bytes",
                    )
                files[f"{entry.name}/{rel}"] = data
    return files


def _changed_at(path: Path | str, dir_fd: int | None = None) -> float:
    info = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    return max(info.st_mtime, info.st_ctime)  # ctime: a copy that preserved old mtimes, or a rename, is news


def _newest_change(entry: Path) -> float:
    """The newest change under ``entry`` from ``lstat`` alone: a link (broken or not) counts as itself, and an
    entry that vanishes or cannot be read is passed over — the snapshot names what is wrong with the bundle."""
    newest = _changed_at(entry)
    if not stat.S_ISDIR(entry.lstat().st_mode):
        return newest
    for _dirpath, dirnames, filenames, dir_fd in os.fwalk(entry, follow_symlinks=False):
        for name in (*dirnames, *filenames):
            try:
                newest = max(newest, _changed_at(name, dir_fd))
            except OSError:
                continue
    return newest


def _landing_id(entry: Path) -> str:
    """``id`` from the bundle's top-level manifest, read without following links and within the YAML limits;
    any problem falls back to the bundle's name (the draft step, or the snapshot, reports the problem)."""
    raw: bytes | None = None
    limit = _LIMIT_DEFAULTS["max_yaml_bytes"]
    try:
        mode = entry.lstat().st_mode
        if stat.S_ISDIR(mode):
            for name in ("incident.yaml", "incident.yml"):
                if os.path.lexists(entry / name):
                    raw = _read_regular(entry / name, None, name, limit, entry)
                    break
        elif stat.S_ISREG(mode):
            with zipfile.ZipFile(entry) as archive:
                members = sorted(
                    (
                        m
                        for m in archive.infolist()
                        if PurePosixPath(m.filename).name in ("incident.yaml", "incident.yml")
                    ),
                    key=lambda m: m.filename.count("/"),
                )
                if members and members[0].filename.count("/") <= 1 and members[0].file_size <= limit:
                    with archive.open(members[0]) as member:
                        raw = member.read(limit + 1)
        data = load_yaml(raw, what=f"{entry.name} manifest") if raw and len(raw) <= limit else None
    except (OSError, PostmortemError, zipfile.BadZipFile, yaml.YAMLError, UnicodeDecodeError, ValueError):
        data = None  # the draft step will report the bad manifest; the id falls back to the name
    if isinstance(data, dict) and data.get("id") is not None:
        return str(data["id"])
    return entry.stem


# --- snapshots ----------------------------------------------------------------------------------------------


def snapshot_hash(files: Mapping[str, bytes]) -> str:
    """sha256 over the sorted (path, size, bytes) of a snapshot: the identity of an incident's inputs."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(name.encode("utf-8") + b"\x00" + str(len(data)).encode() + b"\x00")
        digest.update(data)
    return digest.hexdigest()


def _safe_member(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or any(p in ("", ".", "..") for p in rel.parts) or "\\" in name:
        raise BundleError(f"unsafe path in snapshot: {name!r}")
    return rel


def store_snapshot(home: Path, incident_id: str, digest: str, files: Mapping[str, bytes]) -> Path:
    """Write the snapshot to a temporary directory and rename it into place: the final directory is complete
    or absent. An existing final directory is a complete earlier copy (rename is atomic) and is reused."""
    parent = snapshot_folder(home, incident_id)
    final = parent / digest
    if final.is_dir():
        return final
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f"{_TMP_PREFIX}{digest[:12]}-{uuid.uuid4().hex[:8]}"
    try:
        for name, data in files.items():
            target = tmp / _safe_member(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another writer finished the same snapshot first
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _bundle_root(snapshot_dir: Path) -> Path:
    """A snapshot holding one directory or one zip is that bundle (so a bundle without incident.yaml keeps
    its name as its id); otherwise the snapshot directory itself is the bundle."""
    entries = [e for e in snapshot_dir.iterdir() if not e.name.startswith(".")]
    return entries[0] if len(entries) == 1 and (entries[0].is_dir() or entries[0].suffix == ".zip") else snapshot_dir


def clean_partials(home: Path) -> int:
    """Remove what a stopped sweep left half-written: snapshot temp dirs and write_atomic temp files."""
    removed = 0
    snapshots = home / "snapshots"
    if snapshots.is_dir():
        for tmp in snapshots.glob(f"*/{_TMP_PREFIX}*"):
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
    drafts = home / "drafts"
    if drafts.is_dir():
        for tmp in drafts.glob("*/.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


@contextmanager
def sweep_lock(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".sweep.lock").open("a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepBusyError(f"another sweep is running on {home}") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- the sweep ------------------------------------------------------------------------------------------------


class SweepReport(BaseModel):
    """What one sweep did. ``retried`` counts failed/stopped incidents picked up again from the ledger."""

    model_config = ConfigDict(extra="forbid")

    new: int = 0
    redrafted: int = 0
    unchanged: int = 0
    failed: int = 0
    retried: int = 0
    exhausted: int = Field(0, description="Failed too often with the same inputs; left for a person.")
    drafted: list[str] = Field(default_factory=list)
    linked: dict[str, str] = Field(
        default_factory=dict, description="Closed records that are another incident's alias: alias -> incident."
    )
    failures: dict[str, str] = Field(default_factory=dict)
    source_errors: dict[str, str] = Field(default_factory=dict)
    edits_kept: dict[str, list[str]] = Field(default_factory=dict, description="Sections of latest.md kept.")
    cleaned_partials: int = 0
    wall_s: float = 0.0

    def summary(self) -> str:
        return (
            f"new {self.new} · redrafted {self.redrafted} · unchanged {self.unchanged} · failed {self.failed}"
            f" (retried {self.retried}, exhausted {self.exhausted})"
            + (f" · {len(self.linked)} part of another incident" if self.linked else "")
            + f" in {self.wall_s:.1f}s"
        )


DrafterFactory = Callable[[Settings], Drafter]


def _default_drafter(settings: Settings) -> Drafter:
    return service.make_drafter(settings)


def sweep(
    settings: Settings,
    sources: Sequence[IncidentSource],
    *,
    drafter_factory: DrafterFactory = _default_drafter,
    index: bool = True,
    max_attempts: int = 5,
    retry_backoff_s: float = 0.0,
    overlap_s: float = 60.0,
    on_drafted: Callable[[str, int], None] | None = None,
) -> SweepReport:
    """One pass over every source (see the module docstring). ``overlap_s`` re-lists a little before the last
    sweep's start to absorb clock and mtime granularity — harmless, since unchanged inputs are skipped."""
    began = time.perf_counter()
    report = SweepReport()
    home = settings.home
    with sweep_lock(home), Ledger.for_home(home) as ledger:
        report.cleaned_partials = clean_partials(home)
        by_name = {source.name: source for source in sources}
        work: dict[str, tuple[IncidentSource, ClosedIncident]] = {}
        listed: list[tuple[str, datetime]] = []
        for source in sources:
            started = datetime.now(UTC)
            last = ledger.last_success(source.name)
            since = last - timedelta(seconds=overlap_s) if last else EPOCH
            try:
                closed = source.closed_since(since)
            except Exception as exc:  # noqa: BLE001 - any source failure is recorded; other sources go on
                ledger.record_source_error(source.name, exc)
                report.source_errors[source.name] = short_error(exc)
                continue
            listed.append((source.name, started))
            for listed_incident in closed:
                owner, incident = _primary(ledger, by_name, source, listed_incident, report)
                current = work.get(incident.incident_id)
                if current is None or incident.closed_at > current[1].closed_at:
                    work[incident.incident_id] = (owner, incident)
        retry_ids: set[str] = set()
        for record in ledger.due(max_attempts=max_attempts):
            retry_ids.add(record.incident_id)
            retry_owner = by_name.get(record.source)
            if record.incident_id not in work and retry_owner is not None:
                closed_at = record.closed_at or record.first_seen_at
                work[record.incident_id] = (
                    retry_owner,
                    ClosedIncident(record.incident_id, record.ref, closed_at, retry_owner.name),
                )
        runner = _Runner(settings, ledger, report, drafter_factory, index, max_attempts, retry_backoff_s)
        # Hubs first: a paging incident links its channel and ticket more often than the reverse, so it claims
        # them (as aliases) before a ticket closed in the same sweep could become a second draft of one outage.
        for incident_id in sorted(work, key=lambda i: (getattr(work[i][0], "rank", DEFAULT_RANK), i)):
            source, incident = work[incident_id]
            claimed = _claimed_by(ledger, by_name, incident_id)
            if claimed is not None:  # gathered by an incident earlier in this sweep
                report.linked[incident_id] = claimed[0].incident_id
                continue
            if incident_id in retry_ids:
                report.retried += 1
            outcome = runner.run(source, incident)
            if outcome is not None and on_drafted is not None:
                on_drafted(incident_id, outcome)
        for name, started in listed:
            ledger.record_sweep(name, started)
    report.wall_s = round(time.perf_counter() - began, 3)
    return report


def _primary(
    ledger: Ledger,
    by_name: Mapping[str, IncidentSource],
    source: IncidentSource,
    incident: ClosedIncident,
    report: SweepReport,
) -> tuple[IncidentSource, ClosedIncident]:
    """A closed record that an earlier gather recorded as another incident's alias is that incident: it is
    gathered again (through the source and ref that own it, with its first closing time, so the snapshot window
    stays put) instead of becoming a second draft of the same outage."""
    claimed = _claimed_by(ledger, by_name, incident.incident_id)
    if claimed is None:
        return source, incident
    record, owner = claimed
    report.linked[incident.incident_id] = record.incident_id
    return owner, ClosedIncident(record.incident_id, record.ref, record.closed_at or incident.closed_at, owner.name)


def _claimed_by(
    ledger: Ledger, by_name: Mapping[str, IncidentSource], incident_id: str
) -> tuple[IncidentRecord, IncidentSource] | None:
    """The incident that claimed ``incident_id`` as an alias, with the configured source that owns it; None when
    it is nobody's alias, or its owner's source is no longer configured (then it is drafted on its own)."""
    primary = ledger.primary_of(incident_id)
    record = ledger.get(primary) if primary != incident_id else None
    owner = by_name.get(record.source) if record is not None else None
    return (record, owner) if record is not None and owner is not None else None


def manifest_aliases(files: Mapping[str, bytes]) -> list[str]:
    """``aliases`` from the incident.yaml of a snapshot's bundle — at the top, or in its one top-level folder
    (a landed bundle) — or none when absent or unreadable."""
    tops = {name.split("/", 1)[0] for name in files}
    prefix = f"{next(iter(tops))}/" if len(tops) == 1 and not any("/" not in n for n in files) else ""
    raw = next((files[f"{prefix}{n}"] for n in ("incident.yaml", "incident.yml") if f"{prefix}{n}" in files), None)
    if raw is None:
        return []
    try:
        data = load_yaml(raw, what="incident.yaml")
    except (UnicodeDecodeError, yaml.YAMLError, PostmortemError):
        return []  # the draft step reports a bad manifest
    aliases = data.get("aliases") if isinstance(data, dict) else None
    return [str(a) for a in aliases if isinstance(a, str | int)] if isinstance(aliases, list) else []


class _Runner:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        report: SweepReport,
        drafter_factory: DrafterFactory,
        index: bool,
        max_attempts: int,
        retry_backoff_s: float,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.report = report
        self.drafter_factory = drafter_factory
        self.use_index = index
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self._index: Index | None = None
        self.key = service.section_key(settings)  # signs the section markers of every draft this sweep writes

    def _fail(self, incident: ClosedIncident, exc: BaseException, attempts: int) -> None:
        backoff = self.retry_backoff_s * 2 ** max(attempts, 0)
        self.ledger.mark_failed(
            incident.incident_id,
            exc,
            source=incident.source,
            ref=incident.ref,
            closed_at=incident.closed_at,
            retry_after=timedelta(seconds=backoff),
        )
        self.report.failed += 1
        self.report.failures[incident.incident_id] = short_error(exc)

    def run(self, source: IncidentSource, incident: ClosedIncident) -> int | None:
        """Snapshot, skip or draft one incident; returns the version drafted, None otherwise. Never raises for
        the incident's own failures (they are recorded)."""
        before = self.ledger.get(incident.incident_id)
        attempts = before.attempts if before else 0
        try:
            files = source.snapshot(incident)
            digest = snapshot_hash(files)
            self.ledger.add_aliases(incident.incident_id, manifest_aliases(files))
        except Exception as exc:  # noqa: BLE001 - one incident's failure must not stop the sweep
            self._fail(incident, exc, attempts)
            return None
        if before is not None and before.drafted_hash == digest:
            if before.status != "drafted":  # a later listing or attempt failed, but these inputs are drafted
                self.ledger.restore_drafted(incident.incident_id)
            self.report.unchanged += 1
            return None
        if (
            before is not None
            and before.status == "failed"
            and before.snapshot_hash == digest
            and before.attempts >= self.max_attempts
        ):
            self.report.exhausted += 1
            return None
        try:
            snapshot_dir = store_snapshot(self.settings.home, incident.incident_id, digest, files)
            record = self.ledger.begin(
                incident.incident_id,
                source=incident.source,
                ref=incident.ref,
                snapshot_hash=digest,
                closed_at=incident.closed_at,
            )
            self._draft(record, snapshot_dir, before)
        except Exception as exc:  # noqa: BLE001 - recorded as failed and retried by a later sweep
            self._fail(incident, exc, attempts if before and before.snapshot_hash == digest else 0)
            return None
        if record.version > 1:
            self.report.redrafted += 1
        else:
            self.report.new += 1
        self.report.drafted.append(incident.incident_id)
        return record.version

    def _index_handle(self) -> Index:
        if self._index is None:
            self._index = service.open_index(self.settings, create=True)
        return self._index

    def _draft(self, record: IncidentRecord, snapshot_dir: Path, before: IncidentRecord | None) -> None:
        settings = self.settings
        bundle, timeline = service.load_timeline(_bundle_root(snapshot_dir), settings)
        draft, _ = service.compose(bundle, timeline, settings, self.drafter_factory(settings))
        out_dir = draft_folder(settings.drafts_dir, record.incident_id)
        latest_md = out_dir / "latest.md"
        teams = list(bundle.manifest.teams)
        if self.use_index:
            draft = service.with_related(draft, self._index_handle(), teams, link_base_url=settings.link_base_url)
        markdown, payload = render_markdown(draft, key=self.key), render_json(draft)
        version_md = out_dir / f"v{record.version}.md"
        version_json = out_dir / f"v{record.version}.json"
        write_atomic(version_json, payload)
        write_atomic(version_md, markdown)
        latest = markdown
        if latest_md.is_file():
            base = out_dir / f"v{before.drafted_version}.md" if before and before.drafted_version else None
            merged = redraft(
                latest_md.read_text(encoding="utf-8"),
                markdown,
                markers=Markers(self.key, draft.incident.id),
                base_md=base.read_text(encoding="utf-8") if base and base.is_file() else None,
            )
            latest = merged.markdown
            if merged.kept_sections:
                self.report.edits_kept[record.incident_id] = merged.kept_sections
        write_atomic(out_dir / "latest.json", payload)
        write_atomic(latest_md, latest)
        if self.use_index:
            # where the index says the draft lives: relative to HOME, not a path of this machine
            self._index_handle().index_draft(draft, latest_md.relative_to(settings.home).as_posix(), teams)
        self.ledger.mark_drafted(
            record.incident_id,
            version=record.version,
            snapshot_hash=record.snapshot_hash or "",
            drafter=draft.provenance.drafter,
            prompt_version=draft.provenance.prompt,
            markdown=version_md,
            json_path=version_json,
        )
