"""What creation stores for the campaign policy: the policy columns, each recipient's
timezones (computed once at import), and the new outcomes counted, filtered and exported."""

from __future__ import annotations

import csv

from sqlalchemy import select

from app.models.recipients import move_recipient, recount
from app.models.schema import Recipient
from app.models.status import RecipientStatus
from app.services.batch_calls import NewBatchCall, RecipientQuery
from tests.conftest import Row


def test_recipient_timezones_are_stored_at_import(service, agent_and_number, sessions):
    agent, number = agent_and_number
    rows = [
        Row(2, "+13105550100"),  # Los Angeles
        Row(3, "+12085550100"),  # Idaho: Boise and Los Angeles
        Row(4, "+18005550100"),  # toll-free: only the country is known
    ]
    spec = NewBatchCall("Zones", agent.id, number.id, timezone="America/New_York")
    batch = service.create(spec, [rows])
    with sessions() as session:
        stored = session.scalars(
            select(Recipient.timezones)
            .where(Recipient.batch_call_id == batch.id)
            .order_by(Recipient.id)
        ).all()
    assert stored == ["America/Los_Angeles", "America/Boise,America/Los_Angeles", None]
    page = service.recipients_page(batch.id, RecipientQuery())
    assert page[1].timezones == ("America/Boise", "America/Los_Angeles")


def test_new_outcomes_are_counted_filtered_and_exported(
    service, agent_and_number, sessions, tmp_path
):
    agent, number = agent_and_number
    spec = NewBatchCall("Outcomes", agent.id, number.id, max_attempts=3, retry_delay_minutes=5)
    batch = service.create(spec, [[Row(2, "+13105550100"), Row(3, "+13105550101")]])
    with sessions.begin() as session:
        first, second = session.scalars(
            select(Recipient.id).where(Recipient.batch_call_id == batch.id).order_by(Recipient.id)
        ).all()
        assert move_recipient(
            session, first, batch.id, [RecipientStatus.PENDING], RecipientStatus.DO_NOT_CALL
        )
        assert move_recipient(
            session, second, batch.id, [RecipientStatus.PENDING], RecipientStatus.WAITING_RETRY
        )
        assert recount(session, batch.id)[RecipientStatus.DO_NOT_CALL] == 1
    after = service.get(batch.id)
    assert after.counts[RecipientStatus.DO_NOT_CALL] == 1
    assert after.counts[RecipientStatus.WAITING_RETRY] == 1
    assert after.finished_count == 1  # do-not-call is final, waiting for retry is not
    skipped = service.recipients_page(batch.id, RecipientQuery(status=RecipientStatus.DO_NOT_CALL))
    assert [r.phone_number for r in skipped] == ["+13105550100"]
    path = tmp_path / "out.csv"
    assert service.export_recipients(batch.id, path) == 2
    with open(path, encoding="utf-8-sig", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert exported[0]["status"] == "DO_NOT_CALL"
    assert exported[0]["status_display"] == "Skipped: do not call"
    assert exported[0]["timezones"] == "America/Los_Angeles"
    assert exported[1]["status_display"] == "Waiting for retry"
