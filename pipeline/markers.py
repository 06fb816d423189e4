"""Section markers: the signed HTML-comment lines that tell a re-draft which text the pipeline wrote.

Rendered drafts wrap every top-level block in markers (pipeline.render writes them, pipeline.redraft reads
them)::

    <!-- pm:section id=summary hash=<sha256[:16] of the generated text> mac=<HMAC[:32]> -->
    ...
    <!-- pm:end summary mac=<HMAC[:32]> -->

and a re-draft adds suggestion blocks (``pm:suggestion`` … ``pm:end-suggestion``) and ``pm:removed`` markers.
Every marker carries an HMAC-SHA256 (pipeline.section_key) over the document (the incident id), the marker's
kind and its fields — for an end marker the section's id *and* hash, so an end marker closes only the section
it was written for. A line is a marker only when its MAC verifies; anything else that looks like one (typed or
pasted by a person, carried in from a chat message or a model's prose, signed with another installation's key
or for another incident) is ordinary text, and the reader says so.

Drafts written before markers were signed carry the same lines without ``mac=``; a draft signed with a key
that is gone (a lost or replaced key file) carries MACs nothing verifies. ``Markers.untrusted()`` reads both
(to find the sections of such a document at all), and the caller must not trust what it finds:
pipeline.redraft treats every section of such a document as edited by a person, so nothing is overwritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pipeline.section_key import SectionKey

_ID = r"(?P<id>[a-z0-9_-]+)"
_MAC = r" mac=(?P<mac>[0-9a-f]{32})"
_START = re.compile(rf"^<!-- pm:section id={_ID} hash=(?P<hash>[0-9a-f]{{16}}){_MAC} -->$")
_END = re.compile(rf"^<!-- pm:end {_ID}{_MAC} -->$")
_SUGGESTION = re.compile(rf"^<!-- pm:suggestion id={_ID} date=(?P<date>[0-9-]{{0,10}}){_MAC} -->$")
_SUGGESTION_END = re.compile(rf"^<!-- pm:end-suggestion {_ID}{_MAC} -->$")
_REMOVED = re.compile(rf"^<!-- pm:removed id={_ID}{_MAC} -->$")
# unverified: drafts written before markers were signed (no mac), or signed with a key that is gone
_ANY_MAC = r"(?: mac=[0-9a-f]{32})?"
_UNTRUSTED_START = re.compile(rf"^<!-- pm:section id={_ID} hash=(?P<hash>[0-9a-f]{{16}}){_ANY_MAC} -->$")
_UNTRUSTED_END = re.compile(rf"^<!-- pm:end {_ID}{_ANY_MAC} -->$")
_UNTRUSTED_SUGGESTION = re.compile(rf"^<!-- pm:suggestion id={_ID}(?: date=(?P<date>[0-9-]*))?{_ANY_MAC} -->$")
_UNTRUSTED_SUGGESTION_END = re.compile(rf"^<!-- pm:end-suggestion {_ID}{_ANY_MAC} -->$")
_LOOKS_LIKE = re.compile(r"^<!--\s*pm:")

Grammar = Literal["signed", "untrusted"]


@dataclass(frozen=True)
class Start:
    id: str
    hash: str


class Markers:
    """Writes and reads the markers of one document (``document``: the incident id) with one key. Reading
    answers only for lines whose MAC verifies (or, in the untrusted grammar, that merely look right)."""

    def __init__(self, key: SectionKey, document: str, grammar: Grammar = "signed") -> None:
        self._key = key
        self.document = document
        self.grammar: Grammar = grammar

    def untrusted(self) -> Markers:
        """A reader that ignores MACs (its answers are not proof of anything; it never reports a removal)."""
        return Markers(self._key, self.document, "untrusted")

    def _mac(self, kind: str, *fields: str) -> str:
        return self._key.mac(self.document, kind, *fields)

    def _ok(self, match: re.Match[str] | None, kind: str, *fields: str) -> bool:
        if match is None:
            return False
        return self.grammar == "untrusted" or self._key.verify(match["mac"], self.document, kind, *fields)

    # --- writing (always signed) ---------------------------------------------------------------------------

    def start(self, section_id: str, digest: str) -> str:
        return f"<!-- pm:section id={section_id} hash={digest} mac={self._mac('section', section_id, digest)} -->"

    def end(self, section_id: str, digest: str) -> str:
        return f"<!-- pm:end {section_id} mac={self._mac('end', section_id, digest)} -->"

    def suggestion(self, section_id: str, day: str) -> str:
        return f"<!-- pm:suggestion id={section_id} date={day} mac={self._mac('suggestion', section_id, day)} -->"

    def suggestion_end(self, section_id: str, day: str) -> str:
        return f"<!-- pm:end-suggestion {section_id} mac={self._mac('end-suggestion', section_id, day)} -->"

    def removed(self, section_id: str) -> str:
        return f"<!-- pm:removed id={section_id} mac={self._mac('removed', section_id)} -->"

    # --- reading ---------------------------------------------------------------------------------------------

    def read_start(self, line: str) -> Start | None:
        m = (_UNTRUSTED_START if self.grammar == "untrusted" else _START).match(line)
        if m is None or not self._ok(m, "section", m["id"], m["hash"]):
            return None
        return Start(m["id"], m["hash"])

    def is_end(self, line: str, section: Start) -> bool:
        m = (_UNTRUSTED_END if self.grammar == "untrusted" else _END).match(line)
        return m is not None and m["id"] == section.id and self._ok(m, "end", section.id, section.hash)

    def read_suggestion(self, line: str, section_id: str) -> str | None:
        """The date of a suggestion block that starts on this line ("" when an old block had none)."""
        m = (_UNTRUSTED_SUGGESTION if self.grammar == "untrusted" else _SUGGESTION).match(line)
        day = (m["date"] or "") if m else ""
        if m is None or m["id"] != section_id or not self._ok(m, "suggestion", section_id, day):
            return None
        return day

    def is_suggestion_end(self, line: str, section_id: str, day: str) -> bool:
        m = (_UNTRUSTED_SUGGESTION_END if self.grammar == "untrusted" else _SUGGESTION_END).match(line)
        return m is not None and m["id"] == section_id and self._ok(m, "end-suggestion", section_id, day)

    def read_removed(self, line: str) -> str | None:
        """A section a person deleted. The untrusted grammar reports none: an unverifiable removal marker would
        keep a section away for good, so it stays text and the deletion is judged as if it had none."""
        if self.grammar == "untrusted":
            return None
        m = _REMOVED.match(line)
        return m["id"] if m is not None and self._ok(m, "removed", m["id"]) else None


def looks_like_marker(line: str) -> bool:
    """A line written to look like a marker (whether or not it is one): worth a note when it is not accepted."""
    return _LOOKS_LIKE.match(line.strip()) is not None


def has_untrusted_start(line: str) -> bool:
    """A line shaped like a section start, signed or not (see ``Markers.untrusted``)."""
    return _UNTRUSTED_START.match(line.strip()) is not None
