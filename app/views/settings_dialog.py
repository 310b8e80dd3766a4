"""Settings: the telephony provider and Twilio account, the plan's limits, the dialing
engine's settings, agents, from numbers, the do-not-call list and where the database is,
each tab in its own module (settings_telephony, settings_dialing, settings_agents,
settings_numbers, do_not_call_tab, settings_database). This one puts them together and
saves: it checks the setting fields (app.views.settings_fields), says what is wrong under
the tabs, and writes the secret to the keyring (never to the database) and the settings.

Everything is read and written off the GUI thread, on a detached task runner: closing
the dialog never waits for a locked keyring or a slow network.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.services import secrets
from app.services.setting_specs import SETTING_SPECS
from app.services.settings import AppSettings, SettingsError
from app.views import aio
from app.views.context import AppContext
from app.views.do_not_call_tab import DoNotCallTab
from app.views.settings_agents import AGENT_KINDS, KIND_NAMES, AgentsTab
from app.views.settings_database import DatabaseTab
from app.views.settings_dialing import ENGINE_SECTIONS, DialingTab, EngineField
from app.views.settings_fields import (
    field_name,
    field_problem,
    float_spin_for,
    int_spin_for,
    range_text,
    setting_help,
    setting_label,
    spin_for,
)
from app.views.settings_numbers import FromNumbersTab
from app.views.settings_telephony import (
    PROVIDERS,
    TelephonyTab,
    api_key_change_problem,
    country_name,
)
from app.views.tasks import BackgroundTasks

__all__ = [  # the helpers and tables were defined here once: tests and scripts import them
    "AGENT_KINDS",
    "ENGINE_SECTIONS",
    "KIND_NAMES",
    "PROVIDERS",
    "EngineField",
    "SettingsDialog",
    "api_key_change_problem",
    "country_name",
    "field_name",
    "float_spin_for",
    "int_spin_for",
    "range_text",
    "setting_help",
    "setting_label",
    "spin_for",
]

log = logging.getLogger(__name__)


class SettingsDialog(QDialog):
    """Signals: saved() after the settings were stored; connectionChecked(bool, str) with the
    result of Test connection; numbersImported(str) with the import summary;
    credentialsLoaded() once the saved credentials were read from the keyring;
    settingsLoaded() once the stored settings were read and shown; recordsChanged() after
    the agents or numbers were read again. Every database call runs in the background."""

    saved = Signal()
    connectionChecked = Signal(bool, str)
    numbersImported = Signal(str)
    credentialsLoaded = Signal()
    settingsLoaded = Signal()
    recordsChanged = Signal()

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.resize(760, 600)
        self.context = context
        self.service = context.service
        # Every call runs on a detached thread (aio.in_thread): closing never waits.
        self.tasks = BackgroundTasks(self)
        self.tasks.setObjectName("settingsTaskRunner")
        # Read in the background (never on the GUI thread); Save waits for it.
        self.settings = AppSettings()
        self.settings_loaded = False
        self._saving = False

        layout = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("settingsTabs")
        self.telephony = TelephonyTab(lambda: self.settings, self.tasks, self)
        self.tabs.addTab(self.telephony, "Telephony")
        self.dialing = DialingTab(self.settings, self)
        self.tabs.addTab(self.dialing, "Dialing")
        self.agents = AgentsTab(self.service, self.tasks, self)
        self.tabs.addTab(self.agents, "Agents")
        self.numbers = FromNumbersTab(self.service, self.tasks, self.telephony, self.agents, self)
        self.tabs.addTab(self.numbers, "From numbers")
        self.do_not_call_tab = DoNotCallTab(
            context, self.tasks, self.settings.default_country, self
        )
        self.tabs.addTab(self.do_not_call_tab, "Do not call")
        self.database = DatabaseTab(context.database_url, self)
        self.tabs.addTab(self.database, "Database")
        layout.addWidget(self.tabs, 1)
        self.telephony.connectionChecked.connect(self.connectionChecked)
        self.telephony.credentialsLoaded.connect(self.credentialsLoaded)
        self.numbers.numbersImported.connect(self.numbersImported)
        for records in (self.agents, self.numbers):
            records.recordsChanged.connect(self.recordsChanged)
            records.failed.connect(self._error)
        for _key, widget in self._setting_fields():
            widget.installEventFilter(self)
        self._expose_fields()

        footer = QHBoxLayout()
        self.error_label = QLabel(self)
        self.error_label.setObjectName("settingsErrorLabel")
        self.error_label.setProperty("role", "error")
        self.error_label.setWordWrap(True)
        footer.addWidget(self.error_label, 1)
        self.save_button = QPushButton("Save", self)
        self.save_button.setObjectName("settingsSaveButton")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        footer.addWidget(self.save_button)
        cancel = QPushButton("Cancel", self)
        cancel.setObjectName("settingsCancelButton")
        cancel.clicked.connect(self.reject)
        footer.addWidget(cancel)
        layout.addLayout(footer)

        self.save_button.setEnabled(False)
        self._load_settings()
        self.refresh_agents()
        self.refresh_numbers()
        self.telephony.load_credentials()

    def _expose_fields(self) -> None:
        """The tabs' fields and actions as the dialog's own, as tests and QA scripts reach
        them (`dialog.cps_spin`, `dialog.engine_fields`, `dialog.add_agent()`; docs/qa.md)."""
        telephony, agents, numbers = self.telephony, self.agents, self.numbers
        self.provider_combo = telephony.provider_combo
        self.provider_hint = telephony.provider_hint
        self.twilio_box = telephony.twilio_box
        self.account_sid_field = telephony.account_sid_field
        self.token_field = telephony.token_field
        self.api_key_field = telephony.api_key_field
        self.test_button = telephony.test_button
        self.connection_label = telephony.connection_label
        self.concurrency_spin = telephony.concurrency_spin
        self.cps_spin = telephony.cps_spin
        self.country_combo = telephony.country_combo
        self.engine_fields = self.dialing.engine_fields
        self.agents_model = agents.agents_model
        self.agents_table = agents.agents_table
        self.toggle_agent_button = agents.toggle_agent_button
        self.agent_name_field = agents.agent_name_field
        self.agent_kind_combo = agents.agent_kind_combo
        self.agent_value_field = agents.agent_value_field
        self.agent_error_label = agents.agent_error_label
        self.add_agent_button = agents.add_agent_button
        self.numbers_model = numbers.numbers_model
        self.numbers_table = numbers.numbers_table
        self.import_label = numbers.import_label
        self.import_button = numbers.import_button
        self.number_field = numbers.number_field
        self.number_label_field = numbers.number_label_field
        self.number_error_label = numbers.number_error_label
        self.add_number_button = numbers.add_number_button
        self.database_field = self.database.database_field
        self.test_connection = telephony.test_connection
        self.refresh_agents = agents.refresh_agents
        self.add_agent = agents.add_agent
        self.toggle_agent = agents.toggle_agent
        self.refresh_numbers = numbers.refresh_numbers
        self.add_number = numbers.add_number
        self.import_from_twilio = numbers.import_from_twilio

    def provider(self) -> str:
        return self.telephony.provider()

    @property
    def credentials_ready(self) -> bool:
        return self.telephony.credentials_ready

    @property
    def saved_credentials(self) -> secrets.TwilioCredentials | None:
        return self.telephony.saved_credentials

    @saved_credentials.setter
    def saved_credentials(self, saved: secrets.TwilioCredentials | None) -> None:
        self.telephony.saved_credentials = saved

    # ----------------------------------------------------------------- loading
    def _load_settings(self) -> None:
        self.tasks.start("readSettings", self._read_settings(), owner=self)

    async def _read_settings(self) -> None:
        try:
            settings = await aio.in_thread(self.context.settings.load)
        except Exception as error:
            self._error(
                f"The settings could not be read: {error}. Check the database connection "
                "and open Settings again."
            )
            return
        self.settings = settings
        self.telephony.show_settings(settings)
        self.dialing.show_settings(settings)
        if self.credentials_ready:  # read first: the keyring's account fills what is empty
            self.telephony.show_saved_credentials()
        self.settings_loaded = True
        self.save_button.setEnabled(not self._saving)
        self.settingsLoaded.emit()

    # ----------------------------------------------------------------- checking fields
    def engine_values(self) -> dict[str, Any]:
        """The engine settings changed in the dialog (an untouched field keeps its stored
        value exactly, even one with more decimals than the field shows); raises
        SettingsError for a field whose text is not a value in its range."""
        for key, field in self._setting_fields():
            problem = field_problem(key, field)
            if problem is not None:
                raise SettingsError(problem)
        return self.dialing.changed_values()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A spin box left with a value it cannot take keeps what was typed (Qt would put
        the previous value back without a word) and the problem is shown at once."""
        if event.type() == QEvent.Type.FocusOut and self.isVisible():
            for key, field in self._setting_fields():
                if field is watched:
                    problem = field_problem(key, field)
                    if problem is not None:
                        self._error(problem)
                        return True
        return super().eventFilter(watched, event)

    def _setting_fields(self) -> list[tuple[str, QWidget]]:
        """Every setting's field, in the order of the tabs."""
        return [
            ("plan_concurrency", self.telephony.concurrency_spin),
            ("calls_per_second", self.telephony.cps_spin),
            *self.dialing.engine_fields.items(),
        ]

    def _show_problem_field(self, message: str) -> None:
        """Bring the field a settings problem names into view and give it the focus."""
        for key, field in self._setting_fields():
            spec = SETTING_SPECS[key]
            if spec.label in message or setting_label(spec) in message:
                tab = field.parentWidget()
                while tab is not None and self.tabs.indexOf(tab) < 0:
                    tab = tab.parentWidget()
                if tab is not None:
                    self.tabs.setCurrentWidget(tab)
                field.setFocus()
                if isinstance(field, QAbstractSpinBox):
                    field.selectAll()
                return

    # ----------------------------------------------------------------- save
    def save(self) -> None:
        """Store the settings (and the secret in the keyring, in the background); stays open
        on a problem."""
        self.telephony.with_credentials(self._save_now)

    def _save_now(self) -> None:
        if self._saving:
            return
        provider = self.provider()
        sid = self.telephony.account_sid_field.text().strip()
        secret = self.telephony.token_field.text().strip()
        key_sid = self.telephony.api_key_field.text().strip() or None
        saved = self.telephony.saved_credentials
        if provider == "twilio":
            if not sid:
                self._error("Enter the Twilio Account SID, or choose Simulation.")
                return
            if not secret and (saved is None or saved.account_sid != sid):
                self._error("Enter the Auth Token (or the API key secret) for this account.")
                return
        if not secret:
            problem = api_key_change_problem(saved, sid, key_sid)
            if problem:
                self._error(problem)
                return
            self._store_settings(sid)
            return

        self._saving = True
        self.save_button.setEnabled(False)
        self._error("Saving the credentials in the keyring…", role="hint")
        stored = secrets.TwilioCredentials(sid, secret, key_sid)
        self.tasks.start("storeCredentials", self._store_credentials(stored), owner=self)

    async def _store_credentials(self, stored: secrets.TwilioCredentials) -> None:
        try:
            await self.telephony.store_credentials(stored)
        except Exception as error:
            self._saving = False
            self.save_button.setEnabled(True)
            if isinstance(error, secrets.SecretStoreUnavailable | ValueError):
                self._error(str(error))
            else:
                log.error("the credentials could not be saved: %s", error)
                self._error(f"The credentials could not be saved in the keyring: {error}.")
            return
        self._saving = False
        self.save_button.setEnabled(True)
        self._store_settings(stored.account_sid)

    def _store_settings(self, sid: str) -> None:
        try:
            engine = self.engine_values()
            values = {
                "provider": self.provider(),
                "plan_concurrency": self.telephony.concurrency_spin.value(),
                "calls_per_second": self.telephony.cps_spin.value(),
                "default_country": str(self.telephony.country_combo.currentData()),
                "twilio_account_sid": sid,
                **engine,
            }
            replace(self.settings, **values).validate()  # the same checks as the store's
        except SettingsError as error:
            self._error(str(error))
            self._show_problem_field(str(error))
            return
        self._saving = True
        self.save_button.setEnabled(False)
        self.tasks.start("storeSettings", self._store_settings_now(values), owner=self)

    async def _store_settings_now(self, values: dict[str, Any]) -> None:
        try:
            await aio.in_thread(self.context.settings.update, **values)
        except Exception as error:
            self._saving = False
            self.save_button.setEnabled(True)
            if isinstance(error, SettingsError):
                self._error(str(error))
                self._show_problem_field(str(error))
            else:
                log.error("the settings could not be saved: %s", error)
                self._error(f"The settings could not be saved: {error}.")
            return
        self._saving = False
        self._error("", role="hint")
        self.saved.emit()
        self.accept()

    def _error(self, message: str, role: str = "error") -> None:
        """Shown under the tabs; the dialog stays open so nothing typed is lost."""
        self.error_label.setText(message)
        if self.error_label.property("role") != role:
            self.error_label.setProperty("role", role)
            self.error_label.style().unpolish(self.error_label)
            self.error_label.style().polish(self.error_label)

    def done(self, result: int) -> None:
        """Closing never waits: a Twilio request or a keyring call still running is
        cancelled and its answer ignored (the dialog stays responsive, see aio.in_thread)."""
        self.telephony.stop_waiting()
        self.tasks.shutdown(0)
        for _key, field in self._setting_fields():
            field.removeEventFilter(self)
        super().done(result)
