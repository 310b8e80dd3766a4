"""The application's icons: simple SVGs in resources/icons, drawn sharp at any scale."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QImage, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QAbstractButton, QApplication

from app.models.status import Action
from app.views.look import is_dark

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


#: The icons' inks and what they become on a dark palette (the dark grey would vanish on
#: a dark button; the red of Delete would fall below a readable contrast).
DARK_INKS = {"#3b4a5a": "#c9d1d9", "#c0392b": "#f28b82"}
#: The sizes a dark icon is drawn at (a light one stays an SVG icon, drawn at any size).
DARK_SIZES = (16, 20, 24, 32, 48, 64)


def icon(name: str) -> QIcon:
    """The icon `name` ("app", "reload", ...) for the application's palette, light or
    dark; an empty icon if the file is missing."""
    return _icon(name, is_dark(QGuiApplication.palette()))


def accent_icon(name: str) -> QIcon:
    """The icon drawn in light ink whatever the palette: for a button filled with the
    accent colour (the primary button is blue in light and dark alike, and the dark grey
    ink on it was hard to see). A switch of palette leaves it as it is."""
    return _make_icon(name, True)


#: Which icon a QIcon is (its cacheKey), so a switch of palette can swap it for its twin.
_names: dict[int, str] = {}


def follow_palette() -> None:
    """After the palette switched between light and dark: every button and action that
    shows one of these icons gets the icon drawn for the new palette."""
    dark = is_dark(QGuiApplication.palette())
    for widget in QApplication.allWidgets():
        if isinstance(widget, QAbstractButton):
            name = _names.get(widget.icon().cacheKey())
            if name is not None:
                widget.setIcon(_icon(name, dark))
        for action in widget.actions():
            name = _names.get(action.icon().cacheKey())
            if name is not None:
                action.setIcon(_icon(name, dark))


def _icon(name: str, dark: bool) -> QIcon:
    made = _make_icon(name, dark)
    if not made.isNull():
        _names[made.cacheKey()] = name
    return made


@cache
def _make_icon(name: str, dark: bool) -> QIcon:
    path = icons_dir() / f"{name}.svg"
    if not path.is_file():
        return QIcon()
    if not dark:
        return QIcon(str(path))
    svg = path.read_text(encoding="utf-8")
    for light, ink in DARK_INKS.items():
        svg = svg.replace(light, ink)
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    result = QIcon()
    for size in DARK_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        result.addPixmap(QPixmap.fromImage(image))
    return result
