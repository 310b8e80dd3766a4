"""`batchcalls worker`: the dialer without a window."""

from __future__ import annotations

import threading

from app.cli.context import PROG, CliError, Context
from app.services.interrupts import deferred_stop_signals, stop_point


def cmd_worker(ctx: Context) -> int:
    """The headless engine; it opens its own database connections."""
    try:
        from app.services.worker import run_worker
    except ModuleNotFoundError as e:
        if e.name != "app.services.worker":
            raise
        raise CliError("The headless worker is not available in this installation.") from e

    from app.models.db import describe_url
    from app.services.worker_options import engine_overrides

    stop_point()
    stopping = threading.Event()  # a signal before the worker's own handlers are set
    with deferred_stop_signals(PROG) as stop:
        stop.on_request(stopping.set)
    code = run_worker(
        ctx.url,
        stop_event=stopping,
        once=ctx.args.once,
        settings_overrides=engine_overrides(ctx.args),
    )
    ctx.emit({"worker": {"exit_code": code, "database": describe_url(ctx.url)}})
    return int(code or 0)
