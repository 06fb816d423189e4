"""Retry timing shared by every client that retries (vendor connectors, the language-model boundary): the delay a
server asks for in ``Retry-After`` and the backoff used when it asks for none."""

from __future__ import annotations

import email.utils
import random
import time
from datetime import UTC

_RNG = random.Random()  # seeded from the OS; tests pass their own


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 allows both); None when absent or
    malformed."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_s(attempt: int, base_s: float, max_s: float = 60.0, *, jitter: random.Random | None = None) -> float:
    """Exponential backoff for `attempt` (1 = the first retry), capped, with "equal jitter" (half fixed, half
    random) so that many clients failing together do not retry in lockstep. `jitter=None` uses a process-wide RNG."""
    ceiling = min(base_s * float(2 ** (attempt - 1)), max_s)
    return ceiling / 2 + (jitter or _RNG).uniform(0, ceiling / 2)
