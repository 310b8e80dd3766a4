"""A call create's form, checked as Twilio checks it: the numbers, what the call runs
(application, URL or TwiML), its timeouts, machine detection and status callback."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.services.simulation import E164, TEST_NUMBER_ERRORS, TEST_NUMBER_MESSAGES
from app.standin.callbacks import _callback_spec
from app.standin.calls import _CallbackSpec
from app.standin.records import Form
from app.standin.shapes import MAGIC_FROM_NUMBER, _ApiError, _int_field, _one


@dataclass(frozen=True)
class _CreateRequest:
    to: str
    from_: str
    ring_timeout: int
    time_limit: int | None
    machine_detection: str
    callback: _CallbackSpec | None


def _checked_create(form: Form, owned: set[str], applications: set[str]) -> _CreateRequest:
    """The create `form` asks for, or _ApiError with Twilio's code for what is wrong;
    `owned`: the account's voice numbers and caller IDs, `applications`: its app SIDs."""
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
    if from_ not in owned and from_ != MAGIC_FROM_NUMBER:
        raise _ApiError(
            400,
            21210,
            f"The source phone number provided, {from_}, is not yet verified for your account.",
        )
    application_sid, url, twiml = (_one(form, key) for key in ("ApplicationSid", "Url", "Twiml"))
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
    return _CreateRequest(to, from_, ring_timeout, time_limit, detection, callback)
