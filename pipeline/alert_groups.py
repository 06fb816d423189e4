"""Alertmanager notification groups, as landed by ``pipeline.receiver``, as a sweep source.

The receiver writes every webhook payload to ``<landing>/<group>/<received-at>-<n>.json``. A group fires, is
re-notified, resolves — and may fire again next week. Each *episode* of a group is one incident:

* an episode is the run of payloads from a firing one up to and including the next ``"status": "resolved"``
  payload (Alertmanager sends it when every alert of the group has resolved, with ``send_resolved``, the
  webhook default);
* a group that fires again within ``reopen_within`` of resolving is the same episode flapping, not a new
  incident. So an episode counts as closed only ``reopen_within`` after it resolved (its ``closed_at``): a flap
  never becomes two drafts, and a paging incident the group triggered, resolved meanwhile, gathers the episode
  (``pipeline.gather``: PagerDuty's ``incident_key`` is Alertmanager's sha256 of the group key) before it could be
  drafted on its own;
* a group that stays silent for ``stale_after`` without resolving (``send_resolved: false``, or an Alertmanager
  that lost its state) counts as closed at ``last payload + stale_after`` — well above the default 4h
  ``repeat_interval`` by default, so a group still firing is never cut.

An episode's incident id is ``alertmanager-<group>-<first payload's received time>``; its ref is
``<group>/<first file>``. Times come from the file names the receiver chose (UTC, microseconds), so listing and
snapshots are deterministic. A payload that cannot be read is kept in the snapshot (the parser quarantines it
with its reason) and never ends an episode. Payloads without a ``groupKey`` share the ``no-group-key`` folder and
are treated as one group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import yaml

from pipeline.errors import BundleError
from pipeline.paths import read_no_follow
from pipeline.sweep import ClosedIncident

_NAME = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)-\d+\.json$")
_GROUP = re.compile(r"^[0-9a-f]{16}$|^no-group-key$")
TITLE_MAX_CHARS = 120


@dataclass(frozen=True)
class Episode:
    group: str
    files: tuple[Path, ...]
    started_at: datetime
    closed_at: datetime | None  # None: still open

    @property
    def ref(self) -> str:
        return f"{self.group}/{self.files[0].name}"

    @property
    def incident_id(self) -> str:
        return f"alertmanager-{self.group}-{self.started_at.strftime('%Y%m%dT%H%M%SZ')}"


def received_at(path: Path) -> datetime | None:
    """The receive time the receiver put in a payload's file name, or None for a name it did not write."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)


def _status(path: Path) -> str | None:
    try:
        payload = orjson.loads(read_no_follow(path))
    except (OSError, orjson.JSONDecodeError):
        return None
    status = payload.get("status") if isinstance(payload, dict) else None
    return status if isinstance(status, str) else None


class AlertGroupSource:
    """Episodes of the Alertmanager groups under ``root`` (see the module docstring)."""

    vendor = "alertmanager"
    rank = 4  # after paging incidents and tickets in a sweep: they gather the episode they came from

    def __init__(
        self,
        root: Path,
        name: str = "alertmanager",
        *,
        reopen_within: timedelta = timedelta(minutes=30),
        stale_after: timedelta = timedelta(hours=12),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.root = root
        self.name = name
        self.reopen_within = reopen_within
        self.stale_after = stale_after
        self._now = now

    def _groups(self) -> Iterator[Path]:
        if self.root.is_dir():
            # links are never followed: the receiver writes only real folders and files here
            yield from sorted(
                p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink() and _GROUP.match(p.name)
            )

    def episodes(self, group_dir: Path) -> list[Episode]:
        """The group's episodes, oldest first; the last may still be open."""
        payloads = sorted(
            (at, p) for p in group_dir.glob("*.json") if (at := received_at(p)) is not None and not p.is_symlink()
        )
        episodes: list[Episode] = []
        current: list[Path] = []
        started = last = datetime.min.replace(tzinfo=UTC)
        resolved_at: datetime | None = None
        for at, path in payloads:
            if current:
                if resolved_at is not None and at - resolved_at > self.reopen_within:
                    episodes.append(Episode(group_dir.name, tuple(current), started, resolved_at + self.reopen_within))
                    current = []
                elif resolved_at is None and at - last >= self.stale_after:
                    episodes.append(Episode(group_dir.name, tuple(current), started, last + self.stale_after))
                    current = []
            if not current:
                started, resolved_at = at, None
            current.append(path)
            last = at
            status = _status(path)
            if status == "resolved":
                resolved_at = at
            elif status == "firing":
                resolved_at = None
        if current:
            now = self._now()
            closed: datetime | None = None
            if resolved_at is not None and now - resolved_at >= self.reopen_within:
                closed = resolved_at + self.reopen_within
            elif resolved_at is None and now - last >= self.stale_after:
                closed = last + self.stale_after
            episodes.append(Episode(group_dir.name, tuple(current), started, closed))
        return episodes

    def closed_since(self, since: datetime) -> list[ClosedIncident]:
        return [
            ClosedIncident(episode.incident_id, episode.ref, episode.closed_at, self.name)
            for group_dir in self._groups()
            for episode in self.episodes(group_dir)
            if episode.closed_at is not None and episode.closed_at >= since
        ]

    def snapshot(self, incident: ClosedIncident) -> dict[str, bytes]:
        group, _, first = incident.ref.partition("/")
        group_dir = self.root / group
        if not _GROUP.match(group) or not group_dir.is_dir() or group_dir.is_symlink():
            raise BundleError("alert group not found", group_dir)
        episode = next((e for e in self.episodes(group_dir) if e.files[0].name == first), None)
        if episode is None:
            raise BundleError(f"no episode of the group starts with {first}", group_dir)
        return self._bundle(episode)

    def episode_near(self, group: str, moment: datetime | None) -> Episode | None:
        """The group's episode a paging incident closed at ``moment`` came from: the last one that started
        before it (the last one of all without a moment); None when the group never landed here."""
        group_dir = self.root / group
        if not _GROUP.match(group) or not group_dir.is_dir() or group_dir.is_symlink():
            return None
        episodes = self.episodes(group_dir)
        before = [e for e in episodes if moment is None or e.started_at <= moment]
        return before[-1] if before else None

    def episode_files(self, episode: Episode) -> dict[str, bytes]:
        """An episode's payloads as landed, under ``alertmanager/<group>/``."""
        return {f"alertmanager/{episode.group}/{path.name}": read_no_follow(path) for path in episode.files}

    def _bundle(self, episode: Episode) -> dict[str, bytes]:
        """The episode's payloads and an incident.yaml with its id and the first notification's title."""
        files = self.episode_files(episode)
        manifest: dict[str, str] = {"id": episode.incident_id}
        title = _title(files[f"alertmanager/{episode.group}/{episode.files[0].name}"])
        if title:
            manifest["title"] = title
        files["incident.yaml"] = yaml.safe_dump(manifest, sort_keys=False).encode("utf-8")
        return files


def _title(first: bytes) -> str | None:
    """What the group's first notification said: its summary annotation, else the alert name."""
    try:
        payload = orjson.loads(first)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    for key, field in (("commonAnnotations", "summary"), ("groupLabels", "alertname"), ("commonLabels", "alertname")):
        section = payload.get(key)
        value = section.get(field) if isinstance(section, dict) else None
        if isinstance(value, str) and value.strip():
            line = " ".join(value.split())
            return line[:TITLE_MAX_CHARS]
    return None
