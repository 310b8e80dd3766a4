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

The package, one job a module: `entry` (main: run one command, report its outcome),
`parser` (the commands, options and help texts), `context` (what a command receives, the
exit codes and refusals), `output` and `documents` (human and JSON output),
`batch_commands`, `create_command`, `catalog_commands` (agents, numbers, settings),
`worker_command`, and `local_zone` (this computer's timezone). The names other code and
the tests import are re-exported here; a test that replaces a name patches the module that
uses it (app.cli.create_command.local_timezone_name, app.cli.local_zone._qt_system_zone).
"""

from __future__ import annotations

from app.cli.context import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    PROG,
    CliError,
    Context,
    UsageError,
)
from app.cli.documents import (
    agent_document,
    batch_document,
    history_document,
    number_document,
    recipient_document,
    report_document,
    settings_document,
)
from app.cli.entry import main
from app.cli.local_zone import local_timezone_name
from app.cli.output import mask_secrets
from app.cli.parser import build_parser, parse_recipient_status, settings_keys_help

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "PROG",
    "CliError",
    "Context",
    "UsageError",
    "agent_document",
    "batch_document",
    "build_parser",
    "history_document",
    "local_timezone_name",
    "main",
    "mask_secrets",
    "number_document",
    "parse_recipient_status",
    "recipient_document",
    "report_document",
    "settings_document",
    "settings_keys_help",
]
