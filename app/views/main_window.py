"""The main window: the list of batch calls, the live name search, the per-row actions.

Live updates arrive as batch call ids (from the engine thread and from the service's
change listener); they are collected for 200 ms and refreshed in the background, and only
the affected rows change, so selection, scroll position and search text stay put.
"""

from __future__ import annotations

import gc
import html
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPoint,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QSystemTrayIcon,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.models.snapshots import BatchCallSnapshot
from app.models.status import Action, BatchStatus
from app.services.engine.state import STARTING, STOPPED, EngineState, EngineStatus
from app.views import aio, formatting
from app.views.actions import ActionController, build_menu, make_qactions, success_message
from app.views.batch_model import (
    BatchCallFilterProxy,
    BatchCallTableModel,
    Column,
    PreparedRow,
    RowDiff,
    diff_rows,
    prepare_rows,
    snapshot_at,
)
from app.views.context import AppContext
from app.views.icons import accent_icon, icon
from app.views.look import BatchCallDelegate, row_height
from app.views.tasks import BackgroundTasks
from app.views.widgets import ElidedLabel

if TYPE_CHECKING:
    from app.services.engine_thread import EngineHost

log = logging.getLogger(__name__)

LIVE_UPDATE_MS = 200
POLL_MS = 5000
#: Rows inserted per turn of the event loop while a reload brings many new batch calls:
#: the window keeps painting and answering between chunks.
INSERT_CHUNK_ROWS = 1000

#: How long the status bar shows a completion or failure when there is no system tray.
NOTICE_MS = 60_000


def _saved_account_sid() -> str:
    """The account SID of the saved credentials, or "" (runs off the GUI thread)."""
    from app.services import secrets

    try:
        credentials = secrets.load_twilio_credentials()
    except Exception as error:  # no keyring, unreadable entry: the label says "no account"
        log.info("no saved Twilio account: %s", error)
        return ""
    return credentials.account_sid if credentials else ""


class ChangeRelay(QObject):
    """Turns the service's change callback (any thread) into a queued Qt signal.

    Signals: changed(int) with the id of the batch call an action changed.
    """

    changed = Signal(int)


class MainWindow(QMainWindow):
    """The batch call list. Signals: detailsOpened(int) with the batch call id;
    reloaded(int) with the number of batch calls after a reload; notified(int, str) with
    the id and the text of a notification (a batch call completed or failed)."""

    detailsOpened = Signal(int)
    reloaded = Signal(int)
    notified = Signal(int, str)

    def __init__(
        self,
        context: AppContext,
        *,
        engine: EngineHost | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("Batch Calls")
        self.setWindowIcon(icon("app"))
        self.resize(1040, 620)
        self.context = context
        self.service = context.service
        self.engine = engine
        self._loaded_once = False
        self._dirty: set[int] = set()
        # The row versions of the last reload (BatchCallService.list_changed), and the
        # batch calls shown from another read since (the next reload compares them anew).
        self._versions: dict[int, int] = {}
        self._touched: set[int] = set()
        self._refreshing = False
        self._inserting = False
        self._details: dict[int, Any] = {}
        self._closing = False
        self._mode_generation = 0

        self.tasks = BackgroundTasks(self)
        self.tasks.busyChanged.connect(self._show_busy)
        self.actions_controller = ActionController(self.service, self.tasks, self)
        self.actions_controller.succeeded.connect(self._action_succeeded)
        self.actions_controller.refused.connect(self._action_refused)

        self.model = BatchCallTableModel(self)
        self.proxy = BatchCallFilterProxy(self)
        self.proxy.setSourceModel(self.model)

        self._build_widgets()
        self._build_actions()
        self._build_status_bar()
        self._build_tray()

        self.relay = ChangeRelay(self)
        self.relay.setObjectName("changeRelay")
        self.relay.changed.connect(self.mark_dirty)
        self.service.on_change = self.relay.changed.emit
        self._owns_on_change = True

        self.live_timer = QTimer(self)
        self.live_timer.setObjectName("liveUpdateTimer")
        self.live_timer.setSingleShot(True)
        self.live_timer.setInterval(LIVE_UPDATE_MS)
        self.live_timer.timeout.connect(self._refresh_dirty)

        # Another desktop or a headless worker on a shared database sends no signals here.
        self.poll_timer = QTimer(self)
        self.poll_timer.setObjectName("pollTimer")
        self.poll_timer.setInterval(POLL_MS)
        self.poll_timer.timeout.connect(lambda: self.reload(quiet=True))
        self.poll_timer.start()

        self._connect_engine()
        self.update_mode_label()
        self.model.rowsInserted.connect(self._update_empty_state)
        self.model.rowsRemoved.connect(self._update_empty_state)
        self.model.modelReset.connect(self._update_empty_state)
        # The rows' model announces a bulk change once; the filter proxy would announce
        # each contiguous range it shows or hides (thousands for one keystroke).
        self.model.rowsInserted.connect(self._update_search_summary)
        self.model.rowsRemoved.connect(self._update_search_summary)
        self.model.dataChanged.connect(self._update_search_summary)
        self.proxy.modelReset.connect(self._update_search_summary)
        self.reload(initial=True)

    # ----------------------------------------------------------------- construction
    def _build_widgets(self) -> None:
        central = QWidget(self)
        central.setObjectName("centralWidget")
        layout = QVBoxLayout(central)
        layout.setContentsMargins(10, 10, 10, 4)

        bar = QHBoxLayout()
        self.create_button = QPushButton("New Batch Call", central)
        self.create_button.setObjectName("createButton")
        self.create_button.setToolTip("Create a batch call (Ctrl+N)")
        self.create_button.setProperty("role", "primary")
        self.create_button.setIcon(accent_icon("new"))  # on the blue of a primary button
        self.create_button.clicked.connect(self.open_create_dialog)
        bar.addWidget(self.create_button)

        self.reload_button = QPushButton("Reload", central)
        self.reload_button.setObjectName("reloadButton")
        self.reload_button.setIcon(icon("reload"))
        self.reload_button.setToolTip("Re-read every batch call from the database (F5)")
        self.reload_button.clicked.connect(lambda: self.reload())
        bar.addWidget(self.reload_button)

        self.row_actions_button = QToolButton(central)
        self.row_actions_button.setObjectName("rowActionsButton")
        self.row_actions_button.setText("Actions")
        self.row_actions_button.setIcon(icon("actions"))
        self.row_actions_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.row_actions_button.setToolTip("Actions for the selected batch call")
        self.row_actions_button.clicked.connect(self.show_row_menu_for_current)
        bar.addWidget(self.row_actions_button)

        self.settings_button = QPushButton("Settings", central)
        self.settings_button.setObjectName("settingsButton")
        self.settings_button.setIcon(icon("settings"))
        self.settings_button.setToolTip("Telephony provider, limits, agents and numbers (Ctrl+,)")
        self.settings_button.clicked.connect(self.open_settings_dialog)
        bar.addWidget(self.settings_button)
        bar.addStretch(1)

        # Beside the search field, so its text never moves the list; always shown, empty
        # without a search: showing and hiding it relayouts the window (6 ms a keystroke).
        self.search_summary = ElidedLabel("", central)  # a long search never widens the window
        self.search_summary.setObjectName("searchSummaryLabel")
        bar.addWidget(self.search_summary)

        self.search_field = QLineEdit(central)
        self.search_field.setObjectName("searchField")
        self.search_field.setPlaceholderText("Search by name (Ctrl+F)")
        self.search_field.setClearButtonEnabled(True)
        self.search_field.setMinimumWidth(260)
        self.search_field.textChanged.connect(self._search_changed)
        bar.addWidget(self.search_field)
        self.search_field.installEventFilter(self)  # Esc clears the search
        layout.addLayout(bar)

        self.stack = QStackedWidget(central)
        self.stack.setObjectName("listStack")
        self.table = QTableView(self.stack)
        self.table.setObjectName("batchCallTable")
        self.table.setModel(self.proxy)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # Every row is one line high: the view never measures 10,000 rows' contents.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.CREATED, Qt.SortOrder.DescendingOrder)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu_requested)
        self.table.activated.connect(self._row_activated)
        self.table.clicked.connect(self._row_clicked)
        self.delegate = BatchCallDelegate(self.table)
        self.table.setItemDelegate(self.delegate)
        self.table.verticalHeader().setDefaultSectionSize(
            row_height(self.table.fontMetrics().height())
        )
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Stretch)
        for column, width in (
            (Column.TOTAL, 130),
            (Column.STATUS, 110),
            (Column.PROGRESS, 200),
            (Column.CREATED, 140),
            (Column.ACTIONS, 40),
        ):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            self.table.setColumnWidth(column, width)
        header.setSectionResizeMode(Column.ACTIONS, QHeaderView.ResizeMode.Fixed)
        self.stack.addWidget(self.table)

        self.empty_state = QWidget(self.stack)
        self.empty_state.setObjectName("emptyState")
        empty_layout = QVBoxLayout(self.empty_state)
        empty_layout.addStretch(1)
        empty_label = QLabel(
            "<h2>No batch calls yet</h2>"
            "<p>A batch call phones a list of recipients from a CSV file.<br>"
            "Create your first one to get started.</p>",
            self.empty_state,
        )
        empty_label.setObjectName("emptyStateLabel")
        empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        empty_layout.addWidget(empty_label)
        self.empty_create_button = QPushButton("Create your first batch call", self.empty_state)
        self.empty_create_button.setObjectName("emptyStateCreateButton")
        self.empty_create_button.setProperty("role", "primary")
        self.empty_create_button.clicked.connect(self.open_create_dialog)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.empty_create_button)
        row.addStretch(1)
        empty_layout.addLayout(row)
        empty_layout.addStretch(2)
        self.stack.addWidget(self.empty_state)

        self.no_match_state = QWidget(self.stack)
        self.no_match_state.setObjectName("noMatchState")
        no_match_layout = QVBoxLayout(self.no_match_state)
        no_match_layout.addStretch(1)
        self.no_match_label = QLabel(self.no_match_state)
        self.no_match_label.setObjectName("noMatchLabel")
        self.no_match_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_match_label.setWordWrap(True)
        # Its width follows the window's, never the other way round (a long search).
        self.no_match_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        no_match_layout.addWidget(self.no_match_label)
        self.no_match_clear_button = QPushButton("Clear the search", self.no_match_state)
        self.no_match_clear_button.setObjectName("noMatchClearButton")
        self.no_match_clear_button.clicked.connect(self.search_field.clear)
        clear_row = QHBoxLayout()
        clear_row.addStretch(1)
        clear_row.addWidget(self.no_match_clear_button)
        clear_row.addStretch(1)
        no_match_layout.addLayout(clear_row)
        no_match_layout.addStretch(2)
        self.stack.addWidget(self.no_match_state)
        layout.addWidget(self.stack, 1)

        self.setCentralWidget(central)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)

    def _build_actions(self) -> None:
        self.qactions = make_qactions(self, self.trigger_action)

        def window_action(
            name: str, text: str, shortcut: QKeySequence | QKeySequence.StandardKey | str, slot: Any
        ) -> QAction:
            action = QAction(text, self)
            action.setObjectName(name)
            action.setShortcut(QKeySequence(shortcut))
            action.triggered.connect(slot)
            self.addAction(action)
            return action

        self.create_action = window_action(
            "createAction", "New Batch Call…", QKeySequence.StandardKey.New, self.open_create_dialog
        )
        self.reload_action = window_action(
            "reloadAllAction", "Reload All", "F5", lambda: self.reload()
        )
        self.search_action = window_action(
            "searchAction", "Search", QKeySequence.StandardKey.Find, self.focus_search
        )
        self.details_action = window_action(
            "openDetailsAction", "Open Details", "Ctrl+O", self.open_current_details
        )
        self.settings_action = window_action(
            "settingsAction", "Settings…", "Ctrl+,", self.open_settings_dialog
        )
        self.quit_action = window_action(
            "quitAction", "Quit", QKeySequence.StandardKey.Quit, self.close
        )

        menu_bar = self.menuBar()
        menu_bar.setObjectName("menuBar")
        file_menu = menu_bar.addMenu("&File")
        file_menu.setObjectName("fileMenu")
        for action in (self.create_action, self.settings_action, self.quit_action):
            file_menu.addAction(action)
        batch_menu = menu_bar.addMenu("&Batch Call")
        batch_menu.setObjectName("batchMenu")
        batch_menu.addAction(self.details_action)
        batch_menu.addSeparator()
        for kind in Action:
            batch_menu.addAction(self.qactions[kind])
        view_menu = menu_bar.addMenu("&View")
        view_menu.setObjectName("viewMenu")
        view_menu.addAction(self.reload_action)
        view_menu.addAction(self.search_action)
        self._update_action_states()

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        status.setObjectName("statusBar")
        self.loading_indicator = QProgressBar(status)
        self.loading_indicator.setObjectName("loadingIndicator")
        self.loading_indicator.setRange(0, 0)
        self.loading_indicator.setMaximumWidth(120)
        self.loading_indicator.setMaximumHeight(14)
        self.loading_indicator.setTextVisible(False)
        self.loading_indicator.setVisible(False)
        status.addPermanentWidget(self.loading_indicator)
        self.engine_label = QLabel(status)
        self.engine_label.setObjectName("engineStateLabel")
        status.addPermanentWidget(self.engine_label)
        self.mode_label = QLabel(status)
        self.mode_label.setObjectName("modeLabel")
        status.addPermanentWidget(self.mode_label)

    def _connect_engine(self) -> None:
        """Follow the engine's signals, and show the state it is in already: the engine is
        started before the window exists and reports a state only when it changes."""
        if self.engine is None:
            self.set_engine_state(STOPPED)
            return
        self.engine.batchCallChanged.connect(self.mark_dirty)
        self.engine.recipientsChanged.connect(self._recipients_changed)
        self.engine.waitingReasonChanged.connect(self._waiting_reason_changed)
        self.engine.engineStateChanged.connect(self.set_engine_state)
        # Read after connecting: a change from now on also arrives as a (queued) signal.
        self.set_engine_state(self.current_engine_state())

    def current_engine_state(self) -> EngineStatus:
        """The engine's state now ("starting" while its thread runs but has not ticked)."""
        if self.engine is None:
            return STOPPED
        status = getattr(self.engine, "state", None)
        if not isinstance(status, EngineStatus):
            return STARTING
        if status.state is EngineState.STOPPED and self.engine.isRunning():
            return STARTING
        return status

    @property
    def loaded(self) -> bool:
        """True once the first load of the list finished (tests wait for it)."""
        return self._loaded_once

    # ----------------------------------------------------------------- status bar
    def update_mode_label(self) -> None:
        """ "Simulation mode" unmistakably, or the Twilio account (SID masked); the settings
        are read in the background."""
        self._mode_generation += 1
        aio.spawn(self._update_mode_label(self._mode_generation), name="modeLabel", owner=self)

    async def _update_mode_label(self, generation: int) -> None:
        async with self.tasks.tracking("readSettings", quiet=True):
            try:
                settings = await aio.in_worker(self.context.load_settings)
            except Exception as error:  # a broken setting must not keep the window closed
                if aio.alive(self):
                    log.error("settings could not be read: %s", error)
                    self.mode_label.setText("Settings unreadable: open Settings")
                return
        if not aio.alive(self) or generation != self._mode_generation:
            return  # closed, or a newer setting meanwhile
        if settings.provider == "twilio":
            sid = settings.twilio_account_sid
            if sid:
                self._show_twilio_account(sid)
            else:  # credentials given only to the keyring or the environment
                self._show_twilio_account(None)
                self.tasks.start(
                    "readAccountSid",
                    self._read_account_sid(self._mode_generation),
                    quiet=True,
                    owner=self,
                )
            self.mode_label.setProperty("mode", "twilio")
            self.mode_label.setToolTip("Calls are placed through Twilio: real phones ring.")
        else:
            self.mode_label.setText("Simulation mode: no real calls")
            self.mode_label.setProperty("mode", "simulation")
            self.mode_label.setToolTip(
                "No telephony account is used and no phone rings; outcomes are simulated."
            )
        self.mode_label.style().unpolish(self.mode_label)
        self.mode_label.style().polish(self.mode_label)

    async def _read_account_sid(self, generation: int) -> None:
        # The keyring can block (a locked wallet): read where closing never waits.
        account = await aio.in_thread(_saved_account_sid)
        if aio.alive(self) and generation == self._mode_generation:  # no newer setting
            self._show_twilio_account(account)

    def _show_twilio_account(self, sid: str | None) -> None:
        if sid is None:
            self.mode_label.setText("Twilio: reading the account…")
        else:
            self.mode_label.setText(f"Twilio: {formatting.mask_sid(sid)}")

    @Slot(object)
    def set_engine_state(self, status: EngineStatus) -> None:
        match status.state:
            case EngineState.STOPPED:
                text = "Engine stopped"
            case EngineState.STARTING:
                text = "Engine starting…"
            case EngineState.ERROR:
                text = f"Engine {status.text}"
            case _:
                text = f"Engine: {status.text}"
        self.engine_label.setText(text)
        self.engine_label.setToolTip(text)

    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    @Slot(bool)
    def _show_busy(self, busy: bool) -> None:
        self.loading_indicator.setVisible(busy)

    # ----------------------------------------------------------------- loading
    def reload(self, *, quiet: bool = False, initial: bool = False) -> None:
        """Re-read every batch call in the background; a success message unless quiet.

        The worker compares the fresh rows with a copy of those shown and builds the cells
        of new ones; the GUI thread only applies the differences (many new rows in chunks
        of INSERT_CHUNK_ROWS, one event-loop turn each)."""
        if self._closing:
            return
        if quiet and (self.tasks.running("reload") or self._refreshing or self._inserting):
            return
        if not quiet:
            self.show_message("Reloading batch calls…", 0)
            self.reload_button.setEnabled(False)
        aio.spawn(self._reload(quiet, initial), name="reload", owner=self)

    async def _reload(self, quiet: bool, initial: bool) -> None:
        started_dirty = set(self._dirty)
        shown = self.model.by_id()
        service = self.service
        versions, touched = self._versions, frozenset(self._touched)

        def compare() -> tuple[dict[int, int], RowDiff]:
            # Only the rows whose stored version changed (or that are not shown, say after
            # an interrupted insert) become snapshots and are compared with those shown.
            known = {i: v for i, v in versions.items() if i in shown}
            listing = service.list_changed(known, stale=touched)
            fresh = {s.id: s for s in listing.fresh}
            diff = diff_rows(shown, fresh, stored=listing.versions, prepare=INSERT_CHUNK_ROWS)
            return listing.versions, diff

        first = not self._loaded_once

        def read() -> tuple[dict[int, int], RowDiff]:
            if not first:  # a reload: the rows that changed
                return compare()
            with aio.collector_paused():  # the first load: every row, kept as long as shown
                return compare()

        async with self.tasks.tracking("reload", quiet=quiet):
            try:
                versions, diff = await aio.in_worker(read)
            except Exception as error:  # the database went away: say what to do
                if aio.alive(self):
                    self.reload_button.setEnabled(True)
                    log.error("reload failed: %s", error)
                    self.show_message(
                        f"Could not read the batch calls: {error}. Check the database "
                        "connection and press Reload (F5).",
                        0,
                    )
                return
            if not aio.alive(self) or self._closing:
                return
            for batch_id in diff.removed:
                self.model.remove(batch_id)
                self._details_gone(batch_id)
            self._versions = versions
            self._touched -= touched
            count = len(versions)
            self._note_transitions(diff.changed)
            self.model.update_rows(diff.changed, diff.cells)
            for snapshot in diff.changed:
                self._forward_to_details(snapshot)
            for row in diff.added:
                self._forward_to_details(row.snapshot)
            for snapshot in diff.pending:
                self._forward_to_details(snapshot)
            self._dirty -= started_dirty
            await self._insert_in_chunks(diff.added, diff.pending)
        if not aio.alive(self) or self._closing:
            return
        self._loaded_once = True
        self._update_empty_state()
        self._update_search_summary()
        self._update_action_states()
        if not quiet:
            self.reload_button.setEnabled(True)
            self.show_message(
                f"Reloaded {formatting.count(count)} batch call{'s' if count != 1 else ''}."
                if not initial
                else f"{formatting.count(count)} batch call{'s' if count != 1 else ''}."
            )
        self.reloaded.emit(count)

    async def _insert_in_chunks(
        self, first: list[PreparedRow], rest: list[BatchCallSnapshot]
    ) -> None:
        """Insert the new rows, newest first, a chunk per turn of the event loop (the
        window keeps painting and answering in between): `first` at once, then `rest`, a
        chunk at a time, each chunk's cells built in a worker after the previous chunk is
        inserted (not meanwhile: the inserts' thousand calls into Qt would each wait for
        the worker to hand back the GIL)."""
        self._inserting = bool(rest)
        try:
            at = self.model.insert_prepared(first, 0)
            for start in range(0, len(rest), INSERT_CHUNK_ROWS):
                if self._inserting:
                    # Thousands of rows (snapshots, cells' wrappers) that live as long as
                    # the list: out of the collector's way as soon as they are shown, so
                    # full collections stay short, even in the worker building the next
                    # chunk (10,000 rows cost 80-170 ms per full collection, a stall).
                    gc.freeze()
                rows = await aio.in_worker(prepare_rows, rest[start : start + INSERT_CHUNK_ROWS])
                if not aio.alive(self) or self._closing:
                    return
                at = self.model.insert_prepared(rows, at)
            if self._inserting:
                gc.freeze()
        finally:
            if aio.alive(self):
                self._inserting = False

    @Slot(int)
    def mark_dirty(self, batch_id: int) -> None:
        """A batch call changed: refresh its row soon (bursts are collected)."""
        if self._closing:  # e.g. a creation rolled back while the window closes
            return
        self._dirty.add(batch_id)
        if not self.live_timer.isActive() and not self._refreshing:
            self.live_timer.start()

    @Slot(int, str)
    def _waiting_reason_changed(self, batch_id: int, _reason: str) -> None:
        self.mark_dirty(batch_id)

    @Slot(int)
    def _recipients_changed(self, batch_id: int) -> None:
        self.mark_dirty(batch_id)
        dialog = self._details.get(batch_id)
        if dialog is not None:
            dialog.recipients_changed()

    def _refresh_dirty(self) -> None:
        if not self._dirty or self._closing:
            return
        ids = sorted(self._dirty)
        self._dirty.clear()
        self._refreshing = True
        self.tasks.start("refresh", self._refresh(ids), quiet=True, owner=self)

    async def _refresh(self, ids: list[int]) -> None:
        def fetch() -> list[tuple[int, BatchCallSnapshot | None]]:
            return [(batch_id, self.service.find(batch_id)) for batch_id in ids]

        try:
            results = await aio.in_worker(fetch)
        except Exception as error:
            self._refreshing = False
            log.warning("live refresh failed: %s", error)
            self._dirty.update(ids)
            self.live_timer.start(LIVE_UPDATE_MS * 5)
            return
        self._refreshing = False
        for batch_id, snapshot in results:
            self.apply_snapshot(batch_id, snapshot)
        if self._dirty:
            self.live_timer.start()

    def apply_snapshot(self, batch_id: int, snapshot: BatchCallSnapshot | None) -> None:
        """Show a fresh snapshot (None: the batch call no longer exists)."""
        self._touched.add(batch_id)
        if snapshot is None:
            self.model.remove(batch_id)
            self._details_gone(batch_id)
        else:
            if self._loaded_once or self.model.snapshot(batch_id) is not None:
                self._note_transitions([snapshot])
                self.model.upsert(snapshot)
            self._forward_to_details(snapshot)
        self._update_action_states()

    def _update_empty_state(self) -> None:
        empty = self._loaded_once and self.model.rowCount() == 0
        no_match = (
            not empty and bool(self.search_field.text().strip()) and self.proxy.rowCount() == 0
        )
        if empty:
            self.stack.setCurrentWidget(self.empty_state)
        elif no_match:
            typed = html.escape(self.search_field.text().strip())
            self.no_match_label.setText(
                f"<h3>No batch call name contains “{typed}”</h3>"
                "<p>Check the spelling, search for part of the name, or clear the search "
                f"to see all {formatting.count(self.model.rowCount())} batch calls.</p>"
            )
            self.stack.setCurrentWidget(self.no_match_state)
        else:
            self.stack.setCurrentWidget(self.table)
        self.search_field.setEnabled(not empty or bool(self.search_field.text()))

    # ----------------------------------------------------------------- notifications
    def _bring_to_front(self, _reason: object = None) -> None:
        self.showNormal()
        self.activateWindow()

    def _build_tray(self) -> None:
        self.tray = QSystemTrayIcon(icon("app"), self)
        self.tray.setObjectName("trayIcon")
        self.tray.setToolTip("Batch Calls")
        self.tray.activated.connect(self._bring_to_front)
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray.show()
        self.notifications: list[tuple[int, str]] = []

    def _note_transitions(self, snapshots: list[BatchCallSnapshot]) -> None:
        """A tray notification when a batch call shown as running (or waiting) completes
        or fails, for a supervisor working in another window."""
        for snapshot in snapshots:
            old = self.model.snapshot(snapshot.id)
            if old is None or old.status == snapshot.status:
                continue
            if snapshot.status is BatchStatus.COMPLETED:
                title = "Batch call completed"
                text = (
                    f"“{snapshot.name}”: {formatting.count(snapshot.finished_count)} of "
                    f"{formatting.count(snapshot.total_recipients)} recipients reached an outcome."
                )
                kind = QSystemTrayIcon.MessageIcon.Information
            elif snapshot.status is BatchStatus.FAILED:
                title = "Batch call failed"
                text = f"“{snapshot.name}”: {snapshot.failure_reason or 'no reason recorded.'}"
                kind = QSystemTrayIcon.MessageIcon.Warning
            else:
                continue
            self.notifications.append((snapshot.id, f"{title}: {text}"))
            if self.tray.isVisible():
                self.tray.showMessage(title, text, kind, 10_000)
            else:  # no system tray (some Linux desktops): the taskbar entry asks instead
                QApplication.alert(self)
                self.show_message(f"{title}: {text}", NOTICE_MS)
            self.notified.emit(snapshot.id, f"{title}: {text}")

    # ----------------------------------------------------------------- search
    def _search_changed(self, text: str) -> None:
        current = self.current_snapshot()
        if self.proxy.set_search(text):  # a reset: the view forgot its current row
            self.table.doItemsLayout()  # laid out now: the rows are painted once, not twice
            if current is not None:
                self.select_batch(current.id)
        self._update_empty_state()
        self._update_search_summary()
        self._update_action_states()

    def _update_search_summary(self) -> None:
        text = self.search_field.text().strip()
        if not text:
            self.search_summary.setText("")
            return
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        if shown == 0:  # the list's place says so, and what to do
            message = f"No match among {formatting.count(total)}."
        else:
            counted = f"{formatting.count(shown)} of {formatting.count(total)}"
            message = f"{counted} batch calls match “{text}”."
        self.search_summary.setText(message)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.search_field
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
            and self.search_field.text()
        ):
            self.search_field.clear()
            return True
        return super().eventFilter(watched, event)

    def focus_search(self) -> None:
        self.search_field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_field.selectAll()

    # ----------------------------------------------------------------- selection and menus
    def current_snapshot(self) -> BatchCallSnapshot | None:
        return snapshot_at(self.table.currentIndex())

    def select_batch(self, batch_id: int) -> bool:
        row = self.model.row_of(batch_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.table.scrollTo(index)
        return True

    def _current_changed(self, _current: QModelIndex, _previous: QModelIndex) -> None:
        self._update_action_states()

    def _update_action_states(self) -> None:
        snapshot = self.current_snapshot()
        allowed = set(snapshot.actions) if snapshot else set()
        for action, qaction in self.qactions.items():
            qaction.setEnabled(action in allowed)
        self.row_actions_button.setEnabled(snapshot is not None)
        self.details_action.setEnabled(snapshot is not None)

    def row_menu(self, snapshot: BatchCallSnapshot) -> Any:
        """The context menu for a batch call (not shown): exactly its allowed actions."""
        self._update_action_states()
        return build_menu(self, snapshot, self.qactions)

    def _popup(self, snapshot: BatchCallSnapshot, global_pos: QPoint) -> None:
        menu = self.row_menu(snapshot)
        menu.aboutToHide.connect(menu.deleteLater)
        menu.popup(global_pos)

    def _context_menu_requested(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if index.isValid():
            self.table.selectionModel().setCurrentIndex(
                index,
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )
        snapshot = self.current_snapshot()
        if snapshot is not None:
            self._popup(snapshot, self.table.viewport().mapToGlobal(pos))

    def show_row_menu_for_current(self) -> None:
        snapshot = self.current_snapshot()
        if snapshot is None:
            self.show_message("Select a batch call first.")
            return
        button = self.row_actions_button
        self._popup(snapshot, button.mapToGlobal(QPoint(0, button.height())))

    def _row_clicked(self, index: QModelIndex) -> None:
        if index.column() == Column.ACTIONS:
            snapshot = snapshot_at(index)
            if snapshot is None:
                return
            rect = self.table.visualRect(index)
            self._popup(snapshot, self.table.viewport().mapToGlobal(rect.bottomLeft()))

    def _row_activated(self, index: QModelIndex) -> None:
        snapshot = snapshot_at(index)
        if snapshot is not None and index.column() != Column.ACTIONS:
            self.open_details(snapshot.id)

    def open_current_details(self) -> None:
        snapshot = self.current_snapshot()
        if snapshot is not None:
            self.open_details(snapshot.id)

    # ----------------------------------------------------------------- actions
    def trigger_action(self, action: Action, snapshot: BatchCallSnapshot | None = None) -> None:
        """Perform an action on the given (default: the selected) batch call."""
        snapshot = snapshot or self.current_snapshot()
        if snapshot is None:
            self.show_message("Select a batch call first.")
            return
        if action is Action.RELOAD:
            self.reload_one(snapshot.id)
            return
        self.actions_controller.perform(action, snapshot, self)

    def reload_one(self, batch_id: int) -> None:
        """Reload one batch call, with the loading indicator and a success message."""
        self.show_message("Reloading…", 0)
        self.tasks.start("reloadOne", self._reload_one(batch_id), owner=self)

    async def _reload_one(self, batch_id: int) -> None:
        try:
            snapshot = await aio.in_worker(self.service.find, batch_id)
        except Exception as error:  # the database went away: say what to do
            log.error("reloading batch call %s failed: %s", batch_id, error)
            self.show_message(
                f"Could not reload the batch call: {error}. Check the database connection."
            )
            return
        self.apply_snapshot(batch_id, snapshot)
        if snapshot is None:
            self.show_message("That batch call no longer exists; it was removed from the list.")
        else:
            self.show_message(success_message(Action.RELOAD, snapshot.name))

    def _action_succeeded(self, action_value: str, batch_id: int, result: object) -> None:
        action = Action(action_value)
        if action is Action.DELETE:
            shown = self.model.snapshot(batch_id)
            name = shown.name if shown is not None else f"batch call {batch_id}"
            self.apply_snapshot(batch_id, None)
            self.show_message(success_message(action, name))
        elif isinstance(result, BatchCallSnapshot):
            self.apply_snapshot(batch_id, result)
            self.show_message(success_message(action, result.name))
        self.wake_engine()

    def _action_refused(self, _action_value: str, batch_id: int, message: str) -> None:
        """The status changed meanwhile (or the batch call is gone): show it as it is now."""
        self.show_message(message)
        self.mark_dirty(batch_id)

    def wake_engine(self) -> None:
        if self.engine is not None:
            try:
                self.engine.wake()
            except RuntimeError:
                pass

    # ----------------------------------------------------------------- dialogs
    def open_details(self, batch_id: int) -> Any:
        """Show the details dialog of a batch call (one per batch call, raised if open)."""
        from app.views.details import DetailsDialog

        dialog = self._details.get(batch_id)
        if dialog is None:
            snapshot = self.model.snapshot(batch_id)
            if snapshot is None:  # not in the list (yet): read it in the background
                aio.spawn(self._open_details_later(batch_id), name="openDetails", owner=self)
                return None
            dialog = DetailsDialog(
                self.context, snapshot, self.actions_controller, self.tasks, self
            )
            dialog.reloadRequested.connect(self.mark_dirty)
            dialog.finished.connect(lambda _r, i=batch_id: self._details_closed(i))
            self._details[batch_id] = dialog
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        self.detailsOpened.emit(batch_id)
        return dialog

    async def _open_details_later(self, batch_id: int) -> None:
        async with self.tasks.tracking("openDetails"):
            snapshot = await aio.in_worker(self.service.find, batch_id)
        if not aio.alive(self):
            return
        if snapshot is None:
            self.show_message("That batch call no longer exists.")
            return
        self.apply_snapshot(batch_id, snapshot)
        if self.model.snapshot(batch_id) is not None:
            self.open_details(batch_id)

    def details_dialog(self, batch_id: int) -> Any:
        return self._details.get(batch_id)

    def _details_closed(self, batch_id: int) -> None:
        dialog = self._details.pop(batch_id, None)
        if dialog is not None:
            dialog.deleteLater()

    def _forward_to_details(self, snapshot: BatchCallSnapshot) -> None:
        dialog = self._details.get(snapshot.id)
        if dialog is not None:
            dialog.update_snapshot(snapshot)

    def _details_gone(self, batch_id: int) -> None:
        dialog = self._details.get(batch_id)
        if dialog is not None:
            dialog.batch_deleted()

    def open_create_dialog(self) -> Any:
        from app.views.create_dialog import CreateDialog

        existing = self.findChild(CreateDialog, "createDialog")
        if existing is not None and existing.isVisible():
            existing.raise_()
            return existing
        dialog = CreateDialog(self.context, self)
        dialog.created.connect(self._batch_created)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def _batch_created(self, snapshot: BatchCallSnapshot) -> None:
        self._loaded_once = True
        self.model.upsert(snapshot)
        if self.search_field.text() and not self.select_batch(snapshot.id):
            self.search_field.clear()
        self.select_batch(snapshot.id)
        self._update_empty_state()
        self.show_message(
            f"Created “{snapshot.name}” with "
            f"{formatting.count(snapshot.total_recipients)} recipients; "
            f"status {snapshot.status_display}."
        )
        self.wake_engine()

    def open_settings_dialog(self) -> Any:
        from app.views.settings_dialog import SettingsDialog

        existing = self.findChild(SettingsDialog, "settingsDialog")
        if existing is not None and existing.isVisible():
            existing.raise_()
            return existing
        dialog = SettingsDialog(self.context, self)
        dialog.saved.connect(self._settings_saved)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def _settings_saved(self) -> None:
        self.update_mode_label()
        self.show_message("Settings saved.")
        self.wake_engine()

    # ----------------------------------------------------------------- shutdown
    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop timers and background work (bounded) so the application can exit."""
        if self._closing:
            return
        self._closing = True
        self.live_timer.stop()
        self.poll_timer.stop()
        for dialog in list(self._details.values()):
            dialog.close()
        for dialog in self.findChildren(QDialog):
            if dialog.isVisible():
                abandon = getattr(dialog, "abandon", None)
                if callable(abandon):
                    abandon()
                else:
                    dialog.reject()
        if self._owns_on_change:
            self.service.on_change = None
        self.tasks.shutdown(timeout_ms)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
