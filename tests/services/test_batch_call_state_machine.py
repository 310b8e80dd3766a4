"""Random sequences of supervisor actions and recipient outcomes: the status never leaves
the table, no recipient is lost or duplicated, and the counts always add up."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select, update
from sqlalchemy.pool import StaticPool

from app.models.db import open_database
from app.models.recipients import move_recipients, recount
from app.models.schema import BatchCall, Recipient
from app.models.status import (
    OPEN_RECIPIENT_STATUSES,
    Action,
    ActionNotAllowed,
    BatchStatus,
    RecipientStatus,
    actions_for,
)
from app.services.batch_calls import Actor, BatchCallService, NewBatchCall
from tests.conftest import FakeClock, make_rows

R = RecipientStatus
ACTIONS = [Action.PAUSE, Action.RESUME, Action.CANCEL, Action.RETRY, Action.DELETE]
TERMINAL = [R.COMPLETED, R.FAILED, R.NO_ANSWER]


class BatchCallMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine, self.sessions = open_database("sqlite://", poolclass=StaticPool)
        self.service = BatchCallService(self.sessions, clock=FakeClock(), actor=Actor("qa", "h"))
        agent = self.service.add_agent("A", "url", "https://example.test/voice")
        number = self.service.add_from_number("+12025550100")
        self.spec = NewBatchCall("Machine", agent.id, number.id, reserved_concurrency=3)
        self.phones: dict[int, Counter[str]] = {}

    def teardown(self) -> None:
        self.engine.dispose()

    def batch_ids(self) -> list[int]:
        return sorted(self.phones)

    @rule(size=st.integers(1, 12))
    def create(self, size: int) -> None:
        created = self.service.create(self.spec, [make_rows(size)])
        self.phones[created.id] = Counter(r.phone_number for r in make_rows(size))

    @precondition(lambda self: self.phones)
    @rule(data=st.data(), action=st.sampled_from(ACTIONS))
    def supervisor_action(self, data: st.DataObject, action: Action) -> None:
        batch_id = data.draw(st.sampled_from(self.batch_ids()))
        before = self.service.get(batch_id)
        allowed = action in actions_for(before.status, before.has_retryable_recipients)
        try:
            self.service.perform(batch_id, action)
        except ActionNotAllowed:
            assert not allowed, f"{action} refused on {before.status}"
            assert self.service.get(batch_id) == before
            return
        assert allowed, f"{action} accepted on {before.status}"
        if action is Action.DELETE:
            del self.phones[batch_id]

    @precondition(lambda self: self.phones)
    @rule(data=st.data())
    def engine_step(self, data: st.DataObject) -> None:
        """What the worker does: pick up, queue, dial, record outcomes, complete."""
        batch_id = data.draw(st.sampled_from(self.batch_ids()))
        n = data.draw(st.integers(1, 4))
        outcome = data.draw(st.sampled_from(TERMINAL))
        with self.sessions.begin() as session:
            batch = session.get(BatchCall, batch_id)
            assert batch is not None
            status = BatchStatus(batch.status)
            if status is BatchStatus.SCHEDULED:
                session.execute(
                    update(BatchCall)
                    .where(BatchCall.id == batch_id, BatchCall.status == "SCHEDULED")
                    .values(status="RUNNING")
                )
                return
            # Calls in progress finish whatever the batch status is.
            self._move(session, batch_id, R.IN_PROGRESS, outcome, n)
            if status is not BatchStatus.RUNNING:
                return
            self._move(session, batch_id, R.QUEUED, R.IN_PROGRESS, n)
            self._move(session, batch_id, R.PENDING, R.QUEUED, n)
            session.refresh(batch)
            open_count = sum(recount(session, batch_id)[s] for s in OPEN_RECIPIENT_STATUSES)
            if open_count == 0:
                batch.status = BatchStatus.COMPLETED.value

    @staticmethod
    def _move(session, batch_id: int, source: R, target: R, n: int) -> None:
        ids = session.scalars(
            select(Recipient.id)
            .where(Recipient.batch_call_id == batch_id, Recipient.status == source.value)
            .order_by(Recipient.id)
            .limit(n)
        ).all()
        if ids:
            move_recipients(session, batch_id, [source], target, where=[Recipient.id.in_(ids)])

    @invariant()
    def statuses_counts_and_recipients_hold(self) -> None:
        listed = {b.id: b for b in self.service.list()}
        assert set(listed) == set(self.phones)
        with self.sessions() as session:
            for batch_id, snapshot in listed.items():
                assert snapshot.status in BatchStatus
                assert sum(snapshot.counts.values()) == snapshot.total_recipients
                assert recount(session, batch_id) == snapshot.counts
                phones = Counter(
                    session.scalars(
                        select(Recipient.phone_number).where(Recipient.batch_call_id == batch_id)
                    ).all()
                )
                assert phones == self.phones[batch_id]
                if snapshot.status is BatchStatus.COMPLETED:
                    assert snapshot.counts[R.PENDING] == snapshot.counts[R.QUEUED] == 0


BatchCallMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBatchCallMachine = BatchCallMachine.TestCase
