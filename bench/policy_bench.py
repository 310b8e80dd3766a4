"""Campaign policy benchmark (issue 10): the dialer's tick with 1,000,000 pending
recipients, half of them outside their local calling hours, and placing with a
do-not-call list of 1,000,000 numbers; each against a same-run baseline.

- tick: 1,000,000 pending (half Los Angeles numbers, half New York), 14:00 UTC on a
  Monday (09:00 in New York, 06:00 in Los Angeles), 50 lines, 20 calls/s, simulation;
  median and p95 tick over 300 ticks after 30 of warm-up. `plain` has no local-hours rule,
  `local` the 08:00-21:00 rule (so the Los Angeles half waits).
- dnc: the same run with 1,000 pending and an empty do-not-call list (`dnc-empty`) or one of
  1,000,000 numbers (`dnc-full`): calls placed and tick time.

Each case runs in its own process (peak memory is its own).

    .venv/bin/python bench/policy_bench.py [--cases plain,local,dnc-empty,dnc-full]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ALL_DAYS = frozenset(range(1, 8))


@dataclass(frozen=True)
class Row:
    row_number: int
    phone_number: str
    name: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


def rows(count: int, chunk: int = 5000):  # type: ignore[no-untyped-def]
    for start in range(0, count, chunk):
        yield [
            Row(i + 2, f"+1{'310' if i % 2 else '212'}{2000000 + i // 2:07d}")
            for i in range(start, min(count, start + chunk))
        ]


def run_case(case: str, workdir: Path) -> dict[str, object]:
    from app.models.db import open_database
    from app.services.batch_calls import Actor, BatchCallService, NewBatchCall
    from app.services.engine import DialerEngine, EngineConfig
    from app.services.simulation import SimulationProvider

    now = [datetime(2026, 11, 23, 14, 0, tzinfo=UTC)]

    def clock() -> datetime:
        return now[0]

    engine_db, sessions = open_database(f"sqlite:///{workdir / 'policy.sqlite3'}")
    service = BatchCallService(sessions, clock=clock, actor=Actor("bench", "bench"))
    agent = service.add_agent("Bench", "twiml", "<Response><Say>Hi</Say></Response>")
    number = service.add_from_number("+12025550100", "Bench line")
    pending = 1_000_000 if case in ("plain", "local") else 1_000
    spec = NewBatchCall(
        "Bench",
        agent.id,
        number.id,
        timezone="America/New_York",
        window_start="00:00",
        window_end="23:59",
        allowed_days=ALL_DAYS,
        reserved_concurrency=50,
        local_hours="08:00-21:00" if case == "local" else "",
    )
    service.create(spec, rows(pending))
    if case == "dnc-full":
        raw = engine_db.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.executemany(
                "INSERT INTO do_not_call (phone_number, source, added_by, added_at)"
                " VALUES (?, 'import', 'bench', '2026-11-23 13:00:00')",
                ((f"+1415{i:07d}",) for i in range(1_000_000)),
            )
            raw.commit()
        finally:
            raw.close()
    engine = DialerEngine(
        sessions,
        SimulationProvider(clock, seed=1),
        clock=clock,
        config=EngineConfig(poll_interval_seconds=3.0),
        settings_overrides={"calls_per_second": 20.0, "plan_concurrency": 50},
    )
    durations: list[float] = []
    placed = 0
    for n in range(330):
        start = time.perf_counter()
        report = engine.tick()
        if n >= 30:
            durations.append(time.perf_counter() - start)
            placed += report.placed
        now[0] += timedelta(seconds=1)
    engine.close()
    return {
        "case": case,
        "pending": pending,
        "tick_median_ms": round(statistics.median(durations) * 1000, 2),
        "tick_p95_ms": round(statistics.quantiles(durations, n=20)[-1] * 1000, 2),
        "calls_per_tick": round(placed / len(durations), 2),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="plain,local,dnc-empty,dnc-full")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_case(args.child, Path(tmp))))
        return 0
    for case in args.cases.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--child", case],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        print(out.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
