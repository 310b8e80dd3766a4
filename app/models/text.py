"""Text a supervisor types and others read: names and labels without control characters,
and any stored text (recipient data included) shown safely on a terminal.

A control character in a name is never intended: ESC starts a terminal colour or
window-title sequence, BEL rings, and a right-to-left override (U+202E) shows a name other
than the stored one. The service, the command line and the dialogs all ask
`control_character_problem()`, so the rule is written once.
"""

from __future__ import annotations

import unicodedata

#: Unicode's bidirectional embeddings, overrides, isolates and marks, and the line and
#: paragraph separators: invisible, yet they change how the text around them is shown.
LAYOUT_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)


def is_control(character: str) -> bool:
    """C0 (including tab and newline), DEL, C1, and the layout controls above."""
    return unicodedata.category(character) == "Cc" or character in LAYOUT_CONTROLS


def _code(character: str) -> str:
    return f"U+{ord(character):04X}"


def control_character_problem(text: str, what: str = "The name") -> str | None:
    """None when `text` has no control character, else the supervisor's message."""
    found = sorted({c for c in text if is_control(c)})
    if not found:
        return None
    names = ", ".join(f"{_code(c)} {unicodedata.name(c, 'control')}".rstrip() for c in found)
    return (
        f"{what} contains control characters ({names}), which terminals and lists would "
        "show as something else; type it without them."
    )


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (\\x1b, \\u202e), so a
    terminal shows it instead of obeying it."""
    if not any(is_control(c) for c in text):
        return text
    return "".join(_escape(c) if is_control(c) else c for c in text)


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
