"""`batchcalls create`: the options checked all at once, the recipients CSV read and
stored in one pass, and the import report judged before the batch call can be dialed."""

from __future__ import annotations

import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.catalog_commands import _resolve_agent, _resolve_number
from app.cli.context import EXIT_OK, PROG, CliError, Context
from app.cli.documents import batch_document, report_document
from app.cli.local_zone import local_timezone_name
from app.cli_policy import policy_fields
from app.models.status import BatchStatus
from app.models.window import WindowError, parse_days, parse_timezone
from app.services.interrupts import Interrupted, deferred_stop_signals

if TYPE_CHECKING:
    from app.services.batch_calls import NewBatchCall

#: Rejected rows listed in the human summary; --json lists every row the import kept.
REJECTED_SHOWN = 200
DUPLICATES_SHOWN = 20
SCHEDULE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


def _schedule(text: str, timezone: str) -> datetime:
    from app.services.batch_calls import scheduled_instant

    for pattern in SCHEDULE_FORMATS:
        try:
            wall = datetime.strptime(text.strip(), pattern)
            break
        except ValueError:
            continue
    else:
        raise WindowError(
            f'"{text}" is not a date and time in the form "YYYY-MM-DD HH:MM" '
            '(for example "2026-12-01 09:30").'
        )
    return scheduled_instant(wall.date(), wall.time(), timezone)


def _build_spec(ctx: Context, default_country: str) -> NewBatchCall:
    """The new batch call from the options; every problem found is reported at once."""
    import phonenumbers

    from app.models.snapshots import SendType
    from app.services.batch_calls import NewBatchCall, ValidationError

    args = ctx.args
    problems: dict[str, str] = {}
    agent_id = number_id = 0
    try:
        agent = _resolve_agent(ctx, args.agent)
        agent_id = agent.id
    except CliError as e:
        problems["agent"] = str(e)
    try:
        number = _resolve_number(ctx, args.from_number, default_country)
        number_id = number.id
    except CliError as e:
        problems["from_number"] = str(e)
    if default_country not in phonenumbers.SUPPORTED_REGIONS:
        problems["default_country"] = (
            f'"{default_country}" is not a country code; use two letters such as US or GB.'
        )
    timezone = args.timezone or local_timezone_name() or ""
    if not timezone:
        problems["timezone"] = (
            "This computer's timezone could not be determined; pass --timezone "
            "(for example --timezone America/New_York)."
        )
    else:
        try:
            parse_timezone(timezone)
        except WindowError as e:
            problems["timezone"] = str(e)
    policy = policy_fields(args, timezone, problems)
    days = frozenset({1, 2, 3, 4, 5})
    try:
        days = parse_days(args.days)
    except WindowError as e:
        problems["allowed_days"] = str(e)
    send_type = SendType.SEND_NOW
    scheduled_at: datetime | None = None
    if args.schedule is not None:
        send_type = SendType.SCHEDULE
        if "timezone" not in problems:
            try:
                scheduled_at = _schedule(args.schedule, timezone)
            except WindowError as e:
                problems["scheduled_at"] = str(e)
    spec = NewBatchCall(
        name=args.name,
        agent_id=agent_id,
        from_number_id=number_id,
        send_type=send_type,
        scheduled_at=scheduled_at,
        timezone=timezone,
        allowed_days=days,
        reserved_concurrency=args.concurrency,
        **policy,
    )
    try:
        with ctx.service.sessions() as session:
            ctx.service.validate_new(spec, session)
    except ValidationError as e:
        problems = {**e.problems, **problems}
    if problems:
        raise CliError(
            "Cannot create the batch call: " + " ".join(problems.values()), problems
        ) from None
    return spec


class _Progress:
    """Percent read, on stderr, only when a person is watching a terminal."""

    def __init__(self, label: str, enabled: bool):
        self.label = label
        self.enabled = enabled
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        percent = min(100, done * 100 // total)
        if percent != self.last:
            self.last = percent
            sys.stderr.write(f"\r{self.label}: {percent}%")
            sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self.last >= 0:
            sys.stderr.write("\n")
            self.last = -1


def _report_lines(report: Any, allow_rejected: bool, drop_duplicates: bool) -> list[str]:
    lines = [
        f"Read {report.total_rows} rows: {report.accepted_count} accepted, "
        f"{report.rejected_count} rejected."
    ]
    if report.rejected_count:
        lines.append("Rejected rows" + (" (skipped):" if allow_rejected else ":"))
        for r in report.rejected[:REJECTED_SHOWN]:
            phone = f'"{r.phone_raw}"' if r.phone_raw else "(no phone number)"
            lines.append(f"  row {r.row_number}: {phone} {r.reason}")
        more = report.rejected_count - min(len(report.rejected), REJECTED_SHOWN)
        if more > 0:
            lines.append(f"  ... and {more} more (run with --json to list every row kept).")
    if report.duplicate_count:
        policy = "dropped" if drop_duplicates else "kept; --drop-duplicates keeps only the first"
        lines.append(
            f"Duplicates: {report.duplicate_count} rows repeat a number listed earlier ({policy}):"
        )
        for d in report.duplicates[:DUPLICATES_SHOWN]:
            rows = ", ".join(str(n) for n in d.row_numbers)
            lines.append(f"  {d.phone_number}: rows {rows}")
        if len(report.duplicates) > DUPLICATES_SHOWN:
            lines.append(f"  ... and {len(report.duplicates) - DUPLICATES_SHOWN} more numbers.")
    return lines


def cmd_create(ctx: Context) -> int:
    try:
        return _create(ctx)
    except Interrupted as stop:  # before the recipients were stored: nothing to undo
        stop.outcome = stop.outcome or "nothing was created"
        raise


def _create(ctx: Context) -> int:
    from app.services import csv_import
    from app.services.batch_calls import INSERT_CHUNK, CreationCancelled

    args = ctx.args
    ctx.service.discard_abandoned_imports()  # what a killed create left (app.models.imports)
    settings = ctx.settings.load()
    default_country = (args.default_country or settings.default_country).upper()
    spec = _build_spec(ctx, default_country)
    options = csv_import.ImportOptions(
        default_country=default_country, drop_duplicates=args.drop_duplicates
    )
    path = Path(args.csv).expanduser()
    # One pass over the file: the rows are checked as they are stored, and the report is
    # judged before the batch call can be dialed (refused: nothing is kept).
    progress = _Progress(f"Importing {path.name}", not ctx.json and sys.stderr.isatty())
    try:
        checked = csv_import.CheckedImport(
            path, options, chunk_size=INSERT_CHUNK, progress=progress
        )
    except csv_import.CsvImportError as e:
        progress.finish()
        raise CliError(str(e), {"csv": str(e)}) from e

    def judge() -> None:
        progress.finish()
        report = checked.report
        assert report is not None
        ctx.say(*_report_lines(report, args.allow_rejected, args.drop_duplicates))
        if report.rejected_count and not args.allow_rejected:
            raise CliError(
                f"{report.rejected_count} of {report.total_rows} rows were rejected, so "
                "nothing was created. Fix them in the file, or pass --allow-rejected to create "
                "the batch call without them.",
                {"recipients": f"{report.rejected_count} rejected rows."},
                {"import": report_document(report)},
            )
        try:
            csv_import.require_recipients(report)
        except csv_import.CsvImportError as e:
            raise CliError(
                str(e), {"recipients": str(e)}, {"import": report_document(report)}
            ) from e

    # All or nothing: a stop signal now is acted on between two chunks (the open chunk
    # rolls back, the partial batch call is removed), never inside a database call.
    with deferred_stop_signals(PROG) as stop:
        try:
            created = ctx.service.create(
                spec, checked.chunks(), before_scheduled=judge, cancel=stop.requested
            )
        except CreationCancelled as e:
            outcome = (
                "the batch call being stored was removed; nothing was created"
                if e.left_batch_id is None
                else f"the unfinished batch call {e.left_batch_id} is never dialed and is "
                "removed at the next start"
            )
            raise Interrupted(stop.signum or signal.SIGINT, outcome) from e
        except csv_import.CsvImportError as e:
            raise CliError(f"{e} Nothing was created.", {"csv": str(e)}) from e
        finally:
            progress.finish()
    report = checked.report
    assert report is not None
    ctx.emit({"batch_call": batch_document(created), "import": report_document(report)})
    when = "to start at the next worker pickup"
    if created.status is not BatchStatus.SCHEDULED:
        when = f"now {created.status.display_name} (changed while its recipients were stored)"
    elif created.scheduled_at is not None:
        local = created.scheduled_at.astimezone(parse_timezone(created.timezone))
        when = f"scheduled for {local:%Y-%m-%d %H:%M} {created.timezone}"
    ctx.say(
        f'Created batch call {created.id} "{created.name}" with {created.total_recipients} '
        f"recipients, {when}; calls {created.time_ranges_display} "
        f"{created.timezone}, {created.allowed_days_display}."
    )
    if stop.signum is not None:  # it came after the last commit: the batch call is whole
        raise Interrupted(stop.signum, f"batch call {created.id} was created completely first")
    return EXIT_OK
