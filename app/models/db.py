"""Where the database is, how to connect to it, and bringing its schema up to date."""

from __future__ import annotations

import ast
import functools
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

APP_NAME = "BatchCalls"
DATABASE_URL_ENV = "BATCHCALLS_DATABASE_URL"
MIGRATION_LOCK = 4_206_111_505  # any constant shared by every Batch Calls process
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)

#: Every PostgreSQL session's limits, so that no process waits forever on another one
#: (a desktop whose lid closed inside a transaction, a frozen worker, a lost network):
#: a lock wait gives up, a runaway statement is stopped, a transaction left idle is ended
#: (its locks freed), and dead peers are noticed by TCP keepalives on both sides.
POSTGRES_SESSION_SETTINGS: dict[str, str] = {
    "lock_timeout": "10s",
    "statement_timeout": "5min",  # generous: a large import or export is many statements
    "idle_in_transaction_session_timeout": "25s",  # below the dialer lease's 30 s expiry
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}
#: libpq connection parameters: give up connecting after 10 s; client-side keepalives.
POSTGRES_CONNECT_ARGS: dict[str, int] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def default_database_path() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "batchcalls.sqlite3"


def database_url(explicit: str | None = None) -> str:
    """The explicit URL, else BATCHCALLS_DATABASE_URL, else the SQLite file in the data dir."""
    if explicit:
        return explicit
    env = os.environ.get(DATABASE_URL_ENV, "").strip()
    if env:
        return env
    return f"sqlite:///{default_database_path()}"


def describe_url(url: str) -> str:
    """The URL as it may be shown or logged: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLite's own lower() folds ASCII only: "Élan" would never match "élan".
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An Engine for the URL; SQLite gets WAL, foreign keys and a generous busy timeout."""
    resolved = database_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 60, "check_same_thread": False})
        engine = create_engine(resolved, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = _postgres_connect_args(
            dict(parsed.query), kwargs.get("connect_args", {})
        )
    return create_engine(resolved, **kwargs)


def _postgres_connect_args(url_query: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The session settings and keepalives; whatever the URL or the caller sets wins."""
    args: dict[str, Any] = {
        key: value for key, value in POSTGRES_CONNECT_ARGS.items() if key not in url_query
    }
    ours = " ".join(f"-c {name}={value}" for name, value in POSTGRES_SESSION_SETTINGS.items())
    theirs = given.get("options") or url_query.get("options") or ""
    args.update(given)
    args["options"] = f"{ours} {theirs}".strip()  # later -c settings override earlier ones
    return args


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


@functools.cache
def head_revisions() -> frozenset[str]:
    """The head revision(s) of the migrations, read from the `revision` and `down_revision`
    lines of their files without importing Alembic (which costs a command a quarter of a
    second). Empty when a file cannot be read that way: Alembic then decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        try:
            revision = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found.get("down_revision", "None"))
        except (KeyError, ValueError, SyntaxError):
            return frozenset()
        if not isinstance(revision, str):
            return frozenset()
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(d) for d in down)
    return frozenset(revisions - parents)


def schema_is_current(engine: Engine) -> bool:
    """True when the database's alembic_version names exactly the head revision(s)."""
    heads = head_revisions()
    if not heads:
        return False
    try:
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT version_num FROM alembic_version"))
            return {str(row[0]) for row in stored} == heads
    except SQLAlchemyError:  # no alembic_version table yet: a new database
        return False


def migrate(engine: Engine) -> None:
    """Apply every pending migration (run at each start; a no-op when up to date, checked
    without Alembic)."""
    if schema_is_current(engine):
        log.debug("database schema already at %s", ", ".join(sorted(head_revisions())))
        return
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # A migration may take long and may wait long: no session limits for it.
            connection.execute(text("SET LOCAL lock_timeout = 0"))
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            # Two desktops starting together on a new shared database: one migrates, the
            # other waits for the lock and then finds the schema up to date.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.info("database schema up to date at %s", describe_url(str(engine.url)))


def open_database(url: str | None = None, **kwargs: Any) -> tuple[Engine, sessionmaker[Session]]:
    """Connect, migrate, and return the engine with a session factory."""
    engine = make_engine(url, **kwargs)
    migrate(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)
