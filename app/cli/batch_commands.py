"""The commands on existing batch calls: list, show, rename, pause/resume/cancel/retry,
delete, export, template and backup."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.context import EXIT_OK, PROG, CliError, Context
from app.cli.documents import batch_document, history_document, recipient_document
from app.cli.output import _dumps, _local, _short, _table
from app.cli_policy import describe_policy, forecast_document, forecast_of
from app.models.status import Action, RecipientStatus
from app.models.window import parse_timezone

if TYPE_CHECKING:
    from app.models.snapshots import BatchCallSnapshot, RecipientSnapshot


def cmd_list(ctx: Context) -> int:
    batches = ctx.service.list(ctx.args.search or "")
    ctx.emit({"batch_calls": [batch_document(b) for b in batches]})
    if not batches:
        if (ctx.args.search or "").strip():
            ctx.say(f'No batch call name contains "{ctx.args.search.strip()}".')
        else:
            ctx.say(f'No batch calls yet. Create one with "{PROG} create".')
        return EXIT_OK
    rows = [
        (
            b.id,
            b.name,
            b.status_display,
            b.total_recipients,
            f"{b.progress_percent:.0f}%",
            _local(b.created_at),
        )
        for b in batches
    ]
    ctx.say(*_table(("ID", "Name", "Status", "Recipients", "Done", "Created"), rows))
    return EXIT_OK


def _describe_batch(b: BatchCallSnapshot) -> list[str]:
    from app.models.snapshots import SendType

    counts = ", ".join(f"{s.display_name} {b.counts[s]}" for s in RecipientStatus)
    if b.send_type is SendType.SCHEDULE and b.scheduled_at is not None:
        zone = parse_timezone(b.timezone)
        send = f"Schedule, {b.scheduled_at.astimezone(zone):%Y-%m-%d %H:%M} {b.timezone}"
    else:
        send = b.send_type.display_name
    lines = [
        f'Batch call {b.id}: "{b.name}"',
        f"  Status:               {b.status_display}",
        f"  Recipients:           {b.total_recipients} ({counts})",
        f"  Progress:             {b.finished_count} of {b.total_recipients} finished "
        f"({b.progress_percent:.0f}%), {b.remaining_count} remaining",
        f"  Agent:                {b.agent_name}",
        f"  From number:          {b.from_number}",
        f"  Send type:            {send}",
        f"  Time range:           {b.window_start} to {b.window_end} ({b.timezone})",
        f"  Allowed days:         {b.allowed_days_display}",
        f"  Reserved concurrency: {b.reserved_concurrency}",
        *describe_policy(b),
        f"  Created:              {_local(b.created_at)}",
        f"  Started:              {_local(b.started_at)}",
        f"  Finished:             {_local(b.finished_at)}",
        f"  Retries:              {b.retry_count}",
    ]
    if b.failure_reason:
        lines.append(f"  Failure reason:       {b.failure_reason}")
    if b.waiting_reason:
        lines.append(f"  Waiting:              {b.waiting_reason}")
    lines.append(f"  Actions:              {', '.join(a.label for a in b.actions)}")
    return lines


def cmd_show(ctx: Context) -> int:
    from app.services.batch_calls import RecipientQuery

    b = ctx.batch(ctx.args.reference)
    show_recipients = ctx.args.recipients or ctx.args.status is not None
    history = ctx.service.history(b.id) if ctx.args.history else None
    query = RecipientQuery(status=ctx.args.status)
    recipients: Iterator[RecipientSnapshot] = (
        ctx.service.iter_recipients(b.id, query) if show_recipients else iter(())
    )
    forecast = forecast_of(b, ctx.settings.load().calls_per_second)
    if ctx.json:
        document: dict[str, Any] = {
            "batch_call": {**batch_document(b), **forecast_document(forecast, b.timezone)}
        }
        if history is not None:
            document["history"] = [history_document(e) for e in history]
        if not show_recipients:
            ctx.emit(document)
            return EXIT_OK
        # Streamed: a million recipients must not be held in memory to print one document.
        head = _dumps(document)
        sys.stdout.write(head[: head.rindex("}")].rstrip() + ',\n  "recipients": [')
        for index, r in enumerate(recipients):
            sys.stdout.write(
                ("," if index else "") + "\n    " + _dumps(recipient_document(r), None)
            )
        sys.stdout.write("\n  ]\n}\n")
        return EXIT_OK
    ctx.say(*_describe_batch(b))
    if forecast is not None:
        ctx.say(f"  Estimated finish:     {forecast.describe(parse_timezone(b.timezone))}")
    if history is not None:
        ctx.say("", "History:")
        if not history:
            ctx.say("  (none)")
        for e in history:
            detail = f" ({e.detail})" if e.detail else ""
            ctx.say(f"  {_local(e.at)}  {e.action.title()}{detail} by {e.user} on {e.host}")
    if show_recipients:
        status = ctx.args.status
        ctx.say("", "Recipients:" if status is None else f"Recipients ({status.display_name}):")
        # Fixed columns, so a million rows stream out without being measured first.
        line = "{:>6}  {:<16}  {:<24}  {:<11}  {:>8}  {}"
        ctx.say(line.format("Row", "Phone", "Name", "Status", "Attempts", "Last error").rstrip())
        shown = 0
        for r in recipients:
            shown += 1
            ctx.say(
                line.format(
                    r.row_number,
                    r.phone_number,
                    _short(r.name or "", 24),
                    r.status.display_name,
                    r.attempts,
                    _short(r.last_error or "", 60),
                ).rstrip()
            )
        if shown == 0:
            ctx.say("  (no recipients match)")
    return EXIT_OK


def cmd_rename(ctx: Context) -> int:
    b = ctx.batch(ctx.args.reference)
    renamed = ctx.service.rename(b.id, ctx.args.new_name)
    ctx.emit({"batch_call": batch_document(renamed)})
    ctx.say(f'Renamed batch call {b.id} from "{b.name}" to "{renamed.name}".')
    return EXIT_OK


_DONE = {
    Action.PAUSE: "Paused",
    Action.RESUME: "Resumed",
    Action.CANCEL: "Cancelled",
    Action.RETRY: "Retrying",
}


def _status_action(action: Action) -> Callable[[Context], int]:
    def run(ctx: Context) -> int:
        b = ctx.batch(ctx.args.reference)
        after = ctx.service.perform(b.id, action)
        assert after is not None
        ctx.emit({"batch_call": batch_document(after)})
        extra = f" (retry {after.retry_count})" if action is Action.RETRY else ""
        ctx.say(f'{_DONE[action]} batch call {b.id} "{b.name}": now {after.status_display}{extra}.')
        if action in (Action.PAUSE, Action.CANCEL) and ctx.service.calls_waited_for:
            ctx.say(
                f"Waited for {ctx.service.calls_waited_for} call(s) the dialer was already "
                "placing; no other call of it starts now."
            )
        return EXIT_OK

    return run


def _confirmed(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in {"y", "yes"}


def cmd_delete(ctx: Context) -> int:
    b = ctx.batch(ctx.args.reference)
    if not ctx.args.yes:
        if not sys.stdin.isatty():
            raise CliError(
                f'Not deleting batch call {b.id} "{b.name}": deletion cannot be undone and there '
                "is no terminal to confirm it. Pass --yes to delete."
            )
        question = (
            f'Delete batch call {b.id} "{b.name}" and its {b.total_recipients} recipients? '
            "This cannot be undone."
        )
        if not _confirmed(question):
            raise CliError("Nothing was deleted.")
    ctx.service.delete(b.id)
    ctx.emit({"deleted": {"id": b.id, "name": b.name, "total_recipients": b.total_recipients}})
    ctx.say(f'Deleted batch call {b.id} "{b.name}" and its {b.total_recipients} recipients.')
    return EXIT_OK


def _writable(path_text: str, force: bool) -> Path:
    path = Path(path_text).expanduser()
    if path.is_dir():
        raise CliError(f"{path} is a folder; give a file name such as {path / 'recipients.csv'}.")
    if not path.parent.is_dir():
        raise CliError(f"The folder {path.parent} does not exist; create it or choose another.")
    if path.exists() and not force:
        raise CliError(
            f"{path} already exists. Choose another name, or pass --force to replace it."
        )
    return path


def cmd_export(ctx: Context) -> int:
    from app.services.batch_calls import RecipientQuery
    from app.services.csv_export import CsvExportError

    b = ctx.batch(ctx.args.reference)
    path = _writable(ctx.args.path, ctx.args.force)
    try:
        count = ctx.service.export_recipients(b.id, path, RecipientQuery(status=ctx.args.status))
    except CsvExportError as e:
        raise CliError(str(e)) from e
    except OSError as e:
        raise CliError(f"Cannot write {path}: {e.strerror or e}.") from e
    ctx.emit({"exported": {"batch_call_id": b.id, "path": str(path), "recipients": count}})
    which = "" if ctx.args.status is None else f" {ctx.args.status.display_name}"
    ctx.say(f'Exported {count}{which} recipients of "{b.name}" to {path}.')
    return EXIT_OK


def cmd_template(ctx: Context) -> int:
    from app.services import csv_import

    path = _writable(ctx.args.path, ctx.args.force)
    try:
        csv_import.write_template(path)
    except csv_import.CsvImportError as e:
        raise CliError(str(e)) from e
    ctx.emit({"template": {"path": str(path)}})
    ctx.say(f"Wrote a sample recipients file to {path}. Replace its rows with your recipients.")
    return EXIT_OK


def cmd_backup(ctx: Context) -> int:
    """A consistent copy of the SQLite database (safe while the app and worker run)."""
    assert ctx.sessions is not None
    from app.models.db import backup_database, describe_url

    path = backup_database(ctx.sessions.kw["bind"], Path(ctx.args.path))
    ctx.emit({"backup": {"database": describe_url(ctx.url), "path": str(path)}})
    ctx.say(f"Copied the database to {path} (readable by you only).")
    return EXIT_OK
