"""Find personal data and secrets in text: emails, phone numbers, payment card numbers, API keys and tokens.

`find_pii(text)` scans one string; `scan_texts(texts)` scans many at once (one regex pass over the joined
texts) and says which text each match belongs to. Matches are reported redacted: never print `PiiMatch.text`."""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

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


# (kind, pattern, validator). Patterns start with a literal or a small character set so the regex engine
# can skip ahead quickly over long texts; "must not follow a word character" is checked in `_starts_word`.
# No pattern matches the separator or spans lines.
_PATTERNS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
    ("email", re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), None),
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"), None),
    ("hf_token", re.compile(r"hf_[A-Za-z0-9]{30,}\b"), None),
    ("openai_key", re.compile(r"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"), None),
    ("github_token", re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"), None),
    ("aws_access_key", re.compile(r"A(?:KIA|SIA)[0-9A-Z]{16}\b"), None),
    ("slack_token", re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}"), None),
    ("google_api_key", re.compile(r"AIza[0-9A-Za-z_-]{35}\b"), None),
    ("bearer_token", re.compile(r"[Bb]earer[ \t]+[A-Za-z0-9._~+/-]{20,}=*"), _high_entropy),
    ("secret_assignment", re.compile(
        r"(?i:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key)[\"']?[ \t]*[:=][ \t]*[\"']?"
        r"[A-Za-z0-9._~+/-]{20,}"), _high_entropy),
    ("credit_card", re.compile(r"\d(?:[ -]?\d){12,18}(?![\d-])"), _card),
    ("phone", re.compile(r"(?:(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}|\+\d{10,14})"
                         r"(?![ .-]?\d)"), _phone),
]
# Slow patterns run only near a fast anchor: (anchor, characters of context before it).
_ANCHORS = {
    "secret_assignment": (re.compile(r"[:=][ \t]*[\"']?[A-Za-z0-9._~+/-]{20,}"), 40),
    "credit_card": (re.compile(r"[+(\d][\d ().+-]{8,}\d"), 0),
    "phone": (re.compile(r"[+(\d][\d ().+-]{8,}\d"), 0),
}
_LOCAL_PART = re.compile(r"[A-Za-z0-9._%+-]{1,64}$")  # an email's user name, found leftwards from the @


def _starts_word(text: str, start: int, kind: str) -> bool:
    """Whether a match may start here: not glued to a preceding word (or, for numbers, to digits)."""
    before = text[max(0, start - 2):start]
    if kind in ("credit_card", "phone"):
        return not (before[-1:].isalnum() or before[-1:] in ("+", "-", "_")
                    or (len(before) == 2 and before[0].isdigit() and before[1] in " .-"))
    return not (before[-1:].isalnum() or before[-1:] == "_")


def find_pii(text: str) -> list[PiiMatch]:
    """Every email, phone number, card number (Luhn-valid), API key or token in `text`, in order."""
    found: list[PiiMatch] = []  # sorted by start, never overlapping: earlier patterns win
    starts: list[int] = []
    for kind, pattern, valid in _PATTERNS:
        for m in _matches(text, kind, pattern):
            start = m.start()
            if kind == "email":
                local = _LOCAL_PART.search(text, max(0, start - 64), start)
                if local is None:
                    continue
                start = local.start()
            if not _starts_word(text, start, kind) or (valid is not None and not valid(m.group())):
                continue
            i = bisect_right(starts, start)
            if (i and found[i - 1].end > start) or (i < len(found) and found[i].start < m.end()):
                continue
            found.insert(i, PiiMatch(kind, start, m.end(), text[start:m.end()]))
            starts.insert(i, start)
    return found


def _matches(text: str, kind: str, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
    if kind not in _ANCHORS:
        yield from pattern.finditer(text)
        return
    anchor, back = _ANCHORS[kind]
    done = 0
    for a in anchor.finditer(text):
        start = max(done, a.start() - back)
        for m in pattern.finditer(text, start, a.end()):
            done = m.end()
            yield m


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
