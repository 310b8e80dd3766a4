"""The same service on PostgreSQL, the shared deployment: migrations, actions, racing
desktops, searches and pages. make test starts the server (scripts/run_tests.sh)."""

from __future__ import annotations

import threading

import pytest

from app.models.db import open_database
from app.models.recipients import recount
from app.models.status import ActionNotAllowed, BatchStatus, RecipientStatus
from app.services.batch_calls import Actor, BatchCallService, NewBatchCall, RecipientQuery
from tests.conftest import FakeClock, fresh_postgres, make_rows

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_service(postgres_url):
    fresh_postgres(postgres_url)
    engine, sessions = open_database(postgres_url)
    service = BatchCallService(sessions, clock=FakeClock(), actor=Actor("qa", "pg-host"))
    yield service
    engine.dispose()


def test_migrations_and_the_whole_action_cycle(pg_service):
    service = pg_service
    agent = service.add_agent("Reminder", "url", "https://example.test/voice")
    number = service.add_from_number("+12025550100", "Main")
    spec = NewBatchCall("Flu Shots 100%", agent.id, number.id, timezone="Europe/Berlin")
    created = service.create(spec, [make_rows(500), make_rows(250, start=500)])
    assert created.status is BatchStatus.SCHEDULED and created.total_recipients == 750
    assert [b.name for b in service.list("flu shots 100%")] == ["Flu Shots 100%"]
    assert service.list("1000") == []
    assert service.count_recipients(created.id, RecipientQuery(search="person 12")) == 11
    page = service.recipients_page(created.id, RecipientQuery(search="202 555 0499"))
    assert [r.row_number for r in page] == [501]
    service.cancel(created.id)
    retried = service.retry(created.id)
    assert retried.status is BatchStatus.SCHEDULED and retried.retry_count == 1
    with service.sessions() as session:
        assert recount(session, created.id)[RecipientStatus.PENDING] == 750
    service.rename(created.id, "Renamed")
    assert [h.action for h in service.history(created.id)] == [
        "CREATE",
        "CANCEL",
        "RETRY",
        "RENAME",
    ]
    service.delete(created.id)
    assert service.list() == []


def test_two_desktops_racing_on_postgres(pg_service, postgres_url):
    service = pg_service
    agent = service.add_agent("Reminder", "url", "https://example.test/voice")
    number = service.add_from_number("+12025550100")
    created = service.create(NewBatchCall("Race", agent.id, number.id), [make_rows(5)])
    engine, sessions = open_database(postgres_url)
    other = BatchCallService(sessions, clock=FakeClock())
    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt(svc: BatchCallService) -> None:
        barrier.wait()
        try:
            svc.cancel(created.id)
            results.append("ok")
        except ActionNotAllowed:
            results.append("refused")

    threads = [threading.Thread(target=attempt, args=(s,)) for s in (service, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    engine.dispose()
    assert sorted(results) == ["ok", "refused"]
