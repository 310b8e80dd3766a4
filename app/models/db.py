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
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.models.sqlite_file import (
    DatabaseProblem,
    check_intact,
    copy_before_migration,
    copy_database,
    folder_lock,
    prepare_file,
    prepare_folder,
)

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

APP_NAME = "BatchCalls"
DATABASE_URL_ENV = "BATCHCALLS_DATABASE_URL"
DATABASE_URL_FILE_ENV = "BATCHCALLS_DATABASE_URL_FILE"
MIGRATION_LOCK = 4_206_111_505  # any constant shared by every Batch Calls process
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: The drivers Batch Calls is built and tested with, per backend.
SUPPORTED_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}
EXAMPLE_URLS = "sqlite:////path/to/batchcalls.sqlite3 or postgresql+psycopg://user@host/batchcalls"
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
    """The explicit URL, else BATCHCALLS_DATABASE_URL, else the URL in the file that
    BATCHCALLS_DATABASE_URL_FILE names (a password stays out of `ps` and the shell history),
    else the SQLite file in the data dir. An in-memory SQLite URL is refused: every command
    would start from nothing and keep nothing."""
    url = explicit or os.environ.get(DATABASE_URL_ENV, "").strip() or _url_from_file()
    url = url or f"sqlite:///{default_database_path()}"
    if is_in_memory(url):
        raise DatabaseProblem(
            "The database URL is not usable: an in-memory SQLite database keeps nothing "
            "once the command ends. Give a file: sqlite:////path/to/batchcalls.sqlite3 "
            f"(or unset {DATABASE_URL_ENV} to use the default file)."
        )
    return url


def _url_from_file() -> str:
    name = os.environ.get(DATABASE_URL_FILE_ENV, "").strip()
    if not name:
        return ""
    path = Path(name).expanduser()
    try:
        url = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise DatabaseProblem(
            f"Cannot read {DATABASE_URL_FILE_ENV} ({path}): {reason}. It names a file that "
            "holds the database URL on one line."
        ) from None
    if not url:
        raise DatabaseProblem(f"{DATABASE_URL_FILE_ENV} names {path}, which is empty.")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; make it yours alone: chmod 600 %s", path, path)
    return url


def is_in_memory(url: str | URL) -> bool:
    """A SQLite URL without a file (sqlite://, sqlite:///:memory:, file::memory:)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return False
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or parsed.query.get("mode") == "memory"
    )


#: scheme://user:password@rest, the password running to the last "@" (passwords contain
#: "@", "/" and ":" more often than host names and paths contain "@").
_USERINFO = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@]*):(?P<password>.*)@(?P<rest>[^@]*)$", re.S
)


def describe_url(url: str) -> str:
    """The URL as it may be shown or logged: its whole password replaced by ***."""
    match = _USERINFO.match(url)
    if match is None:
        return url
    return f"{match['head']}:***@{match['rest']}"


def encode_password(url: str) -> str:
    """The URL with an "@" typed in its password written as %40, so the driver connects to
    the right host as the right user (and no part of the password is taken for a host
    name that error messages would show)."""
    match = _USERINFO.match(url)
    if match is None or "@" not in match["password"]:
        return url
    return f"{match['head']}:{match['password'].replace('@', '%40')}@{match['rest']}"


def check_url(url: str) -> URL:
    """The parsed URL, or a DatabaseProblem for one Batch Calls cannot keep data in: not a
    URL, another database than SQLite or PostgreSQL, or another driver."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:
        raise DatabaseProblem(
            f"The database URL is not usable ({error}). Give one such as {EXAMPLE_URLS}."
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in SUPPORTED_DRIVERS:
        raise DatabaseProblem(
            f"The database URL is not usable: Batch Calls keeps its data in SQLite or "
            f"PostgreSQL, not {backend}. Give a URL such as {EXAMPLE_URLS}."
        )
    if driver != SUPPORTED_DRIVERS[backend]:
        shown = f"{backend}+{SUPPORTED_DRIVERS[backend]}" if backend == "postgresql" else backend
        raise DatabaseProblem(
            f'The database URL is not usable: the driver "{driver}" is not supported; write '
            f"it as {shown}://… (for example {EXAMPLE_URLS})."
        )
    return parsed


def sqlite_path(engine_or_url: Engine | str) -> Path | None:
    """The SQLite file behind an engine or URL; None for PostgreSQL."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    if url.get_backend_name() != "sqlite" or is_in_memory(url) or not url.database:
        return None
    return Path(url.database).expanduser()


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
    resolved = encode_password(url or database_url())
    parsed = check_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(resolved)
        if path is not None:  # in memory (a test's own database): nothing to prepare
            prepare_folder(path)
            with folder_lock(path):
                prepare_file(path)
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
    without Alembic).

    A SQLite file is checked first (a damaged one is refused: nothing is dialed from it)
    and copied before its schema changes; processes starting together take turns.
    """
    path = sqlite_path(engine)
    if path is None:
        _upgrade(engine)
        return
    with folder_lock(path):
        check_intact(path)
        if schema_is_current(engine):
            log.debug("database schema already at %s", ", ".join(sorted(head_revisions())))
            return
        if _has_tables(engine):
            copy_before_migration(path, "+".join(sorted(head_revisions())) or "head")
        _upgrade(engine)


def _has_tables(engine: Engine) -> bool:
    with engine.connect() as connection:
        return bool(inspect(connection).get_table_names())


def _upgrade(engine: Engine) -> None:
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


def backup_database(engine: Engine, destination: Path) -> Path:
    """A consistent copy of the SQLite file at `destination` (SQLite's online backup, safe
    while the application and the worker run); PostgreSQL is backed up with pg_dump."""
    path = sqlite_path(engine)
    if path is None:
        raise DatabaseProblem(
            f"{describe_url(str(engine.url))} is a PostgreSQL database: back it up with its "
            "own tool, which copies it consistently while Batch Calls runs: pg_dump "
            f'--format=custom --file "{destination}" "<the database URL>" (restore with '
            "pg_restore)."
        )
    destination = destination.expanduser()
    if destination.exists() or destination.is_symlink():
        raise DatabaseProblem(
            f"{destination} already exists; choose another name (nothing was replaced)."
        )
    if not destination.parent.is_dir():
        raise DatabaseProblem(f"The folder {destination.parent} does not exist.")
    if destination.resolve() == path.resolve():
        raise DatabaseProblem("The backup cannot replace the database itself.")
    return copy_database(path, destination)
