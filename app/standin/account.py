"""The simulated Twilio account behind the stand-in: its numbers, applications and calls,
and how it answers one API request (authentication, faults, limits, the resources).

`TwilioStandin` (app.standin.server) serves it over HTTP and adds the settings and
queries tests use; this class holds the state both share and answers requests from the
server's threads, under one lock.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from app.services.simulation import (
    SimulatedCall,
    SimulationSettings,
    call_rng,
    plan_call,
)
from app.standin.calls import _Call, _programmed_plan, _within
from app.standin.create_form import _checked_create
from app.standin.faults import (
    Faults,
    _check_create_delay,
    _check_rate_limit,
    _fault_streams,
    _queue_for_rate,
    _take_rate_slot,
)
from app.standin.records import Form, Program, RateLimitMode, RecordedRequest, request_log_line
from app.standin.resources import _account_json, _call_json, _page, _resource_json
from app.standin.shapes import (
    _METHODS,
    _Answer,
    _ApiError,
    _basic_auth,
    _error,
    _one,
    _parse_moment,
    _route,
    _sid,
)


class _TwilioAccount:
    """One Twilio account as the stand-in simulates it; answers requests (`_handle`)."""

    def __init__(
        self,
        *,
        account_sid: str | None,
        auth_token: str | None,
        clock: Callable[[], datetime],
        seed: int,
        settings: SimulationSettings | None,
        cps: float | None,
        rate_limit_mode: RateLimitMode,
        create_delay: float,
        create_delay_max: float | None,
        max_in_flight: int | None,
        record_requests: bool,
        request_log: Path | str | None,
    ) -> None:
        _check_rate_limit(cps, rate_limit_mode)
        _check_create_delay(create_delay, create_delay_max)
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("The limit of requests in flight must be at least 1.")
        self.account_sid = account_sid or _sid("AC", "standin-account", seed)
        self.auth_token = (
            auth_token or hashlib.sha256(f"standin-token/{seed}".encode()).hexdigest()[:32]
        )
        self.friendly_name = "Batch Calls stand-in account"
        self._clock = clock
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
        self._awaiting_callbacks: dict[str, _Call] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # set while the server stops: cuts waits short
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

    # -- request handling (called from the server's threads) ---------------------------
    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

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
        line = request_log_line(entry)
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
            with self._lock:
                status = self._account_status
            body = _account_json(self.account_sid, self.auth_token, self.friendly_name, status)
            return _Answer(200, body)
        if account_status != "active":
            raise _ApiError(401, 20005, "Account is not active")
        if name == "calls" and method == "POST":
            return self._create_call(form)
        if name == "calls":
            return self._list_calls(path, query)
        if name == "call" and method == "POST":
            return self._update_call(call_sid or "", form)
        if name == "call":
            call = self._get_call(call_sid or "")
            return _Answer(200, _call_json(call, self._now(), self.account_sid))
        with self._lock:
            source = {
                "incoming": (self._incoming, "incoming_phone_numbers"),
                "caller_ids": (self._caller_ids, "outgoing_caller_ids"),
                "applications": (self._applications, "applications"),
            }[name]
            items = [
                (len(source[0]) - i, _resource_json(name, item, self.account_sid))
                for i, item in enumerate(source[0])
            ]
        return _Answer(200, _page(path, query, source[1], items))

    # -- resources ---------------------------------------------------------------------
    def _create_call(self, form: Form) -> _Answer:
        with self._lock:
            owned = {n["phone_number"] for n in self._incoming if n["capabilities"]["voice"]}
            owned |= {n["phone_number"] for n in self._caller_ids}
            applications = {a["sid"] for a in self._applications}
        create = _checked_create(form, owned, applications)
        to, from_, callback = create.to, create.from_, create.callback
        now = self._now()
        with self._lock:
            if self._cps is not None and self._rate_limit_mode == "reject":
                _take_rate_slot(self._accepted_creates, self._cps, now)
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
                    ring_timeout=create.ring_timeout,
                    machine_detection=bool(create.machine_detection),
                    time_limit=create.time_limit,
                )
            if self._cps is not None and self._rate_limit_mode == "queue":
                plan, self._next_dial = _queue_for_rate(plan, now, self._next_dial, self._cps)
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
        return _Answer(201, _call_json(call, now, self.account_sid))

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
        return _Answer(200, _call_json(call, now, self.account_sid))

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
        page = _page(
            path, query, "calls", rows, render=lambda call: _call_json(call, now, self.account_sid)
        )
        return _Answer(200, page)
