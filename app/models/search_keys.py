"""The keys a recipient search and the name sort read from indexes (no Qt, no database).

A search by the last digits of a phone number, or by a name, must not scan a million rows:
each recipient stores its phone digits reversed (the last digits become a prefix) and its
name folded, whole and from its last word, and the indexes on them serve prefix searches
as range scans on SQLite and PostgreSQL alike. The schema fills them on insert, the
migration for existing rows, and the service builds its queries from the same functions.
"""

from __future__ import annotations


def reversed_digits(phone_number: str | None) -> str | None:
    """ "+12025550143" -> "34105552021" (None without digits)."""
    digits = "".join(ch for ch in phone_number or "" if ch.isdigit())
    return digits[::-1] or None


def name_key(name: str | None) -> str | None:
    """The name folded for searching and sorting: "Ada Lovelace" -> "ada lovelace"."""
    folded = " ".join((name or "").split()).casefold()
    return folded[:200] or None


def last_word_key(name: str | None) -> str | None:
    """The folded last word of a name of several words ("Ada Lovelace" -> "lovelace"), so
    a surname (or "101" in "Room 101") is found by prefix too; None for one word."""
    words = (name or "").split()
    return words[-1].casefold()[:200] if len(words) > 1 else None


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string above every string that starts with `prefix` (binary order):
    `prefix <= value < prefix_upper_bound(prefix)` is a range an index serves."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
