"""The headless worker (`batchcalls worker`, or `python -m app.services.worker`): runs the
dialer engine without a window until SIGINT or SIGTERM.

One worker per database dials (the engine's lease); start a second one and it stands by.
It logs each pickup, call and outcome with masked phone numbers, never a secret.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.models.db import database_url as resolve_database_url
from app.models.db import describe_url
from app.models.sqlite_file import DatabaseProblem, damage_message
from app.services.engine import EngineConfig, EngineRunner, EngineState
from app.services.log_format import configure_worker_logging
from app.services.settings import SettingsError
from app.services.status_callbacks import StatusCallbackReceiver, receiver_from_environment
from app.services.telephony import TelephonyProvider
from app.services.worker_options import add_engine_options, engine_overrides

log = logging.getLogger(__name__)

#: Exit codes.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DATABASE = 2


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _stop_on_signals(
    stop: threading.Event, on_signal: Callable[[], None] | None = None
) -> Iterator[None]:
    """SIGINT / SIGTERM set `stop` and call `on_signal` (the engine's request_stop, so a
    tick stops placing calls at once instead of finishing its round); only the main
    thread may install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "received %s: no new call is placed; stopping after the current request",
            signal.Signals(signum).name,
        )
        stop.set()
        if on_signal is not None:
            on_signal()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_worker(
    database_url: str | None,
    *,
    stop_event: threading.Event | None = None,
    once: bool = False,
    pickup_interval: float | None = None,
    provider: TelephonyProvider | None = None,
    clock: Callable[[], datetime] | None = None,
    engine_config: EngineConfig | None = None,
    settings_overrides: Mapping[str, Any] | None = None,
) -> int:
    """Run the engine until `stop_event` is set or a signal arrives (or one tick if
    `once`). Returns the process exit code.

    `settings_overrides` change settings for this worker only; the poll interval and the
    lease timing come from them and the stored settings, over `engine_config`. An
    override out of range raises SettingsError before anything starts."""
    configure_worker_logging()
    stop = stop_event or threading.Event()
    try:
        url = resolve_database_url(database_url)
    except DatabaseProblem as exc:  # an in-memory URL, an unreadable URL file
        log.error("%s", exc)
        return EXIT_DATABASE
    overrides = dict(settings_overrides or {})
    if pickup_interval is not None:
        if pickup_interval <= 0:
            log.error("the pickup interval must be a positive number of seconds")
            return EXIT_ERROR
        overrides["pickup_interval_seconds"] = pickup_interval
    receiver: StatusCallbackReceiver | None = None
    try:
        receiver = receiver_from_environment() if provider is None else None
        if receiver is not None:
            receiver.start()
    except (ValueError, OSError) as exc:
        log.error("status callbacks cannot be received: %s", exc)
        return EXIT_ERROR
    try:
        runner = EngineRunner(
            url,
            stop=stop,
            provider=provider,
            clock=clock,
            config=engine_config,
            settings_overrides=overrides,
            status_callbacks=receiver,
            status_callback_url=receiver.public_url if receiver else None,
        )
    except DatabaseProblem as exc:  # damaged, empty, read-only...: it says what to do
        log.error("%s", exc)
        return EXIT_DATABASE
    except (SQLAlchemyError, OSError) as exc:
        if receiver is not None:
            receiver.stop()
        log.error(
            "cannot open the database %s: %s. Check the URL (or BATCHCALLS_DATABASE_URL) "
            "and that the database is reachable.",
            describe_url(url),
            type(exc).__name__,
        )
        return EXIT_DATABASE
    engine = runner.engine
    log.info(
        "worker started on %s (engine %s)", describe_url(url), engine.lease and engine.lease.holder
    )
    status = None
    code = EXIT_OK
    try:
        with _stop_on_signals(stop, runner.request_stop):
            while True:
                report = runner.tick()
                if runner.damage is not None:  # never "busy" forever on a damaged file
                    log.error("%s", damage_message(url, runner.damage))
                    code = EXIT_DATABASE
                    break
                if report.status != status:
                    status = report.status
                    log.info("engine: %s", status.text)
                code = EXIT_ERROR if status.state is EngineState.ERROR else EXIT_OK
                if once or stop.is_set():
                    break
                if stop.wait(runner.seconds_to_next_tick(report)):
                    break
    finally:
        runner.close()
        if receiver is not None:
            receiver.stop()
        log.info("worker stopped")
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.services.worker",
        description="Run the Batch Calls dialer without a window until Ctrl+C / SIGTERM. "
        "The options override the stored settings for this worker only (nothing is saved).",
    )
    parser.add_argument(
        "--database-url", help="database URL (default: BATCHCALLS_DATABASE_URL or the local file)"
    )
    add_engine_options(parser)
    parser.add_argument(
        "--unknown-settle-seconds",
        type=float,
        help="age at which a call request without an answer is reconciled with the provider",
    )
    parser.add_argument("--once", action="store_true", help="run one tick and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_worker_logging(json_lines=args.log_format == "json")
    config = EngineConfig()
    if args.unknown_settle_seconds is not None:
        if not args.unknown_settle_seconds > 0:
            print("--unknown-settle-seconds must be a positive number of seconds.", file=sys.stderr)
            return EXIT_ERROR
        config = replace(config, unknown_settle_seconds=args.unknown_settle_seconds)
    try:
        return run_worker(
            args.database_url,
            once=args.once,
            engine_config=config,
            settings_overrides=engine_overrides(args),
        )
    except SettingsError as exc:
        print(f"{exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
