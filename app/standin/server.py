"""The Twilio stand-in server: `TwilioStandin` serves the simulated account over HTTP on
its own threads, delivers status callbacks in the background, and offers the settings
(numbers, programs, faults, limits) and queries (requests, calls, peaks) tests use."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Literal

from app.services.simulation import SimulationSettings
from app.standin.account import _TwilioAccount
from app.standin.callbacks import _deliver_callback
from app.standin.calls import _FINAL_OUTCOMES, _Call
from app.standin.faults import Faults, _check_create_delay, _check_rate_limit, _fault_streams
from app.standin.http_layer import _Handler, _Server
from app.standin.peaks import _most_alive, _most_created_within
from app.standin.records import (
    CallbackDelivery,
    CallRecord,
    Program,
    RateLimitMode,
    RecordedRequest,
)
from app.standin.shapes import _sid

logger = logging.getLogger("app.standin.twilio_server")


def _real_clock(speed: float) -> Callable[[], datetime]:
    """Wall-clock time from now on, running `speed` times faster."""
    start_wall = datetime.now(UTC)
    start = time.monotonic()
    return lambda: start_wall + timedelta(seconds=(time.monotonic() - start) * speed)


class TwilioStandin(_TwilioAccount):
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
        super().__init__(
            account_sid=account_sid,
            auth_token=auth_token,
            clock=clock or _real_clock(speed),
            seed=seed,
            settings=settings,
            cps=cps,
            rate_limit_mode=rate_limit_mode,
            create_delay=create_delay,
            create_delay_max=create_delay_max,
            max_in_flight=max_in_flight,
            record_requests=record_requests,
            request_log=request_log,
        )
        self._host = host
        self._port = port
        self._callbacks: list[CallbackDelivery] = []
        self._callback_lock = threading.Lock()  # one delivery round at a time, in order
        self._callback_thread: threading.Thread | None = None
        self._callback_any_host = callback_any_host
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
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

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

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
                delivery = _deliver_callback(
                    call,
                    status,
                    at,
                    sequence,
                    now,
                    account_sid=self.account_sid,
                    auth_token=self.auth_token,
                    any_host=self._callback_any_host,
                )
                with self._lock:
                    self._callbacks.append(delivery)
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
        return _most_created_within(self.created_timestamps(), window)

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
        return _most_alive(spans, now)

    # -- status callbacks --------------------------------------------------------------
    def _deliver_callbacks_until_stopped(self) -> None:
        while not self._stopping.wait(0.02):
            try:
                self.deliver_callbacks()
            except Exception:  # a delivery bug must not stop the server silently
                logger.exception("Stand-in status callback delivery failed")
