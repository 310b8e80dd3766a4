"""Twilio credentials in the operating system's keyring, never in the database or logs.

A headless worker (or QA) without a keyring can pass them in the environment instead:
`BATCHCALLS_TWILIO_ACCOUNT_SID` and `BATCHCALLS_TWILIO_AUTH_TOKEN` (plus
`BATCHCALLS_TWILIO_API_KEY_SID` when the secret is an API key secret).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

logger = logging.getLogger(__name__)

SERVICE_NAME = "batchcalls"
_ENTRY = "twilio"
ACCOUNT_SID_ENV = "BATCHCALLS_TWILIO_ACCOUNT_SID"
AUTH_TOKEN_ENV = "BATCHCALLS_TWILIO_AUTH_TOKEN"
API_KEY_SID_ENV = "BATCHCALLS_TWILIO_API_KEY_SID"

_UNAVAILABLE = (
    "No secure password store (keyring) is available on this computer, so the Twilio "
    "credentials cannot be saved. On Linux, install and unlock GNOME Keyring or KWallet; "
    f"for a headless worker set {ACCOUNT_SID_ENV} and {AUTH_TOKEN_ENV} instead."
)


#: Backends that keep passwords in a file that anyone able to read it can decode
#: (keyrings.alt's PlaintextKeyring writes base64). Named, not imported: keyrings.alt is
#: not a dependency, and the check must work whichever of its versions is installed.
PLAINTEXT_BACKENDS = frozenset({"keyrings.alt.file.PlaintextKeyring"})


def _plaintext_refusal(backend: KeyringBackend) -> str:
    where = getattr(backend, "file_path", None)
    stored = f" ({where})" if where else ""
    return (
        f"The keyring in use, {type(backend).__name__}, keeps passwords in a plain file"
        f"{stored} that anyone who can read it can decode, so Batch Calls does not keep the "
        "Twilio credentials there. Use the system's keyring (GNOME Keyring or KWallet on "
        "Linux, Keychain on macOS, Credential Manager on Windows: unset "
        "PYTHON_KEYRING_BACKEND or uninstall keyrings.alt), or give a headless worker "
        f"{ACCOUNT_SID_ENV} and {AUTH_TOKEN_ENV} in its environment."
    )


def is_plaintext(backend: KeyringBackend) -> bool:
    """A backend (or, for keyring's chainer, any backend in its chain) that stores
    passwords in the clear."""
    chained = getattr(backend, "backends", None)
    if isinstance(chained, list | tuple):
        return any(is_plaintext(b) for b in chained)
    return any(
        f"{k.__module__}.{k.__qualname__}" in PLAINTEXT_BACKENDS for k in type(backend).__mro__
    )


class SecretStoreUnavailable(RuntimeError):
    """The keyring cannot be used; the message says what to do instead."""


@dataclass(frozen=True)
class TwilioCredentials:
    """An Account SID with its Auth Token, or with an API key SID and secret."""

    account_sid: str
    secret: str = field(repr=False)
    api_key_sid: str | None = None

    def provider_arguments(self) -> dict[str, str | None]:
        """Keyword arguments for `TwilioProvider(**...)`."""
        if self.api_key_sid:
            return {
                "account_sid": self.account_sid,
                "api_key_sid": self.api_key_sid,
                "api_key_secret": self.secret,
            }
        return {"account_sid": self.account_sid, "auth_token": self.secret}


def store_twilio_credentials(
    account_sid: str, secret: str, *, api_key_sid: str | None = None
) -> None:
    """Save the credentials in the keyring (one entry, so they change together)."""
    account_sid, secret = account_sid.strip(), secret.strip()
    if not account_sid or not secret:
        raise ValueError(
            "Enter both the Twilio Account SID and the Auth Token (or API key secret)."
        )
    payload = json.dumps(
        {"account_sid": account_sid, "api_key_sid": api_key_sid or None, "secret": secret}
    )
    backend = _backend()
    try:
        backend.set_password(SERVICE_NAME, _ENTRY, payload)
        stored = backend.get_password(SERVICE_NAME, _ENTRY)
    except keyring.errors.KeyringError as exc:
        raise SecretStoreUnavailable(f"{_UNAVAILABLE} ({type(exc).__name__})") from None
    if stored != payload:  # a keyring that silently drops what it is given
        raise SecretStoreUnavailable(_UNAVAILABLE)
    logger.info("Twilio credentials for account %s saved in the keyring", account_sid)


def load_twilio_credentials() -> TwilioCredentials | None:
    """The environment's credentials if set, else the keyring's, else None."""
    env_sid = os.environ.get(ACCOUNT_SID_ENV, "").strip()
    env_secret = os.environ.get(AUTH_TOKEN_ENV, "").strip()
    if env_sid or env_secret:
        if not (env_sid and env_secret):
            missing = AUTH_TOKEN_ENV if env_sid else ACCOUNT_SID_ENV
            raise ValueError(
                f"{missing} is not set: set both {ACCOUNT_SID_ENV} and {AUTH_TOKEN_ENV}, "
                "or neither to use the keyring."
            )
        key_sid = os.environ.get(API_KEY_SID_ENV, "").strip() or None
        return TwilioCredentials(env_sid, env_secret, key_sid)
    backend = _backend()
    try:
        raw = backend.get_password(SERVICE_NAME, _ENTRY)
    except keyring.errors.KeyringError as exc:
        raise SecretStoreUnavailable(f"{_UNAVAILABLE} ({type(exc).__name__})") from None
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return TwilioCredentials(
            str(data["account_sid"]), str(data["secret"]), data.get("api_key_sid") or None
        )
    except (ValueError, KeyError, TypeError):
        logger.warning("The saved Twilio credentials are unreadable; enter them again in Settings")
        return None


def clear_twilio_credentials() -> None:
    """Forget the saved credentials (nothing to do if none are saved)."""
    backend = _backend(plaintext_allowed=True)
    try:
        if backend.get_password(SERVICE_NAME, _ENTRY) is not None:
            backend.delete_password(SERVICE_NAME, _ENTRY)
    except keyring.errors.PasswordDeleteError:
        pass
    except keyring.errors.KeyringError as exc:
        raise SecretStoreUnavailable(f"{_UNAVAILABLE} ({type(exc).__name__})") from None
    logger.info("Twilio credentials removed from the keyring")


def _backend(*, plaintext_allowed: bool = False) -> KeyringBackend:
    """The keyring; a plaintext one only to remove what an older version stored there."""
    try:
        backend = keyring.get_keyring()
    except (keyring.errors.KeyringError, RuntimeError) as exc:
        raise SecretStoreUnavailable(f"{_UNAVAILABLE} ({type(exc).__name__})") from None
    if isinstance(backend, fail.Keyring | null.Keyring):
        raise SecretStoreUnavailable(_UNAVAILABLE)
    if not plaintext_allowed and is_plaintext(backend):
        raise SecretStoreUnavailable(_plaintext_refusal(backend))
    return backend
