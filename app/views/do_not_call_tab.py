"""Settings › Do not call: the database's do-not-call list (SPEC 10). Add and remove single
numbers, import a CSV (the recipients file's rules), export, search, and see who changed it.

Every database call runs on the dialog's task runner, never in a slot: the list may hold a
million numbers.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.services.batch_calls import NotFound, ValidationError
from app.services.csv_export import CsvExportError
from app.services.csv_import import CsvImportError
from app.services.do_not_call import DoNotCallService
from app.views import aio, ask, formatting
from app.views.context import AppContext
from app.views.records_model import RecordsTableModel
from app.views.tasks import BackgroundTasks
from app.views.widgets import EmptyHint

log = logging.getLogger(__name__)

SHOWN = 200


class DoNotCallTab(QWidget):
    """The list and its actions.

    Signals: changed(str) after every add, remove, import or export, with the message shown
    (tests wait on it); refreshed() after the table was filled again.
    """

    changed = Signal(str)
    refreshed = Signal()

    def __init__(
        self,
        context: AppContext,
        tasks: BackgroundTasks,
        default_country: str,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("doNotCallTab")
        self.service = DoNotCallService(context.sessions, clock=context.clock)
        self.tasks = tasks
        self.default_country = default_country
        self._search_generation = 0  # an answer to an older search is dropped
        outer = QVBoxLayout(self)

        intro = QLabel(
            "Numbers on this list are never called: each call is checked as it is placed, so "
            "a number added while a batch call runs is skipped from then on "
            "(“Skipped: do not call”).",
            self,
        )
        intro.setObjectName("doNotCallIntro")
        intro.setProperty("role", "hint")
        intro.setWordWrap(True)
        outer.addWidget(intro)

        bar = QHBoxLayout()
        self.search_field = QLineEdit(self)
        self.search_field.setObjectName("doNotCallSearchField")
        self.search_field.setPlaceholderText("Search digits")
        self.search_field.setClearButtonEnabled(True)
        self.search_field.textChanged.connect(self.refresh)
        bar.addWidget(self.search_field, 1)
        self.count_label = QLabel(self)
        self.count_label.setObjectName("doNotCallCountLabel")
        bar.addWidget(self.count_label)
        outer.addLayout(bar)

        self.model = RecordsTableModel(["Number", "Source", "Added by", "Added"], self)
        self.model.setObjectName("doNotCallModel")
        self.table = QTableView(self)
        self.table.setObjectName("doNotCallTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 160)
        outer.addWidget(self.table, 1)
        self.empty_hint = EmptyHint(self.table, self._empty_text, when=[self.refreshed])
        self.empty_hint.setObjectName("doNotCallEmptyHint")

        add = QGroupBox("Change the list", self)
        add.setObjectName("doNotCallChangeBox")
        row = QHBoxLayout(add)
        self.number_field = QLineEdit(add)
        self.number_field.setObjectName("doNotCallNumberField")
        self.number_field.setPlaceholderText("+12025550100")
        self.number_field.returnPressed.connect(self.add_number)
        row.addWidget(self.number_field, 1)
        self.add_button = QPushButton("Add", add)
        self.add_button.setObjectName("doNotCallAddButton")
        self.add_button.clicked.connect(self.add_number)
        row.addWidget(self.add_button)
        self.remove_button = QPushButton("Remove selected", add)
        self.remove_button.setObjectName("doNotCallRemoveButton")
        self.remove_button.clicked.connect(self.remove_selected)
        row.addWidget(self.remove_button)
        self.import_button = QPushButton("Import CSV…", add)
        self.import_button.setObjectName("doNotCallImportButton")
        self.import_button.clicked.connect(self.import_csv)
        row.addWidget(self.import_button)
        self.export_button = QPushButton("Export…", add)
        self.export_button.setObjectName("doNotCallExportButton")
        self.export_button.clicked.connect(self.export_csv)
        row.addWidget(self.export_button)
        outer.addWidget(add)

        self.message_label = QLabel(self)
        self.message_label.setObjectName("doNotCallMessageLabel")
        self.message_label.setWordWrap(True)
        outer.addWidget(self.message_label)
        self.refresh()

    # ----------------------------------------------------------------- reading
    def _empty_text(self) -> str:
        search = self.search_field.text().strip()
        if search:
            return f"No number on the list contains “{search}”.\nClear the search to see them all."
        return (
            "The do-not-call list is empty.\nAdd a number below, or import a CSV file of "
            "numbers (a phone_number column, as in a recipients file)."
        )

    def refresh(self, *_args: Any) -> None:
        self._search_generation += 1
        refresh = self._refresh(self._search_generation, self.search_field.text())
        self.tasks.start("doNotCallRefresh", refresh, owner=self)

    async def _refresh(self, generation: int, search: str) -> None:
        def read() -> tuple[int, list[Any]]:
            return self.service.count(), self.service.entries(search, SHOWN)

        try:
            total, entries = await aio.in_thread(read)
        except Exception as error:
            self._failed(error)
            return
        if generation != self._search_generation:
            return  # the search changed meanwhile: its own answer is on the way
        self.model.set_records(
            [
                (
                    e.phone_number,
                    e.source.title(),
                    e.added_by,
                    formatting.local_time(e.added_at),
                )
                for e in entries
            ],
            entries,
        )
        shown = (
            f" (first {formatting.count(len(entries))} shown)"
            if len(entries) < total and not search
            else ""
        )
        self.count_label.setText(f"{formatting.count(total)} numbers{shown}")
        self.refreshed.emit()

    # ----------------------------------------------------------------- changing
    def _run(self, name: str, fn: Any, message: Any) -> None:
        for button in (self.add_button, self.remove_button, self.import_button):
            button.setEnabled(False)
        self.tasks.start(name, self._change(fn, message), owner=self)

    async def _change(self, fn: Any, message: Any) -> None:
        try:
            result = await aio.in_thread(fn)
        except Exception as error:
            self._enable()
            self._failed(error)
            return
        self._enable()
        self._say(message(result))
        self.refresh()

    def _enable(self) -> None:
        for button in (self.add_button, self.remove_button, self.import_button):
            button.setEnabled(True)

    def _say(self, text: str, role: str = "") -> None:
        self.message_label.setText(text)
        self.message_label.setProperty("role", role)
        self.message_label.style().polish(self.message_label)
        self.changed.emit(text)

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, ValidationError):
            text = " ".join(error.problems.values())
        elif isinstance(error, (NotFound, CsvImportError, CsvExportError)):
            text = str(error)
        else:
            log.error("do-not-call list: %s", error)
            text = f"The do-not-call list could not be changed ({type(error).__name__})."
        self._say(f"✖ {text}", "error")

    def add_number(self) -> None:
        text = self.number_field.text().strip()
        if not text:
            self._say("✖ Enter a number to add.", "error")
            return
        country = self.default_country

        def message(result: object) -> str:
            assert isinstance(result, tuple)
            number, added = result
            self.number_field.clear()
            return f"Added {number}." if added else f"{number} is already on the list."

        self._run("doNotCallAdd", lambda: self.service.add(text, country), message)

    def remove_selected(self) -> None:
        index = self.table.currentIndex()
        entry = self.model.payload(index.row()) if index.isValid() else None
        if entry is None:
            self._say("✖ Select a number first.", "error")
            return
        if not ask.ask(
            self,
            "Remove from the do-not-call list",
            f"Remove {entry.phone_number}? It may be called again by batch calls.",
            confirm="Remove",
            destructive=True,
        ):
            return
        self._run(
            "doNotCallRemove",
            lambda: self.service.remove(entry.phone_number),
            lambda number: f"Removed {number}.",
        )

    def import_csv(self) -> None:
        path = ask.open_file(self, "Import do-not-call numbers", "CSV files (*.csv)")
        if not path:
            return
        country = self.default_country
        self._say("Importing…")

        def message(result: Any) -> str:
            text = (
                f"Imported: {formatting.count(result.added)} added, "
                f"{formatting.count(result.already_listed)} already listed or repeated, "
                f"{formatting.count(result.rejected_count)} rejected."
            )
            for row in result.rejected[:5]:
                text += f"\nRow {formatting.ordinal(row.row_number)}: {row.phone_raw} {row.reason}"
            return text

        self._run("doNotCallImport", lambda: self.service.import_csv(path, country), message)

    def export_csv(self) -> None:
        path = ask.save_file(self, "Export the do-not-call list", "do-not-call.csv", "CSV (*.csv)")
        if not path:
            return
        self._run(
            "doNotCallExport",
            lambda: self.service.export(path),
            lambda count: f"Exported {formatting.count(count)} numbers to {path}.",
        )
