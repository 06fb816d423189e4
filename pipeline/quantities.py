"""How numbers are written in prose, and how they are read back for checking.

Drafters write durations with ``format_duration`` and counts with ``format_count``; the validator reads
every duration and count out of the prose with ``durations_in`` / ``counts_in`` and checks each against the
computed facts. Keeping both directions here makes "the numbers in the prose equal the metrics" testable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNIT_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
                 "min": 60, "mins": 60, "minute": 60, "minutes": 60,
                 "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
                 "d": 86400, "day": 86400, "days": 86400}  # fmt: skip
# Long unit words may touch the number ("5min"); one-letter units need a space, so "500s" (HTTP 500s) is
# not read as a duration.
_UNIT = r"(?:\s?(?:seconds?|secs?|minutes?|mins?|min|hours?|hrs?|days?)|\s(?:s|h|d))"
_DURATION = re.compile(rf"\b(\d+(?:\.\d+)?)({_UNIT})\b(?:\s+(\d+)({_UNIT})\b)?", re.IGNORECASE)
COUNT_NOUNS = ("alert", "page", "customer ticket", "ticket", "message", "status update", "deploy", "event")
_COUNT = re.compile(
    r"\b(\d+)\s+(?:distinct\s+|separate\s+)?(" + "|".join(re.escape(n) for n in COUNT_NOUNS) + r")s?\b",
    re.IGNORECASE,
)


def format_duration(seconds: int) -> str:
    """12 s, 7 min, 1 h 5 min, 2 d 3 h — minutes are rounded, never truncated."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" if minutes == 0 else f"{hours} h {minutes} min"
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days} d" if hours == 0 else f"{days} d {hours} h"


def format_count(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


@dataclass(frozen=True, slots=True)
class Mention:
    text: str
    value: float  # seconds for durations, the number for counts
    tolerance: float  # how far a true value may be from `value` given how it was written
    noun: str = ""


def durations_in(prose: str) -> list[Mention]:
    found: list[Mention] = []
    for m in _DURATION.finditer(prose):
        unit = _UNIT_SECONDS[m.group(2).strip().lower()]
        value = float(m.group(1)) * unit
        smallest = unit
        if m.group(3):
            unit2 = _UNIT_SECONDS[m.group(4).strip().lower()]
            value += float(m.group(3)) * unit2
            smallest = unit2
        found.append(Mention(m.group(0), value, smallest / 2 + 1))
    return found


def counts_in(prose: str) -> list[Mention]:
    return [Mention(m.group(0), float(m.group(1)), 0.0, m.group(2).lower()) for m in _COUNT.finditer(prose)]


def duration_matches(mention: Mention, seconds_facts: set[int]) -> bool:
    return any(abs(mention.value - fact) <= mention.tolerance for fact in seconds_facts)
