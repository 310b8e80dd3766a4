"""The dialogs refuse control characters in names with the domain's own message."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLineEdit, QPushButton

from app.models.text import control_character_problem
from app.views.rename_dialog import RenameDialog, name_problem


@pytest.mark.parametrize("text", ["Red\x1b[31m", "Ring\x07", "gnp.\u202eexe"])
def test_rename_dialog_keeps_save_disabled_and_says_why(qtbot, text):
    dialog = RenameDialog("Old name")
    qtbot.addWidget(dialog)
    dialog.show()
    field = dialog.findChild(QLineEdit, "renameField")
    save = dialog.findChild(QPushButton, "renameSaveButton")

    field.setText(text)

    assert not save.isEnabled()
    assert dialog.problem_label.isVisible()
    assert "control characters" in dialog.problem_label.text()


def test_create_and_rename_dialogs_use_the_domain_rule():
    """One rule: the dialogs' reason is the domain function's message."""
    assert name_problem("Spring\x1b") == control_character_problem("Spring\x1b")
    assert name_problem("Spring") is None
