"""Settings: the telephony provider (Simulation or Twilio, credentials in the keyring),
the plan's limits, the default country, the dialing engine's settings, agents and from
numbers, and where the database is. The engine settings' ranges, labels and help come
from the one table (app.services.setting_specs) that validation and the CLI read.

Secrets never reach the database: the auth token goes to the operating system's keyring
(app.services.secrets) and is shown masked; the account SID is stored as a plain setting
so the window can say which account it uses.

The keyring and Twilio are read and written off the GUI thread (a locked keyring or a
slow network must not freeze the window), on a detached task runner: closing the dialog
never waits for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import phonenumbers
from PySide6.QtCore import QEvent, QLocale, QObject, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.services import secrets
from app.services.batch_calls import ValidationError
from app.services.setting_specs import SETTING_SPECS
from app.services.settings import AppSettings, SettingsError
from app.views import aio, formatting
from app.views.context import AppContext
from app.views.do_not_call_tab import DoNotCallTab
from app.views.records_model import RecordsTableModel
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
from app.views.tasks import BackgroundTasks

__all__ = [  # defined here before they had a module of their own: tests import them
    "ENGINE_SECTIONS",
    "EngineField",
    "SettingsDialog",
    "field_name",
    "float_spin_for",
    "int_spin_for",
    "range_text",
    "setting_help",
    "setting_label",
    "spin_for",
]

log = logging.getLogger(__name__)

PROVIDERS = (("Simulation (no real calls)", "simulation"), ("Twilio", "twilio"))
AGENT_KINDS = (
    ("Spoken message (TwiML)", "twiml"),
    ("Voice webhook URL", "url"),
    ("TwiML App SID", "application"),
)
KIND_NAMES = {value: label for label, value in AGENT_KINDS}


def country_name(code: str) -> str:
    territory = QLocale.codeToTerritory(code)
    if territory == QLocale.Country.AnyTerritory:
        return code
    return QLocale.territoryToString(territory)


def api_key_change_problem(
    saved: secrets.TwilioCredentials | None, account_sid: str, key_sid: str | None
) -> str | None:
    """Why the saved secret cannot be kept when the API key SID was changed or cleared
    without typing a new secret (a secret belongs to one key, or is the Auth Token)."""
    if saved is None or saved.account_sid != account_sid or key_sid == saved.api_key_sid:
        return None
    if saved.api_key_sid is None:
        return (
            "You entered an API key SID: also enter that key's secret (the saved secret is "
            "the Auth Token), or clear the API key SID to keep using the Auth Token."
        )
    old = formatting.mask_sid(saved.api_key_sid)
    if key_sid is None:
        return (
            f"You cleared the API key SID: enter the Auth Token (the saved secret belongs "
            f"to API key {old}), or put the API key SID back."
        )
    return (
        f"The API key SID changed: enter the new key's secret (the saved secret belongs "
        f"to API key {old})."
    )


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
        self.saved_credentials: secrets.TwilioCredentials | None = None
        self._credentials_ready = False
        self._waiting_for_credentials: list[Callable[[], None]] = []
        self._saving = False

        layout = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("settingsTabs")
        self.tabs.addTab(self._build_provider_tab(), "Telephony")
        self.dialing = DialingTab(self.settings, self)
        self.tabs.addTab(self.dialing, "Dialing")
        self.engine_fields = self.dialing.engine_fields
        for _key, widget in self._setting_fields():
            widget.installEventFilter(self)
        self.tabs.addTab(self._build_agents_tab(), "Agents")
        self.tabs.addTab(self._build_numbers_tab(), "From numbers")
        self.do_not_call_tab = DoNotCallTab(
            context, self.tasks, self.settings.default_country, self
        )
        self.tabs.addTab(self.do_not_call_tab, "Do not call")
        self.database = DatabaseTab(context.database_url, self)
        self.tabs.addTab(self.database, "Database")
        self.database_field = self.database.database_field
        layout.addWidget(self.tabs, 1)

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
        self._provider_changed()
        self._load_settings()
        self.refresh_agents()
        self.refresh_numbers()
        self._load_credentials()

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
        self.provider_combo.setCurrentIndex(max(0, self.provider_combo.findData(settings.provider)))
        self.account_sid_field.setText(settings.twilio_account_sid)
        self.concurrency_spin.setValue(settings.plan_concurrency)
        self.cps_spin.setValue(settings.calls_per_second)
        self.dialing.show_settings(settings)
        self.country_combo.setCurrentIndex(
            max(0, self.country_combo.findData(settings.default_country))
        )
        if self._credentials_ready:  # read first: the keyring's account fills what is empty
            self._show_saved_credentials()
        self.settings_loaded = True
        self.save_button.setEnabled(not self._saving)
        self._provider_changed()
        self.settingsLoaded.emit()

    def _in_background(
        self,
        name: str,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        error_label: QLabel | None = None,
    ) -> None:
        """Run a service call in the background; a ValidationError goes to `error_label`."""
        self.tasks.start(name, self._service_call(name, work, done, error_label), owner=self)

    async def _service_call(
        self,
        name: str,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        error_label: QLabel | None,
    ) -> None:
        try:
            result = await aio.in_thread(work)
        except Exception as error:
            if isinstance(error, ValidationError) and error_label is not None:
                error_label.setText(" ".join(error.problems.values()))
            elif isinstance(error, SettingsError):
                self._error(str(error))
            else:
                log.error("%s failed: %s", name, error)
                self._error(f"That did not work: {error}. Check the database connection.")
            return
        done(result)

    # ----------------------------------------------------------------- saved credentials
    def _load_credentials(self) -> None:
        """Read the keyring in the background; what needs the saved secret waits for it."""
        self.tasks.start("loadCredentials", self._read_credentials(), owner=self)

    async def _read_credentials(self) -> None:
        try:
            saved = await aio.in_thread(secrets.load_twilio_credentials)
        except (secrets.SecretStoreUnavailable, ValueError) as error:
            log.info("no saved Twilio credentials: %s", error)
            saved = None
        except Exception as error:
            log.warning("the keyring could not be read: %s", error)
            saved = None
        self._credentials_read(saved)

    def _credentials_read(self, saved: secrets.TwilioCredentials | None) -> None:
        self.saved_credentials = saved
        self._credentials_ready = True
        self._show_saved_credentials()
        self.credentialsLoaded.emit()
        waiting, self._waiting_for_credentials = self._waiting_for_credentials, []
        for then in waiting:
            then()

    def _show_saved_credentials(self) -> None:
        """The keyring's account where the fields are empty, and the token's placeholder."""
        saved = self.saved_credentials
        if saved is not None:
            if not self.account_sid_field.text().strip():
                self.account_sid_field.setText(saved.account_sid)
            same_account = saved.account_sid == self.account_sid_field.text().strip()
            if same_account and not self.api_key_field.text().strip():
                self.api_key_field.setText(saved.api_key_sid or "")
        self.token_field.setPlaceholderText(
            "Saved in the keyring: leave empty to keep it" if saved else "Auth Token"
        )

    def _with_credentials(self, then: Callable[[], None]) -> None:
        """Run `then` now, or as soon as the saved credentials have been read."""
        if self._credentials_ready:
            then()
        else:
            self._waiting_for_credentials.append(then)

    @property
    def credentials_ready(self) -> bool:
        return self._credentials_ready

    # ----------------------------------------------------------------- construction
    def _build_provider_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("telephonyTab")
        outer = QVBoxLayout(tab)

        provider_box = QGroupBox("Telephony provider", tab)
        form = QFormLayout(provider_box)
        self.provider_combo = QComboBox(provider_box)
        self.provider_combo.setObjectName("providerCombo")
        for label, value in PROVIDERS:
            self.provider_combo.addItem(label, value)
        self.provider_combo.setCurrentIndex(
            max(0, self.provider_combo.findData(self.settings.provider))
        )
        self.provider_combo.currentIndexChanged.connect(self._provider_changed)
        form.addRow("Provider:", self.provider_combo)
        self.provider_hint = QLabel(provider_box)
        self.provider_hint.setObjectName("providerHint")
        self.provider_hint.setProperty("role", "hint")
        self.provider_hint.setWordWrap(True)
        form.addRow("", self.provider_hint)
        outer.addWidget(provider_box)

        self.twilio_box = QGroupBox("Twilio account", tab)
        self.twilio_box.setObjectName("twilioBox")
        form = QFormLayout(self.twilio_box)
        self.account_sid_field = QLineEdit(self.twilio_box)
        self.account_sid_field.setObjectName("accountSidField")
        self.account_sid_field.setPlaceholderText("AC followed by 32 characters")
        self.account_sid_field.setText(self.settings.twilio_account_sid)
        form.addRow("Account SID:", self.account_sid_field)
        self.token_field = QLineEdit(self.twilio_box)
        self.token_field.setObjectName("authTokenField")
        self.token_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_field.setPlaceholderText("Reading the keyring…")
        form.addRow("Auth token or API key secret:", self.token_field)
        self.api_key_field = QLineEdit(self.twilio_box)
        self.api_key_field.setObjectName("apiKeySidField")
        self.api_key_field.setPlaceholderText("Optional: SK… (then the secret above is the key's)")
        form.addRow("API key SID:", self.api_key_field)
        test_row = QHBoxLayout()
        self.test_button = QPushButton("Test connection", self.twilio_box)
        self.test_button.setObjectName("testConnectionButton")
        self.test_button.clicked.connect(self.test_connection)
        test_row.addWidget(self.test_button)
        self.connection_label = QLabel(self.twilio_box)
        self.connection_label.setObjectName("connectionResultLabel")
        self.connection_label.setWordWrap(True)
        test_row.addWidget(self.connection_label, 1)
        form.addRow("", test_row)
        secret_note = QLabel(
            "The token is kept in this computer's keyring, never in the database, logs or exports.",
            self.twilio_box,
        )
        secret_note.setProperty("role", "hint")
        secret_note.setWordWrap(True)
        form.addRow("", secret_note)
        outer.addWidget(self.twilio_box)

        limits = QGroupBox("Limits", tab)
        limits.setObjectName("limitsBox")
        form = QFormLayout(limits)
        self.concurrency_spin = int_spin_for("plan_concurrency", limits)
        self.concurrency_spin.setValue(self.settings.plan_concurrency)
        form.addRow("Plan concurrency (simultaneous calls):", self.concurrency_spin)
        self.cps_spin = float_spin_for("calls_per_second", limits)
        self.cps_spin.setValue(self.settings.calls_per_second)
        form.addRow("Calls started per second:", self.cps_spin)
        self.country_combo = QComboBox(limits)
        self.country_combo.setObjectName("defaultCountryCombo")
        for code in sorted(phonenumbers.SUPPORTED_REGIONS):
            self.country_combo.addItem(f"{code} – {country_name(code)}", code)
        self.country_combo.setCurrentIndex(
            max(0, self.country_combo.findData(self.settings.default_country))
        )
        self.country_combo.setToolTip("Turns national numbers in a CSV into international ones")
        form.addRow("Default country for phone numbers:", self.country_combo)
        outer.addWidget(limits)
        outer.addStretch(1)
        return tab

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
            ("plan_concurrency", self.concurrency_spin),
            ("calls_per_second", self.cps_spin),
            *self.engine_fields.items(),
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

    def _table(self, parent: QWidget, name: str, model: RecordsTableModel) -> QTableView:
        table = QTableView(parent)
        table.setObjectName(name)
        table.setModel(model)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setStretchLastSection(True)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        return table

    def _build_agents_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("agentsTab")
        outer = QVBoxLayout(tab)
        intro = QLabel(
            "An agent is what a recipient hears when they answer. Only active agents can be "
            "chosen for a new batch call.",
            tab,
        )
        intro.setWordWrap(True)
        outer.addWidget(intro)
        self.agents_model = RecordsTableModel(["Name", "Kind", "Active", "Content"], self)
        self.agents_model.setObjectName("agentsModel")
        self.agents_table = self._table(tab, "agentsTable", self.agents_model)
        for column, width in ((0, 160), (1, 160), (2, 60)):
            self.agents_table.setColumnWidth(column, width)
        outer.addWidget(self.agents_table, 1)
        self.toggle_agent_button = QPushButton("Activate / deactivate", tab)
        self.toggle_agent_button.setObjectName("toggleAgentActiveButton")
        self.toggle_agent_button.clicked.connect(self.toggle_agent)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.toggle_agent_button)
        outer.addLayout(row)

        add = QGroupBox("Add an agent", tab)
        add.setObjectName("addAgentBox")
        form = QFormLayout(add)
        self.agent_name_field = QLineEdit(add)
        self.agent_name_field.setObjectName("agentNameField")
        form.addRow("Name:", self.agent_name_field)
        self.agent_kind_combo = QComboBox(add)
        self.agent_kind_combo.setObjectName("agentKindCombo")
        for label, value in AGENT_KINDS:
            self.agent_kind_combo.addItem(label, value)
        self.agent_kind_combo.currentIndexChanged.connect(self._agent_kind_changed)
        form.addRow("Kind:", self.agent_kind_combo)
        self.agent_value_field = QLineEdit(add)
        self.agent_value_field.setObjectName("agentValueField")
        form.addRow("Content:", self.agent_value_field)
        buttons = QHBoxLayout()
        self.agent_error_label = QLabel(add)
        self.agent_error_label.setObjectName("agentErrorLabel")
        self.agent_error_label.setProperty("role", "error")
        self.agent_error_label.setWordWrap(True)
        buttons.addWidget(self.agent_error_label, 1)
        self.add_agent_button = QPushButton("Add agent", add)
        self.add_agent_button.setObjectName("addAgentButton")
        self.add_agent_button.clicked.connect(self.add_agent)
        buttons.addWidget(self.add_agent_button)
        form.addRow(buttons)
        outer.addWidget(add)
        self._agent_kind_changed()
        return tab

    def _build_numbers_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("numbersTab")
        outer = QVBoxLayout(tab)
        self.numbers_model = RecordsTableModel(["Number", "Label", "Source", "Active"], self)
        self.numbers_model.setObjectName("fromNumbersModel")
        self.numbers_table = self._table(tab, "fromNumbersTable", self.numbers_model)
        for column, width in ((0, 160), (1, 220), (2, 100)):
            self.numbers_table.setColumnWidth(column, width)
        outer.addWidget(self.numbers_table, 1)

        import_row = QHBoxLayout()
        self.import_label = QLabel(tab)
        self.import_label.setObjectName("importResultLabel")
        self.import_label.setWordWrap(True)
        import_row.addWidget(self.import_label, 1)
        self.import_button = QPushButton("Import from Twilio", tab)
        self.import_button.setObjectName("importFromTwilioButton")
        self.import_button.setToolTip(
            "Add the account's voice numbers, verified caller IDs and TwiML apps"
        )
        self.import_button.clicked.connect(self.import_from_twilio)
        import_row.addWidget(self.import_button)
        outer.addLayout(import_row)

        add = QGroupBox("Add a from number (simulation)", tab)
        add.setObjectName("addFromNumberBox")
        form = QFormLayout(add)
        self.number_field = QLineEdit(add)
        self.number_field.setObjectName("numberField")
        self.number_field.setPlaceholderText("+12025550100")
        form.addRow("Number:", self.number_field)
        self.number_label_field = QLineEdit(add)
        self.number_label_field.setObjectName("numberLabelField")
        self.number_label_field.setPlaceholderText("For example: Main line")
        form.addRow("Label:", self.number_label_field)
        buttons = QHBoxLayout()
        self.number_error_label = QLabel(add)
        self.number_error_label.setObjectName("numberErrorLabel")
        self.number_error_label.setProperty("role", "error")
        self.number_error_label.setWordWrap(True)
        buttons.addWidget(self.number_error_label, 1)
        self.add_number_button = QPushButton("Add number", add)
        self.add_number_button.setObjectName("addFromNumberButton")
        self.add_number_button.clicked.connect(self.add_number)
        buttons.addWidget(self.add_number_button)
        form.addRow(buttons)
        outer.addWidget(add)
        return tab

    # ----------------------------------------------------------------- provider
    def provider(self) -> str:
        return str(self.provider_combo.currentData())

    def _provider_changed(self, *_args: Any) -> None:
        twilio = self.provider() == "twilio"
        self.twilio_box.setEnabled(twilio)
        self.provider_hint.setText(
            "Calls are placed through your Twilio account: real phones ring."
            if twilio
            else "No account is needed and no phone rings: outcomes and durations are "
            "simulated. Use it to learn the application or to test a campaign."
        )

    def _provider_from_fields(self) -> Any:
        """A TwilioProvider from what is typed (or saved); raises ProviderError with a reason."""
        from app.services.providers import twilio_api_base
        from app.services.telephony import FatalProviderError
        from app.services.twilio_provider import TwilioProvider

        sid = self.account_sid_field.text().strip()
        secret = self.token_field.text().strip()
        key_sid = self.api_key_field.text().strip() or None
        saved = self.saved_credentials
        if not sid:
            raise FatalProviderError("Enter the Twilio Account SID (it starts with AC).")
        if not secret and saved is not None and saved.account_sid == sid:
            problem = api_key_change_problem(saved, sid, key_sid)
            if problem:
                raise FatalProviderError(problem)
            secret = saved.secret
        if not secret:
            raise FatalProviderError("Enter the Auth Token (or the API key secret).")
        base_url = twilio_api_base(self.settings)
        if key_sid:
            return TwilioProvider(
                sid, api_key_sid=key_sid, api_key_secret=secret, base_url=base_url
            )
        return TwilioProvider(sid, secret, base_url=base_url)

    def test_connection(self) -> None:
        """Check the credentials against Twilio in the background and show the answer."""
        self._with_credentials(self._test_connection_now)

    def _test_connection_now(self) -> None:
        from app.services.telephony import ProviderError

        try:
            provider = self._provider_from_fields()
        except ProviderError as error:
            self._connection_result(False, str(error))
            return
        self.test_button.setEnabled(False)
        self.connection_label.setText("Connecting to Twilio…")
        self.tasks.start("testConnection", self._check_connection(provider), owner=self)

    async def _check_connection(self, provider: Any) -> None:
        def check() -> Any:
            try:
                return provider.check_credentials()
            finally:
                provider.close()

        try:
            account = await aio.in_thread(check)
        except Exception as error:
            self.test_button.setEnabled(True)
            self._connection_result(False, str(error))
            return
        self.test_button.setEnabled(True)
        name = account.friendly_name or formatting.mask_sid(account.account_id)
        ok = account.status == "active"
        self._connection_result(
            ok,
            f"Connected to “{name}” ({account.status})."
            if ok
            else f"Connected to “{name}”, but the account is {account.status}: "
            "reactivate it in the Twilio Console.",
        )

    def _connection_result(self, ok: bool, message: str) -> None:
        self.connection_label.setText(("✔ " if ok else "✖ ") + message)
        self.connection_label.setProperty("role", "ok" if ok else "error")
        self.connection_label.style().unpolish(self.connection_label)
        self.connection_label.style().polish(self.connection_label)
        self.connectionChecked.emit(ok, message)

    # ----------------------------------------------------------------- agents and numbers
    def refresh_agents(self, then: Callable[[], None] | None = None) -> None:
        def show(agents: Any) -> None:
            self.agents_model.set_records(
                [
                    (a.name, KIND_NAMES.get(a.kind, a.kind), "Yes" if a.active else "No", a.value)
                    for a in agents
                ],
                agents,
            )
            if then is not None:
                then()
            self.recordsChanged.emit()

        self._in_background("readAgents", self.service.list_agents, show)

    def refresh_numbers(self) -> None:
        def show(numbers: Any) -> None:
            self.numbers_model.set_records(
                [
                    (n.phone_number, n.label, n.source.title(), "Yes" if n.active else "No")
                    for n in numbers
                ],
                numbers,
            )
            self.recordsChanged.emit()

        self._in_background("readNumbers", self.service.list_from_numbers, show)

    def _agent_kind_changed(self, *_args: Any) -> None:
        kind = self.agent_kind_combo.currentData()
        self.agent_value_field.setPlaceholderText(
            {
                "twiml": "<Response><Say>Hello {{name}}</Say></Response>",
                "url": "https://example.com/voice",
                "application": "AP followed by 32 characters",
            }[kind]
        )

    def add_agent(self) -> None:
        name = self.agent_name_field.text()
        kind = str(self.agent_kind_combo.currentData())
        value = self.agent_value_field.text().strip()

        def added(agent: Any) -> None:
            self.agent_error_label.setText(f"Added “{agent.name}”.")
            self.agent_name_field.clear()
            self.agent_value_field.clear()
            self.refresh_agents()

        self._in_background(
            "addAgent",
            lambda: self.service.add_agent(name, kind, value),
            added,
            self.agent_error_label,
        )

    def toggle_agent(self) -> None:
        index = self.agents_table.currentIndex()
        agent = self.agents_model.payload(index.row()) if index.isValid() else None
        if agent is None:
            self.agent_error_label.setText("Select an agent first.")
            return
        row = index.row()
        self._in_background(
            "toggleAgent",
            lambda: self.service.set_agent_active(agent.id, not agent.active),
            lambda _agent: self.refresh_agents(then=lambda: self.agents_table.selectRow(row)),
            self.agent_error_label,
        )

    def add_number(self) -> None:
        phone, label = self.number_field.text(), self.number_label_field.text()
        self.tasks.start("addNumber", self._add_number(phone, label), owner=self)

    async def _add_number(self, phone: str, label: str) -> None:
        try:
            number = await aio.in_thread(
                self.service.add_from_number, phone, label, source="simulated"
            )
        except ValidationError as error:
            text = " ".join(error.problems.values())
            if "phone_number" in error.problems:
                text += ". Enter it in international form, for example +12025550100."
            self.number_error_label.setText(text)
            return
        except Exception as error:
            self._error(f"The number could not be added: {error}.")
            return
        self.number_error_label.setText(f"Added {number.display}.")
        self.number_field.clear()
        self.number_label_field.clear()
        self.refresh_numbers()

    def import_from_twilio(self) -> None:
        """Add the account's voice numbers, caller IDs and TwiML apps (in the background)."""
        self._with_credentials(self._import_now)

    def _import_now(self) -> None:
        from app.services.telephony import ProviderError

        try:
            provider = self._provider_from_fields()
        except ProviderError as error:
            self.import_label.setText(f"✖ {error}")
            self.numbersImported.emit(str(error))
            return
        self.import_button.setEnabled(False)
        self.import_label.setText("Reading the Twilio account…")
        self.tasks.start("importFromTwilio", self._import(provider), owner=self)

    async def _import(self, provider: Any) -> None:
        def fetch() -> str:
            try:
                numbers, applications = provider.list_from_numbers(), provider.list_applications()
            finally:
                provider.close()
            return self._store_imported(numbers, applications)  # still in the background

        try:
            summary = await aio.in_thread(fetch)
        except Exception as error:
            self.import_button.setEnabled(True)
            self.import_label.setText(f"✖ {error}")
            self.numbersImported.emit(str(error))
            return
        self.import_button.setEnabled(True)
        self.import_label.setText(summary)
        self.refresh_numbers()
        self.refresh_agents()
        self.numbersImported.emit(summary)

    def _store_imported(self, numbers: list[Any], applications: list[Any]) -> str:
        """Add the imported numbers and applications (runs in the background)."""
        added = skipped = 0
        for info in numbers:
            try:
                self.service.add_from_number(info.phone_number, info.label, source=info.source)
                added += 1
            except ValidationError as error:
                skipped += 1
                log.info("number not imported: %s", error)
        existing = {a.value for a in self.service.list_agents()}
        names = {a.name.casefold() for a in self.service.list_agents()}
        apps = 0
        for app in applications:
            if app.sid in existing:
                continue
            name = app.friendly_name
            if name.casefold() in names:
                name = f"{name} ({app.sid[-6:]})"
            try:
                self.service.add_agent(name[:100], "application", app.sid)
                names.add(name.casefold())
                apps += 1
            except ValidationError as error:
                log.info("application not imported: %s", error)
        text = (
            f"✔ Imported {added} number{'s' if added != 1 else ''} and {apps} "
            f"TwiML app{'s' if apps != 1 else ''}."
        )
        if skipped:
            text += f" {skipped} number{'s' if skipped != 1 else ''} could not be used."
        return text

    # ----------------------------------------------------------------- save
    def save(self) -> None:
        """Store the settings (and the secret in the keyring, in the background); stays open
        on a problem."""
        self._with_credentials(self._save_now)

    def _save_now(self) -> None:
        if self._saving:
            return
        provider = self.provider()
        sid = self.account_sid_field.text().strip()
        secret = self.token_field.text().strip()
        key_sid = self.api_key_field.text().strip() or None
        saved = self.saved_credentials
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
            await aio.in_thread(
                secrets.store_twilio_credentials,
                stored.account_sid,
                stored.secret,
                api_key_sid=stored.api_key_sid,
            )
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
        self.saved_credentials = stored
        self.token_field.clear()
        self._store_settings(stored.account_sid)

    def _store_settings(self, sid: str) -> None:
        try:
            engine = self.engine_values()
            values = {
                "provider": self.provider(),
                "plan_concurrency": self.concurrency_spin.value(),
                "calls_per_second": self.cps_spin.value(),
                "default_country": str(self.country_combo.currentData()),
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
        self._waiting_for_credentials.clear()
        self.tasks.shutdown(0)
        for _key, field in self._setting_fields():
            field.removeEventFilter(self)
        super().done(result)
