"""Help that answers (issue 11 item 4): every option explains itself, the top-level help
names the environment, `settings set --help` lists every key with its range, and every
command prints the version."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import fields

import pytest

from app import __version__
from app.cli import build_parser, main
from app.services.setting_specs import SETTING_SPECS
from app.services.settings import AppSettings


def all_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, (*path, name))


def test_every_option_and_argument_of_every_command_has_help():
    missing = [
        f"{' '.join(path) or 'batchcalls'} {'/'.join(action.option_strings) or action.dest}"
        for path, parser in all_parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []


def test_every_command_and_action_has_help_in_its_parent_listing():
    for path, parser in all_parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {choice.dest for choice in action._choices_actions if choice.help}
                assert helped == set(action.choices), path


def test_top_level_help_names_the_environment_variables(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for variable in (
        "BATCHCALLS_DATABASE_URL",
        "BATCHCALLS_TWILIO_ACCOUNT_SID",
        "BATCHCALLS_TWILIO_AUTH_TOKEN",
        "BATCHCALLS_TWILIO_API_KEY_SID",
        "BATCHCALLS_TWILIO_API_BASE",
    ):
        assert variable in out
    assert "exit status" in out


def test_the_environment_variables_named_are_the_ones_the_code_reads():
    from app.models.db import DATABASE_URL_ENV
    from app.services.secrets import ACCOUNT_SID_ENV, API_KEY_SID_ENV, AUTH_TOKEN_ENV
    from app.services.twilio_provider import API_BASE_ENV

    text = build_parser().format_help()
    for variable in (
        DATABASE_URL_ENV,
        ACCOUNT_SID_ENV,
        AUTH_TOKEN_ENV,
        API_KEY_SID_ENV,
        API_BASE_ENV,
    ):
        assert variable in text


def test_settings_set_help_lists_every_key_with_its_meaning_and_range(capsys):
    assert main(["settings", "set", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for key in (f.name for f in fields(AppSettings)):
        spec = SETTING_SPECS[key]
        assert f"{key}: {spec.describe_values()}" in out
        assert " ".join(spec.meaning.split()) in out
    assert "plan_concurrency: 1 to 10000" in out
    assert "poll_interval_seconds: 0.1 to 300" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["list", "--version"],
        ["settings", "set", "--version"],
        ["worker", "--version"],
        ["agents", "add", "--version"],
    ],
)
def test_version_everywhere(capsys, args):
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == f"batchcalls {__version__}"


def test_the_version_is_the_package_version():
    from importlib.metadata import version

    assert __version__ == version("batchcalls")


def test_worker_help_names_each_engine_option_with_its_range(capsys):
    assert main(["worker", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for option, key in (
        ("--pickup-interval", "pickup_interval_seconds"),
        ("--dial-interval", "dial_interval_seconds"),
        ("--poll-interval", "poll_interval_seconds"),
        ("--lease-heartbeat", "lease_heartbeat_seconds"),
        ("--lease-expiry", "lease_expiry_seconds"),
        ("--placement-concurrency", "placement_concurrency"),
    ):
        assert option in out
        assert f"({SETTING_SPECS[key].describe_values()}; default: the {key} setting)" in out
    assert "--log-format {text,json}" in out


def test_docs_operating_lists_every_setting_with_its_range():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "operating.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in text.splitlines() if "| `" in line}
    for key, spec in SETTING_SPECS.items():
        assert key in rows, key
        if spec.low is not None:
            assert f"| {spec.describe_values()} |" in rows[key], key


def test_settings_show_and_set_cover_the_engine_timing(run):
    shown = run("settings", "show", "--json").json["settings"]
    assert (
        shown["poll_interval_seconds"],
        shown["lease_heartbeat_seconds"],
        shown["lease_expiry_seconds"],
    ) == (3.0, 5.0, 30.0)
    assert "poll_interval_seconds = 3.0" in run("settings", "show").out

    refused = run("settings", "set", "lease_expiry_seconds", "5")
    assert refused.code == 1
    assert "The lease expiry must be between 10 and 3600; 5.0 is not." in refused.err
    assert run("settings", "set", "poll_interval_seconds", "10").code == 0
    assert run("settings", "show", "--json").json["settings"]["poll_interval_seconds"] == 10.0
