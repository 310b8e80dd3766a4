"""A batch call whose recipients were not all stored is never dialed (SPEC section 3): every
action, the pickup and the dialer respect `import_complete`; a cancelled creation rolls back
and leaves nothing; the clean-up removes interrupted imports only, without long waits."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.models.imports import IMPORT_STALE_AFTER, ImportOwner, ImportState
from app.models.schema import AuditEvent, BatchCall, CallAttempt, Recipient
from app.models.status import Action, ActionNotAllowed, BatchStatus
from app.services import batch_creation
from app.services.batch_calls import BatchCallService, CreationCancelled
from app.services.csv_import import ImportCancelled
from tests.conftest import make_rows
from tests.services.engine_support import ScriptedProvider, new_batch
from tests.services.test_batch_calls import new_spec
from tests.services.test_engine import make_engine


class Died(BaseException):
    """Stands for the process being killed: nothing in create() runs after it."""


#: An importing process on another machine: only its heartbeat tells whether it runs.
ELSEWHERE = ImportOwner("another-boot-id", 1, "1", "other-host").text()


def interrupted_import(
    service: BatchCallService, agent_and_number, name="Interrupted", rows=3, owner=ELSEWHERE
):
    """What a SIGKILL in the middle of storing the recipients leaves behind."""
    agent, number = agent_and_number

    def chunks():
        yield make_rows(rows)
        raise Died

    original = service.creation._discard_failed_create
    service.creation._discard_failed_create = lambda batch_id: None  # type: ignore[method-assign]
    commit_rows = batch_creation.COMMIT_ROWS
    batch_creation.COMMIT_ROWS = 1  # each chunk committed before the process "dies"
    try:
        with pytest.raises(Died):
            service.create(new_spec(agent, number, name=name), chunks())
    finally:
        service.creation._discard_failed_create = original  # type: ignore[method-assign]
        batch_creation.COMMIT_ROWS = commit_rows
    (left,) = [b for b in service.list() if b.name == name]
    if owner is not None:
        force(service.sessions, left.id, import_owner=owner)
    return service.get(left.id)


def force(sessions, batch_id: int, **values) -> None:
    with sessions.begin() as session:
        session.execute(update(BatchCall).where(BatchCall.id == batch_id).values(**values))


def recipient_count(sessions, batch_id: int) -> int:
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Recipient)
                .where(Recipient.batch_call_id == batch_id)
            )
            or 0
        )


def add_attempt(sessions, batch_id: int) -> None:
    with sessions.begin() as session:
        recipient = session.scalars(
            select(Recipient).where(Recipient.batch_call_id == batch_id)
        ).first()
        assert recipient is not None
        session.add(
            CallAttempt(
                recipient_id=recipient.id,
                batch_call_id=batch_id,
                attempt_number=1,
                provider="simulation",
                to_number=recipient.phone_number,
                from_number="+12025550100",
            )
        )


# --------------------------------------------------------------------------- state shown
def test_an_import_in_progress_is_shown_importing_and_offers_nothing_that_dials(
    service, agent_and_number, clock
):
    left = interrupted_import(service, agent_and_number)
    assert left.status is BatchStatus.PENDING
    assert left.import_state is ImportState.IMPORTING  # this process is alive, heartbeat fresh
    assert left.status_display == "Importing…"
    assert left.actions == [Action.CANCEL, Action.DELETE, Action.RENAME, Action.RELOAD]
    clock.advance(seconds=IMPORT_STALE_AFTER.total_seconds() + 1)
    stale = service.get(left.id)
    assert stale.import_state is ImportState.INTERRUPTED
    assert stale.status_display == "Importing… (interrupted)"


def test_a_slow_import_by_a_live_process_on_this_machine_is_not_taken_for_dead(
    service, agent_and_number, clock
):
    if not ImportOwner.parse(ImportOwner.current()).machine:  # type: ignore[union-attr]
        pytest.skip("no boot id and PID namespace here: only the heartbeat tells")
    left = interrupted_import(service, agent_and_number, owner=None)  # this process
    clock.advance(hours=1)  # no heartbeat for an hour: a chunk waits for a lock
    assert service.get(left.id).import_state is ImportState.IMPORTING
    assert service.discard_abandoned_imports() == []


def test_a_finished_create_is_complete(service, agent_and_number, sessions):
    agent, number = agent_and_number
    created = service.create(new_spec(agent, number), [make_rows(2), make_rows(2, start=2)])
    assert created.import_state is ImportState.COMPLETE and created.import_complete
    assert created.status is BatchStatus.SCHEDULED
    with sessions() as session:
        row = session.get(BatchCall, created.id)
        assert row is not None
        assert (row.import_complete, row.import_heartbeat_at, row.import_owner) == (
            True,
            None,
            None,
        )


# --------------------------------------------------------------------------- actions
def test_cancel_then_retry_of_an_incomplete_import_is_refused_with_the_reason(
    service, agent_and_number
):
    left = interrupted_import(service, agent_and_number)
    cancelled = service.cancel(left.id)  # allowed: it stops nothing that could dial
    assert cancelled.status is BatchStatus.CANCELLED
    assert Action.RETRY not in cancelled.actions
    with pytest.raises(ActionNotAllowed, match="recipients were not all stored") as refused:
        service.retry(left.id)
    assert refused.value.incomplete_import
    assert service.get(left.id).status is BatchStatus.CANCELLED  # nothing changed


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (BatchStatus.PAUSED, Action.RESUME),
        (BatchStatus.FAILED, Action.RETRY),
        (BatchStatus.CANCELLED, Action.RETRY),
    ],
)
def test_no_action_makes_an_incomplete_import_dialable(
    service, agent_and_number, sessions, status, action
):
    left = interrupted_import(service, agent_and_number)
    force(sessions, left.id, status=status.value, failed_count=1, pending_count=2)
    snapshot = service.get(left.id)
    assert action not in snapshot.actions
    with pytest.raises(ActionNotAllowed, match="never dialed"):
        service.perform(left.id, action)
    assert service.get(left.id).status is status


def test_the_pickup_and_the_dialer_skip_an_incomplete_import(service, sessions, clock):
    whole = new_batch(service, 3, name="Whole")
    agent = service.list_agents()[0]
    number = service.list_from_numbers()[0]
    left = interrupted_import(service, ((agent, number)))
    # Forced into the statuses the dialer acts on (as a Cancel + Retry did before 0004).
    force(sessions, left.id, status=BatchStatus.SCHEDULED.value)
    provider = ScriptedProvider(clock)
    engine = make_engine(sessions, provider, clock)
    report = engine.tick()
    assert report.picked_up == [whole.id]
    assert service.get(left.id).status is BatchStatus.SCHEDULED
    force(sessions, left.id, status=BatchStatus.RUNNING.value)
    for _ in range(5):
        engine.tick()
        clock.advance(seconds=5)
    with sessions() as session:
        dialed = set(session.scalars(select(CallAttempt.batch_call_id)))
    assert dialed == {whole.id}
    # The control: the same batch call with its import complete is dialed at once.
    force(sessions, left.id, import_complete=True)
    for _ in range(5):  # the same ticks as above
        engine.tick()
        clock.advance(seconds=5)
    with sessions() as session:
        dialed = set(session.scalars(select(CallAttempt.batch_call_id)))
    assert dialed == {whole.id, left.id}


# --------------------------------------------------------------------------- cancel / roll back
def test_a_cancel_before_a_commit_rolls_back_and_leaves_nothing(
    service, agent_and_number, sessions, database_url
):
    agent, number = agent_and_number
    asked: list[int] = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) >= 3  # during the second chunk, before its commit

    with pytest.raises(CreationCancelled):
        service.create(
            new_spec(agent, number),
            [make_rows(5), make_rows(5, 5), make_rows(5, 10)],
            cancel=cancel,
        )
    assert service.list() == []
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Recipient)) == 0
    # Nothing holds the write lock: another connection writes at once.
    path = database_url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    other.rollback()
    other.close()


def test_a_failed_create_that_cannot_get_the_lock_leaves_an_undialable_import(
    service, agent_and_number, sessions, database_url, monkeypatch
):
    monkeypatch.setattr(batch_creation, "DISCARD_LOCK_WAIT_S", 0.05)
    agent, number = agent_and_number
    path = database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, timeout=0)

    def chunks():
        yield make_rows(3)
        holder.execute("BEGIN IMMEDIATE")  # another process writes for a long time
        raise ValueError("the file could not be read")

    with pytest.raises(ValueError, match="could not be read"):
        service.create(new_spec(agent, number, name="Locked out"), chunks())
    holder.rollback()
    stopping = {"now": False}

    def chunks_then_stop():
        yield make_rows(3)
        holder.execute("BEGIN IMMEDIATE")
        stopping["now"] = True
        raise ImportCancelled("The import was cancelled.")  # as the CSV reader does

    with pytest.raises(CreationCancelled) as cancelled:
        service.create(
            new_spec(agent, number, name="Stopped"),
            chunks_then_stop(),
            cancel=lambda: stopping["now"],
        )
    assert cancelled.value.left_batch_id is not None
    assert "never dialed" in str(cancelled.value)
    holder.rollback()
    left = service.list()
    assert {b.name for b in left} == {"Locked out", "Stopped"}
    assert not any(b.import_complete for b in left)
    assert not any({Action.RETRY, Action.RESUME} & set(b.actions) for b in left)
    holder.close()


# --------------------------------------------------------------------------- clean-up
def test_the_clean_up_removes_an_interrupted_import_and_keeps_everything_else(
    service, agent_and_number, sessions, clock
):
    agent, number = agent_and_number
    whole = service.create(new_spec(agent, number, name="Whole"), [make_rows(2)])
    with_attempt = interrupted_import(service, agent_and_number, name="Dialed by mistake")
    add_attempt(sessions, with_attempt.id)
    left = interrupted_import(service, agent_and_number)
    assert service.discard_abandoned_imports() == []  # alive and fresh: still importing
    clock.advance(seconds=IMPORT_STALE_AFTER.total_seconds() + 1)
    # A finished import is never removed, even with an old heartbeat left by a defect.
    force(sessions, whole.id, import_heartbeat_at=clock() - timedelta(days=1))
    assert service.discard_abandoned_imports() == [left.id]
    assert {b.name for b in service.list()} == {"Whole", "Dialed by mistake"}
    assert recipient_count(sessions, left.id) == 0
    assert recipient_count(sessions, whole.id) == 2
    with sessions() as session:
        discards = session.scalars(
            select(AuditEvent.batch_call_id).where(AuditEvent.action == "DISCARD")
        ).all()
    assert discards == [left.id]
    assert service.discard_abandoned_imports() == []


def test_an_import_whose_process_is_gone_is_removed_at_once(service, agent_and_number, sessions):
    left = interrupted_import(service, agent_and_number)
    mine = ImportOwner.parse(ImportOwner.current())
    assert mine is not None
    if not mine.machine:
        pytest.skip("no boot id and PID namespace here: only the heartbeat tells")
    # The same machine, a process that started at another time: not this one, gone.
    gone = ImportOwner(mine.machine, mine.pid, str(int(mine.started) + 1), mine.host)
    force(sessions, left.id, import_owner=gone.text())
    assert service.get(left.id).status_display == "Importing… (interrupted)"
    assert service.discard_abandoned_imports() == [left.id]


def test_another_machine_is_trusted_only_through_its_heartbeat(
    service, agent_and_number, sessions, clock
):
    left = interrupted_import(service, agent_and_number)
    assert service.discard_abandoned_imports() == []
    assert service.get(left.id).status_display == "Importing…"
    clock.advance(seconds=IMPORT_STALE_AFTER.total_seconds() + 1)
    assert service.discard_abandoned_imports() == [left.id]


def test_an_import_that_went_on_meanwhile_is_not_removed(
    service, agent_and_number, sessions, clock
):
    left = interrupted_import(service, agent_and_number)
    clock.advance(seconds=IMPORT_STALE_AFTER.total_seconds() + 1)
    from app.models import imports

    with sessions() as session:
        (found,) = imports.incomplete_imports_to_remove(session, clock())
    force(sessions, left.id, import_heartbeat_at=clock())  # its importer renewed it
    with sessions.begin() as session:
        assert (
            session.execute(BatchCall.__table__.delete().where(*imports.removable(found))).rowcount
            == 0
        )


def test_the_clean_up_does_not_wait_out_a_busy_database(
    service, agent_and_number, sessions, clock, database_url, monkeypatch
):
    monkeypatch.setattr(batch_creation, "CLEANUP_LOCK_WAIT_S", 0.05)
    left = interrupted_import(service, agent_and_number)
    clock.advance(seconds=IMPORT_STALE_AFTER.total_seconds() + 1)
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert service.discard_abandoned_imports() == []  # busy: tried again later
    finally:
        holder.rollback()
        holder.close()
    assert service.discard_abandoned_imports() == [left.id]
    # The connection's own long busy timeout is back for everything else.
    with sessions() as session:
        assert session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000


@pytest.mark.postgres
def test_on_postgres_an_incomplete_import_is_refused_and_a_locked_row_not_waited_for(
    postgres_url, monkeypatch
):
    from app.models.db import open_database
    from app.services.batch_calls import Actor
    from tests.conftest import FakeClock, fresh_postgres

    fresh_postgres(postgres_url)
    engine, sessions = open_database(postgres_url)
    clock = FakeClock()
    service = BatchCallService(sessions, clock=clock, actor=Actor("qa", "pg-host"))
    agent = service.add_agent("Reminder", "url", "https://example.test/voice")
    number = service.add_from_number("+12025550100")
    left = interrupted_import(service, (agent, number))
    service.cancel(left.id)
    with pytest.raises(ActionNotAllowed, match="never dialed"):
        service.retry(left.id)
    monkeypatch.setattr(batch_creation, "CLEANUP_LOCK_WAIT_S", 0.2)
    clock.advance(seconds=IMPORT_STALE_AFTER.total_seconds() + 1)
    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(select(BatchCall.id).where(BatchCall.id == left.id).with_for_update())
    try:
        assert service.discard_abandoned_imports() == []  # PostgreSQL would wait for ever
    finally:
        transaction.rollback()
        holder.close()
    assert service.discard_abandoned_imports() == [left.id]
    assert service.list() == []
    engine.dispose()
