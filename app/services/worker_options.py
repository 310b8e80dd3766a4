"""The headless worker's options that override engine settings for that worker only,
shared by `batchcalls worker` and `python -m app.services.worker`. No database import, so
`batchcalls --help` stays fast."""

from __future__ import annotations

import argparse
from typing import Any

from app.services.setting_specs import SETTING_SPECS


def positive_seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds (the setting's range is checked
    with the stored settings when the worker starts)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f'"{text}" is not a positive number of seconds.')
    return value


#: Worker option -> the setting it overrides for this worker.
ENGINE_OPTIONS = {
    "pickup_interval": "pickup_interval_seconds",
    "dial_interval": "dial_interval_seconds",
    "poll_interval": "poll_interval_seconds",
    "lease_heartbeat": "lease_heartbeat_seconds",
    "lease_expiry": "lease_expiry_seconds",
}
#: The one engine option that is a count, not seconds (`--placement-concurrency N`).
PLACEMENT_KEY = "placement_concurrency"


def positive_count(text: str) -> int:
    """argparse type: a whole number of at least 1 (the setting's range is checked with
    the stored settings when the worker starts)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'"{text}" is not a whole number of at least 1.')
    return value


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """The options that override engine settings (shared with `batchcalls worker`); the
    help names each one's range (app.services.settings.SETTING_SPECS)."""
    for option, key in ENGINE_OPTIONS.items():
        spec = SETTING_SPECS[key]
        parser.add_argument(
            f"--{option.replace('_', '-')}",
            type=positive_seconds,
            metavar="SECONDS",
            help=f"{spec.meaning} ({spec.describe_values()}; default: the {key} setting)",
        )
    spec = SETTING_SPECS[PLACEMENT_KEY]
    parser.add_argument(
        "--placement-concurrency",
        type=positive_count,
        metavar="N",
        help=f"{spec.meaning} ({spec.describe_values()}; default: the {PLACEMENT_KEY} setting)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object a line for a log collector (default: text)",
    )


def engine_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the engine options given on the command line override."""
    overrides = {
        key: getattr(args, option)
        for option, key in ENGINE_OPTIONS.items()
        if getattr(args, option, None) is not None
    }
    if getattr(args, PLACEMENT_KEY, None) is not None:
        overrides[PLACEMENT_KEY] = getattr(args, PLACEMENT_KEY)
    return overrides
