"""The migrations build exactly the schema the mapped classes describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.models.db import make_engine, migrate
from app.models.schema import Base


def test_migrated_schema_matches_the_models(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)  # a second start is a no-op
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_postgres_schema_matches_the_models(postgres_url):
    from sqlalchemy import text

    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    migrate(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []
