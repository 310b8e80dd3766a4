"""Shared settings: stored in the database, every value bounded so the engine can run."""

from __future__ import annotations

import re

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


# --------------------------------------------------------------------------- ranges


def test_every_setting_is_described_with_its_values():
    from dataclasses import fields

    from app.services.setting_specs import SETTING_SPECS

    assert list(SETTING_SPECS) == [f.name for f in fields(AppSettings)]
    assert all(spec.meaning and spec.describe_values() for spec in SETTING_SPECS.values())


def _numeric_specs():
    from app.services.setting_specs import SETTING_SPECS

    return [(key, spec) for key, spec in SETTING_SPECS.items() if spec.low is not None]


@pytest.mark.parametrize(("key", "spec"), _numeric_specs(), ids=lambda v: str(v)[:30])
def test_each_range_is_what_validate_accepts(key, spec):
    """The documented range is the validated one: both ends pass, just outside fails."""
    from dataclasses import replace

    # Lease timing is also checked as a pair: leave room for either end of each.
    base = replace(AppSettings(), lease_heartbeat_seconds=1.0, lease_expiry_seconds=3600.0)
    kind = type(getattr(base, key))
    step = 1 if kind is int else spec.low / 10
    for good in (spec.low, spec.high):
        replace(base, **{key: kind(good)}).validate()
    for bad in (spec.low - step, spec.high + 1):
        with pytest.raises(
            SettingsError, match=re.escape(f"between {spec.low:g} and {spec.high:g}")
        ):
            replace(base, **{key: kind(bad)}).validate()


def test_engine_settings_are_stored_and_the_lease_heartbeat_stays_within_its_expiry(sessions):
    store = SettingsStore(sessions)
    updated = store.update(poll_interval_seconds="7.5", lease_expiry_seconds="60")
    assert (updated.poll_interval_seconds, updated.lease_expiry_seconds) == (7.5, 60.0)
    assert store.update(lease_heartbeat_seconds="20").lease_heartbeat_seconds == 20.0
    with pytest.raises(SettingsError, match="at most a third of the lease expiry"):
        store.update(lease_heartbeat_seconds="21")
    with pytest.raises(SettingsError, match="at most a third of the lease expiry"):
        store.update(lease_expiry_seconds="59")
    assert store.load().lease_heartbeat_seconds == 20.0


def test_the_per_number_cap_is_off_by_default_and_bounded(sessions):
    store = SettingsStore(sessions)
    assert store.load().max_attempts_per_number_24h == 0
    assert store.update(max_attempts_per_number_24h="3").max_attempts_per_number_24h == 3
    with pytest.raises(SettingsError, match="Attempts per number in 24 hours"):
        store.update(max_attempts_per_number_24h=-1)
    assert store.load().max_attempts_per_number_24h == 3
