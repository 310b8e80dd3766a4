"""The one small interface between the dialer engine and a telephony provider.

The engine only ever sees the types in this module: a provider places a call, reports
its state, lists calls for crash reconciliation and describes the account. Every
provider raises only `ProviderError` subclasses, already classified by what the engine
must do about them: retry later (transient), fail one recipient, or fail the whole
batch call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable
from xml.sax.saxutils import escape

logger = logging.getLogger(__name__)


class CallOutcome(StrEnum):
    """What a call means for its recipient (same values as the recipient statuses)."""

    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    NO_ANSWER = "NO_ANSWER"
    FAILED = "FAILED"


TWILIO_STATUS_TO_OUTCOME: Mapping[str, CallOutcome] = {
    "queued": CallOutcome.IN_PROGRESS,
    "initiated": CallOutcome.IN_PROGRESS,
    "ringing": CallOutcome.IN_PROGRESS,
    "in-progress": CallOutcome.IN_PROGRESS,
    "completed": CallOutcome.COMPLETED,
    "busy": CallOutcome.NO_ANSWER,
    "no-answer": CallOutcome.NO_ANSWER,
    "failed": CallOutcome.FAILED,
    "canceled": CallOutcome.FAILED,
}

_STATUS_MESSAGES: Mapping[str, str] = {
    "busy": "The line was busy.",
    "no-answer": "Nobody answered before the ring timeout.",
    "failed": "The call could not be connected (the carrier rejected or dropped it).",
    "canceled": "The call was canceled before it was answered.",
}


def outcome_for_status(raw_status: str) -> CallOutcome:
    """Map a Twilio-style call status to an outcome.

    An unknown status is treated as still in progress (and logged) so that the engine's
    reconciliation limit, not a guess, decides what happens to the recipient.
    """
    outcome = TWILIO_STATUS_TO_OUTCOME.get(raw_status)
    if outcome is None:
        logger.warning("Unknown call status %r; treating the call as still in progress", raw_status)
        return CallOutcome.IN_PROGRESS
    return outcome


def status_message(raw_status: str) -> str | None:
    """A supervisor-readable reason for a call that ended without a conversation."""
    return _STATUS_MESSAGES.get(raw_status)


_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def render_twiml(template: str, variables: Mapping[str, str]) -> str:
    """Fill `{{ var }}` placeholders with XML-escaped recipient variables.

    A missing variable becomes an empty string, never an error (SPEC §2). Names match
    exactly first, then case-insensitively, because CSV headers are typed by people.
    """
    folded = {key.casefold(): value for key, value in variables.items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        value = variables.get(name)
        if value is None:
            value = folded.get(name.casefold(), "")
        return escape(str(value), {'"': "&quot;", "'": "&apos;"})

    return _PLACEHOLDER.sub(replace, template)


@dataclass(frozen=True)
class AgentSpec:
    """What a recipient hears: a TwiML App SID, a voice URL or an inline TwiML template."""

    kind: Literal["application", "url", "twiml"]
    value: str

    def __post_init__(self) -> None:
        if self.kind not in ("application", "url", "twiml"):
            raise ValueError(
                f"Unknown agent kind {self.kind!r}: use 'application', 'url' or 'twiml'."
            )
        if not self.value.strip():
            raise ValueError("The agent has no TwiML App SID, URL or TwiML: fill it in.")


@dataclass(frozen=True)
class CallRequest:
    """One call the engine asks a provider to place."""

    to: str
    from_: str
    agent: AgentSpec
    variables: Mapping[str, str] = field(default_factory=dict)
    ring_timeout: int = 30
    machine_detection: bool = False
    time_limit: int | None = None

    def __post_init__(self) -> None:
        if not 5 <= self.ring_timeout <= 600:
            raise ValueError(
                f"Ring timeout {self.ring_timeout} s is out of range: use 5 to 600 seconds."
            )
        if self.time_limit is not None and self.time_limit < 1:
            raise ValueError(
                f"Call time limit {self.time_limit} s is invalid: use at least 1 second."
            )


@dataclass(frozen=True)
class CallState:
    """A provider's view of one call at one moment (all datetimes tz-aware UTC)."""

    call_id: str
    raw_status: str
    outcome: CallOutcome
    to: str
    from_: str
    created_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    answered_by: str | None
    error_code: int | None
    error_message: str | None
    #: How long the provider keeps the call waiting before dialing it (Twilio's
    #: `queue_time`): long waits mean the account's real rate is below the setting.
    queue_seconds: float | None = None


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    friendly_name: str
    status: str


@dataclass(frozen=True)
class NumberInfo:
    phone_number: str
    label: str
    source: Literal["incoming", "verified", "simulated"]


@dataclass(frozen=True)
class ApplicationInfo:
    sid: str
    friendly_name: str


class ProviderError(Exception):
    """A provider failure with a message a supervisor can act on.

    The message never contains a credential: providers redact before raising.
    """

    def __init__(
        self, message: str, *, code: int | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, "
            f"http_status={self.http_status!r})"
        )


class TransientProviderError(ProviderError):
    """Try again later: rate limiting, server errors, timeouts, lost connections.

    `outcome_unknown` is True when the request may have reached the provider and taken
    effect (a timeout or dropped connection after sending, a server error): before
    placing the same call again the engine must look for it with `find_calls`.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class RecipientProviderError(ProviderError):
    """About one destination only: that recipient FAILS and the batch call goes on."""


class FatalProviderError(ProviderError):
    """About the whole batch call (credentials, account, from number, agent): it FAILS."""


_SETTINGS_HINT = "Check the Twilio settings, then retry the batch call."

# One table: Twilio error code -> (class, what happened and what to do).
_CODE_TABLE: Mapping[int, tuple[type[ProviderError], str]] = {
    # Account and credentials.
    20003: (
        FatalProviderError,
        "Twilio rejected the credentials. Check the Account SID and Auth Token (or API key) "
        "in Settings.",
    ),
    20005: (
        FatalProviderError,
        "The Twilio account is not active (suspended or closed). Reactivate it in the Twilio "
        "Console, then retry the batch call.",
    ),
    20008: (
        FatalProviderError,
        "Twilio test credentials cannot do this. Enter the live Account SID and Auth Token "
        "in Settings.",
    ),
    # From number.
    21210: (
        FatalProviderError,
        "The from number is neither a Twilio number nor a verified caller ID of this "
        "account. Choose another from number.",
    ),
    21212: (
        FatalProviderError,
        "The from number is not a valid phone number or caller ID. Choose another from number.",
    ),
    21213: (FatalProviderError, "No from number was given. Choose a from number."),
    21603: (FatalProviderError, "No from number was given. Choose a from number."),
    21606: (
        FatalProviderError,
        "The from number cannot be used for this call. Choose another from number.",
    ),
    # Agent (what the recipient hears).
    21205: (
        FatalProviderError,
        "The agent's voice URL is missing or not a valid URL. Fix the agent.",
    ),
    21218: (
        FatalProviderError,
        "The agent's TwiML App SID is not an application of this Twilio account. Fix the agent.",
    ),
    11200: (
        FatalProviderError,
        "Twilio could not fetch the agent's instructions from its URL. Check that the URL answers.",
    ),
    21219: (
        FatalProviderError,
        "This Twilio trial account can only call verified numbers. Verify the numbers or "
        "upgrade the account.",
    ),
    21220: (FatalProviderError, "Twilio refused the request: the call is in an invalid state."),
    # One destination.
    21201: (RecipientProviderError, "The recipient has no phone number."),
    21211: (RecipientProviderError, "The recipient's phone number is not valid."),
    21214: (RecipientProviderError, "The recipient's phone number cannot be reached."),
    21215: (
        RecipientProviderError,
        "Calls to this country or area are not enabled in the account's geographic "
        "permissions (Twilio Console > Voice > Settings > Geo permissions).",
    ),
    21216: (RecipientProviderError, "Calls to this phone number are blocked by Twilio."),
    21217: (RecipientProviderError, "The recipient's phone number does not appear to be valid."),
    21612: (RecipientProviderError, "Twilio cannot route a call to this phone number."),
    13223: (RecipientProviderError, "The recipient's phone number has an invalid format."),
    13224: (RecipientProviderError, "The recipient's phone number is not valid."),
    13225: (RecipientProviderError, "Calls to this phone number are forbidden."),
    13226: (RecipientProviderError, "The recipient's phone number has an invalid country code."),
    13227: (
        RecipientProviderError,
        "International calls to this destination are not enabled for the account.",
    ),
    20404: (RecipientProviderError, "Twilio has no record of this call."),
    # Try again later.
    20429: (
        TransientProviderError,
        "Twilio is limiting the request rate (too many requests at once). Retrying.",
    ),
    20500: (TransientProviderError, "Twilio had an internal error. Retrying."),
    20503: (TransientProviderError, "Twilio is temporarily unavailable. Retrying."),
}


def classify_twilio_error(http_status: int | None, code: int | None, message: str) -> ProviderError:
    """Turn a Twilio answer (or a network failure: no status, no code) into the right error.

    A known Twilio code decides; otherwise the HTTP status does: 429 and 5xx and no answer at
    all are transient, 401/403 fatal, other 4xx are about the one recipient.
    """
    detail = message.strip()
    if code is not None and code in _CODE_TABLE:
        cls, text = _CODE_TABLE[code]
        full = f"{text} (Twilio error {code})"
    elif http_status is None:
        cls = TransientProviderError
        full = f"Twilio could not be reached: {detail or 'no answer'}. Retrying."
    elif http_status == 429:
        cls = TransientProviderError
        full = f"Twilio is limiting the request rate (HTTP 429{_code_suffix(code)}). Retrying."
    elif http_status >= 500:
        cls = TransientProviderError
        full = f"Twilio had a server error (HTTP {http_status}{_code_suffix(code)}). Retrying."
    elif http_status == 401:
        cls, text = _CODE_TABLE[20003]
        full = f"{text} (HTTP 401{_code_suffix(code)})"
    elif http_status == 403:
        cls = FatalProviderError
        full = (
            f"Twilio refused access (HTTP 403{_code_suffix(code)}): {detail}. "
            "Check the account's permissions in the Twilio Console."
        )
    else:
        cls = RecipientProviderError
        full = f"Twilio refused the call (HTTP {http_status}{_code_suffix(code)}): {detail}"
    if cls is TransientProviderError:
        unknown = http_status is not None and http_status >= 500
        return TransientProviderError(
            full, code=code, http_status=http_status, outcome_unknown=unknown
        )
    return cls(full, code=code, http_status=http_status)


def _code_suffix(code: int | None) -> str:
    return f", Twilio error {code}" if code is not None else ""


@dataclass(frozen=True)
class ProviderCapabilities:
    """What the engine may rely on about a provider, instead of recognising it by name."""

    #: Places no real call and answers inside this process at once (no network): its
    #: calls are polled inline rather than from a pool of threads.
    simulated: bool = False
    #: Its record of the calls it placed outlives this provider object (a remote
    #: service): the engine may build it again at any time (new credentials). A provider
    #: that keeps them only in memory is kept instead: that memory serves reconciliation.
    keeps_call_history: bool = True


#: A real telephony service reached over the network (Twilio).
REMOTE_SERVICE = ProviderCapabilities()
#: The simulation: no network, calls remembered only by this provider object.
SIMULATED = ProviderCapabilities(simulated=True, keeps_call_history=False)


class TelephonyProvider(Protocol):
    """What the dialer engine needs from a provider; every method is synchronous and
    thread-safe and raises only `ProviderError` subclasses."""

    name: str
    capabilities: ProviderCapabilities

    def place_call(self, request: CallRequest) -> CallState: ...

    def fetch_call(self, call_id: str) -> CallState: ...

    def find_calls(self, to: str, from_: str, since: datetime) -> list[CallState]: ...

    def check_credentials(self) -> AccountInfo: ...

    def list_from_numbers(self) -> list[NumberInfo]: ...

    def list_applications(self) -> list[ApplicationInfo]: ...


@runtime_checkable
class PreparesThreads(Protocol):
    """A provider with set-up for each thread that sends requests (an HTTP client, the
    modules it loads on first use): the engine's sending threads run it before their
    first request, so the moment the pacing counts a call from is its request's."""

    def prepare_thread(self) -> None:
        """Set this thread up for requests (no request is sent)."""
        ...


@runtime_checkable
class BulkCallTracking(Protocol):
    """A provider that reports many calls in a few requests (Twilio's Calls list,
    filtered by start time and status, paged), so that tracking 1,000 live calls does not
    take 1,000 requests a round."""

    def calls_since(self, since: datetime) -> list[CallState]:
        """Every call that started at or after `since`, and every call still queued."""
        ...
