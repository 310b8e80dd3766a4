"""One rule for control characters in names and labels, and a safe way to print text."""

from __future__ import annotations

import pytest

from app.models.text import control_character_problem, escape_controls

HOSTILE = [
    "Red\x1b[31m alert",  # ESC colour sequence
    "Title\x1b]0;pwned\x07",  # OSC window title, ended by BEL
    "Ring\x07",
    "gnp.\u202eexe",  # right-to-left override
    "Isolate\u2066x\u2069",
    "CSI\x9b2J",  # C1
    "Tab\tname",
    "Line\nbreak",
    "DEL\x7f",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_control_characters_are_named_in_the_refusal(text):
    problem = control_character_problem(text)
    assert problem is not None
    assert problem.startswith("The name contains control characters (U+")
    assert "type it without them" in problem


@pytest.mark.parametrize("text", ["Flu shots", "Élan – 2026 ✓", "عيادة", "日本語", "Ünïcödé"])
def test_ordinary_names_in_any_script_pass(text):
    assert control_character_problem(text) is None
    assert escape_controls(text) == text


def test_the_refusal_names_the_field():
    assert control_character_problem("x\x1b", "The label").startswith("The label contains")


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_has_no_control_character_left(text):
    shown = escape_controls(text)
    assert control_character_problem(shown) is None
    assert shown.isprintable()


def test_escapes_are_readable():
    assert escape_controls("a\x1b[31mb\u202ec") == "a\\x1b[31mb\\u202ec"
