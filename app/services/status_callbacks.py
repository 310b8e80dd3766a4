"""Twilio status callbacks, for a server deployment that Twilio can reach.

A desktop behind a firewall polls (SPEC section 5). A worker on a server with a public
URL can instead give Twilio a `StatusCallback` with every call: Twilio then posts each
call's progress to it, and the engine learns how calls ended without asking. Every post
is checked against Twilio's request signature (`X-Twilio-Signature`, HMAC-SHA1 with the
account's auth token, `twilio.request_validator`); anything unsigned or signed with
another token is refused with 403 and never used. Polling stays on as the safety net,
at a slower pace, so a lost callback only delays an outcome.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator

from app.services.telephony import CallState, outcome_for_status, status_message

log = logging.getLogger(__name__)

_TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_MAX_BODY = 64 * 1024


class StatusCallbackReceiver:
    """Receives Twilio's status callbacks on `listen` for the public URL `public_url`.

    `take()` hands the engine the latest state of each call reported since the last
    call; `rejected` counts posts refused for a missing or wrong signature.
    """

    def __init__(
        self, public_url: str, auth_token: str, *, listen: tuple[str, int] = ("0.0.0.0", 8080)
    ) -> None:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"The status callback URL {public_url!r} is not an http(s) URL.")
        if not auth_token:
            raise ValueError(
                "Status callbacks are checked with the account's auth token: set it "
                "(an API key cannot check Twilio's signature)."
            )
        self.public_url = public_url
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._path = parts.path or "/"
        self._validator = RequestValidator(auth_token)
        self._listen = listen
        self._lock = threading.Lock()
        self._states: dict[str, CallState] = {}
        self.received = 0
        self.rejected = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> StatusCallbackReceiver:
        if self._server is None:
            server = _Server(self._listen, _Handler)
            server.receiver = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="statusCallbackReceiver",
            )
            self._thread.start()
            log.info("receiving Twilio status callbacks for %s", self.public_url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> StatusCallbackReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The status callback receiver is not running.")
        return int(self._server.server_address[1])

    # -- for the engine ----------------------------------------------------------------
    def take(self) -> dict[str, CallState]:
        """The latest reported state of each call since the last `take()`."""
        with self._lock:
            states, self._states = self._states, {}
        return states

    # -- requests (server threads) -----------------------------------------------------
    def _accept(self, path: str, params: dict[str, str], signature: str) -> int:
        """The HTTP status to answer with; a valid callback is kept for `take()`."""
        if urlsplit(path).path != self._path:
            return 404
        if not signature or not self._validator.validate(self._origin + path, params, signature):
            with self._lock:
                self.rejected += 1
            log.warning("refused a status callback without a valid Twilio signature")
            return 403
        state = callback_state(params)
        if state is None:
            return 400
        with self._lock:
            self.received += 1
            earlier = self._states.get(state.call_id)
            if earlier is None or _order(params) >= _order_of(earlier):
                self._states[state.call_id] = state
        return 204


def callback_state(params: dict[str, str]) -> CallState | None:
    """A `CallState` from Twilio's status callback parameters (None: not a call's)."""
    sid, raw = params.get("CallSid", ""), params.get("CallStatus", "")
    if not sid or not raw:
        return None
    at = _moment(params.get("Timestamp"))
    ended = at if raw in _TERMINAL else None
    duration = _int(params.get("CallDuration")) if raw in _TERMINAL else None
    answered = None
    if raw == "completed" and ended is not None and duration is not None:
        answered = ended - timedelta(seconds=duration)
    return CallState(
        call_id=sid,
        raw_status=raw,
        outcome=outcome_for_status(raw),
        to=params.get("To", ""),
        from_=params.get("From", ""),
        created_at=None,
        answered_at=answered,
        ended_at=ended,
        duration_seconds=duration,
        answered_by=params.get("AnsweredBy") or None,
        error_code=_int(params.get("ErrorCode")),
        error_message=status_message(raw),
    )


_STATUS_ORDER = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}


def _order(params: dict[str, str]) -> int:
    return _STATUS_ORDER.get(params.get("CallStatus", ""), 9)


def _order_of(state: CallState) -> int:
    return _STATUS_ORDER.get(state.raw_status, 9)


def _moment(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: StatusCallbackReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "BatchCalls"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._answer(413)
            return
        body = self.rfile.read(length).decode("utf-8", "replace")
        params = {key: values[-1] for key, values in parse_qs(body).items()}
        signature = self.headers.get("X-Twilio-Signature", "")
        self._answer(self.server.receiver._accept(self.path, params, signature))

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Not to stderr: callbacks carry phone numbers."""
