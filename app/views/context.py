"""What the windows need to reach the services (built in app.services.app_context, so
the views never import the database layer), and this computer's timezone."""

from __future__ import annotations

from PySide6.QtCore import QTimeZone

from app.models.window import WindowError, parse_timezone
from app.services.app_context import (
    DEMO_AGENT_NAME,
    DEMO_AGENT_TWIML,
    DEMO_NUMBER_LABEL,
    DEMO_NUMBERS,
    AppContext,
    Clock,
    build_context,
    ensure_demo_defaults,
)

__all__ = [
    "DEMO_AGENT_NAME",
    "DEMO_AGENT_TWIML",
    "DEMO_NUMBERS",
    "DEMO_NUMBER_LABEL",
    "AppContext",
    "Clock",
    "build_context",
    "ensure_demo_defaults",
    "local_timezone_name",
]


def local_timezone_name() -> str:
    """This computer's IANA timezone (the default for a new batch call), else UTC."""
    try:
        name = bytes(QTimeZone.systemTimeZoneId().data()).decode()
        parse_timezone(name)
        return name
    except (WindowError, UnicodeDecodeError):
        return "UTC"
