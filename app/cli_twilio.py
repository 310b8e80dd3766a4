"""`batchcalls twilio`: the Twilio account from the command line (SPEC section 11).

- `login`: the Account SID with its Auth Token, or an API key SID with its secret; the
  secret is asked without echo (or read from stdin with --secret-stdin), checked against
  Twilio, and stored in the keyring, never in the database, a log or the output;
- `check`: the credentials, the account's status, its numbers and TwiML apps;
- `numbers import` / `apps import`: the account's numbers become from numbers, its TwiML
  apps agents.

This module imports only argparse when the parser is built; the commands import the
services (SQLAlchemy, twilio) when they run.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.cli.context import Context
    from app.services.telephony import NumberInfo
    from app.services.twilio_account import ImportSummary
    from app.services.twilio_provider import TwilioProvider


def add_twilio_commands(
    command: Callable[[str, str, Callable[[Context], int]], argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add `twilio` and its actions to the `batchcalls` parser."""
    sub = command("twilio", "store, check and import from the Twilio account", cmd_twilio)
    actions = sub.add_subparsers(
        dest="twilio_action", metavar="ACTION", parser_class=type(sub), required=True
    )
    login = actions.add_parser(
        "login",
        parents=[common],
        help="save the Twilio credentials in the keyring (the secret asked without echo)",
        description="Check the credentials against Twilio and save them in this computer's "
        "keyring. The Auth Token (or API key secret) is asked without echo, never "
        "taken as an argument.",
    )
    login.add_argument(
        "--account-sid", metavar="AC…", help="the Account SID (asked for when not given)"
    )
    login.add_argument(
        "--api-key",
        metavar="SK…",
        help="log in with this API key SID; the secret asked is then the key's secret",
    )
    login.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the secret from the first line of stdin (for scripts) instead of asking",
    )
    login.add_argument(
        "--no-check",
        action="store_true",
        help="save without asking Twilio first whether the credentials work",
    )
    actions.add_parser(
        "check",
        parents=[common],
        help="test the saved credentials: the account's status, numbers and TwiML apps",
    )
    numbers = actions.add_parser("numbers", parents=[common], help="the account's numbers")
    numbers_actions = numbers.add_subparsers(
        dest="twilio_numbers_action", metavar="ACTION", parser_class=type(sub), required=True
    )
    numbers_actions.add_parser(
        "import",
        parents=[common],
        help="add the account's voice numbers and verified caller IDs as from numbers",
    )
    apps = actions.add_parser("apps", parents=[common], help="the account's TwiML apps")
    apps_actions = apps.add_subparsers(
        dest="twilio_apps_action", metavar="ACTION", parser_class=type(sub), required=True
    )
    apps_actions.add_parser(
        "import", parents=[common], help="add the account's TwiML apps as agents"
    )


def cmd_twilio(ctx: Context) -> int:
    action = ctx.args.twilio_action
    if action == "login":
        return _login(ctx)
    if action == "check":
        return _check(ctx)
    if action == "numbers":
        return _import_numbers(ctx)
    return _import_apps(ctx)


# --------------------------------------------------------------------------- login


def _stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _ask_secret(ctx: Context, what: str) -> str:
    from app.cli.context import CliError

    if ctx.args.secret_stdin:
        return sys.stdin.readline().strip()
    if not _stdin_is_terminal():
        raise CliError(
            f"There is no terminal to ask for the {what}: run this in a terminal, or pass "
            "--secret-stdin and give it on standard input. Nothing was saved."
        )
    return getpass.getpass(f"{what} (not shown): ").strip()


def _login(ctx: Context) -> int:
    from app.cli.context import EXIT_OK, CliError
    from app.services.providers import twilio_api_base
    from app.services.secrets import SecretStoreUnavailable, store_twilio_credentials
    from app.services.telephony import ProviderError
    from app.services.twilio_provider import TwilioProvider

    args = ctx.args
    account_sid = (args.account_sid or "").strip()
    if not account_sid:
        if args.secret_stdin or not _stdin_is_terminal():
            raise CliError("Give the Account SID with --account-sid. Nothing was saved.")
        account_sid = input("Twilio Account SID: ").strip()
    key_sid = (args.api_key or "").strip() or None
    what = "API key secret" if key_sid else "Auth Token"
    secret = _ask_secret(ctx, what)
    if not secret:
        raise CliError(f"No {what} was given. Nothing was saved.")
    settings = ctx.settings.load()
    try:
        provider = TwilioProvider(
            account_sid,
            None if key_sid else secret,
            api_key_sid=key_sid,
            api_key_secret=secret if key_sid else None,
            base_url=twilio_api_base(settings),
        )
    except ProviderError as e:
        raise CliError(f"{e} Nothing was saved.") from None
    account = None
    if not args.no_check:
        try:
            with provider:
                account = provider.check_credentials()
        except ProviderError as e:
            raise CliError(
                f"Twilio did not accept these credentials: {e} Nothing was saved."
            ) from None
    try:
        store_twilio_credentials(account_sid, secret, api_key_sid=key_sid)
    except SecretStoreUnavailable as e:
        raise CliError(str(e)) from None
    ctx.settings.update(twilio_account_sid=account_sid)
    document: dict[str, Any] = {
        "account_sid": account_sid,
        "api_key_sid": key_sid,
        "checked": account is not None,
        "account": _account_document(account) if account else None,
    }
    ctx.emit({"twilio_login": document})
    ctx.say(f"Saved the credentials of Twilio account {account_sid} in the keyring.")
    if account is not None:
        ctx.say(f'Account "{account.friendly_name}" is {account.status}.')
    if settings.provider != "twilio":
        ctx.say(
            'Calls are still simulated; "batchcalls settings set provider twilio" places '
            "real calls through this account."
        )
    return EXIT_OK


# --------------------------------------------------------------------------- check


def _account_document(account: Any) -> dict[str, str]:
    return {
        "account_sid": account.account_id,
        "friendly_name": account.friendly_name,
        "status": account.status,
    }


def _provider(ctx: Context) -> TwilioProvider:
    from app.cli.context import CliError
    from app.services.telephony import ProviderError
    from app.services.twilio_account import saved_twilio_provider

    try:
        return saved_twilio_provider(ctx.settings.load())
    except ProviderError as e:
        raise CliError(str(e)) from None


def account_numbers(ctx: Context) -> list[NumberInfo]:
    """The account's voice numbers and verified caller IDs (CliError if Twilio cannot
    be asked)."""
    from app.cli.context import CliError
    from app.services.telephony import ProviderError

    try:
        with _provider(ctx) as provider:
            return provider.list_from_numbers()
    except ProviderError as e:
        raise CliError(f"Cannot read the Twilio account's numbers: {e}") from None


def _check(ctx: Context) -> int:
    from app.cli.context import EXIT_OK, EXIT_REFUSED, CliError
    from app.cli.output import _table
    from app.services.telephony import ProviderError

    try:
        with _provider(ctx) as provider:
            account = provider.check_credentials()
            numbers = provider.list_from_numbers()
            applications = provider.list_applications()
    except ProviderError as e:
        raise CliError(f"The Twilio check failed: {e}") from None
    active = account.status == "active"
    ctx.emit(
        {
            "account": _account_document(account),
            "active": active,
            "numbers": [
                {"phone_number": n.phone_number, "label": n.label, "source": n.source}
                for n in numbers
            ],
            "applications": [
                {"sid": a.sid, "friendly_name": a.friendly_name} for a in applications
            ],
        }
    )
    ctx.say(f'Twilio account {account.account_id} "{account.friendly_name}": {account.status}.')
    if not active:
        ctx.say("Calls cannot be placed: reactivate the account in the Twilio Console.")
    ctx.say("", f"Numbers it can call from ({len(numbers)}):")
    if numbers:
        ctx.say(
            *_table(
                ("Number", "Label", "Source"),
                ((n.phone_number, n.label, _source(n.source)) for n in numbers),
            )
        )
    ctx.say("", f"TwiML apps ({len(applications)}):")
    if applications:
        ctx.say(*_table(("SID", "Name"), ((a.sid, a.friendly_name) for a in applications)))
    return EXIT_OK if active else EXIT_REFUSED


def _source(source: str) -> str:
    from app.services.twilio_account import NUMBER_SOURCES

    return NUMBER_SOURCES.get(source, source)


# --------------------------------------------------------------------------- imports


def _summary_document(summary: ImportSummary) -> dict[str, Any]:
    return {"added": summary.added, "already": summary.already, "skipped": summary.skipped}


def _import_numbers(ctx: Context) -> int:
    from app.cli.context import EXIT_OK
    from app.services.twilio_account import import_numbers

    summary = import_numbers(ctx.service, account_numbers(ctx))
    ctx.emit({"imported_numbers": _summary_document(summary)})
    ctx.say(
        f"Imported {len(summary.added)} from number(s); {len(summary.already)} were there already."
    )
    for number, reason in summary.skipped.items():
        ctx.say(f"  not imported: {number}: {reason}")
    return EXIT_OK


def _import_apps(ctx: Context) -> int:
    from app.cli.context import EXIT_OK, CliError
    from app.services.telephony import ProviderError
    from app.services.twilio_account import import_applications

    try:
        with _provider(ctx) as provider:
            applications = provider.list_applications()
    except ProviderError as e:
        raise CliError(f"Cannot read the Twilio account's TwiML apps: {e}") from None
    summary = import_applications(ctx.service, applications)
    ctx.emit({"imported_apps": _summary_document(summary)})
    ctx.say(
        f"Imported {len(summary.added)} TwiML app(s) as agents; "
        f"{len(summary.already)} were there already."
    )
    for sid, reason in summary.skipped.items():
        ctx.say(f"  not imported: {sid}: {reason}")
    return EXIT_OK


# --------------------------------------------------------------------------- numbers add


def checked_from_number(ctx: Context, text: str, label: str) -> tuple[str, str]:
    """The source and label of a from number about to be added: in Twilio mode the
    account must own it or have verified it (CliError otherwise: Twilio would refuse
    every call from it); in simulation mode it is "simulated"."""
    from app.cli.context import CliError
    from app.models.phone import PhoneError, normalize_phone
    from app.services.twilio_account import account_number

    settings = ctx.settings.load()
    if settings.provider != "twilio":
        return "simulated", label
    try:
        e164 = normalize_phone(text, settings.default_country)
    except PhoneError:
        return "simulated", label  # the service refuses it with its own message
    info = account_number(account_numbers(ctx), e164)
    if info is None:
        raise CliError(
            f"The Twilio account neither owns nor has verified {e164}, so Twilio would refuse "
            "every call from it. Buy or verify it in the Twilio Console, or run "
            '"batchcalls twilio numbers import" to add the numbers the account has. '
            "Nothing was added.",
            {"phone_number": f"{e164} is not a number of the Twilio account."},
        )
    return info.source, label or info.label
