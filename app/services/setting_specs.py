"""What each shared setting means and the values it takes, in one table that
AppSettings.validate(), `batchcalls settings set --help`, the worker's options and
docs/operating.md read. No database import, so a command's help stays fast."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SettingSpec:
    """What one setting means and the values it takes: read by validate(), by
    `batchcalls settings set --help` and by docs/operating.md."""

    label: str
    meaning: str
    low: float | None = None
    high: float | None = None
    #: The accepted values when they are not a numeric range.
    values: str = ""

    def describe_values(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        return self.values


SETTING_SPECS: dict[str, SettingSpec] = {
    "provider": SettingSpec(
        "The provider",
        "who places the calls (with simulation, no call leaves this computer)",
        values="simulation or twilio",
    ),
    "plan_concurrency": SettingSpec(
        "Plan concurrency",
        "simultaneous calls the account may hold, shared by every running batch call",
        1,
        10_000,
    ),
    "calls_per_second": SettingSpec(
        "Calls per second",
        "calls started per second at most (a Twilio account starts at 1)",
        0.01,
        1000,
    ),
    "placement_concurrency": SettingSpec(
        "Placement concurrency",
        "call requests to the provider in flight at once (each still paced by the calls "
        "per second; Twilio answers 429 beyond the account's own limit)",
        1,
        100,
    ),
    "default_country": SettingSpec(
        "The default country",
        "country of numbers written without +country code",
        values="a two-letter code such as US or GB",
    ),
    "pickup_interval_seconds": SettingSpec(
        "The pickup interval", "seconds between pickups of due Scheduled batch calls", 0.05, 3600
    ),
    "dial_interval_seconds": SettingSpec(
        "The dialing interval", "seconds between dialing ticks", 0.01, 60
    ),
    "ring_timeout_seconds": SettingSpec(
        "The ring timeout", "seconds a call rings before it counts as No Answer", 5, 600
    ),
    "max_call_duration_seconds": SettingSpec(
        "The maximum call duration",
        "seconds after which an unresolved call is settled by a final status request",
        60,
        24 * 3600,
    ),
    "answering_machine_detection": SettingSpec(
        "Answering machine detection",
        "ask Twilio to tell people from answering machines",
        values="true or false",
    ),
    "simulation_seed": SettingSpec(
        "The simulation seed",
        "seed of the simulation's outcomes (the same seed, the same outcomes)",
        values="a whole number",
    ),
    "twilio_account_sid": SettingSpec(
        "The Twilio account",
        "the Account SID the Twilio credentials should belong to (set by twilio login)",
        values="an Account SID (AC...), or empty",
    ),
    "twilio_api_base": SettingSpec(
        "The Twilio API base",
        "another Twilio API address (a proxy or the local stand-in); "
        "BATCHCALLS_TWILIO_API_BASE wins over it",
        values="an http(s) URL, or empty for Twilio itself",
    ),
    "poll_interval_seconds": SettingSpec(
        "The poll interval",
        "seconds between two status requests for one live call; read when an engine starts",
        0.1,
        300,
    ),
    "lease_heartbeat_seconds": SettingSpec(
        "The lease heartbeat",
        "seconds between the dialing engine's lease renewals, at most a third of the "
        "expiry; read when an engine starts",
        1,
        600,
    ),
    "lease_expiry_seconds": SettingSpec(
        "The lease expiry",
        "seconds without a renewal after which a standby engine takes over the dialing; "
        "read when an engine starts",
        10,
        3600,
    ),
    "max_attempts_per_number_24h": SettingSpec(
        "Attempts per number in 24 hours",
        "call attempts to one number in any 24 hours across all batch calls (compliance "
        "policy, SPEC 10); 0 means no cap",
        0,
        1000,
    ),
}
