"""The `batchcalls` command line: entry points, global options, output modes, confirmations,
settings, and what it refuses. Whole supervisor journeys are in
tests/acceptance/test_cli_journeys.py."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from app.cli import create_command, local_timezone_name, local_zone, main

REPO = Path(__file__).resolve().parent.parent
TWIML = "<Response><Say>Hello</Say></Response>"


@pytest.fixture
def ready(run, tmp_path) -> Path:
    """An agent, a from number and a three-row recipients file."""
    assert run("agents", "add", "--name", "Reminder", "--kind", "twiml", "--value", TWIML).code == 0
    assert run("numbers", "add", "+12025550100").code == 0
    path = tmp_path / "recipients.csv"
    path.write_text(
        "phone_number,name\n+12025550143,Ada\n+12025550144,Alan\n+12025550145,Grace\n",
        encoding="utf-8",
    )
    return path


def create_args(path: Path, *extra: str) -> list[str]:
    return [
        "create", "--name", "Spring", "--agent", "Reminder", "--from-number", "+12025550100",
        "--csv", str(path), "--timezone", "Europe/Paris", *extra,
    ]  # fmt: skip


# --------------------------------------------------------------------------- entry points


@pytest.mark.parametrize("entry", ["console script", "python -m app.cli"])
def test_real_entry_point_lists_the_database_named_by_the_environment(
    entry, run, ready, database_url
):
    assert run(*create_args(ready)).code == 0
    script = Path(sys.executable).with_name("batchcalls")
    if entry == "console script" and script.exists():
        command = [str(script)]
    else:
        command = [sys.executable, "-m", "app.cli"]
    env = {**os.environ, "BATCHCALLS_DATABASE_URL": database_url}

    done = subprocess.run(
        [*command, "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    [batch] = json.loads(done.stdout)["batch_calls"]
    assert (batch["name"], batch["status"], batch["total_recipients"]) == ("Spring", "SCHEDULED", 3)


def test_no_command_starts_the_desktop_application_with_the_global_options(monkeypatch):
    seen: list[Any] = []
    fake = types.ModuleType("app.views.app")
    fake.run_gui = lambda args: seen.append(args) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "app.views.app", fake)

    code = main(["--database-url", "sqlite:///elsewhere.sqlite3", "-v"])

    assert code == 7
    [args] = seen
    assert args.database_url == "sqlite:///elsewhere.sqlite3" and args.verbose == 1


def test_worker_command_runs_the_headless_worker(monkeypatch, database_url, capsys):
    calls: list[tuple[Any, ...]] = []

    def run_worker(url, *, stop_event=None, once=False, settings_overrides=None):
        calls.append((url, once, settings_overrides))
        return 3

    fake = types.ModuleType("app.services.worker")
    fake.run_worker = run_worker  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "app.services.worker", fake)

    code = main(["worker", "--once", "--pickup-interval", "0.5", "--database-url", database_url])

    assert code == 3
    assert calls == [(database_url, True, {"pickup_interval_seconds": 0.5})]


def test_worker_refuses_a_non_positive_pickup_interval(capsys):
    assert main(["worker", "--pickup-interval", "0"]) == 2
    assert "positive number of seconds" in capsys.readouterr().err


def test_database_url_from_the_environment(monkeypatch, database_url, capsys):
    monkeypatch.setenv("BATCHCALLS_DATABASE_URL", database_url)
    assert main(["numbers", "add", "+12025550100", "--label", "Env"]) == 0
    capsys.readouterr()

    assert main(["numbers", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["numbers"][0]["label"] == "Env"


def test_unusable_database_is_a_clear_error_that_hides_the_password(capsys):
    code = main(["--database-url", "postgresql+nosuchdriver://qa:hunter2@db/x", "list"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("batchcalls: error: The database URL is not usable")
    assert "hunter2" not in err


# --------------------------------------------------------------------------- global options


def test_json_is_accepted_before_and_after_the_command(run, ready):
    before = run("--json", "numbers")
    after = run("numbers", "list", "--json")

    assert before.json == after.json
    assert before.json["numbers"][0]["phone_number"] == "+12025550100"


def test_verbose_logs_to_stderr_only(run):
    result = run("list", "-v", "--json")

    assert result.json == {"batch_calls": []}
    assert "INFO" in result.err and "using database" in result.err


def test_help_exits_zero(capsys):
    assert main(["create", "--help"]) == 0
    assert "--allow-rejected" in capsys.readouterr().out


def test_usage_error_with_json_is_also_a_json_document(run):
    result = run("--json", "show")

    assert result.code == 2
    assert "usage:" in result.err
    assert result.json["error"]["message"] == "the following arguments are required: ID|NAME"


# --------------------------------------------------------------------------- create


def test_create_reports_every_problem_at_once_and_stores_nothing(run, ready):
    result = run(
        *create_args(ready, "--json", "--time-range", "9-17", "--days", "funday"),
        "--timezone", "Mars/Base", "--concurrency", "0", "--default-country", "ZZ",
    )  # fmt: skip

    assert result.code == 1
    problems = result.json["error"]["problems"]
    assert set(problems) == {
        "timezone",
        "time_range",
        "allowed_days",
        "reserved_concurrency",
        "default_country",
    }
    assert "IANA" in problems["timezone"] and "funday" in problems["allowed_days"]
    assert run("list", "--json").json == {"batch_calls": []}


def test_create_names_a_missing_agent_and_number(run, ready):
    args = create_args(ready)
    args[args.index("Reminder")] = "Nobody"
    args[args.index("+12025550100")] = "+12025550199"

    result = run(*args)

    assert result.code == 1
    assert 'No agent "Nobody"' in result.err and "batchcalls agents add" in result.err
    assert 'No from number "+12025550199"' in result.err


def test_create_with_an_inactive_agent_is_refused(run, ready):
    assert run("agents", "deactivate", "Reminder").code == 0

    result = run(*create_args(ready))

    assert result.code == 1
    assert "not active" in result.err


def test_create_uses_the_local_timezone_by_default(run, ready, monkeypatch):
    monkeypatch.setattr(create_command, "local_timezone_name", lambda: "Asia/Tokyo")
    args = create_args(ready, "--json")
    del args[args.index("--timezone") : args.index("--timezone") + 2]

    batch = run(*args).json["batch_call"]

    assert batch["timezone"] == "Asia/Tokyo"
    assert (batch["window_start"], batch["window_end"]) == ("09:00", "18:00")
    assert batch["allowed_days"] == [1, 2, 3, 4, 5]


def test_create_asks_for_a_timezone_when_the_computer_does_not_say(run, ready, monkeypatch):
    monkeypatch.setattr(create_command, "local_timezone_name", lambda: None)
    args = create_args(ready)
    del args[args.index("--timezone") : args.index("--timezone") + 2]

    result = run(*args)

    assert result.code == 1 and "--timezone" in result.err
    assert run("list", "--json").json["batch_calls"] == []


def test_export_to_an_unwritable_place_is_a_clear_error(run, ready, tmp_path):
    run(*create_args(ready))

    for target in (tmp_path / "missing-dir" / "out.csv", Path("/proc/out.csv")):
        result = run("export", "1", str(target))

        assert result.code == 1
        assert "Unexpected" not in result.err and str(target.parent) in result.err


def test_create_with_no_valid_recipient_is_refused_even_with_allow_rejected(run, ready, tmp_path):
    path = tmp_path / "none.csv"
    path.write_text("phone_number\nabc\n", encoding="utf-8")

    result = run(*create_args(path, "--allow-rejected"))

    assert result.code == 1 and "No valid recipients" in result.err


def test_create_from_a_missing_file_is_refused(run, ready, tmp_path):
    result = run(*create_args(tmp_path / "missing.csv"))

    assert result.code == 1
    assert "missing.csv" in result.err


def test_send_now_and_schedule_are_exclusive(run, ready):
    result = run(*create_args(ready, "--send-now", "--schedule", "2030-01-01 10:00"))

    assert result.code == 2 and "not allowed with argument" in result.err


def test_schedule_in_a_wrong_format_is_refused(run, ready):
    result = run(*create_args(ready, "--schedule", "01/02/2030 10am"))

    assert result.code == 1 and "YYYY-MM-DD HH:MM" in result.err


# --------------------------------------------------------------------------- show, delete, export


def test_show_filters_recipients_by_status_in_any_spelling(run, ready):
    batch_id = str(run(*create_args(ready, "--json")).json["batch_call"]["id"])

    pending = run("show", batch_id, "--status", "Pending", "--json").json
    none = run("show", batch_id, "--status", "no-answer")

    assert len(pending["recipients"]) == 3
    assert none.code == 0 and "(no recipients match)" in none.out
    bad = run("show", batch_id, "--status", "lost")
    assert bad.code == 2 and "not a recipient status" in bad.err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "deleted"), [("y\n", True), ("n\n", False), ("", False)])
def test_delete_asks_on_a_terminal(run, ready, monkeypatch, answer, deleted):
    assert run(*create_args(ready)).code == 0
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))

    result = run("delete", "1")

    assert "cannot be undone" in result.err  # the question
    assert (result.code == 0) is deleted
    assert (run("list", "--json").json["batch_calls"] == []) is deleted


def test_delete_without_yes_and_without_terminal_is_refused(run, ready, monkeypatch):
    assert run(*create_args(ready)).code == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))

    result = run("delete", "Spring")

    assert result.code == 1 and "Pass --yes" in result.err
    assert len(run("list", "--json").json["batch_calls"]) == 1


def test_export_and_template_never_replace_a_file_without_force(run, ready, tmp_path):
    assert run(*create_args(ready)).code == 0
    target = tmp_path / "keep.csv"
    target.write_text("precious", encoding="utf-8")

    export = run("export", "1", str(target))
    template = run("template", str(target))

    assert export.code == 1 and template.code == 1
    assert "--force" in export.err and "--force" in template.err
    assert target.read_text(encoding="utf-8") == "precious"
    assert run("export", "1", str(target), "--force").code == 0
    assert "+12025550143" in target.read_text(encoding="utf-8-sig")


def test_export_into_a_missing_folder_is_refused(run, ready, tmp_path):
    assert run(*create_args(ready)).code == 0

    result = run("export", "1", str(tmp_path / "nowhere" / "out.csv"))

    assert result.code == 1 and "does not exist" in result.err


# --------------------------------------------------------------------------- agents, numbers


def test_agent_value_from_a_file_and_masked_url_passwords(run, tmp_path):
    twiml = tmp_path / "agent.xml"
    twiml.write_text("<Response><Say>Hi {{name}}</Say></Response>\n", encoding="utf-8")

    from_file = run(
        "agents", "add", "--name", "File", "--kind", "twiml", "--value-file", str(twiml)
    )
    hook = run("agents", "add", "--name", "Hook", "--kind", "url", "--value",
               "https://qa:s3cret@example.com/voice", "--json")  # fmt: skip
    listed = run("agents")

    assert from_file.code == 0
    assert hook.json["agent"]["value"] == "https://qa:****@example.com/voice"
    assert "s3cret" not in listed.out and "https://qa:****@example.com/voice" in listed.out
    assert "Hi {{name}}" in listed.out


def test_agent_validation_and_unknown_agent(run):
    bad = run("agents", "add", "--name", "App", "--kind", "application", "--value", "XX1")
    missing = run("agents", "activate", "Ghost")
    bad_kind = run("agents", "add", "--name", "A", "--kind", "robot", "--value", "x")

    assert bad.code == 1 and "starts with AP" in bad.err
    assert missing.code == 1 and 'No agent "Ghost"' in missing.err
    assert bad_kind.code == 2


def test_invalid_from_number_is_refused(run):
    result = run("numbers", "add", "12ab", "--json")

    assert result.code == 1
    assert "phone_number" in result.json["error"]["problems"]


# --------------------------------------------------------------------------- settings


def test_settings_show_and_set(run):
    changed = run("settings", "set", "plan_concurrency", "25")
    flag = run("settings", "set", "answering_machine_detection", "yes", "--json")
    shown = run("settings")

    assert changed.code == 0 and "plan_concurrency = 25" in changed.out
    assert flag.json["settings"]["answering_machine_detection"] is True
    assert "plan_concurrency = 25" in shown.out
    assert "answering_machine_detection = true" in shown.out


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("plan_concurrency", "0", "between 1 and"),
        ("plan_concurrency", "many", "not a valid int"),
        ("answering_machine_detection", "maybe", "true or false"),
        ("password", "x", '"password" is not a setting'),
        ("default_country", "USA", "two-letter"),
    ],
)
def test_settings_refuse_bad_values(run, key, value, message):
    result = run("settings", "set", key, value)

    assert result.code == 1
    assert message in result.err
    assert "plan_concurrency = 10" in run("settings", "show").out


# --------------------------------------------------------------------------- local timezone


@pytest.fixture
def no_system_zone(monkeypatch, tmp_path):
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr(local_zone, "_ETC_LOCALTIME", tmp_path / "no-localtime")
    monkeypatch.setattr(local_zone, "_ETC_TIMEZONE", tmp_path / "no-timezone")
    monkeypatch.setattr(local_zone, "_qt_system_zone", lambda: "")
    return tmp_path


def test_local_timezone_from_tz(no_system_zone, monkeypatch):
    monkeypatch.setenv("TZ", "America/Chicago")
    assert local_timezone_name() == "America/Chicago"


def test_local_timezone_from_the_localtime_link(no_system_zone, monkeypatch):
    zoneinfo = no_system_zone / "usr" / "share" / "zoneinfo" / "Europe"
    zoneinfo.mkdir(parents=True)
    (zoneinfo / "Paris").write_bytes(b"TZif")
    link = no_system_zone / "localtime"
    link.symlink_to(zoneinfo / "Paris")
    monkeypatch.setattr(local_zone, "_ETC_LOCALTIME", link)

    assert local_timezone_name() == "Europe/Paris"


def test_local_timezone_from_etc_timezone_then_qt_then_unknown(no_system_zone, monkeypatch):
    monkeypatch.setenv("TZ", "Not/AZone")
    assert local_timezone_name() is None  # never a silent UTC for a New York supervisor
    monkeypatch.setattr(local_zone, "_qt_system_zone", lambda: "America/Denver")
    assert local_timezone_name() == "America/Denver"
    (no_system_zone / "no-timezone").write_text("Australia/Sydney\n", encoding="utf-8")
    assert local_timezone_name() == "Australia/Sydney"
