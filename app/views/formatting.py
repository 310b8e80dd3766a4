"""How numbers, times and secrets are written for the supervisor.

Kept apart from the widgets so the same text appears in the list, the details and the
tests, and so the rules can be checked without a window. Numbers, percentages and dates
follow the supervisor's locale (`app_locale()`: "1,234" and "6%" in English, "1.234" and
"6 %" in German, "1 234" in French; "01.12.2026 09:05" in German). English keeps the
year-month-day order the docs and screenshots show ("2026-12-01 09:05"): supervisors in
the United States and the United Kingdom would read "01/12" as different days.
"""

from __future__ import annotations

import functools
import logging
import re
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from PySide6.QtCore import QDate, QLocale, QTime

from app.models.snapshots import BatchCallSnapshot
from app.models.window import WindowError, parse_timezone

log = logging.getLogger(__name__)

NO_VALUE = "—"


def app_locale() -> QLocale:
    """The application's locale (QLocale(): the system's, or what QLocale.setDefault
    chose). A system without one (the C/POSIX locale of a bare server or a container)
    writes English (United States), as the docs and screenshots show."""
    current = QLocale()
    if current.language() == QLocale.Language.C:
        return QLocale(QLocale.Language.English, QLocale.Country.UnitedStates)
    return current


def count(value: int, locale: QLocale | None = None) -> str:
    """1234567 -> "1,234,567" (English), "1.234.567" (German), "1 234 567" (French)."""
    return (locale or app_locale()).toString(int(value))


def number(value: float, decimals: int = 1, locale: QLocale | None = None) -> str:
    """12.5 -> "12.5" (English), "12,5" (German): a measured figure, grouped."""
    return (locale or app_locale()).toString(float(value), "f", decimals)


def ordinal(value: int, locale: QLocale | None = None) -> str:
    """A position (a CSV row number): the locale's digits, never grouped (row 1234)."""
    shown = QLocale(locale or app_locale())
    shown.setNumberOptions(shown.numberOptions() | QLocale.NumberOption.OmitGroupSeparator)
    return shown.toString(int(value))


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
    locale = locale or app_locale()
    figure = (
        locale.toString(float(value), "f", decimals) if decimals else locale.toString(int(value))
    )
    if locale.language() in _SPACED_PERCENT:
        return f"{figure}\u202f{locale.percent()}"
    return f"{figure}{locale.percent()}"


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


def local_time(
    value: datetime | None,
    zone: tzinfo | None = None,
    seconds: bool = False,
    locale: QLocale | None = None,
) -> str:
    """An aware instant in the given zone (default: this computer's), written the way the
    locale writes a date and a time ("2026-12-01 09:05" in English, "01.12.2026 09:05" in
    German), or a dash."""
    if value is None:
        return NO_VALUE
    shown = value.astimezone(zone) if zone is not None else value.astimezone()
    locale = locale or app_locale()
    date_pattern, time_pattern = _date_time_patterns(locale.name(), seconds)
    # A QDate and a QTime (microseconds each), not a QDateTime (a time zone lookup each).
    date = locale.toString(QDate(shown.year, shown.month, shown.day), date_pattern)
    time = locale.toString(QTime(shown.hour, shown.minute, shown.second), time_pattern)
    return f"{date} {time}"


def zone_named(name: str) -> ZoneInfo:
    """A batch call's zone for showing its times; UTC (named as such) when this computer's
    tzdata lacks that name (a database shared with a machine that has it), so a view never
    fails on it."""
    try:
        return parse_timezone(name)
    except WindowError:
        return ZoneInfo("UTC")


def zoned_time(value: datetime | None, zone: tzinfo) -> str:
    """`local_time` in `zone` with the zone's name ("2026-11-23 10:19 EST"): where times of
    one batch call are shown together, all in its calling hours' zone, said once each."""
    if value is None:
        return NO_VALUE
    return f"{local_time(value, zone)} {value.astimezone(zone).tzname() or ''}".rstrip()


def date_pattern(locale: QLocale | None = None) -> str:
    """The locale's date as a Qt display format ("yyyy-MM-dd" in English, "dd.MM.yyyy" in
    German), for the date fields the supervisor edits."""
    return _date_time_patterns((locale or app_locale()).name(), False)[0]


def time_pattern(locale: QLocale | None = None) -> str:
    """The locale's time of day as a Qt display format ("HH:mm"; "h:mm AP" where the
    locale writes 12-hour times), for the time fields the supervisor edits."""
    return _date_time_patterns((locale or app_locale()).name(), False)[1]


def weekday_time(value: datetime, locale: QLocale | None = None) -> str:
    """A wall time with its weekday and zone, where it is already ("Mon 23 Nov 14:10 EST";
    "Mo. 23. Nov. 14:10 EST" in German, whose dates write the day "23."): a time in the
    next days."""
    locale = locale or app_locale()
    date_pattern, time_pattern = _date_time_patterns(locale.name(), False)
    day_pattern = "ddd d. MMM" if "d." in date_pattern else "ddd dd MMM"
    day = locale.toString(QDate(value.year, value.month, value.day), day_pattern)
    time = locale.toString(QTime(value.hour, value.minute), time_pattern)
    return f"{day} {time} {value.tzname() or ''}".rstrip()


@functools.lru_cache(maxsize=64)
def _date_time_patterns(name: str, seconds: bool) -> tuple[str, str]:
    """The locale's short date (with the whole year) and time (24-hour or not, as the
    locale writes it); English and C: "yyyy-MM-dd" and "HH:mm"."""
    locale = QLocale(name)
    if locale.language() in (QLocale.Language.English, QLocale.Language.C):
        date, time = "yyyy-MM-dd", "HH:mm"
    else:
        date = re.sub(r"(?<!y)yy(?!y)", "yyyy", locale.dateFormat(QLocale.FormatType.ShortFormat))
        time = locale.timeFormat(QLocale.FormatType.ShortFormat)
    if seconds:  # after the minutes, with the separator between hours and minutes
        separator = re.search(r"[Hh]+(\W+)m", time)
        time = time.replace("mm", f"mm{separator.group(1) if separator else ':'}ss", 1)
    return date, time


def duration(seconds: int | None) -> str:
    """125 -> "2 min 5 s"."""
    if seconds is None:
        return NO_VALUE
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{count(hours)} h {count(minutes)} min {count(rest)} s"
    if minutes:
        return f"{count(minutes)} min {count(rest)} s"
    return f"{count(rest)} s"


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
