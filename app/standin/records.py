"""What the Twilio stand-in records for tests to read: requests, calls, callbacks, and a
destination's scripted behaviour."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

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


def request_log_line(entry: RecordedRequest) -> str:
    """One JSON line of the request log (never the password), for runs by hand and QA."""
    return json.dumps(
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
