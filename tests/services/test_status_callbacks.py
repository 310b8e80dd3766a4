"""Status callbacks: Twilio (the stand-in) posts call progress; only signed posts count."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests

from app.services.status_callbacks import StatusCallbackReceiver, callback_state
from app.services.telephony import AgentSpec, CallOutcome, CallRequest
from app.services.twilio_provider import TwilioProvider
from app.standin import TwilioStandin
from app.standin.twilio_server import twilio_signature

CALLER = "+14155550100"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def standin(clock) -> Iterator[TwilioStandin]:
    with TwilioStandin(clock=clock, seed=5) as server:
        yield server


@pytest.fixture
def receiver(standin) -> Iterator[StatusCallbackReceiver]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/twilio/status"
    with StatusCallbackReceiver(url, standin.auth_token, listen=("127.0.0.1", port)) as server:
        yield server


def test_signed_callbacks_report_how_calls_ended(standin, receiver, clock):
    standin.program("+14155551234", outcome="completed", ring_seconds=5, talk_seconds=30)
    standin.program("+14155555678", outcome="busy", ring_seconds=3)
    with TwilioProvider(
        standin.account_sid,
        standin.auth_token,
        base_url=standin.base_url,
        status_callback_url=receiver.public_url,
    ) as provider:
        agent = AgentSpec("url", "https://example.com/agent.xml")
        talked = provider.place_call(CallRequest(to="+14155551234", from_=CALLER, agent=agent))
        busy = provider.place_call(CallRequest(to="+14155555678", from_=CALLER, agent=agent))
    clock.advance(120)
    standin.deliver_callbacks()

    states = receiver.take()

    assert states[talked.call_id].outcome is CallOutcome.COMPLETED
    assert states[talked.call_id].duration_seconds == 30
    assert states[busy.call_id].raw_status == "busy"
    assert states[busy.call_id].outcome is CallOutcome.NO_ANSWER
    assert receiver.take() == {}  # each state is handed over once
    assert receiver.rejected == 0
    assert all(d.status == 204 for d in standin.callbacks)


def test_unsigned_or_wrongly_signed_posts_are_refused(receiver, standin):
    params = {"CallSid": "CA" + "1" * 32, "CallStatus": "completed", "CallDuration": "5"}
    forged = twilio_signature("another-token", receiver.public_url, params)

    unsigned = requests.post(receiver.public_url, data=params, timeout=5)
    wrong = requests.post(
        receiver.public_url, data=params, headers={"X-Twilio-Signature": forged}, timeout=5
    )
    right = requests.post(
        receiver.public_url,
        data=params,
        headers={
            "X-Twilio-Signature": twilio_signature(standin.auth_token, receiver.public_url, params)
        },
        timeout=5,
    )

    assert (unsigned.status_code, wrong.status_code, right.status_code) == (403, 403, 204)
    assert receiver.rejected == 2
    assert list(receiver.take()) == [params["CallSid"]]


def test_a_later_status_never_goes_back(receiver, standin):
    def post(status: str) -> None:
        params = {"CallSid": "CA" + "2" * 32, "CallStatus": status}
        signature = twilio_signature(standin.auth_token, receiver.public_url, params)
        requests.post(
            receiver.public_url, data=params, headers={"X-Twilio-Signature": signature}, timeout=5
        )

    post("completed")
    post("in-progress")  # arrived late

    assert receiver.take()["CA" + "2" * 32].raw_status == "completed"


def test_other_paths_and_bad_setup_are_refused(receiver):
    other = receiver.public_url.replace("/twilio/status", "/elsewhere")

    assert requests.post(other, data={}, timeout=5).status_code == 404
    with pytest.raises(ValueError, match="http"):
        StatusCallbackReceiver("dialer.example.com", "token")
    with pytest.raises(ValueError, match="auth token"):
        StatusCallbackReceiver("https://dialer.example.com/status", "")


def test_callback_parameters_without_a_call_are_ignored():
    assert callback_state({"CallStatus": "completed"}) is None
