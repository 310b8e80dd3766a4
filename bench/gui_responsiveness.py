"""How long the GUI thread stalls while the engine dials hard.

Opens the real main window (offscreen) with the engine and the simulation provider on a
temporary database, creates a batch call that puts 1,000 calls in progress, opens its
details on the Recipients tab, and measures the gaps between ticks of a 10 ms QTimer on
the GUI thread until 1,000 calls are in progress and for a few seconds more.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_responsiveness.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.models.status import RecipientStatus
from app.services.batch_calls import NewBatchCall
from app.views.qa import SpeedClock, StallMeter, launch, process_events_until


class Row:
    __slots__ = ("name", "phone_number", "row_number", "variables")

    def __init__(self, index: int):
        self.row_number = index + 2
        self.phone_number = f"+1202555{index:04d}"
        self.name = f"Person {index}"
        self.variables = {"city": "Austin"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_500)
    parser.add_argument("--in-progress", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured after the target")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        launched = launch(
            url,
            clock=SpeedClock(speed=1),
            settings_overrides={
                "plan_concurrency": args.in_progress,
                "calls_per_second": 500,
                "dial_interval_seconds": 0.1,
                "pickup_interval_seconds": 1,
            },
        )
        try:
            service = launched.context.service
            agent, number = service.list_agents()[0], service.list_from_numbers()[0]
            batch = service.create(
                NewBatchCall(
                    name="Heavy dialing",
                    agent_id=agent.id,
                    from_number_id=number.id,
                    timezone="UTC",
                    window_start="00:00",
                    window_end="23:59",
                    allowed_days=frozenset(range(1, 8)),
                    reserved_concurrency=args.in_progress,
                ),
                [[Row(i % 10_000) for i in range(args.recipients)]],
            )
            window = launched.window
            process_events_until(lambda: window.model.snapshot(batch.id) is not None)
            details = window.open_details(batch.id)
            details.tabs.setCurrentWidget(details.recipients_tab)
            meter = StallMeter(parent=window)
            meter.start()
            started = time.perf_counter()

            def in_progress() -> int:
                snapshot = window.model.snapshot(batch.id)
                return snapshot.counts[RecipientStatus.IN_PROGRESS] if snapshot else 0

            reached = process_events_until(lambda: in_progress() >= args.in_progress, 120)
            ramp = time.perf_counter() - started
            end = time.perf_counter() + args.seconds
            process_events_until(lambda: time.perf_counter() >= end, args.seconds + 1)
            meter.stop()
        finally:
            launched.close()

    print(
        f"calls in progress reached {args.in_progress}: {'yes' if reached else 'NO'}"
        f" after {ramp:.1f} s"
    )
    print(f"GUI timer ticks measured: {len(meter.gaps_ms)}")
    print(f"GUI stall median: {meter.percentile_ms(0.5):6.1f} ms")
    print(f"GUI stall p95:    {meter.percentile_ms(0.95):6.1f} ms")
    print(f"GUI stall p99:    {meter.percentile_ms(0.99):6.1f} ms")
    print(f"GUI stall worst:  {meter.worst_ms:6.1f} ms (limit 100 ms)")
    return 0 if reached and meter.worst_ms < 100 else 1


if __name__ == "__main__":
    raise SystemExit(main())
