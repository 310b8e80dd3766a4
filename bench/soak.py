"""A working day of the desktop application in a few minutes: does it stay up and flat?

Starts the real main window (offscreen) through the documented QA start-up (`launch()`:
the application's own context, engine thread and window) on a temporary SQLite file with
the engine dialing in simulation on a fast clock. The list holds `--batch-calls` batch
calls (10,000 by default: most scheduled a year ahead, `--active` of them dialing now);
the details dialog of a dialing batch call stays open on its Recipients tab; the search
field is changed every `--filter-every` seconds (each change re-filters every row through
the Python `data()` of the list model). It runs until the fast clock has covered
`--hours` (8) and at least `--min-emissions` (100,000) signal emissions have been counted,
then prints memory growth (RSS), the reference counts of `True` and `None` (a PySide6
that loses them aborts the process: see tests/test_dependencies.py) and the counts.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/soak.py [--speed 240] [--hours 8]

Exit status 0 when it ran the whole day, counted enough emissions and the reference
counts stayed flat; 1 otherwise (an abort is a crash: no figures at all).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import PySide6
from PySide6.QtCore import QObject, SignalInstance

from app.models.snapshots import SendType
from app.models.status import BatchStatus, RecipientStatus
from app.services.batch_calls import NewBatchCall
from app.views.context import build_context, ensure_demo_defaults
from app.views.qa import DEFAULT_START, SpeedClock, launch, process_events_until

#: A fall of the reference counts' floor (their lowest value in the first and in the last
#: third of the day) bigger than this is a leak. The counts themselves swing by tens of
#: thousands with what the window holds at the instant (snapshots, filter results); a
#: PySide6 that loses references lowers the floor by one per emit or data() call.
#: References of True swing by about ten thousand, of None by a hundred thousand.
LOST_TOLERANCE = {"True": 200, "None": 1000}
SEARCHES = ["Follow", "up 12", "", "Dialing", "zz-no-match", "7", ""]


class Row:
    __slots__ = ("name", "phone_number", "row_number", "variables")

    def __init__(self, index: int):
        self.row_number = index + 2
        self.phone_number = f"+1202555{index % 10_000:04d}"
        self.name = f"Person {index}"
        self.variables: dict[str, str] = {}


def rss_mb() -> float:
    """The resident set size now (Linux /proc), else the peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def refcounts() -> tuple[int, int]:
    gc.collect()
    return sys.getrefcount(True), sys.getrefcount(None)


class EmissionCounter:
    """Counts emissions of the signals it is attached to (one extra connection each)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def attach(self, owner: QObject, *names: str) -> None:
        for name in names:
            signal: SignalInstance = getattr(owner, name)
            key = f"{owner.objectName() or type(owner).__name__}.{name}"
            self.counts.setdefault(key, 0)
            signal.connect(lambda *_args, key=key: self._bump(key))

    def _bump(self, key: str) -> None:
        self.counts[key] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def seed(service: Any, batch_calls: int, active: int, recipients: int) -> list[int]:
    """`batch_calls` batch calls; the first `active` send now, the rest wait a year."""
    agent, number = service.list_agents()[0], service.list_from_numbers()[0]
    every_day = frozenset(range(1, 8))
    active_ids: list[int] = []
    next_year = DEFAULT_START + timedelta(days=365)
    for index in range(batch_calls):
        dialing = index < active
        spec = NewBatchCall(
            name=f"Dialing {index}" if dialing else f"Follow up {index}",
            agent_id=agent.id,
            from_number_id=number.id,
            send_type=SendType.SEND_NOW if dialing else SendType.SCHEDULE,
            scheduled_at=None if dialing else next_year,
            timezone="UTC",
            window_start="00:00",
            window_end="23:59",
            allowed_days=every_day,
            reserved_concurrency=10 if dialing else 1,
        )
        count = recipients if dialing else 1
        rows = [Row(index * 100_000 + i) for i in range(count)]
        snapshot = service.create(spec, [rows])
        if dialing:
            active_ids.append(snapshot.id)
    return active_ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0, help="simulated hours to cover")
    parser.add_argument("--speed", type=float, default=120.0, help="fast-clock speed-up")
    parser.add_argument("--batch-calls", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=10)
    parser.add_argument("--recipients", type=int, default=3_000, help="per dialing batch")
    parser.add_argument("--min-emissions", type=int, default=100_000)
    parser.add_argument("--filter-every", type=float, default=0.5, help="real seconds")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="give up after")
    parser.add_argument("--sample-every", type=float, default=30.0, help="real seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'soak.sqlite3'}"
        seeding = time.perf_counter()
        # Created an hour before the day starts (a clock that stands still while seeding).
        seeding_context = build_context(url, clock=lambda: DEFAULT_START - timedelta(hours=1))
        ensure_demo_defaults(seeding_context.service)
        active_ids = seed(seeding_context.service, args.batch_calls, args.active, args.recipients)
        seeding_context.close()
        seeding = time.perf_counter() - seeding
        clock = SpeedClock(speed=args.speed)  # the day starts now

        launched = launch(
            url,
            clock=clock,
            settings_overrides={
                "plan_concurrency": args.active * 10,
                "calls_per_second": 5,
                "dial_interval_seconds": 0.05,
                "pickup_interval_seconds": 30,
            },
        )
        window = launched.window
        counter = EmissionCounter()
        assert launched.engine is not None
        counter.attach(
            launched.engine,
            "batchCallChanged",
            "recipientsChanged",
            "waitingReasonChanged",
            "engineStateChanged",
        )
        counter.attach(window.model, "dataChanged", "rowsInserted", "rowsRemoved")
        counter.attach(window.proxy, "layoutChanged", "rowsInserted", "rowsRemoved")
        filters = 0
        try:
            listed = process_events_until(lambda: window.model.rowCount() >= args.batch_calls, 300)
            details = window.open_details(active_ids[0])
            details.tabs.setCurrentWidget(details.recipients_tab)
            counter.attach(details, "reloaded", "historyLoaded")
            counter.attach(details.recipient_model, "dataChanged", "rowsInserted", "modelReset")

            rss_start, (true_start, none_start) = rss_mb(), refcounts()
            started, sim_start = time.perf_counter(), clock()
            sim_end = sim_start + timedelta(hours=args.hours)
            give_up = started + args.max_minutes * 60
            samples: list[tuple[float, float, int, int, int]] = []
            next_sample = started
            while time.perf_counter() < give_up:
                done = clock() >= sim_end and counter.total >= args.min_emissions
                if done:
                    break
                window.search_field.setText(SEARCHES[filters % len(SEARCHES)])
                filters += 1
                wait_until = time.perf_counter() + args.filter_every
                process_events_until(lambda t=wait_until: time.perf_counter() >= t, 5)
                if time.perf_counter() >= next_sample:
                    true_now, none_now = refcounts()
                    hours = (clock() - sim_start).total_seconds() / 3600
                    samples.append((hours, rss_mb(), true_now, none_now, counter.total))
                    next_sample += args.sample_every
            elapsed = time.perf_counter() - started
            simulated = clock() - sim_start
            rss_end, (true_end, none_end) = rss_mb(), refcounts()
            service = launched.context.service
            statuses = [service.find(i) for i in active_ids]
            ended = sum(s.finished_count for s in statuses if s is not None)
            placed = sum(
                s.finished_count + s.counts[RecipientStatus.IN_PROGRESS]
                for s in statuses
                if s is not None
            )
            finished = sum(1 for s in statuses if s and s.status is BatchStatus.COMPLETED)
        finally:
            launched.close()

    print(f"PySide6 {PySide6.__version__}, Python {sys.version.split()[0]}")
    print(
        f"seeded {args.batch_calls} batch calls ({args.active} dialing x {args.recipients} "
        f"recipients) in {seeding:.0f} s; all listed: {'yes' if listed else 'NO'}"
    )
    print(
        f"ran {elapsed / 60:.1f} min real = {simulated.total_seconds() / 3600:.2f} h on the "
        f"fast clock (speed {args.speed:g})"
    )
    print(f"signal emissions counted: {counter.total}")
    for key, value in sorted(counter.counts.items(), key=lambda kv: -kv[1]):
        if value:
            print(f"  {key}: {value}")
    print(f"search changes (re-filtering {args.batch_calls} rows): {filters}")
    print(
        f"calls placed: {placed}, ended: {ended};"
        f" dialing batch calls completed: {finished}/{args.active}"
    )
    print(f"RSS: {rss_start:.0f} MB -> {rss_end:.0f} MB ({rss_end - rss_start:+.0f} MB)")
    print(f"refcount True: {true_start} -> {true_end} ({true_end - true_start:+d})")
    print(f"refcount None: {none_start} -> {none_end} ({none_end - none_start:+d})")
    third = max(1, len(samples) // 3)
    floors = {
        name: (min(s[column] for s in samples[:third]), min(s[column] for s in samples[-third:]))
        for name, column in (("True", 2), ("None", 3))
    }
    for name, (early, late) in floors.items():
        print(f"refcount {name} floor, first third -> last third: {early} -> {late}")
    print("samples (simulated h, RSS MB, refcount True, refcount None, emissions):")
    for hours, rss, true_now, none_now, total in samples:
        print(f"  {hours:5.2f} h  {rss:6.0f} MB  {true_now:6d}  {none_now:7d}  {total:8d}")
    ok = (
        listed
        and simulated >= timedelta(hours=args.hours)
        and counter.total >= args.min_emissions
        # Counts that grow are objects holding True/None; a PySide6 that loses references
        # makes them fall by one per emit or data() call.
        and all(early - late < LOST_TOLERANCE[name] for name, (early, late) in floors.items())
    )
    print("result:", "ok" if ok else "NOT OK")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
