"""The last line before an output is written or sent: a draft file, a Slack post, a Jira issue, an eval report.

Redaction happens once, at the root (``pipeline.draft.scrub``, called by ``service.compose`` before anything is
built from the incident's texts). This module does not redact; it refuses. An output that still holds a secret
the detector recognises (vendor tokens, keys, JWTs, URL passwords, assigned secrets, card numbers), or any
original value the incident's Redactor replaced, raises ``LeakError`` instead of being written: a bypassed
redaction (a new field copied from raw input, a transformation that hides a value from the redactor) fails
loudly in tests and in production rather than leaking quietly. Messages name kinds, never values.

Draft models are checked string by string before rendering (each string is what was redacted, so the check
sees it as the redactor did; Markdown escaping would otherwise split a token and hide it from the patterns).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from functools import cache
from typing import Any

from pydantic import BaseModel

from pipeline.errors import LeakError
from pipeline.redact import KNOWN_VALUE_MIN_LEN, NEVER_RESTORED, Detector, Redactor

#: What is never allowed in a shared output whatever the settings: credentials and full card numbers.
ALWAYS_REFUSED: frozenset[str] = NEVER_RESTORED


@cache
def _detector(entropy: bool) -> Detector:
    return Detector(kinds=ALWAYS_REFUSED, entropy=entropy)


def secret_kinds_in(text: str, *, entropy: bool = True) -> list[str]:
    """Kinds of the secrets (and card numbers) the detector finds in `text`; placeholders are not findings.
    `entropy=False` skips the bare high-entropy rule (see `check_strings`)."""
    return sorted({f.kind for f in _detector(entropy).scan(text)})


#: Model fields that are references, not free text: ids, citations, where a record came from. Their values
#: are still checked for known originals, but not for secret patterns: a generated file name such as
#: `alertmanager/20250814T170200Z-PayHarborApiErrorRate.json` is exactly what the entropy rule calls a key.
STRUCTURAL_FIELDS: frozenset[str] = frozenset(
    {"id", "event_id", "evidence", "merged_ids", "parent_id", "file", "position", "bundle", "incident_id", "source"}
)


def strings_of(value: Any, skip: Collection[str] = ()) -> Iterator[str]:
    """Every string inside JSON-like data (a model dump): values, not keys; values of `skip` keys left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                yield from strings_of(item, skip)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_of(item, skip)


def check_strings(
    strings: Collection[str],
    where: str,
    *,
    redactor: Redactor | None = None,
    known_kinds: Collection[str] | None = None,
    references: Collection[str] = (),
    entropy: bool = True,
) -> None:
    """Raise LeakError when any of `strings` holds a secret pattern, or when they or `references` hold an
    original `redactor` replaced (of `known_kinds`, default all it replaced; values shorter than the sweep
    length are skipped, as a three-letter password may be an ordinary word elsewhere).

    `entropy=False` is for texts the pipeline composes itself around scrubbed content (a Slack post, a Jira
    issue, a report): their scrubbed parts were already judged by the entropy rule, and what they add (file
    names, run ids, incident ids) is exactly what that rule mistakes for keys. Every structured rule (vendor
    tokens, private keys, JWTs, URL passwords, assigned secrets, cards) still applies."""
    kinds: set[str] = set()
    for text in strings:
        if text:
            kinds.update(secret_kinds_in(text, entropy=entropy))
    if redactor is not None:
        joined = "\n".join([*strings, *references])
        kinds.update(redactor.known_kinds_in(joined, kinds=known_kinds, min_length=KNOWN_VALUE_MIN_LEN))
    if kinds:
        raise LeakError(where, sorted(kinds))


def check_text(
    text: str,
    where: str,
    *,
    redactor: Redactor | None = None,
    known_kinds: Collection[str] | None = None,
    entropy: bool = False,
) -> None:
    """`check_strings` for one composed text (a Slack message, a Jira issue, a report): no entropy rule unless
    asked for (see there)."""
    check_strings([text], where, redactor=redactor, known_kinds=known_kinds, entropy=entropy)


def check_model(
    model: BaseModel, where: str, *, redactor: Redactor | None = None, known_kinds: Collection[str] | None = None
) -> None:
    """`check_strings` over every string field of a model (a Draft before it is rendered as Markdown or JSON);
    `STRUCTURAL_FIELDS` are checked for known originals only."""
    data = model.model_dump(mode="json")
    text = list(strings_of(data, STRUCTURAL_FIELDS))
    references = list(strings_of(data)) if redactor is not None else []
    check_strings(text, where, redactor=redactor, known_kinds=known_kinds, references=references)
