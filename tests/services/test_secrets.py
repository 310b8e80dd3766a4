"""Twilio credentials live in the keyring (an in-memory one here), never in logs."""

from __future__ import annotations

import logging

import keyring.core
import pytest
from keyring.backends import fail, null
from keyring.errors import KeyringLocked

from app.services.secrets import (
    ACCOUNT_SID_ENV,
    API_KEY_SID_ENV,
    AUTH_TOKEN_ENV,
    SERVICE_NAME,
    SecretStoreUnavailable,
    TwilioCredentials,
    clear_twilio_credentials,
    load_twilio_credentials,
    store_twilio_credentials,
)
from tests.conftest import MemoryKeyring

SID = "AC" + "b" * 32
TOKEN = "s3cr3t-token-value"


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("locked")


@pytest.fixture
def memory_keyring(monkeypatch) -> MemoryKeyring:
    backend = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    for name in (ACCOUNT_SID_ENV, AUTH_TOKEN_ENV, API_KEY_SID_ENV):
        monkeypatch.delenv(name, raising=False)
    return backend


def test_credentials_round_trip(memory_keyring):
    store_twilio_credentials(SID, TOKEN)

    assert load_twilio_credentials() == TwilioCredentials(SID, TOKEN)
    assert [service for service, _ in memory_keyring.entries] == [SERVICE_NAME]


def test_api_key_round_trip_and_provider_arguments(memory_keyring):
    store_twilio_credentials(SID, "key-secret", api_key_sid="SK" + "1" * 32)

    loaded = load_twilio_credentials()

    assert loaded is not None and loaded.api_key_sid == "SK" + "1" * 32
    assert loaded.provider_arguments() == {
        "account_sid": SID,
        "api_key_sid": "SK" + "1" * 32,
        "api_key_secret": "key-secret",
    }
    assert TwilioCredentials(SID, TOKEN).provider_arguments() == {
        "account_sid": SID,
        "auth_token": TOKEN,
    }


def test_nothing_saved_and_clear(memory_keyring):
    assert load_twilio_credentials() is None
    clear_twilio_credentials()  # nothing to clear: no error

    store_twilio_credentials(SID, TOKEN)
    clear_twilio_credentials()

    assert load_twilio_credentials() is None
    assert memory_keyring.entries == {}


def test_secret_is_never_logged_or_shown(memory_keyring, caplog):
    caplog.set_level(logging.DEBUG)

    store_twilio_credentials(SID, TOKEN)
    loaded = load_twilio_credentials()
    clear_twilio_credentials()

    assert TOKEN not in caplog.text
    assert SID in caplog.text  # the account is named, the secret is not
    assert TOKEN not in repr(loaded)


def test_empty_values_are_refused(memory_keyring):
    with pytest.raises(ValueError, match="both the Twilio Account SID and the Auth Token"):
        store_twilio_credentials(SID, "  ")


def test_unreadable_entry_asks_to_enter_them_again(memory_keyring, caplog):
    memory_keyring.set_password(SERVICE_NAME, "twilio", "not json")

    assert load_twilio_credentials() is None
    assert "enter them again" in caplog.text


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring(), LockedKeyring()])
def test_no_usable_keyring_gives_a_clear_message(monkeypatch, backend):
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)

    with pytest.raises(SecretStoreUnavailable, match=AUTH_TOKEN_ENV) as caught:
        store_twilio_credentials(SID, TOKEN)

    assert TOKEN not in str(caught.value)
    assert "GNOME Keyring" in str(caught.value)


def test_environment_credentials_for_a_headless_worker(monkeypatch):
    monkeypatch.setattr(keyring.core, "_keyring_backend", fail.Keyring())
    monkeypatch.setenv(ACCOUNT_SID_ENV, SID)
    monkeypatch.setenv(AUTH_TOKEN_ENV, TOKEN)

    assert load_twilio_credentials() == TwilioCredentials(SID, TOKEN)


def test_half_set_environment_is_refused(monkeypatch):
    monkeypatch.setenv(ACCOUNT_SID_ENV, SID)
    monkeypatch.delenv(AUTH_TOKEN_ENV, raising=False)

    with pytest.raises(ValueError, match=f"{AUTH_TOKEN_ENV} is not set"):
        load_twilio_credentials()
