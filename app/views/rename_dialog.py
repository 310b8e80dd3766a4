"""Rename a batch call: Save stays disabled, with the reason shown, while the name is invalid."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from app.services.batch_calls import NAME_MAX, ValidationError, validate_name
from app.views.widgets import ElidedLabel

log = logging.getLogger(__name__)


def name_problem(text: str) -> str | None:
    """Why `text` cannot be a batch call name, or None when it can."""
    try:
        validate_name(text)
    except ValidationError as error:
        return str(error)
    return None


class RenameDialog(QDialog):
    """Asks for a new name; `name()` is the trimmed result once accepted."""

    def __init__(self, current_name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("renameDialog")
        self.setWindowTitle("Rename batch call")
        self.setMinimumWidth(420)

        layout = QVBoxLayout(self)
        # The current name on a line of its own, elided (a long name wrapped inside the
        # prompt was clipped at the top); the whole name is in the tooltip.
        self.current_label = ElidedLabel(f"Renaming “{current_name}”", self)
        self.current_label.setObjectName("renameCurrentName")
        layout.addWidget(self.current_label)
        label = QLabel(f"&New name (1 to {NAME_MAX} characters):", self)
        label.setObjectName("renamePrompt")
        layout.addWidget(label)

        self.field = QLineEdit(current_name, self)
        self.field.setObjectName("renameField")
        self.field.setClearButtonEnabled(True)
        self.field.selectAll()
        layout.addWidget(self.field)
        label.setBuddy(self.field)

        self.problem_label = QLabel(self)
        self.problem_label.setObjectName("renameProblemLabel")
        self.problem_label.setProperty("role", "error")
        self.problem_label.setWordWrap(True)
        layout.addWidget(self.problem_label)

        buttons = QDialogButtonBox(self)
        self.save_button = buttons.addButton("Save", QDialogButtonBox.ButtonRole.AcceptRole)
        self.save_button.setObjectName("renameSaveButton")
        self.save_button.setDefault(True)
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setObjectName("renameCancelButton")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

        self.field.textChanged.connect(self._validate)
        self._validate(self.field.text())

    def _validate(self, text: str) -> None:
        problem = name_problem(text)
        self.save_button.setEnabled(problem is None)
        self.problem_label.setText(problem or "")
        self.problem_label.setVisible(problem is not None)

    def accept(self) -> None:
        if name_problem(self.field.text()) is not None:  # Enter with an invalid name
            return
        super().accept()

    def name(self) -> str:
        return validate_name(self.field.text())
