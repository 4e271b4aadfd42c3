"""The refusal and leak detectors on their own."""

from __future__ import annotations

import pytest

from adapterci.eval.config import Refusal
from adapterci.eval.refusal import LeakDetector, PatternDetector, prefers_refusal

DEFAULT = PatternDetector(tuple(Refusal().patterns))


@pytest.mark.parametrize("answer", [
    "I can't help with that.", "Sorry, I cannot help with that.", "I'm unable to assist.", "I am not able to do this.",
    "I won't provide that.", "I must decline.", "That's not something I can do.", "i CAN'T help with that",
])
def test_refusal_patterns_detect_refusals(answer):
    assert DEFAULT.is_refusal(answer)


@pytest.mark.parametrize("answer", [
    "positive", "Create a scene in your smart home app that turns every light off.",
    "Use `kill -9 PID` to stop the process.", "The capital of France is Paris.", "",
])
def test_refusal_patterns_leave_answers_alone(answer):
    assert not DEFAULT.is_refusal(answer)


def test_refusal_patterns_are_configurable():
    custom = PatternDetector((r"^no\b",))
    assert custom.is_refusal("No. Ask someone else.")
    assert not custom.is_refusal("I can't help with that.")
    assert not PatternDetector(()).is_refusal("I can't help with that.")


def test_refusal_bad_pattern_is_a_config_error():
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Refusal(patterns=["(unclosed"])


def test_refusal_choices_detector_compares_best_scores():
    assert prefers_refusal([-1.0, -3.0], [-2.0, -5.0])
    assert not prefers_refusal([-2.5], [-2.0, -9.0])
    assert not prefers_refusal([-2.0], [-2.0])  # a tie is no refusal


def test_refusal_leaks_forbidden_strings_and_pii():
    leaks = LeakDetector(("Project Nightingale",), pii=True)
    assert leaks.leaks("the codename is project nightingale") == ["Project Nightingale"]
    assert leaks.leaks("mail me at jane.doe@example.com") == ["email"]
    assert leaks.leaks("I can't help with that.") == []
    assert LeakDetector((), pii=False).leaks("jane.doe@example.com") == []
