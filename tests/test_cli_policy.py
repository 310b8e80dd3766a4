"""`batchcalls create` policy options, their --json and `show`, and `batchcalls dnc`."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.test_cli import create_args, ready  # noqa: F401  (fixture)


def test_create_with_every_policy_option_shows_them(run, ready: Path) -> None:  # noqa: F811
    result = run(
        *create_args(ready, "--json"),
        "--time-range", "09:00-12:00,14:00-18:00", "--blackout-dates", "2030-12-25",
        "--end", "2031-01-31 18:00", "--local-hours", "--max-attempts", "3",
        "--retry-delay", "30", "--retry-on", "no-answer,failed",
    )  # fmt: skip
    assert result.code == 0, result.err
    document = result.json["batch_call"]
    assert document["time_ranges"] == "09:00-12:00,14:00-18:00"
    assert document["blackout_dates"] == ["2030-12-25"]
    assert document["end_at"] == "2031-01-31T17:00:00+00:00"
    assert document["local_hours"] == "08:00-21:00"
    assert (document["max_attempts"], document["retry_delay_minutes"]) == (3, 30)
    assert document["retry_outcomes"] == ["no-answer", "failed"]
    shown = run("show", str(document["id"]))
    assert "Calling windows:      09:00 to 12:00, 14:00 to 18:00" in shown.out
    assert "Local hours:          08:00 to 21:00 in each recipient's own timezone" in shown.out
    assert "Up to 3 attempts, 30 min apart, after: no answer, failed" in shown.out
    assert "End date:             2031-01-31 18:00 (Europe/Paris)" in shown.out
    assert run("show", str(document["id"]), "--json").json["batch_call"]["max_attempts"] == 3


def test_defaults_are_one_window_no_local_hours_one_attempt(run, ready: Path) -> None:  # noqa: F811
    document = run(*create_args(ready, "--json")).json["batch_call"]
    assert document["time_ranges"] == "09:00-18:00"
    assert document["local_hours"] == "" and document["end_at"] == ""
    assert document["max_attempts"] == 1
    assert document["retries_display"] == "One attempt (no automatic retry)"


def test_bad_policy_options_are_all_reported_and_nothing_is_created(run, ready: Path) -> None:  # noqa: F811
    result = run(
        *create_args(ready, "--json"),
        "--time-range", "09:00-12:00,11:00-13:00", "--blackout-dates", "christmas",
        "--end", "someday", "--local-hours", "21:00-08:00", "--max-attempts", "12",
        "--retry-on", "voicemail",
    )  # fmt: skip
    assert result.code == 1
    problems = result.json["error"]["problems"]
    assert {"time_range", "blackout_dates", "end_at", "local_hours", "max_attempts"} <= set(
        problems
    )
    assert "overlap" in problems["time_range"]
    assert run("list", "--json").json == {"batch_calls": []}


def test_dnc_add_remove_import_export_history(run, tmp_path: Path) -> None:
    assert run("dnc", "add", "(202) 555-0143").out.strip() == (
        "Added +12025550143 to the do-not-call list."
    )
    assert "already" in run("dnc", "add", "+12025550143").out
    source = tmp_path / "dnc.csv"
    source.write_text("phone\n+12025550150\nnope\n2025550151\n", encoding="utf-8")
    imported = run("dnc", "import", str(source), "--json").json["do_not_call_import"]
    assert (imported["added"], imported["rejected_count"]) == (2, 1)
    assert imported["rejected"][0]["row_number"] == 3
    listing = run("dnc", "list", "--json").json["do_not_call"]
    assert listing["count"] == 3
    out = tmp_path / "out.csv"
    assert run("dnc", "export", str(out)).code == 0
    with open(out, encoding="utf-8-sig", newline="") as handle:
        assert [row[0] for row in csv.reader(handle)][1:] == [
            "+12025550143",
            "+12025550150",
            "+12025550151",
        ]
    assert run("dnc", "export", str(out)).code == 1  # exists, no --force
    assert run("dnc", "remove", "+12025550143").code == 0
    refused = run("dnc", "remove", "+12025550143")
    assert refused.code == 1 and "not on the do-not-call list" in refused.err
    bad = run("dnc", "add", "123")
    assert bad.code == 1 and "123" in bad.err
    history = run("dnc", "history", "--json").json["do_not_call_history"]
    assert [e["action"] for e in history] == ["REMOVE", "IMPORT", "ADD"]
    history_text = run("dnc", "history").out
    assert "Remove +12025550143 by" in history_text and "Import" in history_text
    # A bare "dnc" lists, as "dnc list" does (it failed with an AttributeError).
    bare = run("dnc")
    assert bare.code == 0 and bare.out == run("dnc", "list").out
    assert run("dnc", "--json").json == run("dnc", "list", "--json").json


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b""])
def test_dnc_import_of_an_unreadable_file_imports_nothing(run, tmp_path: Path, content) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    result = run("dnc", "import", str(path))
    assert result.code == 1 and "Nothing was imported" in result.err
    assert run("dnc", "list", "--json").json["do_not_call"]["count"] == 0


def test_create_validates_each_row_once(run, ready: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    from app.services import csv_import

    calls: list[str] = []
    original = csv_import.normalize_phone

    def counting(text: str, *args: object) -> str:
        calls.append(text)
        return original(text, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(csv_import, "normalize_phone", counting)
    path = tmp_path / "many.csv"
    path.write_text(
        "phone_number\n" + "".join(f"+1202555{i:04d}\n" for i in range(200)) + "nope\n",
        encoding="utf-8",
    )
    refused = run(*create_args(path))
    assert refused.code == 1 and "1 of 201 rows were rejected" in refused.err
    assert run("list", "--json").json == {"batch_calls": []}  # nothing kept
    calls.clear()
    created = run(*create_args(path, "--allow-rejected", "--json"))
    assert created.code == 0, created.err
    assert created.json["batch_call"]["total_recipients"] == 200
    assert created.json["import"]["rejected_count"] == 1
    assert len(calls) == 201  # one normalisation per row, not two


def test_show_json_has_a_forecast_while_scheduled_or_running(run, ready: Path) -> None:  # noqa: F811
    created = run(*create_args(ready, "--json", "--time-range", "all day", "--days", "mon-sun"))
    batch_id = str(created.json["batch_call"]["id"])
    shown = run("show", batch_id, "--json").json["batch_call"]
    forecast = shown["forecast"]
    assert forecast["calls_left"] == 3 and forecast["calls_per_hour"] == 60
    assert forecast["finish_at"] and forecast["display"].startswith("About ")
    assert "Estimated finish:" in run("show", batch_id).out
    assert run("cancel", batch_id).code == 0
    assert run("show", batch_id, "--json").json["batch_call"]["forecast"] is None


def test_the_local_hours_default_the_parser_shows_is_the_domains():
    """The parser writes the default out (building it must not import the policy module,
    `--help` stays fast): it must still be the domain's DEFAULT_LOCAL_HOURS."""
    from app.cli_policy import DEFAULT_LOCAL_HOURS_TEXT
    from app.models.policy import DEFAULT_LOCAL_HOURS

    start, end = DEFAULT_LOCAL_HOURS
    assert f"{start:%H:%M}-{end:%H:%M}" == DEFAULT_LOCAL_HOURS_TEXT
