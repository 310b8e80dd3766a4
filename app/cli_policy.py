"""The command line's campaign-policy parts (SPEC 10): the `create` options for windows,
local hours, retries and end date, their --json document, and `batchcalls dnc`.

Kept beside the app/cli package, which calls in here; the rules themselves live in
app.models.creation (the command line only turns options into a request).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.models.window import WindowError, parse_timezone

if TYPE_CHECKING:
    from app.cli.context import Context
    from app.models.policy import Forecast
    from app.models.snapshots import BatchCallSnapshot

#: app.models.policy.DEFAULT_LOCAL_HOURS as the option shows it, written out so that
#: building the parser (every command, --help too) does not import the policy module;
#: tests/test_cli_policy.py holds the two together.
DEFAULT_LOCAL_HOURS_TEXT = "08:00-21:00"


def add_create_options(sub: argparse.ArgumentParser) -> None:
    """The policy options of `batchcalls create` (all optional; defaults as before)."""
    sub.add_argument(
        "--blackout-dates",
        default="",
        metavar="DATES",
        help="local dates on which nothing is dialed, e.g. 2026-12-25,2027-01-01",
    )
    sub.add_argument(
        "--end",
        metavar='"YYYY-MM-DD HH:MM"',
        help="end date (local time): dialing stops, recipients not reached end Expired",
    )
    sub.add_argument(
        "--local-hours",
        nargs="?",
        const=DEFAULT_LOCAL_HOURS_TEXT,
        default="",
        metavar="HH:MM-HH:MM",
        help="call each recipient only inside these hours of its own timezone "
        f"(default when given alone: {DEFAULT_LOCAL_HOURS_TEXT})",
    )
    sub.add_argument(
        "--max-attempts",
        type=int,
        default=1,
        metavar="N",
        help="attempts per recipient, 1 (no automatic retry) to 10",
    )
    sub.add_argument(
        "--retry-delay",
        type=int,
        default=60,
        metavar="MINUTES",
        help="minutes before another attempt (default 60)",
    )
    sub.add_argument(
        "--retry-on",
        default="no-answer,busy",
        metavar="OUTCOMES",
        help="outcomes retried: no-answer, busy, failed (default no-answer,busy)",
    )


def policy_fields(
    args: argparse.Namespace, timezone: str, problems: dict[str, str]
) -> dict[str, Any]:
    """The NewBatchCall policy fields from the options; what cannot be read goes into
    `problems` (the rules themselves are checked by the service, once)."""
    from app.cli.create_command import _schedule
    from app.models.policy import parse_time_ranges, time_ranges_text

    values: dict[str, Any] = {
        "blackout_dates": args.blackout_dates or "",
        "local_hours": args.local_hours or "",
        "max_attempts": args.max_attempts,
        "retry_delay_minutes": args.retry_delay,
        "retry_outcomes": args.retry_on,
    }
    try:
        ranges = parse_time_ranges(args.time_range)
        if len(ranges) == 1 and ranges[0].start != ranges[0].end:
            values["window_start"] = f"{ranges[0].start:%H:%M}"
            values["window_end"] = f"{ranges[0].end:%H:%M}"
        else:
            values["time_ranges"] = time_ranges_text(ranges)
            values["window_start"] = f"{ranges[0].start:%H:%M}"
            values["window_end"] = f"{ranges[0].end:%H:%M}"
    except WindowError as e:
        problems["time_range"] = str(e)
    if args.end and "timezone" not in problems:
        try:
            values["end_at"] = _schedule(args.end, timezone)
        except WindowError as e:
            problems["end_at"] = str(e).replace("date and time", "end date and time")
    return values


def forecast_of(b: BatchCallSnapshot, calls_per_second: float) -> Forecast | None:
    return b.forecast(datetime.now(UTC), calls_per_second)


def forecast_document(forecast: Forecast | None, timezone: str) -> dict[str, Any]:
    if forecast is None:
        return {"forecast": None}
    return {
        "forecast": {
            "finish_at": forecast.finish_at.isoformat() if forecast.finish_at else "",
            "calls_left": round(forecast.calls_left),
            "calls_per_hour": round(forecast.calls_per_hour, 1),
            "expiring": forecast.expiring,
            "display": forecast.describe(parse_timezone(timezone)),
        }
    }


def policy_document(b: BatchCallSnapshot) -> dict[str, Any]:
    """The policy part of a batch call's --json document."""
    from app.models.policy import time_ranges_text

    return {
        "time_ranges": time_ranges_text(b.creation_request.ranges()),
        "time_ranges_display": b.time_ranges_display,
        "blackout_dates": [d for d in b.blackout_dates.split(",") if d],
        "end_at": b.end_at.isoformat() if b.end_at else "",
        "local_hours": b.local_hours,
        "local_hours_display": b.local_hours_display,
        "max_attempts": b.max_attempts,
        "retry_delay_minutes": b.retry_delay_minutes,
        "retry_outcomes": [o for o in b.retry_outcomes.split(",") if o],
        "retries_display": b.retries_display,
    }


def describe_policy(b: BatchCallSnapshot) -> list[str]:
    """The policy lines of `batchcalls show`."""
    lines = [
        f"  Calling windows:      {b.time_ranges_display}",
        f"  Local hours:          {b.local_hours_display}",
        f"  Automatic retries:    {b.retries_display}",
    ]
    if b.blackout_dates:
        lines.append(f"  Blackout dates:       {b.blackout_dates_display}")
    if b.end_at is not None:
        local = b.end_at.astimezone(parse_timezone(b.timezone))
        lines.append(f"  End date:             {local:%Y-%m-%d %H:%M} ({b.timezone})")
    return lines


# --------------------------------------------------------------------------- dnc


def add_dnc_command(commands: Any, common: argparse.ArgumentParser, parser_class: Any) -> None:
    sub = commands.add_parser(
        "dnc",
        help="the do-not-call list: list, add, remove, import, export, history",
        parents=[common],
        description="The do-not-call list (one per database), checked as each call is placed.",
    )
    # A bare "dnc" lists: the listing's options get their defaults here too.
    sub.set_defaults(handler=cmd_dnc, search="", limit=200)
    actions = sub.add_subparsers(dest="dnc_action", metavar="ACTION", parser_class=parser_class)
    listing = actions.add_parser("list", parents=[common], help="list the numbers")
    listing.add_argument(
        "--search", default="", metavar="DIGITS", help="only numbers containing these digits"
    )
    listing.add_argument(
        "--limit", type=int, default=200, metavar="N", help="at most N numbers (default 200)"
    )
    for name, text in (("add", "add a number"), ("remove", "remove a number")):
        one = actions.add_parser(name, parents=[common], help=text)
        one.add_argument("phone_number", metavar="NUMBER", help="E.164 (+12025550143) or national")
        one.add_argument("--default-country", metavar="CC", help="for national numbers")
    imp = actions.add_parser("import", parents=[common], help="add every number of a CSV")
    imp.add_argument(
        "path", metavar="CSV", help="a CSV with a phone_number column (recipients file rules)"
    )
    imp.add_argument("--default-country", metavar="CC", help="for national numbers")
    exp = actions.add_parser("export", parents=[common], help="write the list to a CSV")
    exp.add_argument("path", metavar="PATH", help="the CSV file to write")
    exp.add_argument("--force", action="store_true", help="replace an existing file")
    actions.add_parser("history", parents=[common], help="who changed the list, and when")


def cmd_dnc(ctx: Context) -> int:
    # Loaded here, not at the top: the parser imports this module for every command.
    from app.cli.batch_commands import _writable
    from app.cli.context import EXIT_OK, CliError
    from app.cli.output import _local, _table
    from app.services.batch_calls import NotFound
    from app.services.csv_export import CsvExportError
    from app.services.csv_import import CsvImportError
    from app.services.do_not_call import DoNotCallService

    assert ctx.sessions is not None
    service = DoNotCallService(ctx.sessions)
    action = ctx.args.dnc_action or "list"
    country = (
        getattr(ctx.args, "default_country", None) or ctx.settings.load().default_country
    ).upper()
    if action == "add":
        number, added = service.add(ctx.args.phone_number, country)
        ctx.emit({"do_not_call": {"phone_number": number, "added": added}})
        ctx.say(
            f"Added {number} to the do-not-call list."
            if added
            else f"{number} is already on the do-not-call list."
        )
    elif action == "remove":
        try:
            number = service.remove(ctx.args.phone_number, country)
        except NotFound as e:
            raise CliError(str(e)) from e
        ctx.emit({"do_not_call": {"phone_number": number, "removed": True}})
        ctx.say(f"Removed {number} from the do-not-call list.")
    elif action == "import":
        path = Path(ctx.args.path).expanduser()
        try:
            result = service.import_csv(path, country)
        except CsvImportError as e:
            raise CliError(f"{e} Nothing was imported.", {"csv": str(e)}) from e
        ctx.emit(
            {
                "do_not_call_import": {
                    "added": result.added,
                    "already_listed": result.already_listed,
                    "rejected_count": result.rejected_count,
                    "rejected": [
                        {"row_number": r.row_number, "phone": r.phone_raw, "reason": r.reason}
                        for r in result.rejected
                    ],
                }
            }
        )
        ctx.say(
            f"Imported {path.name}: {result.added} added, {result.already_listed} already "
            f"listed or repeated, {result.rejected_count} rejected."
        )
        for r in result.rejected:
            ctx.say(f'  row {r.row_number}: "{r.phone_raw}" {r.reason}')
    elif action == "export":
        path = _writable(ctx.args.path, ctx.args.force)
        try:
            count = service.export(path)
        except CsvExportError as e:
            raise CliError(str(e)) from e
        ctx.emit({"exported": {"path": str(path), "numbers": count}})
        ctx.say(f"Exported {count} do-not-call numbers to {path}.")
    elif action == "history":
        events = service.events()
        ctx.emit(
            {
                "do_not_call_history": [
                    {
                        "action": event.action,
                        "phone_number": event.phone_number,
                        "detail": event.detail,
                        "user": event.user,
                        "host": event.host,
                        "at": event.at.isoformat(),
                    }
                    for event in events
                ]
            }
        )
        if not events:
            ctx.say("The do-not-call list has not been changed yet.")
        for event in events:
            what = event.phone_number or event.detail
            ctx.say(
                f"  {_local(event.at)}  {event.action.title()} {what} by {event.user} "
                f"on {event.host}"
            )
    else:
        total = service.count()
        entries = service.entries(ctx.args.search, ctx.args.limit)
        ctx.emit(
            {
                "do_not_call": {
                    "count": total,
                    "numbers": [
                        {
                            "phone_number": e.phone_number,
                            "source": e.source,
                            "added_by": e.added_by,
                            "added_at": e.added_at.isoformat(),
                        }
                        for e in entries
                    ],
                }
            }
        )
        if not total:
            ctx.say('The do-not-call list is empty. Add a number with "batchcalls dnc add".')
        else:
            ctx.say(f"{total} numbers on the do-not-call list.")
            ctx.say(
                *_table(
                    ("Number", "Source", "Added by", "Added"),
                    ((e.phone_number, e.source, e.added_by, _local(e.added_at)) for e in entries),
                )
            )
            if len(entries) < total and not ctx.args.search:
                ctx.say(f"  ... {total - len(entries)} more (use --limit or export).")
    return EXIT_OK
