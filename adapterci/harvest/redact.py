"""Personal data and secrets out of failed requests, with the project's detector (`adapterci.data.pii`).

Personal data (e-mail addresses, phone and card numbers) is replaced by a placeholder such as `[EMAIL]`; a request
that holds a secret (an API key, a token, a private key, a password assignment) in any field that would reach the
queue is dropped whole: a secret never leaves, not even masked."""

from __future__ import annotations

from adapterci.data.pii import scan_texts
from adapterci.harvest.select import Failure

REDACTED = {"email", "phone", "credit_card"}
"""Kinds of personal data replaced by `[KIND]`; every other kind the detector finds is a secret."""
_TEXT = ("prompt", "response", "category")
_IDS = ("request_id", "version", "error")
_NUMBERS = {"phone", "credit_card"}  # in an id, digit runs that look like these are ids, not personal data


def redact(failures: list[Failure]) -> tuple[list[Failure], int]:
    """(the failures with personal data replaced, how many were dropped for holding a secret)."""
    fields = _TEXT + _IDS
    texts = [getattr(f, name) for f in failures for name in fields]
    spans: dict[int, list] = {}
    for index, match in scan_texts(texts):
        spans.setdefault(index, []).append(match)
    kept, dropped = [], 0
    for i, failure in enumerate(failures):
        found = [(k, m) for k in range(len(fields)) for m in spans.get(i * len(fields) + k, [])]
        if any(m.kind not in REDACTED or (fields[k] in _IDS and m.kind not in _NUMBERS) for k, m in found):
            dropped += 1  # a secret anywhere, or an e-mail address as an id: the whole request stays behind
            continue
        for k, name in enumerate(_TEXT):
            matches = spans.get(i * len(fields) + k)
            if matches:
                setattr(failure, name, _replace(getattr(failure, name), matches))
                failure.redacted += sorted({m.kind for m in matches} - set(failure.redacted))
        kept.append(failure)
    return kept, dropped


def _replace(text: str, matches) -> str:
    for m in sorted(matches, key=lambda m: m.start, reverse=True):
        text = text[:m.start] + f"[{m.kind.upper()}]" + text[m.end:]
    return text
