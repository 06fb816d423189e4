"""Secrets and PII are scrubbed here before any text leaves the machine (an LLM prompt, the search index) or is
rendered (a draft, a post, a report).

One `Redactor` per incident. It replaces every detected value with a stable placeholder — `[EMAIL_1]`,
`[AWS_ACCESS_KEY_1]`, `[SECRET_2]` … — numbered per kind in order of first appearance, so the same input in the
same order always gives the same output, and the same value always gets the same placeholder within a Redactor.
The mapping (placeholder → original, kind) lives only in memory: it is never serialised (pickling a Redactor
raises), its values are left out of every repr, and `restore()` puts back only the kinds a policy allows —
never a secret kind, never a card number.

Detection (no detector library for secrets; see `DETECTION` notes below for why):

* vendor tokens by their documented prefixes, modelled on the gitleaks / detect-secrets rules:
  AWS access key ids, GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Slack (`xox?-`, `xapp-`,
  incoming-webhook URLs), Stripe (`sk_/rk_live|test_`, `whsec_`), other prefixed API keys (GitLab `glpat-`,
  Google `AIza`, OpenAI/Anthropic `sk-…`, npm, PyPI, SendGrid), JWTs, PEM private keys;
* the password of `scheme://user:password@host` (only that part is replaced), `curl -u user:password`;
* `password=…`, `"api_key": "…"`, `--token …`, `Authorization: Bearer …`-style assignments (gitleaks'
  generic-api-key idea: a keyword, an assignment, a value that looks like a secret);
* bare high-entropy strings (≥ 32 chars of the base64 alphabet with upper, lower and digits and ≥ 4.2 bits/char);
* e-mail addresses; phone numbers (international `+CC …` and national NANP / trunk-0 formats, candidates found
  by regex and checked with Google's libphonenumber via `phonenumbers`); Luhn-valid card numbers (13–19 digits,
  spaces/dashes allowed, issuer prefix checked); publicly routable IP addresses (policy, see `IpPolicy`).
* A value found in context ("password=abc123 … abc123") is replaced wherever else it occurs in the same text.
  Once a context-dependent secret (`SECRET`, `URL_PASSWORD`, ≥ 6 chars) has been seen, every later occurrence
  of the same value in any text is redacted too ("sweep"); `redact_many` detects over all texts first, so the
  sweep covers earlier texts as well. After replacing, changed text is scanned again until nothing new turns
  up (a value glued to a redacted one is only visible then), so `redact(redact(x)) == redact(x)`.

Shared outputs: `output_mask_kinds` says which kinds a draft, a Slack post, a Jira issue or a report may never
show (secrets and card numbers always; other PII unless masking is turned off or a kind is explicitly put back);
a Redactor built with `kinds=` replaces only those. Placeholders already in a text keep their numbers when a
second Redactor sees it (it numbers new values after them), so re-redacting for an LLM never reuses `[EMAIL_1]`.

Overlaps: the more specific rule wins (private key > vendor token > URL password > assignment > e-mail > card >
phone > IP > entropy), then the longer match. Placeholders already in a text are never touched.

Things incident chat is full of and that are deliberately NOT redacted: ISO timestamps, version strings
(v2.14.0), git SHAs and other hex ids (any length), UUIDs, Kubernetes pod names, Slack `ts` values and user/
channel ids, epoch numbers, percentages, HTTP status codes, durations, PagerDuty ids (P1ABC23), Jira keys
(CHK-812), CamelCase alert names, URL paths of ids, private/loopback/link-local/documentation IP addresses
(runbook addresses carry operational meaning and identify no person; globally routable addresses may identify a
customer, so they are redacted — `ip_policy="all"` or `"none"` changes that). Known over-redaction: a long
base64 blob of mixed case and digits (a pagination cursor) looks like a key and becomes `[SECRET_n]`; a
contiguous 13–19 digit id that happens to be Luhn-valid with a card issuer prefix becomes `[CARD_n]`.

DETECTION — why no detector library for secrets: Yelp's detect-secrets (Apache-2.0, last release 1.5.0 in
May 2024) is built around files: its only public in-process entry for a string, `scan_line`, is the ad-hoc
mode that skips the filters (every word of a chat line comes back as a "high entropy string"), reports
`ghp` instead of the GitHub token and drops JWT signatures, and runs at ~1.2k lines/s here; the filtered path
needs private functions and a code-snippet context. Its rules are simple prefix regexes anyway, so the same
rules are kept here, compiled once and gated by cheap pre-checks. Phone numbers are the one place where a
library clearly beats a regex (country codes, national lengths and validity), so `phonenumbers` is used as a
validator behind a regex candidate finder; it is imported lazily, on the first phone-like candidate.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from phonenumbers import PhoneNumber

# --- kinds -------------------------------------------------------------------------------------------------

EMAIL = "EMAIL"
PHONE = "PHONE"
CARD = "CARD"
IP = "IP"
AWS_ACCESS_KEY = "AWS_ACCESS_KEY"
GITHUB_TOKEN = "GITHUB_TOKEN"
SLACK_TOKEN = "SLACK_TOKEN"
SLACK_WEBHOOK = "SLACK_WEBHOOK"
STRIPE_KEY = "STRIPE_KEY"
API_KEY = "API_KEY"
JWT = "JWT"
PRIVATE_KEY = "PRIVATE_KEY"
URL_PASSWORD = "URL_PASSWORD"
SECRET = "SECRET"

PII_KINDS: frozenset[str] = frozenset({EMAIL, PHONE, CARD, IP})
SECRET_KINDS: frozenset[str] = frozenset(
    {
        AWS_ACCESS_KEY,
        GITHUB_TOKEN,
        SLACK_TOKEN,
        SLACK_WEBHOOK,
        STRIPE_KEY,
        API_KEY,
        JWT,
        PRIVATE_KEY,
        URL_PASSWORD,
        SECRET,
    }
)
ALL_KINDS: frozenset[str] = PII_KINDS | SECRET_KINDS
#: Kinds `restore()` refuses whatever the caller asks: credentials, and full card numbers (PCI DSS).
NEVER_RESTORED: frozenset[str] = SECRET_KINDS | {CARD}
#: Kinds whose values are only recognisable in context; later bare occurrences are swept.
_SWEPT_KINDS: frozenset[str] = frozenset({SECRET, URL_PASSWORD})
_SWEEP_MIN_LEN = 6
#: Originals at least this long are swept from every text, so an output check may look for them anywhere.
KNOWN_VALUE_MIN_LEN = _SWEEP_MIN_LEN
_MAX_PASSES = 4

IpPolicy = Literal["public", "all", "none"]
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "NL", "SE", "ES", "IT", "AU", "IN")

PLACEHOLDER_RE = re.compile(r"\[(?P<kind>[A-Z][A-Z0-9]*(?:_[A-Z][A-Z0-9]*)*)_(?P<n>[1-9][0-9]*)\]")

_A = re.ASCII


class Finding(NamedTuple):
    """One detected value: `text[start:end] == value`. Never log `value`."""

    start: int
    end: int
    kind: str
    value: str
    priority: int

    def __repr__(self) -> str:
        return f"Finding(kind={self.kind!r}, start={self.start}, end={self.end})"


@dataclass(frozen=True, slots=True)
class Redaction:
    """One entry of a Redactor's mapping. The original value is kept out of repr so it cannot reach a log."""

    placeholder: str
    kind: str
    value: str = field(repr=False)


# --- helpers -----------------------------------------------------------------------------------------------


def shannon_entropy(value: str) -> float:
    """Bits per character of `value` (0 for the empty string)."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_issuer_ok(digits: str) -> bool:
    """Issuer (IIN) prefix and length plausible for a payment card: cuts Luhn's 1-in-10 luck on ids and epochs."""
    n = len(digits)
    if not 13 <= n <= 19:
        return False
    first = digits[0]
    if first == "4":  # Visa
        return n in (13, 16, 19)
    two = int(digits[:2])
    if first == "3":  # Amex 34/37 (15), JCB 35 (16-19), Diners 30/36/38/39 (14-19)
        return (two in (34, 37) and n == 15) or (two in (30, 35, 36, 38, 39) and n >= 14)
    if first == "5":  # Mastercard 51-55, Maestro 50/56-59
        return n == 16 if 51 <= two <= 55 else n >= 13
    if first == "2":  # Mastercard 2221-2720, Mir 2200-2204
        four = int(digits[:4])
        return n >= 16 and (2221 <= four <= 2720 or 2200 <= four <= 2204)
    if first == "6":  # Discover, UnionPay, Maestro, RuPay
        return n >= 16
    return False


_HEX_RE = re.compile(r"[0-9a-fA-F]+", _A)
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", _A)
_NOT_A_VALUE_RE = re.compile(
    r"""(?ix)
    (?: \$\{?[A-Za-z_][\w.]*\}? | \{\{.*\}\} | %\(\w+\)s | <[A-Za-z][A-Za-z\ _.-]*> | \*+ | x{3,} | \.{3} | … | \#+ )\Z
    | (?: true|false|null|nil|none|yes|no|on|off|empty|unset|missing|redacted|masked|hidden|removed|n/?a|tbd
        |enabled|disabled|required|optional|expired|rotated|invalid|wrong|incorrect|changed|reset|set|ok )\Z
    """
)
_SECRET_KEY_SUFFIX_RE = re.compile(
    r"(?i)(?:name|names|ref|keyref|path|file|dir|id|ids|url|uri|arn|type|kind|ttl|length|len|expiry|expires"
    r"|expiration|expires_at|expires_in|age|count|size|version|policy|rotation|field|header|env|var|manager"
    r"|store|provider|mode|enabled|required|prefix|format|limit|limits|source|backend|engine|timeout)\Z"
)


def _looks_random(value: str, *, min_len: int, min_entropy: float) -> bool:
    return (
        len(value) >= min_len
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and shannon_entropy(value) >= min_entropy
    )


# --- rules -------------------------------------------------------------------------------------------------

# Higher priority wins an overlap; among equals the longer span wins.
_P_PRIVATE_KEY = 100
_P_VENDOR = 90
_P_URL = 80
_P_ASSIGN = 70
_P_EMAIL = 60
_P_CARD = 55
_P_PHONE = 50
_P_IP = 40
_P_ENTROPY = 30
_P_SWEEP = 20

_PRIVATE_KEY_RE = re.compile(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|.*)",
    re.DOTALL | _A,
)
# (kind, regex); group "v" if present is the redacted part, else the whole match.
_VENDOR_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (JWT, re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", _A)),
    (AWS_ACCESS_KEY, re.compile(r"(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])", _A)),
    (
        GITHUB_TOKEN,
        re.compile(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])", _A
        ),
    ),
    (SLACK_WEBHOOK, re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{16,}", _A)),
    (SLACK_TOKEN, re.compile(r"(?<![A-Za-z0-9-])(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}", _A)),
    (
        STRIPE_KEY,
        re.compile(r"(?<![A-Za-z0-9_])(?:(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99}|whsec_[A-Za-z0-9]{24,})", _A),
    ),
    (
        API_KEY,
        re.compile(
            r"(?<![A-Za-z0-9_-])(?:glpat-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}"
            r"|sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_-]{32,}|npm_[A-Za-z0-9]{36}"
            r"|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})",
            _A,
        ),
    ),
)
_VENDOR_TRIGGER_RE = re.compile(
    r"eyJ|A3T|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|hooks\.slack|xox|xapp-|_live_|_test_|_prod_|whsec_"
    r"|glpat-|AIza|sk-|npm_|pypi-|SG\.",
    _A,
)
_URL_PASSWORD_RE = re.compile(
    r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s:/@\[\]]*:(?P<v>[^\s/]+)@(?=[A-Za-z0-9\[])", _A
)
_CURL_USER_RE = re.compile(r"(?<!\S)(?:-u|--user)\s+['\"]?[^\s:'\"]+:(?P<v>[^\s'\"]+)", _A)

_STRONG_KEYWORDS = r"passw(?:or)?d|passwd|passphrase|pwd|secret"
_WEAK_KEYWORDS = (
    r"token|api[_.-]?key|apikey|access[_.-]?key|private[_.-]?key|signing[_.-]?key|encryption[_.-]?key"
    r"|master[_.-]?key|auth[_.-]?key|credentials?|creds|signature|session[_.-]?key"
)
_ASSIGN_RE = re.compile(
    r"(?i)(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]{0,40}?(?:(?P<strong>"
    + _STRONG_KEYWORDS
    + r")|"
    + _WEAK_KEYWORDS
    + r")[A-Za-z0-9_.-]{0,30})[\"']?[ \t]*(?::=|=>|=|:)[ \t]*"
    r"(?:\"(?P<dq>[^\"\n]{1,200})\"|'(?P<sq>[^'\n]{1,200})'|`(?P<bq>[^`\n]{1,200})`|(?P<v>[^\s\"'`]{1,200}))",
    _A,
)
_FLAG_RE = re.compile(
    r"(?i)(?<!\S)--(?P<key>[a-z0-9-]*(?:password|passwd|passphrase|secret|token|api-key|apikey))[ \t]+"
    r"(?:\"(?P<dq>[^\"\n]{1,200})\"|'(?P<sq>[^'\n]{1,200})'|(?P<v>[^\s\"'`]{1,200}))",
    _A,
)
_PROSE_PASSWORD_RE = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:password|passwd|passphrase)[ \t]+(?:is|was)[:]?[ \t]+[\"'`]?(?P<v>[^\s\"'`]{3,200})", _A
)
_BEARER_RE = re.compile(r"(?i)(?<![A-Za-z0-9])(?:bearer|basic|token)[ \t]+(?P<v>[A-Za-z0-9._~+/-]{12,}=*)", _A)


def _keyword_hint(text: str) -> bool:
    """Cheap pre-check for the assignment rules (an unrolled `in` chain beats a case-insensitive regex 10x)."""
    low = text.lower()
    return (
        "pass" in low
        or "secret" in low
        or "token" in low
        or "key" in low
        or "pwd" in low
        or "cred" in low
        or "bearer" in low
        or "basic" in low
        or "signature" in low
        or "-u " in low
        or "--user" in low
    )


_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![A-Za-z0-9-])",
    _A,
)
_EMAIL_KEEP_LOCAL = frozenset({"git"})  # git@github.com:org/repo — an address of a service, not a person

_DIGIT_RUN_RE = re.compile(r"\d(?:[ ().-]{0,2}\d){6}", _A)
_PHONE_INTL_RE = re.compile(r"(?<![\w+/=])\+\d(?:[ .()-]{0,2}\d){6,16}(?!\d)", _A)
# national formats: never glued to a time ("14:31:07.512000+00:00"), a path or a longer number
_PHONE_NANP_RE = re.compile(r"(?<![\w+./:-])(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w+:-]|\.\d)", _A)
_PHONE_TRUNK_RE = re.compile(
    r"(?<![\w+./:-])(?:\(0\d{1,4}\)|0\d{1,4})[ /.-]?\d{2,8}(?:[ .-]\d{2,8}){0,3}(?![\w+:-]|\.\d)", _A
)
_DATE_LIKE_RE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}\Z", _A)
_CARD_RE = re.compile(r"(?<![\w.,+-])\d(?:[ -]?\d){12,}(?![\w-]|[.,]\d)", _A)
_DIGITS_RE = re.compile(r"\d+", _A)

_IPV4_RE = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)", _A
)
_IPV4_HINT_RE = re.compile(r"\d\.\d{1,3}\.\d{1,3}\.\d", _A)
_IPV6_RE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])", _A)

_ENTROPY_RE = re.compile(r"(?<![A-Za-z0-9_+/=-])[A-Za-z0-9_+/-]{32,}={0,2}(?![A-Za-z0-9_+/=-])", _A)
_ENTROPY_MIN_BITS = 4.2


def _group_span(m: re.Match[str]) -> tuple[int, int, str] | None:
    for name in ("v", "dq", "sq", "bq"):
        if name in m.re.groupindex and m.group(name) is not None:
            value = m.group(name)
            if name == "v":  # an unquoted value runs to whitespace (`a&Zq9!…` is one password), less prose punctuation
                value = _trim_unquoted(value)
            return m.start(name), m.start(name) + len(value), value
    return None


_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}


def _trim_unquoted(value: str) -> str:
    """Drop what ends a sentence or closes a bracket the value did not open: `(password=abc123).` → `abc123`."""
    while value:
        last = value[-1]
        if last in ".,;:!?" or (last in _CLOSERS and _CLOSERS[last] not in value):
            value = value[:-1]
        else:
            break
    return value


# --- the detector ------------------------------------------------------------------------------------------


class Detector:
    """Stateless detection: `scan(text)` returns non-overlapping findings in text order.

    `kinds` limits what is reported (every kind by default). The filter applies to the candidates, before
    overlaps are resolved, so a secret is still found inside a span a kind left out would have claimed (an
    entropy-looking token in an e-mail's local part when e-mails are kept). `entropy=False` leaves out the bare
    high-entropy rule, the one heuristic that fires on generated names (`20250814T170200Z-PayHarborApiErrorRate`):
    checks of texts the pipeline writes itself (a report) use it; redaction never does."""

    def __init__(
        self,
        *,
        ip_policy: IpPolicy = "public",
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        kinds: Collection[str] | None = None,
        entropy: bool = True,
    ) -> None:
        if ip_policy not in ("public", "all", "none"):
            raise ValueError(f"ip_policy must be 'public', 'all' or 'none', not {ip_policy!r}")
        self.ip_policy: IpPolicy = ip_policy
        self.phone_regions = tuple(phone_regions)
        self.kinds: frozenset[str] = ALL_KINDS if kinds is None else frozenset(kinds)
        self.entropy = entropy
        unknown = self.kinds - ALL_KINDS
        if unknown:
            raise ValueError(f"unknown kinds: {', '.join(sorted(unknown))}")

    def __repr__(self) -> str:
        return f"Detector(ip_policy={self.ip_policy!r}, phone_regions={self.phone_regions!r}, kinds={len(self.kinds)})"

    # The pre-checks below are what makes clean text cheap: each family runs only when a substring it cannot
    # match without is present.
    def candidates(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        if "PRIVATE KEY" in text:
            out.extend(_whole(_PRIVATE_KEY_RE, text, PRIVATE_KEY, _P_PRIVATE_KEY))
        if _VENDOR_TRIGGER_RE.search(text):
            for kind, rx in _VENDOR_RULES:
                out.extend(_whole(rx, text, kind, _P_VENDOR))
        has_at = "@" in text
        if has_at and "://" in text:
            out.extend(_grouped(_URL_PASSWORD_RE, text, URL_PASSWORD, _P_URL))
        if _keyword_hint(text):
            out.extend(self._assignments(text))
        if has_at:
            out.extend(
                Finding(m.start(), m.end(), EMAIL, m.group(), _P_EMAIL)
                for m in _EMAIL_RE.finditer(text)
                if m.group().split("@", 1)[0].lower() not in _EMAIL_KEEP_LOCAL
            )
        if _DIGIT_RUN_RE.search(text):
            out.extend(self._cards(text))
            out.extend(self._phones(text))
        if self.ip_policy != "none":
            if _IPV4_HINT_RE.search(text):
                out.extend(self._ips(_IPV4_RE, text))
            if text.count(":") >= 2:
                out.extend(self._ips(_IPV6_RE, text))
        if self.entropy and len(text) >= 32 and _ENTROPY_RE.search(text):
            out.extend(_entropy(text))
        return out

    def scan(self, text: str) -> list[Finding]:
        protected = _placeholder_spans(text)
        candidates = self.candidates(text)
        if self.kinds is not ALL_KINDS:
            candidates = [f for f in candidates if f.kind in self.kinds]
        found = resolve(candidates, protected)
        if not found:
            return found
        # a value found in context ("password=abc123 … abc123") is redacted wherever else it occurs in the text
        again = [
            Finding(start, start + len(f.value), f.kind, f.value, _P_SWEEP)
            for f in found
            for start in _occurrences(text, f.value)
            if start != f.start
        ]
        return resolve([*found, *again], protected) if again else found

    def _assignments(self, text: str) -> Iterator[Finding]:
        for m in _ASSIGN_RE.finditer(text):
            span = _group_span(m)
            if span is None:
                continue
            start, end, value = span
            key = m.group("key")
            if key.lower() in ("pwd", "oldpwd") or _SECRET_KEY_SUFFIX_RE.search(key):
                continue
            if _is_not_a_value(value):
                continue
            strong = m.group("strong") is not None
            if (strong and len(value) >= 3) or _looks_random(value, min_len=10, min_entropy=3.3):
                yield Finding(start, end, SECRET, value, _P_ASSIGN)
        for m in _FLAG_RE.finditer(text):
            span = _group_span(m)
            if span is not None and not _is_not_a_value(span[2]):
                yield Finding(span[0], span[1], SECRET, span[2], _P_ASSIGN)
        for m in _PROSE_PASSWORD_RE.finditer(text):
            value = m.group("v").rstrip(".,;:!?)")
            if value and not _is_not_a_value(value) and any(not c.isalpha() for c in value):
                yield Finding(m.start("v"), m.start("v") + len(value), SECRET, value, _P_ASSIGN)
        for m in _BEARER_RE.finditer(text):
            value = m.group("v")
            if _is_not_a_value(value):
                continue
            if any(c.isdigit() for c in value) or (any(c.isupper() for c in value) and any(c.islower() for c in value)):
                yield Finding(m.start("v"), m.end("v"), SECRET, value, _P_ASSIGN)
        yield from _grouped(_CURL_USER_RE, text, SECRET, _P_ASSIGN)

    def _cards(self, text: str) -> Iterator[Finding]:
        for m in _CARD_RE.finditer(text):
            groups = [(g.start(), g.end()) for g in _DIGITS_RE.finditer(m.group())]
            base, cand = m.start(), m.group()
            i = 0
            while i < len(groups):
                for j in range(min(len(groups), i + 6), i, -1):
                    window = groups[i:j]
                    if j - i > 1 and not all(3 <= e - s <= 6 for s, e in window):
                        continue  # cards are written 4-4-4-4, 4-6-5, 4-4-4-4-3; "5-6543-01415492" is an id
                    value = cand[window[0][0] : window[-1][1]]
                    digits = "".join(cand[s:e] for s, e in window)
                    if _card_issuer_ok(digits) and luhn_ok(digits):
                        yield Finding(base + window[0][0], base + window[-1][1], CARD, value, _P_CARD)
                        i = j
                        break
                else:
                    i += 1

    def _phones(self, text: str) -> Iterator[Finding]:
        for m in _PHONE_INTL_RE.finditer(text):
            hit = _trim_to_phone(m.group(), _intl_phone_ok)
            if hit:
                yield Finding(m.start(), m.start() + len(hit), PHONE, hit, _P_PHONE)
        for rx, regions in ((_PHONE_NANP_RE, ("US",)), (_PHONE_TRUNK_RE, self.phone_regions)):
            for m in rx.finditer(text):
                cand = m.group()
                if _DATE_LIKE_RE.match(cand):
                    continue
                hit = _trim_to_phone(cand, partial(_national_phone_ok, regions=regions))
                if hit:
                    yield Finding(m.start(), m.start() + len(hit), PHONE, hit, _P_PHONE)

    def _ips(self, rx: re.Pattern[str], text: str) -> Iterator[Finding]:
        for m in rx.finditer(text):
            try:
                addr = ipaddress.ip_address(m.group())
            except ValueError:
                continue
            if self.ip_policy == "all" or addr.is_global:
                yield Finding(m.start(), m.end(), IP, m.group(), _P_IP)


def _whole(rx: re.Pattern[str], text: str, kind: str, priority: int) -> Iterator[Finding]:
    for m in rx.finditer(text):
        yield Finding(m.start(), m.end(), kind, m.group(), priority)


def _grouped(rx: re.Pattern[str], text: str, kind: str, priority: int) -> Iterator[Finding]:
    for m in rx.finditer(text):
        value = m.group("v")
        if not PLACEHOLDER_RE.fullmatch(value):
            yield Finding(m.start("v"), m.end("v"), kind, value, priority)


def _occurrences(text: str, value: str) -> Iterator[int]:
    start = text.find(value)
    while start != -1:
        yield start
        start = text.find(value, start + len(value))


def _is_not_a_value(value: str) -> bool:
    return bool(PLACEHOLDER_RE.fullmatch(value) or _NOT_A_VALUE_RE.match(value)) or not value.strip()


def _random_token(token: str) -> bool:
    core = token.rstrip("=")
    return not (
        len(core) < 32
        or _HEX_RE.fullmatch(core)
        or _UUID_RE.search(core)
        or not any(c.isupper() for c in core)
        or not any(c.islower() for c in core)
        or sum(c.isdigit() for c in core) < 2
        or shannon_entropy(core) < _ENTROPY_MIN_BITS
    )


_PATH_WORD_RE = re.compile(r"[a-z_.-]{3,}", _A)


def _entropy(text: str) -> Iterator[Finding]:
    for m in _ENTROPY_RE.finditer(text):
        token = m.group()
        segments = token.split("/")
        if len(segments) > 1 and any(_PATH_WORD_RE.fullmatch(seg) for seg in segments):
            # a URL or file path ("com/incidents/Q3M9ZT7WX2KDLP/log_entries/R1TRG4312A0001"): judge each
            # segment on its own, so a token in a path (a webhook secret) is still caught
            pos = m.start()
            for seg in segments:
                if _random_token(seg):
                    yield Finding(pos, pos + len(seg), SECRET, seg, _P_ENTROPY)
                pos += len(seg) + 1
        elif _random_token(token):
            yield Finding(m.start(), m.end(), SECRET, token, _P_ENTROPY)


def _trim_to_phone(candidate: str, ok: Callable[[str], bool]) -> str | None:
    """The longest prefix of `candidate`, cut at a separator, that `ok` accepts (regexes over-reach into
    a following number: "+1 415 555 0142 3 times")."""
    cand = candidate.rstrip(" .()-")
    while cand:
        if sum(c.isdigit() for c in cand) < 7:
            return None
        if ok(cand):
            return cand
        cut = max(cand.rfind(" "), cand.rfind("-"), cand.rfind("."))
        if cut <= 0:
            return None
        cand = cand[:cut].rstrip(" .()-")
    return None


def _parse_phone(value: str, region: str | None) -> PhoneNumber | None:
    import phonenumbers  # lazily: ~40 ms, and only texts with a phone-like digit run ever need it

    try:
        return phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None


def _intl_phone_ok(value: str) -> bool:
    import phonenumbers

    number = _parse_phone(value, None)
    if number is None:
        return False
    reason = phonenumbers.is_possible_number_with_reason(number)
    return reason == phonenumbers.ValidationResult.IS_POSSIBLE or phonenumbers.is_valid_number(number)


def _national_phone_ok(value: str, regions: Sequence[str]) -> bool:
    import phonenumbers

    for region in regions:
        number = _parse_phone(value, region)
        if number is not None and phonenumbers.is_valid_number_for_region(number, region):
            return True
    return False


def _placeholder_spans(text: str) -> list[tuple[int, int]]:
    if "[" not in text:
        return []
    return [m.span() for m in PLACEHOLDER_RE.finditer(text)]


def resolve(candidates: Iterable[Finding], protected: Sequence[tuple[int, int]] = ()) -> list[Finding]:
    """Non-overlapping findings in text order: higher priority, then the longer span, wins an overlap;
    nothing may touch a `protected` span (placeholders already in the text)."""
    ranked = sorted(candidates, key=lambda f: (-f.priority, f.start - f.end, f.start))
    taken: list[tuple[int, int]] = list(protected)
    kept: list[Finding] = []
    for f in ranked:
        if f.end <= f.start:
            continue
        if any(f.start < e and s < f.end for s, e in taken):
            continue
        taken.append((f.start, f.end))
        kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept


# --- the redactor ------------------------------------------------------------------------------------------


class Redactor:
    """Scrubs one incident's texts. Same value → same placeholder; numbering per kind by first appearance.

    Not thread-safe (its numbering is its state); use one per incident. It refuses to be pickled, so the
    mapping cannot end up in a task-result store or a cache by accident.
    """

    def __init__(
        self,
        *,
        ip_policy: IpPolicy = "public",
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        detector: Detector | None = None,
        kinds: Collection[str] | None = None,
    ) -> None:
        if detector is not None and kinds is not None:
            raise ValueError("pass kinds to the Detector, or no Detector")
        self.detector = detector or Detector(ip_policy=ip_policy, phone_regions=phone_regions, kinds=kinds)
        self._by_value: dict[str, Redaction] = {}
        self._by_placeholder: dict[str, Redaction] = {}
        self._counters: Counter[str] = Counter()
        self._occurrences: Counter[str] = Counter()
        self._swept: list[str] = []  # context-dependent values, longest first

    def __repr__(self) -> str:
        return f"Redactor(findings={dict(sorted(self._occurrences.items()))})"

    def __getstate__(self) -> object:
        raise TypeError("a Redactor holds the original secrets and is never serialised")

    # --- public API --------------------------------------------------------------------------------------

    @property
    def mapping(self) -> Mapping[str, Redaction]:
        """placeholder → Redaction(placeholder, kind, value); read-only, in memory only."""
        return MappingProxyType(self._by_placeholder)

    @property
    def findings(self) -> dict[str, int]:
        """Occurrences replaced per kind so far (safe to log: counts only)."""
        return dict(sorted(self._occurrences.items()))

    @property
    def distinct(self) -> dict[str, int]:
        """Distinct values per kind so far (placeholder numbers may run higher: see `_reserve`)."""
        return dict(sorted(Counter(entry.kind for entry in self._by_value.values()).items()))

    def redact(self, text: str) -> str:
        self._reserve(text)
        findings = self.detector.scan(text)
        for f in findings:
            self._register(f.kind, f.value)
        return self._finish(text, findings)

    def redact_many(self, texts: Iterable[str]) -> list[str]:
        """Redact a batch. Detection runs over every text before anything is replaced, so a secret seen in
        context anywhere in the batch is also swept from the texts before it."""
        items = list(texts)
        scan = self.detector.scan
        found: list[list[Finding]] = []
        for text in items:
            self._reserve(text)
            fs = scan(text)
            for f in fs:
                self._register(f.kind, f.value)
            found.append(fs)
        return [self._finish(text, fs) for text, fs in zip(items, found, strict=True)]

    def redact_data(self, value: Any) -> Any:
        """Redact every string inside JSON-like data (dicts, lists, tuples); keys are kept."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self.redact_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_data(v) for v in value]
        return value

    def restore(self, text: str, kinds: Collection[str]) -> str:
        """Put back the originals of the placeholders whose kind is in `kinds`; everything else stays redacted.
        Secret kinds and card numbers are never restored: asking for them is a programming error."""
        allowed = set(kinds)
        refused = allowed & NEVER_RESTORED
        if refused:
            raise ValueError(f"these kinds are never restored: {', '.join(sorted(refused))}")
        unknown = allowed - ALL_KINDS
        if unknown:
            raise ValueError(f"unknown kinds: {', '.join(sorted(unknown))}")
        if not allowed or "[" not in text:
            return text

        def put_back(m: re.Match[str]) -> str:
            entry = self._by_placeholder.get(m.group())
            return entry.value if entry is not None and entry.kind in allowed else m.group()

        return PLACEHOLDER_RE.sub(put_back, text)

    def contains_known_value(self, text: str, *, kinds: Collection[str] | None = None, min_length: int = 1) -> bool:
        """True when `text` holds any original value this Redactor has replaced (a last check before a prompt
        or an index write). `kinds` limits the check to values of those kinds; `min_length` skips short values
        (a three-letter password found in context may legitimately occur as a word elsewhere)."""
        return bool(self.known_kinds_in(text, kinds=kinds, min_length=min_length))

    def known_kinds_in(self, text: str, *, kinds: Collection[str] | None = None, min_length: int = 1) -> list[str]:
        """The kinds (never the values) of the originals this Redactor replaced that occur in `text`."""
        wanted = None if kinds is None else set(kinds)
        found = {
            entry.kind
            for value, entry in self._by_value.items()
            if len(value) >= min_length and (wanted is None or entry.kind in wanted) and value in text
        }
        return sorted(found)

    # --- internals ---------------------------------------------------------------------------------------

    def _reserve(self, text: str) -> None:
        """Placeholders another Redactor already put in `text` keep their numbers: a new value of the same kind
        gets the next free one, so `[EMAIL_1]` never stands for two different addresses (texts scrubbed once
        for the outputs are redacted again before an LLM call or an index write)."""
        if "[" not in text:
            return
        for m in PLACEHOLDER_RE.finditer(text):
            kind, n = m.group("kind"), int(m.group("n"))
            if kind in ALL_KINDS and m.group() not in self._by_placeholder and n > self._counters[kind]:
                self._counters[kind] = n

    def _register(self, kind: str, value: str) -> Redaction:
        entry = self._by_value.get(value)
        if entry is None:
            self._counters[kind] += 1
            entry = Redaction(f"[{kind}_{self._counters[kind]}]", kind, value)
            self._by_value[value] = entry
            self._by_placeholder[entry.placeholder] = entry
            if kind in _SWEPT_KINDS and len(value) >= _SWEEP_MIN_LEN:
                self._swept.append(value)
                self._swept.sort(key=len, reverse=True)
        return entry

    def _sweep(self, text: str, findings: list[Finding]) -> list[Finding]:
        extra = [
            Finding(start, start + len(value), self._by_value[value].kind, value, _P_SWEEP)
            for value in self._swept
            for start in _occurrences(text, value)
        ]
        if not extra:
            return findings
        return resolve([*findings, *extra], _placeholder_spans(text))

    def _finish(self, text: str, findings: list[Finding]) -> str:
        """Render, then re-scan what changed: a value glued to a redacted one ("AKIA…+44 7700 900000") is only
        recognisable once its neighbour is a placeholder. Repeats to a fixpoint, so redaction is idempotent."""
        out = self._render(text, findings)
        for _ in range(_MAX_PASSES):
            if out == text:
                break
            text = out
            more = self.detector.scan(text)
            for f in more:
                self._register(f.kind, f.value)
            out = self._render(text, more)
        return out

    def _render(self, text: str, findings: list[Finding]) -> str:
        if self._swept:
            findings = self._sweep(text, findings)
        if not findings:
            return text
        parts: list[str] = []
        pos = 0
        for f in findings:
            entry = self._by_value[f.value]
            self._occurrences[entry.kind] += 1
            parts.append(text[pos : f.start])
            parts.append(entry.placeholder)
            pos = f.end
        parts.append(text[pos:])
        return "".join(parts)


def output_mask_kinds(mask_pii: bool, restore_kinds: Collection[str] = ()) -> frozenset[str]:
    """The kinds masked in shared outputs (Markdown, JSON, Slack, Jira, reports): secrets and card numbers
    always; the other PII kinds unless `mask_pii` is off or a policy explicitly puts them back. Asking to put
    back a secret kind, a card number or an unknown kind is a configuration error, never silently ignored."""
    wanted = frozenset(restore_kinds)
    if wanted & NEVER_RESTORED or wanted - ALL_KINDS:
        bad = ", ".join(sorted((wanted & NEVER_RESTORED) | (wanted - ALL_KINDS)))
        raise ConfigError(
            f"redaction_restore_kinds: {bad} cannot be put back in outputs "
            f"(secrets and card numbers are never restored; known PII kinds: {', '.join(sorted(PII_KINDS - {CARD}))})"
        )
    if not mask_pii:
        return NEVER_RESTORED
    return ALL_KINDS - wanted


def redact_text(text: str) -> str:
    """One-off redaction with a fresh Redactor (no shared numbering)."""
    return Redactor().redact(text)
