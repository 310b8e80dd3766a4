"""Build the telephony provider the settings ask for: simulation, or Twilio with the
credentials from the keyring (or the worker's environment)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime

from app.services.secrets import SecretStoreUnavailable, load_twilio_credentials
from app.services.settings import AppSettings
from app.services.simulation import SimulationProvider
from app.services.telephony import FatalProviderError, TelephonyProvider
from app.services.twilio_provider import API_BASE_ENV, TwilioProvider

log = logging.getLogger(__name__)


def twilio_api_base(settings: AppSettings) -> str | None:
    """BATCHCALLS_TWILIO_API_BASE wins over the setting; None means Twilio itself."""
    return os.environ.get(API_BASE_ENV, "").strip() or settings.twilio_api_base.strip() or None


def build_provider(
    settings: AppSettings,
    *,
    clock: Callable[[], datetime] | None = None,
    status_callback_url: str | None = None,
) -> TelephonyProvider:
    """The provider for these settings; FatalProviderError says what to fix if it cannot
    be built (no credentials, no keyring). `status_callback_url`: Twilio posts call
    progress there (a worker that receives status callbacks)."""
    if settings.provider == "simulation":
        return SimulationProvider(
            clock or (lambda: datetime.now(UTC)), seed=settings.simulation_seed
        )
    if settings.provider != "twilio":
        raise FatalProviderError(
            f'Unknown telephony provider "{settings.provider}". Choose Simulation or Twilio '
            "in Settings."
        )
    try:
        credentials = load_twilio_credentials()
    except SecretStoreUnavailable as exc:
        raise FatalProviderError(str(exc)) from None
    except ValueError as exc:  # half-set environment variables
        raise FatalProviderError(str(exc)) from None
    if credentials is None:
        raise FatalProviderError(
            "No Twilio credentials are saved. Enter the Account SID and Auth Token (or an API "
            "key) in Settings, or switch to Simulation."
        )
    if settings.twilio_account_sid and settings.twilio_account_sid != credentials.account_sid:
        log.warning("the saved Twilio credentials belong to another account than the setting")
    base_url = twilio_api_base(settings)
    if credentials.api_key_sid:
        provider = TwilioProvider(
            credentials.account_sid,
            api_key_sid=credentials.api_key_sid,
            api_key_secret=credentials.secret,
            base_url=base_url,
        )
    else:
        provider = TwilioProvider(
            credentials.account_sid,
            credentials.secret,
            base_url=base_url,
            status_callback_url=status_callback_url,
        )
    log.info("telephony provider: %r", provider)
    return provider
