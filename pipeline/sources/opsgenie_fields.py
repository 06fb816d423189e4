"""Alert fields as Opsgenie spells them in both of its forms (outgoing webhooks and the Alert API v2).

Shared by ``pipeline.sources.opsgenie`` (webhooks) and ``pipeline.sources.opsgenie_rest`` (REST responses) so the
same alert gets the same service, priority and tags whichever form a bundle holds. A module of its own because the
webhook parser delegates to the REST one: helpers kept in either would make the two import each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.sources.base import short_str

MAX_TAGS = 20
_SERVICE_TAG = re.compile(r"^(?:service|svc|app|component)\s*[:=]\s*(\S.*)$", re.IGNORECASE)
_SERVICE_NAME_TAG = re.compile(r"^[a-z0-9][a-z0-9_.-]*-(?:api|service|svc|web|worker|db)$", re.IGNORECASE)
_PRIORITY = re.compile(r"^P?([1-5])$", re.IGNORECASE)
# Every text _PRIORITY matches, with its result: "1".."5", "p1".."p5", "P1".."P5" (a stripped text cannot end in
# the newline that "$" would also accept).
_PRIORITIES = {f"{prefix}{digit}": f"P{digit}" for prefix in ("", "p", "P") for digit in "12345"}


def alert_priority(value: object) -> str | None:
    """ "P1".."P5" from "P1", "p1", "1" or 1; None for anything else."""
    text = short_str(value, 8)
    if text is not None and text in _PRIORITIES:
        return _PRIORITIES[text]
    match = _PRIORITY.match(text) if text else None
    return f"P{match.group(1)}" if match else None


def alert_tags(value: object) -> list[str]:
    """The first MAX_TAGS usable tags."""
    if not isinstance(value, list):
        return []
    return [tag for item in value[:MAX_TAGS] if (tag := short_str(item, 128))]


def alert_service(alert: Mapping[str, Any], tags: Sequence[str]) -> str | None:
    """The alert's ``entity``, else a ``service:<name>`` tag, else a tag that reads like a service name."""
    entity = short_str(alert.get("entity"))
    if entity:
        return entity
    for tag in tags:
        # ":" or "=" (resp. "-") is required by the pattern: the regex need not run on a tag without it
        match = _SERVICE_TAG.match(tag) if ":" in tag or "=" in tag else None
        if match:
            return match.group(1).strip()
        if "-" in tag and _SERVICE_NAME_TAG.match(tag):
            return tag
    return None
