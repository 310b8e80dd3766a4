"""A supervisor's journeys through the `batchcalls` command line, in-process through
`app.cli.main` against a temporary SQLite file: set up an agent and a number, write the
template, create batch calls from good and bad CSV files, and act on them."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from app.models.recipients import move_recipients
from app.models.schema import BatchCall, Recipient
from app.models.status import RecipientStatus
from tests.conftest import CliResult

GOOD_ROWS = [
    ("+12025550143", "Ada Lovelace", "Washington"),
    ("+12025550144", "Alan Turing", "London"),
    ("+12025550145", "Grace Hopper", "Arlington"),
]


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone_number", "name", "city"])
        writer.writerows(rows)
    return path


@pytest.fixture
def setup(run):
    assert run("agents", "add", "--name", "Reminder", "--kind", "twiml", "--value",
               "<Response><Say>Hello {{name}}</Say></Response>").code == 0  # fmt: skip
    assert run("numbers", "add", "+12025550100", "--label", "Main line").code == 0


@pytest.fixture
def good_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "recipients.csv", GOOD_ROWS)


def create(run, csv_path: Path, *extra: str, name: str = "Spring reminders") -> CliResult:
    return run(
        "create", "--name", name, "--agent", "Reminder", "--from-number", "+12025550100",
        "--csv", str(csv_path), "--timezone", "America/New_York", *extra,
    )  # fmt: skip


@pytest.fixture
def batch_id(run, setup, good_csv) -> int:
    result = create(run, good_csv, "--json")
    assert result.code == 0, result.err
    return int(result.json["batch_call"]["id"])


def force_status(database, batch_id: int, status: str, failed: int = 0) -> None:
    """Put the batch call where the engine would have taken it (running, finished...)."""
    _, sessions = database
    with sessions.begin() as session:
        session.execute(update(BatchCall).where(BatchCall.id == batch_id).values(status=status))
        if failed:
            ids = [
                r.id
                for r in session.query(Recipient).filter_by(batch_call_id=batch_id).limit(failed)
            ]
            move_recipients(
                session,
                batch_id,
                [RecipientStatus.PENDING],
                RecipientStatus.FAILED,
                where=[Recipient.id.in_(ids)],
            )
        if status == "COMPLETED":
            move_recipients(session, batch_id, [RecipientStatus.PENDING], RecipientStatus.COMPLETED)


def test_setting_up_agents_and_numbers_lists_them(run, setup):
    agents = run("agents", "--json").json["agents"]
    numbers = run("numbers", "list", "--json").json["numbers"]

    assert [(a["name"], a["kind"], a["active"]) for a in agents] == [("Reminder", "twiml", True)]
    assert [(n["phone_number"], n["label"]) for n in numbers] == [("+12025550100", "Main line")]
    human = run("numbers")
    assert "+12025550100" in human.out and "Main line" in human.out


def test_template_then_create_from_it_sends_now(run, setup, tmp_path):
    template = tmp_path / "template.csv"

    written = run("template", str(template))
    created = create(run, template, "--send-now")

    assert written.code == 0 and str(template) in written.out
    header = template.read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.startswith("phone_number,name")
    assert created.code == 0, created.err
    assert 'Created batch call 1 "Spring reminders" with 2 recipients' in created.out
    shown = run("show", "1", "--json").json["batch_call"]
    assert shown["send_type"] == "SEND_NOW"
    assert shown["status"] == "SCHEDULED" and shown["total_recipients"] == 2


def test_list_human_and_json(run, batch_id):
    human = run("list")
    document = run("list", "--json").json
    searched = run("--json", "list", "--search", "AUTUMN").json

    assert human.code == 0
    assert "Spring reminders" in human.out and "Scheduled" in human.out
    [batch] = document["batch_calls"]
    assert batch["id"] == batch_id
    assert batch["status"] == "SCHEDULED" and batch["status_display"] == "Scheduled"
    assert batch["total_recipients"] == 3
    assert batch["counts"]["PENDING"] == 3 and batch["counts"]["COMPLETED"] == 0
    assert batch["actions"] == ["CANCEL", "DELETE", "RENAME", "RELOAD"]
    assert batch["timezone"] == "America/New_York"
    assert datetime.fromisoformat(batch["created_at"]).tzinfo is not None
    assert searched == {"batch_calls": []}


def test_show_details_recipients_and_history(run, batch_id):
    details = run("show", str(batch_id), "--recipients", "--history")
    by_name = run("show", "spring reminders", "--json", "--recipients", "--history").json

    assert details.code == 0
    for expected in ("Scheduled", "Reminder", "+12025550100", "09:00 to 18:00", "Monday to Friday"):
        assert expected in details.out
    assert "Grace Hopper" in details.out and "+12025550145" in details.out
    assert "Create" in details.out  # the audit trail
    assert by_name["batch_call"]["id"] == batch_id
    assert [r["phone_number"] for r in by_name["recipients"]] == [p for p, _, _ in GOOD_ROWS]
    assert by_name["recipients"][0]["variables"] == {"city": "Washington"}
    assert [e["action"] for e in by_name["history"]] == ["CREATE"]


def test_create_with_bad_rows_is_refused_and_stores_nothing(run, setup, tmp_path):
    bad = write_csv(
        tmp_path / "bad.csv",
        [GOOD_ROWS[0], ("12ab", "Letters", "X"), GOOD_ROWS[1], ("+1202", "Short", "Y")],
    )

    result = create(run, bad)

    assert result.code == 1
    assert "row 3" in result.out and "letters" in result.out
    assert "row 5" in result.out
    assert "2 of 4 rows were rejected" in result.err and "--allow-rejected" in result.err
    assert result.err.startswith("batchcalls: error: ")
    assert run("list", "--json").json == {"batch_calls": []}


def test_create_with_allow_rejected_skips_bad_rows(run, setup, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [GOOD_ROWS[0], ("12ab", "Letters", "X"), GOOD_ROWS[1]])

    result = create(run, bad, "--allow-rejected")

    assert result.code == 0, result.err
    assert "row 3" in result.out and "skipped" in result.out
    assert "with 2 recipients" in result.out
    [batch] = run("list", "--json").json["batch_calls"]
    assert batch["total_recipients"] == 2


def test_create_json_reports_the_import(run, setup, tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[0], ("nope", "Bad", "X"), GOOD_ROWS[1]]
    path = write_csv(tmp_path / "dups.csv", rows)

    document = create(run, path, "--allow-rejected", "--drop-duplicates", "--json").json

    report = document["import"]
    assert report["rejected"] == [
        {"row_number": 4, "phone_raw": "nope", "reason": report["rejected"][0]["reason"]}
    ]
    assert report["duplicates"] == [{"phone_number": "+12025550143", "row_numbers": [2, 3]}]
    assert document["batch_call"]["total_recipients"] == 2


def test_scheduled_batch_call_keeps_its_wall_time_and_timezone(run, setup, good_csv):
    result = create(
        run, good_csv, "--schedule", "2030-01-07 09:30", "--time-range", "10:00-16:30",
        "--days", "mon,wed", "--concurrency", "4", "--json",
    )  # fmt: skip

    batch = result.json["batch_call"]
    assert batch["send_type"] == "SCHEDULE"
    # 09:30 in New York in January is 14:30 UTC.
    assert datetime.fromisoformat(batch["scheduled_at"]) == datetime(2030, 1, 7, 14, 30, tzinfo=UTC)
    assert (batch["window_start"], batch["window_end"]) == ("10:00", "16:30")
    assert batch["allowed_days"] == [1, 3] and batch["reserved_concurrency"] == 4
    assert "2030-01-07 09:30 America/New_York" in run("show", str(batch["id"])).out


def test_schedule_in_the_past_is_refused(run, setup, good_csv):
    result = create(run, good_csv, "--schedule", "2020-01-01 10:00")

    assert result.code == 1
    assert "in the past" in result.err
    assert run("list", "--json").json == {"batch_calls": []}


def test_pause_of_a_scheduled_batch_is_refused_with_the_reason(run, batch_id):
    result = run("pause", str(batch_id))

    assert result.code == 1
    assert result.err.strip() == (
        'batchcalls: error: Cannot pause "Spring reminders" while it is Scheduled. '
        "Available now: Cancel, Delete, Rename, Reload."
    )
    assert run("show", str(batch_id), "--json").json["batch_call"]["status"] == "SCHEDULED"


def test_pause_and_resume_a_running_batch(run, batch_id, database):
    force_status(database, batch_id, "RUNNING")

    paused = run("pause", str(batch_id), "--json").json["batch_call"]
    resumed = run("resume", str(batch_id))

    assert paused["status"] == "PAUSED" and paused["actions"][0] == "RESUME"
    assert resumed.code == 0 and "now In Progress" in resumed.out


def test_cancel_then_retry_the_same_batch(run, batch_id):
    cancelled = run("cancel", str(batch_id))
    retried = run("--json", "retry", str(batch_id)).json["batch_call"]

    assert cancelled.code == 0 and "now Cancelled" in cancelled.out
    assert retried["id"] == batch_id
    assert retried["status"] == "SCHEDULED" and retried["retry_count"] == 1


def test_retry_of_a_completed_batch_without_failures_is_refused(run, batch_id, database):
    force_status(database, batch_id, "COMPLETED")

    result = run("retry", str(batch_id))

    assert result.code == 1
    assert "nothing to retry" in result.err


def test_retry_of_a_completed_batch_with_failures(run, batch_id, database):
    force_status(database, batch_id, "COMPLETED", failed=1)

    retried = run("retry", str(batch_id), "--json").json["batch_call"]

    assert retried["status"] == "SCHEDULED"
    assert retried["counts"]["PENDING"] == 1 and retried["counts"]["COMPLETED"] == 2


def test_rename_valid_and_too_long(run, batch_id):
    renamed = run("rename", str(batch_id), "  Autumn reminders  ")
    refused = run("rename", str(batch_id), "x" * 101, "--json")

    assert renamed.code == 0 and '"Autumn reminders"' in renamed.out
    assert refused.code == 1
    assert "101 characters" in refused.err and "maximum is 100" in refused.err
    assert refused.json["error"]["problems"] == {
        "name": "The name is 101 characters long; the maximum is 100."
    }
    assert run("show", str(batch_id), "--json").json["batch_call"]["name"] == "Autumn reminders"


def test_export_writes_recipients_with_variables(run, batch_id, tmp_path):
    target = tmp_path / "out.csv"

    result = run("export", str(batch_id), str(target))

    assert result.code == 0 and "Exported 3 recipients" in result.out
    with target.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["phone_number"], r["name"], r["status"], r["city"]) for r in rows] == [
        (phone, name, "PENDING", city) for phone, name, city in GOOD_ROWS
    ]


def test_export_with_a_status_filter(run, batch_id, database, tmp_path):
    force_status(database, batch_id, "COMPLETED", failed=1)
    target = tmp_path / "failed.csv"

    document = run("export", str(batch_id), str(target), "--status", "failed", "--json").json

    assert document["exported"]["recipients"] == 1
    with target.open(encoding="utf-8-sig", newline="") as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["FAILED"]


def test_delete_with_yes_removes_the_batch(run, batch_id):
    result = run("delete", str(batch_id), "--yes")

    assert result.code == 0 and "Deleted batch call" in result.out
    assert run("list", "--json").json == {"batch_calls": []}
    gone = run("show", str(batch_id))
    assert gone.code == 1 and f"No batch call with id {batch_id}" in gone.err


def test_unknown_id_is_exit_1(run, setup):
    for command in ("show", "pause", "cancel", "retry", "delete"):
        result = run(command, "42")
        assert result.code == 1, command
        assert "No batch call with id 42" in result.err


def test_usage_error_is_exit_2(run, setup):
    missing = run("create", "--name", "No csv")
    unknown = run("launch")

    assert missing.code == 2 and "required" in missing.err and "--csv" in missing.err
    assert unknown.code == 2 and "invalid choice" in unknown.err


def test_json_error_document(run, setup):
    result = run("--json", "cancel", "Nothing by that name")

    assert result.code == 1
    assert result.json == {
        "error": {
            "message": 'No batch call named "Nothing by that name". '
            'Run "batchcalls list" to see the batch calls.',
            "problems": {},
        }
    }
