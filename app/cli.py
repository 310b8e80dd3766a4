"""The `batchcalls` command line (SPEC section 9).

With no sub-command it starts the desktop application; `worker` runs the engine without a
window; every other sub-command does what the GUI does, through the same services, so a
script, an IT person on a server and QA get the same rules and the same messages as the
supervisor. Output is a short human summary, or exactly one JSON document with `--json`.

Exit codes: 0 done, 1 refused (validation, not found, an action the status does not allow),
2 usage error, 130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM, 141 output closed early
(`batchcalls list | head`: quietly).

Human output escapes control characters (a name or recipient field with ESC, BEL or a
right-to-left override is shown as \x1b, \x07, \u202e, never obeyed by the terminal).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from app import __version__
from app.cli_policy import (
    add_create_options,
    add_dnc_command,
    describe_policy,
    forecast_document,
    forecast_of,
    policy_document,
    policy_fields,
)
from app.models.agents import AGENT_KINDS
from app.models.sqlite_file import DatabaseProblem
from app.models.status import Action, ActionNotAllowed, BatchStatus, RecipientStatus
from app.models.text import escape_controls
from app.models.window import WindowError, parse_days, parse_timezone
from app.services.interrupts import (
    Interrupted,
    deferred_stop_signals,
    held_stop_signals,
    stop_point,
)
from app.services.setting_specs import SETTING_SPECS
from app.services.worker_options import add_engine_options

if TYPE_CHECKING:
    # SQLAlchemy, the services, phonenumbers, Alembic, Qt and twilio are imported by the
    # commands that use them: `--help` and `--version` load none of them, `list` no Qt,
    # twilio, phonenumbers or Alembic (tests/test_cli_startup.py).
    from sqlalchemy.orm import Session, sessionmaker

    from app.models.snapshots import (
        AgentSnapshot,
        AuditSnapshot,
        BatchCallSnapshot,
        FromNumberSnapshot,
        RecipientSnapshot,
    )
    from app.services.batch_calls import BatchCallService, NewBatchCall
    from app.services.settings import AppSettings, SettingsStore

log = logging.getLogger(__name__)

PROG = "batchcalls"
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a tool the pipe's reader stopped
#: Rejected rows listed in the human summary; --json lists every row the import kept.
REJECTED_SHOWN = 200
DUPLICATES_SHOWN = 20
SCHEDULE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")
_ETC_LOCALTIME = Path("/etc/localtime")
_ETC_TIMEZONE = Path("/etc/timezone")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):\S+@")
#: What json.dumps(ensure_ascii=False) leaves raw but a terminal may obey: DEL, C1 and the
#: bidirectional and line-layout controls (it escapes C0 itself).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class CliError(Exception):
    """A refusal with a supervisor-readable message (exit 1); `extra` joins the JSON error."""

    def __init__(
        self,
        message: str,
        problems: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.problems = problems or {}
        self.extra = extra or {}


class UsageError(Exception):
    """What argparse found wrong with the command line (exit 2)."""

    def __init__(self, message: str, usage: str):
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so main() reports usage errors (and --json) in one place."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


# --------------------------------------------------------------------------- helpers


def local_timezone_name() -> str | None:
    """The supervisor's IANA timezone: the clock's zone key, $TZ, the /etc/localtime link,
    /etc/timezone, then Qt's system zone (which maps Windows zones to IANA names). None
    when nothing names a known zone: the caller asks for --timezone rather than guess UTC."""
    zone = datetime.now().astimezone().tzinfo
    candidates: list[str] = [str(getattr(zone, "key", "") or "")]
    candidates.append(os.environ.get("TZ", "").lstrip(":"))
    try:
        candidates.append(os.path.realpath(_ETC_LOCALTIME) if _ETC_LOCALTIME.exists() else "")
    except OSError:
        pass
    try:
        candidates.append(_ETC_TIMEZONE.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        pass
    candidates.append(_qt_system_zone())
    for candidate in candidates:
        # "/usr/share/zoneinfo/Europe/Paris" (Linux), "/var/db/timezone/zoneinfo/..." (macOS)
        name = candidate.replace(os.sep, "/").split("zoneinfo/", 1)[-1]
        name = name.removeprefix("posix/").removeprefix("right/")
        if name and not name.startswith("/") and _is_timezone(name):
            return name
    return None


def _qt_system_zone() -> str:
    """Qt's IANA id of the system zone (the only reliable source on Windows)."""
    try:
        with held_stop_signals(PROG):  # an interrupted PySide6 import aborts the process
            from PySide6.QtCore import QTimeZone

        return bytes(QTimeZone.systemTimeZoneId().data()).decode("ascii", "replace")
    except Exception:  # Qt missing or broken: the other sources decide
        return ""


def _is_timezone(name: str) -> bool:
    try:
        parse_timezone(name)
    except WindowError:
        return False
    return True


def mask_secrets(text: str) -> str:
    """Hide the password of any URL in the text (an agent webhook, an API base)."""
    return _URL_PASSWORD.sub(r"\1:****@", text)


def parse_recipient_status(text: str) -> RecipientStatus:
    """argparse type: "no-answer", "No Answer", "in_progress" and friends."""
    key = re.sub(r"[\s-]+", "_", text.strip()).upper()
    try:
        return RecipientStatus(key)
    except ValueError:
        choices = ", ".join(s.value.lower() for s in RecipientStatus)
        raise argparse.ArgumentTypeError(
            f'"{text}" is not a recipient status; use one of: {choices}.'
        ) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f'"{text}" is not a positive number of seconds.')
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _local(value: datetime | None) -> str:
    """A timestamp as the supervisor reads it: local wall time, minutes."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(document: Any, indent: int | None = 2) -> str:
    text = json.dumps(document, indent=indent, default=_json_default, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def batch_document(b: BatchCallSnapshot) -> dict[str, Any]:
    """A batch call as --json shows it: stored values plus what the GUI displays."""
    return {
        "id": b.id,
        "name": b.name,
        "status": b.status.value,
        "status_display": b.status_display,
        "import_state": b.import_state.value,
        "agent_id": b.agent_id,
        "agent_name": b.agent_name,
        "from_number": b.from_number,
        "send_type": b.send_type.value,
        "send_type_display": b.send_type.display_name,
        "scheduled_at": _iso(b.scheduled_at),
        "timezone": b.timezone,
        "window_start": b.window_start,
        "window_end": b.window_end,
        "allowed_days": sorted(b.allowed_days),
        "allowed_days_display": b.allowed_days_display,
        "reserved_concurrency": b.reserved_concurrency,
        "total_recipients": b.total_recipients,
        "counts": {status.value: b.counts[status] for status in RecipientStatus},
        "finished_count": b.finished_count,
        "remaining_count": b.remaining_count,
        "progress_percent": round(b.progress_percent, 1),
        "failure_reason": b.failure_reason,
        "waiting_reason": b.waiting_reason,
        "retry_count": b.retry_count,
        "created_at": _iso(b.created_at),
        "started_at": _iso(b.started_at),
        "finished_at": _iso(b.finished_at),
        "updated_at": _iso(b.updated_at),
        **policy_document(b),
        "actions": [a.value for a in b.actions],
    }


def recipient_document(r: RecipientSnapshot) -> dict[str, Any]:
    return {
        "id": r.id,
        "row_number": r.row_number,
        "phone_number": r.phone_number,
        "name": r.name,
        "variables": r.variables,
        "status": r.status.value,
        "status_display": r.status.display_name,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "provider_call_id": r.provider_call_id,
        "requested_at": _iso(r.requested_at),
        "answered_at": _iso(r.answered_at),
        "ended_at": _iso(r.ended_at),
        "duration_seconds": r.duration_seconds,
        "answered_by": r.answered_by,
    }


def history_document(e: AuditSnapshot) -> dict[str, Any]:
    return {
        "action": e.action,
        "detail": e.detail,
        "user": e.user,
        "host": e.host,
        "at": _iso(e.at),
    }


def agent_document(a: AgentSnapshot) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "kind": a.kind,
        "value": mask_secrets(a.value),
        "active": a.active,
    }


def number_document(n: FromNumberSnapshot) -> dict[str, Any]:
    return {
        "id": n.id,
        "phone_number": n.phone_number,
        "label": n.label,
        "source": n.source,
        "active": n.active,
    }


def report_document(report: Any) -> dict[str, Any]:
    """The CSV scan (app.services.csv_import.CsvReport) as --json shows it."""
    return {
        "total_rows": report.total_rows,
        "accepted_count": report.accepted_count,
        "rejected_count": report.rejected_count,
        "rejected": [
            {"row_number": r.row_number, "phone_raw": r.phone_raw, "reason": r.reason}
            for r in report.rejected
        ],
        "duplicate_count": report.duplicate_count,
        "duplicates": [
            {"phone_number": d.phone_number, "row_numbers": list(d.row_numbers)}
            for d in report.duplicates
        ],
        "variable_columns": list(report.variable_columns),
    }


def _table(headers: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> list[str]:
    text_rows = [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in text_rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return lines


def _short(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


# --------------------------------------------------------------------------- context


@dataclass
class Context:
    """What a sub-command needs: its arguments, the services, and the output mode."""

    args: argparse.Namespace
    url: str
    sessions: sessionmaker[Session] | None = None
    _service: BatchCallService | None = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    @property
    def service(self) -> BatchCallService:
        if self._service is None:
            from app.services.batch_calls import BatchCallService

            assert self.sessions is not None
            self._service = BatchCallService(self.sessions)
        return self._service

    @property
    def settings(self) -> SettingsStore:
        from app.services.settings import SettingsStore

        assert self.sessions is not None
        return SettingsStore(self.sessions)

    def say(self, *lines: str) -> None:
        """Human output (nothing in --json mode)."""
        if not self.json:
            for line in lines:
                print(escape_controls(line), file=sys.stdout)

    def emit(self, document: dict[str, Any]) -> None:
        """The one JSON document of a successful command (nothing in human mode)."""
        if self.json:
            print(_dumps(document), file=sys.stdout)

    def batch(self, reference: str) -> BatchCallSnapshot:
        from app.services.batch_calls import NotFound

        try:
            return self.service.resolve(reference)
        except NotFound as e:
            raise CliError(f'{e} Run "{PROG} list" to see the batch calls.') from None


# --------------------------------------------------------------------------- batch calls


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


def _resolve_agent(ctx: Context, reference: str) -> AgentSnapshot:
    agents = ctx.service.list_agents()
    text = reference.strip()
    if text.isdigit():
        for a in agents:
            if a.id == int(text):
                return a
    matches = [a for a in agents if a.name.lower() == text.lower()]
    if matches:
        return matches[0]
    raise CliError(
        f'No agent "{reference}". Run "{PROG} agents" to see them, or add one with '
        f'"{PROG} agents add".',
        {"agent": f'No agent "{reference}".'},
    )


def _resolve_number(ctx: Context, reference: str, default_country: str) -> FromNumberSnapshot:
    from app.models.phone import PhoneError, normalize_phone

    numbers = ctx.service.list_from_numbers()
    text = reference.strip()
    if text.isdigit():
        for n in numbers:
            if n.id == int(text):
                return n
    try:
        e164 = normalize_phone(text, default_country)
    except PhoneError:
        e164 = text
    for n in numbers:
        if n.phone_number == e164:
            return n
    raise CliError(
        f'No from number "{reference}". Run "{PROG} numbers" to see them, or add one with '
        f'"{PROG} numbers add".',
        {"from_number": f'No from number "{reference}".'},
    )


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


# --------------------------------------------------------------------------- agents, numbers


def cmd_agents(ctx: Context) -> int:
    action = ctx.args.agents_action or "list"
    if action == "list":
        agents = ctx.service.list_agents()
        ctx.emit({"agents": [agent_document(a) for a in agents]})
        if not agents:
            ctx.say(f'No agents yet. Add one with "{PROG} agents add".')
        else:
            rows = [
                (a.id, a.name, a.kind, "yes" if a.active else "no", _short(mask_secrets(a.value)))
                for a in agents
            ]
            ctx.say(*_table(("ID", "Name", "Kind", "Active", "Value"), rows))
        return EXIT_OK
    if action == "add":
        value = ctx.args.value
        if ctx.args.value_file is not None:
            try:
                value = Path(ctx.args.value_file).expanduser().read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as e:
                raise CliError(
                    f"Cannot read the agent value from {ctx.args.value_file}: {e}."
                ) from e
        agent = ctx.service.add_agent(ctx.args.name, ctx.args.kind, value.strip())
        ctx.emit({"agent": agent_document(agent)})
        ctx.say(f'Added agent {agent.id} "{agent.name}" ({agent.kind}).')
        return EXIT_OK
    from app.services.batch_calls import NotFound

    agent = _resolve_agent(ctx, ctx.args.reference)
    active = action == "activate"
    try:
        agent = ctx.service.set_agent_active(agent.id, active)
    except NotFound as e:
        raise CliError(str(e)) from e
    ctx.emit({"agent": agent_document(agent)})
    state = "active" if active else "inactive (it can no longer be chosen for new batch calls)"
    ctx.say(f'Agent {agent.id} "{agent.name}" is now {state}.')
    return EXIT_OK


def cmd_numbers(ctx: Context) -> int:
    action = ctx.args.numbers_action or "list"
    if action == "add":
        from app.cli_twilio import checked_from_number

        source, label = checked_from_number(ctx, ctx.args.phone_number, ctx.args.label or "")
        number = ctx.service.add_from_number(ctx.args.phone_number, label, source=source)
        ctx.emit({"number": number_document(number)})
        ctx.say(f"Added from number {number.id}: {number.display}.")
        return EXIT_OK
    numbers = ctx.service.list_from_numbers()
    ctx.emit({"numbers": [number_document(n) for n in numbers]})
    if not numbers:
        ctx.say(f'No from numbers yet. Add one with "{PROG} numbers add +15551234567".')
    else:
        rows = [
            (n.id, n.phone_number, n.label, n.source, "yes" if n.active else "no") for n in numbers
        ]
        ctx.say(*_table(("ID", "Number", "Label", "Source", "Active"), rows))
    return EXIT_OK


# --------------------------------------------------------------------------- settings, worker


def settings_document(settings: AppSettings) -> dict[str, Any]:
    from app.services.settings import AppSettings

    return {
        f.name: mask_secrets(v) if isinstance(v := getattr(settings, f.name), str) else v
        for f in fields(AppSettings)
    }


def _setting_text(value: object) -> str:
    """As `settings set` accepts it back: true/false, not Python's True/False."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def cmd_settings(ctx: Context) -> int:
    from app.services.settings import AppSettings, SettingsError

    store = ctx.settings
    if (ctx.args.settings_action or "show") == "set":
        key, raw = ctx.args.key.strip(), ctx.args.value
        names = [f.name for f in fields(AppSettings)]
        if key not in names:
            raise CliError(
                f'"{key}" is not a setting. Settings: {", ".join(names)}.',
                {key: "Unknown setting."},
            )
        if isinstance(getattr(AppSettings(), key), bool):
            word = raw.strip().lower()
            if word not in _TRUE | _FALSE:
                raise CliError(f'{key} is true or false, not "{raw}".', {key: "Not true/false."})
            raw = "true" if word in _TRUE else "false"
        try:
            settings = store.update(**{key: raw})
        except SettingsError as e:
            raise CliError(str(e), {key: str(e)}) from e
        ctx.emit({"settings": settings_document(settings)})
        ctx.say(f"{key} = {_setting_text(settings_document(settings)[key])}")
        return EXIT_OK
    document = settings_document(store.load())
    ctx.emit({"settings": document})
    ctx.say(*(f"{k} = {_setting_text(v)}" for k, v in document.items()))
    return EXIT_OK


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


# --------------------------------------------------------------------------- parser

DATABASE_URL_HELP = (
    "database to use (default: $BATCHCALLS_DATABASE_URL, else the local SQLite file)"
)
VERBOSE_HELP = "log progress on stderr (-vv: debug details)"
REFERENCE_HELP = "the batch call's id or exact name"
VERSION_HELP = "print the version and exit"
ENVIRONMENT_HELP = f"""\
environment:
  BATCHCALLS_DATABASE_URL        the database, as --database-url (e.g. a shared
                                 postgresql+psycopg://user@host/batchcalls)
  BATCHCALLS_DATABASE_URL_FILE   a file (chmod 600) holding that URL: keeps a
                                 password out of the process list
  BATCHCALLS_TWILIO_ACCOUNT_SID  Twilio credentials for a worker without a keyring;
  BATCHCALLS_TWILIO_AUTH_TOKEN   set both or neither (otherwise the keyring's, saved
                                 by "{PROG} twilio login")
  BATCHCALLS_TWILIO_API_KEY_SID  with an API key: its SID (the secret goes in
                                 BATCHCALLS_TWILIO_AUTH_TOKEN)
  BATCHCALLS_TWILIO_API_BASE     another Twilio API address (a proxy or the local
                                 stand-in); wins over the twilio_api_base setting

exit status: 0 done, 1 refused (the message says why), 2 usage error, 130 interrupted,
141 output closed early (e.g. piped into head)
"""


def settings_keys_help() -> str:
    """The keys of `settings set`: meaning and accepted values."""
    import textwrap

    lines = ["settings (key: accepted values):"]
    for key, spec in SETTING_SPECS.items():
        lines.append(f"  {key}: {spec.describe_values()}")
        lines.extend(
            textwrap.wrap(spec.meaning, 78, initial_indent=" " * 6, subsequent_indent=" " * 6)
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    # Global options are accepted before and after the sub-command; the sub-command's copies
    # default to SUPPRESS so they never overwrite a value given before it.
    common = _Parser(add_help=False)
    common.add_argument(
        "--database-url", metavar="URL", default=argparse.SUPPRESS, help=DATABASE_URL_HELP
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document"
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )
    common.add_argument(
        "--version", action="version", version=f"{PROG} {__version__}", help=VERSION_HELP
    )

    parser = _Parser(
        prog=PROG,
        description="Create, run and control outbound batch calls. Without a command, starts\n"
        "the desktop application.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", metavar="URL", help=DATABASE_URL_HELP)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    parser.add_argument(
        "--version",
        action="version",
        version=f"{PROG} {__version__}",
        help=VERSION_HELP,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str, handler: Callable[[Context], int]) -> _Parser:
        sub = commands.add_parser(name, help=help_text, parents=[common], description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    status_help = "recipient status: " + ", ".join(s.value.lower() for s in RecipientStatus)

    sub = command("list", "list batch calls, newest first", cmd_list)
    sub.add_argument("--search", metavar="TEXT", help="only names containing TEXT")

    sub = command("show", "show one batch call", cmd_show)
    sub.add_argument("reference", metavar="ID|NAME", help="the batch call's id or exact name")
    sub.add_argument("--recipients", action="store_true", help="list its recipients")
    sub.add_argument("--status", type=parse_recipient_status, help=status_help)
    sub.add_argument("--history", action="store_true", help="list who did what, and when")

    sub = command("create", "create a batch call from a recipients CSV", cmd_create)
    sub.add_argument("--name", required=True, help="the batch call's name (unique)")
    sub.add_argument(
        "--agent", required=True, metavar="ID|NAME", help='what callees hear (see "agents")'
    )
    sub.add_argument(
        "--from-number",
        required=True,
        metavar="ID|E164",
        help='the caller id, one of the from numbers (see "numbers")',
    )
    sub.add_argument("--csv", required=True, metavar="PATH", help='recipients CSV (see "template")')
    when = sub.add_mutually_exclusive_group()
    when.add_argument("--send-now", action="store_true", help="start at the next pickup (default)")
    when.add_argument("--schedule", metavar='"YYYY-MM-DD HH:MM"', help="start at this local time")
    sub.add_argument("--timezone", metavar="TZ", help="IANA name (default: this computer's)")
    sub.add_argument(
        "--time-range",
        default="09:00-18:00",
        metavar="RANGES",
        help='daily calling windows: 09:00-18:00, 09:00-12:00,14:00-18:00 or "all day"',
    )
    sub.add_argument("--days", default="mon-fri", help="allowed days, e.g. mon-fri or mon,wed")
    sub.add_argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="calls of this batch call at once, within the plan_concurrency setting (default: 1)",
    )
    sub.add_argument("--default-country", metavar="CC", help="for national numbers (e.g. US)")
    sub.add_argument("--drop-duplicates", action="store_true", help="keep only the first row")
    sub.add_argument("--allow-rejected", action="store_true", help="skip rejected rows")
    add_create_options(sub)

    sub = command("rename", "rename a batch call", cmd_rename)
    sub.add_argument("reference", metavar="ID", help=REFERENCE_HELP)
    sub.add_argument("new_name", metavar="NEW_NAME", help="the new name (unique)")

    for action, help_text in (
        (Action.PAUSE, "pause a running batch call"),
        (Action.RESUME, "resume a paused batch call"),
        (Action.CANCEL, "cancel a batch call for good"),
        (Action.RETRY, "call failed, unanswered and never-called recipients again"),
    ):
        sub = command(action.value.lower(), help_text, _status_action(action))
        sub.add_argument("reference", metavar="ID", help=REFERENCE_HELP)

    sub = command("delete", "delete a batch call and its recipients", cmd_delete)
    sub.add_argument("reference", metavar="ID", help=REFERENCE_HELP)
    sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    sub = command("export", "export recipients and outcomes to CSV", cmd_export)
    sub.add_argument("reference", metavar="ID", help=REFERENCE_HELP)
    sub.add_argument("path", metavar="PATH", help="the CSV file to write")
    sub.add_argument("--status", type=parse_recipient_status, help=status_help)
    sub.add_argument("--force", action="store_true", help="replace an existing file")

    sub = command("template", "write a sample recipients CSV", cmd_template)
    sub.add_argument("path", metavar="PATH", help="the CSV file to write")
    sub.add_argument("--force", action="store_true", help="replace an existing file")

    sub = command(
        "backup", "copy the SQLite database to PATH (consistent while in use)", cmd_backup
    )
    sub.add_argument(
        "path", metavar="PATH", help="the new file (never replaced; readable by you only)"
    )

    sub = command("agents", "list or manage agents", cmd_agents)
    agents = sub.add_subparsers(dest="agents_action", metavar="ACTION", parser_class=_Parser)
    agents.add_parser("list", parents=[common], help="list agents")
    add = agents.add_parser("add", parents=[common], help="add an agent")
    add.add_argument("--name", required=True, help="the agent's name (unique)")
    add.add_argument(
        "--kind",
        required=True,
        choices=AGENT_KINDS,
        help="application: a TwiML App SID; url: a webhook returning TwiML; twiml: TwiML",
    )
    value = add.add_mutually_exclusive_group(required=True)
    value.add_argument("--value", help="TwiML App SID, webhook URL or TwiML")
    value.add_argument("--value-file", metavar="FILE", help="read the value (e.g. TwiML) from FILE")
    for name in ("activate", "deactivate"):
        toggle = agents.add_parser(name, parents=[common], help=f"{name} an agent")
        toggle.add_argument("reference", metavar="ID|NAME", help="the agent's id or name")

    sub = command("numbers", "list or add from numbers", cmd_numbers)
    numbers = sub.add_subparsers(dest="numbers_action", metavar="ACTION", parser_class=_Parser)
    numbers.add_parser("list", parents=[common], help="list from numbers")
    add = numbers.add_parser("add", parents=[common], help="add a from number")
    add.add_argument("phone_number", metavar="E164", help="the number, e.g. +12025550100")
    add.add_argument("--label", default="", help="a name shown beside the number")

    from app.cli_twilio import add_twilio_commands

    add_twilio_commands(command, common)

    add_dnc_command(commands, common, _Parser)

    sub = command("settings", "show or change shared settings", cmd_settings)
    settings = sub.add_subparsers(dest="settings_action", metavar="ACTION", parser_class=_Parser)
    settings.add_parser("show", parents=[common], help="show settings")
    change = settings.add_parser(
        "set",
        parents=[common],
        help="change one setting",
        description="Change one shared setting: every desktop and worker on the database\n"
        f'reads it. The current values: "{PROG} settings show".',
        epilog=settings_keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    change.add_argument("key", metavar="KEY", help="one of the keys below")
    change.add_argument("value", metavar="VALUE", help="its new value, within its range")

    sub = command("worker", "run the dialer without a window", cmd_worker)
    sub.description = (
        "Run the dialer without a window until Ctrl+C or SIGTERM (one worker per database "
        "dials; another stands by). The options below override the stored settings for this "
        "worker only (nothing is saved); see docs/operating.md."
    )
    sub.add_argument("--once", action="store_true", help="one pickup and dialing pass, then exit")
    add_engine_options(sub)
    return parser


# --------------------------------------------------------------------------- main


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


if __name__ == "__main__":
    sys.exit(main())
