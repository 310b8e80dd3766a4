"""A local HTTP server that speaks the part of Twilio's 2010-04-01 API this product uses.

Tests, QA and the dialer benchmark point the real `TwilioProvider` (and so the real
`twilio` package) at it with `BATCHCALLS_TWILIO_API_BASE`. Calls move through queued,
ringing, in-progress and a final status as the injected clock advances (the same plans
as simulation mode), outcomes can be programmed per destination, faults (429, 500,
delays, dropped connections) injected at seeded rates, and every request and call is
recorded for assertions.

For the dialer's harder cases it also has a create latency (`set_create_delay`, fixed
or drawn per create from a range, as real Twilio's varies), an
account rate limit that queues calls (a realistic `queue_time`) or refuses them with
Twilio's 429 / error 20429 and a `Retry-After` header (`set_rate_limit`), a limit on
requests in flight, status callbacks signed like Twilio's (`X-Twilio-Signature`), and a
request log that can also be written to a JSON-lines file.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from app.services.simulation import (
    E164,
    TERMINAL_STATUSES,
    TEST_NUMBER_ERRORS,
    TEST_NUMBER_MESSAGES,
    CallPlan,
    SimulatedCall,
    SimulationSettings,
    call_rng,
    plan_call,
)

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
MAGIC_FROM_NUMBER = "+15005550006"  # Twilio's test credentials accept it as a from number
_MORE_INFO = "https://www.twilio.com/docs/errors/{code}"
_FINAL_OUTCOMES = ("completed", "busy", "no-answer", "failed")
_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
RateLimitMode = Literal["queue", "reject"]

Form = Mapping[str, list[str]]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the stand-in received it (the password is never kept)."""

    method: str
    path: str
    query: Form
    form: Form
    content_type: str | None
    auth_user: str | None
    time: datetime
    status: int | None  # None: the connection was closed without an answer


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A snapshot of one created call: who, when, and the statuses it went through."""

    sid: str
    to: str
    from_: str
    created_at: datetime
    status: str
    ended_at: datetime | None
    timeline: tuple[tuple[str, datetime], ...]
    form: Form


@dataclass(frozen=True, slots=True)
class CallbackDelivery:
    """One status callback the stand-in sent (as Twilio would) and how it was answered."""

    call_sid: str
    url: str
    method: str
    params: Mapping[str, str]
    signature: str
    time: datetime
    status: int | None  # None: the receiver could not be reached
    error: str | None = None


@dataclass(frozen=True)
class Program:
    """A destination's scripted behaviour; `error_code` refuses the create instead."""

    outcome: Literal["completed", "busy", "no-answer", "failed"] = "completed"
    ring_seconds: float = 5.0
    talk_seconds: float = 30.0
    answered_by: str | None = None
    error_code: int | None = None


@dataclass(frozen=True)
class Faults:
    """Seeded fault injection; rates are per request and add up to at most 1.

    `drop_rate`: the connection is closed before the request is acted on.
    `lost_response_rate`: the request is acted on (a call is created) and then the
    connection is closed without an answer, the ambiguous case a dialer must reconcile.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    drop_rate: float = 0.0
    lost_response_rate: float = 0.0
    delay_seconds: float = 0.0
    seed: int = 0
    retry_after_seconds: int | None = None  # a Retry-After header on the injected 429s

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_500, self.drop_rate, self.lost_response_rate)
        if any(r < 0 for r in rates) or sum(rates) > 1:
            raise ValueError("Fault rates must be non-negative and add up to at most 1.")
        if self.delay_seconds < 0:
            raise ValueError("The fault delay must not be negative.")
        if self.retry_after_seconds is not None and self.retry_after_seconds < 0:
            raise ValueError("Retry-After must not be negative.")


@dataclass
class _Call:
    sid: str
    index: int
    to: str
    from_: str
    form: Form
    sim: SimulatedCall
    override: tuple[str, datetime] | None = None  # canceled / hung up by an update
    callback: _CallbackSpec | None = None
    callbacks_sent: int = 0  # how many of callback_events() were delivered (in order)
    #: The plan's timeline, worked out once (the plan never changes; an override does).
    planned: tuple[tuple[str, datetime], ...] = dataclasses.field(
        default=(), repr=False, compare=False
    )

    def timeline(self) -> list[tuple[str, datetime]]:
        if not self.planned:
            self.planned = tuple(self.sim.timeline())
        if self.override is None:
            return list(self.planned)
        status, at = self.override
        return [event for event in self.planned if event[1] < at] + [(status, at)]

    def progress(self, now: datetime) -> tuple[str, datetime | None, datetime | None]:
        """(status, start time, end time) at `now`, as the call's resource shows them."""
        events = self.timeline()
        status = "queued"
        for name, at in events:
            if at <= now:
                status = name
        ringing = self.sim.ringing_at
        started = (
            ringing
            if now >= ringing and (self.override is None or self.override[1] > ringing)
            else None
        )
        ended = events[-1][1] if status in TERMINAL_STATUSES else None
        return status, started, ended

    def status_at(self, now: datetime) -> str:
        status = "queued"
        for name, at in self.timeline():
            if now >= at:
                status = name
        return status

    def ended_at(self) -> datetime:
        return self.timeline()[-1][1]

    def callback_events(self) -> list[tuple[str, str, datetime]]:
        """(event, CallStatus, moment) of the status callbacks this call asked for."""
        if self.callback is None:
            return []
        events: list[tuple[str, str, datetime]] = []
        for status, at in self.timeline():
            if status == "queued":
                events.append(("initiated", "initiated", at))
            elif status == "ringing":
                events.append(("ringing", "ringing", at))
            elif status == "in-progress":
                events.append(("answered", "in-progress", at))
            else:
                events.append(("completed", status, at))
        return [event for event in events if event[0] in self.callback.events]

    def answered_at(self) -> datetime | None:
        for name, at in self.timeline():
            if name == "in-progress":
                return at
        return None

    def record(self, now: datetime) -> CallRecord:
        events = tuple(event for event in self.timeline() if event[1] <= now)
        status = events[-1][0] if events else "queued"
        ended = self.ended_at() if status in TERMINAL_STATUSES else None
        return CallRecord(
            self.sid, self.to, self.from_, self.sim.created_at, status, ended, events, self.form
        )


@dataclass(frozen=True)
class _CallbackSpec:
    url: str
    method: str
    events: frozenset[str]


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any] | None
    headers: tuple[tuple[str, str], ...] = ()


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.answer = _error(status, code, message)

    def with_retry_after(self, seconds: int) -> _ApiError:
        self.answer = dataclasses.replace(
            self.answer, headers=(*self.answer.headers, ("Retry-After", str(seconds)))
        )
        return self


def _error(status: int, code: int, message: str, *, retry_after: int | None = None) -> _Answer:
    body = {
        "code": code,
        "message": message,
        "more_info": _MORE_INFO.format(code=code),
        "status": status,
    }
    headers: tuple[tuple[str, str], ...] = ()
    if status == 401:
        headers = (("WWW-Authenticate", 'Basic realm="Twilio API"'),)
    if retry_after is not None:
        headers = (("Retry-After", str(retry_after)),)
    return _Answer(status, body, headers)


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's X-Twilio-Signature: HMAC-SHA1 of the URL and the sorted POST parameters."""
    payload = url + "".join(key + params[key] for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _sid(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()
    return prefix + digest[:32]


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment.astimezone(UTC)) if moment is not None else None


def _real_clock(speed: float) -> Callable[[], datetime]:
    """Wall-clock time from now on, running `speed` times faster."""
    start_wall = datetime.now(UTC)
    start = time.monotonic()
    return lambda: start_wall + timedelta(seconds=(time.monotonic() - start) * speed)


class TwilioStandin:
    """The stand-in server; use it as a context manager (or `start()` / `stop()`)."""

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
        speed: float = 1.0,
        seed: int = 0,
        settings: SimulationSettings | None = None,
        cps: float | None = None,
        rate_limit_mode: RateLimitMode = "queue",
        create_delay: float = 0.0,
        create_delay_max: float | None = None,
        max_in_flight: int | None = None,
        record_requests: bool = True,
        request_log: Path | str | None = None,
        callback_any_host: bool = False,
    ) -> None:
        if speed <= 0:
            raise ValueError("The stand-in speed must be positive (1.0 = real time).")
        _check_rate_limit(cps, rate_limit_mode)
        _check_create_delay(create_delay, create_delay_max)
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("The limit of requests in flight must be at least 1.")
        self.account_sid = account_sid or _sid("AC", "standin-account", seed)
        self.auth_token = (
            auth_token or hashlib.sha256(f"standin-token/{seed}".encode()).hexdigest()[:32]
        )
        self.friendly_name = "Batch Calls stand-in account"
        self._host = host
        self._port = port
        self._clock = clock or _real_clock(speed)
        self._seed = seed
        self._settings = settings or SimulationSettings()
        self._cps = cps
        self._rate_limit_mode: RateLimitMode = rate_limit_mode
        self._create_delay = create_delay
        self._create_delay_max = create_delay_max
        self._delay_rng = random.Random(f"create-delay/{seed}")
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._accepted_creates: deque[datetime] = deque()  # the last second's, "reject" mode
        self._record_requests = record_requests
        self._request_log_path = Path(request_log) if request_log is not None else None
        self._request_log_lock = threading.Lock()
        self._callbacks: list[CallbackDelivery] = []
        self._callback_lock = threading.Lock()  # one delivery round at a time, in order
        self._callback_thread: threading.Thread | None = None
        self._awaiting_callbacks: dict[str, _Call] = {}
        self._callback_any_host = callback_any_host
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._account_status = "active"
        self._api_keys: dict[str, str] = {}
        self._incoming: list[dict[str, Any]] = []
        self._caller_ids: list[dict[str, Any]] = []
        self._applications: list[dict[str, Any]] = []
        self._programs: dict[str, list[Program]] = {}
        self._faults = Faults()
        self._fault_rngs = _fault_streams(0)
        self._requests: list[RecordedRequest] = []
        self._calls: list[_Call] = []
        self._calls_by_sid: dict[str, _Call] = {}
        self._next_dial: datetime | None = None
        self.add_incoming_number("+14155550100", "Main line")
        self.add_incoming_number("+14155550101", "SMS only", voice=False)
        self.add_caller_id("+14155550199", "Verified office phone")
        self.default_application_sid = self.add_application("Batch Calls demo agent")

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> TwilioStandin:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self._host, self._port), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="twilioStandin"
        )
        self._thread.start()
        self._callback_thread = threading.Thread(
            target=self._deliver_callbacks_until_stopped, name="twilioStandinCallbacks"
        )
        self._callback_thread.start()
        logger.info("Twilio stand-in listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        thread.join()
        if self._callback_thread is not None:
            self._callback_thread.join()
            self._callback_thread = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections hold a thread each
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()  # joins the request threads
        self._server = self._thread = None

    def __enter__(self) -> TwilioStandin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("The Twilio stand-in is not running: call start() first.")
        return f"http://{self._host}:{self._server.server_port}"

    # -- configuration -----------------------------------------------------------------
    def add_incoming_number(
        self, phone_number: str, friendly_name: str | None = None, *, voice: bool = True
    ) -> str:
        sid = _sid("PN", "incoming", phone_number)
        with self._lock:
            self._incoming.append(
                {
                    "sid": sid,
                    "phone_number": phone_number,
                    "friendly_name": friendly_name or phone_number,
                    "capabilities": {"voice": voice, "sms": True, "mms": False, "fax": False},
                }
            )
        return sid

    def add_caller_id(self, phone_number: str, friendly_name: str | None = None) -> str:
        sid = _sid("PN", "caller-id", phone_number)
        with self._lock:
            self._caller_ids.append(
                {
                    "sid": sid,
                    "phone_number": phone_number,
                    "friendly_name": friendly_name or phone_number,
                }
            )
        return sid

    def add_application(self, friendly_name: str) -> str:
        with self._lock:
            sid = _sid("AP", "application", len(self._applications), friendly_name)
            self._applications.append({"sid": sid, "friendly_name": friendly_name})
        return sid

    def add_api_key(self, key_sid: str, secret: str) -> None:
        with self._lock:
            self._api_keys[key_sid] = secret

    def set_account_status(self, status: Literal["active", "suspended", "closed"]) -> None:
        """A suspended or closed account answers every call request with error 20005."""
        with self._lock:
            self._account_status = status

    def program(
        self,
        to: str,
        *,
        outcome: Literal["completed", "busy", "no-answer", "failed"] = "completed",
        ring_seconds: float = 5.0,
        talk_seconds: float = 30.0,
        answered_by: str | None = None,
        error_code: int | None = None,
    ) -> None:
        """Script the next call to `to`. Programs are used in order; the last one repeats."""
        if outcome not in _FINAL_OUTCOMES:
            raise ValueError(
                f"Unknown outcome {outcome!r}: use one of {', '.join(_FINAL_OUTCOMES)}."
            )
        if ring_seconds < 0 or talk_seconds < 0:
            raise ValueError("Ring and talk times must not be negative.")
        with self._lock:
            self._programs.setdefault(to, []).append(
                Program(outcome, ring_seconds, talk_seconds, answered_by, error_code)
            )

    def faults(
        self,
        *,
        rate_429: float = 0.0,
        rate_500: float = 0.0,
        drop_rate: float = 0.0,
        lost_response_rate: float = 0.0,
        delay_seconds: float = 0.0,
        seed: int = 0,
        retry_after_seconds: int | None = None,
    ) -> None:
        """Inject faults from now on (no arguments: none)."""
        faults = Faults(
            rate_429,
            rate_500,
            drop_rate,
            lost_response_rate,
            delay_seconds,
            seed,
            retry_after_seconds,
        )
        with self._lock:
            self._faults = faults
            self._fault_rngs = _fault_streams(seed)

    def set_create_delay(self, seconds: float, up_to: float | None = None) -> None:
        """Answer each call create `seconds` after creating the call (real Twilio: about
        0.1-0.3 s), so a client killed meanwhile has a call it never heard about. With
        `up_to`, each create's delay is drawn anew between the two (seeded)."""
        _check_create_delay(seconds, up_to)
        with self._lock:
            self._create_delay, self._create_delay_max = seconds, up_to

    def set_rate_limit(self, cps: float | None, mode: RateLimitMode = "queue") -> None:
        """The account's calls per second (None: unlimited). Beyond it Twilio queues the
        calls (`queue`: they ring later, shown by the create answer's `queue_time`), or,
        with `reject`, the create is answered 429 / error 20429 with `Retry-After`."""
        _check_rate_limit(cps, mode)
        with self._lock:
            self._cps, self._rate_limit_mode = cps, mode
            self._next_dial = None
            self._accepted_creates.clear()

    def set_max_in_flight(self, limit: int | None) -> None:
        """Answer 429 / 20429 to requests beyond `limit` being served at once (None: no
        limit), as Twilio limits an account's concurrent REST requests."""
        if limit is not None and limit < 1:
            raise ValueError("The limit of requests in flight must be at least 1.")
        with self._lock:
            self._max_in_flight = limit

    # -- queries for tests -------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def requests_in_flight(self) -> int:
        """Requests being answered now (a create's answer delay included)."""
        with self._lock:
            return self._in_flight

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def callbacks(self) -> list[CallbackDelivery]:
        """Every status callback sent so far, in the order sent."""
        with self._lock:
            return list(self._callbacks)

    def deliver_callbacks(self) -> int:
        """Send every status callback that is due by the stand-in's clock now, and return
        how many were sent. A background thread does this too; tests on a fake clock call
        it after moving the clock so the deliveries are done when it returns."""
        with self._callback_lock:
            now = self._now()
            due: list[tuple[_Call, str, str, datetime, int]] = []
            with self._lock:
                for call in list(self._awaiting_callbacks.values()):
                    events = call.callback_events()
                    sent = call.callbacks_sent
                    while sent < len(events) and events[sent][2] <= now:
                        event, status, at = events[sent]
                        due.append((call, event, status, at, sent))
                        sent += 1
                    call.callbacks_sent = sent
                    if sent >= len(events) and call.ended_at() <= now:
                        del self._awaiting_callbacks[call.sid]
            for call, _event, status, at, sequence in due:
                self._send_callback(call, status, at, sequence, now)
            return len(due)

    @property
    def calls(self) -> list[CallRecord]:
        """Every created call in creation order, as of the stand-in's clock now."""
        now = self._now()
        with self._lock:
            return [call.record(now) for call in self._calls]

    def call(self, sid: str) -> CallRecord:
        now = self._now()
        with self._lock:
            return self._calls_by_sid[sid].record(now)

    def calls_created_per_destination(self) -> Counter[str]:
        with self._lock:
            return Counter(call.to for call in self._calls)

    def created_timestamps(self) -> list[datetime]:
        with self._lock:
            return [call.sim.created_at for call in self._calls]

    def max_calls_created_within(self, window: timedelta) -> int:
        """The most calls created in any `window` (pacing: 1 s window = peak calls/s)."""
        stamps = sorted(self.created_timestamps())
        best = 0
        for end, stamp in enumerate(stamps):
            start = bisect.bisect_right(stamps, stamp - window, 0, end)
            best = max(best, end - start + 1)
        return best

    def active_calls_at(self, moment: datetime) -> int:
        """Calls created at or before `moment` that had not ended by then."""
        with self._lock:
            return sum(1 for call in self._calls if call.sim.created_at <= moment < call.ended_at())

    def max_concurrent_in_progress(self) -> int:
        """The most calls alive at once (from creation until a final status), so far.

        This is what the dialer's concurrency limit counts: a recipient is IN_PROGRESS
        from the moment its call is requested until the call ends.
        """
        now = self._now()
        with self._lock:
            spans = [(call.sim.created_at, call.ended_at()) for call in self._calls]
        events: list[tuple[datetime, int]] = []
        for created, ended in spans:
            if created > now:
                continue
            events.append((created, 1))
            if ended <= now:
                events.append((ended, -1))
        events.sort(key=lambda event: (event[0], event[1]))  # ends before starts at a tie
        best = current = 0
        for _, delta in events:
            current += delta
            best = max(best, current)
        return best

    # -- status callbacks --------------------------------------------------------------
    def _deliver_callbacks_until_stopped(self) -> None:
        while not self._stopping.wait(0.02):
            try:
                self.deliver_callbacks()
            except Exception:  # a delivery bug must not stop the server silently
                logger.exception("Stand-in status callback delivery failed")

    def _send_callback(
        self, call: _Call, status: str, at: datetime, sequence: int, now: datetime
    ) -> None:
        """POST (or GET) Twilio's status callback parameters, signed with the auth token."""
        spec = call.callback
        assert spec is not None
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "Caller": call.from_,
            "CallbackSource": "call-progress-events",
            "Direction": "outbound-api",
            "From": call.from_,
            "SequenceNumber": str(sequence),
            "Timestamp": _rfc2822(at) or "",
            "To": call.to,
        }
        if status in TERMINAL_STATUSES:
            answered = call.answered_at()
            talk = (call.ended_at() - answered).total_seconds() if answered is not None else 0.0
            seconds = max(1, round(talk)) if answered is not None else 0
            params["CallDuration"] = str(seconds)
            params["Duration"] = str(math.ceil(seconds / 60))
        if call.sim.plan.answered_by and status in ("in-progress", "completed"):
            params["AnsweredBy"] = call.sim.plan.answered_by
        url = spec.url
        if spec.method == "GET":
            url += ("&" if "?" in url else "?") + urlencode(params)
            signature = twilio_signature(self.auth_token, url, {})
            request = urllib.request.Request(url, method="GET")
        else:
            signature = twilio_signature(self.auth_token, url, params)
            request = urllib.request.Request(
                url,
                data=urlencode(params).encode(),
                method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        request.add_header("X-Twilio-Signature", signature)
        request.add_header("User-Agent", "TwilioProxy/1.1")
        answered_status: int | None = None
        error: str | None = None
        if not (self._callback_any_host or _is_loopback(url)):
            error = "not sent: the stand-in calls back local addresses only"
        else:
            answered_status, error = _send(request)
        delivery = CallbackDelivery(
            call.sid, spec.url, spec.method, params, signature, now, answered_status, error
        )
        with self._lock:
            self._callbacks.append(delivery)

    # -- request handling (called from the server's threads) ---------------------------
    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _handle(self, method: str, raw_path: str, headers: Message, body: bytes) -> _Answer | None:
        """Answer one request; None means close the connection without an answer."""
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if body else {}
        user, password = _basic_auth(headers.get("Authorization"))
        is_create = method == "POST" and split.path.endswith("/Calls.json")
        with self._lock:
            faults = self._faults
            # Creates draw from their own stream: which creates fail does not depend on
            # how a client's polls interleave with them (threads).
            draw = self._fault_rngs[is_create].random()
            limit = self._max_in_flight
            refused = limit is not None and self._in_flight >= limit
            if not refused:
                self._in_flight += 1
            create_delay = self._draw_create_delay() if is_create else 0.0
        answer: _Answer | None
        if refused:
            answer = _error(429, 20429, "Too many concurrent requests")
        else:
            try:
                answer = self._answer(method, split.path, query, form, user, password, faults, draw)
                if create_delay and answer is not None and answer.status == 201:
                    self._stopping.wait(create_delay)  # created now, answered later
            finally:
                with self._lock:
                    self._in_flight -= 1
        if self._record_requests or self._request_log_path is not None:
            entry = RecordedRequest(
                method,
                split.path,
                query,
                form,
                headers.get("Content-Type"),
                user,
                self._now(),
                answer.status if answer is not None else None,
            )
            if self._record_requests:
                with self._lock:
                    self._requests.append(entry)
            if self._request_log_path is not None:
                self._write_request_log(entry)
        return answer

    def _draw_create_delay(self) -> float:
        """This create's answer delay (the caller holds the lock)."""
        low, high = self._create_delay, self._create_delay_max
        return low if high is None else self._delay_rng.uniform(low, high)

    def _answer(
        self,
        method: str,
        path: str,
        query: Form,
        form: Form,
        user: str | None,
        password: str | None,
        faults: Faults,
        draw: float,
    ) -> _Answer | None:
        if faults.delay_seconds:
            self._stopping.wait(faults.delay_seconds)
        cut = faults.drop_rate
        if draw < cut:
            return None
        if draw < (cut := cut + faults.rate_429):
            return _error(429, 20429, "Too Many Requests", retry_after=faults.retry_after_seconds)
        if draw < (cut := cut + faults.rate_500):
            return _error(500, 20500, "An internal server error has occurred")
        try:
            answer = self._dispatch(method, path, query, form, user, password)
        except _ApiError as exc:
            answer = exc.answer
        if draw < cut + faults.lost_response_rate:
            return None
        return answer

    def _write_request_log(self, entry: RecordedRequest) -> None:
        """One JSON line per request (never the password), for runs by hand and QA."""
        line = json.dumps(
            {
                "time": entry.time.isoformat(),
                "method": entry.method,
                "path": entry.path,
                "query": entry.query,
                "form": entry.form,
                "account": entry.auth_user,
                "status": entry.status,
            },
            sort_keys=True,
        )
        assert self._request_log_path is not None
        with self._request_log_lock, self._request_log_path.open("a", encoding="utf-8") as log:
            log.write(line + "\n")

    def _dispatch(
        self,
        method: str,
        path: str,
        query: Form,
        form: Form,
        user: str | None,
        password: str | None,
    ) -> _Answer:
        route = _route(path)
        if route is None:
            raise _ApiError(404, 20404, f"The requested resource {path} was not found")
        name, account, call_sid = route
        with self._lock:
            authenticated = (user == self.account_sid and password == self.auth_token) or (
                user is not None and user in self._api_keys and self._api_keys[user] == password
            )
            account_status = self._account_status
        if not authenticated or account != self.account_sid:
            raise _ApiError(401, 20003, "Authenticate")
        allowed = _METHODS[name]
        if method not in allowed:
            raise _ApiError(405, 20004, f"Method {method} not allowed on {path}")
        if name == "account":
            return _Answer(200, self._account_json())
        if account_status != "active":
            raise _ApiError(401, 20005, "Account is not active")
        if name == "calls" and method == "POST":
            return self._create_call(form)
        if name == "calls":
            return self._list_calls(path, query)
        if name == "call" and method == "POST":
            return self._update_call(call_sid or "", form)
        if name == "call":
            return _Answer(200, self._call_json(self._get_call(call_sid or ""), self._now()))
        with self._lock:
            source = {
                "incoming": (self._incoming, "incoming_phone_numbers"),
                "caller_ids": (self._caller_ids, "outgoing_caller_ids"),
                "applications": (self._applications, "applications"),
            }[name]
            items = [
                (len(source[0]) - i, self._resource_json(name, item))
                for i, item in enumerate(source[0])
            ]
        return _Answer(200, self._page(path, query, source[1], items))

    # -- resources ---------------------------------------------------------------------
    def _create_call(self, form: Form) -> _Answer:
        to = _one(form, "To").strip()
        from_ = _one(form, "From").strip()
        if not to:
            raise _ApiError(400, 21201, "No 'To' number is specified")
        if not from_:
            raise _ApiError(400, 21213, "No 'From' number is specified")
        if to in TEST_NUMBER_ERRORS:
            code = TEST_NUMBER_ERRORS[to]
            raise _ApiError(400, code, TEST_NUMBER_MESSAGES[code])
        if not E164.match(to):
            raise _ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not E164.match(from_):
            raise _ApiError(
                400, 21212, f"The 'From' number {from_} is not a valid phone number or caller ID."
            )
        with self._lock:
            owned = {n["phone_number"] for n in self._incoming if n["capabilities"]["voice"]}
            owned |= {n["phone_number"] for n in self._caller_ids}
            applications = {a["sid"] for a in self._applications}
        if from_ not in owned and from_ != MAGIC_FROM_NUMBER:
            raise _ApiError(
                400,
                21210,
                f"The source phone number provided, {from_}, is not yet verified for your account.",
            )
        application_sid, url, twiml = (
            _one(form, key) for key in ("ApplicationSid", "Url", "Twiml")
        )
        if application_sid:
            if application_sid not in applications:
                raise _ApiError(400, 21218, f"Invalid ApplicationSid {application_sid}")
        elif url:
            if not re.match(r"^https?://[^\s/]+", url):
                raise _ApiError(400, 21205, f"Url is not a valid URL: {url}")
        elif not twiml.strip():
            raise _ApiError(400, 21205, "Url parameter is required.")
        ring_timeout = min(max(_int_field(form, "Timeout", 60), 5), 600)
        time_limit = _int_field(form, "TimeLimit", 0) or None
        detection = _one(form, "MachineDetection")
        if detection and detection not in ("Enable", "DetectMessageEnd"):
            raise _ApiError(400, 21626, "MachineDetection must be 'Enable' or 'DetectMessageEnd'.")
        callback = _callback_spec(form)
        now = self._now()
        with self._lock:
            if self._cps is not None and self._rate_limit_mode == "reject":
                self._take_rate_slot(now)
            programs = self._programs.get(to)
            program = (programs.pop(0) if len(programs) > 1 else programs[0]) if programs else None
            if program is not None and program.error_code is not None:
                raise _ApiError(400, program.error_code, f"Programmed error for {to}")
            index = len(self._calls)
            if program is not None:
                plan = _programmed_plan(program, self._settings)
            else:
                plan = plan_call(
                    call_rng(self._seed, index),
                    self._settings,
                    ring_timeout=ring_timeout,
                    machine_detection=bool(detection),
                    time_limit=time_limit,
                )
            if self._cps is not None and self._rate_limit_mode == "queue":
                # Twilio queues calls beyond the account's rate: they ring later
                dial_at = max(now + timedelta(seconds=plan.queue_seconds), self._next_dial or now)
                self._next_dial = dial_at + timedelta(seconds=1 / self._cps)
                plan = dataclasses.replace(plan, queue_seconds=(dial_at - now).total_seconds())
            call = _Call(
                _sid("CA", self.account_sid, self._seed, index),
                index,
                to,
                from_,
                form,
                SimulatedCall(now, plan),
                callback=callback,
            )
            self._calls.append(call)
            self._calls_by_sid[call.sid] = call
            if callback is not None:
                self._awaiting_callbacks[call.sid] = call
        return _Answer(201, self._call_json(call, now))

    def _take_rate_slot(self, now: datetime) -> None:
        """Count a create against the account's rate, or refuse it (caller holds the lock)."""
        assert self._cps is not None
        window = timedelta(seconds=1)
        recent = self._accepted_creates
        while recent and (recent[0] <= now - window or recent[0] > now):
            recent.popleft()
        if len(recent) >= self._cps:
            wait = (recent[0] + window - now).total_seconds()
            raise _ApiError(
                429,
                20429,
                "Too Many Requests: calls are created faster than the account's rate",
            ).with_retry_after(max(1, math.ceil(wait)))
        recent.append(now)

    def _get_call(self, sid: str) -> _Call:
        with self._lock:
            call = self._calls_by_sid.get(sid)
        if call is None:
            raise _ApiError(404, 20404, f"The requested resource Call {sid} was not found")
        return call

    def _update_call(self, sid: str, form: Form) -> _Answer:
        call = self._get_call(sid)
        wanted = _one(form, "Status")
        if wanted not in ("canceled", "completed"):
            raise _ApiError(400, 21220, f"Status must be 'canceled' or 'completed', not {wanted!r}")
        now = self._now()
        with self._lock:
            current = call.status_at(now)
            if current in ("queued", "ringing") or (
                current == "in-progress" and wanted == "completed"
            ):
                call.override = ("canceled" if current != "in-progress" else "completed", now)
        return _Answer(200, self._call_json(call, now))

    def _list_calls(self, path: str, query: Form) -> _Answer:
        now = self._now()
        to, from_, status = (_one(query, key) for key in ("To", "From", "Status"))
        bounds = [
            (field, op, _parse_moment(_one(query, field + op), field + op))
            for field in ("StartTime", "EndTime")
            for op in ("", "<", ">")
            if _one(query, field + op)
        ]
        with self._lock:  # creates go on while a list is filtered and rendered
            calls = list(self._calls)
        # Filtered on the calls' own moments; only the page's calls are rendered.
        rows: list[tuple[int, _Call]] = []
        for call in reversed(calls):  # newest first, as Twilio lists
            if to not in ("", call.to) or from_ not in ("", call.from_):
                continue
            if status or bounds:
                current, started, ended = call.progress(now)
                if status and current != status:
                    continue
                if not all(_within(started, ended, *bound) for bound in bounds):
                    continue
            rows.append((call.index, call))
        page = self._page(
            path, query, "calls", rows, render=lambda call: self._call_json(call, now)
        )
        return _Answer(200, page)

    def _page(
        self,
        path: str,
        query: Form,
        key: str,
        rows: Sequence[tuple[int, Any]],
        render: Callable[[Any], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """One page of `rows` ((key, resource), keys descending) with Twilio's paging links;
        `render` turns the page's items into resources, if they are not resources yet.

        The next page's token names the last key shown, so resources created while a
        client pages through do not shift the pages it has not read yet.
        """
        page_size = _int_field(query, "PageSize", 50)
        page = _int_field(query, "Page", 0)
        if not 1 <= page_size <= 1000 or page < 0:
            raise _ApiError(400, 20001, "PageSize must be 1 to 1000 and Page at least 0")
        token = _one(query, "PageToken")
        if token:
            try:
                after = int(token.removeprefix("PA"))
            except ValueError:
                raise _ApiError(400, 20001, f"Invalid PageToken {token}") from None
            start = next((i for i, (k, _) in enumerate(rows) if k < after), len(rows))
        else:
            start = page * page_size
        chunk = rows[start : start + page_size]
        filters = {k: v[0] for k, v in query.items() if k not in ("PageSize", "Page", "PageToken")}

        def link(page_number: int, page_token: str | None = None) -> str:
            params = dict(filters, PageSize=page_size, Page=page_number)
            if page_token:
                params["PageToken"] = page_token
            return f"{path}?{urlencode(params)}"

        next_uri = None
        if chunk and start + len(chunk) < len(rows):
            next_uri = link(page + 1, f"PA{chunk[-1][0]}")
        return {
            key: [render(item) if render else item for _, item in chunk],
            "end": start + max(len(chunk) - 1, 0),
            "first_page_uri": link(0),
            "next_page_uri": next_uri,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": link(page - 1) if page > 0 else None,
            "start": start,
            "uri": link(page, token or None),
        }

    def _account_json(self) -> dict[str, Any]:
        with self._lock:
            status = self._account_status
        return {
            "auth_token": self.auth_token,  # Twilio includes it too: clients must not leak it
            "date_created": _rfc2822(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
            "date_updated": _rfc2822(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
            "friendly_name": self.friendly_name,
            "owner_account_sid": self.account_sid,
            "sid": self.account_sid,
            "status": status,
            "subresource_uris": {},
            "type": "Full",
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}.json",
        }

    def _call_json(self, call: _Call, now: datetime) -> dict[str, Any]:
        events = call.timeline()
        created = call.sim.created_at
        status, started, ended = call.progress(now)
        ringing = call.sim.ringing_at
        answered = call.answered_at()
        answered_now = answered is not None and now >= answered
        if ended is None:
            duration = None
        elif answered is not None:
            duration = str(max(1, round((ended - answered).total_seconds())))
        else:
            duration = "0"
        queue_ms = int((ringing - call.sim.created_at).total_seconds() * 1000)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call.sid}.json"
        return {
            "sid": call.sid,
            "date_created": _rfc2822(call.sim.created_at),
            "date_updated": _rfc2822(max((at for _, at in events if at <= now), default=created)),
            "parent_call_sid": None,
            "account_sid": self.account_sid,
            "to": call.to,
            "to_formatted": call.to,
            "from": call.from_,
            "from_formatted": call.from_,
            "phone_number_sid": None,
            "status": status,
            "start_time": _rfc2822(started),
            "end_time": _rfc2822(ended),
            "duration": duration,
            "price": None,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": call.sim.plan.answered_by if started and answered_now else None,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": str(queue_ms),
            "trunk_sid": None,
            "uri": uri,
            "subresource_uris": {},
        }

    def _resource_json(self, name: str, item: dict[str, Any]) -> dict[str, Any]:
        kind = {
            "incoming": "IncomingPhoneNumbers",
            "caller_ids": "OutgoingCallerIds",
            "applications": "Applications",
        }[name]
        stamp = _rfc2822(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
        body = dict(item, account_sid=self.account_sid, date_created=stamp, date_updated=stamp)
        body["uri"] = f"/{API_VERSION}/Accounts/{self.account_sid}/{kind}/{item['sid']}.json"
        if name == "applications":
            body["api_version"] = API_VERSION
        return body


def _callback_spec(form: Form) -> _CallbackSpec | None:
    """The create's StatusCallback, StatusCallbackMethod and StatusCallbackEvent."""
    url = _one(form, "StatusCallback").strip()
    if not url:
        return None
    if not re.match(r"^https?://[^\s/]+", url):
        raise _ApiError(400, 21609, f"StatusCallback is not a valid URL: {url}")
    method = (_one(form, "StatusCallbackMethod") or "POST").upper()
    if method not in ("GET", "POST"):
        raise _ApiError(400, 21609, "StatusCallbackMethod must be GET or POST.")
    events = {word for value in form.get("StatusCallbackEvent", []) for word in value.split()}
    unknown = events - set(_CALLBACK_EVENTS)
    if unknown:
        raise _ApiError(
            400,
            21626,
            f"StatusCallbackEvent {sorted(unknown)[0]!r} is not one of "
            + ", ".join(_CALLBACK_EVENTS),
        )
    return _CallbackSpec(url, method, frozenset(events or {"completed"}))


def _fault_streams(seed: int) -> tuple[random.Random, random.Random]:
    """(other requests, creates): two seeded streams of fault draws."""
    return random.Random(f"standin-faults/{seed}"), random.Random(f"standin-create-faults/{seed}")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _send(request: urllib.request.Request) -> tuple[int | None, str | None]:
    """(HTTP status, error) of one status callback; Twilio does not retry them."""
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError) as exc:
        return None, str(exc)


def _check_rate_limit(cps: float | None, mode: str) -> None:
    if cps is not None and cps <= 0:
        raise ValueError("The stand-in calls-per-second limit must be positive.")
    if mode not in ("queue", "reject"):
        raise ValueError(f"Unknown rate limit mode {mode!r}: use 'queue' or 'reject'.")


def _check_create_delay(seconds: float, up_to: float | None = None) -> None:
    if not 0 <= seconds <= 60:
        raise ValueError("The create delay must be 0 to 60 seconds.")
    if up_to is not None and not seconds <= up_to <= 60:
        raise ValueError("The longest create delay must be from the shortest to 60 seconds.")


def _programmed_plan(program: Program, settings: SimulationSettings) -> CallPlan:
    answered = program.outcome == "completed"
    return CallPlan(
        final_status=program.outcome,
        queue_seconds=settings.queue_seconds[0],
        ring_seconds=program.ring_seconds,
        talk_seconds=program.talk_seconds if answered else 0.0,
        answered_by=program.answered_by if answered else None,
    )


_ROUTE = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)"
    r"(?:/(?P<resource>Calls|IncomingPhoneNumbers|OutgoingCallerIds|Applications)"
    r"(?:/(?P<sid>[^/]+))?)?\.json$"
)
_RESOURCES = {
    None: "account",
    "Calls": "calls",
    "IncomingPhoneNumbers": "incoming",
    "OutgoingCallerIds": "caller_ids",
    "Applications": "applications",
}
_METHODS = {
    "account": ("GET",),
    "calls": ("GET", "POST"),
    "call": ("GET", "POST"),
    "incoming": ("GET",),
    "caller_ids": ("GET",),
    "applications": ("GET",),
}


def _route(path: str) -> tuple[str, str, str | None] | None:
    """(resource name, account SID, call SID) for a known path, else None."""
    match = _ROUTE.match(path)
    if match is None:
        return None
    resource, sid = match.group("resource"), match.group("sid")
    if sid is not None and resource != "Calls":
        return None
    name = "call" if sid is not None else _RESOURCES[resource]
    return name, match.group("account"), sid


def _one(form: Form, key: str) -> str:
    values = form.get(key)
    return values[-1] if values else ""


def _int_field(form: Form, key: str, default: int) -> int:
    raw = _one(form, key)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise _ApiError(400, 20001, f"{key} must be a whole number, not {raw!r}") from None


def _parse_moment(raw: str, name: str) -> datetime | date:
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise _ApiError(400, 20001, f"{name} must be YYYY-MM-DD or an ISO 8601 time") from None


def _within(
    started: datetime | None, ended: datetime | None, field: str, op: str, bound: datetime | date
) -> bool:
    """Twilio's StartTime / EndTime filters (`>` means on or after, `<` on or before), on
    the whole seconds the call's resource shows."""
    moment = started if field == "StartTime" else ended
    if moment is None:
        return False
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if isinstance(bound, datetime):
        return _compare(moment, op, bound)
    return _compare(moment.date(), op, bound)


def _compare(value: date, op: str, bound: date) -> bool:
    if op == ">":
        return value >= bound
    if op == "<":
        return value <= bound
    return value == bound


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.startswith("Basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, _, password = decoded.partition(":")
    return user, password


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close() once their sockets are shut down
    # socketserver's default backlog is 5: a burst of new connections beyond it had its
    # SYNs dropped and retried by the kernel a second later, so those creates arrived
    # (and were counted) together with the next second's.
    request_queue_size = 128
    standin: TwilioStandin

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("Stand-in connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one thread per connection, not per request
    disable_nagle_algorithm = True
    timeout = 60.0  # an idle keep-alive connection is closed after this
    server_version = "TwilioStandin/1.0"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.standin._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.standin._track(self.connection, add=False)
        super().finish()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.standin._handle(method, self.path, self.headers, body)
        if answer is None:
            self.close_connection = True
            return
        data = json.dumps(answer.body).encode() if answer.body is not None else b""
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """The base class writes every request to stderr; the benchmark makes 100,000."""
