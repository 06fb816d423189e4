"""Grafana (11+) unified-alerting webhook contact point payloads.

The body is an Alertmanager notification (``alerts[]`` with labels, annotations, startsAt/endsAt,
fingerprint) plus Grafana's own keys: ``version: "1"``, ``orgId``, ``title``, ``state``, ``message`` and per
alert ``values``/``valueString`` and ``silenceURL``/``dashboardURL``/``panelURL``. The event model is the
Alertmanager one (see ``pipeline.sources.alertmanager``), walked by the same function; the URL prefers the
panel, then the dashboard, then the alert rule, and attrs also carry the query values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pipeline.models import ParseOutput, Source
from pipeline.sources.alertmanager import (
    AlertFlavour,
    first_payload,
    is_grafana_payload,
    walk_alert_documents,
)
from pipeline.sources.base import OutputBuilder, ParseContext, SourceDocument, short_str

MAX_VALUES = 24
MAX_VALUE_STRING_CHARS = 1000


def _small_values(raw: object) -> dict[str, float | int | str] | None:
    if not isinstance(raw, dict):
        return None
    values: dict[str, float | int | str] = {}
    for key, value in raw.items() if len(raw) <= MAX_VALUES else list(raw.items())[:MAX_VALUES]:
        name = short_str(key, 64)
        if name is None:
            continue
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if is_int or (isinstance(value, float) and math.isfinite(value)):
            values[name] = value
        elif (text := short_str(value, 128)) is not None:
            values[name] = text
    return values


def _grafana_attrs(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "values": _small_values(alert.get("values")),
        "value_string": short_str(alert.get("valueString"), MAX_VALUE_STRING_CHARS),
    }


GRAFANA_FLAVOUR = AlertFlavour(
    actor="Grafana",
    url_keys=("panelURL", "dashboardURL", "generatorURL"),
    extra_attrs=_grafana_attrs,
)


class GrafanaParser:
    """Grafana unified-alerting webhook notifications (asked before Alertmanager: its shape is a superset)."""

    source: ClassVar[Source] = Source.GRAFANA

    def sniff(self, doc: SourceDocument) -> bool:
        return is_grafana_payload(first_payload(doc.data))

    def parse(self, docs: Sequence[SourceDocument], ctx: ParseContext) -> ParseOutput:
        builder = OutputBuilder(self.source)
        walk_alert_documents(docs, ctx, builder, GRAFANA_FLAVOUR)
        return builder.output()
