"""What the similar-incident index stores: documents loaded from drafts, Markdown postmortems and JSONL records.

A document is one incident: metadata (id, title, date, services, severity, tags, visibility, teams, source) and
named sections (summary, impact, factors, actions, timeline, lessons, ...); pipeline.index_chunks splits them.
Anything that cannot become a document is returned as a `Rejected` entry with its reason, never dropped silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import LimitExceeded
from pipeline.limits import load_yaml
from pipeline.models import Draft

Visibility = Literal["public", "internal", "restricted"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "internal", "restricted")

# Part of every content hash: bump it when chunking or the stored text changes, so re-indexing replaces everything.
DOC_FORMAT = "pm-index-doc/1"

_SECTION_ALIASES = {
    "summary": "summary",
    "overview": "summary",
    "tl;dr": "summary",
    "tldr": "summary",
    "description": "summary",
    "what happened": "summary",
    "incident summary": "summary",
    "impact": "impact",
    "customer impact": "impact",
    "user impact": "impact",
    "contributing factors": "factors",
    "contributing factor": "factors",
    "root cause": "factors",
    "root causes": "factors",
    "root cause analysis": "factors",
    "causes": "factors",
    "trigger": "factors",
    "action items": "actions",
    "actions": "actions",
    "follow-ups": "actions",
    "follow ups": "actions",
    "followups": "actions",
    "corrective actions": "actions",
    "remediation": "actions",
    "timeline": "timeline",
    "lessons": "lessons",
    "lessons learned": "lessons",
    "what went well": "lessons",
    "what went wrong": "lessons",
    "where we got lucky": "lessons",
    "resolution": "mitigation",
    "mitigation": "mitigation",
    "recovery": "mitigation",
    "detection": "detection",
}

# IDB structured abstract parts -> section names
_IDB_SECTIONS = {
    "architecture": "architecture",
    "root cause": "factors",
    "failure": "failure",
    "impact": "impact",
    "how it happened": "timeline",
    "mitigation": "mitigation",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DocSection(_Frozen):
    name: str = Field(min_length=1)
    text: str = Field(min_length=1)


class IndexDocument(_Frozen):
    """One incident as the index sees it. Lists are normalised (stripped, lower-case, de-duplicated)."""

    incident_id: str = Field(min_length=1)
    title: str
    date: dt.date | None = None
    services: tuple[str, ...] = ()
    severity: str | None = None
    tags: tuple[str, ...] = ()
    visibility: Visibility = "internal"
    teams: tuple[str, ...] = ()
    sections: tuple[DocSection, ...] = Field(min_length=1)
    source: str

    def content_hash(self) -> str:
        """Changes whenever anything stored for this document would change (text, metadata, chunk format)."""
        payload = json.dumps([DOC_FORMAT, self.model_dump(mode="json")], sort_keys=True, ensure_ascii=False)
        return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


class Rejected(_Frozen):
    """A file or record that could not become a document, with the reason."""

    source: str
    reason: str


class DocumentError(ValueError):
    """Raised inside the loaders; turned into a `Rejected` entry with the source attached."""


# --- normalisation ------------------------------------------------------------------------------------------

_DATE = re.compile(r"^\s*(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?(?:[ T].*)?\s*$")


def parse_date(value: object) -> date | None:
    """Dates as sources write them: 2019-07-02, 2019/07/02 17:21, 2022-06-21 06:27:00+00:00, 2019-06, 2020."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int) and 1900 <= value <= 2999:
        return date(value, 1, 1)
    if isinstance(value, str) and (m := _DATE.match(value)):
        try:
            return date(int(m[1]), int(m[2] or 1), int(m[3] or 1))
        except ValueError as exc:
            raise DocumentError(f"invalid date {value!r}: {exc}") from exc
    raise DocumentError(f"unparseable date {value!r}")


def date_int(value: date) -> int:
    """YYYYMMDD, so Chroma's numeric $gte/$lte can filter date ranges."""
    return value.year * 10000 + value.month * 100 + value.day


def norm_label(value: str) -> str:
    return " ".join(value.strip().lower().split())


def norm_severity(value: object) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    return str(value).strip().upper()


def _labels(value: object, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items: Iterable[object]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise DocumentError(f"{field} must be a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise DocumentError(f"{field} must be a list of strings, got an item {item!r}")
        label = norm_label(str(item))
        if label and label not in out:
            out.append(label)
    return tuple(out)


def _visibility(value: object, default: Visibility) -> Visibility:
    if value is None:
        return default
    for v in VISIBILITIES:
        if str(value).strip().lower() == v:
            return v
    raise DocumentError(f"visibility must be one of {', '.join(VISIBILITIES)}, got {value!r}")


def _sections(pairs: Iterable[tuple[str, str | None]]) -> tuple[DocSection, ...]:
    """Merge sections of the same name (in first-seen order) and drop empty ones."""
    merged: dict[str, list[str]] = {}
    for name, text in pairs:
        if text and text.strip():
            merged.setdefault(name, []).append(text.strip())
    return tuple(DocSection(name=name, text="\n\n".join(parts)) for name, parts in merged.items())


def _document(**fields: Any) -> IndexDocument:
    try:
        return IndexDocument(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DocumentError(f"invalid {where}: {first['msg']}") from exc


# --- drafts ---------------------------------------------------------------------------------------------------


def document_from_draft(draft: Draft, source: str, teams: Sequence[str] = ()) -> IndexDocument:
    """A pipeline draft. Drafts carry no team list; pass `teams` for restricted incidents (else nobody sees it)."""
    moments = draft.key_moments
    when = moments.started.at or moments.detected.at or draft.provenance.generated_at
    sections = _sections(
        [
            ("summary", draft.summary),
            ("impact", draft.impact.statement),
            ("factors", "\n".join(f"- {f.statement}" for f in draft.contributing_factors)),
            ("actions", "\n".join(f"- {a.description}" for a in draft.action_items)),
            ("lessons", "\n".join(f"- {lesson.statement}" for lesson in draft.lessons)),
            ("timeline", "\n".join(f"- {h.at:%Y-%m-%d %H:%M} {h.text}" for h in draft.highlights)),
        ]
    )
    return _document(
        incident_id=draft.incident.id.strip(),
        title=draft.incident.title.strip() or draft.incident.id,
        date=when.date(),
        services=_labels(draft.incident.services, "services"),
        severity=norm_severity(draft.incident.severity or draft.impact.severity),
        visibility=draft.incident.visibility,
        teams=_labels(list(teams), "teams"),
        sections=sections,
        source=source,
    )


# --- Markdown postmortems ---------------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FENCE = re.compile(r"^\s*(```|~~~)")


def section_name(heading: str) -> str:
    key = norm_label(re.sub(r"[*_`#:]+", " ", heading))
    if key in _SECTION_ALIASES:
        return _SECTION_ALIASES[key]
    return re.sub(r"[^a-z0-9]+", "-", key).strip("-") or "section"


def document_from_markdown(text: str, source: str) -> IndexDocument:
    """A human postmortem: optional YAML front matter (id, title, date, services, severity, tags, visibility,
    teams), then sections under "## " headings. Text before the first "## " counts as the summary."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    meta: dict[str, Any] = {}
    if m := _FRONT_MATTER.match(text):
        try:
            loaded = load_yaml(m[1], what="front matter")
        except LimitExceeded as exc:
            raise DocumentError(str(exc)) from exc
        except yaml.YAMLError as exc:
            raise DocumentError(f"front matter is not valid YAML: {str(exc).splitlines()[0]}") from exc
        except ValueError as exc:  # PyYAML builds dates itself and raises on impossible ones (2024-02-30)
            raise DocumentError(f"invalid date in front matter: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise DocumentError("front matter is not a mapping")
        meta = loaded or {}
        text = text[m.end() :]
    h1: str | None = None
    current = "summary"
    pairs: list[tuple[str, str]] = []
    lines: list[str] = []
    in_code = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        if not in_code and line.startswith("## "):
            pairs.append((current, "\n".join(lines)))
            current, lines = section_name(line[3:]), []
        elif not in_code and line.startswith("# ") and h1 is None and not pairs and not "".join(lines).strip():
            h1 = line[2:].strip()
        else:
            lines.append(line)
    pairs.append((current, "\n".join(lines)))
    incident_id = meta.get("id")
    if incident_id is None or not str(incident_id).strip():
        raise DocumentError("missing id (front matter `id:`)")
    sections = _sections(pairs)
    if not sections:
        raise DocumentError("no text to index")
    return _document(
        incident_id=str(incident_id).strip(),
        title=str(meta.get("title") or h1 or incident_id).strip(),
        date=parse_date(meta.get("date")),
        services=_labels(meta.get("services"), "services"),
        severity=norm_severity(meta.get("severity")),
        tags=_labels(meta.get("tags"), "tags"),
        visibility=_visibility(meta.get("visibility"), "internal"),
        teams=_labels(meta.get("teams"), "teams"),
        sections=sections,
        source=source,
    )


# --- JSONL records (the shape of ../shared/data/postmortems.jsonl) ----------------------------------------------


def document_from_record(record: object, source: str) -> IndexDocument:
    """One JSONL record: id, title, description, date, tags (optionally services, severity, visibility, teams),
    k8s.af `impact`, IDB `idb.structured_abstract`, icco `icco.body_llm_expanded`."""
    if not isinstance(record, dict):
        raise DocumentError("record is not a JSON object")
    incident_id = record.get("id")
    if incident_id is None or not str(incident_id).strip():
        raise DocumentError("missing id")
    description = record.get("description") or ""
    title = record.get("title") or ""
    if not title:
        company = record.get("company") or ""
        first = re.split(r"(?<=[.!?])\s", str(description).strip(), maxsplit=1)[0][:120]
        title = f"{company}: {first}" if company else first
    pairs: list[tuple[str, str | None]] = [("summary", str(description))]
    if isinstance(impact := record.get("impact"), str):
        pairs.append(("impact", impact))
    idb = record.get("idb")
    if isinstance(idb, dict) and isinstance(abstract := idb.get("structured_abstract"), dict):
        for key, name in _IDB_SECTIONS.items():
            if isinstance(value := abstract.get(key), str):
                pairs.append((name, value))
    icco = record.get("icco")
    if isinstance(icco, dict) and isinstance(body := icco.get("body_llm_expanded"), str) and body != description:
        pairs.append(("details", body))
    sections = _sections(pairs)
    if not sections:
        raise DocumentError("no text to index")
    return _document(
        incident_id=str(incident_id).strip(),
        title=str(title).strip() or str(incident_id),
        date=parse_date(record.get("date")),
        services=_labels(record.get("services"), "services"),
        severity=norm_severity(record.get("severity")),
        tags=_labels(record.get("tags"), "tags"),
        visibility=_visibility(record.get("visibility"), "public"),
        teams=_labels(record.get("teams"), "teams"),
        sections=sections,
        source=source,
    )


def documents_from_jsonl(path: Path, label: str | None = None) -> Iterator[IndexDocument | Rejected]:
    """One document per line; a document's source is ``label:LINE`` (``label`` defaults to the path), a rejected
    line's ``path:LINE``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield Rejected(source=str(path), reason=f"unreadable file: {exc}")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield document_from_record(json.loads(line), f"{label or path}:{number}")
        except json.JSONDecodeError as exc:
            yield Rejected(source=where, reason=f"invalid JSON: {exc.msg}")
        except DocumentError as exc:
            yield Rejected(source=where, reason=str(exc))


# --- files and directories ---------------------------------------------------------------------------------------

SUFFIXES = (".md", ".markdown", ".json", ".jsonl")


def portable_source(file: Path, root: Path) -> str:
    """Where a document came from, as the index stores it: the path from the indexed folder, the folder's own
    name first (``postmortems/PM-2023-016.md``), or a file's name when a file was indexed. Never an absolute
    path: the index may be a Chroma server other machines read, and its sources reach search results."""
    if file == root:
        return file.name
    return PurePosixPath(root.resolve().name, *file.relative_to(root).parts).as_posix()


def _load_file(path: Path, label: str) -> Iterator[IndexDocument | Rejected]:
    """Documents from one file, with ``label`` as their source; rejections name the full path (for the person
    running the indexer, on this machine)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from documents_from_jsonl(path, label)
        return
    if suffix not in SUFFIXES:
        yield Rejected(source=str(path), reason=f"unsupported file type {suffix or '(none)'}")
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield Rejected(source=str(path), reason=f"unreadable file: {exc}")
        return
    try:
        if suffix == ".json":
            try:
                draft = Draft.model_validate_json(text)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "document"
                raise DocumentError(f"not a postmortem draft ({where}: {first['msg']})") from exc
            yield document_from_draft(draft, label)
        else:
            yield document_from_markdown(text, label)
    except DocumentError as exc:
        yield Rejected(source=str(path), reason=str(exc))


def load_paths(paths: Iterable[Path]) -> tuple[list[IndexDocument], list[Rejected]]:
    """Files and directories, searched recursively for .md, .json and .jsonl. In a directory, README.md, dot-files
    and a Markdown file beside a same-named .json (the rendered twin of a pipeline draft) are skipped. A document's
    source is ``portable_source`` (relative to the folder given); a rejection names the full path."""
    docs: list[IndexDocument] = []
    rejected: list[Rejected] = []
    for root in paths:
        if root.is_dir():
            files = sorted(
                p
                for p in root.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUFFIXES
                and p.name.lower() != "readme.md"
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
                and not (p.suffix.lower() in (".md", ".markdown") and p.with_suffix(".json").is_file())
            )
        elif root.is_file():
            files = [root]
        else:
            rejected.append(Rejected(source=str(root), reason="no such file or directory"))
            continue
        for file in files:
            for item in _load_file(file, portable_source(file, root)):
                (docs if isinstance(item, IndexDocument) else rejected).append(item)  # type: ignore[arg-type]
    return docs, rejected
