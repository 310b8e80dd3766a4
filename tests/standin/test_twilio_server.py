"""The Twilio stand-in answers like Twilio: auth, call lifecycle, errors, paging, faults."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
import requests

from app.standin import TwilioStandin
from app.standin.__main__ import main
from tests.standin.oai_validation import twilio_validator

CALLER = "+14155550100"


def api_url(standin: TwilioStandin, tail: str = ".json") -> str:
    return f"{standin.base_url}/2010-04-01/Accounts/{standin.account_sid}{tail}"


def create_call(http: requests.Session, standin: TwilioStandin, to: str, **fields: str):
    form = {"To": to, "From": CALLER, "Url": "https://example.com/agent", **fields}
    return http.post(api_url(standin, "/Calls.json"), data=form, timeout=5)


def fetch(http: requests.Session, standin: TwilioStandin, sid: str) -> dict:
    answer = http.get(api_url(standin, f"/Calls/{sid}.json"), timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- authentication --------------------------------------------------------------------
def test_wrong_or_missing_credentials_get_twilio_401(standin, http):
    wrong = requests.get(api_url(standin), auth=(standin.account_sid, "nope"), timeout=5)
    missing = requests.get(api_url(standin), timeout=5)
    other_account = http.get(
        f"{standin.base_url}/2010-04-01/Accounts/AC{'0' * 32}/Calls.json", timeout=5
    )

    for answer in (wrong, missing, other_account):
        assert answer.status_code == 401
        assert answer.json()["code"] == 20003
        assert set(answer.json()) == {"code", "message", "more_info", "status"}
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert http.get(api_url(standin), timeout=5).status_code == 200


def test_api_key_credentials_are_accepted(standin):
    key = "SK" + "1" * 32
    standin.add_api_key(key, "key-secret")

    answer = requests.get(api_url(standin), auth=(key, "key-secret"), timeout=5)

    assert answer.status_code == 200
    assert standin.requests[-1].auth_user == key


def test_suspended_account_refuses_calls_but_shows_its_status(standin, http):
    standin.set_account_status("suspended")

    refused = create_call(http, standin, "+14155551234")
    account = http.get(api_url(standin), timeout=5)

    assert (refused.status_code, refused.json()["code"]) == (401, 20005)
    assert account.json()["status"] == "suspended"
    assert standin.calls == []


# -- call lifecycle ---------------------------------------------------------------------
def test_call_moves_through_statuses_as_the_clock_advances(standin, http, clock):
    standin.program("+14155551234", outcome="completed", ring_seconds=5, talk_seconds=30)
    created = create_call(http, standin, "+14155551234")
    assert created.status_code == 201
    call = created.json()
    assert (call["status"], call["duration"], call["start_time"]) == ("queued", None, None)

    seen = [call["status"]]
    for _ in range(40):
        clock.advance(1)
        seen.append(fetch(http, standin, call["sid"])["status"])
    final = fetch(http, standin, call["sid"])

    assert list(dict.fromkeys(seen)) == ["queued", "ringing", "in-progress", "completed"]
    assert final["duration"] == "30"
    assert final["start_time"] is not None and final["end_time"] is not None
    record = standin.call(call["sid"])
    assert [status for status, _ in record.timeline] == [
        "queued",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert record.ended_at - record.timeline[2][1] == timedelta(seconds=30)


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed"])
def test_programmed_unanswered_outcomes(standin, http, clock, outcome):
    standin.program("+14155551234", outcome=outcome, ring_seconds=4)
    sid = create_call(http, standin, "+14155551234").json()["sid"]

    clock.advance(60)
    final = fetch(http, standin, sid)

    assert (final["status"], final["duration"], final["answered_by"]) == (outcome, "0", None)


def test_programs_are_used_in_order_and_the_last_repeats(standin, http, clock):
    standin.program("+14155551234", outcome="busy")
    standin.program("+14155551234", outcome="completed", answered_by="human")
    sids = [create_call(http, standin, "+14155551234").json()["sid"] for _ in range(3)]

    clock.advance(3600)

    assert [fetch(http, standin, sid)["status"] for sid in sids] == [
        "busy",
        "completed",
        "completed",
    ]


def test_default_outcomes_are_a_seeded_mix(clock):
    def outcomes(seed: int) -> list[str]:
        with TwilioStandin(clock=clock, seed=seed) as server, requests.Session() as http:
            http.auth = (server.account_sid, server.auth_token)
            for i in range(200):
                assert create_call(http, server, f"+1202555{i:04d}").status_code == 201
            clock.advance(3600)
            return [call.status for call in server.calls]

    first, again, other = outcomes(1), outcomes(1), outcomes(2)

    assert first == again
    assert first != other
    mix = Counter(first)
    assert set(mix) == {"completed", "no-answer", "busy", "failed"}
    assert 0.6 <= mix["completed"] / 200 <= 0.85


def test_cancel_and_hang_up(standin, http, clock):
    standin.program("+14155551234", ring_seconds=10, talk_seconds=100)
    ringing = create_call(http, standin, "+14155551234").json()["sid"]
    talking = create_call(http, standin, "+14155551234").json()["sid"]
    clock.advance(5)

    canceled = http.post(
        api_url(standin, f"/Calls/{ringing}.json"), data={"Status": "canceled"}, timeout=5
    )
    clock.advance(15)
    hung_up = http.post(
        api_url(standin, f"/Calls/{talking}.json"), data={"Status": "completed"}, timeout=5
    )
    clock.advance(200)

    assert canceled.json()["status"] == "canceled"
    assert hung_up.json()["status"] == "completed"
    assert fetch(http, standin, ringing)["status"] == "canceled"
    assert fetch(http, standin, talking)["duration"] == "10"


def test_calls_beyond_the_account_rate_wait_in_twilios_queue(clock):
    with TwilioStandin(clock=clock, cps=1.0) as server, requests.Session() as http:
        http.auth = (server.account_sid, server.auth_token)
        calls = [create_call(http, server, "+14155551234").json() for _ in range(3)]

    queue_times = [int(call["queue_time"]) for call in calls]
    assert queue_times[1] - queue_times[0] >= 1000
    assert queue_times[2] - queue_times[1] >= 1000


# -- create errors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21217),
        ("+15005550002", 21214),
        ("+15005550003", 21215),
        ("+15005550004", 21216),
        ("12345", 21211),
        ("", 21201),
    ],
)
def test_bad_destinations_are_refused_like_twilio(standin, http, to, code):
    answer = create_call(http, standin, to)

    assert answer.status_code == 400
    assert answer.json()["code"] == code
    assert answer.json()["more_info"].endswith(str(code))
    assert standin.calls == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"From": "+19995550000"}, 21210),
        ({"From": "+14155550101"}, 21210),  # owned, but cannot make voice calls
        ({"From": "not-a-number"}, 21212),
        ({"From": ""}, 21213),
        ({"Url": "", "ApplicationSid": "AP" + "0" * 32}, 21218),
        ({"Url": "ftp://example.com"}, 21205),
        ({"Url": ""}, 21205),
        ({"MachineDetection": "Maybe"}, 21626),
        ({"Timeout": "soon"}, 20001),
    ],
)
def test_bad_call_requests_are_refused(standin, http, fields, code):
    answer = create_call(http, standin, "+14155551234", **fields)

    assert (answer.status_code, answer.json()["code"]) == (400, code)


def test_magic_test_from_number_and_verified_caller_ids_are_accepted(standin, http):
    assert create_call(http, standin, "+14155551234", From="+15005550006").status_code == 201
    assert create_call(http, standin, "+14155551234", From="+14155550199").status_code == 201


def test_unknown_call_and_unknown_path_get_404(standin, http):
    assert http.get(api_url(standin, f"/Calls/CA{'0' * 32}.json"), timeout=5).json()["code"] == (
        20404
    )
    assert http.get(api_url(standin, "/Nope.json"), timeout=5).status_code == 404


# -- listing and paging -----------------------------------------------------------------
def test_paging_follows_next_page_uri_newest_first(standin, http, clock):
    sids = []
    for _ in range(7):
        sids.append(create_call(http, standin, "+14155551234").json()["sid"])
        clock.advance(1)

    pages = []
    url = api_url(standin, "/Calls.json?PageSize=3")
    while url:
        body = http.get(url, timeout=5).json()
        pages.append([call["sid"] for call in body["calls"]])
        if body["next_page_uri"] is None:
            break
        url = standin.base_url + body["next_page_uri"]
        if len(pages) == 1:  # a call created between pages must not shift later pages
            create_call(http, standin, "+14155559999")

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [sid for page in pages for sid in page] == list(reversed(sids))


def test_list_filters(standin, http, clock):
    standin.program("+14155551234", outcome="busy")
    early = create_call(http, standin, "+14155551234").json()["sid"]
    clock.advance(3600)
    late = create_call(http, standin, "+14155551234").json()["sid"]
    other = create_call(http, standin, "+14155557777").json()["sid"]
    clock.advance(60)
    since = (clock() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def listed(**query: str) -> list[str]:
        answer = http.get(api_url(standin, "/Calls.json"), params=query, timeout=5)
        assert answer.status_code == 200, answer.text
        return [call["sid"] for call in answer.json()["calls"]]

    assert listed(To="+14155551234") == [late, early]
    assert listed(To="+14155551234", **{"StartTime>": since}) == [late]
    assert listed(Status="busy") == [late, early]
    assert set(listed()) == {early, late, other}
    assert http.get(api_url(standin, "/Calls.json?PageSize=0"), timeout=5).status_code == 400


# -- faults -------------------------------------------------------------------------------
def test_faults_are_injected_at_the_configured_rates_and_are_seeded(standin):
    def statuses(seed: int, count: int) -> list[int | None]:
        standin.clear_requests()
        standin.faults(rate_429=0.2, rate_500=0.1, seed=seed)
        with requests.Session() as http:
            http.auth = (standin.account_sid, standin.auth_token)
            for _ in range(count):
                http.get(api_url(standin), timeout=5)
        return [r.status for r in standin.requests]

    first = statuses(3, 400)
    counts = Counter(first)

    assert statuses(3, 100) == first[:100]
    assert statuses(4, 100) != first[:100]
    assert 0.15 <= counts[429] / 400 <= 0.25
    assert 0.06 <= counts[500] / 400 <= 0.14
    assert counts[200] == 400 - counts[429] - counts[500]


def test_rate_limited_and_failed_creates_create_no_call(standin, http):
    standin.faults(rate_429=0.5, rate_500=0.5)

    answers = [create_call(http, standin, "+14155551234") for _ in range(10)]

    assert {a.status_code for a in answers} == {429, 500}
    assert {a.json()["code"] for a in answers} == {20429, 20500}
    assert standin.calls == []


def test_dropped_connection_answers_nothing_and_creates_nothing(standin, http):
    standin.faults(drop_rate=1.0)

    with pytest.raises(requests.ConnectionError):
        create_call(http, standin, "+14155551234")

    assert standin.calls == []
    assert [r.status for r in standin.requests] == [None]


def test_lost_response_creates_the_call_but_answers_nothing(standin, http):
    standin.faults(lost_response_rate=1.0)

    with pytest.raises(requests.ConnectionError):
        create_call(http, standin, "+14155551234")

    assert standin.calls_created_per_destination() == {"+14155551234": 1}


def test_delay_makes_a_short_client_timeout_expire(standin, http):
    standin.faults(delay_seconds=2.0)

    with pytest.raises(requests.Timeout):
        http.get(api_url(standin), timeout=0.1)


def test_stop_returns_promptly_with_idle_and_delayed_connections(clock):
    server = TwilioStandin(clock=clock).start()
    server.faults(delay_seconds=30)
    session = requests.Session()
    session.auth = (server.account_sid, server.auth_token)
    with pytest.raises(requests.Timeout):
        session.get(api_url(server), timeout=0.1)

    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=5)
    session.close()

    assert not stopper.is_alive()
    assert not any(t.name == "twilioStandin" for t in threading.enumerate())


# -- recording and helper queries -------------------------------------------------------
def test_every_request_is_recorded_without_the_password(standin, http):
    create_call(
        http,
        standin,
        "+14155551234",
        StatusCallback="https://example.com/status",
        StatusCallbackEvent=["initiated", "answered"],  # type: ignore[arg-type]
    )
    http.get(api_url(standin, "/Calls.json"), params={"To": "+14155551234"}, timeout=5)

    post, listing = standin.requests
    assert (post.method, post.status, post.auth_user) == ("POST", 201, standin.account_sid)
    assert post.path.endswith("/Calls.json")
    assert post.form["StatusCallbackEvent"] == ["initiated", "answered"]
    assert post.content_type == "application/x-www-form-urlencoded"
    assert (listing.method, listing.query) == ("GET", {"To": ["+14155551234"]})
    assert standin.auth_token not in repr(standin.requests)


def test_helper_queries_measure_pacing_and_concurrency(standin, http, clock):
    standin.program("+14155551111", ring_seconds=5, talk_seconds=60)
    standin.program("+14155552222", ring_seconds=5, talk_seconds=60)
    start = clock()
    for to in ("+14155551111", "+14155552222", "+14155551111"):
        create_call(http, standin, to)
        clock.advance(0.25)
    clock.advance(30)
    create_call(http, standin, "+14155552222")  # three calls still talking: four at once
    clock.advance(600)

    assert standin.calls_created_per_destination() == {"+14155551111": 2, "+14155552222": 2}
    assert standin.created_timestamps()[0] == start
    assert standin.max_calls_created_within(timedelta(seconds=1)) == 3
    assert standin.active_calls_at(start + timedelta(seconds=10)) == 3
    assert standin.active_calls_at(clock()) == 0
    assert standin.max_concurrent_in_progress() == 4


# -- answers conform to the description -------------------------------------------------
def test_answers_match_twilios_response_schemas(standin, http, clock):
    validator = twilio_validator()
    sid = create_call(http, standin, "+14155551234", MachineDetection="Enable").json()["sid"]
    clock.advance(3600)  # a finished call has every field filled in
    create_call(http, standin, "+14155551234")
    tails = [
        ".json",
        "/Calls.json?PageSize=1",
        f"/Calls/{sid}.json",
        "/IncomingPhoneNumbers.json",
        "/OutgoingCallerIds.json",
        "/Applications.json",
    ]

    for tail in tails:
        answer = http.get(api_url(standin, tail), timeout=5)
        path = standin.requests[-1].path
        assert validator.response_errors("GET", path, answer.status_code, answer.json()) == []


def test_created_call_answer_matches_the_create_schema(standin, http):
    answer = create_call(http, standin, "+14155551234")

    errors = twilio_validator().response_errors(
        "POST", standin.requests[-1].path, answer.status_code, answer.json()
    )
    assert errors == []


# -- the validator itself ----------------------------------------------------------------
CALLS = "/2010-04-01/Accounts/AC" + "a" * 32 + "/Calls.json"


def test_validator_accepts_a_well_formed_create():
    form = {"To": ["+1"], "From": ["+2"], "Timeout": ["30"], "StatusCallbackEvent": ["a", "b"]}

    assert twilio_validator().request_errors("POST", CALLS, {}, form) == []


@pytest.mark.parametrize(
    ("method", "path", "query", "form", "expected"),
    [
        ("POST", CALLS, {}, {"To": ["+1"], "From": ["+2"], "Bogus": ["1"]}, "'Bogus' is not"),
        ("POST", CALLS, {}, {"To": ["+1"], "From": ["+2"], "Method": ["PUT"]}, "is not one of"),
        ("GET", CALLS, {"Status": ["dialing"]}, {}, "is not one of"),
        ("POST", CALLS, {}, {"To": ["+1"], "From": ["+2"], "Timeout": ["soon"]}, "not an integer"),
        ("POST", CALLS, {}, {"To": ["+1"], "From": ["+2"], "Record": ["yes"]}, "'true' or"),
        ("POST", CALLS, {}, {"To": ["+1"]}, "'From' is missing"),
        ("POST", CALLS, {}, {"To": ["+1", "+3"], "From": ["+2"]}, "sent 2 times"),
        ("GET", CALLS, {"PageSize": ["5000"]}, {}, "maximum"),
        ("GET", CALLS, {"Nope": ["1"]}, {}, "'Nope' is not declared"),
        ("DELETE", CALLS, {}, {}, "method not declared"),
        ("GET", "/2010-04-01/Accounts/AC1/Calls.json", {}, {}, "does not match"),
        ("GET", "/2010-04-01/Elsewhere.json", {}, {}, "no path template"),
    ],
)
def test_validator_catches_departures(method, path, query, form, expected):
    errors = twilio_validator().request_errors(method, path, query, form)

    assert any(expected in error for error in errors), errors


# -- running by hand ----------------------------------------------------------------------
def test_command_line_prints_the_base_url_and_stops(capsys):
    stop = threading.Event()
    stop.set()

    assert main(["--port", "0", "--seed", "3"], stop=stop) == 0

    out = capsys.readouterr().out
    assert "Twilio stand-in listening on http://127.0.0.1:" in out
    assert "BATCHCALLS_TWILIO_API_BASE=http://127.0.0.1:" in out


def test_command_line_refuses_bad_arguments(capsys):
    assert main(["--account-sid", "XX123"]) == 2
    assert "--account-sid must be" in capsys.readouterr().err
