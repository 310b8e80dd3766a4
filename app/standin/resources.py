"""The JSON bodies of the resources the stand-in serves, as Twilio writes them: the
account, a call, numbers and applications, and a page of a list with its paging links."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from app.standin.calls import _Call
from app.standin.records import Form
from app.standin.shapes import API_VERSION, _ApiError, _int_field, _one, _rfc2822


def _page(
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


def _account_json(
    account_sid: str, auth_token: str, friendly_name: str, status: str
) -> dict[str, Any]:
    return {
        "auth_token": auth_token,  # Twilio includes it too: clients must not leak it
        "date_created": _rfc2822(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        "date_updated": _rfc2822(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        "friendly_name": friendly_name,
        "owner_account_sid": account_sid,
        "sid": account_sid,
        "status": status,
        "subresource_uris": {},
        "type": "Full",
        "uri": f"/{API_VERSION}/Accounts/{account_sid}.json",
    }


def _call_json(call: _Call, now: datetime, account_sid: str) -> dict[str, Any]:
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
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Calls/{call.sid}.json"
    return {
        "sid": call.sid,
        "date_created": _rfc2822(call.sim.created_at),
        "date_updated": _rfc2822(max((at for _, at in events if at <= now), default=created)),
        "parent_call_sid": None,
        "account_sid": account_sid,
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


def _resource_json(name: str, item: dict[str, Any], account_sid: str) -> dict[str, Any]:
    kind = {
        "incoming": "IncomingPhoneNumbers",
        "caller_ids": "OutgoingCallerIds",
        "applications": "Applications",
    }[name]
    stamp = _rfc2822(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    body = dict(item, account_sid=account_sid, date_created=stamp, date_updated=stamp)
    body["uri"] = f"/{API_VERSION}/Accounts/{account_sid}/{kind}/{item['sid']}.json"
    if name == "applications":
        body["api_version"] = API_VERSION
    return body
