"""The settings dialog: provider and Twilio credentials (keyring, masked, tested against the
Twilio stand-in), limits, agents, from numbers (added or imported) and the database."""

from __future__ import annotations

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QLineEdit, QPushButton
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.models.schema import Setting
from app.services import secrets
from app.standin.twilio_server import TwilioStandin
from app.views.settings_dialog import SettingsDialog


class MemoryKeyring(KeyringBackend):
    """A keyring in a dict: no test touches the computer's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture
def memory_keyring(monkeypatch) -> MemoryKeyring:
    backend = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    for name in (secrets.ACCOUNT_SID_ENV, secrets.AUTH_TOKEN_ENV, secrets.API_KEY_SID_ENV):
        monkeypatch.delenv(name, raising=False)
    return backend


@pytest.fixture
def standin(monkeypatch):
    with TwilioStandin() as server:
        monkeypatch.setenv("BATCHCALLS_TWILIO_API_BASE", server.base_url)
        yield server


@pytest.fixture
def open_settings(qtbot, context, model_checks):
    def opener() -> SettingsDialog:
        dialog = SettingsDialog(context)
        qtbot.addWidget(dialog)
        model_checks.check(dialog.agents_model)
        model_checks.check(dialog.numbers_model)
        dialog.show()
        return dialog

    return opener


def click(qtbot, dialog, name: str) -> None:
    qtbot.mouseClick(dialog.findChild(QPushButton, name), Qt.MouseButton.LeftButton)


def stored_settings_text(context) -> str:
    with context.sessions() as session:
        return " ".join(f"{s.key}={s.value}" for s in session.scalars(select(Setting)))


def test_defaults_and_database_location(open_settings, context, memory_keyring):
    dialog = open_settings()
    assert dialog.provider() == "simulation"
    assert not dialog.twilio_box.isEnabled()
    assert dialog.concurrency_spin.value() == 10
    assert dialog.cps_spin.value() == 1.0
    assert dialog.country_combo.currentData() == "US"
    assert dialog.country_combo.currentText() == "US – United States"
    location = dialog.findChild(QLineEdit, "databaseLocationField")
    assert location.isReadOnly() and location.text() == make_url(context.database_url).database
    assert dialog.findChild(QLabel, "databaseKindLabel").text() == "SQLite file on this computer"
    assert "restarted" in dialog.findChild(QLabel, "databaseNote").text()
    assert dialog.findChild(QLineEdit, "authTokenField").echoMode() == QLineEdit.EchoMode.Password


def test_save_twilio_keeps_the_token_in_the_keyring_only(
    open_settings, context, memory_keyring, qtbot
):
    dialog = open_settings()
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData("twilio"))
    assert dialog.twilio_box.isEnabled()
    sid, token = "AC" + "a1" * 16, "token-that-must-stay-secret"
    dialog.account_sid_field.setText(sid)
    qtbot.keyClicks(dialog.token_field, token)
    dialog.concurrency_spin.setValue(25)
    dialog.cps_spin.setValue(5.0)
    dialog.country_combo.setCurrentIndex(dialog.country_combo.findData("GB"))
    with qtbot.waitSignal(dialog.saved):
        click(qtbot, dialog, "settingsSaveButton")
    settings = context.settings.load()
    assert (settings.provider, settings.plan_concurrency, settings.calls_per_second) == (
        "twilio",
        25,
        5.0,
    )
    assert settings.default_country == "GB" and settings.twilio_account_sid == sid
    assert secrets.load_twilio_credentials() == secrets.TwilioCredentials(sid, token)
    assert token not in stored_settings_text(context)

    # Opening again: the token is not shown, and saving without retyping keeps it.
    again = open_settings()
    assert again.token_field.text() == ""
    assert "keyring" in again.token_field.placeholderText()
    with qtbot.waitSignal(again.saved):
        click(qtbot, again, "settingsSaveButton")
    assert secrets.load_twilio_credentials().secret == token


def test_twilio_without_a_token_is_refused_with_a_reason(open_settings, context, memory_keyring):
    dialog = open_settings()
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData("twilio"))
    dialog.account_sid_field.setText("AC" + "0" * 32)
    dialog.save()
    assert dialog.isVisible()
    assert "Enter the Auth Token" in dialog.error_label.text()
    assert context.settings.load().provider == "simulation"


def test_no_keyring_says_what_to_do(open_settings, context):
    # The suite's default keyring is the null backend: nothing can be stored.
    dialog = open_settings()
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData("twilio"))
    dialog.account_sid_field.setText("AC" + "0" * 32)
    dialog.token_field.setText("secret")
    dialog.save()
    assert "keyring" in dialog.error_label.text()
    assert context.settings.load().provider == "simulation"


def test_test_connection_against_the_standin(open_settings, standin, memory_keyring, qtbot):
    dialog = open_settings()
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData("twilio"))
    dialog.account_sid_field.setText(standin.account_sid)
    dialog.token_field.setText(standin.auth_token)
    with qtbot.waitSignal(dialog.connectionChecked, timeout=10_000) as checked:
        click(qtbot, dialog, "testConnectionButton")
    assert checked.args == [True, "Connected to “Batch Calls stand-in account” (active)."]
    assert dialog.connection_label.text().startswith("✔")

    dialog.token_field.setText("wrong-token-123")
    with qtbot.waitSignal(dialog.connectionChecked, timeout=10_000) as checked:
        click(qtbot, dialog, "testConnectionButton")
    ok, message = checked.args
    assert not ok and "credentials" in message and "wrong-token-123" not in message


def test_import_numbers_and_apps_from_twilio(
    open_settings, context, standin, memory_keyring, qtbot
):
    dialog = open_settings()
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData("twilio"))
    dialog.account_sid_field.setText(standin.account_sid)
    dialog.token_field.setText(standin.auth_token)
    with qtbot.waitSignal(dialog.numbersImported, timeout=10_000) as imported:
        click(qtbot, dialog, "importFromTwilioButton")
    assert imported.args[0].startswith("✔ Imported 2 numbers and 1 TwiML app")
    numbers = dialog.numbers_model.column_values(0)
    assert "+14155550100" in numbers and "+14155550199" in numbers
    assert "+14155550101" not in numbers  # SMS only: cannot place calls
    agents = {a.name: a for a in context.service.list_agents()}
    assert agents["Batch Calls demo agent"].kind == "application"


def test_agents_add_validate_and_deactivate(open_settings, context, qtbot):
    dialog = open_settings()
    dialog.agent_name_field.setText("Reminder")
    dialog.agent_kind_combo.setCurrentIndex(dialog.agent_kind_combo.findData("url"))
    dialog.agent_value_field.setText("ftp://nope")
    click(qtbot, dialog, "addAgentButton")
    assert "https://" in dialog.agent_error_label.text()
    dialog.agent_value_field.setText("https://example.com/voice")
    click(qtbot, dialog, "addAgentButton")
    assert dialog.agent_error_label.text() == "Added “Reminder”."
    names = dialog.agents_model.column_values(0)
    assert names == ["Demo message", "Reminder"]
    dialog.agents_table.selectRow(1)
    click(qtbot, dialog, "toggleAgentActiveButton")
    assert dialog.agents_model.column_values(2) == ["Yes", "No"]
    assert [a.name for a in context.service.list_agents(active_only=True)] == ["Demo message"]


def test_add_a_simulated_from_number(open_settings, context, qtbot):
    dialog = open_settings()
    dialog.number_field.setText("not a number")
    click(qtbot, dialog, "addFromNumberButton")
    assert "international form" in dialog.number_error_label.text()
    dialog.number_field.setText("+1 (202) 555-0155")
    dialog.number_label_field.setText("Support")
    click(qtbot, dialog, "addFromNumberButton")
    assert "+12025550155" in dialog.numbers_model.column_values(0)
    assert any(n.label == "Support" for n in context.service.list_from_numbers())


def test_main_window_mode_follows_saved_settings(open_main_window, memory_keyring, qtbot):
    window = open_main_window()
    qtbot.mouseClick(window.settings_button, Qt.MouseButton.LeftButton)
    dialog = window.findChild(SettingsDialog, "settingsDialog")
    assert dialog is not None and dialog.isVisible()
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData("twilio"))
    dialog.account_sid_field.setText("AC" + "12345678" * 4)
    dialog.token_field.setText("t0ken")
    with qtbot.waitSignal(dialog.saved):
        click(qtbot, dialog, "settingsSaveButton")
    assert window.mode_label.text() == "Twilio: AC12…5678"
    assert window.statusBar().currentMessage() == "Settings saved."
