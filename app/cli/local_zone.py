"""This computer's IANA timezone, the default of `create --timezone`."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from app.cli.context import PROG
from app.models.window import WindowError, parse_timezone
from app.services.interrupts import held_stop_signals

_ETC_LOCALTIME = Path("/etc/localtime")
_ETC_TIMEZONE = Path("/etc/timezone")


def local_timezone_name() -> str | None:
    """The supervisor's IANA timezone: the clock's zone key, $TZ, the /etc/localtime link,
    /etc/timezone, then Qt's system zone (which maps Windows zones to IANA names). None
    when nothing names a known zone: the caller asks for --timezone rather than guess UTC."""
    zone = datetime.now().astimezone().tzinfo
    candidates: list[str] = [str(getattr(zone, "key", "") or "")]
    candidates.append(os.environ.get("TZ", "").lstrip(":"))
    try:
        candidates.append(os.path.realpath(_ETC_LOCALTIME) if _ETC_LOCALTIME.exists() else "")
    except OSError:
        pass
    try:
        candidates.append(_ETC_TIMEZONE.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        pass
    candidates.append(_qt_system_zone())
    for candidate in candidates:
        # "/usr/share/zoneinfo/Europe/Paris" (Linux), "/var/db/timezone/zoneinfo/..." (macOS)
        name = candidate.replace(os.sep, "/").split("zoneinfo/", 1)[-1]
        name = name.removeprefix("posix/").removeprefix("right/")
        if name and not name.startswith("/") and _is_timezone(name):
            return name
    return None


def _qt_system_zone() -> str:
    """Qt's IANA id of the system zone (the only reliable source on Windows)."""
    try:
        with held_stop_signals(PROG):  # an interrupted PySide6 import aborts the process
            from PySide6.QtCore import QTimeZone

        return bytes(QTimeZone.systemTimeZoneId().data()).decode("ascii", "replace")
    except Exception:  # Qt missing or broken: the other sources decide
        return ""


def _is_timezone(name: str) -> bool:
    try:
        parse_timezone(name)
    except WindowError:
        return False
    return True
