"""The settings dialog: provider and Twilio credentials (keyring, masked, tested against the
Twilio stand-in), limits, the dialing engine's settings, agents, from numbers (added or
imported) and the database."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import keyring
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLabel, QLineEdit, QPushButton, QSpinBox, QWidget
from shiboken6 import isValid
from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from app.models.schema import Setting
from app.services import secrets
from app.services.setting_specs import SETTING_SPECS
from app.services.settings import AppSettings
from app.standin.twilio_server import TwilioStandin
from app.views import settings_dialog as settings_dialog_module
from app.views.qa import StallMeter
from app.views.settings_dialog import SettingsDialog
from tests.conftest import MemoryKeyring


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
        # The keyring, the settings, the agents and numbers are all read off-thread.
        qtbot.waitUntil(
            lambda: (
                dialog.credentials_ready
                and dialog.settings_loaded
                and dialog.agents_model.rowCount() > 0
                and not dialog.tasks.busy(include_quiet=True)
            ),
            timeout=5000,
        )
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


def test_no_keyring_says_what_to_do(open_settings, context, qtbot):
    # The suite's default keyring is the null backend: nothing can be stored.
    dialog = open_settings()
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData("twilio"))
    dialog.account_sid_field.setText("AC" + "0" * 32)
    dialog.token_field.setText("secret")
    dialog.save()  # the keyring is written in the background
    qtbot.waitUntil(lambda: "install and unlock" in dialog.error_label.text(), timeout=5000)
    assert dialog.isVisible() and dialog.save_button.isEnabled()
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
    qtbot.waitUntil(lambda: "+14155550100" in dialog.numbers_model.column_values(0))
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
    qtbot.waitUntil(lambda: "https://" in dialog.agent_error_label.text())
    dialog.agent_value_field.setText("https://example.com/voice")
    with qtbot.waitSignal(dialog.recordsChanged):  # added in the background, then re-read
        click(qtbot, dialog, "addAgentButton")
    assert dialog.agent_error_label.text() == "Added “Reminder”."
    names = dialog.agents_model.column_values(0)
    assert names == ["Demo message", "Reminder"]
    dialog.agents_table.selectRow(1)
    with qtbot.waitSignal(dialog.recordsChanged):
        click(qtbot, dialog, "toggleAgentActiveButton")
    assert dialog.agents_model.column_values(2) == ["Yes", "No"]
    assert [a.name for a in context.service.list_agents(active_only=True)] == ["Demo message"]


def test_add_a_simulated_from_number(open_settings, context, qtbot):
    dialog = open_settings()
    dialog.number_field.setText("not a number")
    click(qtbot, dialog, "addFromNumberButton")
    qtbot.waitUntil(lambda: "international form" in dialog.number_error_label.text())
    dialog.number_field.setText("+1 (202) 555-0155")
    dialog.number_label_field.setText("Support")
    with qtbot.waitSignal(dialog.recordsChanged):
        click(qtbot, dialog, "addFromNumberButton")
    assert "+12025550155" in dialog.numbers_model.column_values(0)
    assert any(n.label == "Support" for n in context.service.list_from_numbers())


def test_main_window_mode_follows_saved_settings(open_main_window, memory_keyring, qtbot):
    window = open_main_window()
    qtbot.mouseClick(window.settings_button, Qt.MouseButton.LeftButton)
    dialog = window.findChild(SettingsDialog, "settingsDialog")
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.settings_loaded and dialog.credentials_ready)
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData("twilio"))
    dialog.account_sid_field.setText("AC" + "12345678" * 4)
    dialog.token_field.setText("t0ken")
    with qtbot.waitSignal(dialog.saved):
        click(qtbot, dialog, "settingsSaveButton")
    assert window.statusBar().currentMessage() == "Settings saved."
    # The settings are read again in the background (never on the GUI thread).
    qtbot.waitUntil(lambda: window.mode_label.text() == "Twilio: AC12…5678", timeout=5000)


class RecordingKeyring(MemoryKeyring):
    """Notes every keyring call made on the GUI (main) thread: a locked keyring can block."""

    def __init__(self) -> None:
        super().__init__()
        self.gui_thread_calls: list[str] = []

    def _note(self, what: str) -> None:
        if threading.current_thread() is threading.main_thread():
            self.gui_thread_calls.append(what)

    def get_password(self, service: str, username: str) -> str | None:
        self._note("get")
        return super().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self._note("set")
        super().set_password(service, username, password)


@pytest.fixture
def recording_keyring(monkeypatch, memory_keyring) -> RecordingKeyring:
    backend = RecordingKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    return backend


def test_the_keyring_is_never_used_on_the_gui_thread(
    open_settings, open_main_window, context, recording_keyring, qtbot
):
    sid = "AC" + "12345678" * 4
    secrets.store_twilio_credentials(sid, "old-token")
    context.settings.update(provider="twilio")  # the SID only in the keyring
    recording_keyring.gui_thread_calls.clear()

    window = open_main_window()
    qtbot.waitUntil(lambda: window.mode_label.text() == "Twilio: AC12…5678", timeout=5000)
    dialog = open_settings()  # waits until the saved credentials were read
    assert dialog.account_sid_field.text() == sid
    dialog.token_field.setText("new-token")
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        click(qtbot, dialog, "settingsSaveButton")
    assert recording_keyring.gui_thread_calls == []
    assert secrets.load_twilio_credentials().secret == "new-token"


@pytest.mark.parametrize(
    ("saved_key", "typed_key", "reason"),
    [
        (None, "SK" + "2" * 32, "also enter that key's secret"),
        ("SK" + "2" * 32, "", "You cleared the API key SID: enter the Auth Token"),
        ("SK" + "2" * 32, "SK" + "3" * 32, "enter the new key's secret"),
    ],
    ids=["key added", "key cleared", "key changed"],
)
def test_an_api_key_change_without_its_secret_is_refused(
    open_settings, context, memory_keyring, qtbot, saved_key, typed_key, reason
):
    sid = "AC" + "1" * 32
    secrets.store_twilio_credentials(sid, "s" * 32, api_key_sid=saved_key)
    context.settings.update(provider="twilio", twilio_account_sid=sid)
    dialog = open_settings()
    assert dialog.api_key_field.text() == (saved_key or "")
    dialog.api_key_field.setText(typed_key)
    saved: list[bool] = []
    dialog.saved.connect(lambda: saved.append(True))
    click(qtbot, dialog, "settingsSaveButton")
    assert reason in dialog.error_label.text()
    assert dialog.isVisible() and saved == []
    assert secrets.load_twilio_credentials().api_key_sid == saved_key  # unchanged
    # Test connection refuses for the same reason instead of sending the wrong secret.
    with qtbot.waitSignal(dialog.connectionChecked) as checked:
        click(qtbot, dialog, "testConnectionButton")
    assert checked.args[0] is False and reason in checked.args[1]

    # With the secret that belongs to it, the change is stored.
    dialog.token_field.setText("k" * 32)
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        click(qtbot, dialog, "settingsSaveButton")
    stored = secrets.load_twilio_credentials()
    assert (stored.api_key_sid, stored.secret) == (typed_key or None, "k" * 32)


@pytest.fixture
def silent_twilio(monkeypatch) -> Iterator[list[socket.socket]]:
    """A Twilio address that accepts connections and never answers (a hung network)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:  # the accept timeout: look at `stop` again
                continue

    acceptor = threading.Thread(target=accept, name="silentTwilio", daemon=True)
    acceptor.start()
    monkeypatch.setenv("BATCHCALLS_TWILIO_API_BASE", f"http://127.0.0.1:{server.getsockname()[1]}")
    yield accepted
    stop.set()
    acceptor.join(2)
    for connection in accepted:  # the waiting request fails at once
        connection.close()
    server.close()


@pytest.mark.parametrize("button", ["testConnectionButton", "importFromTwilioButton"])
def test_closing_settings_while_twilio_does_not_answer_never_freezes(
    open_main_window, memory_keyring, silent_twilio, qtbot, button
):
    window = open_main_window()
    dialog = window.open_settings_dialog()
    qtbot.waitUntil(lambda: dialog.credentials_ready, timeout=5000)
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData("twilio"))
    dialog.account_sid_field.setText("AC" + "0" * 32)
    dialog.token_field.setText("t" * 32)
    click(qtbot, dialog, button)
    qtbot.waitUntil(lambda: len(silent_twilio) > 0, timeout=5000)  # the request waits

    meter = StallMeter(parent=window)
    meter.start()
    started = time.monotonic()
    click(qtbot, dialog, "settingsCancelButton")
    closing_took = time.monotonic() - started
    qtbot.waitUntil(lambda: not isValid(dialog), timeout=5000)  # deleted (deleteLater)
    meter.stop()
    assert closing_took < 0.5, f"Cancel took {closing_took:.1f} s"
    assert meter.worst_ms < 500, f"the window froze for {meter.worst_ms:.0f} ms"
    # The abandoned request ends when the connection drops (the `silent_twilio` teardown);
    # its answer goes nowhere (`no_thread_left` checks that the thread ended).
    assert window.isVisible() and window.statusBar().currentMessage() != "Settings saved."


# --------------------------------------------------------------------- do not call (SPEC 10)


def test_do_not_call_tab_adds_removes_imports_exports(
    open_settings, context, answers, qtbot, tmp_path, model_checks
):
    from app.services.do_not_call import DoNotCallService

    dialog = open_settings()
    tab = dialog.do_not_call_tab
    model_checks.check(tab.model)
    dialog.tabs.setCurrentWidget(tab)
    # An empty list says what to do, over the table.
    hint = dialog.findChild(QLabel, "doNotCallEmptyHint")
    qtbot.waitUntil(hint.isVisible, timeout=5000)
    assert hint.text().startswith("The do-not-call list is empty.")
    field = dialog.findChild(QLineEdit, "doNotCallNumberField")
    field.setText("(202) 555-0143")
    with qtbot.waitSignal(tab.changed, timeout=5000) as changed:
        click(qtbot, dialog, "doNotCallAddButton")
    assert changed.args == ["Added +12025550143."]
    qtbot.waitUntil(lambda: tab.model.rowCount() == 1, timeout=5000)
    assert not hint.isVisible()
    with qtbot.waitSignal(tab.refreshed, timeout=5000):
        tab.search_field.setText("999")
    assert hint.isVisible() and "contains “999”" in hint.text()
    with qtbot.waitSignal(tab.refreshed, timeout=5000):
        tab.search_field.clear()
    assert not hint.isVisible()
    field.setText("12345")
    with qtbot.waitSignal(tab.changed, timeout=5000) as changed:
        click(qtbot, dialog, "doNotCallAddButton")
    assert changed.args[0].startswith("✖ 12345")
    source = tmp_path / "dnc.csv"
    source.write_text("phone_number\n+12025550150\nnope\n", encoding="utf-8")
    answers.open_path = str(source)
    said: list[str] = []
    tab.changed.connect(said.append)
    click(qtbot, dialog, "doNotCallImportButton")
    qtbot.waitUntil(lambda: len(said) == 2, timeout=5000)  # "Importing…", then the result
    assert "1 added" in said[1] and "1 rejected" in said[1]
    assert "Row 3: nope" in said[1]
    qtbot.waitUntil(lambda: tab.model.rowCount() == 2, timeout=5000)
    assert tab.findChild(QLabel, "doNotCallCountLabel").text() == "2 numbers"
    answers.save_path = str(tmp_path / "out.csv")
    with qtbot.waitSignal(tab.changed, timeout=5000) as changed:
        click(qtbot, dialog, "doNotCallExportButton")
    assert changed.args[0].startswith("Exported 2 numbers")
    tab.table.selectRow(0)
    with qtbot.waitSignal(tab.changed, timeout=5000) as changed:
        click(qtbot, dialog, "doNotCallRemoveButton")
    assert changed.args == ["Removed +12025550143."]
    assert answers.questions[-1][0] == "Remove from the do-not-call list"
    qtbot.waitUntil(lambda: tab.model.rowCount() == 1, timeout=5000)
    actions = [e.action for e in DoNotCallService(context.sessions).events()]
    assert actions == ["REMOVE", "IMPORT", "ADD"]


# --------------------------------------------------------------------- the dialing engine

#: Settings shown elsewhere in the dialog (Telephony) or not the engine's: the simulation
#: seed and the Twilio API base stay with `batchcalls settings set`.
NOT_ON_THE_DIALING_TAB = {
    "provider",
    "plan_concurrency",
    "calls_per_second",
    "default_country",
    "twilio_account_sid",
    "twilio_api_base",
    "simulation_seed",
}


@pytest.fixture
def gui_thread_queries(context) -> Iterator[list[str]]:
    """Every SQL statement run on the GUI (main) thread while the test runs."""
    engine = context.sessions.kw["bind"]
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if threading.current_thread() is threading.main_thread():
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def test_the_dialing_tab_shows_every_engine_setting_with_its_range_and_help(
    open_settings, context, memory_keyring
):
    context.settings.update(
        placement_concurrency=4,
        poll_interval_seconds=0.5,
        lease_heartbeat_seconds=4.0,
        lease_expiry_seconds=20.0,
        max_attempts_per_number_24h=3,
        ring_timeout_seconds=45,
        answering_machine_detection=True,
    )
    dialog = open_settings()
    fields = dialog.engine_fields
    assert set(fields) == set(SETTING_SPECS) - NOT_ON_THE_DIALING_TAB
    stored = context.settings.load()
    for key, field in fields.items():
        spec = SETTING_SPECS[key]
        assert spec.meaning[1:] in field.toolTip()  # capitalised, then word for word
        if isinstance(field, QCheckBox):
            assert field.isChecked() is getattr(stored, key)
            continue
        assert (field.minimum(), field.maximum()) == (spec.low, spec.high)
        assert settings_dialog_module.range_text(key) in field.toolTip()
        assert field.value() == getattr(stored, key)
        assert field.objectName().endswith("Spin")
    assert fields["placement_concurrency"].objectName() == "placementConcurrencySpin"
    assert fields["poll_interval_seconds"].suffix() == " s"
    # In the locale's numbers, grouped as the fields are ("3,600", not "3600").
    assert settings_dialog_module.range_text("pickup_interval_seconds") == ("0.05 to 3,600 seconds")
    assert all(
        field.isGroupSeparatorShown() for field in fields.values() if isinstance(field, QSpinBox)
    )
    # The Telephony tab's limits take their ranges from the same table.
    spec = SETTING_SPECS["calls_per_second"]
    assert (dialog.cps_spin.minimum(), dialog.cps_spin.maximum()) == (spec.low, spec.high)
    assert dialog.concurrency_spin.maximum() == SETTING_SPECS["plan_concurrency"].high
    cap = fields["max_attempts_per_number_24h"]
    cap.setValue(0)
    assert cap.text() == "No cap"


def test_engine_settings_are_saved_in_the_background(
    open_settings, context, memory_keyring, qtbot, gui_thread_queries
):
    dialog = open_settings()
    fields = dialog.engine_fields
    dialog.tabs.setCurrentWidget(dialog.findChild(QWidget, "engineTab"))
    for key, value in {
        "placement_concurrency": 25,
        "poll_interval_seconds": 1.5,
        "lease_heartbeat_seconds": 10.0,
        "lease_expiry_seconds": 60.0,
        "max_attempts_per_number_24h": 2,
        "dial_interval_seconds": 0.25,
    }.items():
        fields[key].setValue(value)
    fields["answering_machine_detection"].setChecked(True)
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        click(qtbot, dialog, "settingsSaveButton")
    assert gui_thread_queries == []  # read and written off the GUI thread
    settings = context.settings.load()
    assert (settings.placement_concurrency, settings.poll_interval_seconds) == (25, 1.5)
    assert (settings.lease_heartbeat_seconds, settings.lease_expiry_seconds) == (10.0, 60.0)
    assert (settings.max_attempts_per_number_24h, settings.dial_interval_seconds) == (2, 0.25)
    assert settings.answering_machine_detection is True


def test_an_untouched_engine_setting_keeps_its_stored_value(
    open_settings, context, memory_keyring, qtbot
):
    context.settings.update(poll_interval_seconds=0.125)  # finer than the field shows
    dialog = open_settings()
    assert dialog.engine_fields["poll_interval_seconds"].value() == 0.13
    # Changed elsewhere (`batchcalls settings set`) while the dialog was open.
    context.settings.update(dial_interval_seconds=2.5)
    dialog.engine_fields["placement_concurrency"].setValue(3)
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        click(qtbot, dialog, "settingsSaveButton")
    settings = context.settings.load()
    assert settings.poll_interval_seconds == 0.125
    assert settings.dial_interval_seconds == 2.5
    assert settings.placement_concurrency == 3


def test_lease_timing_that_cannot_work_is_refused_with_a_reason(
    open_settings, context, memory_keyring, qtbot
):
    dialog = open_settings()
    heartbeat = dialog.engine_fields["lease_heartbeat_seconds"]
    heartbeat.setValue(20.0)  # more than a third of the 30 s expiry
    dialog.engine_fields["placement_concurrency"].setValue(7)
    saved: list[bool] = []
    dialog.saved.connect(lambda: saved.append(True))
    click(qtbot, dialog, "settingsSaveButton")
    assert "lease heartbeat must be at most a third of the lease expiry" in (
        dialog.error_label.text()
    )
    assert dialog.isVisible() and saved == []
    assert dialog.tabs.currentWidget().objectName() == "engineTab"
    assert heartbeat.hasFocus() or not dialog.isActiveWindow()
    assert heartbeat.value() == 20.0  # nothing typed is lost
    stored = context.settings.load()
    default = AppSettings().placement_concurrency  # nothing was saved: still the default
    assert (stored.lease_heartbeat_seconds, stored.placement_concurrency) == (5.0, default)

    dialog.engine_fields["lease_expiry_seconds"].setValue(60.0)
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        click(qtbot, dialog, "settingsSaveButton")
    stored = context.settings.load()
    assert (stored.lease_heartbeat_seconds, stored.lease_expiry_seconds) == (20.0, 60.0)


def test_a_value_typed_out_of_range_is_refused_not_replaced(
    open_settings, context, memory_keyring, qtbot
):
    dialog = open_settings()
    dialog.tabs.setCurrentWidget(dialog.findChild(QWidget, "engineTab"))
    poll = dialog.engine_fields["poll_interval_seconds"]
    poll.setFocus()
    poll.selectAll()
    qtbot.keyClicks(poll, "0.0")  # below 0.1: the field cannot take it
    problem = "Poll interval must be from 0.1 to 300 seconds; “0.0” is not."
    dialog.engine_fields["lease_expiry_seconds"].setFocus()  # leaving the field says so
    assert dialog.error_label.text() == problem
    assert poll.cleanText() == "0.0"  # not silently put back to 3
    dialog.error_label.clear()
    saved: list[bool] = []
    dialog.saved.connect(lambda: saved.append(True))
    click(qtbot, dialog, "settingsSaveButton")
    assert dialog.error_label.text() == problem
    assert dialog.isVisible() and saved == []
    assert poll.cleanText() == "0.0"  # still there to be corrected
    assert context.settings.load().poll_interval_seconds == 3.0

    poll.selectAll()
    qtbot.keyClicks(poll, "0.5")
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        click(qtbot, dialog, "settingsSaveButton")
    assert context.settings.load().poll_interval_seconds == 0.5


def test_do_not_call_search_shows_only_the_latest_search(
    open_settings, memory_keyring, qtbot, monkeypatch
):
    dialog = open_settings()
    tab = dialog.do_not_call_tab
    service = tab.service
    service.add("+12025550101")
    service.add("+12025550202")
    release = threading.Event()
    real_entries = service.entries

    def entries(search: str = "", limit: int = 200, offset: int = 0):
        if search == "0101":  # the older search answers last
            release.wait(5)
        return real_entries(search, limit, offset)

    monkeypatch.setattr(service, "entries", entries)
    with qtbot.waitSignal(tab.refreshed, timeout=5000):
        tab.search_field.setText("0101")
        tab.search_field.setText("0202")
    assert tab.model.column_values(0) == ["+12025550202"]
    release.set()
    qtbot.waitUntil(lambda: not dialog.tasks.busy(include_quiet=True), timeout=5000)
    assert tab.model.column_values(0) == ["+12025550202"]
