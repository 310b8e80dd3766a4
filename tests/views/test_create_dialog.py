"""The create dialog: defaults, the CSV validation view (fix, remove, duplicates), schedule
checks, drag and drop, the template, background reading with Cancel, and creation."""

from __future__ import annotations

import threading
from datetime import date, time

import pytest
from PySide6.QtCore import QDate, QMimeData, QPoint, QPointF, Qt, QTime, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QCheckBox, QLabel, QLineEdit, QPushButton

from app.models.snapshots import SendType
from app.models.status import BatchStatus
from app.services.batch_calls import RecipientQuery, scheduled_instant
from app.views.context import local_timezone_name
from app.views.create_dialog import CreateDialog
from app.views.rejected_model import RejectedColumn, RowState
from tests.views.layout_checks import assert_nothing_clipped

BAD_CSV = (
    "phone_number,name,city\n"
    "+12025550101,Ada,Austin\n"  # row 2
    "12345,Bob,Boston\n"  # row 3: too short
    "+12025550102,Cy,Chicago\n"  # row 4
    "call me,Dee,Denver\n"  # row 5: letters
    "+12025550101,Ada again,Austin\n"  # row 6: duplicate of row 2
)


@pytest.fixture
def bad_csv(tmp_path):
    path = tmp_path / "recipients.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    return path


@pytest.fixture
def open_create(qtbot, context, model_checks):
    def opener() -> CreateDialog:
        dialog = CreateDialog(context)
        qtbot.addWidget(dialog)
        model_checks.check(dialog.rejected_model)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.choices_loaded, timeout=5000)
        return dialog

    return opener


def load(dialog: CreateDialog, qtbot, path, answers) -> object:
    answers.open_path = str(path)
    with qtbot.waitSignal(dialog.scanned, timeout=10_000) as scanned:
        qtbot.mouseClick(
            dialog.findChild(QPushButton, "chooseCsvButton"), Qt.MouseButton.LeftButton
        )
    return scanned.args[0]


def text(dialog, name: str) -> str:
    return dialog.findChild(QLabel, name).text()


def test_defaults(open_create, context):
    dialog = open_create()
    assert dialog.objectName() == "createDialog"
    assert dialog.timezone_combo.currentText() == local_timezone_name()
    assert dialog.start_edit.time() == QTime(9, 0)
    assert dialog.end_edit.time() == QTime(18, 0)
    assert dialog.allowed_days() == frozenset({1, 2, 3, 4, 5})
    assert not dialog.day_boxes[6].isChecked() and not dialog.day_boxes[7].isChecked()
    assert dialog.concurrency_spin.value() == 1
    assert dialog.send_now_radio.isChecked() and not dialog.date_edit.isEnabled()
    assert dialog.agent_combo.currentText() == "Demo message"
    assert dialog.from_combo.count() == 1
    create = dialog.findChild(QPushButton, "createConfirmButton")
    assert not create.isEnabled()
    assert text(dialog, "createProblemsLabel") == "Enter a name (1 to 100 characters)."
    problems = dialog.findChild(QLabel, "createProblemsLabel")
    assert problems.property("role") == "hint"  # a step to take, not an error in red
    dialog.name_field.setText("Reminders")
    assert text(dialog, "createProblemsLabel") == "Choose the recipients CSV file."
    assert problems.property("role") == "hint"
    dialog.name_field.setText("x" * 101)
    assert problems.property("role") == "error"
    dialog.name_field.setText("Reminders")


def test_validation_view_fix_remove_and_duplicates(open_create, bad_csv, answers, qtbot):
    dialog = open_create()
    report = load(dialog, qtbot, bad_csv, answers)
    assert report.accepted_count == 3 and report.rejected_count == 2
    assert text(dialog, "acceptedCountLabel") == "✔ 3 recipients will be called"
    assert text(dialog, "rejectedCountLabel") == "✖ 2 rows rejected"
    assert "1 duplicate number: +12025550101 (rows 2, 6)" in text(dialog, "duplicatesLabel")
    model = dialog.rejected_model
    rows = [model.index(r, RejectedColumn.ROW).data() for r in range(model.rowCount())]
    assert rows == ["3", "5"]
    assert "too short" in model.index(0, RejectedColumn.REASON).data()
    assert "letters" in model.index(1, RejectedColumn.REASON).data()

    # Fix row 3 through the real cell editor: a wrong fix keeps it rejected with a reason.
    dialog.select_rejected(0)
    table = dialog.rejected_table
    table.edit(model.index(0, RejectedColumn.PHONE))
    (editor,) = table.viewport().findChildren(QLineEdit)  # the cell editor
    editor.selectAll()
    qtbot.keyClicks(editor, "202 555")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on its next turn
    qtbot.waitUntil(lambda: model.index(0, RejectedColumn.PHONE).data() == "202 555")
    assert model.entry(0).state is RowState.REJECTED
    assert model.setData(model.index(0, RejectedColumn.PHONE), "(202) 555-0199")
    assert model.entry(0).state is RowState.FIXED
    assert model.index(0, RejectedColumn.REASON).data() == "Fixed: will be called as +12025550199"
    assert text(dialog, "acceptedCountLabel") == "✔ 4 recipients will be called"
    assert text(dialog, "rejectedCountLabel") == "✖ 1 row rejected"

    # Remove row 5.
    dialog.select_rejected(1)
    qtbot.mouseClick(dialog.findChild(QPushButton, "removeRowButton"), Qt.MouseButton.LeftButton)
    assert model.entry(1).state is RowState.REMOVED
    assert text(dialog, "rejectedCountLabel") == "1 removed"
    assert dialog.findChild(QPushButton, "restoreRowButton").isEnabled()

    # Drop the duplicate.
    dialog.drop_duplicates.setChecked(True)
    assert text(dialog, "acceptedCountLabel") == "✔ 3 recipients will be called"
    options = dialog.import_options()
    assert options.fixes == {3: {"phone_number": "(202) 555-0199"}}
    assert options.removed_rows == frozenset({5})
    assert options.drop_duplicates


def test_create_stores_exactly_what_the_validation_view_shows(
    open_create, context, bad_csv, answers, qtbot
):
    dialog = open_create()
    load(dialog, qtbot, bad_csv, answers)
    dialog.rejected_model.fix(0, "+12025550199")
    dialog.select_rejected(1)
    dialog.remove_selected_row()
    dialog.drop_duplicates.setChecked(True)
    qtbot.keyClicks(dialog.name_field, "  Spring reminders ")
    dialog.timezone_combo.setCurrentText("America/Chicago")
    dialog.start_edit.setTime(QTime(10, 30))
    dialog.end_edit.setTime(QTime(16, 0))
    dialog.day_boxes[1].setChecked(False)
    dialog.day_boxes[6].setChecked(True)
    dialog.concurrency_spin.setValue(4)
    create = dialog.findChild(QPushButton, "createConfirmButton")
    assert create.isEnabled(), dialog.problems()
    with qtbot.waitSignal(dialog.created, timeout=10_000) as created:
        qtbot.mouseClick(create, Qt.MouseButton.LeftButton)
    snapshot = created.args[0]
    assert not dialog.isVisible()
    assert snapshot.name == "Spring reminders"
    assert snapshot.status is BatchStatus.SCHEDULED
    assert snapshot.total_recipients == 3
    assert snapshot.timezone == "America/Chicago"
    assert (snapshot.window_start, snapshot.window_end) == ("10:30", "16:00")
    assert snapshot.allowed_days == frozenset({2, 3, 4, 5, 6})
    assert snapshot.reserved_concurrency == 4
    assert snapshot.send_type is SendType.SEND_NOW
    phones = [
        r.phone_number for r in context.service.recipients_page(snapshot.id, RecipientQuery())
    ]
    assert phones == ["+12025550101", "+12025550199", "+12025550102"]


def test_schedule_in_the_past_is_refused_and_a_future_one_stored(
    open_create, context, bad_csv, answers, qtbot
):
    dialog = open_create()
    load(dialog, qtbot, bad_csv, answers)
    dialog.name_field.setText("Scheduled")
    dialog.timezone_combo.setCurrentText("Europe/London")
    dialog.schedule_radio.setChecked(True)
    assert dialog.date_edit.isEnabled()
    now = context.clock()  # Monday 2026-11-23, 14:00 UTC (+ a few minutes)
    dialog.date_edit.setDate(QDate(now.year, now.month, now.day))
    dialog.time_edit.setTime(QTime(8, 0))
    create = dialog.findChild(QPushButton, "createConfirmButton")
    assert not create.isEnabled()
    assert text(dialog, "createProblemsLabel") == (
        "The scheduled time 2026-11-23 08:00 (Europe/London) is in the past; "
        "choose a later time or Send now."
    )
    dialog.date_edit.setDate(QDate(2026, 11, 30))
    dialog.time_edit.setTime(QTime(9, 15))
    assert create.isEnabled(), dialog.problems()
    with qtbot.waitSignal(dialog.created, timeout=10_000) as created:
        create.click()
    snapshot = created.args[0]
    assert snapshot.send_type is SendType.SCHEDULE
    assert snapshot.scheduled_at == scheduled_instant(
        date(2026, 11, 30), time(9, 15), "Europe/London"
    )


def test_other_problems_disable_create_with_a_reason(open_create, bad_csv, answers, qtbot):
    dialog = open_create()
    load(dialog, qtbot, bad_csv, answers)
    dialog.name_field.setText("x" * 101)
    assert "maximum is 100" in text(dialog, "createProblemsLabel")
    dialog.name_field.setText("Fine")
    dialog.timezone_combo.setCurrentText("Mars/Olympus")
    assert "not a known timezone" in text(dialog, "createProblemsLabel")
    dialog.timezone_combo.setCurrentText("UTC")
    dialog.end_edit.setTime(QTime(9, 0))
    assert text(dialog, "createProblemsLabel").startswith("The time range is empty")
    dialog.end_edit.setTime(QTime(17, 0))
    for check in dialog.day_boxes.values():
        check.setChecked(False)
    assert text(dialog, "createProblemsLabel") == "Choose at least one allowed day."
    dialog.day_boxes[3].setChecked(True)
    assert dialog.findChild(QPushButton, "createConfirmButton").isEnabled()


def test_a_file_without_valid_rows_or_without_phone_column(open_create, tmp_path, answers, qtbot):
    dialog = open_create()
    dialog.name_field.setText("Nobody")
    none_valid = tmp_path / "none.csv"
    none_valid.write_text("phone_number\nabc\n", encoding="utf-8")
    load(dialog, qtbot, none_valid, answers)
    assert text(dialog, "createProblemsLabel").startswith("No valid recipients")
    no_phone = tmp_path / "nophone.csv"
    no_phone.write_text("name,city\nAda,Austin\n", encoding="utf-8")
    assert load(dialog, qtbot, no_phone, answers) is None
    error = dialog.findChild(QLabel, "csvErrorLabel")
    assert error.isVisible() and "phone" in error.text().lower()
    assert not dialog.findChild(QPushButton, "createConfirmButton").isEnabled()
    latin = tmp_path / "latin.csv"
    latin.write_bytes("phone_number,name\n+12025550101,Ren\xe9e\n".encode("latin-1"))
    assert load(dialog, qtbot, latin, answers) is None
    assert "UTF-8" in error.text()


def test_drag_and_drop_a_csv(open_create, bad_csv, qtbot):
    dialog = open_create()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad_csv))])
    enter = QDragEnterEvent(
        QPoint(20, 20),  # QDragEnterEvent takes a QPoint in PySide6 6.11 (QDropEvent a QPointF)
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(dialog, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(dialog.scanned) as scanned:
        QApplication.sendEvent(dialog, drop)
    assert scanned.args[0].accepted_count == 3
    assert dialog.csv_path == str(bad_csv)


def test_download_template(open_create, answers, tmp_path, qtbot):
    dialog = open_create()
    answers.save_path = str(tmp_path / "template")
    qtbot.mouseClick(
        dialog.findChild(QPushButton, "downloadTemplateButton"), Qt.MouseButton.LeftButton
    )
    written = (tmp_path / "template.csv").read_text(encoding="utf-8-sig").splitlines()
    assert written[0].startswith("phone_number,name,")
    assert len(written) == 3
    assert "Template saved" in text(dialog, "csvFileLabel")


def big_csv(path, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("phone_number,name,note\n")
        for i in range(rows):
            handle.write(f"+1202555{i % 10000:04d},Person {i},{'x' * 40}\n")


def test_large_file_shows_progress_and_can_be_cancelled(open_create, tmp_path, answers, qtbot):
    path = tmp_path / "big.csv"
    big_csv(path, 60_000)  # about 4 MB: dozens of progress steps
    dialog = open_create()
    seen: list[int] = []
    dialog.scan_progress.valueChanged.connect(seen.append)
    report = load(dialog, qtbot, path, answers)
    assert report.total_rows == 60_000
    assert any(0 < v < 1000 for v in seen), "no intermediate progress was shown"
    assert not dialog.scan_progress.isVisible()

    answers.open_path = str(path)
    with qtbot.waitSignal(dialog.scanned) as scanned:
        dialog.choose_csv()
        assert dialog.findChild(QPushButton, "cancelScanButton").isVisible()
        qtbot.mouseClick(
            dialog.findChild(QPushButton, "cancelScanButton"), Qt.MouseButton.LeftButton
        )
    assert scanned.args == [None]
    assert text(dialog, "csvFileLabel").startswith("Reading cancelled")
    assert text(dialog, "createProblemsLabel") in ("Enter a name (1 to 100 characters).",)


def test_choosing_the_file_again_while_it_is_read_shows_the_new_reading(
    open_create, tmp_path, answers, qtbot
):
    path = tmp_path / "big.csv"
    big_csv(path, 60_000)
    dialog = open_create()
    answers.open_path = str(path)
    reports: list[object] = []
    dialog.scanned.connect(reports.append)
    with qtbot.waitSignal(dialog.scanned, timeout=10_000) as scanned:
        dialog.choose_csv()
        dialog.choose_csv()  # the same file again: the first reading is cancelled
    assert scanned.args[0] is not None and scanned.args[0].total_rows == 60_000
    assert text(dialog, "csvFileLabel").startswith("big.csv: 60,000 rows")
    qtbot.waitUntil(lambda: not dialog.tasks.busy(include_quiet=True), timeout=10_000)
    assert reports == [scanned.args[0]]  # the cancelled reading said nothing


def test_main_window_create_button_opens_the_dialog_and_shows_the_new_row(
    open_main_window, bad_csv, answers, qtbot
):
    window = open_main_window()
    qtbot.mouseClick(
        window.findChild(QPushButton, "emptyStateCreateButton"), Qt.MouseButton.LeftButton
    )
    dialog = window.findChild(CreateDialog, "createDialog")
    assert dialog is not None and dialog.isVisible()
    load(dialog, qtbot, bad_csv, answers)
    dialog.name_field.setText("From the window")
    with qtbot.waitSignal(dialog.created):
        dialog.findChild(QPushButton, "createConfirmButton").click()
    assert window.current_snapshot().name == "From the window"
    assert window.table.isVisible()
    assert "Created “From the window” with 3 recipients" in window.statusBar().currentMessage()


def test_creation_runs_in_the_background_and_can_be_cancelled(
    open_create, context, tmp_path, answers, qtbot
):
    path = tmp_path / "big.csv"
    big_csv(path, 60_000)
    dialog = open_create()
    load(dialog, qtbot, path, answers)
    dialog.name_field.setText("Too big after all")
    create = dialog.findChild(QPushButton, "createConfirmButton")
    with qtbot.waitSignal(dialog.problemsChanged):
        create.click()
        assert dialog.create_progress.isVisible()
        assert not create.isEnabled()
        qtbot.mouseClick(
            dialog.findChild(QPushButton, "createCancelButton"), Qt.MouseButton.LeftButton
        )
    qtbot.waitUntil(lambda: text(dialog, "createProblemsLabel").startswith("Creation cancelled"))
    assert dialog.isVisible()  # Cancel stopped the creation, not the dialog
    assert context.service.list() == []  # nothing was stored
    assert create.isEnabled()


def test_many_duplicates_and_large_row_numbers_fit_a_small_window(
    open_create, tmp_path, answers, qtbot
):
    lines = ["phone_number,name"]
    for i in range(40):  # 40 numbers, each on two rows
        lines += [f"+1202555{i:04d},Person {i}", f"+1202555{i:04d},Again {i}"]
    lines += [""] * 120_000  # blank lines count: the rows below are numbers 120,082 and on
    lines += ["nope,Bad row", "+12025550001,Late duplicate"]
    path = tmp_path / "duplicates.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dialog = open_create()
    dialog.resize(1000, 500)  # a laptop-sized window
    load(dialog, qtbot, path, answers)
    # Nothing is cut off: the counts, the file line, the one-line duplicates summary.
    qtbot.waitUntil(lambda: assert_nothing_clipped(dialog), timeout=3000)
    for count in (dialog.accepted_label, dialog.rejected_label):
        assert count.height() >= count.sizeHint().height()
    assert text(dialog, "acceptedCountLabel") == "✔ 81 recipients will be called"
    summary = dialog.duplicates_label
    assert summary.text().startswith("41 duplicate numbers: +12025550000 (rows 2, 3)")
    assert summary.height() < 2 * summary.fontMetrics().height()  # one line
    assert "+12025550001: rows 4, 5, 120083" in summary.toolTip()
    assert "… and 25 more duplicate rows" in summary.toolTip()
    # The Row column shows the whole row number.
    table = dialog.rejected_table
    assert dialog.rejected_model.index(0, RejectedColumn.ROW).data() == "120082"
    assert table.columnWidth(RejectedColumn.ROW) >= table.sizeHintForColumn(RejectedColumn.ROW)


def test_a_header_only_file_says_it_has_no_rows(open_create, tmp_path, answers, qtbot):
    dialog = open_create()
    dialog.name_field.setText("Nobody yet")
    path = tmp_path / "header.csv"
    path.write_text("phone_number,name,city\n", encoding="utf-8")
    report = load(dialog, qtbot, path, answers)
    assert report.total_rows == 0 and report.rejected_count == 0
    problem = text(dialog, "createProblemsLabel")
    assert problem.startswith("The file has no recipient rows, only the header")
    assert "rejected" not in problem
    assert not dialog.findChild(QPushButton, "createConfirmButton").isEnabled()


def test_agents_and_numbers_are_read_in_the_background(qtbot, context, bad_csv, answers):
    """The dialog opens without touching the database; Create waits for the lists, and a
    CSV chosen meanwhile is read once the default country is known."""
    reads: list[str] = []
    original = context.service.list_agents

    def list_agents(*args, **kwargs):
        reads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    context.service.list_agents = list_agents  # type: ignore[method-assign]
    dialog = CreateDialog(context)
    qtbot.addWidget(dialog)
    assert dialog.agent_combo.count() == 0
    assert "Reading the agents" in dialog.problems()[0]
    assert not dialog.create_button.isEnabled()
    with qtbot.waitSignal(dialog.scanned, timeout=10_000):
        dialog.load_csv(str(bad_csv))  # before the lists arrived
    assert dialog.choices_loaded and dialog.agent_combo.count() == 1
    assert reads and threading.main_thread().name not in reads


def test_rejection_reasons_get_the_dialogs_whole_width(open_create, bad_csv, qtbot, answers):
    """The reasons were cut ("too long for United Kingd...") while the right-hand column
    had 350 px free: the recipients now span the dialog."""
    dialog = open_create()
    dialog.resize(1000, 700)
    load(dialog, qtbot, bad_csv, answers)
    table = dialog.rejected_table

    def reason_room() -> int:
        return table.columnWidth(RejectedColumn.REASON)

    qtbot.waitUntil(lambda: reason_room() >= 0.55 * dialog.width(), timeout=3000)
    metrics = table.fontMetrics()
    for row in range(dialog.rejected_model.rowCount()):
        reason = dialog.rejected_model.index(row, RejectedColumn.REASON).data()
        assert metrics.horizontalAdvance(reason) <= reason_room(), reason


def test_a_rejected_row_says_how_to_fix_it(open_create, bad_csv, qtbot, answers):
    from app.views.fix_hints import DEFAULT_HINT, fix_hint

    dialog = open_create()
    load(dialog, qtbot, bad_csv, answers)
    dialog.select_rejected(0)
    shown = dialog.findChild(QLabel, "rejectedReasonLabel").text()
    reason = dialog.rejected_model.index(0, RejectedColumn.REASON).data()
    assert shown.startswith(f"Row {dialog.rejected_model.entry(0).rejected.row_number}: {reason}")
    assert "How to fix it: " + fix_hint(reason) in shown
    assert fix_hint("contains letters").startswith("Keep only the number")
    assert "Text" in fix_hint("looks like a spreadsheet turned it into scientific notation")
    assert fix_hint("something new") == DEFAULT_HINT


def test_every_rejected_row_shows_its_fix_without_being_selected(
    open_create, bad_csv, qtbot, answers
):
    """The hint was only under the table, for the selected row: each rejected row's
    Reason cell has it on a second line (and in its tooltip); a fixed row has none."""
    from app.views.fix_hints import fix_hint
    from app.views.rejected_model import HINT_ROLE

    dialog = open_create()
    load(dialog, qtbot, bad_csv, answers)
    model, table = dialog.rejected_model, dialog.rejected_table
    assert table.itemDelegateForColumn(RejectedColumn.REASON) is dialog.reason_delegate
    assert table.verticalHeader().defaultSectionSize() >= 2 * table.fontMetrics().height()
    for row in range(model.rowCount()):
        index = model.index(row, RejectedColumn.REASON)
        assert index.data(HINT_ROLE) == fix_hint(index.data())
        assert index.data(Qt.ItemDataRole.ToolTipRole).endswith(fix_hint(index.data()))
    image = table.viewport().grab().toImage()  # painted without errors
    assert not image.isNull()


# ------------------------------------------------- calling windows and compliance (SPEC 10)


def policy_problem(dialog) -> str:
    return dialog.findChild(QLabel, "createProblemsLabel").text()


def test_policy_defaults_are_off_and_one_attempt(open_create) -> None:
    dialog = open_create()
    assert not dialog.findChild(QCheckBox, "allDayCheck").isChecked()
    assert not dialog.local_hours_check.isChecked()
    assert dialog.local_start_edit.time() == QTime(8, 0)
    assert dialog.local_end_edit.time() == QTime(21, 0)
    assert not dialog.local_start_edit.isEnabled()
    assert dialog.max_attempts_spin.value() == 1
    assert not dialog.retry_delay_spin.isEnabled()
    assert not dialog.end_date_edit.isEnabled()
    request = dialog.creation_request()
    assert request.time_ranges == "" and request.local_hours == "" and request.end_at is None


def test_bad_policy_input_disables_create_with_the_reason(
    open_create,
    bad_csv,
    answers,
    qtbot,
) -> None:
    dialog = open_create()
    load(dialog, qtbot, bad_csv, answers)
    dialog.name_field.setText("Policy")
    create = dialog.findChild(QPushButton, "createConfirmButton")
    assert create.isEnabled(), dialog.problems()
    dialog.extra_ranges_field.setText("10:00-11:00")
    assert "overlap" in policy_problem(dialog) and not create.isEnabled()
    dialog.extra_ranges_field.setText("19:00-20:00")
    dialog.blackout_field.setText("25/12")
    assert "YYYY-MM-DD" in policy_problem(dialog)
    dialog.blackout_field.setText("2026-12-25")
    dialog.local_hours_check.setChecked(True)
    dialog.local_end_edit.setTime(QTime(7, 0))
    assert "end after they start" in policy_problem(dialog)
    dialog.local_end_edit.setTime(QTime(21, 0))
    dialog.max_attempts_spin.setValue(3)
    assert dialog.retry_delay_spin.isEnabled()
    for check in dialog.retry_checks.values():
        check.setChecked(False)
    assert policy_problem(dialog).startswith("Choose which outcomes are retried")
    dialog.retry_checks["no-answer"].setChecked(True)
    dialog.end_date_check.setChecked(True)
    dialog.end_date_edit.setDate(QDate(2020, 1, 1))
    assert "end date must be after" in policy_problem(dialog)
    dialog.end_date_edit.setDate(QDate(2027, 1, 31))
    assert create.isEnabled(), dialog.problems()


def test_create_stores_windows_local_hours_retries_and_end(
    open_create,
    bad_csv,
    answers,
    qtbot,
) -> None:
    dialog = open_create()
    load(dialog, qtbot, bad_csv, answers)
    dialog.name_field.setText("Policy")
    dialog.timezone_combo.setCurrentText("America/New_York")
    dialog.end_edit.setTime(QTime(12, 0))
    dialog.extra_ranges_field.setText("14:00-18:00")
    dialog.blackout_field.setText("2026-12-25, 2027-01-01")
    dialog.local_hours_check.setChecked(True)
    dialog.max_attempts_spin.setValue(3)
    dialog.retry_delay_spin.setValue(30)
    dialog.retry_checks["failed"].setChecked(True)
    dialog.end_date_check.setChecked(True)
    dialog.end_date_edit.setDate(QDate(2027, 1, 31))
    dialog.end_time_edit.setTime(QTime(18, 0))
    create = dialog.findChild(QPushButton, "createConfirmButton")
    assert create.isEnabled(), dialog.problems()
    with qtbot.waitSignal(dialog.created, timeout=10_000) as created:
        create.click()
    snapshot = created.args[0]
    assert snapshot.time_ranges_display == "09:00 to 12:00, 14:00 to 18:00"
    assert snapshot.blackout_dates == "2026-12-25,2027-01-01"
    assert snapshot.local_hours == "08:00-21:00"
    assert (snapshot.max_attempts, snapshot.retry_delay_minutes) == (3, 30)
    assert snapshot.retry_outcomes == "no-answer,busy,failed"
    assert snapshot.end_at == scheduled_instant(date(2027, 1, 31), time(18, 0), "America/New_York")


def test_all_day_turns_the_range_editors_off(open_create) -> None:
    dialog = open_create()
    dialog.all_day_check.setChecked(True)
    assert not dialog.start_edit.isEnabled() and not dialog.extra_ranges_field.isEnabled()
    assert dialog.creation_request().time_ranges == "all day"
