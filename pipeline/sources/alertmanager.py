"""Prometheus Alertmanager webhook payloads (``version: "4"``).

A document is one notification payload ``{version, groupKey, receiver, status, alerts: [...]}``, a JSON
array of such payloads, or one NDJSON line holding a payload (the bundle hands each line over as its own
document). Every alert becomes an ``ALERT_FIRING`` row at ``startsAt`` and, once Alertmanager reports it
resolved with a real ``endsAt``, an ``ALERT_RESOLVED`` row at ``endsAt``. ``endsAt`` of
``0001-01-01T00:00:00Z`` is Go's zero time and means "unset", not an error.

Native ids are ``<fingerprint>:<startsAt ns>:firing|resolved`` (the fingerprint falls back to a hash of the
sorted labels), so every repeated notification of the same alert instance — Alertmanager re-sends the whole
group on each ``repeat_interval`` and again when it resolves — collapses onto the same two events.

``walk_alert_documents`` holds the alert-walking logic; the Grafana parser reuses it with its own flavour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pipeline.errors import ParseError
from pipeline.models import EventKind, EventRow, ParseOutput, Source, event_id
from pipeline.sources.base import (
    MAX_TEXT_CHARS,
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    fast_iso_ns,
    normalise_signal,
    require_dict,
    required_ts,
    short_str,
)

__all__ = [
    "AlertFlavour",
    "AlertmanagerParser",
    "first_payload",
    "is_alert_payload",
    "is_grafana_payload",
    "walk_alert_documents",
]

UNSET_TIME_PREFIX = "0001-01-01"  # Go's zero time.Time: "no end yet"
KEY_LABELS = ("instance", "host", "pod", "node", "device")  # labels that tell storm members apart in text
SERVICE_LABELS = ("service", "job", "namespace", "app")
MAX_LABELS = 24  # attrs["labels"] stays small
MAX_LABEL_CHARS = 256


def stripped_text(value: object) -> str:
    """``clean_text(value).strip()``, skipping clean_text for ASCII strings it would return unchanged."""
    if type(value) is str and len(value) <= MAX_TEXT_CHARS and value.isascii():
        return value.strip()
    return clean_text(value).strip()


def is_alert_payload(data: object) -> bool:
    """An Alertmanager-style notification payload (Alertmanager itself or Grafana's copy of it)."""
    return (
        isinstance(data, dict) and isinstance(data.get("alerts"), list) and ("groupKey" in data or "receiver" in data)
    )


def is_grafana_payload(data: object) -> bool:
    """Grafana's webhook: an Alertmanager payload plus ``orgId``/``title``/``state`` and ``version: "1"``."""
    return is_alert_payload(data) and isinstance(data, dict) and ("orgId" in data or data.get("version") == "1")


def first_payload(data: object) -> object:
    """The payload a sniff looks at: the document itself, or the first element of an array."""
    if isinstance(data, list):
        return data[0] if data else None
    return data


@dataclass(frozen=True, slots=True)
class AlertFlavour:
    """What differs between Alertmanager and Grafana when walking the same alert shape."""

    actor: str
    url_keys: tuple[str, ...]  # per-alert URL fields, best first
    extra_attrs: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None


ALERTMANAGER_FLAVOUR = AlertFlavour(actor="Alertmanager", url_keys=("generatorURL",))


@dataclass(frozen=True, slots=True)
class _Group:
    receiver: str | None
    group_key: str | None


def _clean_labels(raw: Mapping[Any, Any]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, value in raw.items():
        # short_str(key, 128) and short_str(value), inlined for short ASCII strings (clean_text returns them as
        # they are, and the slices cannot cut them)
        name = (key.strip() or None) if type(key) is str and len(key) <= 128 and key.isascii() else short_str(key, 128)
        short = type(value) is str and len(value) <= MAX_LABEL_CHARS and value.isascii()
        text = (value.strip() or None) if short else short_str(value)
        if name is not None and text is not None:
            labels[name] = text
    return labels


def _labels_hash(labels: Mapping[str, str]) -> str:
    """Stand-in fingerprint when the payload carries none: stable across runs, order-independent."""
    canonical = "\x1e".join(f"{k}\x1f{v}" for k, v in sorted(labels.items()))
    return "labels-" + hashlib.blake2b(canonical.encode("utf-8", "replace"), digest_size=8).hexdigest()


def _is_unset(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, str) and value.startswith(UNSET_TIME_PREFIX))


def _timestamp(alert: Mapping[str, Any], key: str, ctx: ParseContext) -> int:
    value = alert.get(key)
    if value is None:
        raise ParseError(f"alert has no {key}")
    return required_ts(value, key, ctx)


def _alert_text(base: str, labels: Mapping[str, str]) -> str:
    keys = ", ".join(f"{name}={labels[name]}" for name in KEY_LABELS if name in labels)
    return f"{base} ({keys})" if keys else base


_KEY_LABEL_SET = frozenset(KEY_LABELS)
_FIRING = EventKind.ALERT_FIRING.value
_RESOLVED = EventKind.ALERT_RESOLVED.value
_new_row = tuple.__new__  # EventRow without its Python-level __new__ (same instance, all 16 fields given)


class _Walk:
    """What stays the same for every alert of one parser run: source, flavour, time zone, signal cache."""

    __slots__ = ("actor", "default_tz", "extra_attrs", "signals", "source", "url_keys")

    def __init__(self, source: str, ctx: ParseContext, flavour: AlertFlavour) -> None:
        self.source = source
        self.default_tz = ctx.default_tz
        self.actor = flavour.actor
        self.url_keys = flavour.url_keys
        self.extra_attrs = flavour.extra_attrs
        self.signals: dict[str, str | None] = {}  # alertname -> normalise_signal(alertname)


def _alert_rows(
    alert: object, group: _Group, ctx: ParseContext, walk: _Walk, file: str, position: str
) -> tuple[EventRow, EventRow | None]:
    """The rows of one alert (firing, plus resolved when it has ended); raises ParseError on a bad alert.

    Every step runs in the order of the original dict-building version, so the first error is the same one."""
    record = require_dict(alert, "alert")
    raw_labels = record.get("labels")
    if not isinstance(raw_labels, dict):
        raise ParseError("alert has no labels object")
    labels = _clean_labels(raw_labels)
    starts_value = record.get("startsAt")
    starts_ns = fast_iso_ns(starts_value, walk.default_tz) if starts_value is not None else None
    if starts_ns is None:
        starts_ns = _timestamp(record, "startsAt", ctx)
    status = short_str(record.get("status"), 32)

    ends_ns: int | None = None
    if status == "resolved" and not _is_unset(record.get("endsAt")):
        ends_ns = _timestamp(record, "endsAt", ctx)
        if ends_ns < starts_ns:
            raise ParseError("endsAt is before startsAt")

    fingerprint = short_str(record.get("fingerprint"), 128) or _labels_hash(labels)
    alertname = labels.get("alertname")
    raw_annotations = record.get("annotations")
    if isinstance(raw_annotations, dict):
        summary = stripped_text(raw_annotations.get("summary")) or stripped_text(raw_annotations.get("description"))
    else:
        summary = ""
    base = summary or alertname or "alert"
    present = _KEY_LABEL_SET.intersection(labels)
    if not present:
        text = base
    elif len(present) == 1:
        (name,) = present
        text = f"{base} ({name}={labels[name]})"
    else:
        text = _alert_text(base, labels)

    url = None
    for key in walk.url_keys:
        url = short_str(record.get(key), 2048)
        if url:
            break
    service = None
    for name in SERVICE_LABELS:
        if name in labels:
            service = labels[name]
            break
    attrs: dict[str, Any] = {
        "alertname": alertname,
        # a fresh dict either way (labels itself is not used elsewhere)
        "labels": labels if len(labels) <= MAX_LABELS else dict(list(labels.items())[:MAX_LABELS]),
        "fingerprint": fingerprint,
        "receiver": group.receiver,
        "group_key": group.group_key,
        "status": status,
    }
    if walk.extra_attrs is not None:
        attrs.update(walk.extra_attrs(record))

    severity = labels.get("severity")
    if alertname is None:
        signal = None  # normalise_signal(None)
    else:
        signals = walk.signals
        if alertname in signals:
            signal = signals[alertname]
        else:
            signal = signals[alertname] = normalise_signal(alertname)
    source, actor = walk.source, walk.actor
    native_id = f"{fingerprint}:{starts_ns}:firing"
    # OutputBuilder.add, inlined: (id, source, native_id, ts_ns, kind, actor, text, service, severity,
    # thread_id, url, file, position, signal, revision, attrs)
    firing: EventRow = _new_row(
        EventRow,
        (
            event_id(source, native_id),
            source,
            native_id,
            starts_ns,
            _FIRING,
            actor,
            text,
            service,
            severity,
            None,
            url,
            file,
            position,
            signal,
            0,
            attrs,
        ),
    )
    if ends_ns is None:
        return firing, None
    native_id = f"{fingerprint}:{starts_ns}:resolved"
    resolved: EventRow = _new_row(
        EventRow,
        (
            event_id(source, native_id),
            source,
            native_id,
            ends_ns,
            _RESOLVED,
            actor,
            f"Resolved: {text}",
            service,
            severity,
            None,
            url,
            file,
            position,
            signal,
            0,
            dict(attrs),
        ),
    )
    return firing, resolved


def _payload_alerts(payload: object) -> tuple[_Group, list[Any]]:
    record = require_dict(payload, "alert payload")
    alerts = record.get("alerts")
    if not isinstance(alerts, list):
        raise ParseError("payload has no alerts array")
    group = _Group(receiver=short_str(record.get("receiver")), group_key=short_str(record.get("groupKey"), 1024))
    return group, alerts


def _walk_payload(
    doc: SourceDocument,
    base: str,
    payload: object,
    ctx: ParseContext,
    builder: OutputBuilder,
    walk: _Walk,
) -> None:
    # OutputBuilder.record, spelt out as try/except (the same quarantine entries, no context manager per alert)
    try:
        group, alerts = _payload_alerts(payload)
    except ParseError as exc:
        builder.quarantine(file=doc.path, position=doc.where(base), reason=str(exc), record=payload)
        return
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        reason = f"malformed record ({type(exc).__name__}: {str(exc)[:120]})"
        builder.quarantine(file=doc.path, position=doc.where(base), reason=reason, record=payload)
        return
    file = doc.path
    prefix = f"{doc.position} " if doc.position else ""  # doc.where(pointer) for a non-empty pointer
    append = builder.rows.append
    for index, alert in enumerate(alerts):
        pointer = f"{base}/alerts/{index}"
        try:
            firing, resolved = _alert_rows(alert, group, ctx, walk, file, prefix + pointer)
        except ParseError as exc:
            builder.quarantine(file=file, position=doc.where(pointer), reason=str(exc), record=alert)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            reason = f"malformed record ({type(exc).__name__}: {str(exc)[:120]})"
            builder.quarantine(file=file, position=doc.where(pointer), reason=reason, record=alert)
        else:  # built completely first: a bad alert adds nothing
            append(firing)
            if resolved is not None:
                append(resolved)


def walk_alert_documents(
    docs: Sequence[SourceDocument], ctx: ParseContext, builder: OutputBuilder, flavour: AlertFlavour
) -> None:
    """Walk Alertmanager-shaped documents (payload, array of payloads, or NDJSON line) into ``builder``."""
    walk = _Walk(builder.source.value, ctx, flavour)
    for doc in docs:
        data = doc.data
        if isinstance(data, list):
            if not data:
                builder.quarantine(
                    file=doc.path, position=doc.where(), reason="empty array of alert payloads", record=data
                )
            for index, payload in enumerate(data):
                _walk_payload(doc, f"/{index}", payload, ctx, builder, walk)
        else:
            _walk_payload(doc, "", data, ctx, builder, walk)


class AlertmanagerParser:
    """Prometheus Alertmanager ``webhook_config`` notifications."""

    source: ClassVar[Source] = Source.ALERTMANAGER

    def sniff(self, doc: SourceDocument) -> bool:
        payload = first_payload(doc.data)
        return is_alert_payload(payload) and not is_grafana_payload(payload)

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput:
        builder = OutputBuilder(self.source)
        walk_alert_documents(docs, ctx, builder, ALERTMANAGER_FLAVOUR)
        return builder.output()
