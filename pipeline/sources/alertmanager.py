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
from pipeline.models import EventKind, ParseOutput, Source
from pipeline.sources.base import (
    OutputBuilder,
    ParseContext,
    SourceDocument,
    clean_text,
    iso_to_ns,
    normalise_signal,
    require_dict,
)

__all__ = [
    "AlertFlavour",
    "AlertmanagerParser",
    "first_payload",
    "is_alert_payload",
    "is_grafana_payload",
    "short_str",
    "walk_alert_documents",
]

UNSET_TIME_PREFIX = "0001-01-01"  # Go's zero time.Time: "no end yet"
KEY_LABELS = ("instance", "host", "pod", "node", "device")  # labels that tell storm members apart in text
SERVICE_LABELS = ("service", "job", "namespace", "app")
MAX_LABELS = 24  # attrs["labels"] stays small
MAX_LABEL_CHARS = 256


def short_str(value: object, limit: int = MAX_LABEL_CHARS) -> str | None:
    """A short, JSON-safe string (ids, names, label values) or None for non-strings and empty strings."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = clean_text(value[: limit * 2]).strip()
    return text[:limit] or None


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
        name = short_str(key, 128)
        text = short_str(value)
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
    try:
        return iso_to_ns(value, ctx.default_tz)
    except ParseError as exc:
        raise ParseError(f"{key}: {exc}") from None


def _alert_text(base: str, labels: Mapping[str, str]) -> str:
    keys = ", ".join(f"{name}={labels[name]}" for name in KEY_LABELS if name in labels)
    return f"{base} ({keys})" if keys else base


def _alert_rows(alert: object, group: _Group, ctx: ParseContext, flavour: AlertFlavour) -> list[dict[str, Any]]:
    """The rows of one alert (firing, plus resolved when it has ended); raises ParseError on a bad alert."""
    record = require_dict(alert, "alert")
    raw_labels = record.get("labels")
    if not isinstance(raw_labels, dict):
        raise ParseError("alert has no labels object")
    labels = _clean_labels(raw_labels)
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
    annotations = raw_annotations if isinstance(raw_annotations, dict) else {}
    summary = clean_text(annotations.get("summary")).strip() or clean_text(annotations.get("description")).strip()
    base = summary or alertname or "alert"
    text = _alert_text(base, labels)

    url = next((u for key in flavour.url_keys if (u := short_str(record.get(key), 2048))), None)
    service = next((labels[name] for name in SERVICE_LABELS if name in labels), None)
    attrs: dict[str, Any] = {
        "alertname": alertname,
        "labels": dict(list(labels.items())[:MAX_LABELS]),
        "fingerprint": fingerprint,
        "receiver": group.receiver,
        "group_key": group.group_key,
        "status": status,
    }
    if flavour.extra_attrs is not None:
        attrs.update(flavour.extra_attrs(record))

    common: dict[str, Any] = {
        "actor": flavour.actor,
        "service": service,
        "severity": labels.get("severity"),
        "url": url,
        "signal": normalise_signal(alertname),
    }
    rows = [
        {
            "native_id": f"{fingerprint}:{starts_ns}:firing",
            "ts_ns": starts_ns,
            "kind": EventKind.ALERT_FIRING.value,
            "text": text,
            "attrs": attrs,
            **common,
        }
    ]
    if ends_ns is not None:
        rows.append(
            {
                "native_id": f"{fingerprint}:{starts_ns}:resolved",
                "ts_ns": ends_ns,
                "kind": EventKind.ALERT_RESOLVED.value,
                "text": f"Resolved: {text}",
                "attrs": dict(attrs),
                **common,
            }
        )
    return rows


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
    flavour: AlertFlavour,
) -> None:
    parsed: tuple[_Group, list[Any]] | None = None
    with builder.record(doc, base, payload):
        parsed = _payload_alerts(payload)
    if parsed is None:
        return
    group, alerts = parsed
    for index, alert in enumerate(alerts):
        pointer = f"{base}/alerts/{index}"
        with builder.record(doc, pointer, alert):
            rows = _alert_rows(alert, group, ctx, flavour)
            position = doc.where(pointer)
            for row in rows:  # built completely first: a bad alert adds nothing
                builder.add(file=doc.path, position=position, **row)


def walk_alert_documents(
    docs: Sequence[SourceDocument], ctx: ParseContext, builder: OutputBuilder, flavour: AlertFlavour
) -> None:
    """Walk Alertmanager-shaped documents (payload, array of payloads, or NDJSON line) into ``builder``."""
    for doc in docs:
        data = doc.data
        if isinstance(data, list):
            if not data:
                builder.quarantine(
                    file=doc.path, position=doc.where(), reason="empty array of alert payloads", record=data
                )
            for index, payload in enumerate(data):
                _walk_payload(doc, f"/{index}", payload, ctx, builder, flavour)
        else:
            _walk_payload(doc, "", data, ctx, builder, flavour)


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
