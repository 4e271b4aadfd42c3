"""PII and secret detection: each kind found, look-alikes not, offsets right, output redacted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapterci.data.pii import find_pii, scan_texts

HF = "hf_" + "Qw3rTy7uIoP1aSdFgHjKlZxCvBnM0987"


@pytest.mark.parametrize(("text", "kind", "found"), [
    ("write to jane.doe@example.com today", "email", "jane.doe@example.com"),
    ("call (555) 123-4567 after six", "phone", "(555) 123-4567"),
    ("ring +44 20 7946 0958 please", "phone", "+44 20 7946 0958"),
    ("or +14155550132.", "phone", "+14155550132"),
    ("paid with 4111 1111 1111 1111 yesterday", "credit_card", "4111 1111 1111 1111"),
    ("card 5500-0000-0000-0004 on file", "credit_card", "5500-0000-0000-0004"),
    (f"my token is {HF}", "hf_token", HF),
    ("key sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12 here", "openai_key", "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12"),
    ("ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8 pushed", "github_token", "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
    ("aws AKIAIOSFODNN7EXAMPLE key", "aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x7Yq2LmN8pR4tV6w", "bearer_token",
     "Bearer eyJhbGciOiJIUzI1NiJ9.x7Yq2LmN8pR4tV6w"),
    ('api_key = "Zx81kQ2mPq9LrT4vW7yB3nC6"', "secret_assignment", 'api_key = "Zx81kQ2mPq9LrT4vW7yB3nC6'),
    ("-----BEGIN RSA PRIVATE KEY-----", "private_key", "-----BEGIN RSA PRIVATE KEY-----"),
])
def test_find_pii_finds_each_kind(text: str, kind: str, found: str) -> None:
    [match] = find_pii(text)
    assert (match.kind, match.text) == (kind, found)
    assert text[match.start:match.end] == found


@pytest.mark.parametrize("text", [
    "The battery lasts 2 days and cost 199 dollars in 2019.",
    "Room 1204 on floor 12, checkout at 11:30.",
    "card 4111 1111 1111 1112 is not Luhn-valid",
    "order number 12345678901234",
    "Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "the token: aaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Email the hotel through its website, not by phone.",
    "Use hf_hub_download to fetch files.",
])
def test_find_pii_ignores_look_alikes(text: str) -> None:
    assert find_pii(text) == []


def test_find_pii_several_in_order_without_overlaps() -> None:
    text = f"mail a@b.io or call 555-123-4567, token {HF}"
    assert [m.kind for m in find_pii(text)] == ["email", "phone", "hf_token"]


def test_find_pii_redacted_hides_the_secret() -> None:
    [m] = find_pii(f"token {HF}")
    assert m.redacted.startswith("hf_")
    assert HF not in m.redacted and len(m.redacted) < len(HF)


def test_scan_texts_maps_matches_to_texts() -> None:
    texts = ["nothing here", "x a@b.co", "", "call +1 415 555 0132", "a\x00b c@d.org"]
    got = [(i, m.kind, texts[i][m.start:m.end]) for i, m in scan_texts(texts)]
    assert got == [(1, "email", "a@b.co"), (3, "phone", "+1 415 555 0132"), (4, "email", "c@d.org")]
    assert scan_texts([]) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(list("ab1 2@.-+()x_:=\n") + ["hf_", "555 ", "4111", ".com", "token="]),
                         max_size=30).map("".join), max_size=8))
def test_scan_texts_equals_find_pii_per_text(texts: list[str]) -> None:
    expected = [(i, m) for i, t in enumerate(texts) for m in find_pii(t)]
    assert scan_texts(texts) == expected
