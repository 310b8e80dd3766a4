"""Only one engine dials a database: the lease, standby, and takeover after a crash."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.models.db import open_database
from app.models.schema import EngineLease
from app.models.status import RecipientStatus
from app.services.engine import DialerEngine, EngineConfig, EngineState
from app.services.lease import (
    UNKNOWN_MACHINE,
    DialerLease,
    MachineIdentity,
    holder_is_gone,
    new_holder_id,
    this_machine,
)
from tests.services.engine_support import ScriptedProvider, finished, new_batch

CONFIG = EngineConfig(
    poll_interval_seconds=1.0, lease_ttl_seconds=30.0, lease_heartbeat_seconds=5.0, seed=2
)


@pytest.fixture
def second_database(database_url):
    """The same database file through another engine, as a second desktop would."""
    engine, sessions = open_database(database_url)
    yield sessions
    engine.dispose()


def make_engine(sessions, clock) -> tuple[DialerEngine, ScriptedProvider]:
    provider = ScriptedProvider(clock)
    engine = DialerEngine(
        sessions,
        provider,
        clock=clock,
        config=CONFIG,
        settings_overrides={"calls_per_second": 2.0, "plan_concurrency": 2},
    )
    return engine, provider


def test_only_the_lease_holder_dials_and_another_takes_over_when_it_dies(
    service, sessions, second_database, clock
):
    batch = new_batch(service, 20, reserved=2)
    first, first_calls = make_engine(sessions, clock)
    second, second_calls = make_engine(second_database, clock)
    assert first.tick().state == "dialing"
    standby = second.tick().status
    assert standby.text == f"standby: dialing is done by {first.lease.holder}"
    for _ in range(20):
        clock.advance(1)
        first.tick()
        assert second.tick().status == standby
    assert first_calls.placements and not second_calls.placements

    # The first engine dies (no release, no more heartbeats): after the lease expires the
    # second one takes over, and finishes the batch call.
    clock.advance(31)
    assert second.tick().state == "dialing"
    assert first.tick().state is EngineState.STANDBY  # it came back too late
    placed_by_first = len(first_calls.placements)
    for _ in range(400):
        clock.advance(2)
        first.tick()
        second.tick()
        if finished(service, batch.id)():
            break
    assert finished(service, batch.id)()
    assert len(first_calls.placements) == placed_by_first
    everyone = first_calls.placed_to() + second_calls.placed_to()
    assert sorted(everyone) == sorted(set(everyone)) and len(everyone) == 20


def test_a_clean_stop_hands_over_at_once(sessions, second_database, clock):
    first, _ = make_engine(sessions, clock)
    second, _ = make_engine(second_database, clock)
    assert first.tick().state == "dialing"
    assert second.tick().state is EngineState.STANDBY
    first.close()
    assert second.tick().state == "dialing"


def test_the_holder_renews_before_expiry_and_keeps_the_lease(sessions, second_database, clock):
    first, _ = make_engine(sessions, clock)
    second, _ = make_engine(second_database, clock)
    for _ in range(30):  # five minutes of ticks: renewed every heartbeat
        assert first.tick().state == "dialing"
        assert second.tick().state is EngineState.STANDBY
        clock.advance(10)


def test_two_engines_starting_together_agree_on_one_holder(database_url, clock):
    databases = [open_database(database_url) for _ in range(4)]
    leases = [DialerLease(sessions) for _, sessions in databases]
    barrier = threading.Barrier(len(leases))
    results: list[bool] = []

    def start(lease: DialerLease) -> None:
        barrier.wait()
        results.append(lease.hold(clock()).held)

    threads = [threading.Thread(target=start, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for engine, _ in databases:
        engine.dispose()
    assert sorted(results) == [False, False, False, True]


def test_a_lease_held_by_a_process_that_no_longer_exists_is_taken_at_once(sessions, clock):
    dead = new_holder_id(pid=_dead_pid())
    with sessions.begin() as session:
        session.add(
            EngineLease(
                name="dialer",
                holder=dead,
                heartbeat_at=clock(),
                expires_at=clock() + timedelta(seconds=30),
            )
        )
    assert holder_is_gone(dead)
    lease = DialerLease(sessions)
    assert lease.hold(clock()).held


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(30)
    return process.pid


def test_a_live_or_remote_holder_is_not_presumed_gone():
    host = socket.gethostname()
    key = this_machine().key
    dead = _dead_pid()
    assert not holder_is_gone(f"{host}:{os.getpid()}:abc:{key}")  # this very process
    assert not holder_is_gone(f"{host}:{os.getppid()}:abc:{key}")  # alive
    assert not holder_is_gone(f"another-host:{dead}:abc:{key}")
    assert not holder_is_gone(f"{host}:{dead}:abc:0123456789abcdef")  # another machine
    assert not holder_is_gone(f"{host}:{dead}:deadbeef")  # the old format proves nothing
    assert not holder_is_gone("garbage")
    assert not holder_is_gone(None)
    assert holder_is_gone(f"{host}:{dead}:abc:{key}")


def test_holder_ids_name_an_instance_and_the_machine():
    first, second = new_holder_id(), new_holder_id()
    host, pid, instance, key = first.split(":")

    assert first != second  # two engines in one process
    assert (host, int(pid), key) == (socket.gethostname(), os.getpid(), this_machine().key)
    assert len(instance) == 12
    if sys.platform == "linux":
        assert key != UNKNOWN_MACHINE  # /proc gives the boot id and pid namespace


def test_a_machine_that_cannot_prove_its_identity_presumes_no_holder_gone():
    unknown = MachineIdentity(socket.gethostname(), None, None)
    holder = new_holder_id(unknown, pid=_dead_pid())

    assert unknown.key == UNKNOWN_MACHINE
    assert not holder_is_gone(holder, unknown)


def test_two_workers_sharing_a_host_name_do_not_take_the_lease_from_each_other(
    sessions, second_database, clock
):
    """Two containers (or cloned VMs) with one host name: each one's process id does not
    exist on the other, which once read as "the holder is dead" (29 takeovers a minute)."""
    host = socket.gethostname()
    machine_a = MachineIdentity(host, "boot-of-container-a", "pid:[4026531836]")
    machine_b = MachineIdentity(host, "boot-of-container-b", "pid:[4026531836]")
    pid = _dead_pid()  # as each one's process id looks from the other
    first = DialerLease(sessions, new_holder_id(machine_a, pid), machine=machine_a)
    second = DialerLease(second_database, new_holder_id(machine_b, pid), machine=machine_b)
    holders = []
    for _ in range(60):
        holders.append(first.hold(clock()).holder)
        holders.append(second.hold(clock()).holder)
        clock.advance(1)

    assert set(holders) == {first.holder}
    assert first.held and not second.held
    # The first worker froze: the second takes over once it has watched the heartbeat
    # stand still for the expiry (30 s; the last renewal was up to 5 s before the freeze).
    waited = 0
    while not second.hold(clock()).held and waited < 60:
        clock.advance(1)
        waited += 1
    assert 25 <= waited <= 31


def test_a_standby_engine_whose_clock_is_fast_never_takes_over_a_live_lease(
    service, sessions, second_database, clock
):
    """The second desktop's clock is 40 s ahead (more than the lease's expiry): it must
    not judge the holder's lease expired by its own clock."""
    new_batch(service, 200, reserved=2)
    first, first_calls = make_engine(sessions, clock)
    second, second_calls = make_engine(second_database, lambda: clock() + timedelta(seconds=40))
    for _ in range(60):
        assert first.tick().state == "dialing"
        assert second.tick().status.text.startswith("standby: dialing is done by")
        clock.advance(1)
    assert first_calls.placements and not second_calls.placements
    # The first engine dies: the second takes over once it has itself watched the lease
    # stand still for the expiry (30 s of its own clock), however far its clock is off.
    for _ in range(24):
        assert second.tick().state is EngineState.STANDBY
        clock.advance(1)
    for _ in range(8):
        clock.advance(1)
        second.tick()
    assert second.tick().state == "dialing"
    assert second_calls.placements


def test_an_engine_whose_lease_was_taken_over_between_heartbeats_places_no_call(
    service, sessions, second_database, clock
):
    batch = new_batch(service, 20, reserved=10)
    provider = ScriptedProvider(clock)
    first = DialerEngine(
        sessions,
        provider,
        clock=clock,
        config=CONFIG,
        settings_overrides={"calls_per_second": 2.0, "plan_concurrency": 10},
    )
    assert first.tick().state == "dialing"
    placed = len(provider.placements)
    assert placed == 2
    # Another engine took the lease over (this computer stalled past the expiry); the
    # first one renews only every 5 s, so it still believes it holds the lease.
    with second_database.begin() as session:
        session.execute(update(EngineLease).values(holder="elsewhere:4242:abcdef01"))
    clock.advance(1)
    first.tick()
    assert len(provider.placements) == placed
    assert first.tick().status.text == "standby: dialing is done by elsewhere:4242:abcdef01"
    snapshot = service.get(batch.id)
    assert snapshot.counts[RecipientStatus.IN_PROGRESS] == placed  # nothing lost either
    assert (
        snapshot.counts[RecipientStatus.QUEUED] + snapshot.counts[RecipientStatus.PENDING]
        == 20 - placed
    )
