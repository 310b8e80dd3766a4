"""Recipient pages and searches that indexes serve: keyset pages in every order, searches
by the last digits, by a "+" prefix and by a name or surname, and the migration that fills
the search keys of recipients stored before it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import insert, select, text, update

from app.models import search_keys
from app.models.db import alembic_config, make_engine, migrate
from app.models.schema import Recipient
from app.models.status import RecipientStatus
from app.services.batch_calls import NewBatchCall, RecipientQuery, RecipientSort


@dataclass
class Row:
    row_number: int
    phone_number: str
    name: str | None
    variables: dict[str, str]


NAMES = ["Ada Lovelace", "grace hopper", None, "Alan Turing", "Room 101", "Édith Piaf", "ada"]


@pytest.fixture
def batch(service):
    agent = service.add_agent("Reminder", "url", "https://example.test/voice")
    number = service.add_from_number("+12025550100", "Main")
    rows = [
        Row(i + 2, f"+1202555{1000 + i * 37:04d}", NAMES[i % len(NAMES)], {}) for i in range(60)
    ]
    created = service.create(
        NewBatchCall("Search", agent.id, number.id, timezone="UTC"), [rows[:25], rows[25:]]
    )
    # Some outcomes, attempts and end times, so every sort has ties and empty values.
    ended = datetime(2026, 11, 30, 12, tzinfo=UTC)
    with service.sessions.begin() as session:
        ids = session.scalars(
            select(Recipient.id).where(Recipient.batch_call_id == created.id).order_by(Recipient.id)
        ).all()
        for n, rid in enumerate(ids):
            if n % 3 == 0:
                session.execute(
                    update(Recipient)
                    .where(Recipient.id == rid)
                    .values(
                        status=RecipientStatus.COMPLETED.value,
                        attempts=n % 4,
                        ended_at=ended + timedelta(minutes=n % 5),
                    )
                )
    return created


def walk(service, batch_id, query, limit=7):
    """Every recipient, page after page, each page read after the previous one's last."""
    seen, last = [], None
    while True:
        page = service.recipients_page(batch_id, query, limit=limit, after=last)
        if not page:
            return seen
        seen.extend(r.id for r in page)
        last = page[-1]


@pytest.mark.parametrize("sort", list(RecipientSort))
@pytest.mark.parametrize("descending", [False, True])
def test_keyset_pages_give_the_same_order_as_one_query(service, batch, sort, descending):
    query = RecipientQuery(sort=sort, descending=descending)
    whole = [r.id for r in service.recipients_page(batch.id, query, limit=1000)]
    assert len(whole) == 60
    assert walk(service, batch.id, query) == whole


def test_keyset_pages_within_a_status_filter(service, batch):
    query = RecipientQuery(status=RecipientStatus.COMPLETED, sort=RecipientSort.ENDED)
    whole = [r.id for r in service.recipients_page(batch.id, query, limit=1000)]
    assert len(whole) == 20
    assert walk(service, batch.id, query, limit=3) == whole


def found(service, batch_id, search):
    query = RecipientQuery(search=search)
    page = service.recipients_page(batch_id, query, limit=1000)
    assert service.count_recipients(batch_id, query) == len(page)
    return page


def test_search_by_the_last_digits(service, batch):
    page = found(service, batch.id, "1037")  # +12025551037 and nothing else ends so
    assert [r.phone_number for r in page] == ["+12025551037"]
    assert found(service, batch.id, "555-1037") == page
    assert found(service, batch.id, "(202) 555 1037") == page


def test_a_plus_searches_the_start_of_the_number(service, batch):
    assert len(found(service, batch.id, "+1 202 555")) == 60
    assert found(service, batch.id, "+44") == []
    assert found(service, batch.id, "1202") == []  # no number ends with 1202


def test_search_by_the_start_of_a_name_or_of_its_last_word(service, batch):
    assert {r.name for r in found(service, batch.id, "ADA")} == {"Ada Lovelace", "ada"}
    assert {r.name for r in found(service, batch.id, "hopp")} == {"grace hopper"}
    assert {r.name for r in found(service, batch.id, "alan t")} == {"Alan Turing"}
    assert {r.name for r in found(service, batch.id, "édith")} == {"Édith Piaf"}
    assert {r.name for r in found(service, batch.id, "101")} == {"Room 101"}
    assert found(service, batch.id, "%") == [] and found(service, batch.id, "_da") == []


def test_searches_and_pages_are_index_range_scans(service, batch, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("the query plan is SQLite's")
    engine = make_engine(database_url)
    plans = {}
    with engine.connect() as connection:
        for search in ("1037", "ada"):
            stmt = (
                select(Recipient.id)
                .where(
                    *service.recipient_queries._recipient_filter(
                        batch.id, RecipientQuery(search=search)
                    ),
                )
                .compile(engine, compile_kwargs={"literal_binds": True})
            )
            plans[search] = " ".join(
                row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {stmt}"))
            )
    engine.dispose()
    assert "ix_recipients_batch_digits" in plans["1037"]
    assert "ix_recipients_batch_name" in plans["ada"]
    assert "ix_recipients_batch_last_word" in plans["ada"]
    for plan in plans.values():
        assert "SCAN recipients" not in plan


def test_search_keys():
    assert search_keys.reversed_digits("+1 (202) 555-0143") == "34105552021"
    assert search_keys.reversed_digits("") is None
    assert search_keys.name_key("  Ada   LOVELACE ") == "ada lovelace"
    assert search_keys.last_word_key("Ada Lovelace") == "lovelace"
    assert search_keys.last_word_key("Ada") is None
    assert search_keys.prefix_upper_bound("ab") == "ac"


def test_the_migration_fills_the_keys_of_recipients_stored_before_it(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO agents (name, kind, value, active, created_at) "
                "VALUES ('A', 'url', 'https://example.test', 1, '2026-11-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO from_numbers (phone_number, label, source, active, created_at) "
                "VALUES ('+12025550100', '', 'simulated', 1, '2026-11-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO batch_calls (name, status, agent_id, from_number_id, from_number, "
                "send_type, timezone, window_start, window_end, allowed_days, "
                "reserved_concurrency, total_recipients, pending_count, queued_count, "
                "in_progress_count, completed_count, failed_count, no_answer_count, "
                "retry_count, created_at, updated_at, created_by) VALUES ('Old', 'COMPLETED', "
                "1, 1, '+12025550100', 'SEND_NOW', 'UTC', '09:00', '18:00', '1,2,3,4,5', 1, 2, "
                "0, 0, 0, 2, 0, 0, 0, '2026-11-01 00:00:00', '2026-11-01 00:00:00', '')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO recipients (batch_call_id, row_number, phone_number, name, status, "
                "attempts) VALUES (1, 2, '+12025550143', 'Ada Lovelace', 'COMPLETED', 1), "
                "(1, 3, '+12025550144', NULL, 'COMPLETED', 1)"
            )
        )
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Recipient.phone_digits_reversed, Recipient.name_key, Recipient.name_last_word_key
            ).order_by(Recipient.id)
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("34105552021", "ada lovelace", "lovelace"),
        ("44105552021", None, None),
    ]


def test_new_recipients_get_their_keys_on_insert(service, batch):
    with service.sessions() as session:
        session.execute(
            insert(Recipient),
            [
                {
                    "batch_call_id": batch.id,
                    "row_number": 99,
                    "phone_number": "+447700900123",
                    "name": "Joan Clarke",
                    "status": "PENDING",
                    "attempts": 0,
                }
            ],
        )
        session.commit()
    assert [r.name for r in found(service, batch.id, "clar")] == ["Joan Clarke"]
    assert [r.name for r in found(service, batch.id, "+44 7700")] == ["Joan Clarke"]


@pytest.mark.parametrize("search", ["ada", "1037", "+1 202", "101", "hopp", "zz"])
def test_common_searches_find_and_count_the_same_recipients(service, batch, search, monkeypatch):
    """A search that matches many recipients takes another plan (rows walked in order);
    it must find and count exactly what the index-union plan finds."""
    from app.services import recipient_queries

    query = RecipientQuery(search=search)
    rare = [r.id for r in service.recipients_page(batch.id, query, limit=1000)]
    rare_count = service.count_recipients(batch.id, query)
    monkeypatch.setattr(recipient_queries, "COMMON_SEARCH", 1)
    common = [r.id for r in service.recipients_page(batch.id, query, limit=1000)]
    assert common == rare
    assert service.count_recipients(batch.id, query) == rare_count == len(rare)
    assert walk(service, batch.id, query, limit=4) == rare


def test_a_recipient_found_two_ways_is_counted_once(service, batch):
    with service.sessions() as session:
        session.execute(
            insert(Recipient),
            [
                {
                    "batch_call_id": batch.id,
                    "row_number": 100,
                    "phone_number": "+12025559999",
                    "name": "Ada Adams",  # starts with "ada" and so does its last word
                    "status": "PENDING",
                    "attempts": 0,
                }
            ],
        )
        session.commit()
    names = [r.name for r in found(service, batch.id, "ada")]
    assert names.count("Ada Adams") == 1


def test_the_counters_answer_a_count_without_a_search_only(service, batch):
    """A view shows a search's first page before its count; the counters kept with every
    status change answer at once for all recipients or one status, never for a search."""
    assert service.stored_count(batch.id) == 60 == service.count_recipients(batch.id)
    assert service.stored_count(batch.id, RecipientQuery(search="ada")) is None
    assert service.stored_count(batch.id, RecipientQuery(search="  ")) == 60
    assert service.stored_count(batch.id + 1000) == 0  # deleted meanwhile
