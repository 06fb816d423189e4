"""Ranking for the similar-incident index: reciprocal rank fusion of the dense and lexical chunk rankings into
incidents, and the hit each incident becomes (why it matched: best section, snippet, rank in each list)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.index_lexical import Snapshot, tokenize

Mode = Literal["hybrid", "dense", "lexical"]
Aggregate = Literal["max", "sum"]
RRF_K = 60
SUM_TOP_CHUNKS = 3  # "sum" aggregation: an incident scores the sum of its best chunks' RRF scores
SNIPPET_CHARS = 240


class SearchHit(BaseModel):
    """One past incident, and why it matched: its best section and a snippet from it, and its rank (1 = first)
    among incidents in the dense and the lexical candidate lists (None: not among that list's candidates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str
    title: str
    score: float = Field(description="Reciprocal-rank-fusion score (higher is better).")
    date: dt.date | None = None
    services: list[str] = Field(default_factory=list)
    severity: str | None = None
    visibility: str
    tags: list[str] = Field(default_factory=list)
    section: str
    snippet: str
    dense_rank: int | None = None
    lexical_rank: int | None = None
    source: str


def snippet(text: str, query: str, width: int = SNIPPET_CHARS) -> str:
    """The window of `text` (at most `width` characters, on word boundaries) holding the most query terms."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    words = list(re.finditer(r"\S+", text))
    terms = set(tokenize(query))
    hits = [1 if terms.intersection(tokenize(w[0])) else 0 for w in words]
    best, best_start, total, start = -1, 0, 0, 0
    for end, word in enumerate(words):
        total += hits[end]
        while word.end() - words[start].start() > width:
            total -= hits[start]
            start += 1
        if total > best:
            best, best_start = total, start
    first = words[best_start].start()
    last = first
    for word in words[best_start:]:
        if word.end() - first > width:
            break
        last = word.end()
    return ("…" if first > 0 else "") + text[first:last] + ("…" if last < len(text) else "")


def fuse(
    snap: Snapshot, query: str, dense: list[int], lexical: list[int], k: int, aggregate: Aggregate = "max"
) -> list[SearchHit]:
    """Reciprocal rank fusion (k=60) of chunk rankings (snapshot rows, best first) into the top `k` incidents.

    "max": each list ranks incidents by their best chunk; an incident scores the sum over lists of
    1 / (60 + its rank). "sum": each chunk scores the sum over lists of 1 / (60 + its rank), and an incident the sum
    of its SUM_TOP_CHUNKS best chunks. The hit's section and snippet come from its best-scoring chunk."""
    chunk_score: dict[int, float] = {}
    incident_rank: list[dict[str, int]] = []
    for ranking in (dense, lexical):
        ranks: dict[str, int] = {}
        for position, row in enumerate(ranking, start=1):
            chunk_score[row] = chunk_score.get(row, 0.0) + 1.0 / (RRF_K + position)
            ranks.setdefault(snap.chunks[row].incident_id, len(ranks) + 1)
        incident_rank.append(ranks)
    best: dict[str, int] = {}
    per_incident: dict[str, list[float]] = {}
    for row, score in chunk_score.items():
        incident = snap.chunks[row].incident_id
        per_incident.setdefault(incident, []).append(score)
        if incident not in best or score > chunk_score[best[incident]]:
            best[incident] = row
    scores: dict[str, float] = {}
    for incident, chunk_scores in per_incident.items():
        if aggregate == "sum":
            scores[incident] = sum(sorted(chunk_scores, reverse=True)[:SUM_TOP_CHUNKS])
        else:
            scores[incident] = sum(1.0 / (RRF_K + r[incident]) for r in incident_rank if incident in r)
    order = sorted(
        scores,
        key=lambda i: (-scores[i], min(r.get(i, 10**9) for r in incident_rank), i),
    )
    hits: list[SearchHit] = []
    for incident in order[:k]:
        entry, chunk = snap.entries[incident], snap.chunks[best[incident]]
        hits.append(
            SearchHit(
                incident_id=incident,
                title=entry.title,
                score=round(scores[incident], 6),
                date=entry.date,
                services=list(entry.services),
                severity=entry.severity,
                visibility=entry.visibility,
                tags=list(entry.tags),
                section=chunk.section,
                snippet=snippet(chunk.text, query),
                dense_rank=incident_rank[0].get(incident),
                lexical_rank=incident_rank[1].get(incident),
                source=entry.source,
            )
        )
    return hits
