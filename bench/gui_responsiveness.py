"""How the desktop holds up at scale: GUI stalls, list filling and filtering, recipient
pages and searches.

Scenarios (`--scenario`, default all):

- **dialing**: the real main window (offscreen) with the engine and the simulation
  provider on a temporary database, a batch call that puts 1,000 calls in progress, its
  details open on the Recipients tab; the gaps between ticks of a 10 ms QTimer on the
  GUI thread until 1,000 calls are in progress and for a few seconds more.
- **list**: 10,000 (`--batches`) and 100,000 (`--large-batches`) batch calls stored
  directly; the time from the window showing until the list is filled, the worst GUI
  stall while loading and during quiet reloads (the 5-second poll) that change rows, the
  time one keystroke in the search field takes (typing a name's prefix and a word found
  in every third name, then backspacing them), and the proxies' filtering alone. With
  10,000 rows the figures are the medians over `--repeats` windows; with 100,000, one
  window's fill and the medians over `--repeats` rounds of filtering. The load average
  is printed with each.
- **recipients**: one batch call of 1,000,000 (`--recipients-large`) recipients; the time
  to read a page (keyset, as the details dialog scrolls) at several depths, and searches
  by the last digits of a phone number, by its first digits, by a name, by names shared by
  1 recipient in 8 and by "+1" (every recipient): the service's first page and count
  apart, and in the details dialog the time until the first page is shown and until the
  count is shown.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_responsiveness.py [--scenario list]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


def dialing(args: argparse.Namespace) -> bool:
    print("## dialing: GUI stalls while the engine dials hard")

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
    return bool(reached and meter.worst_ms < 100)


# --------------------------------------------------------------------------- list
STATUSES = ("COMPLETED", "RUNNING", "PAUSED", "SCHEDULED", "FAILED", "CANCELLED")


def seed_batch_calls(url: str, count: int) -> None:
    """`count` batch calls in every status, stored in one transaction (no recipients)."""
    from sqlalchemy import insert

    from app.models.db import open_database
    from app.models.schema import BatchCall
    from app.services.batch_calls import BatchCallService
    from app.views.context import ensure_demo_defaults

    db, sessions = open_database(url)
    service = BatchCallService(sessions)
    ensure_demo_defaults(service)
    agent, number = service.list_agents()[0], service.list_from_numbers()[0]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        total = 100 + i % 900
        done = (i * 7) % (total + 1)
        rows.append(
            {
                "name": f"Campaign {i:06d} {('Spring', 'Flu shots', 'Renewals')[i % 3]}",
                "status": STATUSES[i % len(STATUSES)],
                "agent_id": agent.id,
                "from_number_id": number.id,
                "from_number": number.phone_number,
                "send_type": "SEND_NOW",
                "timezone": "UTC",
                "window_start": "09:00",
                "window_end": "18:00",
                "allowed_days": "1,2,3,4,5",
                "reserved_concurrency": 2,
                "total_recipients": total,
                "pending_count": total - done,
                "completed_count": done,
                "created_at": start + timedelta(minutes=i),
                "updated_at": start + timedelta(minutes=i),
            }
        )
    with sessions.begin() as session:
        session.execute(insert(BatchCall), rows)
    db.dispose()


def touch_batch_calls(url: str, every: int) -> None:
    """Change the counts of one batch call in `every` (a poll then has rows to update)."""
    from sqlalchemy import text

    from app.models.db import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE batch_calls SET completed_count = completed_count + 1, "
                "pending_count = pending_count - 1 WHERE id % :every = 0 AND pending_count > 0"
            ),
            {"every": every},
        )
    engine.dispose()


#: What the keystroke and filtering figures type: a name's prefix (the matches are one
#: contiguous run of rows) and a word in every third name (matches scattered over the list).
SEARCHES = ("Campaign 0012", "Spring")


def keystroke_times(window: object, text: str) -> list[float]:
    """Milliseconds per keystroke: type `text` into the search field, then backspace it.
    Each time covers the filtering and the repaint it causes."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    field = window.search_field  # type: ignore[attr-defined]
    field.setFocus()
    times = []
    keys: list[Callable[[], None]] = [(lambda ch=ch: QTest.keyClicks(field, ch)) for ch in text] + [
        (lambda: QTest.keyClick(field, Qt.Key.Key_Backspace)) for _ in text
    ]
    for press in keys:
        QApplication.processEvents()
        started = time.perf_counter()
        press()
        # The layout and the repaint the keystroke causes (a delayed layout can schedule
        # the paint for the next pass of the event loop).
        QApplication.processEvents()
        QApplication.processEvents()
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def filtering_times(window: object, text: str) -> list[float]:
    """Milliseconds the proxies take per prefix of `text`, typed then erased (no repaint)."""
    proxy = window.proxy  # type: ignore[attr-defined]
    times = []
    for search in [text[:n] for n in range(1, len(text) + 1)] + [
        text[:n] for n in range(len(text) - 1, -1, -1)
    ]:
        started = time.perf_counter()
        proxy.set_search(search)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


class ListRun:
    """One window's figures (see `list_scenario`)."""

    def __init__(self) -> None:
        self.filled = False
        self.rows = 0
        self.fill_s = 0.0
        self.load_stall = 0.0
        self.reload_stall = 0.0
        self.keystrokes: list[float] = []
        self.filtering: list[list[float]] = []  # one list per round


def measure_list(url: str, count: int, reloads: int, rounds: int, keystrokes: bool) -> ListRun:
    """Show the main window on `url`, time the fill, `reloads` quiet reloads with rows
    changed, the keystrokes (when asked) and `rounds` rounds of filtering alone."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    run = ListRun()
    launched = launch(url, with_engine=False, show=False)
    window = launched.window
    try:
        meter = StallMeter(parent=window)
        meter.start()
        started = time.perf_counter()
        window.show()
        run.filled = process_events_until(lambda: window.loaded, 600)
        run.fill_s = time.perf_counter() - started
        run.load_stall = meter.worst_ms
        run.rows = window.model.rowCount()
        for _ in range(reloads):
            touch_batch_calls(url, 50)  # another desktop's changes (not measured)
            done: list[int] = []
            window.reloaded.connect(done.append)
            meter.start()
            window.reload(quiet=True)
            process_events_until(lambda d=done: bool(d), 600)  # read, compared, shown
            meter.stop()
            window.reloaded.disconnect(done.append)
            run.reload_stall = max(run.reload_stall, meter.worst_ms)
        if keystrokes:
            for text in SEARCHES:
                run.keystrokes += keystroke_times(window, text)
        for _ in range(rounds):
            run.filtering.append([t for text in SEARCHES for t in filtering_times(window, text)])
    finally:
        launched.close()
        # The closed window is deleted and its rows collected now, not during the next
        # window's fill (one process, several windows).
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QApplication.processEvents()
        gc.collect()
    run.filled = run.filled and run.rows == count
    return run


def list_scenario(count: int, reloads: int, repeats: int, large: bool = False) -> bool:
    """10,000 rows (`large` False): `repeats` windows, each filled, reloaded and typed
    into; the medians over the windows are the figures. 100,000 rows (`large`): one window
    (its fill takes many seconds), filtering repeated `repeats` times."""
    print(f"## list: {count:,} batch calls ({load()})")
    runs = []
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'list.sqlite3'}"
        seed_batch_calls(url, count)
        for n in range(1 if large else repeats):
            run = measure_list(url, count, reloads, repeats if large else 1, not large)
            runs.append(run)
            print(
                f"  window {n + 1}: filled {'yes' if run.filled else 'NO'} ({run.rows:,} rows)"
                f" in {run.fill_s:.2f} s; worst stall {run.load_stall:.0f} ms filling, "
                f"{run.reload_stall:.0f} ms over {reloads} reloads"
                + (
                    f"; keystroke median {statistics.median(run.keystrokes):.1f} ms, "
                    f"worst {max(run.keystrokes):.0f} ms"
                    if run.keystrokes
                    else ""
                )
                + "; filtering median "
                + ", ".join(f"{statistics.median(r):.1f}" for r in run.filtering)
                + " ms, worst "
                + ", ".join(f"{max(r):.0f}" for r in run.filtering)
                + " ms"
            )

    def median(values: list[float]) -> float:
        return statistics.median(values)

    ok = all(run.filled for run in runs)
    fill = median([run.fill_s for run in runs])
    load_stall = median([run.load_stall for run in runs])
    reload_stall = median([run.reload_stall for run in runs])
    filtering = [r for run in runs for r in run.filtering]
    filter_median = median([median(f) for f in filtering])
    filter_worst = median([max(f) for f in filtering])
    worst_of_all = max(max(f) for f in filtering)
    label = f"median of {len(runs)} windows" if len(runs) > 1 else "one window"
    rounds = f"median of {len(filtering)} rounds of {len(filtering[0])} searches"
    print(
        f"list filled: {'yes' if ok else 'NO'}, {fill:.2f} s after showing ({label}"
        + ("" if large else "; limit 1 s")
        + ")"
    )
    print(f"GUI stall worst while filling:   {load_stall:6.1f} ms (limit 100 ms)")
    print(f"GUI stall worst over {reloads} reloads: {reload_stall:6.1f} ms (limit 100 ms)")
    if not large:
        keys = [run.keystrokes for run in runs]
        print(
            f"keystroke in the search field (filter + repaint): median "
            f"{median([median(k) for k in keys]):5.1f} ms, worst "
            f"{median([max(k) for k in keys]):5.1f} ms over {len(keys[0])} keystrokes "
            f"typing and erasing {' and '.join(repr(t) for t in SEARCHES)} (limit 16 ms)"
        )
    print(
        f"filtering alone (the proxies, no repaint): median {filter_median:5.1f} ms, "
        f"worst {filter_worst:5.1f} ms ({rounds}); worst of all {worst_of_all:5.1f} ms"
        + (" (limit 100 ms)" if large else "")
    )
    print(f"  ({load()} at the end)")
    return ok


# --------------------------------------------------------------------------- recipients
def seed_recipients(url: str, count: int) -> int:
    """One batch call with `count` recipients stored the way the application stores them."""
    from app.models.db import open_database
    from app.services.batch_calls import BatchCallService
    from app.views.context import ensure_demo_defaults

    db, sessions = open_database(url)
    service = BatchCallService(sessions)
    ensure_demo_defaults(service)
    agent, number = service.list_agents()[0], service.list_from_numbers()[0]

    def chunks() -> object:
        chunk = []
        for i in range(count):
            chunk.append(BenchRecipient(i))
            if len(chunk) == 5_000:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    batch = service.create(
        NewBatchCall(
            name="A million",
            agent_id=agent.id,
            from_number_id=number.id,
            timezone="UTC",
            window_start="09:00",
            window_end="18:00",
            allowed_days=frozenset(range(1, 6)),
            reserved_concurrency=2,
        ),
        chunks(),  # type: ignore[arg-type]
    )
    db.dispose()
    return batch.id


class BenchRecipient:
    __slots__ = ("name", "phone_number", "row_number", "variables")

    FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")
    LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")

    def __init__(self, index: int):
        self.row_number = index + 2
        self.phone_number = f"+1{2025550000 + index * 7919 % 7_000_000_000:010d}"
        self.name = f"{self.FIRST[index % 8]} {self.LAST[index // 8 % 8]}-{index}"
        self.variables = {"city": "Austin"}


def timed_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def shown_in_details(dialog: Any, query: Any, repeat: int = 5) -> tuple[float, float, int]:
    """Median milliseconds from a new search in the details dialog's recipients model to
    its first page shown (the table repainted) and to its count shown, and the count.
    Between two measures the model goes back to every recipient (not measured)."""
    model = dialog.recipient_model
    table = dialog.recipient_table
    marks: dict[str, float] = {}

    def page_shown(_total: int) -> None:
        if "page" not in marks:
            table.viewport().repaint()
            marks["page"] = time.perf_counter()

    def count_shown(total: int) -> None:
        marks.setdefault("count", time.perf_counter())
        marks["matches"] = total

    model.loaded.connect(page_shown)
    model.counted.connect(count_shown)
    pages, counts = [], []
    try:
        for _ in range(repeat):
            marks.clear()
            model.set_filter(None, "")
            process_events_until(lambda: "count" in marks, 60)
            marks.clear()
            started = time.perf_counter()
            model.set_filter(query.status, query.search)
            process_events_until(lambda: "count" in marks, 60)
            pages.append((marks["page"] - started) * 1000.0)
            counts.append((marks["count"] - started) * 1000.0)
    finally:
        model.loaded.disconnect(page_shown)
        model.counted.disconnect(count_shown)
    return statistics.median(pages), statistics.median(counts), int(marks["matches"])


def recipients_scenario(count: int) -> bool:
    from app.models.db import open_database
    from app.services.batch_calls import BatchCallService, RecipientQuery

    print(f"## recipients: one batch call of {count:,} recipients")
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'recipients.sqlite3'}"
        started = time.perf_counter()
        batch_id = seed_recipients(url, count)
        print(f"stored in {time.perf_counter() - started:.1f} s")
        db, sessions = open_database(url)
        service = BatchCallService(sessions)
        launched = launch(url, with_engine=False, show=False)
        ok = True
        try:
            query = RecipientQuery()
            for depth in (0.0, 0.5, 0.9, 0.999):
                position = int(count * depth)
                if hasattr(service, "recipient_at"):  # keyset: after the previous page
                    after = service.recipient_at(batch_id, query, position)
                    ms = timed_ms(lambda a=after: service.recipients_page(batch_id, query, after=a))
                else:  # before keyset paging (for a comparison run)
                    ms = timed_ms(lambda p=position: service.recipients_page(batch_id, query, p))
                ok &= ms <= 20
                print(f"page of 200 after row {position:>9,}: {ms:6.1f} ms (limit 20 ms)")
            window = launched.window
            process_events_until(lambda: window.loaded, 60)
            dialog = window.open_details(batch_id)
            if dialog is None:
                process_events_until(lambda: window.details_dialog(batch_id) is not None, 60)
                dialog = window.details_dialog(batch_id)
            dialog.tabs.setCurrentWidget(dialog.recipients_tab)
            dialog.show()
            process_events_until(lambda: dialog.recipient_model.rowCount() > 0, 60)
            sample = BenchRecipient(count * 9 // 10)
            digits = sample.phone_number[-6:]
            pending = RecipientStatus.PENDING
            for label, searched in (
                (f"last digits {digits!r}", RecipientQuery(search=digits)),
                (
                    f"first digits {sample.phone_number[:7]!r}",
                    RecipientQuery(search=sample.phone_number[:7]),
                ),
                (f"name {sample.name!r}", RecipientQuery(search=sample.name)),
                ("surname 'Liskov' (1 in 8)", RecipientQuery(search="Liskov")),
                ("first name 'Grace' (1 in 8)", RecipientQuery(search="Grace")),
                ("'Grace' among Pending", RecipientQuery(status=pending, search="Grace")),
                ("'+1' (every recipient)", RecipientQuery(search="+1")),
            ):
                page_ms = timed_ms(lambda q=searched: service.recipients_page(batch_id, q))
                count_ms = timed_ms(lambda q=searched: service.count_recipients(batch_id, q))
                # What the details read before the page was shown ahead of the count.
                both_ms = timed_ms(
                    lambda q=searched: (
                        service.count_recipients(batch_id, q),
                        service.recipients_page(batch_id, q),
                    )
                )
                page_shown, count_shown, total = shown_in_details(dialog, searched)
                ok &= page_shown <= 50
                print(f"search by {label}: {total:,} matches")
                print(
                    f"  service: first page {page_ms:6.1f} ms, count {count_ms:6.1f} ms"
                    f" (count then page, as read before: {both_ms:6.1f} ms)"
                )
                print(
                    f"  details: first page shown {page_shown:6.1f} ms (limit 50 ms),"
                    f" count shown {count_shown:6.1f} ms"
                )
        finally:
            launched.close()
            db.dispose()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", choices=("all", "dialing", "list", "recipients"), default="all"
    )
    parser.add_argument("--recipients", type=int, default=1_500)
    parser.add_argument("--in-progress", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured after the target")
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--large-batches", type=int, default=100_000)
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument(
        "--repeats", type=int, default=3, help="windows (10,000) or filtering rounds (100,000)"
    )
    parser.add_argument("--recipients-large", type=int, default=1_000_000)
    args = parser.parse_args()
    ok = True
    if args.scenario in ("all", "dialing"):
        ok &= dialing(args)
    if args.scenario in ("all", "list"):
        if args.batches:
            ok &= list_scenario(args.batches, args.reloads, args.repeats)
        if args.large_batches:
            ok &= list_scenario(args.large_batches, 1, args.repeats, large=True)
    if args.scenario in ("all", "recipients"):
        ok &= recipients_scenario(args.recipients_large)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
