"""Shared, non-secret settings kept in the database (so a desktop and a headless worker on
one database agree on the plan's limits). Secrets live in the keyring (app.services.secrets).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models.schema import Setting
from app.services.setting_specs import SETTING_SPECS

PROVIDERS = ("simulation", "twilio")


class SettingsError(ValueError):
    """A setting value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class AppSettings:
    provider: str = "simulation"
    #: Simultaneous calls the account may hold, shared by every running batch call.
    plan_concurrency: int = 10
    #: Calls started per second at most (Twilio's default for an account is 1).
    calls_per_second: float = 1.0
    #: Create requests to the provider in flight at once at most (Twilio limits the
    #: requests an account may have in flight, and answers 429 beyond it). The pacing
    #: keeps rate x latency in flight (25 at 100 calls/s and 250 ms): this bound only
    #: matters when the provider slows down, and leaves room for the status polls.
    placement_concurrency: int = 50
    default_country: str = "US"
    #: Seconds between pickups of due SCHEDULED batch calls.
    pickup_interval_seconds: float = 60.0
    #: Seconds between dialing ticks.
    dial_interval_seconds: float = 1.0
    ring_timeout_seconds: int = 30
    #: A call unresolved after ring timeout + this is settled by a final fetch.
    max_call_duration_seconds: int = 4 * 3600
    answering_machine_detection: bool = False
    simulation_seed: int = 0
    twilio_account_sid: str = ""
    twilio_api_base: str = ""
    #: Seconds between two status requests for one live call (read when an engine starts).
    poll_interval_seconds: float = 3.0
    #: The dialing engine renews its lease this often; a standby engine takes over after
    #: the lease went unrenewed for the expiry (both read when an engine starts).
    lease_heartbeat_seconds: float = 5.0
    lease_expiry_seconds: float = 30.0
    #: SPEC 10: call attempts to one number in any 24 hours, all batch calls (0: no cap).
    max_attempts_per_number_24h: int = 0

    def validate(self) -> AppSettings:
        """Every value within bounds the engine can live with, or SettingsError."""
        from app.models.phone import is_supported_country

        if self.provider not in PROVIDERS:
            raise SettingsError(f"Provider must be one of {', '.join(PROVIDERS)}.")
        for key, spec in SETTING_SPECS.items():
            if spec.low is not None and spec.high is not None:
                _bounded(spec.label, getattr(self, key), spec.low, spec.high)
        if self.lease_heartbeat_seconds * 3 > self.lease_expiry_seconds:
            raise SettingsError(
                "The lease heartbeat must be at most a third of the lease expiry "
                f"({self.lease_heartbeat_seconds:g} s is more than a third of "
                f"{self.lease_expiry_seconds:g} s), so one late renewal never hands the "
                "dialing to a standby engine."
            )
        if not is_supported_country(self.default_country):
            raise SettingsError(
                f'"{self.default_country}" is not a country code phone numbers can use; '
                "use a two-letter code such as US or GB."
            )
        base = self.twilio_api_base.strip()
        if base and not re.match(r"^https?://[^\s/]+", base):
            raise SettingsError(
                "The Twilio API base must be a URL such as https://api.twilio.com "
                "(or empty for Twilio itself)."
            )
        return self


def _bounded(what: str, value: float, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise SettingsError(f"{what} must be between {low:g} and {high:g}; {value!r} is not.")


def _coerce(name: str, raw: str) -> Any:
    template = AppSettings()
    kind = type(getattr(template, name))
    try:
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if kind is int:
            return int(raw.strip())
        return kind(raw.strip()) if kind is float else kind(raw)
    except ValueError:
        raise SettingsError(f'Setting {name}: "{raw}" is not a valid {kind.__name__}.') from None


def load_settings(session: Session) -> AppSettings:
    names = {f.name for f in fields(AppSettings)}
    stored = {
        key: value
        for key, value in session.execute(select(Setting.key, Setting.value)).tuples()
        if key in names
    }
    values = {name: _coerce(name, raw) for name, raw in stored.items()}
    return replace(AppSettings(), **values)


def save_settings(session: Session, settings: AppSettings) -> None:
    settings.validate()
    for key, value in asdict(settings).items():
        row = session.get(Setting, key)
        text = str(value)
        if row is None:
            session.add(Setting(key=key, value=text))
        else:
            row.value = text


class SettingsStore:
    """Reads and writes AppSettings through short transactions."""

    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def load(self) -> AppSettings:
        with self._sessions() as session:
            return load_settings(session)

    def save(self, settings: AppSettings) -> None:
        with self._sessions.begin() as session:
            save_settings(session, settings)

    def update(self, **changes: Any) -> AppSettings:
        names = {f.name for f in fields(AppSettings)}
        unknown = set(changes) - names
        if unknown:
            raise SettingsError(f"Unknown setting: {', '.join(sorted(unknown))}.")
        with self._sessions.begin() as session:
            current = load_settings(session)
            coerced = {
                k: _coerce(k, v)
                if isinstance(v, str) and not isinstance(getattr(current, k), str)
                else v
                for k, v in changes.items()
            }
            updated = replace(current, **coerced).validate()
            save_settings(session, updated)
            return updated
