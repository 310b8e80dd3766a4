"""The command line's grammar: every command, option and help text, and the parser that
reports usage errors instead of exiting."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import NoReturn

from app import __version__
from app.cli.batch_commands import (
    _status_action,
    cmd_backup,
    cmd_delete,
    cmd_export,
    cmd_list,
    cmd_rename,
    cmd_show,
    cmd_template,
)
from app.cli.catalog_commands import cmd_agents, cmd_numbers, cmd_settings
from app.cli.context import PROG, Context, UsageError
from app.cli.create_command import cmd_create
from app.cli.worker_command import cmd_worker
from app.cli_policy import add_create_options, add_dnc_command
from app.models.agents import AGENT_KINDS
from app.models.status import Action, RecipientStatus
from app.services.setting_specs import SETTING_SPECS
from app.services.worker_options import add_engine_options


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so main() reports usage errors (and --json) in one place."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


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
