"""Settings › Telephony: the provider (Simulation or Twilio), the Twilio account as typed
and as saved in the keyring, Test connection, and the plan's limits and default country.

Secrets never reach the database: the auth token lives in the operating system's keyring
(app.services.secrets) and is shown masked. The keyring and Twilio are read off the GUI
thread (a locked keyring or a slow network must not freeze the window), on the dialog's
detached task runner; what needs the saved secret (Test connection, Import from Twilio,
Save) waits for it with `with_credentials`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import phonenumbers
from PySide6.QtCore import QLocale, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.services import secrets
from app.services.settings import AppSettings
from app.views import aio, formatting
from app.views.settings_fields import float_spin_for, int_spin_for
from app.views.tasks import BackgroundTasks

log = logging.getLogger("app.views.settings_dialog")  # one logger for the whole dialog

PROVIDERS = (("Simulation (no real calls)", "simulation"), ("Twilio", "twilio"))


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


class TelephonyTab(QWidget):
    """Signals: connectionChecked(bool, str) with the result of Test connection;
    credentialsLoaded() once the saved credentials were read from the keyring."""

    connectionChecked = Signal(bool, str)
    credentialsLoaded = Signal()

    def __init__(
        self,
        settings: Callable[[], AppSettings],
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("telephonyTab")
        #: The dialog's settings as last read (Twilio's address for the stand-in).
        self._settings = settings
        self.tasks = tasks
        self.saved_credentials: secrets.TwilioCredentials | None = None
        self._credentials_ready = False
        self._waiting_for_credentials: list[Callable[[], None]] = []
        shown = settings()
        outer = QVBoxLayout(self)

        provider_box = QGroupBox("Telephony provider", self)
        form = QFormLayout(provider_box)
        self.provider_combo = QComboBox(provider_box)
        self.provider_combo.setObjectName("providerCombo")
        for label, value in PROVIDERS:
            self.provider_combo.addItem(label, value)
        self.provider_combo.setCurrentIndex(max(0, self.provider_combo.findData(shown.provider)))
        self.provider_combo.currentIndexChanged.connect(self._provider_changed)
        form.addRow("Provider:", self.provider_combo)
        self.provider_hint = QLabel(provider_box)
        self.provider_hint.setObjectName("providerHint")
        self.provider_hint.setProperty("role", "hint")
        self.provider_hint.setWordWrap(True)
        form.addRow("", self.provider_hint)
        outer.addWidget(provider_box)

        self.twilio_box = QGroupBox("Twilio account", self)
        self.twilio_box.setObjectName("twilioBox")
        form = QFormLayout(self.twilio_box)
        self.account_sid_field = QLineEdit(self.twilio_box)
        self.account_sid_field.setObjectName("accountSidField")
        self.account_sid_field.setPlaceholderText("AC followed by 32 characters")
        self.account_sid_field.setText(shown.twilio_account_sid)
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

        limits = QGroupBox("Limits", self)
        limits.setObjectName("limitsBox")
        form = QFormLayout(limits)
        self.concurrency_spin = int_spin_for("plan_concurrency", limits)
        self.concurrency_spin.setValue(shown.plan_concurrency)
        form.addRow("Plan concurrency (simultaneous calls):", self.concurrency_spin)
        self.cps_spin = float_spin_for("calls_per_second", limits)
        self.cps_spin.setValue(shown.calls_per_second)
        form.addRow("Calls started per second:", self.cps_spin)
        self.country_combo = QComboBox(limits)
        self.country_combo.setObjectName("defaultCountryCombo")
        for code in sorted(phonenumbers.SUPPORTED_REGIONS):
            self.country_combo.addItem(f"{code} – {country_name(code)}", code)
        self.country_combo.setCurrentIndex(
            max(0, self.country_combo.findData(shown.default_country))
        )
        self.country_combo.setToolTip("Turns national numbers in a CSV into international ones")
        form.addRow("Default country for phone numbers:", self.country_combo)
        outer.addWidget(limits)
        outer.addStretch(1)
        self._provider_changed()

    def show_settings(self, settings: AppSettings) -> None:
        """The stored provider, account, limits and country (read in the background)."""
        self.provider_combo.setCurrentIndex(max(0, self.provider_combo.findData(settings.provider)))
        self.account_sid_field.setText(settings.twilio_account_sid)
        self.concurrency_spin.setValue(settings.plan_concurrency)
        self.cps_spin.setValue(settings.calls_per_second)
        self.country_combo.setCurrentIndex(
            max(0, self.country_combo.findData(settings.default_country))
        )
        self._provider_changed()

    # ----------------------------------------------------------------- saved credentials
    def load_credentials(self) -> None:
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
        self.show_saved_credentials()
        self.credentialsLoaded.emit()
        waiting, self._waiting_for_credentials = self._waiting_for_credentials, []
        for then in waiting:
            then()

    def show_saved_credentials(self) -> None:
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

    async def store_credentials(self, stored: secrets.TwilioCredentials) -> None:
        """Save the credentials in the keyring (off the GUI thread); raises what it raised."""
        await aio.in_thread(
            secrets.store_twilio_credentials,
            stored.account_sid,
            stored.secret,
            api_key_sid=stored.api_key_sid,
        )
        self.saved_credentials = stored
        self.token_field.clear()

    def with_credentials(self, then: Callable[[], None]) -> None:
        """Run `then` now, or as soon as the saved credentials have been read."""
        if self._credentials_ready:
            then()
        else:
            self._waiting_for_credentials.append(then)

    def stop_waiting(self) -> None:
        """Forget what waits for the credentials (the dialog is closing)."""
        self._waiting_for_credentials.clear()

    @property
    def credentials_ready(self) -> bool:
        return self._credentials_ready

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

    def provider_from_fields(self) -> Any:
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
        base_url = twilio_api_base(self._settings())
        if key_sid:
            return TwilioProvider(
                sid, api_key_sid=key_sid, api_key_secret=secret, base_url=base_url
            )
        return TwilioProvider(sid, secret, base_url=base_url)

    def test_connection(self) -> None:
        """Check the credentials against Twilio in the background and show the answer."""
        self.with_credentials(self._test_connection_now)

    def _test_connection_now(self) -> None:
        from app.services.telephony import ProviderError

        try:
            provider = self.provider_from_fields()
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
