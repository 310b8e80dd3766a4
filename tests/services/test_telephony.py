"""The provider interface: status mapping, error classification, TwiML templates."""

from __future__ import annotations

import pytest

from app.models.status import RecipientStatus
from app.services.telephony import (
    TWILIO_STATUS_TO_OUTCOME,
    AgentSpec,
    CallOutcome,
    CallRequest,
    FatalProviderError,
    RecipientProviderError,
    TransientProviderError,
    classify_twilio_error,
    outcome_for_status,
    render_twiml,
)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("queued", CallOutcome.IN_PROGRESS),
        ("initiated", CallOutcome.IN_PROGRESS),
        ("ringing", CallOutcome.IN_PROGRESS),
        ("in-progress", CallOutcome.IN_PROGRESS),
        ("completed", CallOutcome.COMPLETED),
        ("busy", CallOutcome.NO_ANSWER),
        ("no-answer", CallOutcome.NO_ANSWER),
        ("failed", CallOutcome.FAILED),
        ("canceled", CallOutcome.FAILED),
    ],
)
def test_twilio_status_maps_to_recipient_outcome(status, outcome):
    assert TWILIO_STATUS_TO_OUTCOME[status] is outcome
    assert outcome_for_status(status) is outcome


def test_the_table_covers_every_twilio_status_and_outcomes_are_recipient_statuses():
    assert set(TWILIO_STATUS_TO_OUTCOME) == {
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "no-answer",
        "failed",
        "canceled",
    }
    assert {o.value for o in CallOutcome} <= {s.value for s in RecipientStatus}


def test_unknown_status_is_still_in_progress_and_logged(caplog):
    assert outcome_for_status("teleporting") is CallOutcome.IN_PROGRESS
    assert "teleporting" in caplog.text


@pytest.mark.parametrize(
    ("http_status", "code", "expected"),
    [
        # Try again later.
        (429, 20429, TransientProviderError),
        (429, None, TransientProviderError),
        (500, 20500, TransientProviderError),
        (503, None, TransientProviderError),
        (502, 12345, TransientProviderError),
        (None, None, TransientProviderError),  # timeout, dropped or refused connection
        # One recipient.
        (400, 21201, RecipientProviderError),
        (400, 21211, RecipientProviderError),
        (400, 21214, RecipientProviderError),
        (400, 21215, RecipientProviderError),
        (400, 21216, RecipientProviderError),
        (400, 21217, RecipientProviderError),
        (400, 21612, RecipientProviderError),
        (400, 13224, RecipientProviderError),
        (404, 20404, RecipientProviderError),
        (400, 99999, RecipientProviderError),  # unknown 4xx: about this request
        # The whole batch call.
        (401, 20003, FatalProviderError),
        (401, None, FatalProviderError),
        (401, 20005, FatalProviderError),
        (403, 20008, FatalProviderError),
        (403, None, FatalProviderError),
        (400, 21210, FatalProviderError),
        (400, 21212, FatalProviderError),
        (400, 21606, FatalProviderError),
        (400, 21603, FatalProviderError),
        (400, 21205, FatalProviderError),
        (400, 21218, FatalProviderError),
        (400, 21219, FatalProviderError),
        (502, 11200, FatalProviderError),  # the code wins over the status
        (400, 21220, FatalProviderError),
    ],
)
def test_error_classification(http_status, code, expected):
    error = classify_twilio_error(http_status, code, "Twilio says no")

    assert type(error) is expected
    assert (error.http_status, error.code) == (http_status, code)
    if code is not None:
        assert str(code) in error.message


@pytest.mark.parametrize(
    ("http_status", "code", "advice"),
    [
        (401, 20003, "Settings"),
        (400, 21210, "Choose another from number"),
        (400, 21218, "Fix the agent"),
        (400, 21215, "Geo permissions"),
        (429, 20429, "Retrying"),
        (None, None, "Retrying"),
    ],
)
def test_error_messages_say_what_to_do(http_status, code, advice):
    assert advice in classify_twilio_error(http_status, code, "").message


def test_only_server_errors_leave_the_outcome_unknown():
    assert classify_twilio_error(500, 20500, "").outcome_unknown  # type: ignore[attr-defined]
    assert not classify_twilio_error(429, 20429, "").outcome_unknown  # type: ignore[attr-defined]


def test_unknown_4xx_keeps_twilios_message():
    assert "Twilio says no" in classify_twilio_error(400, 99999, "Twilio says no").message


def test_twiml_placeholders_are_filled_and_escaped():
    template = '<Say voice="{{ voice }}">Hello {{name}}, your code is {{Code}}.</Say>'

    rendered = render_twiml(template, {"name": "Ann & <Bob>", "voice": 'a"b', "code": "42"})

    assert rendered == '<Say voice="a&quot;b">Hello Ann &amp; &lt;Bob&gt;, your code is 42.</Say>'


def test_missing_variables_become_empty():
    assert render_twiml("<Say>Hi {{name}}{{ last name }}!</Say>", {}) == "<Say>Hi !</Say>"


def test_text_without_placeholders_is_unchanged():
    assert render_twiml("<Say>{ not a placeholder }</Say>", {"x": "1"}) == (
        "<Say>{ not a placeholder }</Say>"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"ring_timeout": 2}, "Ring timeout"), ({"time_limit": 0}, "time limit")],
)
def test_call_request_refuses_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CallRequest("+14155551234", "+14155550100", AgentSpec("url", "https://x"), **kwargs)


def test_agent_spec_refuses_unknown_kind_and_empty_value():
    with pytest.raises(ValueError, match="Unknown agent kind"):
        AgentSpec("sip", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fill it in"):
        AgentSpec("url", "  ")
