"""The application's icons: simple SVGs in resources/icons, drawn sharp at any scale."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon

from app.models.status import Action

#: The icon of each batch call action (toolbar buttons, menus, the details header).
ACTION_ICONS = {
    Action.PAUSE: "pause",
    Action.RESUME: "resume",
    Action.CANCEL: "cancel",
    Action.RETRY: "retry",
    Action.DELETE: "delete",
    Action.RENAME: "rename",
    Action.RELOAD: "reload",
}


def icons_dir() -> Path:
    """resources/icons beside the sources, or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle and (Path(bundle) / "resources" / "icons").is_dir():
        return Path(bundle) / "resources" / "icons"
    return Path(__file__).resolve().parents[2] / "resources" / "icons"


@cache
def icon(name: str) -> QIcon:
    """The icon `name` ("app", "reload", ...); an empty icon if the file is missing."""
    path = icons_dir() / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()
