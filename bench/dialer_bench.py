"""Dialer benchmark: throughput, tick cost against the number of pending recipients,
memory, and pacing, each phase in its own process (so peak memory is its own).

- throughput: one batch call of 100,000 recipients, reserved and plan concurrency 500,
  200 calls per second, through the real TwilioProvider against the Twilio stand-in run
  as its own process (no artificial delay; its clock runs 30x so calls end in seconds and
  500 lines can sustain 200 calls/s). Dials --calls of them (default 20,000).
- tick: the engine's tick duration with 1,000 and with 1,000,000 pending recipients
  (simulation provider, fake clock: only the engine and the database are measured).
- pacing: 1 call per second for about 15 s against an in-process stand-in, measured from
  the stand-in's own record of when each call was created.

The issue 8 targets (`--phase targets`, medians of `--repeats` runs, SQLite and, with
BATCHCALLS_TEST_POSTGRES_URL or --postgres-url, PostgreSQL):
- latency: the rate achieved against a 250 ms create latency at 1, 10, 30 and 100
  calls/s (enough lines), and the most calls the stand-in saw created in any second;
- ceiling: the rate with no latency through the real `twilio` HTTP path (stand-in in its
  own process, real time, calls of about a second), setting 1,000 calls/s, beside the
  baseline measured in the same run: the bare `twilio` client's creates per second
  against a fresh stand-in process with as many threads as the engine sends from;
- faults: 20 % 429 and 10 % 500 injected at 10 calls/s: rate, anyone called twice, anyone
  FAILED because of them;
- tracking: provider requests made for tracking, per call, with 1,000 calls live at once.

    .venv/bin/python bench/dialer_bench.py [--calls 20000] [--repeats 3]
        [--phase all|throughput|tick|pacing|targets|latency|ceiling|faults|tracking]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from app.models.db import open_database  # noqa: E402
from app.models.schema import Recipient  # noqa: E402
from app.services.batch_calls import Actor, BatchCallService, NewBatchCall  # noqa: E402
from app.services.engine import DialerEngine, EngineConfig  # noqa: E402

ALL_DAYS = frozenset(range(1, 8))
#: The throughput stand-in's clock runs this much faster than real time: its simulated
#: calls (about a minute) last about a second, so 500 lines are not what limits 200 calls/s.
SPEED = 120
#: Throughput run: each open call polled once a second, ticks at least every 0.1 s.
POLL_SECONDS = 2.0
TICK_SECONDS = 0.1
STANDIN_FROM = "+14155550100"


@dataclass(frozen=True)
class Row:
    row_number: int
    phone_number: str
    name: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


def recipient_chunks(count: int, chunk: int = 5000) -> Iterator[list[Row]]:
    for start in range(0, count, chunk):
        yield [
            Row(i + 2, f"+1{202 + i // 10_000_000:03d}{i % 10_000_000:07d}", f"P{i}")
            for i in range(start, min(count, start + chunk))
        ]


def make_batch(service: BatchCallService, count: int, reserved: int, from_number: str) -> int:
    agent = service.add_agent("Bench", "twiml", "<Response><Say>Hi {{name}}</Say></Response>")
    number = service.add_from_number(from_number, "Bench line")
    spec = NewBatchCall(
        "Bench",
        agent.id,
        number.id,
        window_start="00:00",
        window_end="23:59",
        allowed_days=ALL_DAYS,
        reserved_concurrency=reserved,
    )
    return service.create(spec, recipient_chunks(count)).id


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def max_in_window(stamps: list[datetime], window: timedelta) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window:
            start += 1
        best = max(best, end - start + 1)
    return best


# ----------------------------------------------------------------------------- phases
def phase_throughput(calls: int, workdir: Path) -> dict[str, object]:
    from app.services.twilio_provider import TwilioProvider

    standin = subprocess.Popen(
        [sys.executable, "-m", "app.standin", "--speed", str(SPEED), "--no-record", "--seed", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert standin.stdout is not None
        lines = [standin.stdout.readline() for _ in range(4)]
        base = lines[0].rsplit(" ", 1)[-1].strip()
        sid = lines[2].split(":", 1)[1].strip()
        token = lines[3].split(":", 1)[1].strip()
        _, sessions = open_database(f"sqlite:///{workdir / 'throughput.sqlite3'}")
        service = BatchCallService(sessions, actor=Actor("bench", "bench"))
        created = time.perf_counter()
        batch_id = make_batch(service, 100_000, 500, STANDIN_FROM)
        create_seconds = time.perf_counter() - created
        provider = TwilioProvider(sid, token, base_url=base)
        engine = DialerEngine(
            sessions,
            provider,
            config=EngineConfig(poll_interval_seconds=POLL_SECONDS),
            settings_overrides={"calls_per_second": 200.0, "plan_concurrency": 500},
            sleep=time.sleep,
        )
        ticks: list[float] = []
        placed = 0
        started = time.perf_counter()
        while placed < calls and time.perf_counter() - started < calls / 20:
            tick_start = time.perf_counter()
            report = engine.tick()
            ticks.append(time.perf_counter() - tick_start)
            placed += report.placed
            time.sleep(min(TICK_SECONDS, report.next_tick_in or TICK_SECONDS))
        elapsed = time.perf_counter() - started
        engine.close()
        provider.close()
        with sessions() as session:
            stamps = list(
                session.scalars(
                    select(Recipient.requested_at).where(
                        Recipient.batch_call_id == batch_id, Recipient.requested_at.is_not(None)
                    )
                )
            )
        first, last = min(stamps), max(stamps)
        span = (last - first).total_seconds()
        per_second: dict[int, int] = {}
        for stamp in stamps:
            second = int((stamp - first).total_seconds())
            per_second[second] = per_second.get(second, 0) + 1
        whole = [per_second.get(i, 0) for i in range(1, int(span))]  # no partial seconds
        return {
            "calls": len(stamps),
            "create_100k_seconds": round(create_seconds, 2),
            "seconds": round(elapsed, 2),
            "calls_per_second": round((len(stamps) - 1) / span, 1) if span else None,
            "steady_median_per_second": statistics.median(whole) if whole else None,
            "max_calls_in_any_second": max_in_window(stamps, timedelta(seconds=1)),
            "ticks": len(ticks),
            "tick_median_ms": round(statistics.median(ticks) * 1000, 2),
            "tick_p95_ms": round(statistics.quantiles(ticks, n=20)[-1] * 1000, 2),
            "peak_mb": round(peak_mb()),
        }
    finally:
        standin.terminate()
        standin.wait(10)


def phase_tick(pending: int, workdir: Path) -> dict[str, object]:
    from app.services.simulation import SimulationProvider

    clock_now = [datetime(2026, 11, 23, 14, 0, tzinfo=UTC)]

    def clock() -> datetime:
        return clock_now[0]

    _, sessions = open_database(f"sqlite:///{workdir / f'tick-{pending}.sqlite3'}")
    service = BatchCallService(sessions, clock=clock, actor=Actor("bench", "bench"))
    created = time.perf_counter()
    make_batch(service, pending, 50, "+12025550100")
    create_seconds = time.perf_counter() - created
    engine = DialerEngine(
        sessions,
        SimulationProvider(clock, seed=1),
        clock=clock,
        config=EngineConfig(poll_interval_seconds=3.0),
        settings_overrides={"calls_per_second": 20.0, "plan_concurrency": 50},
    )
    durations: list[float] = []
    placed = 0
    for n in range(330):  # 30 warm-up ticks (lines filling up), then 300 measured
        start = time.perf_counter()
        report = engine.tick()
        if n >= 30:
            durations.append(time.perf_counter() - start)
            placed += report.placed
        clock_now[0] += timedelta(seconds=1)
    engine.close()
    return {
        "pending": pending,
        "create_seconds": round(create_seconds, 1),
        "tick_median_ms": round(statistics.median(durations) * 1000, 2),
        "tick_p95_ms": round(statistics.quantiles(durations, n=20)[-1] * 1000, 2),
        "calls_per_tick": round(placed / len(durations), 2),
        "peak_mb": round(peak_mb()),
    }


def phase_pacing(seconds: float, workdir: Path) -> dict[str, object]:
    from app.services.twilio_provider import TwilioProvider
    from app.standin.twilio_server import TwilioStandin

    _, sessions = open_database(f"sqlite:///{workdir / 'pacing.sqlite3'}")
    service = BatchCallService(sessions, actor=Actor("bench", "bench"))
    make_batch(service, 1000, 50, STANDIN_FROM)
    with TwilioStandin(seed=1) as standin:
        provider = TwilioProvider(
            standin.account_sid, standin.auth_token, base_url=standin.base_url
        )
        engine = DialerEngine(
            sessions,
            provider,
            config=EngineConfig(poll_interval_seconds=3.0),
            settings_overrides={"calls_per_second": 1.0, "plan_concurrency": 50},
            sleep=time.sleep,
        )
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            report = engine.tick()  # as the worker does: sooner when the pacing frees a slot
            time.sleep(min(1.0, report.next_tick_in or 1.0))
        engine.close()
        provider.close()
        stamps = sorted(standin.created_timestamps())
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    return {
        "seconds": seconds,
        "calls": len(stamps),
        "calls_per_second": round((len(stamps) - 1) / (stamps[-1] - stamps[0]).total_seconds(), 3),
        "gap_median_s": round(statistics.median(gaps), 3),
        "gap_min_s": round(min(gaps), 3),
        "gap_max_s": round(max(gaps), 3),
        "max_calls_in_any_second": max_in_window(stamps, timedelta(seconds=1)),
    }


# ----------------------------------------------------------------------------- targets
LATENCY_SECONDS = 0.25
LATENCY_RATES = (1.0, 10.0, 30.0, 100.0)


def database_for(db: str, workdir: Path, postgres_url: str | None) -> str:
    """A fresh database: a SQLite file, or the PostgreSQL test database emptied."""
    if db == "sqlite":
        return f"sqlite:///{workdir / 'bench.sqlite3'}"
    if not postgres_url:
        raise SystemExit("PostgreSQL runs need --postgres-url or BATCHCALLS_TEST_POSTGRES_URL")
    from sqlalchemy import text

    from app.models.db import make_engine

    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return postgres_url


def short_calls() -> object:
    """Stand-in calls that end in a few seconds, all answered (no outcome is an error)."""
    from app.services.simulation import SimulationSettings

    return SimulationSettings(
        answered_rate=1.0,
        no_answer_rate=0.0,
        busy_rate=0.0,
        failed_rate=0.0,
        machine_rate=0.0,
        queue_seconds=(0.1, 0.5),
        ring_seconds=(1.0, 2.0),
        talk_median_seconds=2.0,
        talk_sigma=0.2,
        talk_max_seconds=4.0,
    )


def long_calls() -> object:
    """Stand-in calls that last about 40 s, so 1,000 of them are live at once."""
    from app.services.simulation import SimulationSettings

    return SimulationSettings(
        answered_rate=1.0,
        no_answer_rate=0.0,
        busy_rate=0.0,
        failed_rate=0.0,
        machine_rate=0.0,
        queue_seconds=(0.2, 1.0),
        ring_seconds=(3.0, 6.0),
        talk_median_seconds=30.0,
        talk_sigma=0.1,
        talk_max_seconds=40.0,
    )


def drive(
    url: str,
    standin: object,
    *,
    recipients: int,
    cps: float,
    lines: int,
    stop_after_placed: int | None,
    max_seconds: float,
) -> tuple[BatchCallService, int, float]:
    """The real engine on `url` against `standin`, ticked the way the worker ticks it."""
    from app.services.twilio_provider import TwilioProvider

    _, sessions = open_database(url)
    service = BatchCallService(sessions, actor=Actor("bench", "bench"))
    batch_id = make_batch(service, recipients, lines, STANDIN_FROM)
    provider = TwilioProvider(
        standin.account_sid,  # type: ignore[attr-defined]
        standin.auth_token,  # type: ignore[attr-defined]
        base_url=standin.base_url,  # type: ignore[attr-defined]
    )
    engine = DialerEngine(
        sessions,
        provider,
        config=EngineConfig(poll_interval_seconds=3.0),
        settings_overrides={"calls_per_second": cps, "plan_concurrency": lines},
        sleep=time.sleep,
    )
    started = time.monotonic()
    placed = 0
    try:
        while time.monotonic() - started < max_seconds:
            report = engine.tick()
            placed += report.placed
            if stop_after_placed is not None and placed >= stop_after_placed:
                break
            snapshot = service.get(batch_id)
            if snapshot.status.name in ("COMPLETED", "FAILED"):
                break
            time.sleep(min(TICK_SECONDS, report.next_tick_in or TICK_SECONDS))
    finally:
        engine.close()
        provider.close()
    return service, batch_id, time.monotonic() - started


def rate_of(stamps: list[datetime]) -> float:
    stamps = sorted(stamps)
    span = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else 0
    return round((len(stamps) - 1) / span, 2) if span else 0.0


def rate_until(stamps: list[datetime], share: float) -> float:
    """The rate from the first call until `share` of them were placed (leaves out the
    tail of calls retried after a reconciliation)."""
    stamps = sorted(stamps)
    upto = stamps[: max(2, int(len(stamps) * share))]
    return rate_of(upto)


def target_latency(url: str, cps: float) -> dict[str, object]:
    """Rate achieved against a 250 ms create latency (stand-in in this process)."""
    from app.standin.twilio_server import TwilioStandin

    seconds = 20.0 if cps < 5 else 10.0
    calls = int(cps * seconds) + 1
    with TwilioStandin(
        seed=1, create_delay=LATENCY_SECONDS, settings=short_calls(), record_requests=False
    ) as standin:  # type: ignore[arg-type]
        drive(
            url,
            standin,
            recipients=calls,
            cps=cps,
            lines=min(10_000, max(50, int(cps * 12))),
            stop_after_placed=calls,
            max_seconds=seconds * 3,
        )
        stamps = standin.created_timestamps()
        peak = standin.max_calls_created_within(timedelta(seconds=1))
    achieved = rate_of(stamps)
    return {"setting": cps, "calls": len(stamps), "achieved": achieved, "max_in_any_second": peak}


#: The ceiling's creates in flight at once: the placement_concurrency setting's default.
CEILING_THREADS = 10
CEILING_CALLS = 6000
FLOOR_CALLS = 3000


def ceiling_calls() -> object:
    """Calls answered and over within about a second, so that 2,000 lines are never
    what limits the rate (each call still holds its line until a poll sees it end)."""
    from app.services.simulation import SimulationSettings

    return SimulationSettings(
        answered_rate=1.0,
        no_answer_rate=0.0,
        busy_rate=0.0,
        failed_rate=0.0,
        machine_rate=0.0,
        queue_seconds=(0.05, 0.2),
        ring_seconds=(0.2, 0.5),
        talk_median_seconds=0.5,
        talk_sigma=0.2,
        talk_max_seconds=1.0,
    )


def serve_standin() -> int:
    """The ceiling's stand-in as its own process (`--serve-standin`): real time, as
    Twilio's clock runs, with `ceiling_calls`; prints its address and credentials, one a
    line, and serves until its standard input is closed."""
    from app.standin.twilio_server import TwilioStandin

    standin = TwilioStandin(seed=1, settings=ceiling_calls(), record_requests=False)  # type: ignore[arg-type]
    with standin:
        print(standin.base_url, standin.account_sid, standin.auth_token, sep="\n", flush=True)
        sys.stdin.read()
    return 0


class StandinProcess:
    """`serve_standin` in a child process, with the address and credentials it printed."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-standin"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.base_url, self.account_sid, self.auth_token = (
            self.process.stdout.readline().strip() for _ in range(3)
        )

    def cpu_seconds(self) -> float | None:
        """The child's CPU time so far (Linux), None where it cannot be read."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def twilio_floor(threads: int, calls: int) -> float:
    """The baseline: creates per second that the real `twilio` client (TwilioProvider,
    one client per thread) reaches against a fresh stand-in process with `threads`
    threads and no engine at all."""
    from concurrent.futures import ThreadPoolExecutor

    from app.services.telephony import AgentSpec, CallRequest
    from app.services.twilio_provider import TwilioProvider

    standin = StandinProcess()
    try:
        provider = TwilioProvider(
            standin.account_sid, standin.auth_token, base_url=standin.base_url
        )
        agent = AgentSpec("twiml", "<Response><Say>Hi {{name}}</Say></Response>")
        requests = [
            CallRequest(
                to=f"+1303{i:07d}",
                from_=STANDIN_FROM,
                agent=agent,
                variables={"name": f"P{i}"},
                ring_timeout=60,
                machine_detection=False,
                time_limit=None,
            )
            for i in range(calls + threads)
        ]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(provider.place_call, requests[:threads]))  # connections opened
            started = time.perf_counter()
            list(pool.map(provider.place_call, requests[threads:]))
            seconds = time.perf_counter() - started
        provider.close()
    finally:
        standin.close()
    return round(calls / seconds, 1)


def target_ceiling(url: str, cps: float) -> dict[str, object]:
    """No latency, the real twilio HTTP path to a stand-in in its own process; the
    bare-client floor measured first, in the same run."""
    floor = twilio_floor(CEILING_THREADS, FLOOR_CALLS)
    standin = StandinProcess()
    try:
        cpu = time.process_time()
        service, batch_id, _ = drive(
            url,
            standin,
            recipients=CEILING_CALLS,
            cps=1000.0,
            lines=2000,
            stop_after_placed=CEILING_CALLS,
            max_seconds=120,
        )
        engine_cpu = time.process_time() - cpu
        standin_cpu = standin.cpu_seconds()
        with service.sessions() as session:  # type: ignore[attr-defined]
            stamps = list(
                session.scalars(
                    select(Recipient.requested_at).where(
                        Recipient.batch_call_id == batch_id, Recipient.requested_at.is_not(None)
                    )
                )
            )
    finally:
        standin.close()
    calls = max(1, len(stamps))
    return {
        "setting": 1000.0,
        "calls": len(stamps),
        "achieved": rate_of(stamps),
        "floor": floor,
        "engine_cpu_ms_per_call": round(engine_cpu / calls * 1000, 2),
        "standin_cpu_ms_per_call": (
            round(standin_cpu / calls * 1000, 2) if standin_cpu is not None else None
        ),
    }


#: The faults run's batch: large enough that the first pass, not the tail of calls
#: retried after their 429 or 500, decides the rate (30 s of calls at 10 calls/s).
FAULT_RECIPIENTS = 300


def target_faults(url: str, cps: float) -> dict[str, object]:
    """20 % of requests answered 429 and 10 % 500, at 10 calls/s."""
    from app.models.status import RecipientStatus
    from app.standin.twilio_server import TwilioStandin

    recipients = FAULT_RECIPIENTS
    with TwilioStandin(seed=1, settings=short_calls()) as standin:  # type: ignore[arg-type]
        standin.faults(rate_429=0.2, rate_500=0.1, seed=3)
        service, batch_id, elapsed = drive(
            url,
            standin,
            recipients=recipients,
            cps=10.0,
            lines=200,
            stop_after_placed=None,
            max_seconds=180,
        )
        stamps = standin.created_timestamps()
        per_destination = standin.calls_created_per_destination()
        answered = sum(1 for r in standin.requests if r.status in (429, 500))
    counts = service.get(batch_id).counts
    return {
        "setting": 10.0,
        "recipients": recipients,
        "calls": len(stamps),
        "achieved": rate_of(stamps),
        "achieved_to_90pct": rate_until(stamps, 0.9),
        "called_twice": sum(1 for n in per_destination.values() if n > 1),
        "failed": counts[RecipientStatus.FAILED],
        "finished": counts[RecipientStatus.COMPLETED],
        "faults_answered": answered,
        "seconds": round(elapsed, 1),
    }


def target_tracking(url: str, cps: float) -> dict[str, object]:
    """1,000 calls live at once: tracking requests (call fetches and lists) per call."""
    from app.standin.twilio_server import TwilioStandin

    recipients = 1000
    with TwilioStandin(seed=1, settings=long_calls()) as standin:  # type: ignore[arg-type]
        service, batch_id, elapsed = drive(
            url,
            standin,
            recipients=recipients,
            cps=100.0,
            lines=1000,
            stop_after_placed=None,
            max_seconds=300,
        )
        requests = standin.requests
        live_peak = standin.max_concurrent_in_progress()
    tracking = [r for r in requests if r.method == "GET" and "/Calls" in r.path]
    creates = [r for r in requests if r.method == "POST" and r.path.endswith("/Calls.json")]
    return {
        "calls": len(creates),
        "live_peak": live_peak,
        "tracking_requests": len(tracking),
        "per_call": round(len(tracking) / max(1, len(creates)), 2),
        "status": service.get(batch_id).status.name,
        "seconds": round(elapsed, 1),
    }


TARGET_PHASES = {
    "latency": target_latency,
    "ceiling": target_ceiling,
    "faults": target_faults,
    "tracking": target_tracking,
}


def run_targets(args: argparse.Namespace) -> dict[str, object]:
    databases = ["sqlite"] + (["postgres"] if args.postgres_url else [])
    wanted = list(TARGET_PHASES) if args.phase in ("all", "targets") else [args.phase]
    results: dict[str, object] = {}
    print("(the machine is shared: medians of", args.repeats, "runs each)")
    for db in databases:
        for phase in wanted:
            rates = LATENCY_RATES if phase == "latency" else (10.0,)
            for cps in rates:
                runs = [
                    run_phase(
                        ["--child", "--phase", phase, "--db", db, "--cps", str(cps)]
                        + (["--postgres-url", args.postgres_url] if args.postgres_url else [])
                    )
                    for _ in range(args.repeats)
                ]
                key = f"{db}/{phase}" + (f"/{cps:g}" if phase == "latency" else "")
                results[key] = runs
                print(f"{key}: {summarize(phase, runs)}", flush=True)
    return results


def summarize(phase: str, runs: list[dict[str, object]]) -> str:
    def median(name: str) -> float:
        return float(statistics.median(float(r[name]) for r in runs))  # type: ignore[arg-type]

    if phase in ("latency", "ceiling", "faults"):
        setting = float(runs[0]["setting"])  # type: ignore[arg-type]
        text = (
            f"achieved {median('achieved'):g} calls/s of {setting:g} "
            f"(ratio {median('achieved') / setting:.2f})"
        )
        if phase == "latency":
            text += f"; most in any second {max(int(r['max_in_any_second']) for r in runs)}"  # type: ignore[call-overload]
        if phase == "ceiling":
            text += (
                f"; bare twilio client {median('floor'):g} creates/s with {CEILING_THREADS} "
                f"threads (engine / floor {median('achieved') / median('floor'):.2f}); "
                f"engine CPU {median('engine_cpu_ms_per_call'):g} ms per call"
                + (
                    f", stand-in {median('standin_cpu_ms_per_call'):g}"
                    if all(r["standin_cpu_ms_per_call"] is not None for r in runs)
                    else ""
                )
            )
        if phase == "faults":
            text += (
                f"; called twice {max(int(r['called_twice']) for r in runs)}"  # type: ignore[call-overload]
                f", FAILED {max(int(r['failed']) for r in runs)}"  # type: ignore[call-overload]
                f", median run {median('seconds'):g} s"
                + (
                    f"; {median('achieved_to_90pct'):g} calls/s until 90 % were called"
                    if all("achieved_to_90pct" in r for r in runs)
                    else ""
                )
            )
        return text
    return (
        f"{median('per_call'):g} tracking requests per call "
        f"(peak {median('live_peak'):g} live calls, {median('calls'):g} calls)"
    )


# ----------------------------------------------------------------------------- driver
def run_phase(args: list[str]) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, __file__, *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls to place (throughput)")
    parser.add_argument(
        "--phase",
        default="all",
        choices=["all", "throughput", "tick", "pacing", "targets", *TARGET_PHASES],
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per target (median)")
    parser.add_argument("--postgres-url", default=os.environ.get("BATCHCALLS_TEST_POSTGRES_URL"))
    parser.add_argument("--db", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--cps", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--pending", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=15.0, help="pacing run length")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-standin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_standin:
        return serve_standin()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            if args.phase in TARGET_PHASES:
                url = database_for(args.db, work, args.postgres_url)
                result = TARGET_PHASES[args.phase](url, args.cps)
            elif args.phase == "throughput":
                result = phase_throughput(args.calls, work)
            elif args.phase == "tick":
                result = phase_tick(args.pending, work)
            else:
                result = phase_pacing(args.seconds, work)
        print(json.dumps(result))
        return 0

    results: dict[str, dict[str, object]] = {}
    if args.phase in ("all", "throughput"):
        results["throughput"] = run_phase(
            ["--child", "--phase", "throughput", "--calls", str(args.calls)]
        )
        t = results["throughput"]
        print(
            f"throughput: {t['calls']} calls of 100,000 at {t['calls_per_second']} calls/s "
            f"(target 200, ratio {float(t['calls_per_second'] or 0) / 200:.2f}), median "
            f"{t['steady_median_per_second']} per whole second; "
            f"max {t['max_calls_in_any_second']} in any second; tick median "
            f"{t['tick_median_ms']} ms, p95 {t['tick_p95_ms']} ms; peak {t['peak_mb']} MB"
        )
    if args.phase in ("all", "tick"):
        for pending in (1_000, 1_000_000):
            results[f"tick_{pending}"] = run_phase(
                ["--child", "--phase", "tick", "--pending", str(pending)]
            )
            r = results[f"tick_{pending}"]
            print(
                f"tick with {pending:,} pending: median {r['tick_median_ms']} ms, p95 "
                f"{r['tick_p95_ms']} ms, {r['calls_per_tick']} calls/tick, peak {r['peak_mb']} MB"
            )
        if "tick_1000" in results and "tick_1000000" in results:
            small = float(results["tick_1000"]["tick_median_ms"])  # type: ignore[arg-type]
            large = float(results["tick_1000000"]["tick_median_ms"])  # type: ignore[arg-type]
            print(f"tick median ratio 1,000,000 / 1,000 pending: {large / small:.2f}")
    if args.phase in ("all", "pacing"):
        results["pacing"] = run_phase(
            ["--child", "--phase", "pacing", "--seconds", str(args.seconds)]
        )
        p = results["pacing"]
        print(
            f"pacing at 1 call/s over {p['seconds']} s: {p['calls']} calls, "
            f"{p['calls_per_second']} calls/s (ratio {float(p['calls_per_second']):.3f}); gaps "
            f"median {p['gap_median_s']} s, min {p['gap_min_s']} s, max {p['gap_max_s']} s; "
            f"max {p['max_calls_in_any_second']} in any second"
        )
    if args.phase in ("all", "targets", *TARGET_PHASES):
        results["targets"] = run_targets(args)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
