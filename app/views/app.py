"""Start the desktop application: QApplication, database, demo defaults, engine, window.

`run_gui(args)` is what `batchcalls` with no sub-command runs. Shutdown is bounded: the
window stops its timers and background work, the engine thread gets a few seconds to stop,
and the process exits even if a provider call is still hanging.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import qasync
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from app.models.sqlite_file import DatabaseProblem
from app.services.app_context import database_url, describe_url
from app.views import aio, ask
from app.views.context import AppContext, build_context, ensure_demo_defaults
from app.views.icons import follow_palette, icon

if TYPE_CHECKING:
    from app.services.engine_thread import EngineHost

log = logging.getLogger(__name__)

APPLICATION_NAME = "Batch Calls"
ENGINE_STOP_MS = 5000
TASKS_STOP_MS = 3000


def style_sheet_path(name: str = "style.qss") -> Path | None:
    """resources/<name> beside the sources, or inside a PyInstaller bundle."""
    candidates = [Path(__file__).resolve().parents[2] / "resources" / name]
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.insert(0, Path(bundle) / "resources" / name)
    return next((p for p in candidates if p.is_file()), None)


def style_sheet(dark: bool) -> str:
    """resources/style.qss, followed on a dark palette by style-dark.qss, which gives the
    same rules their dark colours (a style sheet has no media queries)."""
    parts = []
    for name in ("style.qss", "style-dark.qss") if dark else ("style.qss",):
        path = style_sheet_path(name)
        if path is None:
            log.debug("no %s found; using the plain Fusion style", name)
            continue
        parts.append(path.read_text(encoding="utf-8"))
    return "\n".join(parts)


def system_is_dark() -> bool:
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply_color_scheme(app: QApplication, dark: bool) -> None:
    """The dark palette and style sheet, or the light ones (Fusion's own palette)."""
    was_dark = bool(app.property("darkLook"))
    if dark:
        app.setPalette(dark_palette())
        for kind in INDICATOR_WIDGETS:
            app.setPalette(indicator_palette(), kind)  # type: ignore[arg-type]  # str at run time
    elif was_dark:
        app.setPalette(app.style().standardPalette())
        for kind in INDICATOR_WIDGETS:
            app.setPalette(app.style().standardPalette(), kind)  # type: ignore[arg-type]
    app.setProperty("darkLook", dark)
    app.setStyleSheet(style_sheet(dark))
    if was_dark != dark:
        follow_palette()  # the icons of the windows already open


#: The GUI thread shares the interpreter with the engine thread and its pollers; a short
#: switch interval hands it the GIL within a millisecond or two instead of after several
#: 5 ms turns of busy threads, which is what keeps the window from stalling under load.
GIL_SWITCH_INTERVAL_S = 0.001


def keep_gui_responsive() -> Callable[[], None]:
    """Latency over throughput: a short GIL switch interval, and the objects made at
    start-up moved out of the garbage collector's way (shorter full collections).
    Returns the function that puts both back (at shutdown)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()

    def restore() -> None:
        sys.setswitchinterval(previous)
        gc.unfreeze()

    return restore


def prepare_application(argv: list[str] | None = None, *, dark: bool | None = None) -> QApplication:
    """The QApplication with the name, the Fusion style, the palette and the style sheet:
    dark when the system uses a dark colour scheme (and again whenever it switches), or
    as `dark` says (the screenshots)."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        # Fractional scale factors (125 %, 150 %) as the system sets them: icons are SVG.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName(APPLICATION_NAME)
    app.setApplicationDisplayName(APPLICATION_NAME)
    app.setOrganizationName("BatchCalls")
    app.setWindowIcon(icon("app"))
    app.setStyle("Fusion")
    apply_color_scheme(app, system_is_dark() if dark is None else dark)
    if dark is None and not app.property("followsColorScheme"):
        app.setProperty("followsColorScheme", True)
        QGuiApplication.styleHints().colorSchemeChanged.connect(
            lambda scheme: apply_color_scheme(app, scheme == Qt.ColorScheme.Dark)
        )
    return app


def dark_palette() -> QPalette:
    """Fusion's colours for a system that uses a dark appearance. Built from the button
    and window colours, so the shades Fusion draws frames, separators and bevels with
    (light, mid, dark, shadow) are dark too."""
    palette = QPalette(QColor("#2d2f33"), QColor("#202124"))
    role = QPalette.ColorRole
    for key, value in (
        (role.Window, "#202124"),
        (role.WindowText, "#e8eaed"),
        (role.Base, "#17181a"),
        (role.AlternateBase, "#26282b"),
        (role.Text, "#e8eaed"),
        (role.Button, "#2d2f33"),
        (role.ButtonText, "#e8eaed"),
        (role.ToolTipBase, "#2d2f33"),
        (role.ToolTipText, "#e8eaed"),
        (role.PlaceholderText, "#9aa0a6"),
        (role.Highlight, "#2f6fd1"),
        (role.HighlightedText, "#ffffff"),
        (role.Link, "#8ab4f8"),
    ):
        palette.setColor(key, QColor(value))
    for disabled in (role.Text, role.ButtonText, role.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, disabled, QColor("#6f7378"))
    palette.setColor(role.Light, QColor("#3c4043"))  # a separator, not a white line
    palette.setColor(role.Midlight, QColor("#35373b"))
    return palette


#: Widgets whose box or circle Fusion outlines in a darker shade of the window colour:
#: on a dark window an unticked one all but vanished.
INDICATOR_WIDGETS = ("QCheckBox", "QRadioButton")


def indicator_palette() -> QPalette:
    """The dark palette for check boxes and radio buttons: Fusion draws their outline in
    the window colour made darker and fills them with the base colour, so these two are
    lighter here (neither paints the widget's background)."""
    palette = dark_palette()
    palette.setColor(QPalette.ColorRole.Window, QColor("#b0b4ba"))
    palette.setColor(QPalette.ColorRole.Base, QColor("#2b2d31"))
    return palette


def start_engine(url: str, parent: QObject | None = None, **kwargs: Any) -> EngineHost | None:
    """The dialer engine on its own thread, or None if it cannot be loaded (the window
    then says "Engine stopped" and still works against the database)."""
    try:
        from app.services.engine_thread import EngineHost
    except ImportError as error:
        log.warning("the dialer engine is not available: %s", error)
        return None
    host = EngineHost(url, parent=parent, **kwargs)
    host.start()
    return host


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    elif verbose:
        root.setLevel(logging.DEBUG)


def _open(explicit_url: str | None) -> AppContext | None:
    url = explicit_url or ""
    try:
        url = database_url(explicit_url)
        context = build_context(url)
    except DatabaseProblem as error:  # damaged, empty, read-only...: it says what to do
        log.error("%s", error)
        ask.inform(
            None,
            "Batch Calls cannot start",
            f"{error}\n\nTo use another database, start with --database-url or set "
            "BATCHCALLS_DATABASE_URL.",
            warning=True,
        )
        return None
    except Exception as error:  # the supervisor needs the reason, not a traceback
        log.exception("cannot open the database %s", describe_url(url))
        ask.inform(
            None,
            "Batch Calls cannot start",
            f"The database {describe_url(url)} cannot be opened: {error}\n\n"
            "Check that the location exists and that you may write to it (or that the "
            "database server is running), or start with --database-url / set "
            "BATCHCALLS_DATABASE_URL to another database.",
            warning=True,
        )
        return None
    try:
        ensure_demo_defaults(context.service)
    except Exception as error:  # not fatal: the supervisor can add them in Settings
        log.error("demo agent and number not created: %s", error)
    return context


async def _run_window(
    app: QApplication,
    context: AppContext,
    engine: EngineHost | None,
    stopped_by: list[int] | None = None,
) -> int:
    """The application's main coroutine: the main window, until the supervisor closes it
    (Ctrl+C in a terminal closes it too)."""
    from app.views.main_window import MainWindow

    window = MainWindow(context, engine=engine)
    window.show()
    try:
        return await _until_last_window_closed(app, stopped_by or [])
    finally:
        window.shutdown(TASKS_STOP_MS)
        window.deleteLater()


async def _until_last_window_closed(app: QApplication, stopped_by: list[int]) -> int:
    """The application's main coroutine: it ends when the supervisor closes the window
    (the loop then stops, and the asyncio.Runner cancels what is left)."""
    closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finish() -> None:
        if not closed.done():
            closed.set_result(0)

    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)  # the coroutine ending is what stops the loop
    app.lastWindowClosed.connect(finish)
    app.aboutToQuit.connect(finish)  # QApplication.quit() from elsewhere
    # A stop signal that came while the window was being built closed nothing (or closed it
    # before `finish` was connected): end now rather than wait for a close that happened.
    if stopped_by or not any(w.isVisible() for w in app.topLevelWidgets()):
        finish()
    try:
        return await closed
    finally:
        app.lastWindowClosed.disconnect(finish)
        app.aboutToQuit.disconnect(finish)
        app.setQuitOnLastWindowClosed(quit_on_close)


def run_gui(args: argparse.Namespace) -> int:
    """Run the desktop application until its window closes; returns the exit code."""
    # Ctrl+C in a terminal, or SIGTERM, closes cleanly from here on, even during start-up
    # (a creation in progress rolls back first): Python sees signals only between Qt
    # events, hence the pulse.
    stopped_by: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        stopped_by.append(signum)
        running = QApplication.instance()
        if isinstance(running, QApplication):
            running.closeAllWindows()  # the last window closing ends _run_window

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore_signals() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    _configure_logging(bool(getattr(args, "verbose", False)))
    app = prepare_application()
    context = _open(getattr(args, "database_url", None))
    if context is None:
        restore_signals()
        return 1
    url = context.database_url
    aio.detach_loop()  # before the engine: it stops when the application is told to quit
    engine = start_engine(url)
    restore_interpreter = keep_gui_responsive()
    pulse = QTimer()  # Python sees signals (Ctrl+C) only between Qt events
    pulse.setObjectName("signalPulseTimer")
    pulse.timeout.connect(lambda: None)
    pulse.start(250)
    code = 0
    try:
        # qasync runs the Qt event loop as asyncio's: the views' async work runs on it.
        if not stopped_by:  # a signal during start-up: do not open the window at all
            with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
                code = runner.run(_run_window(app, context, engine, stopped_by))
    finally:
        pulse.stop()
        aio.shutdown(TASKS_STOP_MS / 1000)
        if engine is not None:
            engine.stop(ENGINE_STOP_MS)
        context.close()
        restore_interpreter()
        restore_signals()
    log.info("Batch Calls closed")
    if stopped_by:
        from app.services.interrupts import Interrupted

        stopped = Interrupted(stopped_by[0], "the window was closed")
        print(stopped.message("batchcalls"), file=sys.stderr)
        return stopped.exit_status
    return int(code)
