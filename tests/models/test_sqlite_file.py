"""Damaged and surprising databases (issue 7 item 5): every case is refused with a message
that names the file and says what to do, nothing is re-created or dialed, and first starts
of several processes take turns."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine

from app.models.db import (
    alembic_config,
    backup_database,
    database_url,
    make_engine,
    open_database,
)
from app.models.sqlite_file import DatabaseProblem
from app.services.batch_calls import Actor, BatchCallService, NewBatchCall
from tests.conftest import FakeClock, make_rows

ROOT = Path(__file__).resolve().parents[2]


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`batchcalls ARGS` in a child process (what a supervisor's shell sees)."""
    env = dict(os.environ)
    env.pop("BATCHCALLS_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def assert_clear_refusal(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("batchcalls: error: "), result.stderr
    assert "Unexpected error" not in result.stderr
    assert "Database error" not in result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def make_batch(url: str, recipients: int = 2_000) -> int:
    db, sessions = open_database(url)
    try:
        service = BatchCallService(sessions, clock=FakeClock(), actor=Actor("qa", "test-host"))
        service.add_agent("Reminder", "twiml", "<Response><Say>Hello</Say></Response>")
        service.add_from_number("+12025550100", "Main line")
        agent, number = service.list_agents()[0], service.list_from_numbers()[0]
        spec = NewBatchCall(
            name="Flu shots",
            agent_id=agent.id,
            from_number_id=number.id,
            window_start="00:00",
            window_end="23:59",
            allowed_days=frozenset(range(1, 8)),
        )
        return service.create(spec, [make_rows(recipients)]).id
    finally:
        db.dispose()


def corrupt_recipients_table(path: Path) -> None:
    """Overwrite the root page of the recipients table with garbage (a bad disk sector)."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    root = connection.execute(
        "SELECT rootpage FROM sqlite_master WHERE type='table' AND name='recipients'"
    ).fetchone()[0]
    connection.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(bytes((i * 7 + 13) % 256 for i in range(page_size)))


# --------------------------------------------------------------------------- refused URLs


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:"])
def test_in_memory_database_is_refused(url):
    with pytest.raises(DatabaseProblem, match="in-memory SQLite database keeps nothing"):
        database_url(url)  # what the app, the worker and the CLI resolve a URL with
    assert_clear_refusal(cli("--database-url", url, "list"), "in-memory")


def test_in_memory_database_from_the_environment_is_refused(tmp_path):
    env = dict(os.environ, BATCHCALLS_DATABASE_URL="sqlite://")
    result = subprocess.run(
        [sys.executable, "-m", "app", "list"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert_clear_refusal(result, "in-memory")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://qa:hunter2@db/calls", ["not mysql", "postgresql+psycopg://"]),
        ("postgresql+psycopg2://qa:hunter2@db/calls", ['"psycopg2"', "postgresql+psycopg://"]),
        ("postgresql://qa:hunter2@db/calls", ['"psycopg2"', "postgresql+psycopg://"]),
        ("not a url", ["not usable"]),
    ],
)
def test_unknown_driver_or_backend_is_a_clear_refusal(url, words):
    result = cli("--database-url", url, "list")
    assert_clear_refusal(result, "The database URL is not usable", *words)
    assert "hunter2" not in result.stderr


# --------------------------------------------------------------------------- surprising files


def test_empty_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "batchcalls.sqlite3"
    path.touch()
    with pytest.raises(DatabaseProblem, match="empty file"):
        open_database(url_of(path))
    assert_clear_refusal(cli("--database-url", url_of(path), "list"), str(path), "0 bytes")
    assert path.stat().st_size == 0  # not silently re-created as a new database


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("phone numbers to call\n", encoding="utf-8")
    assert_clear_refusal(
        cli("--database-url", url_of(path), "list"), str(path), "not a SQLite database"
    )
    assert path.read_text(encoding="utf-8") == "phone numbers to call\n"


def test_read_only_file_is_refused(tmp_path):
    path = tmp_path / "batchcalls.sqlite3"
    make_batch(url_of(path), recipients=3)
    before = path.read_bytes()
    path.chmod(0o400)
    try:
        with pytest.raises(DatabaseProblem, match="read-only"):
            open_database(url_of(path))
        assert_clear_refusal(cli("--database-url", url_of(path), "list"), str(path), "chmod u+w")
    finally:
        path.chmod(0o600)
    assert path.read_bytes() == before


def test_parent_folder_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("not a folder", encoding="utf-8")
    url = url_of(blocker / "sub" / "batchcalls.sqlite3")
    with pytest.raises(DatabaseProblem, match="is a file, not a folder"):
        open_database(url)
    assert_clear_refusal(cli("--database-url", url, "list"), str(blocker), "not a folder")


def test_a_folder_given_as_the_database_is_refused(tmp_path):
    assert_clear_refusal(cli("--database-url", url_of(tmp_path), "list"), "is a folder")


# --------------------------------------------------------------------------- damaged files


def test_damaged_file_is_refused_at_start_up_and_never_dialed(tmp_path):
    from app.services.simulation import SimulationProvider
    from app.services.worker import EXIT_DATABASE, run_worker

    path = tmp_path / "batchcalls.sqlite3"
    make_batch(url_of(path))
    corrupt_recipients_table(path)

    with pytest.raises(DatabaseProblem) as refused:
        open_database(url_of(path))
    message = str(refused.value)
    assert str(path) in message and "damaged" in message and "restore a backup" in message

    placed: list[object] = []

    class Recording(SimulationProvider):
        def place_call(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            placed.append(args)
            return super().place_call(*args, **kwargs)

    code = run_worker(url_of(path), once=True, provider=Recording(clock=FakeClock()))
    assert code == EXIT_DATABASE
    assert placed == []

    result = cli("--database-url", url_of(path), "worker", "--once")
    assert result.returncode != 0
    assert "damaged" in result.stderr and str(path) in result.stderr
    assert "call placed" not in result.stderr
    assert_clear_refusal(cli("--database-url", url_of(path), "list"), "damaged", str(path))


def test_intact_file_passes_the_check(tmp_path):
    path = tmp_path / "batchcalls.sqlite3"
    make_batch(url_of(path), recipients=50)
    db, _ = open_database(url_of(path))
    db.dispose()


# --------------------------------------------------------------------------- copies


def test_a_copy_is_made_before_a_migration(tmp_path):
    path = tmp_path / "batchcalls.sqlite3"
    make_batch(url_of(path), recipients=5)
    db = make_engine(url_of(path))
    command.downgrade(alembic_config(db), "-1")  # one migration pending
    with db.connect() as connection:
        pending_from = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        previous = pending_from.scalar_one()
    db.dispose()
    assert not list(tmp_path.glob("*.before-*"))

    db, _ = open_database(url_of(path))
    db.dispose()

    copies = list(tmp_path.glob("batchcalls.before-*.sqlite3"))
    assert len(copies) == 1
    assert stat.S_IMODE(copies[0].stat().st_mode) == 0o600
    connection = sqlite3.connect(copies[0])
    assert connection.execute("SELECT version_num FROM alembic_version").fetchone() == (previous,)
    assert connection.execute("SELECT name FROM batch_calls").fetchall() == [("Flu shots",)]
    connection.close()

    db, _ = open_database(url_of(path))  # up to date: no second copy
    db.dispose()
    assert len(list(tmp_path.glob("batchcalls.before-*.sqlite3"))) == 1


def test_a_new_database_is_not_copied(tmp_path):
    db, _ = open_database(url_of(tmp_path / "batchcalls.sqlite3"))
    db.dispose()
    assert not list(tmp_path.glob("*.before-*"))


def test_backup_command_copies_a_consistent_private_file(tmp_path):
    path = tmp_path / "batchcalls.sqlite3"
    make_batch(url_of(path), recipients=25)
    target = tmp_path / "copies" / "monday.sqlite3"
    target.parent.mkdir()

    result = cli("--database-url", url_of(path), "backup", str(target))

    assert result.returncode == 0, result.stderr
    assert str(target) in result.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    connection = sqlite3.connect(target)
    assert connection.execute("PRAGMA quick_check").fetchone() == ("ok",)
    assert connection.execute("SELECT count(*) FROM recipients").fetchone() == (25,)
    connection.close()
    listed = cli("--database-url", url_of(target), "list", "--json")
    assert listed.returncode == 0 and "Flu shots" in listed.stdout


def test_backup_never_replaces_a_file(tmp_path):
    path = tmp_path / "batchcalls.sqlite3"
    make_batch(url_of(path), recipients=3)
    target = tmp_path / "keep.sqlite3"
    target.write_text("precious", encoding="utf-8")
    assert_clear_refusal(cli("--database-url", url_of(path), "backup", str(target)), "exists")
    assert target.read_text(encoding="utf-8") == "precious"


def test_backup_of_postgresql_advises_pg_dump(tmp_path):
    engine = create_engine("postgresql+psycopg://qa:hunter2@db.example/calls")
    with pytest.raises(DatabaseProblem) as refused:
        backup_database(engine, tmp_path / "calls.dump")
    assert "pg_dump" in str(refused.value) and "hunter2" not in str(refused.value)
    assert not (tmp_path / "calls.dump").exists()


# --------------------------------------------------------------------------- first start


def test_several_processes_starting_together_on_a_new_file(tmp_path):
    path = tmp_path / "new" / "batchcalls.sqlite3"
    start_at = time.time() + 3
    script = textwrap.dedent(
        f"""
        import time
        from app.models.db import open_database
        time.sleep(max(0.0, {start_at!r} - time.time()))
        engine, _ = open_database({url_of(path)!r})
        engine.dispose()
        print("ok")
        """
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outcomes, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == "ok"
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    connection.close()


def test_a_folder_made_by_another_process_between_two_looks_is_used(tmp_path, monkeypatch):
    """Processes starting together on a new file: the folder appears between "is it a
    folder?" and "is something there?"; that is not a file in the way."""
    from app.models import sqlite_file

    folder = tmp_path / "new"
    real_is_dir = Path.is_dir
    looked: list[Path] = []

    def is_dir(self: Path) -> bool:
        if self == folder and not looked:
            looked.append(self)
            folder.mkdir()  # the other process, right after this one's first look
            return False
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    sqlite_file.prepare_folder(folder / "batchcalls.sqlite3")
    assert looked and real_is_dir(folder)
