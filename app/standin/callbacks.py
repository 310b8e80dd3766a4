"""Status callbacks as Twilio sends them: what a create asks for, the parameters of each
event, signed with the auth token (`X-Twilio-Signature`), posted to local addresses only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlencode, urlsplit

from app.services.simulation import TERMINAL_STATUSES
from app.standin.calls import _Call, _CallbackSpec
from app.standin.records import CallbackDelivery, Form
from app.standin.shapes import API_VERSION, _ApiError, _one, _rfc2822

_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's X-Twilio-Signature: HMAC-SHA1 of the URL and the sorted POST parameters."""
    payload = url + "".join(key + params[key] for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


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


def _deliver_callback(
    call: _Call,
    status: str,
    at: datetime,
    sequence: int,
    now: datetime,
    *,
    account_sid: str,
    auth_token: str,
    any_host: bool,
) -> CallbackDelivery:
    """POST (or GET) Twilio's status callback parameters, signed with the auth token."""
    spec = call.callback
    assert spec is not None
    params = {
        "AccountSid": account_sid,
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
        signature = twilio_signature(auth_token, url, {})
        request = urllib.request.Request(url, method="GET")
    else:
        signature = twilio_signature(auth_token, url, params)
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
    if not (any_host or _is_loopback(url)):
        error = "not sent: the stand-in calls back local addresses only"
    else:
        answered_status, error = _send(request)
    return CallbackDelivery(
        call.sid, spec.url, spec.method, params, signature, now, answered_status, error
    )


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
