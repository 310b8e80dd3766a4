"""A create journey from a CSV file: New Batch Call, choose the file (the `answers`
stand-in picks it in the file dialog), see the rejected row, name the batch call, Create,
and find it in the list with the search field."""

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QPushButton, QWidget

from app.models.status import BatchStatus
from app.services.batch_calls import RecipientQuery
from app.views.batch_model import Column

RECIPIENTS = (
    "phone_number,name,appointment\n"
    "+12025550101,Ada,Mon 9:00\n"
    "+12025550102,Bob,Mon 9:30\n"
    "call me,Cy,Mon 10:00\n"  # row 4: not a phone number, rejected
    "+12025550103,Dee,Mon 10:30\n"
)


def click(qtbot, parent, name):
    qtbot.mouseClick(parent.findChild(QPushButton, name), Qt.MouseButton.LeftButton)


def test_create_a_batch_call_from_a_csv_file(open_main_window, context, answers, qtbot, tmp_path):
    csv_file = tmp_path / "recipients.csv"
    csv_file.write_text(RECIPIENTS, encoding="utf-8")
    answers.open_path = str(csv_file)  # what the supervisor picks in the file dialog
    window = open_main_window()
    assert window.findChild(QWidget, "emptyState").isVisible()  # a new database

    click(qtbot, window, "createButton")
    dialog = window.findChild(QDialog, "createDialog")
    with qtbot.waitSignal(dialog.scanned, timeout=10_000):  # the CSV is read off-thread
        click(qtbot, dialog, "chooseCsvButton")
    assert dialog.findChild(QLabel, "acceptedCountLabel").text() == "✔ 3 recipients will be called"
    assert dialog.findChild(QLabel, "rejectedCountLabel").text() == "✖ 1 row rejected"
    qtbot.keyClicks(dialog.findChild(QLineEdit, "nameField"), "Flu shot reminders")
    with qtbot.waitSignal(dialog.created, timeout=10_000) as created:
        click(qtbot, dialog, "createConfirmButton")
    batch = created.args[0]

    # Stored with exactly the valid rows; no engine runs here, so it stays Scheduled.
    stored = context.service.get(batch.id)
    assert stored.status is BatchStatus.SCHEDULED and stored.total_recipients == 3
    assert context.service.count_recipients(batch.id, RecipientQuery(search="Cy")) == 0

    # The list shows it; the search field filters on the Name column.
    qtbot.waitUntil(lambda: window.model.row_of(batch.id) is not None, timeout=5_000)
    qtbot.keyClicks(window.findChild(QLineEdit, "searchField"), "flu shot")
    qtbot.waitUntil(lambda: window.proxy.rowCount() == 1, timeout=5_000)
    assert window.proxy.index(0, Column.NAME).data() == "Flu shot reminders"
    assert window.proxy.index(0, Column.STATUS).data() == "Scheduled"
