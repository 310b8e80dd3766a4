"""Twilio as a `TelephonyProvider`, through the official `twilio` package.

The package is wrapped so that the engine sees only `ProviderError`s with messages a
supervisor can act on, every request has a bounded timeout, and no credential ever
appears in a message, a log line or a repr.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from app.services.telephony import (
    REMOTE_SERVICE,
    AccountInfo,
    ApplicationInfo,
    CallRequest,
    CallState,
    FatalProviderError,
    NumberInfo,
    ProviderError,
    TransientProviderError,
    classify_twilio_error,
    outcome_for_status,
    render_twiml,
    status_message,
)

logger = logging.getLogger(__name__)

API_BASE_ENV = "BATCHCALLS_TWILIO_API_BASE"
DEFAULT_API_BASE = "https://api.twilio.com"
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")
_FIND_PAGE_SIZE = 100
_LIST_PAGE_SIZE = 1000


class _Secret:
    """Holds a credential so that no repr, vars() dump or f-string can show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class _EnvironmentOnceSession(requests.Session):
    """`requests` reads the proxy and certificate settings from the environment at every
    request, scanning every environment variable twice (a third of a create's cost in
    the client): this session reads them once per host and keeps them (one session per
    client, clients are made anew with the provider)."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[str, dict[str, Any]] = {}

    def merge_environment_settings(
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if proxies or stream is not None or verify is not None or cert is not None:
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        parts = urlsplit(url)
        host = f"{parts.scheme}://{parts.netloc}"
        settings = self._environment.get(host)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[host] = settings
        return {**settings, "proxies": dict(settings["proxies"])}


class _QuietHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The package logs every request at INFO, query strings (phone numbers) included:
    keep only the method and path, at DEBUG. It also keeps the last answer's
    `Retry-After` (the package's exceptions drop the headers); one client per thread.
    Its session reads the environment's proxy settings once (_EnvironmentOnceSession)."""

    retry_after: float | None = None
    session: requests.Session

    def __init__(self, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        made = self.session
        session = _EnvironmentOnceSession()
        for prefix, adapter in made.adapters.items():  # the package's pool sizes
            session.mount(prefix, adapter)
        self.session = session

    def log_request(self, kwargs: dict[str, Any]) -> None:
        logger.debug("Twilio request: %s %s", kwargs["method"], urlsplit(kwargs["url"]).path)

    def log_response(self, status_code: int, response: Any) -> None:
        logger.debug("Twilio answer: HTTP %s", status_code)
        headers = getattr(response, "headers", None) or {}
        self.retry_after = _retry_after(headers.get("Retry-After")) if status_code == 429 else None


class TwilioProvider:
    """Places and tracks calls through Twilio's 2010-04-01 REST API."""

    name = "twilio"
    capabilities = REMOTE_SERVICE

    def __init__(
        self,
        account_sid: str,
        auth_token: str | None = None,
        *,
        api_key_sid: str | None = None,
        api_key_secret: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        status_callback_url: str | None = None,
    ) -> None:
        account_sid = account_sid.strip()
        if not _ACCOUNT_SID.match(account_sid):
            raise FatalProviderError(
                "The Twilio Account SID must be 'AC' followed by 32 hexadecimal characters. "
                "Copy it from the Twilio Console into Settings."
            )
        if api_key_sid or api_key_secret:
            if not (api_key_sid and api_key_secret):
                raise FatalProviderError(
                    "A Twilio API key needs both its SID and its secret. Fill in both in Settings."
                )
            if not _API_KEY_SID.match(api_key_sid.strip()):
                raise FatalProviderError(
                    "The Twilio API key SID must be 'SK' followed by 32 hexadecimal characters."
                )
            username, password = api_key_sid.strip(), api_key_secret
        elif auth_token:
            username, password = account_sid, auth_token
        else:
            raise FatalProviderError(
                "No Twilio Auth Token or API key is set. Enter one in Settings."
            )
        if timeout <= 0:
            raise ValueError("The Twilio request timeout must be a positive number of seconds.")
        base = (base_url or os.environ.get(API_BASE_ENV) or DEFAULT_API_BASE).strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FatalProviderError(
                f"The Twilio API address {_display_url(base)!r} is not an http(s) URL. "
                f"Fix {API_BASE_ENV} or the setting."
            )
        if status_callback_url is not None and not re.match(
            r"^https?://[^\s/]+", status_callback_url
        ):
            raise FatalProviderError(
                f"The status callback URL {_display_url(status_callback_url)!r} is not an "
                "http(s) URL."
            )
        self.account_sid = account_sid
        self.base_url = base
        self.timeout = timeout
        #: Twilio posts every call's progress here (a server with a public URL).
        self.status_callback_url = status_callback_url
        self._username = username
        self._password = _Secret(password)
        self._uses_api_key = username != account_sid
        self._local = threading.local()
        self._clients_lock = threading.Lock()
        self._clients: list[Client] = []

    def __repr__(self) -> str:
        auth = f"api_key={self._username!r}" if self._uses_api_key else "auth_token=<hidden>"
        return (
            f"TwilioProvider(account_sid={self.account_sid!r}, {auth}, "
            f"base_url={_display_url(self.base_url)!r})"
        )

    def close(self) -> None:
        """Close the HTTP connections of every thread (the provider stays usable)."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            session = getattr(client.http_client, "session", None)
            if session is not None:
                session.close()
        self._local = threading.local()

    def __enter__(self) -> TwilioProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- TelephonyProvider -------------------------------------------------------------
    def place_call(self, request: CallRequest) -> CallState:
        params: dict[str, Any] = {
            "to": request.to,
            "from_": request.from_,
            "timeout": request.ring_timeout,
        }
        agent = request.agent
        if agent.kind == "url":
            params["url"] = agent.value
        elif agent.kind == "twiml":
            params["twiml"] = render_twiml(agent.value, request.variables)
        else:
            params["application_sid"] = agent.value
        if request.machine_detection:
            params["machine_detection"] = "Enable"
        if request.time_limit is not None:
            params["time_limit"] = request.time_limit
        if self.status_callback_url:
            params["status_callback"] = self.status_callback_url
            params["status_callback_method"] = "POST"
            params["status_callback_event"] = ["answered", "completed"]
        with self._translate_errors("placing a call"):
            call = self._client().api.v2010.account.calls.create(**params)
            state = self._call_state(call)
        logger.debug("Twilio call %s created (%s)", state.call_id, state.raw_status)
        return state

    def fetch_call(self, call_id: str) -> CallState:
        with self._translate_errors("checking a call"):
            call = self._client().api.v2010.account.calls(call_id).fetch()
            return self._call_state(call)

    def find_calls(self, to: str, from_: str, since: datetime) -> list[CallState]:
        """Calls to `to` from `from_` created at or after `since`.

        Twilio filters on the start time, which a call still waiting in Twilio's queue
        does not have yet, so queued calls are asked for separately.
        """
        since = since.astimezone(UTC)
        with self._translate_errors("looking for earlier calls"):
            calls = self._client().api.v2010.account.calls
            found = {
                call.sid: call
                for call in calls.list(
                    to=to, from_=from_, start_time_after=since, page_size=_FIND_PAGE_SIZE
                )
            }
            for call in calls.list(to=to, from_=from_, status="queued", page_size=_FIND_PAGE_SIZE):
                found.setdefault(call.sid, call)
            states = [self._call_state(call) for call in found.values()]
        cutoff = since.replace(microsecond=0)  # Twilio's timestamps have whole seconds
        return sorted(
            (s for s in states if s.created_at is None or s.created_at >= cutoff),
            key=lambda s: s.created_at or cutoff,
        )

    def calls_since(self, since: datetime) -> list[CallState]:
        """Every call of the account that started at or after `since`, and every call
        still in Twilio's queue (it has no start time yet): pages of 1,000."""
        since = since.astimezone(UTC).replace(microsecond=0)
        with self._translate_errors("checking calls"):
            calls = self._client().api.v2010.account.calls
            found = {
                call.sid: call
                for call in calls.stream(start_time_after=since, page_size=_LIST_PAGE_SIZE)
            }
            for call in calls.stream(status="queued", page_size=_LIST_PAGE_SIZE):
                found.setdefault(call.sid, call)
            return [self._call_state(call) for call in found.values()]

    def check_credentials(self) -> AccountInfo:
        with self._translate_errors("checking the account"):
            account = self._client().api.v2010.accounts(self.account_sid).fetch()
            return AccountInfo(
                account_id=account.sid or self.account_sid,
                friendly_name=account.friendly_name or "",
                status=account.status or "",
            )

    def list_from_numbers(self) -> list[NumberInfo]:
        """Voice-capable incoming numbers, then verified caller IDs (no duplicates)."""
        numbers: dict[str, NumberInfo] = {}
        with self._translate_errors("listing the account's phone numbers"):
            account = self._client().api.v2010.account
            for number in account.incoming_phone_numbers.list(page_size=_LIST_PAGE_SIZE):
                capabilities = number.capabilities or {}
                if (
                    isinstance(capabilities, dict)
                    and capabilities.get("voice")
                    and number.phone_number
                ):
                    numbers.setdefault(
                        number.phone_number,
                        NumberInfo(
                            number.phone_number,
                            number.friendly_name or number.phone_number,
                            "incoming",
                        ),
                    )
            for caller_id in account.outgoing_caller_ids.list(page_size=_LIST_PAGE_SIZE):
                if caller_id.phone_number:
                    numbers.setdefault(
                        caller_id.phone_number,
                        NumberInfo(
                            caller_id.phone_number,
                            caller_id.friendly_name or caller_id.phone_number,
                            "verified",
                        ),
                    )
        return list(numbers.values())

    def list_applications(self) -> list[ApplicationInfo]:
        with self._translate_errors("listing the account's TwiML apps"):
            apps = self._client().api.v2010.account.applications.list(page_size=_LIST_PAGE_SIZE)
            return [
                ApplicationInfo(app.sid, app.friendly_name or app.sid) for app in apps if app.sid
            ]

    def prepare_thread(self) -> None:
        """This thread's client, with the call modules the package loads on first use
        (about 0.2 s, once): a sending thread builds it before its first request."""
        _ = self._client().api.v2010.account.calls

    # -- internals ---------------------------------------------------------------------
    def _client(self) -> Client:
        """One client (and HTTP session) per thread: the engine calls from worker threads."""
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = Client(
                self._username,
                self._password.reveal(),
                self.account_sid,
                # `environment or os.environ` inside the package: an empty dict would still
                # read TWILIO_* from the environment, so pass a harmless non-empty mapping.
                environment={"BATCHCALLS": "1"},
                http_client=_QuietHttpClient(timeout=self.timeout),
            )
            client.edge = None
            client.region = None
            client.api.base_url = self.base_url
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _call_state(self, call: Any) -> CallState:
        raw = call.status or "queued"
        outcome = outcome_for_status(raw)
        ended = call.end_time if raw in _TERMINAL else None
        duration = _int_or_none(call.duration) if raw in _TERMINAL else None
        answered = None
        if raw == "completed" and ended is not None and duration is not None:
            answered = ended - timedelta(seconds=duration)
        return CallState(
            call_id=call.sid,
            raw_status=raw,
            outcome=outcome,
            to=call.to or "",
            from_=call._from or "",
            created_at=call.date_created,
            answered_at=answered,
            ended_at=ended,
            duration_seconds=duration,
            answered_by=call.answered_by or None,
            error_code=None,
            error_message=status_message(raw),
            queue_seconds=_queue_seconds(call.queue_time),
        )

    @contextmanager
    def _translate_errors(self, action: str) -> Iterator[None]:
        """Turn everything the package and `requests` raise into a `ProviderError`."""
        try:
            yield
        except ProviderError:
            raise
        except TwilioRestException as exc:
            error = classify_twilio_error(exc.status, _int_or_none(exc.code), str(exc.msg))
            if isinstance(error, TransientProviderError) and error.retry_after is None:
                error.retry_after = self._client().http_client.retry_after
            self._raise(error)
        except TwilioServiceException as exc:
            detail = exc.detail or exc.title
            self._raise(classify_twilio_error(exc.status, _int_or_none(exc.code), str(detail)))
        except TwilioException as exc:  # list / page errors carry the raw response
            response = exc.args[1] if len(exc.args) > 1 else None
            status, code, message = _parse_error_answer(response)
            self._raise(classify_twilio_error(status, code, message))
        except requests.exceptions.ConnectTimeout:
            self._raise(
                TransientProviderError(
                    f"Twilio at {self._host()} did not accept a connection within "
                    f"{self.timeout:g} s while {action}. Check the network; retrying."
                )
            )
        except requests.exceptions.ReadTimeout:
            self._raise(
                TransientProviderError(
                    f"Twilio at {self._host()} did not answer within {self.timeout:g} s while "
                    f"{action}. Retrying.",
                    outcome_unknown=True,
                )
            )
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                message = (
                    f"Could not connect to Twilio at {self._host()} while {action} "
                    "(connection refused or host unknown). Check the network; retrying."
                )
                self._raise(TransientProviderError(message))
            self._raise(
                TransientProviderError(
                    f"The connection to Twilio at {self._host()} was lost while {action}. "
                    "Retrying.",
                    outcome_unknown=True,
                )
            )
        except requests.exceptions.RequestException as exc:
            self._raise(
                TransientProviderError(
                    f"Talking to Twilio at {self._host()} failed while {action} "
                    f"({type(exc).__name__}). Retrying.",
                    outcome_unknown=True,
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.debug("Unreadable Twilio answer while %s: %s", action, type(exc).__name__)
            self._raise(
                TransientProviderError(
                    f"Twilio sent an answer that could not be read while {action}. Retrying.",
                    outcome_unknown=True,
                )
            )

    def _raise(self, error: ProviderError) -> NoReturn:
        """Raise `error` with every credential blanked out and the cause dropped (the
        cause holds the request, whose headers carry the credentials)."""
        secret = self._password.reveal()
        if secret and secret in error.message:
            error.message = error.message.replace(secret, "********")
            error.args = (error.message,)
        logger.debug("Twilio error: %s", error.message)
        raise error from None

    def _host(self) -> str:
        return _display_url(self.base_url)


_TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


def _display_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return url.split("@")[-1]
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{host}{parts.path}"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _queue_seconds(value: object) -> float | None:
    milliseconds = _int_or_none(value)
    return milliseconds / 1000 if milliseconds is not None else None


def _int_or_none(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _parse_error_answer(response: Any) -> tuple[int | None, int | None, str]:
    """(HTTP status, Twilio code, message) from an error answer to a list request."""
    status = getattr(response, "status_code", None)
    text = getattr(response, "text", "") or ""
    try:
        body = json.loads(text)
    except ValueError:
        return status, None, "unreadable answer"
    if not isinstance(body, dict):
        return status, None, "unreadable answer"
    return status, _int_or_none(body.get("code")), str(body.get("message") or "")


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when no connection was made at all, so the request cannot have taken effect."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)
