"""main(): parse the command line, run one command, and turn every outcome into the
exit status and the one line (or JSON error document) that reports it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from app import __version__
from app.cli.context import (
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    PROG,
    CliError,
    Context,
    UsageError,
)
from app.cli.output import _dumps
from app.cli.parser import build_parser
from app.models.sqlite_file import DatabaseProblem
from app.models.status import ActionNotAllowed
from app.models.text import escape_controls
from app.models.window import WindowError
from app.services.interrupts import (
    Interrupted,
    deferred_stop_signals,
    held_stop_signals,
    stop_point,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

#: Named as before the package split: -v log lines say "app.cli".
log = logging.getLogger("app.cli")


@contextmanager
def _logging_to_stderr(verbosity: int, json_lines: bool = False) -> Iterator[None]:
    """-v: progress (INFO), -vv: DEBUG, on stderr for this command only (main() may run
    many times in one process, as in the tests); one JSON object a line if asked."""
    from app.services.log_format import formatter

    if verbosity <= 0:
        yield
        return
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(json_lines))
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _fail(
    message: str, json_mode: bool, problems: dict[str, str] | None = None, **extra: Any
) -> int:
    """Report a refusal: one line on stderr, and the JSON error document on stdout."""
    print(f"{PROG}: error: {escape_controls(message)}", file=sys.stderr)
    if json_mode:
        error: dict[str, Any] = {"message": message, "problems": problems or {}}
        error.update(extra)
        print(_dumps({"error": error}), file=sys.stdout)
    return EXIT_REFUSED


def _open(url: str) -> tuple[Any, sessionmaker[Session]]:
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    from app.models.db import describe_url, open_database

    try:
        return open_database(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        raise CliError(
            f"The database URL is not usable ({type(e).__name__}). Give one such as "
            "sqlite:////path/to/batchcalls.sqlite3 or postgresql+psycopg://user@host/db."
        ) from e
    except OperationalError as e:
        detail = " ".join(str(e.orig).split()).rstrip(".")
        raise CliError(
            f"Cannot open the database {describe_url(url)}: {detail}. Check that it exists "
            "and that you may read and write it."
        ) from e


def _output_closed() -> int:
    """The reader of our output went away (`| head`): stop quietly. Later writes, and the
    interpreter's own flush at exit, go to /dev/null instead of raising again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a file (tests)
        pass
    return EXIT_BROKEN_PIPE


def _warn_about_password_on_command_line(url: str | None) -> None:
    from app.models.db import describe_url

    if url and describe_url(url) != url:  # it has a password
        print(
            f"{PROG}: warning: --database-url carries a password, which other users of this "
            "computer can see in the process list. Put the URL in BATCHCALLS_DATABASE_URL, "
            "or in a file of yours (chmod 600) named by BATCHCALLS_DATABASE_URL_FILE.",
            file=sys.stderr,
        )


def _run_gui(args: argparse.Namespace) -> int:
    try:
        with held_stop_signals(PROG):  # an interrupted PySide6 import aborts the process
            from app.views.app import run_gui
    except ModuleNotFoundError as e:
        if e.name and (e.name.startswith("app.views") or e.name.startswith("PySide6")):
            raise CliError(
                f"The desktop application is not available in this installation ({e.name} is "
                f'missing). The command line still works: see "{PROG} --help".'
            ) from e
        raise
    code = run_gui(args)
    return int(code or 0)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run one command, and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # what argparse would print, without building the parser
        print(f"{PROG} {__version__}")
        return EXIT_OK
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        sys.stderr.write(e.usage)
        print(f"{PROG}: error: {e}", file=sys.stderr)
        if "--json" in argv:
            print(_dumps({"error": {"message": str(e), "problems": {}, "usage": True}}))
        return EXIT_USAGE
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else EXIT_OK
    # A headless worker logs its pickups and outcomes even without -v: a server operator
    # reads them.
    verbosity = args.verbose or (1 if args.command == "worker" else 0)
    json_lines = getattr(args, "log_format", "text") == "json"
    # The whole command defers stop signals to safe points (app.services.interrupts).
    with _logging_to_stderr(verbosity, json_lines), deferred_stop_signals(PROG):
        code = _run(args)
    try:  # what is still buffered meets a closed pipe here, not in the interpreter's exit
        sys.stdout.flush()
    except BrokenPipeError:
        return _output_closed()
    return code


def _run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.models.db import check_url, database_url, describe_url, encode_password
    from app.services.batch_calls import NotFound, ValidationError
    from app.services.settings import SettingsError

    json_mode = bool(args.json)
    engine = None
    try:
        if args.command is None:
            return _run_gui(args)
        url = database_url(args.database_url)
        check_url(encode_password(url))  # an unusable URL is refused before anything else is said
        _warn_about_password_on_command_line(args.database_url)
        ctx = Context(args=args, url=url)
        if args.command != "worker":
            engine, ctx.sessions = _open(url)
            log.info("using database %s", describe_url(url))
        handler: Callable[[Context], int] = args.handler
        code = handler(ctx)
        stop_point()  # a signal during a short command: it is done, but say so
        return code
    except (CliError, DatabaseProblem) as e:
        problems, extra = (e.problems, e.extra) if isinstance(e, CliError) else ({}, {})
        return _fail(str(e), json_mode, problems, **extra)
    except ValidationError as e:
        return _fail(str(e), json_mode, e.problems)
    except (ActionNotAllowed, NotFound, WindowError, SettingsError) as e:
        return _fail(str(e), json_mode)
    except KeyboardInterrupt as e:
        stop = e if isinstance(e, Interrupted) else Interrupted()
        print(stop.message(PROG), file=sys.stderr)
        return stop.exit_status
    except BrokenPipeError:
        return _output_closed()
    except SQLAlchemyError as e:
        if args.verbose:
            log.exception("database error")
        return _fail(
            f"Database error ({type(e).__name__}). Check that the database is reachable; run "
            "again with -v for the details.",
            json_mode,
        )
    except Exception as e:  # a defect: say so in one line; -v shows the traceback
        if args.verbose:
            log.exception("unexpected error")
        hint = "" if args.verbose else " Run again with -v for the details."
        return _fail(f"Unexpected error ({type(e).__name__}: {e}).{hint}", json_mode)
    finally:
        if engine is not None:
            engine.dispose()
