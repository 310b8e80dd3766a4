"""The engine settings an engine reads once, when it starts: the poll interval and the
lease timing. They live in the shared settings (so every engine on a database agrees on
the lease) and a host may override them for itself (`batchcalls worker --poll-interval`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.services.engine.config import EngineConfig
from app.services.settings import AppSettings, SettingsStore

#: AppSettings field -> EngineConfig field.
STARTUP_SETTINGS = {
    "poll_interval_seconds": "poll_interval_seconds",
    "lease_heartbeat_seconds": "lease_heartbeat_seconds",
    "lease_expiry_seconds": "lease_ttl_seconds",
}


def effective_settings(
    sessions: sessionmaker[Session], overrides: Mapping[str, Any] | None = None
) -> AppSettings:
    """The stored settings with this host's overrides, validated together (an override
    out of range raises SettingsError, whose message names the range)."""
    return replace(SettingsStore(sessions).load(), **dict(overrides or {})).validate()


def engine_config_for(settings: AppSettings, base: EngineConfig | None = None) -> EngineConfig:
    """`base` (the defaults when None) with the poll interval and lease timing of
    `settings`."""
    values = {target: getattr(settings, source) for source, target in STARTUP_SETTINGS.items()}
    return replace(base or EngineConfig(), **values)
