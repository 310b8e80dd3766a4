"""Shared, non-secret settings kept in the database (so a desktop and a headless worker on
one database agree on the plan's limits). Secrets live in the keyring (app.services.secrets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models.schema import Setting

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

    def validate(self) -> AppSettings:
        if self.provider not in PROVIDERS:
            raise SettingsError(f"Provider must be one of {', '.join(PROVIDERS)}.")
        if self.plan_concurrency < 1:
            raise SettingsError("Plan concurrency must be a whole number of at least 1.")
        if not 0 < self.calls_per_second <= 1000:
            raise SettingsError("Calls per second must be more than 0 and at most 1000.")
        if self.pickup_interval_seconds <= 0 or self.dial_interval_seconds <= 0:
            raise SettingsError("Tick intervals must be positive.")
        if self.ring_timeout_seconds < 5 or self.ring_timeout_seconds > 600:
            raise SettingsError("Ring timeout must be between 5 and 600 seconds.")
        if len(self.default_country) != 2 or not self.default_country.isalpha():
            raise SettingsError("Default country must be a two-letter code such as US or GB.")
        return self


def _coerce(name: str, raw: str) -> Any:
    template = AppSettings()
    kind = type(getattr(template, name))
    try:
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        return kind(raw)
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
