"""Twilio's wire shapes: the API version, error answers, SIDs and dates as Twilio writes
them, request fields, basic auth, and the routes of the resources the stand-in serves."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any

from app.standin.records import Form

API_VERSION = "2010-04-01"
MAGIC_FROM_NUMBER = "+15005550006"  # Twilio's test credentials accept it as a from number
_MORE_INFO = "https://www.twilio.com/docs/errors/{code}"


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


def _sid(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()
    return prefix + digest[:32]


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment.astimezone(UTC)) if moment is not None else None


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


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.startswith("Basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, _, password = decoded.partition(":")
    return user, password
