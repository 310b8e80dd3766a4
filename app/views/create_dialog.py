"""Create a batch call: name, agent, from number, recipients CSV with a validation view
(fix or remove rejected rows, keep or drop duplicates), send type, time range, allowed
days and reserved concurrency.

The CSV is read in the background (progress bar, Cancel) when chosen and again when the
batch call is created; neither freezes the window. Create stays disabled, with the reason
shown, while anything is missing or wrong.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, QItemSelectionModel, Qt, QTime, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDateEdit,
    QDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTableView,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from app.models.creation import CreationRequest, creation_problems, name_problem
from app.models.policy import MAX_ATTEMPTS_LIMIT, RETRY_DELAY_MAX_MINUTES, RetryOutcome
from app.models.snapshots import BatchCallSnapshot, SendType
from app.models.window import DAY_NAMES, WEEKDAYS, WindowError, common_timezones, parse_timezone
from app.services import csv_import
from app.services.batch_calls import (
    CONCURRENCY_MAX,
    CreationCancelled,
    NewBatchCall,
    ValidationError,
    scheduled_instant,
)
from app.services.csv_import import CsvImportError, CsvReport, ImportCancelled, ImportOptions
from app.services.settings import AppSettings
from app.views import aio, ask, formatting, look
from app.views.context import AppContext, local_timezone_name
from app.views.fix_hints import fix_hint
from app.views.rejected_model import HINT_ROLE, RejectedColumn, RejectedRowsModel, RowState
from app.views.tasks import BackgroundTasks
from app.views.widgets import ElidedLabel

log = logging.getLogger(__name__)

ROW_COLUMN_MIN_WIDTH = 45
DUPLICATE_EXAMPLES = 3  # on the line
DUPLICATE_TOOLTIP_GROUPS = 15  # in its tooltip
#: Closing the application waits this long for a cancelled creation to roll back.
CREATE_ROLLBACK_WAIT_S = 10.0


def duplicates_summary(report: CsvReport) -> tuple[str, str]:
    """(one line, tooltip) about the numbers found on several rows."""
    count = report.duplicate_count
    what = f"{formatting.count(count)} duplicate number{'s' if count != 1 else ''}"

    def rows_of(group: Any, limit: int) -> str:
        shown = ", ".join(formatting.ordinal(r) for r in group.row_numbers[:limit])
        return shown + (", …" if len(group.row_numbers) > limit else "")

    examples = "; ".join(
        f"{g.phone_number} (rows {rows_of(g, 4)})" for g in report.duplicates[:DUPLICATE_EXAMPLES]
    )
    more = "; …" if len(report.duplicates) > DUPLICATE_EXAMPLES else ""
    line = f"{what}: {examples}{more}"
    listed = [
        f"{g.phone_number}: rows {rows_of(g, 10)}"
        for g in report.duplicates[:DUPLICATE_TOOLTIP_GROUPS]
    ]
    hidden = count - sum(
        len(g.row_numbers) - 1 for g in report.duplicates[:DUPLICATE_TOOLTIP_GROUPS]
    )
    if hidden > 0:
        listed.append(f"… and {formatting.count(hidden)} more duplicate rows")
    tooltip = (
        f"{what} (a phone number on more than one row). Keep them to call each row, or "
        "call each number once:\n" + "\n".join(listed)
    )
    return line, tooltip


class CreateDialog(QDialog):
    """The create form.

    Signals: created(BatchCallSnapshot) once stored; scanned(object) after a CSV was read
    (the CsvReport, or None when the file was refused or the reading cancelled);
    problemsChanged() whenever what blocks Create changed; choicesLoaded() once the
    settings, agents and from numbers were read (in the background).
    """

    created = Signal(object)
    scanned = Signal(object)
    problemsChanged = Signal()
    choicesLoaded = Signal()

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self._ready = False  # widgets signal while the form is being built
        self.setObjectName("createDialog")
        self.setWindowTitle("New batch call")
        self.setAcceptDrops(True)
        self.resize(1000, 720)
        self.context = context
        self.service = context.service
        # Detached threads (aio.in_thread): closing the dialog cancels the reading or
        # creation and never waits for it (a file on a slow share, a long rollback).
        self.tasks = BackgroundTasks(self)
        self.tasks.setObjectName("createTaskRunner")
        # Filled in the background (never a database read on the GUI thread): until then
        # the agent and number lists say "Loading…" and nothing can be created.
        self.settings = AppSettings()
        self.choices_loaded = False
        self._pending_csv: str | None = None
        self.report: CsvReport | None = None
        self.csv_path: str | None = None
        self.csv_error: str | None = None
        #: The reading of the CSV and the creation in progress (None: none).
        self._scan: aio.WorkerControl | None = None
        self._creation: aio.WorkerControl | None = None

        outer = QVBoxLayout(self)
        columns = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(self._build_basics())
        # When it starts beside what it is: the calling hours and rules need the height.
        left.addWidget(self._build_schedule())
        left.addStretch(1)
        # The options column scrolls on a small screen rather than squeezing its labels.
        options = QWidget(self)
        options.setObjectName("createOptionsPanel")
        right = QVBoxLayout(options)
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(self._build_window())
        right.addWidget(self._build_policy())
        right.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setObjectName("createOptionsScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(options)
        scroll.setMinimumWidth(
            options.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
        )
        columns.addLayout(left, 5)
        columns.addWidget(scroll, 4)
        outer.addLayout(columns, 1)
        # The recipients (and their rejection reasons) get the dialog's whole width.
        outer.addWidget(self._build_recipients(), 1)
        outer.addLayout(self._build_footer())

        self.recheck_timer = QTimer(self)
        self.recheck_timer.setObjectName("createRecheckTimer")
        self.recheck_timer.setInterval(30_000)  # "in the past" changes as time passes
        self.recheck_timer.timeout.connect(self.update_problems)
        # Runs only while the dialog is shown, so a dialog built and dropped unseen leaves no
        # timer behind (showEvent/hideEvent below).
        self._ready = True
        self.update_problems()
        self._load_choices()

    # ----------------------------------------------------------------- construction
    def _build_basics(self) -> QGroupBox:
        box = QGroupBox("Batch call", self)
        box.setObjectName("basicsBox")
        form = QFormLayout(box)
        self.name_field = QLineEdit(box)
        self.name_field.setObjectName("nameField")
        self.name_field.setPlaceholderText("For example: December appointment reminders")
        self.name_field.setClearButtonEnabled(True)
        self.name_field.textChanged.connect(self.update_problems)
        form.addRow("&Name:", self.name_field)

        self.agent_combo = QComboBox(box)
        self.agent_combo.setObjectName("agentCombo")
        self.agent_combo.setPlaceholderText("Loading…")
        self.agent_combo.currentIndexChanged.connect(self.update_problems)
        form.addRow("&Agent:", self.agent_combo)

        self.from_combo = QComboBox(box)
        self.from_combo.setObjectName("fromNumberCombo")
        self.from_combo.setPlaceholderText("Loading…")
        self.from_combo.currentIndexChanged.connect(self.update_problems)
        form.addRow("&From number:", self.from_combo)
        return box

    def _load_choices(self) -> None:
        """Read the settings, the active agents and from numbers in the background."""
        self.tasks.start("loadChoices", self._read_choices(), owner=self)

    async def _read_choices(self) -> None:
        context, service = self.context, self.service

        def read() -> tuple[AppSettings, list[Any], list[Any]]:
            try:
                settings = context.load_settings()
            except Exception as error:  # unreadable settings: defaults, said in the log
                log.error("settings could not be read, using defaults: %s", error)
                settings = AppSettings()
            return (
                settings,
                service.list_agents(active_only=True),
                service.list_from_numbers(active_only=True),
            )

        try:
            settings, agents, numbers = await aio.in_thread(read)
        except Exception as error:
            for combo in (self.agent_combo, self.from_combo):
                combo.setPlaceholderText("Could not be read")
            self.problems_label.setText(
                f"The agents and numbers could not be read: {error}. Close this window, "
                "check the database connection, and try again."
            )
            return
        self.settings = settings
        for agent in agents:
            self.agent_combo.addItem(agent.name, agent.id)
        for number in numbers:
            self.from_combo.addItem(number.display, number.id)
        for combo in (self.agent_combo, self.from_combo):
            combo.setPlaceholderText("None available: add one in Settings")
            if combo.count():
                combo.setCurrentIndex(0)
        self.concurrency_hint.setText(self._plan_text())
        self.choices_loaded = True
        self.update_problems()
        self.choicesLoaded.emit()
        if self._pending_csv is not None:  # chosen before the settings were read
            path, self._pending_csv = self._pending_csv, None
            self.load_csv(path)

    def _plan_text(self) -> str:
        return (
            f"Simultaneous calls for this batch call. The plan allows "
            f"{self.settings.plan_concurrency} in all, shared by every running batch call."
        )

    def _build_recipients(self) -> QGroupBox:
        box = QGroupBox("Recipients", self)
        box.setObjectName("recipientsBox")
        layout = QVBoxLayout(box)
        bar = QHBoxLayout()
        self.choose_button = QPushButton("Choose CSV…", box)
        self.choose_button.setObjectName("chooseCsvButton")
        self.choose_button.clicked.connect(self.choose_csv)
        bar.addWidget(self.choose_button)
        self.template_button = QPushButton("Download template…", box)
        self.template_button.setObjectName("downloadTemplateButton")
        self.template_button.setToolTip("Save a sample CSV with the expected columns")
        self.template_button.clicked.connect(self.download_template)
        bar.addWidget(self.template_button)
        bar.addStretch(1)
        layout.addLayout(bar)

        self.csv_label = QLabel(
            "No file yet: choose a CSV file or drop it on this window. It needs a "
            "phone_number column; name and any other columns are optional.",
            box,
        )
        self.csv_label.setObjectName("csvFileLabel")
        self.csv_label.setWordWrap(True)
        layout.addWidget(self.csv_label)

        progress_row = QHBoxLayout()
        self.scan_progress = QProgressBar(box)
        self.scan_progress.setObjectName("scanProgress")
        self.scan_progress.setRange(0, 1000)
        self.scan_progress.setFormat("Reading the file… %p %")
        progress_row.addWidget(self.scan_progress, 1)
        self.cancel_scan_button = QPushButton("Cancel", box)
        self.cancel_scan_button.setObjectName("cancelScanButton")
        self.cancel_scan_button.clicked.connect(self.cancel_scan)
        progress_row.addWidget(self.cancel_scan_button)
        layout.addLayout(progress_row)
        self._show_scan_progress(False)

        self.csv_error_label = QLabel(box)
        self.csv_error_label.setObjectName("csvErrorLabel")
        self.csv_error_label.setProperty("role", "error")
        self.csv_error_label.setWordWrap(True)
        self.csv_error_label.setVisible(False)
        layout.addWidget(self.csv_error_label)

        counts = QHBoxLayout()
        self.accepted_label = QLabel(box)
        self.accepted_label.setObjectName("acceptedCountLabel")
        self.accepted_label.setProperty("role", "ok")
        self.rejected_label = QLabel(box)
        self.rejected_label.setObjectName("rejectedCountLabel")
        self.rejected_label.setProperty("role", "error")
        for count_label in (self.accepted_label, self.rejected_label):
            # The counts are what the supervisor checks first: never squeezed by the rest.
            count_label.setMinimumHeight(count_label.fontMetrics().height())
            count_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            counts.addWidget(count_label)
        counts.addStretch(1)
        layout.addLayout(counts)

        self.validation = QWidget(box)
        self.validation.setObjectName("validationView")
        v_layout = QVBoxLayout(self.validation)
        v_layout.setContentsMargins(0, 0, 0, 0)
        duplicates = QVBoxLayout()
        duplicates.setContentsMargins(0, 0, 0, 0)
        duplicates.setSpacing(2)
        # One line however many duplicates: the examples are elided, the list is in the
        # tooltip (a wrapped paragraph squeezed the counts and the table).
        self.duplicates_label = ElidedLabel("", self.validation)
        self.duplicates_label.setObjectName("duplicatesLabel")
        duplicates.addWidget(self.duplicates_label)
        choice = QHBoxLayout()
        self.keep_duplicates = QRadioButton("Keep them (call every row)", self.validation)
        self.keep_duplicates.setObjectName("keepDuplicatesRadio")
        self.drop_duplicates = QRadioButton("Call each number once", self.validation)
        self.drop_duplicates.setObjectName("dropDuplicatesRadio")
        self.duplicates_group = QButtonGroup(self.validation)
        self.duplicates_group.addButton(self.keep_duplicates)
        self.duplicates_group.addButton(self.drop_duplicates)
        self.keep_duplicates.setChecked(True)
        self.drop_duplicates.toggled.connect(self.update_problems)
        choice.addWidget(self.keep_duplicates)
        choice.addWidget(self.drop_duplicates)
        choice.addStretch(1)
        duplicates.addLayout(choice)
        self.duplicates_row = QWidget(self.validation)
        self.duplicates_row.setLayout(duplicates)
        v_layout.addWidget(self.duplicates_row)

        self.rejected_model = RejectedRowsModel(self)
        self.rejected_model.edited.connect(self.update_problems)
        self.rejected_table = QTableView(self.validation)
        self.rejected_table.setObjectName("rejectedRowsTable")
        self.rejected_table.setModel(self.rejected_model)
        self.rejected_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.rejected_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.rejected_table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.rejected_table.verticalHeader().setVisible(False)
        self.rejected_table.setWordWrap(False)
        # The reason, then how to fix it, on two lines of the widest column.
        self.reason_delegate = look.TwoLineDelegate(HINT_ROLE, self.rejected_table)
        self.reason_delegate.setObjectName("rejectedReasonDelegate")
        self.rejected_table.setItemDelegateForColumn(RejectedColumn.REASON, self.reason_delegate)
        self.rejected_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.rejected_table.verticalHeader().setDefaultSectionSize(
            look.row_height(self.rejected_table.fontMetrics().height())
        )
        header = self.rejected_table.horizontalHeader()
        header.setSectionResizeMode(RejectedColumn.REASON, QHeaderView.ResizeMode.Stretch)
        self.rejected_table.setColumnWidth(RejectedColumn.ROW, ROW_COLUMN_MIN_WIDTH)
        self.rejected_table.setColumnWidth(RejectedColumn.PHONE, 150)
        self.rejected_table.setColumnWidth(RejectedColumn.STATE, 70)
        self.rejected_table.selectionModel().currentRowChanged.connect(
            lambda *_: self._update_row_buttons()
        )
        self.rejected_model.dataChanged.connect(lambda *_: self._update_row_buttons())
        v_layout.addWidget(self.rejected_table, 1)
        self.reason_label = QLabel(self.validation)
        self.reason_label.setObjectName("rejectedReasonLabel")
        self.reason_label.setWordWrap(True)
        v_layout.addWidget(self.reason_label)

        row_buttons = QHBoxLayout()
        hint = QLabel("Double-click a phone number to correct it.", self.validation)
        hint.setProperty("role", "hint")
        row_buttons.addWidget(hint, 1)
        self.remove_row_button = QPushButton("Remove row", self.validation)
        self.remove_row_button.setObjectName("removeRowButton")
        self.remove_row_button.setToolTip("Do not import this row")
        self.remove_row_button.clicked.connect(self.remove_selected_row)
        row_buttons.addWidget(self.remove_row_button)
        self.restore_row_button = QPushButton("Restore row", self.validation)
        self.restore_row_button.setObjectName("restoreRowButton")
        self.restore_row_button.clicked.connect(self.restore_selected_row)
        row_buttons.addWidget(self.restore_row_button)
        v_layout.addLayout(row_buttons)
        layout.addWidget(self.validation, 1)
        self.validation.setVisible(False)
        self._update_row_buttons()
        return box

    def _build_schedule(self) -> QGroupBox:
        box = QGroupBox("When", self)
        box.setObjectName("scheduleBox")
        form = QFormLayout(box)
        kinds = QHBoxLayout()
        self.send_now_radio = QRadioButton("Send now", box)
        self.send_now_radio.setObjectName("sendNowRadio")
        self.schedule_radio = QRadioButton("Schedule", box)
        self.schedule_radio.setObjectName("scheduleRadio")
        self.send_type_group = QButtonGroup(box)
        self.send_type_group.addButton(self.send_now_radio)
        self.send_type_group.addButton(self.schedule_radio)
        self.send_now_radio.setChecked(True)
        kinds.addWidget(self.send_now_radio)
        kinds.addWidget(self.schedule_radio)
        kinds.addStretch(1)
        form.addRow("Send type:", kinds)

        zone_name = local_timezone_name()
        self.timezone_combo = QComboBox(box)
        self.timezone_combo.setObjectName("timezoneCombo")
        self.timezone_combo.setEditable(True)
        self.timezone_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        zones = common_timezones()
        if "UTC" not in zones:
            zones.insert(0, "UTC")
        self.timezone_combo.addItems(zones)
        completer = QCompleter(zones, self.timezone_combo)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.timezone_combo.setCompleter(completer)
        self.timezone_combo.setCurrentText(zone_name)
        self.timezone_combo.currentTextChanged.connect(self.update_problems)
        form.addRow("&Timezone:", self.timezone_combo)

        now_local = self.context.clock().astimezone(self._zone_or_utc(zone_name))
        start = (now_local + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        self.date_edit = QDateEdit(QDate(start.year, start.month, start.day), box)
        self.date_edit.setObjectName("scheduleDateEdit")
        self.date_edit.setCalendarPopup(True)
        self.date_edit.setDisplayFormat(formatting.date_pattern())
        self.date_edit.dateChanged.connect(self.update_problems)
        self.time_edit = QTimeEdit(QTime(start.hour, start.minute), box)
        self.time_edit.setObjectName("scheduleTimeEdit")
        self.time_edit.setDisplayFormat(formatting.time_pattern())
        self.time_edit.timeChanged.connect(self.update_problems)
        when = QHBoxLayout()
        when.addWidget(self.date_edit)
        when.addWidget(self.time_edit)
        when.addStretch(1)
        self.schedule_row_label = QLabel("Start at:", box)
        form.addRow(self.schedule_row_label, when)
        self.schedule_radio.toggled.connect(self._send_type_changed)
        self._send_type_changed(False)
        return box

    def _build_window(self) -> QGroupBox:
        box = QGroupBox("Calling hours", self)
        box.setObjectName("windowBox")
        form = QFormLayout(box)
        hours = QHBoxLayout()
        self.start_edit = QTimeEdit(QTime(9, 0), box)
        self.start_edit.setObjectName("windowStartEdit")
        self.start_edit.setDisplayFormat(formatting.time_pattern())
        self.end_edit = QTimeEdit(QTime(18, 0), box)
        self.end_edit.setObjectName("windowEndEdit")
        self.end_edit.setDisplayFormat(formatting.time_pattern())
        for edit in (self.start_edit, self.end_edit):
            edit.timeChanged.connect(self.update_problems)
        hours.addWidget(self.start_edit)
        hours.addWidget(QLabel("to", box))
        hours.addWidget(self.end_edit)
        self.all_day_check = QCheckBox("All day", box)
        self.all_day_check.setObjectName("allDayCheck")
        self.all_day_check.toggled.connect(self._all_day_changed)
        hours.addWidget(self.all_day_check)
        hours.addStretch(1)
        form.addRow("Time range:", hours)
        self.extra_ranges_field = QLineEdit(box)
        self.extra_ranges_field.setObjectName("extraRangesField")
        self.extra_ranges_field.setPlaceholderText("Optional, e.g. 14:00-18:00")
        self.extra_ranges_field.setToolTip(
            "More calling ranges on the same days, comma-separated (09:00-12:00 above and "
            "14:00-18:00 here skips lunch)"
        )
        self.extra_ranges_field.textChanged.connect(self.update_problems)
        form.addRow("More ranges:", self.extra_ranges_field)

        days = QHBoxLayout()
        self.day_boxes: dict[int, QCheckBox] = {}
        for number, name in enumerate(DAY_NAMES, start=1):
            check = QCheckBox(name[:3], box)
            check.setObjectName(f"day{name[:3]}")
            check.setToolTip(name)
            check.setChecked(number in WEEKDAYS)
            check.toggled.connect(self.update_problems)
            days.addWidget(check)
            self.day_boxes[number] = check
        days.addStretch(1)
        form.addRow("Allowed days:", days)

        self.blackout_field = QLineEdit(box)
        self.blackout_field.setObjectName("blackoutDatesField")
        self.blackout_field.setPlaceholderText("Optional, e.g. 2026-12-25, 2027-01-01")
        self.blackout_field.setToolTip("Holidays: dates (in the batch's timezone) with no calls")
        self.blackout_field.textChanged.connect(self.update_problems)
        form.addRow("Blackout dates:", self.blackout_field)

        ends = QHBoxLayout()
        self.end_date_check = QCheckBox("Stop at", box)
        self.end_date_check.setObjectName("endDateCheck")
        self.end_date_check.setToolTip(
            "After this time nothing is dialed; recipients not reached end as Expired"
        )
        later = self.context.clock() + timedelta(days=7)
        self.end_date_edit = QDateEdit(QDate(later.year, later.month, later.day), box)
        self.end_date_edit.setObjectName("endDateEdit")
        self.end_date_edit.setCalendarPopup(True)
        self.end_date_edit.setDisplayFormat(formatting.date_pattern())
        self.end_time_edit = QTimeEdit(QTime(18, 0), box)
        self.end_time_edit.setObjectName("endTimeEdit")
        self.end_time_edit.setDisplayFormat(formatting.time_pattern())
        self.end_date_check.toggled.connect(self._end_date_changed)
        self.end_date_edit.dateChanged.connect(self.update_problems)
        self.end_time_edit.timeChanged.connect(self.update_problems)
        ends.addWidget(self.end_date_check)
        ends.addWidget(self.end_date_edit)
        ends.addWidget(self.end_time_edit)
        ends.addStretch(1)
        form.addRow("End date:", ends)
        self._end_date_changed(False)

        self.concurrency_spin = QSpinBox(box)
        self.concurrency_spin.setObjectName("concurrencySpin")
        self.concurrency_spin.setRange(1, CONCURRENCY_MAX)
        self.concurrency_spin.setValue(1)
        self.concurrency_spin.setMaximumWidth(110)
        form.addRow("Reserved concurrency:", self.concurrency_spin)
        plan = QLabel(self._plan_text(), box)
        # Two lines always fit, however little height the recipients below leave.
        plan.setMinimumHeight(2 * plan.fontMetrics().lineSpacing() + 4)
        self.concurrency_hint = plan
        plan.setObjectName("concurrencyHint")
        plan.setProperty("role", "hint")
        plan.setWordWrap(True)
        form.addRow("", plan)
        return box

    def _build_policy(self) -> QGroupBox:
        """Recipient-local hours and automatic retries (SPEC 10); off by default."""
        box = QGroupBox("Compliance and retries", self)
        box.setObjectName("policyBox")
        form = QFormLayout(box)
        local = QHBoxLayout()
        self.local_hours_check = QCheckBox("Only between", box)
        self.local_hours_check.setObjectName("localHoursCheck")
        self.local_hours_check.setToolTip(
            "Call each recipient only inside these hours of its own timezone (from its "
            "number); numbers in several timezones wait until all are inside. Narrows the "
            "time range above, never widens it."
        )
        self.local_start_edit = QTimeEdit(QTime(8, 0), box)
        self.local_start_edit.setObjectName("localHoursStartEdit")
        self.local_start_edit.setDisplayFormat(formatting.time_pattern())
        self.local_end_edit = QTimeEdit(QTime(21, 0), box)
        self.local_end_edit.setObjectName("localHoursEndEdit")
        self.local_end_edit.setDisplayFormat(formatting.time_pattern())
        self.local_hours_check.toggled.connect(self._local_hours_changed)
        for edit in (self.local_start_edit, self.local_end_edit):
            edit.timeChanged.connect(self.update_problems)
        local.addWidget(self.local_hours_check)
        local.addWidget(self.local_start_edit)
        local.addWidget(QLabel("and", box))
        local.addWidget(self.local_end_edit)
        local.addStretch(1)
        form.addRow("Recipient's local time:", local)

        self.max_attempts_spin = QSpinBox(box)
        self.max_attempts_spin.setObjectName("maxAttemptsSpin")
        self.max_attempts_spin.setRange(1, MAX_ATTEMPTS_LIMIT)
        self.max_attempts_spin.setValue(1)
        self.max_attempts_spin.setToolTip("1 means no automatic retry")
        self.max_attempts_spin.setMaximumWidth(110)
        self.max_attempts_spin.valueChanged.connect(self._retries_changed)
        form.addRow("Attempts per recipient:", self.max_attempts_spin)
        self.retry_delay_spin = QSpinBox(box)
        self.retry_delay_spin.setObjectName("retryDelaySpin")
        self.retry_delay_spin.setRange(0, RETRY_DELAY_MAX_MINUTES)
        self.retry_delay_spin.setValue(60)
        self.retry_delay_spin.setSuffix(" min")
        self.retry_delay_spin.setMaximumWidth(110)
        self.retry_delay_spin.valueChanged.connect(self.update_problems)
        form.addRow("Retry after:", self.retry_delay_spin)
        outcomes = QHBoxLayout()
        self.retry_checks: dict[str, QCheckBox] = {}
        for outcome, name in (
            (RetryOutcome.NO_ANSWER, "retryNoAnswerCheck"),
            (RetryOutcome.BUSY, "retryBusyCheck"),
            (RetryOutcome.FAILED, "retryFailedCheck"),
        ):
            check = QCheckBox(outcome.display_name, box)
            check.setObjectName(name)
            check.setChecked(outcome is not RetryOutcome.FAILED)
            check.toggled.connect(self.update_problems)
            outcomes.addWidget(check)
            self.retry_checks[outcome.value] = check
        outcomes.addStretch(1)
        form.addRow("Retry when:", outcomes)
        self._local_hours_changed(False)
        self._retries_changed(1)
        return box

    def _all_day_changed(self, all_day: bool) -> None:
        for widget in (self.start_edit, self.end_edit, self.extra_ranges_field):
            widget.setEnabled(not all_day)
        self.update_problems()

    def _end_date_changed(self, on: bool) -> None:
        self.end_date_edit.setEnabled(on)
        self.end_time_edit.setEnabled(on)
        self.update_problems()

    def _local_hours_changed(self, on: bool) -> None:
        self.local_start_edit.setEnabled(on)
        self.local_end_edit.setEnabled(on)
        self.update_problems()

    def _retries_changed(self, attempts: int) -> None:
        self.retry_delay_spin.setEnabled(attempts > 1)
        for check in self.retry_checks.values():
            check.setEnabled(attempts > 1)
        self.update_problems()

    def _build_footer(self) -> QHBoxLayout:
        footer = QHBoxLayout()
        column = QVBoxLayout()
        self.problems_label = QLabel(self)
        self.problems_label.setObjectName("createProblemsLabel")
        self.problems_label.setProperty("role", "error")
        self.problems_label.setWordWrap(True)
        column.addWidget(self.problems_label)
        self.create_progress = QProgressBar(self)
        self.create_progress.setObjectName("createProgress")
        self.create_progress.setRange(0, 1000)
        self.create_progress.setFormat("Storing recipients… %p %")
        self.create_progress.setVisible(False)
        column.addWidget(self.create_progress)
        footer.addLayout(column, 1)
        self.create_button = QPushButton("Create Batch Call", self)
        self.create_button.setObjectName("createConfirmButton")
        self.create_button.setProperty("role", "primary")
        self.create_button.setDefault(True)
        self.create_button.clicked.connect(self.create_batch_call)
        footer.addWidget(self.create_button, 0, Qt.AlignmentFlag.AlignBottom)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("createCancelButton")
        self.cancel_button.clicked.connect(self._cancel_clicked)
        footer.addWidget(self.cancel_button, 0, Qt.AlignmentFlag.AlignBottom)
        return footer

    @staticmethod
    def _zone_or_utc(name: str) -> Any:
        try:
            return parse_timezone(name)
        except WindowError:
            return parse_timezone("UTC")

    # ----------------------------------------------------------------- CSV
    def choose_csv(self) -> None:
        path = ask.open_file(self, "Choose the recipients CSV", "CSV files (*.csv);;All files (*)")
        if path:
            self.load_csv(path)

    def download_template(self) -> None:
        path = ask.save_file(
            self, "Save the CSV template", "recipients-template.csv", "CSV files (*.csv)"
        )
        if not path:
            return
        if not path.lower().endswith(".csv"):
            path += ".csv"
        try:
            csv_import.write_template(path)
        except OSError as error:
            ask.inform(
                self,
                "Template not saved",
                f"The template could not be written to {path}: {error.strerror or error}. "
                "Choose a folder you can write to.",
                warning=True,
            )
            return
        self.csv_label.setText(
            f"Template saved to {path}. Fill it in (one recipient per row), then choose it here."
        )

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if len(urls) == 1 and urls[0].isLocalFile():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        urls = event.mimeData().urls()
        if len(urls) == 1 and urls[0].isLocalFile():
            event.acceptProposedAction()
            self.load_csv(urls[0].toLocalFile())

    def load_csv(self, path: str) -> None:
        """Read (scan) the file in the background and show what an import would do."""
        if not self.choices_loaded:  # the default country is not known yet
            self._pending_csv = path
            return
        self.cancel_scan()
        self.csv_path = path
        self.report = None
        self.csv_error = None
        self.rejected_model.clear()
        self.validation.setVisible(False)
        self.csv_error_label.setVisible(False)
        self.accepted_label.setText("")
        self.rejected_label.setText("")
        self.csv_label.setText(f"Reading {Path(path).name}…")
        self.scan_progress.setValue(0)
        self._show_scan_progress(True)
        options = ImportOptions(default_country=self.settings.default_country)

        def progress(done: int, total: int) -> None:
            if self._scan is control:  # not a reading replaced meanwhile
                self._scan_progress(done, total)

        control = self._scan = aio.WorkerControl(progress)
        self.tasks.start("scan", self._read_csv(path, options, control), owner=self)
        self.update_problems()

    async def _read_csv(
        self, path: str, options: ImportOptions, control: aio.WorkerControl
    ) -> None:
        with control:
            try:
                report = await aio.in_thread(control.call(csv_import.scan, path, options))
            except Exception as error:
                if self._scan is control:
                    self._scan_failed(path, error)
                return
        if self._scan is control:  # another file chosen meanwhile: its own answer comes
            self._scan_done(path, report)

    def _scan_progress(self, done: int, total: int) -> None:
        self.scan_progress.setValue(round(1000 * done / total) if total else 0)

    def _scan_done(self, path: str, report: CsvReport) -> None:
        self._scan = None
        self._show_scan_progress(False)
        self.report = report
        self.csv_label.setText(
            f"{Path(path).name}: {formatting.count(report.total_rows)} rows"
            + (
                f"; variables: {', '.join(report.variable_columns)}"
                if report.variable_columns
                else ""
            )
        )
        options = ImportOptions(default_country=self.settings.default_country)
        self.rejected_model.set_rows(
            report.rejected,
            report.columns,
            lambda values, row: csv_import.validate_fix(values, options, row_number=row),
        )
        self.keep_duplicates.setChecked(True)
        self.validation.setVisible(bool(report.rejected_count or report.duplicate_count))
        self.rejected_table.setVisible(bool(report.rejected))
        self._size_row_column(report)
        self._fill_duplicates(report)
        self.update_problems()
        self.scanned.emit(report)

    def _scan_failed(self, path: str, error: BaseException) -> None:
        self._scan = None
        self._show_scan_progress(False)
        if isinstance(error, ImportCancelled):
            self.csv_path = None
            self.csv_label.setText("Reading cancelled. Choose a CSV file or drop it here.")
        else:
            if isinstance(error, CsvImportError):
                message = str(error)
            elif isinstance(error, OSError):
                message = (
                    f"The file cannot be read: {error.strerror or error}. Check that it "
                    "exists and that you may open it."
                )
            else:
                log.error("reading %s failed: %s", Path(path).name, error)
                message = f"The file cannot be read ({error}). Check it, or try another file."
            self.csv_error = message
            self.csv_error_label.setText(message)
            self.csv_error_label.setVisible(True)
            self.csv_label.setText(f"{Path(path).name} cannot be used.")
        self.update_problems()
        self.scanned.emit(None)

    def cancel_scan(self) -> None:
        if self._scan is not None:
            self._scan.cancel()

    def _show_scan_progress(self, visible: bool) -> None:
        self.scan_progress.setVisible(visible)
        self.cancel_scan_button.setVisible(visible)

    def _size_row_column(self, report: CsvReport) -> None:
        """The Row column as wide as its largest row number (row 300,001 must not read
        "300…")."""
        widest = max((r.row_number for r in report.rejected), default=0)
        metrics = self.rejected_table.fontMetrics()
        needed = metrics.horizontalAdvance(str(widest)) + 4 * metrics.averageCharWidth()
        self.rejected_table.setColumnWidth(RejectedColumn.ROW, max(ROW_COLUMN_MIN_WIDTH, needed))

    def _fill_duplicates(self, report: CsvReport) -> None:
        if not report.duplicate_count:
            self.duplicates_row.setVisible(False)
            return
        self.duplicates_row.setVisible(True)
        self.duplicates_label.setText(*duplicates_summary(report))

    # ----------------------------------------------------------------- rejected rows
    def _selected_row(self) -> int | None:
        index = self.rejected_table.currentIndex()
        return index.row() if index.isValid() else None

    def select_rejected(self, row: int) -> None:
        self.rejected_table.selectionModel().setCurrentIndex(
            self.rejected_model.index(row, RejectedColumn.PHONE),
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )

    def remove_selected_row(self) -> None:
        row = self._selected_row()
        if row is not None:
            self.rejected_model.remove(row)
            self._update_row_buttons()

    def restore_selected_row(self) -> None:
        row = self._selected_row()
        if row is not None:
            self.rejected_model.restore(row)
            self._update_row_buttons()

    def _update_row_buttons(self) -> None:
        row = self._selected_row()
        entry = self.rejected_model.entry(row) if row is not None else None
        state = entry.state if entry is not None else None
        if entry is None:
            self.reason_label.setText("")
        else:
            what = self.rejected_model.index(row, RejectedColumn.REASON).data()  # type: ignore[arg-type]
            row_number = formatting.ordinal(entry.rejected.row_number)
            self.reason_label.setText(
                f"Row {row_number}: {what}. How to fix it: {fix_hint(str(what))}"
            )
        self.remove_row_button.setEnabled(row is not None and state is not RowState.REMOVED)
        self.restore_row_button.setEnabled(state is RowState.REMOVED)

    # ----------------------------------------------------------------- counts and problems
    def accepted_count(self) -> int:
        """Recipients a create would store now (fixes and the duplicates choice included)."""
        if self.report is None:
            return 0
        dropped = self.report.duplicate_count if self.drop_duplicates.isChecked() else 0
        return self.report.accepted_count - dropped + self.rejected_model.count(RowState.FIXED)

    def rejected_count(self) -> int:
        if self.report is None:
            return 0
        return (
            self.report.rejected_count
            - self.rejected_model.count(RowState.FIXED)
            - self.rejected_model.count(RowState.REMOVED)
        )

    def _no_recipients_problem(self) -> str:
        """Why nobody would be called, in words that match what the file holds."""
        assert self.report is not None
        if self.report.total_rows == 0:
            return (
                "The file has no recipient rows, only the header: add one row per "
                "recipient, or choose another file."
            )
        if self.rejected_count() > 0:
            return (
                "No valid recipients: fix the rejected rows or choose another file. "
                "At least one is needed."
            )
        return (
            "No recipients left: restore a removed row, keep the duplicates, or choose "
            "another file. At least one is needed."
        )

    def problems(self) -> list[str]:
        """What keeps Create disabled, in the supervisor's words (first is shown)."""
        rules = creation_problems(self.creation_request(), self.context.clock())
        found: list[str] = []
        if not self.choices_loaded:
            found.append("Reading the agents and from numbers…")
        if "name" in rules:
            found.append(rules.pop("name"))
        if self.agent_combo.count() == 0:
            found.append("No active agent: add one in Settings (Agents).")
        if self.from_combo.count() == 0:
            found.append("No from number: add one in Settings (From numbers).")
        if self._scan is not None:
            found.append("Wait until the file is read.")
        elif self.csv_error:
            found.append("The CSV file cannot be used: see the message above.")
        elif self.report is None:
            found.append("Choose the recipients CSV file.")
        elif self.accepted_count() == 0:
            found.append(self._no_recipients_problem())
        found.extend(rules.values())
        return found

    def update_problems(self, *_args: Any) -> None:
        if not self._ready:
            return
        if self.report is not None:
            accepted = self.accepted_count()
            rejected = self.rejected_count()
            self.accepted_label.setText(
                f"✔ {formatting.count(accepted)} recipient{'s' if accepted != 1 else ''} "
                "will be called"
            )
            self.rejected_label.setText(
                f"✖ {formatting.count(rejected)} row{'s' if rejected != 1 else ''} rejected"
                if rejected
                else ""
            )
            removed = self.rejected_model.count(RowState.REMOVED)
            if removed:
                self.rejected_label.setText(
                    (self.rejected_label.text() + "; " if rejected else "") + f"{removed} removed"
                )
        found = self.problems()
        busy = self._creation is not None
        self.create_button.setEnabled(not found and not busy)
        self.problems_label.setText(found[0] if found else "")
        self.problems_label.setToolTip("\n".join(found))
        # A step still to take (a name, the file, a read in progress) is said plainly; a
        # value that breaks a rule is said as an error.
        next_step = bool(found) and found[0] in self._next_steps()
        self._set_problems_role("hint" if next_step else "error")
        self.problemsChanged.emit()

    @staticmethod
    def _next_steps() -> frozenset[str]:
        return frozenset(
            (
                name_problem("") or "",
                "Reading the agents and from numbers…",
                "Wait until the file is read.",
                "Choose the recipients CSV file.",
            )
        )

    def _set_problems_role(self, role: str) -> None:
        if self.problems_label.property("role") != role:
            self.problems_label.setProperty("role", role)
            self.problems_label.style().unpolish(self.problems_label)
            self.problems_label.style().polish(self.problems_label)

    def _send_type_changed(self, scheduled: bool) -> None:
        for widget in (self.date_edit, self.time_edit, self.schedule_row_label):
            widget.setEnabled(scheduled)
        self.update_problems()

    def allowed_days(self) -> frozenset[int]:
        return frozenset(n for n, check in self.day_boxes.items() if check.isChecked())

    def scheduled_at(self) -> datetime | None:
        try:
            qdate, qtime = self.date_edit.date(), self.time_edit.time()
            return scheduled_instant(
                date(qdate.year(), qdate.month(), qdate.day()),
                time(qtime.hour(), qtime.minute()),
                self.timezone_combo.currentText().strip(),
            )
        except (WindowError, ValueError):
            return None

    def _policy_values(self) -> dict[str, Any]:
        """The calling-window and compliance fields as the creation rules read them."""
        start = self.start_edit.time().toString("HH:mm")
        end = self.end_edit.time().toString("HH:mm")
        extra = self.extra_ranges_field.text().strip()
        if self.all_day_check.isChecked():
            ranges = "all day"
        elif extra:
            ranges = f"{start}-{end},{extra}"
        else:
            ranges = ""
        outcomes = ",".join(
            value for value, check in self.retry_checks.items() if check.isChecked()
        )
        end_at: datetime | None = None
        if self.end_date_check.isChecked():
            qdate, qtime = self.end_date_edit.date(), self.end_time_edit.time()
            try:
                end_at = scheduled_instant(
                    date(qdate.year(), qdate.month(), qdate.day()),
                    time(qtime.hour(), qtime.minute()),
                    self.timezone_combo.currentText().strip(),
                )
            except (WindowError, ValueError):
                end_at = None  # the timezone problem is reported on its own
        local_hours = ""
        if self.local_hours_check.isChecked():
            local_hours = (
                f"{self.local_start_edit.time().toString('HH:mm')}-"
                f"{self.local_end_edit.time().toString('HH:mm')}"
            )
        return {
            "window_start": start,
            "window_end": end,
            "time_ranges": ranges,
            "blackout_dates": self.blackout_field.text().strip(),
            "end_at": end_at,
            "local_hours": local_hours,
            "max_attempts": self.max_attempts_spin.value(),
            "retry_delay_minutes": self.retry_delay_spin.value(),
            "retry_outcomes": outcomes,
        }

    def creation_request(self) -> CreationRequest:
        scheduled = self.schedule_radio.isChecked()
        return CreationRequest(
            name=self.name_field.text(),
            send_type=(SendType.SCHEDULE if scheduled else SendType.SEND_NOW).value,
            scheduled_at=self.scheduled_at() if scheduled else None,
            timezone=self.timezone_combo.currentText().strip(),
            allowed_days=self.allowed_days(),
            reserved_concurrency=self.concurrency_spin.value(),
            **self._policy_values(),
        )

    def spec(self) -> NewBatchCall:
        scheduled = self.schedule_radio.isChecked()
        return NewBatchCall(
            name=self.name_field.text(),
            agent_id=int(self.agent_combo.currentData()),
            from_number_id=int(self.from_combo.currentData()),
            send_type=SendType.SCHEDULE if scheduled else SendType.SEND_NOW,
            scheduled_at=self.scheduled_at() if scheduled else None,
            timezone=self.timezone_combo.currentText().strip(),
            allowed_days=self.allowed_days(),
            reserved_concurrency=self.concurrency_spin.value(),
            variable_columns=self.report.variable_columns if self.report else (),
            **self._policy_values(),
        )

    def import_options(self) -> ImportOptions:
        return ImportOptions(
            default_country=self.settings.default_country,
            drop_duplicates=self.drop_duplicates.isChecked(),
            fixes=self.rejected_model.fixes(),
            removed_rows=self.rejected_model.removed_rows(),
        )

    # ----------------------------------------------------------------- create
    def create_batch_call(self) -> None:
        """Store the batch call and its recipients in the background."""
        found = self.problems()
        if found or self.csv_path is None or self._creation is not None:
            self.update_problems()
            return
        spec, options, path = self.spec(), self.import_options(), self.csv_path
        self.create_progress.setValue(0)
        self.create_progress.setVisible(True)
        self._set_inputs_enabled(False)
        control = self._creation = aio.WorkerControl(
            lambda done, total: self.create_progress.setValue(
                round(1000 * done / total) if total else 0
            )
        )
        self.tasks.start("create", self._store(spec, path, options, control), owner=self)
        self.update_problems()

    async def _store(
        self, spec: NewBatchCall, path: str, options: ImportOptions, control: aio.WorkerControl
    ) -> None:
        with control:
            try:
                snapshot = await aio.in_thread(
                    control.call(self.service.create_from_csv, spec, path, options)
                )
            except Exception as error:
                self._create_failed(error)
                return
        self._created(snapshot)

    def _created(self, snapshot: BatchCallSnapshot) -> None:
        self._creation = None
        self.created.emit(snapshot)
        self.accept()

    def _create_failed(self, error: BaseException) -> None:
        self._creation = None
        self.create_progress.setVisible(False)
        self._set_inputs_enabled(True)
        if isinstance(error, ImportCancelled | CreationCancelled):
            self.problems_label.setText("Creation cancelled: nothing was stored.")
            self.create_button.setEnabled(True)
            return
        if isinstance(error, ValidationError):
            message = " ".join(error.problems.values())
        elif isinstance(error, CsvImportError):
            message = f"{error} (The file may have changed since it was read: choose it again.)"
        else:
            log.error("creating the batch call failed: %s", error)
            message = (
                f"The batch call could not be created: {error}. Nothing was stored; check the "
                "database connection and try again."
            )
        ask.inform(self, "Batch call not created", message, warning=True)
        self.update_problems()
        self.problems_label.setText(message)

    def _set_inputs_enabled(self, enabled: bool) -> None:
        for widget in (
            self.findChild(QGroupBox, "basicsBox"),
            self.findChild(QGroupBox, "recipientsBox"),
            self.findChild(QGroupBox, "scheduleBox"),
            self.findChild(QGroupBox, "windowBox"),
            self.findChild(QGroupBox, "policyBox"),
        ):
            if widget is not None:
                widget.setEnabled(enabled)
        self.setAcceptDrops(enabled)

    def _cancel_clicked(self) -> None:
        """Cancel stops a running creation first; otherwise it closes the dialog."""
        if self._creation is not None:
            self._creation.cancel()
            return
        self.reject()

    def abandon(self) -> None:
        """The application is closing: cancel any reading or creation and close. A
        cancelled creation rolls back and removes its partial batch call on its own thread
        within a chunk; the process waits for that (bounded: if it cannot finish, what is
        left is incomplete, never dialed, and removed at the next start)."""
        if self._creation is not None:
            self._creation.cancel()
            if not self._creation.wait_finished(CREATE_ROLLBACK_WAIT_S):
                log.warning("the cancelled creation had not rolled back when the window closed")
        self.cancel_scan()
        self.tasks.shutdown(0)
        self._creation = None
        self.done(QDialog.DialogCode.Rejected)

    def showEvent(self, event: QShowEvent) -> None:
        self.recheck_timer.start()
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        self.recheck_timer.stop()
        super().hideEvent(event)

    def done(self, result: int) -> None:
        if self._creation is not None and result != QDialog.DialogCode.Accepted:
            self._creation.cancel()
            return  # stays open until the cancelled creation has been rolled back
        self.cancel_scan()
        self.recheck_timer.stop()
        self.tasks.shutdown(0)  # never waits: see aio.in_thread
        super().done(result)
