"""How numbers, times and secrets are written for the supervisor.

Kept apart from the widgets so the same text appears in the list, the details and the
tests, and so the rules can be checked without a window. Percentages follow the
supervisor's locale (QLocale: "6%" in English, "6 %" in French).
"""

from __future__ import annotations

import logging
from datetime import datetime, tzinfo

from PySide6.QtCore import QLocale

from app.models.snapshots import BatchCallSnapshot

log = logging.getLogger(__name__)

NO_VALUE = "—"


def count(value: int) -> str:
    """1234567 -> "1,234,567"."""
    return f"{value:,}"


def progress_tenths(snapshot: BatchCallSnapshot) -> int:
    """Finished recipients in tenths of a percent, rounded down (exact integer arithmetic):
    every percentage shown derives from it, so "21 %" never sits beside "22.0 %", and 100
    means every recipient has an outcome."""
    if not snapshot.total_recipients:
        return 0
    return snapshot.finished_count * 1000 // snapshot.total_recipients


def percent(value: float, decimals: int = 0, locale: QLocale | None = None) -> str:
    """ "6%" (English), "6 %" (French): the number and the sign the way the locale writes
    them; `value` is already rounded as it should be shown."""
    locale = locale or QLocale()
    number = (
        locale.toString(float(value), "f", decimals) if decimals else locale.toString(int(value))
    )
    if locale.language() in _SPACED_PERCENT:
        return f"{number}\u202f{locale.percent()}"
    return f"{number}{locale.percent()}"


#: Languages that put a (narrow no-break) space before the percent sign.
_SPACED_PERCENT = frozenset(
    {
        QLocale.Language.French,
        QLocale.Language.German,
        QLocale.Language.Swedish,
        QLocale.Language.NorwegianBokmal,
        QLocale.Language.Czech,
        QLocale.Language.Polish,
        QLocale.Language.Russian,
        QLocale.Language.Spanish,
    }
)


def progress_text(snapshot: BatchCallSnapshot) -> str:
    """ "45% (450/1,000)": finished recipients out of all, as the list shows it."""
    shown = progress_tenths(snapshot) // 10
    return f"{percent(shown)} ({count(snapshot.finished_count)}/{count(snapshot.total_recipients)})"


def percent_text(snapshot: BatchCallSnapshot) -> str:
    """ "21.9%": the same figure as progress_text with one decimal (rounded down too)."""
    return percent(progress_tenths(snapshot) / 10, decimals=1)


def local_time(value: datetime | None, zone: tzinfo | None = None, seconds: bool = False) -> str:
    """An aware instant in the given zone (default: this computer's), or a dash."""
    if value is None:
        return NO_VALUE
    shown = value.astimezone(zone) if zone is not None else value.astimezone()
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return shown.strftime(pattern)


def duration(seconds: int | None) -> str:
    """125 -> "2 min 5 s"."""
    if seconds is None:
        return NO_VALUE
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min {rest} s"
    if minutes:
        return f"{minutes} min {rest} s"
    return f"{rest} s"


def mask_sid(sid: str) -> str:
    """An account SID as it may be shown: "AC12…cdef" (never the whole identifier)."""
    sid = sid.strip()
    if not sid:
        return "no account"
    if len(sid) <= 8:
        return sid[:2] + "…"
    return f"{sid[:4]}…{sid[-4:]}"


def variables_text(variables: dict[str, object]) -> str:
    """Dynamic variables on one line: "city: Austin; date: 2026-12-01"."""
    return "; ".join(f"{key}: {value}" for key, value in variables.items())
