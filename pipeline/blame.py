"""Blame lint: blaming or counterfactual language has no place in a blameless postmortem's prose."""

from __future__ import annotations

import re

_BLAME = re.compile(
    r"\b(forg[oe]t(ten)?|human error|operator error|user error|pilot error|should(n'?t| not)? have|"
    r"could have (prevented|avoided|caught|stopped)|would have been (avoided|prevented|caught)|if only|"
    r"careless(ly|ness)?|negligen(t|ce)|sloppy|incompeten(t|ce)|lazy|reckless|"
    r"(his|her|their|whose) fault|at fault|to blame|blame[ds]?|dropped the ball|screwed up|messed up|"
    r"didn'?t bother|failed to (notice|check|follow|read)|"
    r"(caused|triggered|started) by (the |an? |our )?(intern|new hire|junior|engineer|developer|operator|contractor))\b",
    re.IGNORECASE,
)


def blame_hits(text: str) -> list[str]:
    """The blaming phrases in `text`, as written."""
    return [m.group(0) for m in _BLAME.finditer(text)]
