"""TwilioProvider against the local stand-in: what it sends (checked against Twilio's
OpenAPI description), what it makes of the answers, and how it reports failures."""

from __future__ import annotations

import base64
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from app.services.telephony import (
    AgentSpec,
    CallOutcome,
    CallRequest,
    FatalProviderError,
    ProviderError,
    RecipientProviderError,
    TransientProviderError,
)
from app.services.twilio_provider import API_BASE_ENV, TwilioProvider
from app.standin import TwilioStandin
from tests.standin.oai_validation import twilio_validator

CALLER = "+14155550100"
TO = "+14155551234"
URL_AGENT = AgentSpec("url", "https://example.com/agent.xml")


@pytest.fixture
def standin(clock) -> Iterator[TwilioStandin]:
    with TwilioStandin(clock=clock, seed=11) as server:
        yield server


@pytest.fixture
def provider(standin) -> Iterator[TwilioProvider]:
    with TwilioProvider(standin.account_sid, standin.auth_token, base_url=standin.base_url) as p:
        yield p


def request(agent: AgentSpec = URL_AGENT, to: str = TO, **options) -> CallRequest:
    return CallRequest(to=to, from_=CALLER, agent=agent, **options)


def assert_all_requests_conform(standin: TwilioStandin) -> None:
    recorded = standin.requests
    assert recorded, "the provider sent nothing"
    for entry in recorded:
        twilio_validator().assert_request_valid(entry)


# -- what the provider sends ------------------------------------------------------------
@pytest.mark.parametrize(
    ("agent", "field"),
    [
        (URL_AGENT, "Url"),
        (AgentSpec("twiml", "<Response><Say>Hello {{name}}</Say></Response>"), "Twiml"),
        (AgentSpec("application", "APPLICATION"), "ApplicationSid"),
    ],
)
def test_create_sends_exactly_one_agent_field_and_conforms(standin, provider, agent, field):
    if agent.value == "APPLICATION":
        agent = AgentSpec("application", standin.default_application_sid)

    state = provider.place_call(request(agent, variables={"name": "Ana"}))

    (sent,) = standin.requests
    assert set(sent.form) == {"To", "From", "Timeout", field}
    assert (sent.form["To"], sent.form["From"], sent.form["Timeout"]) == ([TO], [CALLER], ["30"])
    assert state.call_id == standin.calls[0].sid
    assert (state.raw_status, state.outcome) == ("queued", CallOutcome.IN_PROGRESS)
    assert_all_requests_conform(standin)


def test_twiml_is_rendered_with_escaped_variables(standin, provider):
    agent = AgentSpec("twiml", "<Response><Say>Hi {{ name }}, {{missing}}bye</Say></Response>")

    provider.place_call(request(agent, variables={"name": "Tom & <Jerry>"}))

    assert standin.requests[0].form["Twiml"] == [
        "<Response><Say>Hi Tom &amp; &lt;Jerry&gt;, bye</Say></Response>"
    ]


def test_machine_detection_and_time_limit_are_sent_when_asked(standin, provider, clock):
    provider.place_call(request(machine_detection=True, time_limit=120, ring_timeout=20))

    form = standin.requests[0].form
    assert form["MachineDetection"] == ["Enable"]
    assert (form["TimeLimit"], form["Timeout"]) == (["120"], ["20"])
    assert_all_requests_conform(standin)


def test_every_other_request_conforms(standin, provider, clock):
    placed = provider.place_call(request())
    provider.fetch_call(placed.call_id)
    provider.find_calls(TO, CALLER, clock() - timedelta(hours=1))
    provider.check_credentials()
    provider.list_from_numbers()
    provider.list_applications()

    paths = [(r.method, r.path.rsplit("/", 1)[-1]) for r in standin.requests]
    assert paths == [
        ("POST", "Calls.json"),
        ("GET", f"{placed.call_id}.json"),
        ("GET", "Calls.json"),
        ("GET", "Calls.json"),
        ("GET", f"{standin.account_sid}.json"),
        ("GET", "IncomingPhoneNumbers.json"),
        ("GET", "OutgoingCallerIds.json"),
        ("GET", "Applications.json"),
    ]
    assert {"To", "From", "StartTime>"} <= set(standin.requests[2].query)
    assert standin.requests[3].query["Status"] == ["queued"]
    assert_all_requests_conform(standin)


# -- what it makes of the answers -------------------------------------------------------
def test_call_state_follows_the_call(standin, provider, clock):
    standin.program(TO, outcome="completed", ring_seconds=5, talk_seconds=42, answered_by="human")
    placed = provider.place_call(request(machine_detection=True))
    clock.advance(10)
    talking = provider.fetch_call(placed.call_id)
    clock.advance(60)
    done = provider.fetch_call(placed.call_id)

    assert (talking.raw_status, talking.outcome, talking.ended_at) == (
        "in-progress",
        CallOutcome.IN_PROGRESS,
        None,
    )
    assert (done.raw_status, done.outcome) == ("completed", CallOutcome.COMPLETED)
    assert (done.duration_seconds, done.answered_by) == (42, "human")
    assert done.ended_at - done.answered_at == timedelta(seconds=42)
    assert done.created_at == placed.created_at
    assert (done.to, done.from_) == (TO, CALLER)
    assert done.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("busy", CallOutcome.NO_ANSWER), ("no-answer", CallOutcome.NO_ANSWER)],
)
def test_unanswered_calls_end_as_no_answer(standin, provider, clock, outcome, expected):
    standin.program(TO, outcome=outcome)
    placed = provider.place_call(request())
    clock.advance(120)

    state = provider.fetch_call(placed.call_id)

    assert (state.outcome, state.answered_at, state.duration_seconds) == (expected, None, 0)
    assert state.error_message


def test_failed_call_has_a_reason(standin, provider, clock):
    standin.program(TO, outcome="failed")
    placed = provider.place_call(request())
    clock.advance(120)

    state = provider.fetch_call(placed.call_id)

    assert state.outcome is CallOutcome.FAILED
    assert "could not be connected" in state.error_message


def test_find_calls_finds_recent_calls_including_ones_still_queued(clock):
    with (
        TwilioStandin(clock=clock, cps=0.01) as standin,  # one call per 100 s: the rest wait
        TwilioProvider(standin.account_sid, standin.auth_token, base_url=standin.base_url) as p,
    ):
        old = p.place_call(request())
        clock.advance(3600)
        since = clock()
        clock.advance(0.5)
        first = p.place_call(request())
        queued = p.place_call(request())
        p.place_call(request(to="+14155559999"))
        clock.advance(5)

        found = p.find_calls(TO, CALLER, since)

    assert [s.call_id for s in found] == [first.call_id, queued.call_id]
    assert found[1].raw_status == "queued"
    assert old.call_id not in {s.call_id for s in found}


def test_account_numbers_and_apps(standin, provider):
    standin.add_incoming_number("+14155550111", "Support")
    standin.add_caller_id(CALLER)  # also an incoming number: listed once

    account = provider.check_credentials()
    numbers = provider.list_from_numbers()
    apps = provider.list_applications()

    assert (account.account_id, account.status) == (standin.account_sid, "active")
    assert [(n.phone_number, n.source) for n in numbers] == [
        (CALLER, "incoming"),
        ("+14155550111", "incoming"),
        ("+14155550199", "verified"),
    ]
    assert "+14155550101" not in {n.phone_number for n in numbers}  # SMS only
    assert [(a.sid, a.friendly_name) for a in apps] == [
        (standin.default_application_sid, "Batch Calls demo agent")
    ]


def test_api_key_credentials(standin):
    key = "SK" + "2" * 32
    standin.add_api_key(key, "api-key-secret")
    with TwilioProvider(
        standin.account_sid,
        api_key_sid=key,
        api_key_secret="api-key-secret",
        base_url=standin.base_url,
    ) as provider:
        provider.place_call(request())

    assert standin.requests[0].auth_user == key
    assert "api-key-secret" not in repr(provider)


# -- how it reports failures --------------------------------------------------------------
@pytest.mark.parametrize(
    ("to", "code"), [("+15005550001", 21217), ("+15005550002", 21214), ("+15005550004", 21216)]
)
def test_bad_destination_fails_only_that_recipient(provider, to, code):
    with pytest.raises(RecipientProviderError) as caught:
        provider.place_call(request(to=to))

    assert (caught.value.code, caught.value.http_status) == (code, 400)


def test_unknown_from_number_fails_the_batch(provider):
    with pytest.raises(FatalProviderError) as caught:
        provider.place_call(CallRequest(TO, "+19995550000", URL_AGENT))

    assert caught.value.code == 21210
    assert "from number" in caught.value.message


def test_suspended_account_fails_the_batch(standin, provider):
    standin.set_account_status("suspended")

    with pytest.raises(FatalProviderError) as caught:
        provider.place_call(request())

    assert caught.value.code == 20005


def test_wrong_token_fails_the_batch_on_create_and_on_list(standin):
    with TwilioProvider(standin.account_sid, "wrong-token", base_url=standin.base_url) as bad:
        with pytest.raises(FatalProviderError) as on_create:
            bad.place_call(request())
        with pytest.raises(FatalProviderError) as on_list:  # lists raise a different exception
            bad.list_from_numbers()

    assert on_create.value.code == on_list.value.code == 20003
    assert "Settings" in on_create.value.message


@pytest.mark.parametrize(
    ("faults", "status", "unknown"),
    [({"rate_429": 1.0}, 429, False), ({"rate_500": 1.0}, 500, True)],
)
def test_rate_limits_and_server_errors_are_transient(standin, provider, faults, status, unknown):
    standin.faults(**faults)

    with pytest.raises(TransientProviderError) as caught:
        provider.place_call(request())

    assert (caught.value.http_status, caught.value.outcome_unknown) == (status, unknown)


def test_list_server_error_is_transient(standin, provider, clock):
    standin.faults(rate_500=1.0)

    with pytest.raises(TransientProviderError):
        provider.find_calls(TO, CALLER, clock())


@pytest.mark.parametrize("fault", ["drop_rate", "lost_response_rate"])
def test_dropped_connection_is_transient_outcome_unknown_and_not_retried(standin, provider, fault):
    standin.faults(**{fault: 1.0})

    with pytest.raises(TransientProviderError) as caught:
        provider.place_call(request())

    assert caught.value.outcome_unknown
    assert len(standin.requests) == 1  # the package must not retry a create by itself


def test_slow_answer_times_out_quickly(standin):
    standin.faults(delay_seconds=5)
    with (
        TwilioProvider(
            standin.account_sid, standin.auth_token, base_url=standin.base_url, timeout=0.2
        ) as provider,
        pytest.raises(TransientProviderError) as caught,
    ):
        provider.fetch_call("CA" + "0" * 32)

    assert caught.value.outcome_unknown
    assert "did not answer within 0.2 s" in caught.value.message


def test_refused_connection_is_transient_and_certainly_not_placed():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        TwilioProvider("AC" + "a" * 32, "token", base_url=f"http://127.0.0.1:{port}") as p,
        pytest.raises(TransientProviderError) as caught,
    ):
        p.place_call(request())

    assert not caught.value.outcome_unknown
    assert f"127.0.0.1:{port}" in caught.value.message


# -- secrets never leak -------------------------------------------------------------------
def test_token_never_appears_in_repr_logs_or_errors(standin, caplog, clock):
    caplog.set_level(logging.DEBUG)
    token = standin.auth_token
    basic = base64.b64encode(f"{standin.account_sid}:{token}".encode()).decode()
    errors: list[ProviderError] = []
    with TwilioProvider(standin.account_sid, token, base_url=standin.base_url) as provider:
        placed = provider.place_call(request())
        provider.fetch_call(placed.call_id)
        provider.check_credentials()  # Twilio's account answer contains the token
        for faults in ({"rate_500": 1.0}, {"drop_rate": 1.0}):
            standin.faults(**faults)
            with pytest.raises(ProviderError) as caught:
                provider.place_call(request())
            errors.append(caught.value)
        standin.faults()
        text = repr(provider) + str(vars(provider))
    with TwilioProvider(standin.account_sid, token + "x", base_url=standin.base_url) as wrong:
        with pytest.raises(FatalProviderError) as unauthorized:
            wrong.check_credentials()
        errors.append(unauthorized.value)
        text += repr(wrong)

    text += caplog.text + "".join(f"{e} {e!r} {e.args}" for e in errors)
    assert token not in text
    assert basic not in text
    assert "<hidden>" in repr(provider)
    assert all(e.__cause__ is None for e in errors)


# -- configuration ------------------------------------------------------------------------
def test_base_url_comes_from_the_environment_and_twilio_edge_is_ignored(standin, monkeypatch):
    monkeypatch.setenv(API_BASE_ENV, standin.base_url)
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")

    with TwilioProvider(standin.account_sid, standin.auth_token) as provider:
        assert provider.check_credentials().status == "active"
        assert provider.base_url == standin.base_url


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"account_sid": "AC123", "auth_token": "t"}, "Account SID must be"),
        ({"account_sid": "AC" + "a" * 32}, "No Twilio Auth Token or API key"),
        ({"account_sid": "AC" + "a" * 32, "api_key_sid": "SK" + "1" * 32}, "both its SID"),
        (
            {"account_sid": "AC" + "a" * 32, "api_key_sid": "XX", "api_key_secret": "s"},
            "API key SID must be",
        ),
        (
            {"account_sid": "AC" + "a" * 32, "auth_token": "t", "base_url": "ftp://x"},
            "not an http(s) URL",
        ),
    ],
)
def test_bad_settings_are_refused_clearly(kwargs, message):
    with pytest.raises(FatalProviderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TwilioProvider(**kwargs)


def test_calls_from_many_threads(standin, provider):
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(5):
                provider.place_call(request(to=f"+1202555{offset * 10 + i:04d}"))
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len({call.sid for call in standin.calls}) == 40
    assert sum(standin.calls_created_per_destination().values()) == 40


# -- rate limits, queueing and bulk tracking ----------------------------------------------
def test_retry_after_of_a_429_reaches_the_engine(standin, provider):
    standin.set_rate_limit(1, "reject")
    provider.place_call(request())

    with pytest.raises(TransientProviderError) as caught:
        provider.place_call(request())

    assert (caught.value.http_status, caught.value.code) == (429, 20429)
    assert caught.value.retry_after == 1.0
    assert not caught.value.outcome_unknown  # never processed: safe to place again


def test_an_injected_429_without_retry_after_has_none(standin, provider):
    standin.faults(rate_429=1.0)

    with pytest.raises(TransientProviderError) as caught:
        provider.place_call(request())

    assert caught.value.retry_after is None


def test_queue_time_shows_twilio_queueing_beyond_the_accounts_rate(standin, provider):
    standin.set_rate_limit(2, "queue")

    states = [provider.place_call(request()) for _ in range(6)]

    waits = [state.queue_seconds for state in states]
    assert all(wait is not None for wait in waits)
    assert waits[-1] - waits[0] >= 2.4  # type: ignore[operator]  # six calls at 2 a second


def test_calls_since_reports_started_and_queued_calls_in_few_requests(clock):
    with (
        TwilioStandin(clock=clock, cps=0.05) as standin,  # one call dialed per 20 s
        TwilioProvider(standin.account_sid, standin.auth_token, base_url=standin.base_url) as p,
    ):
        old = p.place_call(request())
        clock.advance(3600)
        since = clock()
        placed = [p.place_call(request(to=f"+1415555{n:04d}")) for n in range(30)]
        clock.advance(45)  # three started, the rest wait in Twilio's queue
        standin.clear_requests()

        states = {state.call_id: state for state in p.calls_since(since)}

        assert {s.call_id for s in placed} <= set(states)
        assert old.call_id not in states
        assert sum(1 for s in states.values() if s.raw_status == "queued") >= 25
        assert len(standin.requests) == 2  # one page of started calls, one of queued ones
        assert_all_requests_conform(standin)


def test_status_callback_url_is_sent_with_each_create(standin):
    with TwilioProvider(
        standin.account_sid,
        standin.auth_token,
        base_url=standin.base_url,
        status_callback_url="https://dialer.example.com/twilio/status",
    ) as p:
        p.place_call(request())

    form = standin.requests[-1].form
    assert form["StatusCallback"] == ["https://dialer.example.com/twilio/status"]
    assert form["StatusCallbackEvent"] == ["answered", "completed"]
    assert_all_requests_conform(standin)


def test_a_bad_status_callback_url_is_refused_clearly(standin):
    with pytest.raises(FatalProviderError, match="not an http"):
        TwilioProvider(
            standin.account_sid, standin.auth_token, status_callback_url="dialer.example.com"
        )


def test_the_environments_proxy_settings_are_read_once_per_client_and_used(
    standin, provider, monkeypatch
):
    """`requests` scans the environment at every request; the provider's clients read
    its proxy settings once per host. A proxy named there is still used (a new provider
    sees a changed environment)."""
    import requests

    reads: list[str] = []
    real = requests.Session.merge_environment_settings

    def counted(self, url, *args):  # type: ignore[no-untyped-def]
        reads.append(url)
        return real(self, url, *args)

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counted)
    for _ in range(3):
        provider.place_call(request())
    provider.fetch_call(standin.calls[0].sid)
    assert len(reads) == 1 and len(standin.calls) == 3

    with socket.socket() as unused:  # a proxy address where nothing listens
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    proxied = TwilioProvider(standin.account_sid, standin.auth_token, base_url=standin.base_url)
    with proxied, pytest.raises(TransientProviderError):
        proxied.place_call(request())
    assert len(standin.calls) == 3  # the request went to the proxy, not to the stand-in
