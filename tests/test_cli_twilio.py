"""`batchcalls twilio` and `numbers add` in Twilio mode (issue 11 item 2), against the
local stand-in through the real `twilio` library, with a keyring in memory."""

from __future__ import annotations

import io
import logging

import keyring
import keyring.core
import pytest
from keyring.backends import null

from app.services.secrets import (
    ACCOUNT_SID_ENV,
    API_KEY_SID_ENV,
    AUTH_TOKEN_ENV,
    load_twilio_credentials,
)
from app.standin.twilio_server import TwilioStandin
from tests.conftest import MemoryKeyring

OWNED = "+14155550100"
SMS_ONLY = "+14155550101"
VERIFIED = "+14155550199"


@pytest.fixture
def memory_keyring(monkeypatch) -> MemoryKeyring:
    backend = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    for name in (ACCOUNT_SID_ENV, AUTH_TOKEN_ENV, API_KEY_SID_ENV):
        monkeypatch.delenv(name, raising=False)
    return backend


@pytest.fixture
def standin(monkeypatch):
    with TwilioStandin(seed=4) as server:
        monkeypatch.setenv("BATCHCALLS_TWILIO_API_BASE", server.base_url)
        yield server


@pytest.fixture
def asks(monkeypatch):
    """What `getpass` is answered (a terminal is pretended); records its prompts."""
    prompts: list[str] = []
    answers: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr("app.cli_twilio.getpass.getpass", fake_getpass)
    monkeypatch.setattr("app.cli_twilio._stdin_is_terminal", lambda: True)
    return answers, prompts


@pytest.fixture
def logged_in(run, memory_keyring, standin, asks):
    answers, _ = asks
    answers.append(standin.auth_token)
    assert run("twilio", "login", "--account-sid", standin.account_sid).code == 0
    return standin


# --------------------------------------------------------------------------- login


def test_login_asks_the_token_without_echo_checks_it_and_keeps_it_in_the_keyring(
    run, memory_keyring, standin, asks, caplog
):
    caplog.set_level(logging.DEBUG)
    answers, prompts = asks
    answers.append(standin.auth_token)

    result = run("twilio", "login", "--account-sid", standin.account_sid, "-vv")

    assert result.code == 0, result.err
    assert prompts == ["Auth Token (not shown): "]
    saved = load_twilio_credentials()
    assert saved is not None
    assert (saved.account_sid, saved.secret, saved.api_key_sid) == (
        standin.account_sid,
        standin.auth_token,
        None,
    )
    assert "Batch Calls stand-in account" in result.out and "active" in result.out
    for text in (result.out, result.err, caplog.text):
        assert standin.auth_token not in text
    assert run("settings", "--json").json["settings"]["twilio_account_sid"] == (standin.account_sid)
    assert any(r.path.endswith(f"/Accounts/{standin.account_sid}.json") for r in standin.requests)


def test_login_with_a_wrong_token_saves_nothing(run, memory_keyring, standin, asks):
    answers, _ = asks
    answers.append("0" * 32)

    result = run("twilio", "login", "--account-sid", standin.account_sid)

    assert result.code == 1
    assert "Twilio did not accept these credentials" in result.err
    assert "Nothing was saved" in result.err
    assert memory_keyring.entries == {}


def test_login_with_an_api_key_reads_the_secret_from_stdin(
    run, memory_keyring, standin, monkeypatch
):
    key_sid, secret = "SK" + "1" * 32, "api-key-secret-value"
    standin.add_api_key(key_sid, secret)
    monkeypatch.setattr("sys.stdin", io.StringIO(secret + "\n"))

    result = run(
        "twilio", "login", "--account-sid", standin.account_sid, "--api-key", key_sid,
        "--secret-stdin", "--json",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert result.json["twilio_login"]["api_key_sid"] == key_sid
    assert secret not in result.out
    saved = load_twilio_credentials()
    assert saved is not None and (saved.api_key_sid, saved.secret) == (key_sid, secret)


def test_login_without_a_terminal_refuses_rather_than_read_a_secret_it_would_echo(
    run, memory_keyring, standin, monkeypatch
):
    monkeypatch.setattr("app.cli_twilio._stdin_is_terminal", lambda: False)
    result = run("twilio", "login", "--account-sid", standin.account_sid)
    assert result.code == 1
    assert "--secret-stdin" in result.err
    assert memory_keyring.entries == {}


def test_login_without_a_keyring_says_to_use_the_environment(run, standin, asks, monkeypatch):
    monkeypatch.setattr(keyring.core, "_keyring_backend", null.Keyring())
    monkeypatch.delenv(ACCOUNT_SID_ENV, raising=False)
    answers, _ = asks
    answers.append(standin.auth_token)
    result = run("twilio", "login", "--account-sid", standin.account_sid)
    assert result.code == 1
    assert "BATCHCALLS_TWILIO_AUTH_TOKEN" in result.err


def test_login_refuses_a_malformed_account_sid_before_asking_twilio(
    run, memory_keyring, standin, asks
):
    answers, _ = asks
    answers.append("whatever")
    result = run("twilio", "login", "--account-sid", "AC123")
    assert result.code == 1
    assert "'AC' followed by 32 hexadecimal characters" in result.err
    assert standin.requests == []


# --------------------------------------------------------------------------- check


def test_check_shows_the_account_its_voice_numbers_and_apps(run, logged_in):
    result = run("twilio", "check")
    assert result.code == 0, result.err
    assert "Batch Calls stand-in account" in result.out and ": active." in result.out
    assert OWNED in result.out and VERIFIED in result.out
    assert SMS_ONLY not in result.out  # cannot place calls
    assert "Batch Calls demo agent" in result.out

    document = run("twilio", "check", "--json").json
    assert document["active"] is True
    assert {(n["phone_number"], n["source"]) for n in document["numbers"]} == {
        (OWNED, "incoming"),
        (VERIFIED, "verified"),
    }
    assert [a["sid"] for a in document["applications"]] == [logged_in.default_application_sid]


def test_check_of_a_suspended_account_fails_and_says_what_to_do(run, logged_in):
    logged_in.set_account_status("suspended")
    result = run("twilio", "check")
    assert result.code == 1
    assert "The Twilio check failed" in result.err
    assert "not active" in result.err and "Reactivate it in the Twilio Console" in result.err


def test_check_without_credentials_says_how_to_log_in(run, memory_keyring, standin):
    result = run("twilio", "check")
    assert result.code == 1
    assert 'Run "batchcalls twilio login"' in result.err
    assert standin.requests == []


# --------------------------------------------------------------------------- imports


def test_numbers_import_adds_the_accounts_numbers_with_their_source(run, logged_in):
    first = run("twilio", "numbers", "import", "--json")
    again = run("twilio", "numbers", "import")

    assert first.code == 0 and again.code == 0
    assert sorted(first.json["imported_numbers"]["added"]) == [OWNED, VERIFIED]
    assert "0 from number(s); 2 were there already" in again.out
    numbers = {n["phone_number"]: n for n in run("numbers", "--json").json["numbers"]}
    assert set(numbers) == {OWNED, VERIFIED}
    assert (numbers[OWNED]["source"], numbers[OWNED]["label"]) == ("incoming", "Main line")
    assert numbers[VERIFIED]["source"] == "verified"


def test_apps_import_adds_each_twiml_app_once_as_an_agent(run, logged_in):
    second_app = logged_in.add_application("Reminders")
    first = run("twilio", "apps", "import", "--json")
    again = run("twilio", "apps", "import", "--json")

    assert first.code == 0 and again.code == 0
    assert set(first.json["imported_apps"]["added"]) == {
        logged_in.default_application_sid,
        second_app,
    }
    assert again.json["imported_apps"]["added"] == []
    agents = {a["value"]: a for a in run("agents", "--json").json["agents"]}
    assert agents[second_app]["name"] == "Reminders"
    assert agents[second_app]["kind"] == "application"


# --------------------------------------------------------------------------- numbers add


def test_numbers_add_in_twilio_mode_checks_the_account_has_the_number(run, logged_in):
    assert run("settings", "set", "provider", "twilio").code == 0

    owned = run("numbers", "add", OWNED, "--json")
    verified = run("numbers", "add", VERIFIED, "--label", "Office", "--json")
    unowned = run("numbers", "add", "+14155550123")

    assert owned.code == 0 and owned.json["number"]["source"] == "incoming"
    assert owned.json["number"]["label"] == "Main line"  # the account's own name for it
    assert verified.json["number"]["source"] == "verified"
    assert verified.json["number"]["label"] == "Office"
    assert unowned.code == 1
    assert "neither owns nor has verified +14155550123" in unowned.err
    listed = [n["phone_number"] for n in run("numbers", "--json").json["numbers"]]
    assert listed == [OWNED, VERIFIED]


def test_numbers_add_in_simulation_mode_asks_nobody(run, memory_keyring, standin):
    result = run("numbers", "add", "+14155550123", "--json")
    assert result.code == 0
    assert result.json["number"]["source"] == "simulated"
    assert standin.requests == []


def test_numbers_add_in_twilio_mode_without_credentials_adds_nothing(run, memory_keyring, standin):
    assert run("settings", "set", "provider", "twilio").code == 0
    result = run("numbers", "add", OWNED)
    assert result.code == 1
    assert 'Run "batchcalls twilio login"' in result.err
    assert run("numbers", "--json").json["numbers"] == []


def test_login_asks_the_account_sid_too_when_it_is_not_given(
    run, memory_keyring, standin, asks, monkeypatch
):
    answers, prompts = asks
    answers.append(standin.auth_token)
    monkeypatch.setattr(
        "builtins.input", lambda prompt="": prompts.append(prompt) or standin.account_sid
    )

    result = run("twilio", "login")

    assert result.code == 0, result.err
    assert prompts == ["Twilio Account SID: ", "Auth Token (not shown): "]
    saved = load_twilio_credentials()
    assert saved is not None and saved.account_sid == standin.account_sid
