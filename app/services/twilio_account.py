"""The Twilio account without the window (SPEC section 11): a provider from the saved
credentials, what the account owns, and importing its numbers and TwiML apps as from
numbers and agents. `batchcalls twilio` and `numbers add` in Twilio mode use it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.services.batch_calls import BatchCallService, ValidationError
from app.services.providers import twilio_api_base
from app.services.secrets import SecretStoreUnavailable, load_twilio_credentials
from app.services.settings import AppSettings
from app.services.telephony import ApplicationInfo, FatalProviderError, NumberInfo
from app.services.twilio_provider import TwilioProvider

log = logging.getLogger(__name__)

#: Where an imported from number comes from (FromNumber.source).
NUMBER_SOURCES = {"incoming": "owned by the account", "verified": "a verified caller ID"}


@dataclass
class ImportSummary:
    """What an import added, what was there already, and what could not be used (why)."""

    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def saved_twilio_provider(settings: AppSettings) -> TwilioProvider:
    """A provider on the saved credentials (environment, else keyring), whatever the
    provider setting, so an account can be checked before switching to it.
    FatalProviderError says what to do when there are none."""
    try:
        credentials = load_twilio_credentials()
    except (SecretStoreUnavailable, ValueError) as exc:
        raise FatalProviderError(str(exc)) from None
    if credentials is None:
        raise FatalProviderError(
            'No Twilio credentials are saved. Run "batchcalls twilio login" (or enter them '
            "in Settings), or set BATCHCALLS_TWILIO_ACCOUNT_SID and "
            "BATCHCALLS_TWILIO_AUTH_TOKEN."
        )
    base_url = twilio_api_base(settings)
    if credentials.api_key_sid:
        return TwilioProvider(
            credentials.account_sid,
            api_key_sid=credentials.api_key_sid,
            api_key_secret=credentials.secret,
            base_url=base_url,
        )
    return TwilioProvider(credentials.account_sid, credentials.secret, base_url=base_url)


def account_number(numbers: Iterable[NumberInfo], e164: str) -> NumberInfo | None:
    """The account's own or verified number `e164`, if it has it."""
    return next((n for n in numbers if n.phone_number == e164), None)


def import_numbers(service: BatchCallService, numbers: Iterable[NumberInfo]) -> ImportSummary:
    """Each voice number of the account becomes (or stays) an active from number,
    labelled with where it comes from."""
    summary = ImportSummary()
    known = {n.phone_number for n in service.list_from_numbers()}
    for info in numbers:
        try:
            service.add_from_number(info.phone_number, info.label, source=info.source)
        except ValidationError as error:
            summary.skipped[info.phone_number] = str(error)
            log.info("number not imported: %s", error)
            continue
        (summary.already if info.phone_number in known else summary.added).append(info.phone_number)
    return summary


def import_applications(
    service: BatchCallService, applications: Iterable[ApplicationInfo]
) -> ImportSummary:
    """Each TwiML app becomes an agent of kind "application" named after it (its SID's
    end added when another agent has the name); one already imported is left alone."""
    summary = ImportSummary()
    agents = service.list_agents()
    existing = {a.value for a in agents}
    names = {a.name.casefold() for a in agents}
    for app in applications:
        if app.sid in existing:
            summary.already.append(app.sid)
            continue
        name = app.friendly_name.strip() or app.sid
        if name.casefold() in names:
            name = f"{name[:90]} ({app.sid[-6:]})"
        try:
            service.add_agent(name[:100], "application", app.sid)
        except ValidationError as error:
            summary.skipped[app.sid] = str(error)
            log.info("application not imported: %s", error)
            continue
        names.add(name.casefold())
        existing.add(app.sid)
        summary.added.append(app.sid)
    return summary
