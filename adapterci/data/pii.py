"""Find personal data and secrets in text: emails, phone numbers, payment card numbers, API keys and tokens.

`find_pii(text)` scans one string; `scan_texts(texts)` scans many at once (one regex pass over the joined
texts) and says which text each match belongs to. Matches are reported redacted: never print `PiiMatch.text`."""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

_SEP = "\x00"  # joins texts for the bulk scan; no pattern matches it


@dataclass(frozen=True)
class PiiMatch:
    """One finding: its kind, where it is in the text, and the matched text (secret: show `redacted` only)."""

    kind: str
    start: int
    end: int
    text: str

    @property
    def redacted(self) -> str:
        """A printable hint: the first characters of the match, the rest masked."""
        keep = min(4, len(self.text) // 4)
        return self.text[:keep] + "*" * max(3, min(12, len(self.text) - keep))


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and _luhn_ok(digits)


def _phone(match: str) -> bool:
    return 10 <= len(re.sub(r"\D", "", match)) <= 15


def _entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _high_entropy(match: str) -> bool:
    token = re.split(r"[\s:=\"']+", match.strip())[-1]
    classes = sum(bool(re.search(p, token)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
    return len(token) >= 20 and classes >= 2 and _entropy(token) >= 3.5


# (kind, pattern, validator); patterns never match the separator or span lines.
_PATTERNS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), None),
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"), None),
    ("hf_token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), None),
    ("openai_key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"), None),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"), None),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), None),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), None),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), None),
    ("bearer_token", re.compile(r"\b[Bb]earer[ \t]+[A-Za-z0-9._~+/-]{20,}=*"), _high_entropy),
    ("secret_assignment", re.compile(
        r"(?i)\b(?:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key)[\"']?[ \t]*[:=][ \t]*[\"']?"
        r"[A-Za-z0-9._~+/-]{20,}"), _high_entropy),
    ("credit_card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card),
    ("phone", re.compile(r"(?<![\w+])(?<!\d[ .-])(?:(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])"
                         r"\d{3,4}[ .-]\d{3,4}|\+\d{10,14})(?![ .-]?\d)"), _phone),
]


def find_pii(text: str) -> list[PiiMatch]:
    """Every email, phone number, card number (Luhn-valid), API key or token in `text`, in order."""
    found: list[PiiMatch] = []  # sorted by start, never overlapping: earlier patterns win
    starts: list[int] = []
    for kind, pattern, valid in _PATTERNS:
        for m in pattern.finditer(text):
            if valid is not None and not valid(m.group()):
                continue
            i = bisect_right(starts, m.start())
            if (i and found[i - 1].end > m.start()) or (i < len(found) and found[i].start < m.end()):
                continue
            found.insert(i, PiiMatch(kind, m.start(), m.end(), m.group()))
            starts.insert(i, m.start())
    return found


def scan_texts(texts: Sequence[str]) -> list[tuple[int, PiiMatch]]:
    """`find_pii` over many texts in one pass: (index of the text, match with offsets inside that text)."""
    joined = _SEP.join(t.replace(_SEP, " ") for t in texts)
    starts = [0]
    for t in texts[:-1]:
        starts.append(starts[-1] + len(t) + 1)
    out = []
    for m in find_pii(joined):
        i = bisect_right(starts, m.start) - 1
        out.append((i, PiiMatch(m.kind, m.start - starts[i], m.end - starts[i], m.text)))
    return out
