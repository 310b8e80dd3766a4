"""What the supervisor can do about a rejected CSV row, next to the reason (pure)."""

from __future__ import annotations

#: (words found in the reason, the hint), first match wins.
HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("scientific", "spreadsheet"),
        "Format the phone column as Text in the spreadsheet and export again, or type "
        "the number here with its + and country code.",
    ),
    (("is empty",), "Type the number here, or remove the row."),
    (
        ("letters",),
        "Keep only the number here (digits, spaces, + and dashes); put notes in another column.",
    ),
    (
        ("too short", "too long"),
        "Check the number for a missing or extra digit and correct it here.",
    ),
    (
        ("header has", "separator"),
        "Put quotes around values that contain the separator, fix the row in the file, "
        "or remove it.",
    ),
    (
        ("country", "region", "not valid", "invalid", "area code", "national"),
        "Type it in international form, with + and the country code (for example "
        "+44 20 7946 0958), or set the default country in Settings.",
    ),
)
DEFAULT_HINT = "Double-click the phone number to correct it, or remove the row."


def fix_hint(reason: str) -> str:
    """The hint for a rejection reason (a general one when no specific hint fits)."""
    folded = reason.casefold()
    for words, hint in HINTS:
        if any(word in folded for word in words):
            return hint
    return DEFAULT_HINT
