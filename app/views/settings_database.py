"""Settings › Database: which database this desktop uses and how to choose another (read
only: the database is chosen when Batch Calls starts)."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from app.services.app_context import database_kind


class DatabaseTab(QWidget):
    def __init__(self, database_url: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("databaseTab")
        outer = QVBoxLayout(self)
        form = QFormLayout()
        database = database_kind(database_url)
        location = database.location
        if database.is_file:
            kind = "SQLite file on this computer"
        else:
            kind = f"{database.backend.title()} server (can be shared by several desktops)"
        kind_label = QLabel(kind, self)
        kind_label.setObjectName("databaseKindLabel")
        form.addRow("Database:", kind_label)
        self.database_field = QLineEdit(location, self)
        self.database_field.setObjectName("databaseLocationField")
        self.database_field.setReadOnly(True)
        self.database_field.setCursorPosition(0)
        form.addRow("Location:", self.database_field)
        outer.addLayout(form)
        note = QLabel(
            "To use another database (for example a shared PostgreSQL server), start Batch "
            "Calls with --database-url URL or set the BATCHCALLS_DATABASE_URL environment "
            "variable. A change takes effect only after Batch Calls is restarted.",
            self,
        )
        note.setObjectName("databaseNote")
        note.setProperty("role", "hint")
        note.setWordWrap(True)
        outer.addWidget(note)
        outer.addStretch(1)
