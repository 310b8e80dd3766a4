"""Privacy and hygiene (issue 7 item 6): private files, no plaintext keyring, passwords
masked whole, no control characters in names, safe printing, quiet broken pipes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import keyring.core
import pytest

from app.models.db import describe_url, open_database
from app.services.secrets import (
    ACCOUNT_SID_ENV,
    AUTH_TOKEN_ENV,
    SecretStoreUnavailable,
    clear_twilio_credentials,
    load_twilio_credentials,
    store_twilio_credentials,
)
from tests.conftest import MemoryKeyring
from tests.test_cli import create_args, ready  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent
HOSTILE_NAME = "Spring\x1b]0;pwned\x07"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- files


def test_new_database_file_and_folder_are_the_users_alone(tmp_path):
    folder = tmp_path / "data" / "BatchCalls"
    engine, sessions = open_database(f"sqlite:///{folder / 'batchcalls.sqlite3'}")
    try:
        with sessions() as session:  # a connection: -wal and -shm exist now
            session.connection()
            files = sorted(folder.iterdir())
            assert {p.name for p in files} >= {
                "batchcalls.sqlite3",
                "batchcalls.sqlite3-wal",
                "batchcalls.sqlite3-shm",
            }
            for path in files:
                assert mode(path) == 0o600, path
    finally:
        engine.dispose()
    assert mode(folder) == 0o700 and mode(folder.parent) == 0o700


def test_an_older_world_readable_database_is_made_private(tmp_path):
    path = tmp_path / "batchcalls.sqlite3"
    engine, _ = open_database(f"sqlite:///{path}")
    engine.dispose()
    path.chmod(0o644)
    engine, _ = open_database(f"sqlite:///{path}")
    engine.dispose()
    assert mode(path) == 0o600


def test_exports_are_the_users_alone(run, ready, tmp_path):  # noqa: F811
    assert run(*create_args(ready)).code == 0
    target = tmp_path / "outcomes.csv"
    (tmp_path / "outcomes.csv.part").write_text("old", encoding="utf-8")
    (tmp_path / "outcomes.csv.part").chmod(0o644)

    assert run("export", "1", str(target)).code == 0

    assert mode(target) == 0o600


# --------------------------------------------------------------------------- keyring


class PlaintextKeyring(MemoryKeyring):
    """Stands in for keyrings.alt's PlaintextKeyring (base64 in a file)."""

    file_path = "/home/supervisor/.local/share/python_keyring/keyring_pass.cfg"


PlaintextKeyring.__module__ = "keyrings.alt.file"


@pytest.fixture
def plaintext_keyring(monkeypatch) -> PlaintextKeyring:
    backend = PlaintextKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    for name in (ACCOUNT_SID_ENV, AUTH_TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)
    return backend


def test_a_plaintext_keyring_is_refused_and_the_message_says_what_to_do(plaintext_keyring):
    with pytest.raises(SecretStoreUnavailable) as refused:
        store_twilio_credentials("AC" + "b" * 32, "s3cr3t-token")
    message = str(refused.value)
    assert "plain file" in message and PlaintextKeyring.file_path in message
    assert ACCOUNT_SID_ENV in message and AUTH_TOKEN_ENV in message
    assert plaintext_keyring.entries == {}  # nothing was written
    with pytest.raises(SecretStoreUnavailable):
        load_twilio_credentials()


def test_credentials_an_older_version_left_in_a_plaintext_keyring_can_be_removed(
    plaintext_keyring,
):
    plaintext_keyring.entries[("batchcalls", "twilio")] = "{}"
    clear_twilio_credentials()
    assert plaintext_keyring.entries == {}


def test_the_environment_still_works_beside_a_plaintext_keyring(plaintext_keyring, monkeypatch):
    monkeypatch.setenv(ACCOUNT_SID_ENV, "AC" + "c" * 32)
    monkeypatch.setenv(AUTH_TOKEN_ENV, "from-the-environment")
    credentials = load_twilio_credentials()
    assert credentials is not None and credentials.secret == "from-the-environment"


# --------------------------------------------------------------------------- passwords


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://qa:p@ss@word@db.example/calls",
        "postgresql+psycopg://qa:hunter2@db.example/calls",
        "postgresql+psycopg://qa:a:b/c@db.example/calls",
    ],
)
def test_passwords_are_masked_whole(url):
    shown = describe_url(url)
    assert shown == "postgresql+psycopg://qa:***@db.example/calls"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment.pop("BATCHCALLS_DATABASE_URL", None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=120,
    )


def test_a_password_on_the_command_line_is_warned_about_and_never_shown():
    result = cli("--database-url", "postgresql+psycopg://qa:p@ss@word@127.0.0.1:9/calls", "list")
    assert result.returncode == 1
    assert "--database-url carries a password" in result.stderr
    assert "BATCHCALLS_DATABASE_URL_FILE" in result.stderr
    for fragment in ("p@ss", "ss@word", "word@", "p%40ss"):
        assert fragment not in result.stderr + result.stdout
    assert "Unexpected error" not in result.stderr


def test_the_database_url_can_come_from_a_file(tmp_path):
    database = tmp_path / "calls.sqlite3"
    url_file = tmp_path / "database-url"
    url_file.write_text(f"sqlite:///{database}\n", encoding="utf-8")
    url_file.chmod(0o600)

    result = cli("list", "--json", env={"BATCHCALLS_DATABASE_URL_FILE": str(url_file)})

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"batch_calls": []}
    assert database.exists()


def test_an_unreadable_url_file_is_a_clear_refusal(tmp_path):
    result = cli("list", env={"BATCHCALLS_DATABASE_URL_FILE": str(tmp_path / "missing")})
    assert result.returncode == 1
    assert "Cannot read BATCHCALLS_DATABASE_URL_FILE" in result.stderr
    assert "Unexpected error" not in result.stderr


# --------------------------------------------------------------------------- names


def test_control_characters_are_refused_in_every_name_and_label(run, ready):  # noqa: F811
    created = run(*[HOSTILE_NAME if a == "Spring" else a for a in create_args(ready)])
    assert created.code == 1 and "control characters" in created.err
    assert "\x1b" not in created.err and "\x07" not in created.err

    assert run(*create_args(ready)).code == 0
    renamed = run("rename", "1", "Spring\u202eexe.gnp")
    assert renamed.code == 1 and "U+202E" in renamed.err

    agent = run("agents", "add", "--name", "Bell\x07", "--kind", "twiml", "--value", "<Response/>")
    assert agent.code == 1 and "control characters" in agent.err
    number = run("numbers", "add", "+12025550101", "--label", "Main\x1b[31m")
    assert number.code == 1 and "The label contains control characters" in number.err

    listed = run("list", "--json").json["batch_calls"]
    assert [b["name"] for b in listed] == ["Spring"]


def test_recipient_data_is_printed_escaped(run, ready):  # noqa: F811
    ready.write_text(
        "phone_number,name,note\n"
        "+12025550143,Ada\x1b]0;owned\x07,plain\n"
        "+12025550144,\u202eevil,ok\x9b2J\n",
        encoding="utf-8",
    )
    assert run(*create_args(ready)).code == 0

    shown = run("show", "1", "--recipients")
    as_json = run("show", "1", "--recipients", "--json")

    assert shown.code == 0
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in shown.out and raw not in as_json.out
    assert "Ada\\x1b]0;owned\\x07" in shown.out
    names = [r["name"] for r in as_json.json["recipients"]]
    assert "Ada\x1b]0;owned\x07" in names and "\u202eevil" in names  # the data is intact


# --------------------------------------------------------------------------- pipes


def _seed_for_pipes(url: str, batch_calls: int, recipients: int) -> None:
    from app.services.batch_calls import BatchCallService, NewBatchCall
    from tests.conftest import make_rows

    engine, sessions = open_database(url)
    try:
        service = BatchCallService(sessions)
        service.add_agent("R", "twiml", "<Response/>")
        service.add_from_number("+12025550100")
        agent, number = service.list_agents()[0], service.list_from_numbers()[0]
        for i in range(batch_calls):
            spec = NewBatchCall(name=f"Batch {i}", agent_id=agent.id, from_number_id=number.id)
            service.create(spec, [make_rows(recipients)])
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("command", "batch_calls", "recipients"),
    [(["show", "1", "--recipients"], 1, 5000), (["list"], 1500, 1)],
)
def test_output_cut_short_by_head_exits_quietly(tmp_path, command, batch_calls, recipients):
    """More output than a pipe holds (over 64 KB), read by `head -3`."""
    url = f"sqlite:///{tmp_path / 'batchcalls.sqlite3'}"
    _seed_for_pipes(url, batch_calls, recipients)
    pipeline = (
        f"{sys.executable} -m app --database-url '{url}' {' '.join(command)} | head -3 "
        "> /dev/null; echo ${PIPESTATUS[0]}"
    )
    result = subprocess.run(
        ["bash", "-c", pipeline], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.stderr == ""  # no traceback, no "Unexpected error (BrokenPipeError)"
    assert result.stdout.strip() in {"0", "141"}
