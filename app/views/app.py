"""Start the desktop application: QApplication, database, demo defaults, engine, window.

`run_gui(args)` is what `batchcalls` with no sub-command runs. Shutdown is bounded: the
window stops its timers and background work, the engine thread gets a few seconds to stop,
and the process exits even if a provider call is still hanging.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

from app.models.db import database_url, describe_url
from app.models.sqlite_file import DatabaseProblem
from app.views import ask
from app.views.context import AppContext, build_context, ensure_demo_defaults

if TYPE_CHECKING:
    from app.services.engine_thread import EngineHost

log = logging.getLogger(__name__)

APPLICATION_NAME = "Batch Calls"
ENGINE_STOP_MS = 5000
TASKS_STOP_MS = 3000


def style_sheet_path() -> Path | None:
    """resources/style.qss beside the sources, or inside a PyInstaller bundle."""
    candidates = [Path(__file__).resolve().parents[2] / "resources" / "style.qss"]
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.insert(0, Path(bundle) / "resources" / "style.qss")
    return next((p for p in candidates if p.is_file()), None)


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


def prepare_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication with the name, the Fusion style and the style sheet."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName(APPLICATION_NAME)
    app.setApplicationDisplayName(APPLICATION_NAME)
    app.setOrganizationName("BatchCalls")
    app.setStyle("Fusion")
    path = style_sheet_path()
    if path is not None:
        app.setStyleSheet(path.read_text(encoding="utf-8"))
    else:
        log.debug("no style sheet found; using the plain Fusion style")
    return app


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


def run_gui(args: argparse.Namespace) -> int:
    """Run the desktop application until its window closes; returns the exit code."""
    from app.views.main_window import MainWindow

    _configure_logging(bool(getattr(args, "verbose", False)))
    app = prepare_application()
    context = _open(getattr(args, "database_url", None))
    if context is None:
        return 1
    url = context.database_url
    engine = start_engine(url)
    window = MainWindow(context, engine=engine)
    window.show()
    restore_interpreter = keep_gui_responsive()

    # Ctrl+C in a terminal quits cleanly: Python sees signals only between Qt events.
    previous = signal.signal(signal.SIGINT, lambda *_: app.quit())
    pulse = QTimer()
    pulse.setObjectName("signalPulseTimer")
    pulse.timeout.connect(lambda: None)
    pulse.start(250)
    try:
        code = app.exec()
    finally:
        pulse.stop()
        signal.signal(signal.SIGINT, previous)
        window.shutdown(TASKS_STOP_MS)
        if engine is not None:
            engine.stop(ENGINE_STOP_MS)
        window.deleteLater()
        context.close()
        restore_interpreter()
    log.info("Batch Calls closed")
    return int(code)
