"""The scheduler, paced dialer and call tracker (SPEC section 5): plain Python, no Qt.

One responsibility per module, in the spirit of APScheduler's scheduler / job store /
executor split:

- `dialer`: `DialerEngine.tick(now)`, which sequences one round of work;
- `planning`: the decisions from plain values (windows, waiting reasons, fair shares,
  the calls-per-second pacer, deadlines), no database;
- `store` and `attempts`: the named queries and writes (batch calls; call attempts);
- `retries`: the automatic retry policy applied when an attempt ends;
- `polling` and `unresolved`: the queries of tracking (open calls due for a poll) and
  of reconciliation (attempts whose call id is unknown, and adopting their calls);
- `claiming`: transaction A, recipients claimed under the lease's fence, the
  per-number cap and the do-not-call list, and the claims not placed voided;
- `placing`: sending the claimed recipients' requests to the provider, paced;
- `answers`: the requests built, and the provider's answers (or errors) recorded;
- `tracking`: polling the calls in progress and recording their outcomes;
- `reconcile`: attempts whose call id is unknown, matched with the provider's calls;
- `health`: what the engine knows about the provider, as one state object;
- `state`: the engine's state as an enum, and the report of a tick;
- `runner`: builds the engine on its database and runs safe ticks, for both hosts
  (the Qt thread and the headless worker).
"""

from __future__ import annotations

from app.services.engine.attempts import NO_FINAL_STATUS
from app.services.engine.config import Clock, EngineConfig, utcnow
from app.services.engine.dialer import (
    ENGINE_ACTOR,
    PROVIDER_SETTINGS,
    DialerEngine,
    ProviderFactory,
)
from app.services.engine.health import ProviderHealth
from app.services.engine.planning import (
    CallPacer,
    capacity_reason,
    mask_number,
    outside_window_reason,
    provider_reason,
    share_capacity,
    without_retrying,
)
from app.services.engine.reconcile import OUTCOME_UNKNOWN
from app.services.engine.runner import EngineRunner
from app.services.engine.state import EngineState, EngineStatus, TickReport
from app.services.engine.store import ENGINE_BUSY_TIMEOUT_MS, open_engine_database

__all__ = [
    "ENGINE_ACTOR",
    "ENGINE_BUSY_TIMEOUT_MS",
    "NO_FINAL_STATUS",
    "OUTCOME_UNKNOWN",
    "PROVIDER_SETTINGS",
    "CallPacer",
    "Clock",
    "DialerEngine",
    "EngineConfig",
    "EngineRunner",
    "EngineState",
    "EngineStatus",
    "ProviderFactory",
    "ProviderHealth",
    "TickReport",
    "capacity_reason",
    "mask_number",
    "open_engine_database",
    "outside_window_reason",
    "provider_reason",
    "share_capacity",
    "utcnow",
    "without_retrying",
]
