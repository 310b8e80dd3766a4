"""The stand-in's dialer-facing extras: create latency, the account rate limit (queue or
429 with Retry-After), requests in flight, status callbacks and the request log."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from app.standin import TwilioStandin
from app.standin.__main__ import main
from tests.standin.oai_validation import twilio_validator
from tests.standin.test_twilio_server import api_url, create_call, fetch

ERROR_KEYS = {"code", "message", "more_info", "status"}


# -- create latency ----------------------------------------------------------------------
def test_create_delay_creates_the_call_at_once_and_answers_late(standin, http):
    standin.set_create_delay(2.0)
    form = {"To": "+14155551234", "From": "+14155550100", "Url": "https://example.com/agent"}

    with pytest.raises(requests.Timeout):
        http.post(api_url(standin, "/Calls.json"), data=form, timeout=0.2)
    listing = http.get(api_url(standin, "/Calls.json"), timeout=1)

    assert standin.calls_created_per_destination() == {"+14155551234": 1}
    assert listing.status_code == 200  # only creates are slow


def test_create_delay_range_draws_each_creates_delay_anew(standin, http):
    """Each create waits its own seeded draw between the two bounds (only lower bounds
    of time are checked: a loaded machine makes answers later, never earlier)."""
    standin.set_create_delay(0.0, 0.4)
    draws = random.Random("create-delay/7")  # the stand-in's stream for seed 7
    expected = [draws.uniform(0.0, 0.4) for _ in range(5)]

    for delay in expected:
        started = time.monotonic()
        assert create_call(http, standin, "+14155551234").status_code == 201
        assert time.monotonic() - started >= delay

    assert max(expected) - min(expected) > 0.1  # they do vary
    assert len(standin.calls) == 5


def test_create_delay_is_checked(standin):
    with pytest.raises(ValueError, match="0 to 60"):
        standin.set_create_delay(-1)
    with pytest.raises(ValueError, match="0 to 60"):
        TwilioStandin(create_delay=61)
    with pytest.raises(ValueError, match="from the shortest to 60"):
        standin.set_create_delay(0.3, 0.1)
    with pytest.raises(ValueError, match="from the shortest to 60"):
        TwilioStandin(create_delay=0.1, create_delay_max=61)


# -- the account's rate ------------------------------------------------------------------
def test_rate_limit_reject_answers_429_20429_with_retry_after(standin, http, clock):
    standin.set_rate_limit(2, "reject")

    answers = [create_call(http, standin, "+14155551234") for _ in range(3)]
    clock.advance(0.5)
    still_limited = create_call(http, standin, "+14155551234")
    clock.advance(0.6)
    after = create_call(http, standin, "+14155551234")

    assert [a.status_code for a in answers] == [201, 201, 429]
    refused = answers[2]
    assert refused.json()["code"] == 20429
    assert set(refused.json()) == ERROR_KEYS
    assert refused.headers["Retry-After"] == "1"
    assert still_limited.status_code == 429
    assert after.status_code == 201
    assert len(standin.calls) == 3  # a refused create never makes a call


def test_rate_limit_queue_shows_the_wait_in_queue_time(standin, http):
    standin.set_rate_limit(10, "queue")

    calls = [create_call(http, standin, "+14155551234").json() for _ in range(30)]

    queue_ms = [int(call["queue_time"]) for call in calls]
    assert all(call["status"] == "queued" for call in calls)
    assert queue_ms[-1] - queue_ms[0] >= 2900  # the 30th rings about 3 s after the first
    assert all(later >= earlier for earlier, later in itertools.pairwise(queue_ms))


def test_rate_limit_arguments_are_checked(standin):
    with pytest.raises(ValueError, match="positive"):
        standin.set_rate_limit(0)
    with pytest.raises(ValueError, match="'queue' or 'reject'"):
        standin.set_rate_limit(1, "drop")  # type: ignore[arg-type]


def test_requests_beyond_the_in_flight_limit_get_429(standin, http):
    standin.set_max_in_flight(1)
    standin.set_create_delay(1.0)
    slow = threading.Thread(target=create_call, args=(http, standin, "+14155551234"))
    slow.start()
    try:
        for _ in range(200):
            if standin.calls:
                break
            threading.Event().wait(0.01)
        with requests.Session() as other:
            other.auth = (standin.account_sid, standin.auth_token)
            refused = other.get(api_url(standin), timeout=5)
    finally:
        slow.join()

    assert (refused.status_code, refused.json()["code"]) == (429, 20429)
    assert http.get(api_url(standin), timeout=5).status_code == 200  # free again


def test_injected_429s_can_carry_retry_after(standin, http):
    standin.faults(rate_429=1.0, retry_after_seconds=3)

    answer = create_call(http, standin, "+14155551234")

    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "3")


# -- listing as Twilio does, through the real twilio client ------------------------------
def test_calls_list_filters_by_status_and_start_time_and_pages(standin, clock):
    start = clock()
    for index in range(7):
        standin.program(f"+1415555{index:04d}", outcome="completed", talk_seconds=60)
    client = Client(
        standin.account_sid,
        standin.auth_token,
        http_client=_client_for(standin),
    )
    http = requests.Session()
    http.auth = (standin.account_sid, standin.auth_token)
    for index in range(7):
        create_call(http, standin, f"+1415555{index:04d}")
        clock.advance(2)
    clock.advance(10)  # the first calls talk, the last still ring or are queued

    talking = client.calls.list(status="in-progress", start_time_after=start, page_size=2)
    later = client.calls.list(start_time_after=start + timedelta(seconds=7), page_size=2)

    in_progress = {call.sid for call in talking}
    assert in_progress and all(
        fetch(http, standin, sid)["status"] == "in-progress" for sid in in_progress
    )
    truth = [c for c in standin.calls if c.status == "in-progress"]
    assert in_progress == {c.sid for c in truth}
    expected_later = {
        c.sid
        for c in standin.calls
        if any(s == "ringing" and at >= start + timedelta(seconds=7) for s, at in c.timeline)
    }
    assert {call.sid for call in later} == expected_later
    listings = [r for r in standin.requests if r.method == "GET" and r.path.endswith("Calls.json")]
    assert len(listings) > 2  # pages of 2 were followed
    validator = twilio_validator()
    for request in standin.requests:
        validator.assert_request_valid(request)
    http.close()


def _client_for(standin: TwilioStandin) -> TwilioHttpClient:
    """A twilio HTTP client that sends api.twilio.com requests to the stand-in."""
    base = standin.base_url

    class Redirected(TwilioHttpClient):  # type: ignore[misc]
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            return super().request(
                method, url.replace("https://api.twilio.com", base), *args, **kwargs
            )

    return Redirected()


# -- status callbacks ---------------------------------------------------------------------
class _Receiver(ThreadingHTTPServer):
    received: list[tuple[str, str, dict[str, str], str]]  # method, url, params, signature


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def _record(self, method: str, body: str) -> None:
        url = f"http://127.0.0.1:{self.server.server_port}{self.path}"
        params = {k: v[0] for k, v in parse_qs(body).items()}
        self.server.received.append(
            (method, url, params, self.headers.get("X-Twilio-Signature", ""))
        )
        self.send_response(204)
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._record("POST", self.rfile.read(length).decode())

    def do_GET(self) -> None:
        self._record("GET", "")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _ReceiverHandler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


def test_status_callbacks_follow_the_call_and_carry_twilios_signature(
    standin, http, clock, receiver
):
    url = f"http://127.0.0.1:{receiver.server_port}/status?batch=1"
    standin.program("+14155551234", outcome="completed", ring_seconds=5, talk_seconds=30)
    events = ["initiated", "ringing", "answered", "completed"]
    sid = create_call(
        http, standin, "+14155551234", StatusCallback=url, StatusCallbackEvent=events
    ).json()["sid"]
    for _ in range(60):
        clock.advance(1)
        standin.deliver_callbacks()

    statuses = [params["CallStatus"] for _, _, params, _ in receiver.received]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    validator = RequestValidator(standin.auth_token)
    for method, got_url, params, signature in receiver.received:
        assert method == "POST" and got_url == url
        assert params["CallSid"] == sid and params["AccountSid"] == standin.account_sid
        assert validator.validate(got_url, params, signature)
        assert not RequestValidator("wrong-token").validate(got_url, params, signature)
    final = receiver.received[-1][2]
    assert (final["CallDuration"], final["SequenceNumber"]) == ("30", "3")
    assert [d.status for d in standin.callbacks] == [204] * 4
    twilio_validator().assert_request_valid(standin.requests[0])


def test_status_callback_defaults_to_completed_and_supports_get(standin, http, clock, receiver):
    url = f"http://127.0.0.1:{receiver.server_port}/status"
    standin.program("+14155551234", outcome="busy", ring_seconds=5)
    create_call(http, standin, "+14155551234", StatusCallback=url, StatusCallbackMethod="GET")
    clock.advance(120)
    standin.deliver_callbacks()

    assert len(receiver.received) == 1
    method, got_url, _, signature = receiver.received[0]
    params = {k: v[0] for k, v in parse_qs(urlsplit(got_url).query).items()}
    assert (method, params["CallStatus"]) == ("GET", "busy")
    assert RequestValidator(standin.auth_token).validate(got_url, {}, signature)


def test_status_callbacks_reach_only_local_addresses(standin, http, clock):
    create_call(http, standin, "+14155551234", StatusCallback="https://example.com/status")
    clock.advance(3600)
    standin.deliver_callbacks()

    (delivery,) = standin.callbacks
    assert delivery.status is None and "local addresses only" in (delivery.error or "")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"StatusCallback": "not a url"}, 21609),
        ({"StatusCallback": "http://127.0.0.1/x", "StatusCallbackMethod": "PUT"}, 21609),
        ({"StatusCallback": "http://127.0.0.1/x", "StatusCallbackEvent": "hung-up"}, 21626),
    ],
)
def test_bad_status_callbacks_are_refused(standin, http, fields, code):
    answer = create_call(http, standin, "+14155551234", **fields)

    assert (answer.status_code, answer.json()["code"]) == (400, code)
    assert standin.calls == []


# -- the request log ----------------------------------------------------------------------
def test_request_log_file_has_every_request_without_the_password(clock, tmp_path):
    log = tmp_path / "requests.jsonl"
    with TwilioStandin(clock=clock, request_log=log, record_requests=False) as server:
        with requests.Session() as http:
            http.auth = (server.account_sid, server.auth_token)
            create_call(http, server, "+14155551234")
            http.get(api_url(server), timeout=5)
        token = server.auth_token

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line["method"], line["status"]) for line in lines] == [("POST", 201), ("GET", 200)]
    assert lines[0]["form"]["To"] == ["+14155551234"]
    assert token not in log.read_text()


def test_command_line_takes_the_new_options(capsys, tmp_path):
    stop = threading.Event()
    stop.set()
    argv = ["--cps", "5", "--rate-limit", "reject", "--create-delay", "0.1"]
    argv += ["--create-delay-max", "0.3"]
    argv += ["--max-in-flight", "10", "--request-log", str(tmp_path / "log.jsonl")]

    assert main(argv, stop=stop) == 0
    assert main(["--create-delay", "-1"]) == 2
    assert "--create-delay must be" in capsys.readouterr().err
    assert main(["--create-delay", "0.3", "--create-delay-max", "0.1"]) == 2
    assert "--create-delay-max must be" in capsys.readouterr().err
    assert main(["--max-in-flight", "0"]) == 2
    assert "--max-in-flight must be" in capsys.readouterr().err
