"""What every sub-command shares: the program name, the exit codes, the refusals, and the
Context a handler receives (its arguments, the services, the output mode)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.cli.output import _dumps
from app.models.text import escape_controls

if TYPE_CHECKING:
    # SQLAlchemy and the services are imported by the commands that use them: `--help` and
    # `--version` load none of them (tests/test_cli_startup.py).
    from sqlalchemy.orm import Session, sessionmaker

    from app.models.snapshots import BatchCallSnapshot
    from app.services.batch_calls import BatchCallService
    from app.services.settings import SettingsStore

PROG = "batchcalls"
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a tool the pipe's reader stopped


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
