"""The local SQLite database file: refuse what is not one, create it private, check it is
intact, copy it (before a migration, or on request) and serialise first starts.

Every refusal is a `DatabaseProblem` whose message names the file and says what to do; the
command line, the worker and the desktop application show it as is.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
#: The database file, its -wal/-shm companions, copies and exports: the user's alone.
PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700
COMPANIONS = ("-wal", "-shm")
#: SQLite's answer to a quick_check that found nothing wrong.
INTACT = "ok"


class DatabaseProblem(Exception):
    """A database that cannot or must not be used; the message says which and what to do."""


def _is_writable(path: Path) -> bool:
    """Writable by this user: the access check, and the owner's write bit (root passes every
    access check, but a file made read-only on purpose stays read-only for us too)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & stat.S_IWUSR)


def prepare_folder(path: Path) -> None:
    """The folder that holds `path`: refused when a file is in the way or it is read-only;
    created 0700 (each missing level) otherwise."""
    folder = path.parent
    missing: list[Path] = []
    for level in (folder, *folder.parents):
        if level.is_dir():
            break
        if level.exists() or level.is_symlink():
            if level.is_dir():  # another process starting together made it just now
                break
            raise DatabaseProblem(
                f"Cannot use the database {path}: {level} is a file, not a folder. Move that "
                "file away, or choose another location with BATCHCALLS_DATABASE_URL "
                "(sqlite:////path/to/batchcalls.sqlite3)."
            )
        missing.append(level)
    for level in reversed(missing):
        try:
            level.mkdir(mode=PRIVATE_FOLDER)
        except FileExistsError:  # another process made it a moment ago
            pass
        except OSError as error:
            raise DatabaseProblem(
                f"Cannot create the folder {level} for the database {path}: "
                f"{error.strerror or error}. Create it yourself or choose another location "
                "with BATCHCALLS_DATABASE_URL."
            ) from error
    if not _is_writable(folder):
        raise DatabaseProblem(
            f"The folder {folder} is read-only: Batch Calls writes the database {path.name} "
            "and its journal there. Give yourself write permission (chmod u+w) or choose "
            "another location with BATCHCALLS_DATABASE_URL."
        )


@contextmanager
def folder_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the database's folder, shared by every Batch Calls process on
    this machine: the first start creates and migrates the file while the others wait
    (where the platform has no flock, start one process first)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory folder locks
        yield
        return
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _make_private(path: Path) -> None:
    """Take group and others' access away from a file of ours (an older installation made
    the database 0644)."""
    try:
        info = path.stat()
    except OSError:
        return
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
        log.info("made %s readable by its owner only", path)


def prepare_file(path: Path) -> None:
    """Refuse a path that is not a usable SQLite database; create a new one 0600 (with its
    header written, so a second process never sees an empty file). Call under
    `folder_lock`."""
    if path.is_dir():
        raise DatabaseProblem(
            f"{path} is a folder, not a database file. Give the path of a file, for example "
            f"sqlite:///{path / 'batchcalls.sqlite3'}."
        )
    if not path.exists():
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        except FileExistsError:
            pass  # made meanwhile by a process on another machine (a network folder)
        except OSError as error:
            raise DatabaseProblem(
                f"Cannot create the database {path}: {error.strerror or error}."
            ) from error
        else:
            os.close(descriptor)
            connection = sqlite3.connect(path)
            try:  # writes the header: from now on it is a database, not an empty file
                connection.execute("PRAGMA journal_mode=WAL")
            finally:
                connection.close()
            log.info("created the database %s (readable by its owner only)", path)
            return
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        raise DatabaseProblem(
            f"Cannot read the database {path}: {error.strerror or error}. Check its permissions."
        ) from error
    if not header:
        raise DatabaseProblem(
            f"{path} is an empty file (0 bytes), not a Batch Calls database. If it should hold "
            "your batch calls, restore it from a backup; to start afresh, move it away and "
            "start again (a new database is created)."
        )
    if header != SQLITE_HEADER:
        raise DatabaseProblem(
            f"{path} is not a SQLite database (it starts with other data). Check the path "
            "(BATCHCALLS_DATABASE_URL / --database-url), or move the file away to start afresh."
        )
    if not _is_writable(path):
        raise DatabaseProblem(
            f"The database {path} is read-only: Batch Calls records every status, call and "
            "action in it. Give yourself write permission (chmod u+w) or copy it to a "
            "writable place and point BATCHCALLS_DATABASE_URL at the copy."
        )
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in COMPANIONS)):
        _make_private(candidate)


def is_damage(error: BaseException) -> bool:
    """SQLite's "database disk image is malformed" / "file is not a database" (raised as
    the plain DatabaseError, unlike locks, I/O and constraint errors), also wrapped by
    SQLAlchemy."""
    original = getattr(error, "orig", error)
    return type(original) is sqlite3.DatabaseError


def damage_message(path: Path | str, detail: str) -> str:
    """What to tell about a damaged file (or a sqlite:/// URL naming it)."""
    path = Path(str(path).removeprefix("sqlite:///"))
    return (
        f"The database file {path} is damaged (SQLite: {detail}). Batch Calls "
        "will not open it, so nothing is dialed from it. Stop every Batch Calls window and "
        f"worker that uses it, keep a copy of the file, then restore a backup (copies made "
        f"before upgrades are named {path.stem}.before-*{path.suffix}, next to it) or "
        f"salvage what is left with: sqlite3 {path} .recover | sqlite3 recovered.sqlite3"
    )


def check_intact(path: Path) -> None:
    """`PRAGMA quick_check` on its own connection: a damaged page or index is a
    DatabaseProblem (run before anything reads or migrates the file)."""
    try:
        connection = sqlite3.connect(path, timeout=60)
        try:
            rows = connection.execute("PRAGMA quick_check").fetchall()
        finally:
            connection.close()
    except sqlite3.OperationalError as error:
        if "locked" not in str(error) and "busy" not in str(error):
            raise DatabaseProblem(damage_message(path, str(error))) from error
        raise DatabaseProblem(
            f"The database {path} stayed locked by another program for a minute; try again."
        ) from error
    except sqlite3.DatabaseError as error:
        raise DatabaseProblem(damage_message(path, str(error))) from error
    findings = [str(row[0]) for row in rows]
    if findings != [INTACT]:
        more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
        raise DatabaseProblem(damage_message(path, "; ".join(findings[:3]) + more))


def copy_database(path: Path, destination: Path) -> Path:
    """A consistent copy through SQLite's online backup (safe while others write), 0600;
    never replaces an existing file."""
    try:
        descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError as error:
        raise DatabaseProblem(
            f"{destination} already exists; choose another name (nothing was replaced)."
        ) from error
    except OSError as error:
        raise DatabaseProblem(
            f"Cannot write the copy {destination}: {error.strerror or error}."
        ) from error
    os.close(descriptor)
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(destination)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    return destination


def copy_before_migration(path: Path, target_revision: str) -> Path:
    """The copy kept next to the database before its schema is upgraded."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    destination = path.with_name(f"{path.stem}.before-{target_revision}-{stamp}{path.suffix}")
    copy_database(path, destination)
    log.info("copied %s to %s before upgrading its schema", path, destination)
    return destination
