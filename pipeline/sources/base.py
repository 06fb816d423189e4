"""What every source parser shares: the document and context it is given, the protocol it implements,
timestamp conversion to UTC epoch nanoseconds, and quarantine helpers.

A parser never raises on bad data: a record it cannot turn into an event becomes a ``Quarantined`` entry
with a reason. ``ParseError`` is the internal signal for that; ``record_errors`` converts it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar, Protocol

import orjson

from pipeline.errors import ParseError
from pipeline.models import EventRow, ParseOutput, Quarantined, Source, event_id

# Timestamps outside this window are treated as impossible (Alertmanager's "0001-01-01" means "unset").
MIN_TS_NS = 946_684_800 * 10**9  # 2000-01-01
MAX_TS_NS = 4_102_444_800 * 10**9  # 2100-01-01
MAX_TEXT_CHARS = 20_000  # longer texts are cut with a marker, so one huge paste cannot swamp a draft


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One decoded JSON document from a bundle: a whole file, or one NDJSON line of it."""

    path: str  # bundle-relative path, with "!" for members of a zip: "export.zip!general/2025-01-10.json"
    data: Any
    position: str = ""  # "" for a whole file, "line N" for NDJSON

    def where(self, pointer: str = "") -> str:
        """A position string: NDJSON line plus JSON pointer inside it."""
        if self.position and pointer:
            return f"{self.position} {pointer}"
        return self.position or pointer or "/"


@dataclass(frozen=True, slots=True)
class ParseContext:
    incident_id: str
    default_tz: tzinfo = UTC  # for timestamps that carry no offset (manifest timezone hint)
    channel: str | None = None  # incident channel name from the manifest (Slack API dumps do not carry it)
    users: Mapping[str, str] = field(default_factory=dict)  # extra user-id -> display-name hints


class SourceParser(Protocol):
    """A parser for one vendor format. ``sniff`` decides by content alone, never by file name."""

    source: ClassVar[Source]

    def sniff(self, doc: SourceDocument) -> bool: ...

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput: ...


# --- timestamps -----------------------------------------------------------------------------------------

_SLACK_TS = re.compile(r"^(\d{9,11})(?:\.(\d{1,9}))?$")


def _checked(ns: int, raw: object) -> int:
    if not MIN_TS_NS <= ns < MAX_TS_NS:
        raise ParseError(f"impossible timestamp {str(raw)[:40]!r} (outside 2000..2100)")
    return ns


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_fromisoformat = datetime.fromisoformat


def fast_iso_ns(value: object, default_tz: tzinfo) -> int | None:
    """``iso_to_ns(value, default_tz)`` when it succeeds, else None (the caller then calls iso_to_ns for its error).

    Same arithmetic without the float: for an aware datetime ``timestamp()`` is ``(dt - epoch).total_seconds()``,
    whose floor is ``days * 86400 + seconds`` of that difference for every year in 2000..2099."""
    if type(value) is not str:
        return None
    try:
        parsed = _fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz)
    if not 2000 <= parsed.year < 2100:
        return None
    try:
        delta = parsed - _EPOCH
    except TypeError:  # a tzinfo without an offset: iso_to_ns raises the same error
        return None
    ns = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + parsed.microsecond * 1000
    return ns if MIN_TS_NS <= ns < MAX_TS_NS else None


def iso_to_ns(value: object, default_tz: tzinfo = UTC) -> int:
    """ISO-8601 with 'Z', '+00:00' or '+0000' offsets, up to nanosecond fractions (truncated to µs).
    Well-formed values take the integer fast path; anything else gets a precise ParseError below."""
    ns = fast_iso_ns(value, default_tz)
    if ns is not None:
        return ns
    if not isinstance(value, str) or not value:
        raise ParseError(f"timestamp is not a string: {str(value)[:40]!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ParseError(f"unparseable timestamp {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz)
    if not 2000 <= parsed.year < 2100:
        raise ParseError(f"impossible timestamp {value[:40]!r} (outside 2000..2100)")
    seconds = math.floor(parsed.timestamp())
    return _checked(seconds * 10**9 + parsed.microsecond * 1000, value)


def slack_ts_to_ns(value: object) -> int:
    """Slack's ``ts``: epoch seconds as a string with a 6-digit fraction ("1736510400.123456")."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{value:.6f}"
    if not isinstance(value, str):
        raise ParseError(f"slack ts is not a string: {str(value)[:40]!r}")
    match = _SLACK_TS.match(value)
    if match is None:
        raise ParseError(f"malformed slack ts {value[:40]!r}")
    whole, frac = match.group(1), match.group(2) or ""
    return _checked(int(whole) * 10**9 + int(frac.ljust(9, "0")), value)


def epoch_to_ns(value: object) -> int:
    """Epoch number in s, ms, µs or ns, told apart by magnitude (Opsgenie mixes ms and ns in one payload)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"epoch timestamp is not a number: {str(value)[:40]!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParseError(f"epoch timestamp is not finite: {value!r}")
    if isinstance(value, int) and abs(value) > 10**20:
        raise ParseError("impossible epoch timestamp (too large)")
    magnitude = abs(value)
    if magnitude < 1e11:
        ns = int(value * 10**9)
    elif magnitude < 1e14:
        ns = int(value * 10**6)
    elif magnitude < 1e17:
        ns = int(value * 10**3)
    else:
        ns = int(value)
    return _checked(ns, value)


def any_ts_to_ns(value: object, default_tz: tzinfo = UTC) -> int:
    """ISO string or epoch number, whichever the value is."""
    if isinstance(value, str) and not value.replace(".", "", 1).isdigit():
        return iso_to_ns(value, default_tz)
    if isinstance(value, str) and "." in value:
        return slack_ts_to_ns(value)
    return epoch_to_ns(value)


# --- field access -----------------------------------------------------------------------------------------


def require_dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{what} is not an object")
    return value


def require_str(mapping: Mapping[str, Any], key: str, what: str | None = None) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise ParseError(f"missing or non-string field {what or key!r}")
    return value


def opt_str(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def clean_text(value: object) -> str:
    """Text as a safe string: non-strings become "", lone surrogates are replaced, huge texts are cut."""
    if not isinstance(value, str):
        return ""
    text = value
    if not text.isascii():  # the common case skips the round trip
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + f" …[cut {len(value) - MAX_TEXT_CHARS} chars]"
    return text


MAX_NAME_CHARS = 256


SHORT_STR_CHARS = 256


def short_str(value: object, limit: int = SHORT_STR_CHARS) -> str | None:
    """A short, JSON-safe string (ids, names, label values), or None for non-strings and empty strings; numbers
    become their text."""
    if type(value) is str and len(value) <= limit <= MAX_TEXT_CHARS and value.isascii():
        return value.strip() or None  # clean_text returns it unchanged, and the cuts below cannot shorten it
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = clean_text(value[: limit * 2]).strip()
    return text[:limit] or None


def short_text(value: object, limit: int = MAX_NAME_CHARS) -> str | None:
    """A short, JSON-safe string, or None for non-strings and blank strings (numbers become strings)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if isinstance(value, int) and not -(10**64) < value < 10**64:
            return None  # str() of a huge int raises (and no real id is that long)
        value = str(value)
    if not isinstance(value, str):
        return None
    text = clean_text(value[: limit * 2]).strip()
    return text[:limit] or None


def one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def required_ts(value: object, what: str, ctx: ParseContext) -> int:
    """An ISO timestamp that must be there; the ParseError names the field."""
    try:
        return iso_to_ns(value, ctx.default_tz)
    except ParseError as exc:
        raise ParseError(f"{what}: {exc}") from None


def optional_ts(value: object, ctx: ParseContext) -> int | None:
    if value is None:
        return None
    try:
        return iso_to_ns(value, ctx.default_tz)
    except (ParseError, ValueError, OverflowError):
        return None


# --- building output ---------------------------------------------------------------------------------------


def excerpt(record: object, limit: int = 200) -> str:
    try:
        text = orjson.dumps(record, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        try:
            text = repr(record)
        except ValueError:  # e.g. an int too long to print
            text = f"<unprintable {type(record).__name__}>"
    return text[:limit]


class OutputBuilder:
    """Collects rows and quarantine entries for one parser run."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.rows: list[EventRow] = []
        self.quarantined: list[Quarantined] = []

    def add(
        self,
        *,
        native_id: str,
        ts_ns: int,
        kind: str,
        text: str,
        file: str,
        position: str,
        actor: str | None = None,
        service: str | None = None,
        severity: str | None = None,
        thread_id: str | None = None,
        url: str | None = None,
        signal: str | None = None,
        revision: int = 0,
        attrs: dict[str, Any] | None = None,
    ) -> str:
        eid = event_id(self.source.value, native_id)
        self.rows.append(
            EventRow(
                eid,
                self.source.value,
                native_id,
                ts_ns,
                kind,
                actor,
                text,
                service,
                severity,
                thread_id,
                url,
                file,
                position,
                signal,
                revision,
                attrs,
            )
        )
        return eid

    def quarantine(self, *, file: str, position: str, reason: str, record: object = None) -> None:
        self.quarantined.append(
            Quarantined(source=self.source.value, file=file, position=position, reason=reason, excerpt=excerpt(record))
        )

    @contextmanager
    def record(self, doc: SourceDocument, pointer: str, record: object) -> Iterator[None]:
        """Run the body for one record; a ParseError (or a type slip on hostile data) quarantines it."""
        try:
            yield
        except ParseError as exc:
            self.quarantine(file=doc.path, position=doc.where(pointer), reason=str(exc), record=record)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            reason = f"malformed record ({type(exc).__name__}: {str(exc)[:120]})"
            self.quarantine(file=doc.path, position=doc.where(pointer), reason=reason, record=record)

    def output(self) -> ParseOutput:
        return ParseOutput(self.rows, self.quarantined)


_SIGNAL_STRIP = re.compile(r"\[(?:firing|resolved)(?::\d+)?\]|[^a-z0-9]+", re.IGNORECASE)


def normalise_signal(name: str | None) -> str | None:
    """Alert identity across systems: 'HighErrorRate', '[FIRING:1] High error rate' -> 'higherrorrate'."""
    if not name:
        return None
    signal = _SIGNAL_STRIP.sub("", name).lower()
    return signal or None
