"""EngineHost: the engine on its own QThread, signals to the GUI, a bounded stop."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, QTimer, Slot

from app.models.status import BatchStatus
from app.services.engine import EngineState, EngineStatus
from app.services.engine_thread import _LINGERING, EXIT_STUCK, EngineHost
from app.services.telephony import CallRequest
from tests.services.engine_support import ScriptedProvider, new_batch

ROOT = Path(__file__).resolve().parents[2]

FAST = {"dial_interval_seconds": 0.05, "calls_per_second": 50.0, "plan_concurrency": 20}


def real_clock() -> datetime:
    return datetime.now(UTC)


class Receiver(QObject):
    """A GUI-thread object, as a view would be: records the thread each slot runs in."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: list[int] = []
        self.threads: set[str] = set()

    @Slot(int)
    def on_changed(self, batch_id: int) -> None:
        self.changed.append(batch_id)
        gui = QThread.currentThread() is QCoreApplication.instance().thread()
        self.threads.add("gui" if gui else QThread.currentThread().objectName())


@pytest.fixture
def hosts():
    """Every EngineHost a test makes is stopped, even when the test fails."""
    made: list[EngineHost] = []

    def make(*args, **kwargs) -> EngineHost:
        host = EngineHost(*args, **kwargs)
        made.append(host)
        return host

    yield make
    for host in made:
        host.stop()


def test_engine_host_ticks_on_its_thread_signals_the_gui_and_stops_in_time(
    qtbot, service, database_url, hosts
):
    batch = new_batch(service, 5)
    placed_on: set[str] = set()

    def note_thread(request: CallRequest) -> None:
        placed_on.add(QThread.currentThread().objectName())

    provider = ScriptedProvider(real_clock, on_place=note_thread)
    threads_before = set(threading.enumerate())
    host = hosts(database_url, provider=provider, settings_overrides=FAST)
    assert host.objectName() == "engineHost"
    receiver = Receiver()
    host.batchCallChanged.connect(receiver.on_changed)
    states: list[EngineStatus] = []
    host.engineStateChanged.connect(states.append)

    with qtbot.waitSignal(
        host.batchCallChanged, timeout=10_000, check_params_cb=lambda i: i == batch.id
    ):
        host.start()
    qtbot.waitUntil(lambda: service.get(batch.id).status is BatchStatus.RUNNING, timeout=5000)
    qtbot.waitUntil(lambda: len(provider.placements) == 5, timeout=10_000)
    assert placed_on == {"engineThread"}
    assert receiver.threads == {"gui"}  # queued to the GUI thread
    assert host.state.state is EngineState.DIALING
    assert EngineState.DIALING in [s.state for s in states]
    timer = host._worker.findChild(QTimer, "engineTimer")
    assert timer is not None and timer.thread().objectName() == "engineThread"

    # A second batch call is picked up at once when the host is woken, not a minute later.
    later = new_batch(service, 1, name="Later")
    with qtbot.waitSignal(
        host.batchCallChanged, timeout=5000, check_params_cb=lambda i: i == later.id
    ):
        host.wake()

    thread = host._thread
    started = time.monotonic()
    with qtbot.waitSignal(host.engineStateChanged, timeout=5000) as stopped:
        host.stop(timeout_ms=3000)
    assert time.monotonic() - started < 3.5
    assert stopped.args[0].state is EngineState.STOPPED
    assert thread.isFinished() and not host.isRunning()
    assert set(threading.enumerate()) <= threads_before


def test_batch_changes_are_coalesced_to_one_signal_per_tick(qtbot, service, database_url, hosts):
    batches = [new_batch(service, 4, name=f"B{i}", reserved=2) for i in range(3)]
    host = hosts(database_url, provider=ScriptedProvider(real_clock), settings_overrides=FAST)
    emitted: list[tuple[int, int]] = []  # (tick number, batch call) at the moment of emission

    def record(batch_id: int) -> None:  # runs in the engine thread (direct connection)
        emitted.append((host._worker.ticks, batch_id))

    host.batchCallChanged.connect(record, Qt.ConnectionType.DirectConnection)
    host.start()
    qtbot.waitUntil(lambda: {b for _, b in emitted} == {b.id for b in batches}, timeout=10_000)
    # The second tick queues the next recipients of each: another signal apiece.
    qtbot.waitUntil(lambda: len({t for t, _ in emitted}) >= 2, timeout=10_000)
    host.stop()
    assert len(emitted) == len(set(emitted))  # never twice for one batch call in one tick
    first_tick = min(t for t, _ in emitted)
    # The first tick picked up all three and placed calls for each: one signal apiece.
    assert sorted(b for t, b in emitted if t == first_tick) == [b.id for b in batches]


def test_a_database_that_cannot_be_opened_reports_an_error_and_stops_cleanly(
    qtbot, tmp_path, hosts
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    host = hosts(f"sqlite:///{blocker}/db.sqlite3", provider=ScriptedProvider(real_clock))
    with qtbot.waitSignal(host.engineStateChanged, timeout=10_000) as error:
        host.start()
    assert error.args[0].state is EngineState.ERROR
    assert error.args[0].detail.startswith("the engine cannot start")
    host.stop(timeout_ms=2000)
    assert not host.isRunning()


def test_stop_without_start_and_twice_is_harmless(database_url, hosts):
    host = hosts(database_url, provider=ScriptedProvider(real_clock))
    host.stop()
    host.start()
    host.stop()
    host.stop()
    assert not host.isRunning()


def test_stop_returns_within_its_bound_even_while_a_provider_call_hangs(
    qtbot, service, database_url, hosts, caplog
):
    new_batch(service, 2)
    release = threading.Event()
    in_call = threading.Event()

    def hang(request: CallRequest) -> None:
        in_call.set()
        release.wait(10)

    host = hosts(
        database_url, provider=ScriptedProvider(real_clock, on_place=hang), settings_overrides=FAST
    )
    host.start()
    qtbot.waitUntil(in_call.is_set, timeout=10_000)
    thread = host._thread
    started = time.monotonic()
    host.stop(timeout_ms=300)
    assert time.monotonic() - started < 1.0
    assert "did not stop within 300 ms" in caplog.text
    assert thread in _LINGERING  # kept alive, never destroyed while running
    release.set()  # the provider answers: the thread finishes on its own
    qtbot.waitUntil(lambda: thread.isFinished() and thread not in _LINGERING, timeout=10_000)


#: An application that closes while the engine is inside a provider call that lasts
#: HANG seconds; EngineHost.stop gives up after 0.3 s. argv: database URL, HANG, the
#: exit wait.
CLOSING_APP = """
import sys, threading, time
from datetime import UTC, datetime
from PySide6.QtCore import QCoreApplication
from app.models.db import open_database
from app.services.batch_calls import Actor, BatchCallService
import app.services.engine_thread as engine_thread
from tests.services.engine_support import ScriptedProvider, new_batch

url, hang, engine_thread.EXIT_WAIT_SECONDS = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
now = lambda: datetime.now(UTC)
db, sessions = open_database(url)
new_batch(BatchCallService(sessions, clock=now, actor=Actor("qa", "h")), 2)
app = QCoreApplication([])
in_call = threading.Event()

def slow_call(request):
    in_call.set()
    time.sleep(hang)

host = engine_thread.EngineHost(
    url, provider=ScriptedProvider(now, on_place=slow_call),
    settings_overrides={"dial_interval_seconds": 0.05},
)
host.start()
while not in_call.is_set():
    app.processEvents()
    time.sleep(0.01)
host.stop(300)
db.dispose()
print("window closed", flush=True)
"""


def close_app_during_a_call(database_url: str, hang: float, exit_wait: float):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", CLOSING_APP, database_url, str(hang), str(exit_wait)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result, time.monotonic() - started


def test_the_application_exits_cleanly_when_the_engine_outlives_its_stop_bound(database_url):
    """The provider call ends 1 s after the window closed: the process waits for it and
    exits normally, instead of aborting ("QThread: Destroyed while thread ... running")."""
    result, _ = close_app_during_a_call(database_url, hang=1.0, exit_wait=20)
    assert "window closed" in result.stdout
    assert "Destroyed while thread" not in result.stderr
    assert result.returncode == 0, result.stderr[-2000:]


def test_an_engine_stuck_at_exit_ends_the_process_without_aborting(database_url):
    result, took = close_app_during_a_call(database_url, hang=30.0, exit_wait=0.3)
    assert "Destroyed while thread" not in result.stderr
    assert result.returncode == EXIT_STUCK, result.stderr[-2000:]
    assert "exiting without it" in result.stderr
    assert took < 20
