"""The batch call service on a real SQLite file: every (status, action) pair of SPEC
section 3, creation, retry semantics, queries and the audit trail."""

from __future__ import annotations

import csv
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.models.recipients import move_recipients, recount
from app.models.schema import AuditEvent, BatchCall, Recipient
from app.models.snapshots import SendType
from app.models.status import Action, ActionNotAllowed, BatchStatus, RecipientStatus
from app.services.batch_calls import (
    BatchCallService,
    NewBatchCall,
    NotFound,
    RecipientQuery,
    RecipientSort,
    ValidationError,
)
from tests.conftest import Row, make_rows
from tests.models.test_status import PAIRS, SPEC_TABLE

R = RecipientStatus


def new_spec(agent, number, **changes) -> NewBatchCall:
    values = dict(
        name="Spring promo",
        agent_id=agent.id,
        from_number_id=number.id,
        timezone="America/New_York",
        reserved_concurrency=2,
    )
    values.update(changes)
    return NewBatchCall(**values)


@pytest.fixture
def batch(service, agent_and_number):
    agent, number = agent_and_number
    return service.create(new_spec(agent, number), [make_rows(6)])


def force(sessions, batch_id: int, status: BatchStatus, outcomes: dict[R, int] | None = None):
    """Put a batch call (and some recipients) into a state, as the engine would have."""
    with sessions.begin() as session:
        session.execute(update(BatchCall).where(BatchCall.id == batch_id).values(status=status))
        for target, n in (outcomes or {}).items():
            ids = session.scalars(
                select(Recipient.id)
                .where(Recipient.batch_call_id == batch_id, Recipient.status == R.PENDING)
                .limit(n)
            ).all()
            move_recipients(session, batch_id, [R.PENDING], target, where=[Recipient.id.in_(ids)])


def perform(service: BatchCallService, batch_id: int, action: Action):
    if action is Action.RENAME:
        return service.rename(batch_id, "Renamed")
    return service.perform(batch_id, action)


@pytest.mark.parametrize(("status", "action"), PAIRS, ids=[f"{s}-{a}" for s, a in PAIRS])
def test_every_status_action_pair_on_the_database(service, sessions, batch, status, action):
    force(sessions, batch.id, status, {R.COMPLETED: 2, R.FAILED: 1, R.NO_ANSWER: 1})
    before = service.get(batch.id)
    expected = SPEC_TABLE[(status, action)]
    if expected is None:
        with pytest.raises(ActionNotAllowed) as refused:
            perform(service, batch.id, action)
        assert status.display_name in str(refused.value)
        assert service.get(batch.id) == before  # nothing changed
        return
    result = perform(service, batch.id, action)
    if action is Action.DELETE:
        assert service.find(batch.id) is None
        with sessions() as session:
            left = session.scalar(select(Recipient.id).where(Recipient.batch_call_id == batch.id))
        assert left is None
        return
    after = service.get(batch.id)
    assert after.status is expected
    assert result is not None and result.status is expected
    with sessions() as session:
        assert recount(session, batch.id) == after.counts


def test_retry_of_a_completed_batch_without_failures_is_refused(service, sessions, batch):
    force(sessions, batch.id, BatchStatus.COMPLETED, {R.COMPLETED: 6})
    assert Action.RETRY not in service.get(batch.id).actions
    with pytest.raises(ActionNotAllowed, match="nothing to retry"):
        service.retry(batch.id)
    assert service.get(batch.id).status is BatchStatus.COMPLETED


def test_retry_resets_only_failed_and_no_answer(service, sessions, batch):
    force(sessions, batch.id, BatchStatus.COMPLETED, {R.COMPLETED: 3, R.FAILED: 2, R.NO_ANSWER: 1})
    after = service.retry(batch.id)
    assert after.status is BatchStatus.SCHEDULED
    assert after.id == batch.id
    assert after.retry_count == 1
    assert after.counts[R.COMPLETED] == 3
    assert after.counts[R.PENDING] == 3
    assert after.counts[R.FAILED] == after.counts[R.NO_ANSWER] == 0


def test_cancel_keeps_uncalled_recipients_pending_for_a_later_retry(service, sessions, batch):
    force(sessions, batch.id, BatchStatus.RUNNING, {R.QUEUED: 2, R.IN_PROGRESS: 1})
    cancelled = service.cancel(batch.id)
    assert cancelled.counts[R.QUEUED] == 0
    assert cancelled.counts[R.PENDING] == 5
    assert cancelled.counts[R.IN_PROGRESS] == 1  # still tracked to its outcome
    assert cancelled.finished_at is not None
    retried = service.retry(batch.id)
    assert retried.counts[R.PENDING] == 5


def test_pause_puts_queued_back_and_says_why(service, sessions, batch):
    force(sessions, batch.id, BatchStatus.RUNNING, {R.QUEUED: 3})
    paused = service.pause(batch.id)
    assert paused.counts[R.QUEUED] == 0 and paused.counts[R.PENDING] == 6
    assert "Paused by qa" in (paused.waiting_reason or "")
    assert service.resume(batch.id).waiting_reason is None


def test_two_desktops_racing_cannot_both_pause(service, sessions, batch, clock):
    force(sessions, batch.id, BatchStatus.RUNNING)
    other = BatchCallService(sessions, clock=clock)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt(svc: BatchCallService) -> None:
        barrier.wait()
        try:
            svc.pause(batch.id)
            results.append("ok")
        except ActionNotAllowed:
            results.append("refused")

    threads = [threading.Thread(target=attempt, args=(s,)) for s in (service, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["ok", "refused"]
    with sessions() as session:
        pauses = session.scalars(select(AuditEvent).where(AuditEvent.action == "PAUSE")).all()
    assert len(pauses) == 1


def test_create_is_scheduled_with_all_recipients_and_an_audit_event(
    service, agent_and_number, sessions
):
    agent, number = agent_and_number
    created = service.create(
        new_spec(agent, number, name="  Flu shots  "),
        [make_rows(3), [], make_rows(2, start=3)],
    )
    assert created.name == "Flu shots"
    assert created.status is BatchStatus.SCHEDULED
    assert created.total_recipients == 5 and created.counts[R.PENDING] == 5
    assert created.agent_name == "Reminder"
    assert created.from_number == "+12025550100"
    assert created.allowed_days == frozenset({1, 2, 3, 4, 5})
    (event,) = service.history(created.id)
    assert (event.action, event.user, event.host) == ("CREATE", "qa", "test-host")
    assert "5 recipients" in event.detail


def test_create_is_pending_while_recipients_are_stored(service, agent_and_number):
    agent, number = agent_and_number
    seen: list[BatchStatus] = []

    def chunks():
        yield make_rows(2)
        seen.extend(b.status for b in service.list())
        yield make_rows(2, start=2)

    service.create(new_spec(agent, number), chunks())
    assert seen == [BatchStatus.PENDING]


def test_a_failed_import_stores_nothing(service, agent_and_number, sessions):
    agent, number = agent_and_number

    def chunks():
        yield make_rows(3)
        raise OSError("disk unplugged")

    with pytest.raises(OSError):
        service.create(new_spec(agent, number), chunks())
    assert service.list() == []
    with sessions() as session:
        assert session.scalar(select(Recipient.id)) is None


def test_create_needs_a_recipient(service, agent_and_number):
    agent, number = agent_and_number
    with pytest.raises(ValidationError, match="at least one"):
        service.create(new_spec(agent, number), [[]])
    assert service.list() == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"agent_id": 999}, "agent"),
        ({"from_number_id": 999}, "from_number"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"window_start": "25:00"}, "window_start"),
        ({"window_end": "09:00"}, "window_end"),
        ({"allowed_days": frozenset()}, "allowed_days"),
        ({"reserved_concurrency": 0}, "reserved_concurrency"),
        ({"send_type": SendType.SCHEDULE}, "scheduled_at"),
    ],
)
def test_create_refuses_bad_fields_with_reasons(service, agent_and_number, changes, field):
    agent, number = agent_and_number
    with pytest.raises(ValidationError) as refused:
        service.create(new_spec(agent, number, **changes), [make_rows(1)])
    assert field in refused.value.problems
    assert service.list() == []


def test_schedule_in_the_past_is_refused_and_future_is_kept(service, agent_and_number, clock):
    agent, number = agent_and_number
    past = clock() - timedelta(hours=1)
    with pytest.raises(ValidationError, match="in the past"):
        service.create(
            new_spec(agent, number, send_type=SendType.SCHEDULE, scheduled_at=past), [make_rows(1)]
        )
    future = clock() + timedelta(days=2)
    created = service.create(
        new_spec(agent, number, send_type=SendType.SCHEDULE, scheduled_at=future), [make_rows(1)]
    )
    assert created.scheduled_at == future


def test_inactive_agent_cannot_be_chosen(service, agent_and_number):
    agent, number = agent_and_number
    service.set_agent_active(agent.id, False)
    with pytest.raises(ValidationError, match="not active"):
        service.create(new_spec(agent, number), [make_rows(1)])
    assert [a.name for a in service.list_agents(active_only=True)] == []


@pytest.mark.parametrize(
    ("name", "ok"),
    [("", False), ("   ", False), ("a", True), ("x" * 100, True), ("x" * 101, False)],
)
def test_rename_limits(service, batch, name, ok):
    if ok:
        assert service.rename(batch.id, name).name == name.strip()
    else:
        with pytest.raises(ValidationError):
            service.rename(batch.id, name)
        assert service.get(batch.id).name == "Spring promo"


def test_list_search_is_case_insensitive_and_by_name_only(service, agent_and_number):
    agent, number = agent_and_number
    for name in ("Flu shots", "FLU reminders", "Dental 100%"):
        service.create(new_spec(agent, number, name=name), [make_rows(1)])
    assert {b.name for b in service.list("flu")} == {"Flu shots", "FLU reminders"}
    assert [b.name for b in service.list("100%")] == ["Dental 100%"]
    assert service.list("Reminder") != []  # the batch name, not the agent's
    assert [b.name for b in service.list("reminders")] == ["FLU reminders"]
    assert service.list("Austin") == []  # recipient variables are not searched
    assert len(service.list("")) == 3


def test_list_changed_builds_snapshots_only_for_rows_that_changed(
    service, agent_and_number, sessions
):
    """A poll hands back the versions it read; the next read builds snapshots only for
    the rows stored differently since (or named stale), and tells which ids remain."""
    agent, number = agent_and_number
    one, two, three = (
        service.create(new_spec(agent, number, name=name), [make_rows(2)])
        for name in ("One", "Two", "Three")
    )
    first = service.list_changed()
    assert {s.id for s in first.fresh} == set(first.versions) == {one.id, two.id, three.id}
    assert service.list_changed(first.versions).fresh == []
    force(sessions, two.id, BatchStatus.RUNNING, {R.COMPLETED: 1})
    service.rename(three.id, "Third")
    service.delete(one.id)
    second = service.list_changed(first.versions)
    assert set(second.versions) == {two.id, three.id}
    fresh = {s.id: s for s in second.fresh}
    assert set(fresh) == {two.id, three.id}
    assert fresh[two.id] == service.get(two.id)
    assert fresh[two.id].counts[R.COMPLETED] == 1 and fresh[three.id].name == "Third"
    # Named stale (shown from another read meanwhile): built again though unchanged.
    assert [s.id for s in service.list_changed(second.versions, stale={two.id}).fresh] == [two.id]
    assert service.list_changed(second.versions).fresh == []
    assert sorted(s.id for s in service.list()) == sorted(second.versions)


def test_list_changed_always_rebuilds_a_batch_call_still_importing(
    service, agent_and_number, sessions
):
    agent, number = agent_and_number
    batch = service.create(new_spec(agent, number), [make_rows(2)])
    with sessions.begin() as session:
        session.execute(
            update(BatchCall).where(BatchCall.id == batch.id).values(import_complete=False)
        )
    versions = service.list_changed().versions
    # Whether its import is alive depends on the time, not on the row alone.
    assert [s.id for s in service.list_changed(versions).fresh] == [batch.id]


def test_recipient_pages_filter_search_and_sort(service, agent_and_number, sessions):
    agent, number = agent_and_number
    rows = [
        Row(2, "+12025550001", "Zoe"),
        Row(3, "+12025550002", "adam"),
        Row(4, "+12025550003", "Mia"),
    ]
    created = service.create(new_spec(agent, number), [rows])
    force(sessions, created.id, BatchStatus.RUNNING, {R.FAILED: 1})
    by_name = service.recipients_page(created.id, RecipientQuery(sort=RecipientSort.NAME))
    assert [r.name for r in by_name] == ["adam", "Mia", "Zoe"]  # case does not matter
    failed = service.recipients_page(created.id, RecipientQuery(status=R.FAILED))
    assert [r.status for r in failed] == [R.FAILED]
    assert service.count_recipients(created.id, RecipientQuery(status=R.PENDING)) == 2
    assert [r.name for r in service.recipients_page(created.id, RecipientQuery(search="ADA"))] == [
        "adam"
    ]
    phone = service.recipients_page(created.id, RecipientQuery(search="(202) 555-0003"))
    assert [r.name for r in phone] == ["Mia"]
    page = service.recipients_page(created.id, offset=1, limit=1)
    assert [r.row_number for r in page] == [3]
    by_status = service.recipients_page(
        created.id, RecipientQuery(sort=RecipientSort.STATUS, descending=True)
    )
    assert by_status[0].status is R.PENDING and by_status[-1].status is R.FAILED


def test_export_writes_outcomes_and_variables(service, batch, tmp_path):
    path = tmp_path / "out.csv"
    assert service.export_recipients(batch.id, path) == 6
    text = path.read_text(encoding="utf-8-sig")
    header = text.splitlines()[0].split(",")
    assert header[:3] == ["phone_number", "name", "status"]
    assert "city" in header
    assert "+12025550000" in text


def test_unknown_ids_are_clear(service):
    with pytest.raises(NotFound, match="42"):
        service.get(42)
    with pytest.raises(ActionNotAllowed, match="no longer exists"):
        service.pause(42)
    with pytest.raises(ActionNotAllowed, match="no longer exists"):
        service.delete(42)


def test_delete_keeps_the_audit_trail(service, batch, sessions):
    service.delete(batch.id)
    with sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.batch_call_id == batch.id)
        ).all()
    assert actions == ["CREATE", "DELETE"]


def test_every_change_is_announced(sessions, clock, agent_and_number):
    agent, number = agent_and_number
    seen: list[int] = []
    svc = BatchCallService(sessions, clock=clock, on_change=seen.append)
    created = svc.create(new_spec(agent, number), [make_rows(2)])
    svc.rename(created.id, "Other")
    svc.cancel(created.id)
    svc.delete(created.id)
    assert seen == [created.id] * 4


def test_a_cancel_during_the_import_stands(service, agent_and_number):
    agent, number = agent_and_number

    def chunks():
        yield make_rows(2)
        (pending,) = service.list()
        service.cancel(pending.id)  # a second desktop, while the rows are stored
        yield make_rows(2, start=2)

    created = service.create(new_spec(agent, number), chunks())
    assert created.status is BatchStatus.CANCELLED
    assert created.total_recipients == 4  # all stored: a Retry reaches them
    assert [h.action for h in service.history(created.id)] == ["CANCEL", "CREATE"]


def test_an_import_whose_process_died_is_removed_by_the_sweep(
    service, agent_and_number, sessions, clock
):
    agent, number = agent_and_number
    alive = service.create(new_spec(agent, number, name="Finished"), [make_rows(2)])

    class Died(BaseException):
        """Stands for the process being killed: nothing in create() runs after it."""

    def chunks():
        yield make_rows(3)
        raise Died

    # Simulate a kill: the clean-up that an exception triggers must not run.
    original = service.creation._discard_failed_create
    service.creation._discard_failed_create = lambda batch_id: None  # type: ignore[method-assign]
    with pytest.raises(Died):
        service.create(new_spec(agent, number, name="Interrupted"), chunks())
    service.creation._discard_failed_create = original  # type: ignore[method-assign]
    with sessions.begin() as session:  # another machine's import: only its heartbeat tells
        session.execute(update(BatchCall).values(import_owner=None))
    (stuck,) = [b for b in service.list() if b.name == "Interrupted"]
    assert stuck.status is BatchStatus.PENDING
    assert service.discard_abandoned_imports() == []  # its heartbeat is fresh
    clock.advance(minutes=11)
    assert service.discard_abandoned_imports() == [stuck.id]
    assert [b.name for b in service.list()] == ["Finished"]
    with sessions() as session:
        assert (
            session.scalar(select(Recipient.id).where(Recipient.batch_call_id == stuck.id)) is None
        )
    assert service.get(alive.id).status is BatchStatus.SCHEDULED
    assert service.discard_abandoned_imports() == []


def test_accented_names_are_found_in_any_case(service, agent_and_number):
    agent, number = agent_and_number
    created = service.create(
        new_spec(agent, number, name="Élan Ölkampagne"), [[Row(2, "+12025550001", "Çelik")]]
    )
    for text in ("élan", "ÉLAN", "lan Ö", "Élan"):
        assert [b.id for b in service.list(text)] == [created.id], text
    assert service.resolve("élan ölkampagne").id == created.id
    assert (
        service.count_recipients(created.id, RecipientQuery(search="çELİK".replace("İ", "I"))) == 1
    )


def test_a_digit_search_also_matches_names(service, agent_and_number):
    agent, number = agent_and_number
    created = service.create(
        new_spec(agent, number),
        [
            [
                Row(2, "+12025550001", "Room 101"),
                Row(3, "+12025550101", "Ann"),
                Row(4, "+12025550002", "Bo"),
            ]
        ],
    )
    found = service.recipients_page(created.id, RecipientQuery(search="101"))
    assert sorted(r.name for r in found) == ["Ann", "Room 101"]


def test_ids_beyond_any_stored_id_are_simply_not_found(service):
    for reference in ("99999999999999999999", "999999999999", "²"):
        with pytest.raises(NotFound):
            service.resolve(reference)


def test_exported_variables_named_like_outcome_columns_keep_their_values(
    service, agent_and_number, tmp_path
):
    agent, number = agent_and_number
    created = service.create(
        new_spec(agent, number),
        [[Row(2, "+12025550001", "Ann", {"status": "vip", "attempts": "3", "city": "Oslo"})]],
    )
    path = tmp_path / "out.csv"
    service.export_recipients(created.id, path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["status"] == "PENDING" and row["var_status"] == "vip"
    assert row["var_attempts"] == "3" and row["city"] == "Oslo"
