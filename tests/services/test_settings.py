"""Shared settings: stored in the database, every value bounded so the engine can run."""

from __future__ import annotations

import pytest

from app.services.settings import AppSettings, SettingsError, SettingsStore


def test_defaults_round_trip_and_update(sessions):
    store = SettingsStore(sessions)
    assert store.load() == AppSettings()
    updated = store.update(plan_concurrency="25", calls_per_second="2.5", default_country="GB")
    assert (updated.plan_concurrency, updated.calls_per_second) == (25, 2.5)
    assert store.load() == updated


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pickup_interval_seconds", "inf"),
        ("pickup_interval_seconds", "nan"),
        ("dial_interval_seconds", "1e-12"),
        ("max_call_duration_seconds", "-100"),
        ("plan_concurrency", str(10**24)),
        ("plan_concurrency", "0"),
        ("calls_per_second", "0"),
        ("default_country", "XX"),
        ("twilio_api_base", "notaurl"),
        ("provider", "skype"),
        ("ring_timeout_seconds", "ten"),
    ],
)
def test_values_the_engine_cannot_live_with_are_refused(sessions, key, value):
    store = SettingsStore(sessions)
    with pytest.raises(SettingsError):
        store.update(**{key: value})
    assert store.load() == AppSettings()  # nothing changed


def test_unknown_setting_is_named(sessions):
    with pytest.raises(SettingsError, match="colour"):
        SettingsStore(sessions).update(colour="blue")


def test_the_per_number_cap_is_off_by_default_and_bounded(sessions):
    store = SettingsStore(sessions)
    assert store.load().max_attempts_per_number_24h == 0
    assert store.update(max_attempts_per_number_24h="3").max_attempts_per_number_24h == 3
    with pytest.raises(SettingsError, match="Attempts per number in 24 hours"):
        store.update(max_attempts_per_number_24h=-1)
    assert store.load().max_attempts_per_number_24h == 3
