"""The details of one batch call: a header with Reload, Retry and Delete, and four tabs
(Summary, Configuration, Recipients, History), each filled by its own method.

The dialog is not modal: it stays open beside the list and updates live, from the
snapshots the main window forwards and from the engine's recipientsChanged signal.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.models.snapshots import BatchCallSnapshot, RecipientSnapshot, SendType
from app.models.status import Action, BatchStatus, RecipientStatus
from app.services.batch_calls import RecipientQuery
from app.views import aio, ask, detail_models, formatting, live_figures, look
from app.views.actions import ActionController, menu_actions
from app.views.context import AppContext
from app.views.detail_models import (
    SORT_FOR_COLUMN,
    HistoryTableModel,
    RecipientColumn,
    RecipientRole,
    RecipientTableModel,
)
from app.views.icons import ACTION_ICONS, icon
from app.views.tasks import BackgroundTasks
from app.views.widgets import ElidedLabel, EmptyHint

log = logging.getLogger(__name__)

#: The Summary's live figures are read again at most this often.
LIVE_FIGURES_MS = 5000

RECIPIENTS_REFRESH_MS = 1000
SEARCH_DELAY_MS = 250
#: Recipient outcomes that come with call details (times, duration, call id, error).
CALLED_STATUSES = (RecipientStatus.COMPLETED, RecipientStatus.FAILED, RecipientStatus.NO_ANSWER)


def _value_label(parent: QWidget, name: str) -> QLabel:
    label = QLabel(parent)
    label.setObjectName(name)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setWordWrap(True)
    return label


def attempt_history_text(attempts: list[dict[str, Any]]) -> str:
    """One line per call attempt: number, outcome, when it ended, the error if any."""
    lines = []
    for attempt in attempts:
        outcome = attempt.get("outcome")
        shown = RecipientStatus(outcome).display_name if outcome else "In progress"
        if attempt.get("provider_status") == "busy":
            shown = "Busy"
        when = formatting.local_time(
            attempt.get("ended_at") or attempt.get("requested_at"), seconds=True
        )
        error = f" ({attempt['error']})" if attempt.get("error") and outcome != "COMPLETED" else ""
        lines.append(f"{attempt['attempt']}. {shown}, {when}{error}")
    return "\n".join(lines) or "None."


class DetailsDialog(QDialog):
    """Everything about one batch call.

    Signals: reloadRequested(int) asks the main window to refresh the row; reloaded() after
    the dialog's own reload finished; historyLoaded(int) with the number of events;
    liveFiguresShown() after the Summary's live figures were read and shown.
    attemptHistoryLoaded(int) with the recipient id whose call attempts are shown.
    """

    reloadRequested = Signal(int)
    reloaded = Signal()
    historyLoaded = Signal(int)
    liveFiguresShown = Signal()
    attemptHistoryLoaded = Signal(int)

    def __init__(
        self,
        context: AppContext,
        snapshot: BatchCallSnapshot,
        actions: ActionController,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("detailsDialog")
        self.setModal(False)
        self.resize(900, 620)
        self.context = context
        self.service = context.service
        self.snapshot = snapshot
        self.action_controller = actions
        self.tasks = tasks
        self._deleted = False
        self._live_reading = False
        self._live_figures: live_figures.LiveFigures | None = None
        self._cps: float | None = None
        self._number_labels: dict[str, str] | None = None  # by phone number, read once
        self._history_for: int | None = None

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_header())
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("detailsTabs")
        self.summary_tab = self._build_summary_tab()
        self.configuration_tab = self._build_configuration_tab()
        self.recipients_tab = self._build_recipients_tab()
        self.history_tab = self._build_history_tab()
        self.tabs.addTab(self.summary_tab, "Summary")
        self.tabs.addTab(self.configuration_tab, "Configuration")
        self.tabs.addTab(self.recipients_tab, "Recipients")
        self.tabs.addTab(self.history_tab, "History")
        layout.addWidget(self.tabs, 1)

        footer = QHBoxLayout()
        self.loading = QProgressBar(self)
        self.loading.setObjectName("detailsLoadingIndicator")
        self.loading.setRange(0, 0)
        self.loading.setMaximumWidth(100)
        self.loading.setMaximumHeight(12)
        self.loading.setTextVisible(False)
        self.loading.setVisible(False)
        footer.addWidget(self.loading)
        self.message_label = QLabel(self)
        self.message_label.setObjectName("detailsMessageLabel")
        footer.addWidget(self.message_label, 1)
        close = QPushButton("Close", self)
        close.setObjectName("detailsCloseButton")
        close.clicked.connect(self.close)
        footer.addWidget(close)
        layout.addLayout(footer)

        self.recipients_timer = QTimer(self)
        self.recipients_timer.setObjectName("recipientsRefreshTimer")
        self.recipients_timer.setSingleShot(True)
        self.recipients_timer.setInterval(RECIPIENTS_REFRESH_MS)
        self.recipients_timer.timeout.connect(self.refresh_recipients)

        reload_shortcut = QShortcut(QKeySequence("F5"), self)
        reload_shortcut.setObjectName("detailsReloadShortcut")
        reload_shortcut.activated.connect(self.reload)

        self.fill_all()
        self.recipient_model.load()
        self.load_history()

    # ----------------------------------------------------------------- construction
    def _build_header(self) -> QHBoxLayout:
        header = QHBoxLayout()
        titles = QVBoxLayout()
        # A 100-character name is elided (whole in the tooltip and the window title)
        # instead of forcing the dialog wider than the screen.
        self.name_label = ElidedLabel("", self)
        self.name_label.setObjectName("detailsNameLabel")
        self.name_label.setProperty("role", "title")
        titles.addWidget(self.name_label)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("detailsStatusLabel")
        self.status_label.setProperty("role", "status")
        titles.addWidget(self.status_label, 0, Qt.AlignmentFlag.AlignLeft)
        header.addLayout(titles, 1)

        self.reload_button = QPushButton("Reload", self)
        self.reload_button.setObjectName("detailsReloadButton")
        self.reload_button.setToolTip("Fetch the latest data (F5)")
        self.reload_button.clicked.connect(self.reload)
        self.retry_button = QPushButton("Retry", self)
        self.retry_button.setObjectName("detailsRetryButton")
        self.retry_button.setToolTip("Call the failed and unanswered recipients again")
        self.retry_button.clicked.connect(lambda: self._perform(Action.RETRY))
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setObjectName("detailsDeleteButton")
        self.delete_button.setProperty("role", "danger")
        self.delete_button.clicked.connect(lambda: self._perform(Action.DELETE))
        # Every other action the status allows (the same table as the list's menu).
        self.action_buttons: dict[Action, QPushButton] = {
            Action.RETRY: self.retry_button,
            Action.DELETE: self.delete_button,
        }
        for action, tip in (
            (Action.PAUSE, "Stop placing new calls; calls in progress finish"),
            (Action.RESUME, "Continue with the remaining recipients"),
            (Action.CANCEL, "Stop permanently; recipients not yet called stay pending"),
            (Action.RENAME, "Change the name (nothing else changes)"),
        ):
            button = QPushButton(action.label, self)
            button.setObjectName(f"details{action.label}Button")
            button.setToolTip(tip)
            button.clicked.connect(lambda _checked=False, a=action: self._perform(a))
            self.action_buttons[action] = button
        for action, button in (*self.action_buttons.items(), (Action.RELOAD, self.reload_button)):
            button.setIcon(icon(ACTION_ICONS[action]))
        header.addWidget(self.reload_button, 0, Qt.AlignmentFlag.AlignTop)
        for action in (Action.PAUSE, Action.RESUME, Action.CANCEL, Action.RETRY, Action.RENAME):
            header.addWidget(self.action_buttons[action], 0, Qt.AlignmentFlag.AlignTop)
        separator = QFrame(self)
        separator.setObjectName("detailsDeleteSeparator")
        separator.setFrameShape(QFrame.Shape.VLine)
        separator.setFrameShadow(QFrame.Shadow.Sunken)
        separator.setFixedHeight(self.reload_button.sizeHint().height())
        header.addWidget(separator, 0, Qt.AlignmentFlag.AlignTop)
        header.addWidget(self.delete_button, 0, Qt.AlignmentFlag.AlignTop)  # destructive: last
        return header

    def _build_summary_tab(self) -> QWidget:
        """The Summary scrolls when the dialog is shorter than it (a 768-pixel screen)."""
        page = QScrollArea(self)
        page.setObjectName("summaryTab")
        page.setWidgetResizable(True)
        page.setFrameShape(QFrame.Shape.NoFrame)
        tab = QWidget(page)
        tab.setObjectName("summaryContent")
        page.setWidget(tab)
        outer = QVBoxLayout(tab)
        self.reason_label = QLabel(tab)
        self.reason_label.setObjectName("summaryReasonLabel")
        self.reason_label.setProperty("role", "notice")
        self.reason_label.setWordWrap(True)
        outer.addWidget(self.reason_label)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.summary: dict[str, QLabel] = {}
        for key, label in (
            ("status", "Status"),
            ("total", "Total recipients"),
            ("started", "Start time"),
            ("finished", "Finished"),
            ("agent", "Agent"),
            ("from_number", "From number"),
        ):
            self.summary[key] = _value_label(tab, f"summary{key.title().replace('_', '')}")
            form.addRow(f"{label}:", self.summary[key])
        form.addRow("Progress:", self._build_progress(tab))
        for key, label in (
            ("retries", "Retries"),
            ("forecast", "Estimated finish"),
        ):
            self.summary[key] = _value_label(tab, f"summary{key.title()}")
            form.addRow(f"{label}:", self.summary[key])
        self.summary["forecast"].setToolTip(
            "From the calling windows, the reserved concurrency, the pacing and the outcomes so far"
        )
        self.summary["completed"].setToolTip(
            "Recipients with a final outcome: completed, failed or no answer"
        )
        outer.addLayout(form)

        live = self.live_box = QGroupBox("Now", tab)
        live.setObjectName("summaryLiveBox")
        live_form = QFormLayout(live)
        for key, label in (
            ("in_progress", "Calls in progress"),
            ("rate", f"Calls per minute (last {live_figures.RATE_MINUTES} min)"),
            ("answer_rate", "Answer rate"),
            ("finish", "Finish at the recent rate"),
        ):
            name = "summary" + "".join(part.title() for part in key.split("_"))
            self.summary[key] = _value_label(live, name)
            live_form.addRow(f"{label}:", self.summary[key])
        self.outcome_chart = live_figures.OutcomeChart(live)
        live_form.addRow("Outcomes:", self.outcome_chart)
        outer.addWidget(live)
        self.live_timer = QTimer(self)
        self.live_timer.setObjectName("liveFiguresTimer")
        self.live_timer.setSingleShot(True)
        self.live_timer.setInterval(LIVE_FIGURES_MS)
        self.live_timer.timeout.connect(self.refresh_live_figures)

        box = QGroupBox("Recipients by status", tab)
        box.setObjectName("summaryCountsBox")
        grid = QGridLayout(box)
        self.count_labels: dict[RecipientStatus, QLabel] = {}
        for column, status in enumerate(RecipientStatus):
            caption = QLabel(status.display_name, box)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            value = QLabel(box)
            value.setObjectName("count" + status.value.title().replace("_", ""))
            value.setProperty("role", "count")
            value.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(value, 0, column)
            grid.addWidget(caption, 1, column)
            self.count_labels[status] = value
        outer.addWidget(box)
        outer.addStretch(1)
        return page

    def _build_progress(self, tab: QWidget) -> QWidget:
        """The segmented bar, then each figure once on one line: "60 of 800 processed ·
        7.5% complete · 740 remaining" (the bar carries no text of its own here)."""
        box = QWidget(tab)
        box.setObjectName("summaryProgress")
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        self.progress_bar = look.SegmentedBar(box, show_text=False)
        column.addWidget(self.progress_bar)
        line = QHBoxLayout()
        line.setSpacing(4)
        for key, caption in (
            ("completed", "processed ·"),
            ("percent", "complete ·"),
            ("remaining", "remaining"),
        ):
            value = QLabel(box)
            value.setObjectName(f"summary{key.title()}")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.summary[key] = value
            line.addWidget(value)
            line.addWidget(QLabel(caption, box))
        line.addStretch(1)
        column.addLayout(line)
        return box

    def _status_column_width(self) -> int:
        """Room for the longest status word ("Skipped: do not call") and its dot."""
        metrics = self.fontMetrics()
        widest = max(metrics.horizontalAdvance(s.display_name) for s in RecipientStatus)
        return widest + 12 + 24  # the dot and the cell's margins

    def _build_configuration_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("configurationTab")
        outer = QVBoxLayout(tab)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.configuration: dict[str, QLabel] = {}
        for key, label in (
            ("send_type", "Send type"),
            ("scheduled", "Scheduled for"),
            ("timezone", "Timezone"),
            ("time_range", "Time range"),
            ("allowed_days", "Allowed days"),
            ("blackout_dates", "Blackout dates"),
            ("end_date", "End date"),
            ("local_hours", "Recipient's local time"),
            ("retries", "Automatic retries"),
            ("concurrency", "Reserved concurrency"),
            ("created", "Created"),
        ):
            name = "config" + "".join(part.title() for part in key.split("_"))
            self.configuration[key] = _value_label(tab, name)
            form.addRow(f"{label}:", self.configuration[key])
        outer.addLayout(form)
        note = QLabel(
            "The configuration cannot change after creation; only the name can be edited.", tab
        )
        note.setObjectName("configurationNote")
        note.setProperty("role", "hint")
        outer.addWidget(note)
        outer.addStretch(1)
        return tab

    def _build_recipients_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("recipientsTab")
        outer = QVBoxLayout(tab)
        bar = QHBoxLayout()
        self.status_filter = QComboBox(tab)
        self.status_filter.setObjectName("recipientStatusFilter")
        self.status_filter.addItem("All statuses", None)
        for status in RecipientStatus:
            self.status_filter.addItem(status.display_name, status.value)
        self.status_filter.currentIndexChanged.connect(self._filter_changed)
        bar.addWidget(QLabel("Show:", tab))
        bar.addWidget(self.status_filter)
        self.recipient_search = QLineEdit(tab)
        self.recipient_search.setObjectName("recipientSearch")
        self.recipient_search.setPlaceholderText("Search phone number or name")
        self.recipient_search.setClearButtonEnabled(True)
        bar.addWidget(self.recipient_search, 1)
        self.recipient_count_label = QLabel(tab)
        self.recipient_count_label.setObjectName("recipientCountLabel")
        bar.addWidget(self.recipient_count_label)
        self.export_button = QPushButton("Export CSV…", tab)
        self.export_button.setObjectName("exportButton")
        self.export_button.setToolTip("Save the recipients shown (with outcomes) as a CSV file")
        self.export_button.clicked.connect(self.export)
        bar.addWidget(self.export_button)
        outer.addLayout(bar)

        self.search_timer = QTimer(self)
        self.search_timer.setObjectName("recipientSearchTimer")
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(SEARCH_DELAY_MS)
        self.search_timer.timeout.connect(self._filter_changed)
        self.recipient_search.textChanged.connect(lambda _t: self.search_timer.start())

        splitter = QSplitter(Qt.Orientation.Vertical, tab)
        splitter.setObjectName("recipientsSplitter")
        self.recipient_model = RecipientTableModel(self.service, self.snapshot.id, self.tasks, self)
        self.recipient_model.loaded.connect(self._recipients_loaded)
        self.recipient_model.counted.connect(self._recipients_loaded)
        self.recipient_model.pageFetched.connect(self._recipients_loaded)
        self.recipient_model.modelAboutToBeReset.connect(self._remember_recipient)
        self.recipient_model.modelReset.connect(self._restore_recipient)
        self.recipient_model.dataChanged.connect(self._recipient_data_changed)
        self.recipient_table = QTableView(splitter)
        self.recipient_table.setObjectName("recipientTable")
        self.recipient_table.setModel(self.recipient_model)
        self.recipient_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.recipient_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.recipient_table.setAlternatingRowColors(True)
        self.recipient_table.verticalHeader().setVisible(False)
        self.recipient_table.setWordWrap(False)
        self.recipients_hint = EmptyHint(
            self.recipient_table, self._no_recipient_text, when=[self.recipient_model.loaded]
        )
        self.recipients_hint.setObjectName("recipientsEmptyHint")
        header = self.recipient_table.horizontalHeader()
        header.setSortIndicatorShown(True)
        header.setSectionsClickable(True)
        header.setSortIndicator(RecipientColumn.ROW, Qt.SortOrder.AscendingOrder)
        header.sortIndicatorChanged.connect(self._sort_requested)
        self._sort = (int(RecipientColumn.ROW), Qt.SortOrder.AscendingOrder)
        header.setStretchLastSection(True)
        for column, width in (
            (RecipientColumn.ROW, 55),
            (RecipientColumn.PHONE, 140),
            (RecipientColumn.NAME, 150),
            (RecipientColumn.STATUS, self._status_column_width()),
            (RecipientColumn.ATTEMPTS, 75),
            (RecipientColumn.ENDED, 135),
        ):
            self.recipient_table.setColumnWidth(column, width)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.recipient_table.selectionModel().currentRowChanged.connect(
            lambda current, _previous: self.fill_call_details(current)
        )
        self._remembered_recipient: int | None = None

        self.call_details = QGroupBox("Call details", splitter)
        self.call_details.setObjectName("callDetailsPanel")
        grid = QGridLayout(self.call_details)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.call_fields: dict[str, QLabel] = {}
        fields = (
            ("recipient", "Recipient"),
            ("requested", "Call requested"),
            ("answered", "Answered"),
            ("ended", "Ended"),
            ("duration", "Duration"),
            ("answered_by", "Answered by"),
            ("call_id", "Provider call id"),
            ("attempts", "Attempts"),
            ("error", "Last error"),
            ("history", "Attempt history"),
        )
        for position, (key, label) in enumerate(fields):
            name = "call" + "".join(part.title() for part in key.split("_"))
            self.call_fields[key] = _value_label(self.call_details, name)
            caption = QLabel(f"{label}:", self.call_details)
            caption.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            if key in ("recipient", "error", "history"):  # long values get the whole width
                row = {"recipient": 0, "error": 5, "history": 6}[key]
                grid.addWidget(caption, row, 0)
                grid.addWidget(self.call_fields[key], row, 1, 1, 3)
                continue
            index = position - 1
            row, grid_column = 1 + index % 4, (index // 4) * 2
            grid.addWidget(caption, row, grid_column)
            grid.addWidget(self.call_fields[key], row, grid_column + 1)
        splitter.addWidget(self.recipient_table)
        splitter.addWidget(self.call_details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([360, 170])
        outer.addWidget(splitter, 1)
        self.fill_call_details(QModelIndex())
        return tab

    def _build_history_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("historyTab")
        outer = QVBoxLayout(tab)
        self.history_model = HistoryTableModel(self)
        self.history_table = QTableView(tab)
        self.history_table.setObjectName("historyTable")
        self.history_table.setModel(self.history_model)
        self.history_table.verticalHeader().setVisible(False)
        self.history_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history_table.horizontalHeader().setStretchLastSection(True)
        for column, width in ((0, 150), (1, 90), (2, 110), (3, 130)):
            self.history_table.setColumnWidth(column, width)
        outer.addWidget(self.history_table)
        self.history_hint = EmptyHint(
            self.history_table,
            lambda: (
                "No action is recorded for this batch call.\nIts creation, pauses, "
                "resumes, cancellations, retries and renames appear here, with who and when."
            ),
            when=[self.historyLoaded],
        )
        self.history_hint.setObjectName("historyEmptyHint")
        return tab

    # ----------------------------------------------------------------- filling
    def fill_all(self) -> None:
        self.fill_header()
        self.fill_summary()
        self.fill_configuration()

    def fill_header(self) -> None:
        s = self.snapshot
        self.setWindowTitle(f"{s.name}: batch call details")
        self.name_label.setText(s.name)
        self.status_label.setText(s.status_display)
        self.status_label.setProperty("status", s.status.value)
        self.status_label.setStyleSheet(look.chip_style_sheet(s.status, self.palette()))
        self.status_label.setToolTip(look.reason_line(s))
        actions = set(menu_actions(s))
        for action, button in self.action_buttons.items():
            if action is not Action.DELETE:
                button.setVisible(action in actions and not self._deleted)
        self.delete_button.setEnabled(not self._deleted)
        self.reload_button.setEnabled(not self._deleted)

    def fill_summary(self) -> None:
        s = self.snapshot
        self.summary["status"].setText(s.status_display)
        self.summary["total"].setText(formatting.count(s.total_recipients))
        # In the batch call's own zone, named, as the estimates below are.
        zone = self._zone()
        self.summary["started"].setText(
            formatting.zoned_time(s.started_at, zone) if s.started_at else "Not started yet"
        )
        self.summary["finished"].setText(formatting.zoned_time(s.finished_at, zone))
        self.summary["agent"].setText(s.agent_name)
        self._show_from_number()
        self.progress_bar.set_snapshot(s)
        self.summary["completed"].setText(
            f"{formatting.count(s.finished_count)} of {formatting.count(s.total_recipients)}"
        )
        self.summary["remaining"].setText(formatting.count(s.remaining_count))
        self.summary["percent"].setText(formatting.percent_text(s))
        self.summary["retries"].setText(formatting.count(s.retry_count))
        self._fill_forecast()
        for status, label in self.count_labels.items():
            label.setText(formatting.count(s.counts.get(status, 0)))
        self.reason_label.setText(self.reason_text())
        self.reason_label.setVisible(bool(self.reason_label.text()))
        # A failure in the colours of an error, a wait in those of a notice.
        role = "alert" if s.status is BatchStatus.FAILED else "notice"
        if self.reason_label.property("role") != role:
            self.reason_label.setProperty("role", role)
            self.reason_label.style().unpolish(self.reason_label)
            self.reason_label.style().polish(self.reason_label)
        # Nothing to show "now" before its first call (scheduled, still being stored).
        self.live_box.setVisible(
            s.started_at is not None or s.status not in (BatchStatus.SCHEDULED, BatchStatus.PENDING)
        )
        self.summary["in_progress"].setText(
            formatting.count(s.counts.get(RecipientStatus.IN_PROGRESS, 0))
        )
        if not self.live_timer.isActive() and not self._live_reading:
            # At most one read per LIVE_FIGURES_MS however often the counts change.
            self.live_timer.start(0 if self._live_figures is None else LIVE_FIGURES_MS)

    def refresh_live_figures(self) -> None:
        """Read the recent outcomes in the background and show the rate, the answer rate,
        the estimate and the chart. Signals liveFiguresShown when done."""
        if self._deleted or self._live_reading:
            return
        self._live_reading = True
        self.tasks.start("liveFigures", self._read_live_figures(), quiet=True, owner=self)

    async def _read_live_figures(self) -> None:
        service, context, batch_id = self.service, self.context, self.snapshot.id

        numbers = self._number_labels

        def read() -> tuple[datetime, float, list[Any], dict[str, str]]:
            now = context.clock()
            since = now - timedelta(minutes=live_figures.CHART_MINUTES)
            return (
                now,
                context.load_settings().calls_per_second,
                service.outcomes_since(batch_id, since),
                numbers
                if numbers is not None
                else {n.phone_number: n.label for n in service.list_from_numbers()},
            )

        try:
            now, calls_per_second, outcomes, labels = await aio.in_worker(read)
        except Exception as error:
            log.warning("live figures not read: %s", error)
            return
        finally:
            self._live_reading = False
        if numbers is None:  # read once: a number's label, for "From number"
            self._number_labels = labels
            self._show_from_number()
        if self._cps != calls_per_second:  # the pacing the estimate needs, read off-thread
            self._cps = calls_per_second
            self._fill_forecast()
        figures = live_figures.live_figures(self.snapshot, outcomes, now, calls_per_second)
        self._live_figures = figures
        self.summary["in_progress"].setText(formatting.count(figures.in_progress))
        self.summary["rate"].setText(formatting.number(figures.per_minute))
        self.summary["answer_rate"].setText(
            "—"
            if figures.answer_rate is None
            else formatting.percent(round(figures.answer_rate * 100))
        )
        self.summary["finish"].setText(live_figures.finish_text(figures, self.snapshot))
        self.outcome_chart.set_minutes(figures.minutes)
        self.liveFiguresShown.emit()

    @property
    def live_figures_shown(self) -> bool:
        """True once the live figures (and the estimate) were read and shown."""
        return self._live_figures is not None

    def _zone(self) -> ZoneInfo:
        return formatting.zone_named(self.snapshot.timezone)

    def _show_from_number(self) -> None:
        """The number, and its label once read ("+12025550100 (Demo line)")."""
        number = self.snapshot.from_number
        label = (self._number_labels or {}).get(number, "")
        self.summary["from_number"].setText(f"{number} ({label})" if label else number)

    def _fill_forecast(self) -> None:
        """The estimated finish, once the pacing setting was read (with the live figures,
        in the background: never a settings read on the GUI thread)."""
        s = self.snapshot
        forecast = None if self._cps is None else s.forecast(self.context.clock(), self._cps)
        self.summary["forecast"].setText(
            forecast.describe(self._zone(), count=formatting.count, when=formatting.weekday_time)
            if forecast
            else formatting.NO_VALUE
        )

    def reason_text(self) -> str:
        """Why nothing is being dialed (or why it failed), in the supervisor's words."""
        return look.status_reason(self.snapshot)

    def fill_configuration(self) -> None:
        s = self.snapshot
        zone = self._zone()
        self.configuration["send_type"].setText(s.send_type.display_name)
        scheduled = s.send_type is SendType.SCHEDULE and s.scheduled_at is not None
        self.configuration["scheduled"].setText(
            f"{formatting.local_time(s.scheduled_at, zone)} ({s.timezone})"
            if scheduled
            else "Not scheduled (Send Now)"
        )
        self.configuration["timezone"].setText(s.timezone)
        self.configuration["time_range"].setText(s.time_ranges_display)
        self.configuration["allowed_days"].setText(s.allowed_days_display)
        self.configuration["blackout_dates"].setText(s.blackout_dates_display)
        self.configuration["end_date"].setText(
            f"{formatting.local_time(s.end_at, zone)} ({s.timezone}); then Expired"
            if s.end_at
            else "None"
        )
        self.configuration["local_hours"].setText(s.local_hours_display)
        self.configuration["retries"].setText(s.retries_display)
        self.configuration["concurrency"].setText(str(s.reserved_concurrency))
        self.configuration["created"].setText(formatting.local_time(s.created_at))

    def fill_call_details(self, index: QModelIndex) -> None:
        """Times, duration, answered-by, provider call id and last error of the selected
        recipient, when it was called (completed, failed or not answered)."""
        recipient = index.data(RecipientRole.SNAPSHOT) if index.isValid() else None
        fields = self.call_fields
        if not isinstance(recipient, RecipientSnapshot):
            for label in fields.values():
                label.setText("")
            fields["recipient"].setText("Select a recipient to see its call.")
            return
        fields["recipient"].setText(
            f"{recipient.phone_number} {recipient.name or ''} ({recipient.status.display_name})"
        )
        self._load_attempt_history(recipient)
        if recipient.status not in CALLED_STATUSES:
            for key in fields:
                if key not in ("recipient", "history"):
                    fields[key].setText("")
            if recipient.status is RecipientStatus.WAITING_RETRY:
                fields["requested"].setText(
                    "Next attempt at "
                    + formatting.local_time(recipient.next_try_at, seconds=True)
                    + "."
                )
                fields["error"].setText(recipient.last_error or formatting.NO_VALUE)
            elif recipient.status in (RecipientStatus.DO_NOT_CALL, RecipientStatus.EXPIRED):
                fields["requested"].setText("Not called.")
                fields["error"].setText(recipient.last_error or formatting.NO_VALUE)
            else:
                fields["requested"].setText(
                    "Not called yet." if recipient.attempts == 0 else "A call is in progress."
                )
            fields["attempts"].setText(formatting.count(recipient.attempts))
            return
        fields["requested"].setText(formatting.local_time(recipient.requested_at, seconds=True))
        fields["answered"].setText(formatting.local_time(recipient.answered_at, seconds=True))
        fields["ended"].setText(formatting.local_time(recipient.ended_at, seconds=True))
        fields["duration"].setText(formatting.duration(recipient.duration_seconds))
        fields["answered_by"].setText(recipient.answered_by or formatting.NO_VALUE)
        fields["call_id"].setText(recipient.provider_call_id or formatting.NO_VALUE)
        fields["error"].setText(recipient.last_error or formatting.NO_VALUE)
        fields["attempts"].setText(formatting.count(recipient.attempts))

    def _load_attempt_history(self, recipient: RecipientSnapshot) -> None:
        """Every call attempt of the selected recipient (SPEC 10: automatic retries), read
        in the background; a later selection wins."""
        label = self.call_fields["history"]
        if recipient.attempts == 0:
            label.setText("None." if recipient.status.is_terminal else "No call yet.")
            return
        label.setText("Loading…")
        self._history_for = recipient.id
        history = self._read_attempt_history(recipient.id)
        self.tasks.start("attemptHistory", history, quiet=True, owner=self)

    async def _read_attempt_history(self, recipient_id: int) -> None:
        attempts = await aio.in_worker(self.service.call_attempts, recipient_id)
        if self._history_for != recipient_id:
            return  # another recipient was selected meanwhile
        self.call_fields["history"].setText(attempt_history_text(attempts))
        self.attemptHistoryLoaded.emit(recipient_id)

    def load_history(self) -> None:
        self.tasks.start("history", self._read_history(), quiet=True, owner=self)

    async def _read_history(self) -> None:
        events = await aio.in_worker(self.service.history, self.snapshot.id)
        self.history_model.set_events(events)
        self.historyLoaded.emit(len(events))

    # ----------------------------------------------------------------- live updates
    def update_snapshot(self, snapshot: BatchCallSnapshot) -> None:
        """A fresher snapshot (from the main window's live updates or a reload)."""
        if snapshot.id != self.snapshot.id or self._deleted:
            return
        previous = self.snapshot
        self.snapshot = snapshot
        if snapshot == previous:
            return
        self.fill_all()
        if snapshot.counts != previous.counts or snapshot.status != previous.status:
            self.recipients_changed()
        if (
            snapshot.status != previous.status
            or snapshot.name != previous.name
            or snapshot.retry_count != previous.retry_count
        ):
            self.load_history()

    def recipients_changed(self) -> None:
        """Recipients changed (engine signal): refresh the rows shown, at most once a second."""
        if not self.recipients_timer.isActive():
            self.recipients_timer.start()

    def visible_recipient_rows(self) -> tuple[int, int]:
        """The first and last recipient rows on screen (the top page before it is shown)."""
        table = self.recipient_table
        first = table.rowAt(0)
        if first < 0:
            return 0, detail_models.PAGE_SIZE - 1
        last = table.rowAt(table.viewport().height() - 1)
        return first, last if last >= 0 else self.recipient_model.rowCount() - 1

    def refresh_recipients(self) -> None:
        """Re-read the recipients on screen (and a page either side): live updates."""
        self.recipient_model.set_visible_rows(*self.visible_recipient_rows())
        self.recipient_model.refresh()

    def batch_deleted(self) -> None:
        """The batch call no longer exists: say so and close."""
        self._deleted = True
        self.fill_header()
        self.recipients_timer.stop()
        self.live_timer.stop()
        self.close()

    # ----------------------------------------------------------------- recipients
    def _filter_changed(self, *_args: Any) -> None:
        value = self.status_filter.currentData()
        status = RecipientStatus(value) if value else None
        self.recipient_model.set_filter(status, self.recipient_search.text())

    def _sort_requested(self, column: int, order: Qt.SortOrder) -> None:
        """Sort in SQL; a click on Variables (not sortable) puts the indicator back."""
        if column not in SORT_FOR_COLUMN:
            header = self.recipient_table.horizontalHeader()
            header.blockSignals(True)
            header.setSortIndicator(*self._sort)
            header.blockSignals(False)
            return
        self._sort = (column, order)
        self.recipient_model.sort(column, order)

    def _no_recipient_text(self) -> str:
        """What the empty recipients table says (a search or a status shows none)."""
        query = self.recipient_model.query
        search = query.search.strip()
        status = query.status.display_name if query.status is not None else None
        if search:
            among = f" among {status}" if status else ""
            return (
                f"No recipient matches “{search}”{among}.\nCheck the digits or the spelling, "
                "search for part of it, or clear the search."
            )
        if status:
            return f"No recipient is {status} now.\nShow All statuses to see every recipient."
        return "This batch call has no recipients."

    def _recipients_loaded(self, *_args: Any) -> None:
        """ "200 of 450 recipients loaded" after a query, its count, a refresh and each
        further page; "200 matching recipients loaded, counting…" before a search's count."""
        total = self.recipient_model.total
        shown = self.recipient_model.rowCount()
        query = self.recipient_model.query
        filtered = query.status is not None or bool(query.search.strip())
        what = "matching recipients" if filtered else "recipients"
        failure = self.recipient_model.count_error if total is None else None
        if failure:
            text = f"{formatting.count(shown)} {what} loaded; counting failed (Reload to retry)"
        elif total is None:
            text = f"{formatting.count(shown)} {what} loaded, counting…"
        elif total == 0:
            text = "No recipient matches." if filtered else "No recipients."
        elif shown < total:
            text = f"{formatting.count(shown)} of {formatting.count(total)} {what} loaded"
        else:
            text = f"{formatting.count(total)} {what}"
        self.recipient_count_label.setText(text)
        self.recipient_count_label.setToolTip(failure or "")

    def _remember_recipient(self) -> None:
        index = self.recipient_table.currentIndex()
        self._remembered_recipient = (
            index.data(RecipientRole.RECIPIENT_ID) if index.isValid() else None
        )
        self._remembered_scroll = self.recipient_table.verticalScrollBar().value()

    def _restore_recipient(self) -> None:
        recipient_id = self._remembered_recipient
        if recipient_id is not None:
            row = self.recipient_model.row_of(recipient_id)
            if row is not None:
                self.recipient_table.selectionModel().setCurrentIndex(
                    self.recipient_model.index(row, 0),
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows,
                )
        QTimer.singleShot(
            0,
            self.recipient_table,
            lambda v=self._remembered_scroll: self.recipient_table.verticalScrollBar().setValue(v),
        )
        self.fill_call_details(self.recipient_table.currentIndex())

    def _recipient_data_changed(self, top: QModelIndex, bottom: QModelIndex, *_roles: Any) -> None:
        current = self.recipient_table.currentIndex()
        if current.isValid() and top.row() <= current.row() <= bottom.row():
            self.fill_call_details(current)

    def select_recipient(self, row: int) -> None:
        self.recipient_table.selectionModel().setCurrentIndex(
            self.recipient_model.index(row, 0),
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )

    def export(self) -> None:
        """Write the recipients shown (current filter) to a CSV file the supervisor picks."""
        s = self.snapshot
        safe = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in s.name).strip()
        path = ask.save_file(
            self, "Export recipients", f"{safe or 'batch-call'}-recipients.csv", "CSV files (*.csv)"
        )
        if not path:
            return
        if not path.lower().endswith(".csv"):
            path += ".csv"
        self.export_button.setEnabled(False)
        self._show_busy(True, "Exporting recipients…")
        export = self._export(path, self.recipient_model.query)
        self.tasks.start("export", export, owner=self)

    async def _export(self, path: str, query: RecipientQuery) -> None:
        try:
            count = await aio.in_worker(
                self.service.export_recipients, self.snapshot.id, path, query
            )
        except Exception as error:
            self.export_button.setEnabled(True)
            self._show_busy(False, "Export failed.")
            ask.inform(
                self,
                "Export failed",
                f"The recipients could not be written to {path}: {error}. "
                "Choose another folder (one you can write to) and try again.",
                warning=True,
            )
            return
        self.export_button.setEnabled(True)
        self._show_busy(
            False, f"Exported {formatting.count(count)} recipients to {Path(path).name}."
        )

    # ----------------------------------------------------------------- header actions
    def _perform(self, action: Action) -> None:
        self.action_controller.perform(action, self.snapshot, self)

    def reload(self) -> None:
        """Re-read the batch call, its recipients and its history (with a busy indicator)."""
        if self._deleted:
            return
        self._show_busy(True, "Reloading…")
        self.reloadRequested.emit(self.snapshot.id)
        self.tasks.start("detailsReload", self._reload(self.snapshot.id), owner=self)

    async def _reload(self, batch_id: int) -> None:
        try:
            snapshot = await aio.in_worker(self.service.find, batch_id)
        except Exception as error:
            self._show_busy(False, f"Could not reload: {error}. Check the database connection.")
            return
        if snapshot is None:
            self._show_busy(False, "This batch call no longer exists.")
            self.batch_deleted()
            return
        self.update_snapshot(snapshot)
        self.recipient_model.reload_rows()
        self.load_history()
        self._show_busy(False, "Reloaded.")
        self.reloaded.emit()

    def _show_busy(self, busy: bool, message: str) -> None:
        self.loading.setVisible(busy)
        self.message_label.setText(message)

    def changeEvent(self, event: QEvent) -> None:
        """The status chip is drawn for the palette: again when it switches light/dark."""
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "status_label"):
            self.status_label.setStyleSheet(
                look.chip_style_sheet(self.snapshot.status, self.palette())
            )
        super().changeEvent(event)

    def closeEvent(self, event: Any) -> None:
        self.recipients_timer.stop()
        self.live_timer.stop()
        self.search_timer.stop()
        super().closeEvent(event)
