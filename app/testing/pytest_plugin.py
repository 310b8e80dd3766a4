"""The `batchcalls` pytest plugin: everything a QA suite needs to drive the application,
with no copying. Installed with the application (`pip install 'batchcalls[qa]'`) and
loaded by pytest through the `pytest11` entry point `batchcalls` (`-p no:batchcalls` turns
it off). The project's own suite uses it too, so it cannot rot. docs/qa.md is its guide.

Fixtures (function scope unless said):

- `clock` (FakeClock: a Monday 14:00 UTC that moves only when told), `speed_clock`
  (SpeedClock at 300x real time);
- `database_url` (a fresh SQLite file), `database`, `sessions`, `service` (the services
  on it with `clock`, no demo data);
- `context` (the AppContext the windows use, on a copy of a migrated template with the
  demo agent and from number), `seeded` (ask for it too: one batch call per status, by
  case name), `make_batch`, `set_state`, `performed`;
- `answers` (the `app.views.ask` stand-in), `model_checks`, `memory_keyring`;
- `open_main_window` (the main window on `context`, without the engine);
- `launch_app` / `launched` (the application as `batchcalls` starts it: the engine on its
  thread with the simulation, or with the Twilio stand-in `twilio_standin`);
- `no_window_left`, `no_thread_left`, `no_timer_left` (leak guards; the window fixtures
  above use them).
"""

from __future__ import annotations

import os

# Headless by default (set QT_QPA_PLATFORM=xcb to watch), and never the real keyring.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.testing.answers import Answers
from app.testing.clocks import FakeClock, SpeedClock

if TYPE_CHECKING:
    from app.models.snapshots import BatchCallSnapshot
    from app.models.status import Action
    from app.services.batch_calls import BatchCallService
    from app.standin import TwilioStandin
    from app.testing.data import Templates
    from app.testing.guards import ModelChecks
    from app.testing.keyrings import MemoryKeyring
    from app.views.context import AppContext
    from app.views.main_window import MainWindow
    from app.views.qa import Launched

#: Qt's offscreen platform cannot raise windows, grab the keyboard or propagate size
#: hints, and says so each time; that is the test platform talking, not the application.
OFFSCREEN_NOISE = r"^This plugin does not support "
#: The SpeedClock speed of `speed_clock`: a simulated ten-minute call lasts two seconds.
QA_SPEED = 300
#: What `launch_app` gives the engine unless told otherwise: pick up due batch calls every
#: 30 simulated seconds (0.1 s at 300x), dial every 50 ms, five calls a second.
FAST_ENGINE_SETTINGS: dict[str, Any] = {
    "pickup_interval_seconds": 30,
    "dial_interval_seconds": 0.05,
    "calls_per_second": 5,
}
#: Every wait for the application to start or stop is bounded by this.
START_TIMEOUT_MS = 10_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "qtbot" in fixtures and item.get_closest_marker("qt_log_ignore") is None:
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE, extend=True))


# ---------------------------------------------------------------------- clocks, database
@pytest.fixture
def clock() -> FakeClock:
    """A Monday 14:00 UTC that moves only with `advance(...)` / `set(...)`."""
    return FakeClock()


@pytest.fixture
def speed_clock() -> SpeedClock:
    """Real time running 300 times faster from a Monday 14:00 UTC; `jump(hours=1)`."""
    return SpeedClock(speed=QA_SPEED)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh SQLite file (not :memory:, which is a different database in each thread)."""
    return f"sqlite:///{tmp_path / 'batchcalls.sqlite3'}"


@pytest.fixture
def database(database_url: str) -> Iterator[Any]:
    """(engine, sessionmaker) on `database_url`, migrated."""
    from app.models.db import open_database

    engine, sessions = open_database(database_url)
    yield engine, sessions
    engine.dispose()


@pytest.fixture
def sessions(database: Any) -> Any:
    return database[1]


@pytest.fixture
def service(sessions: Any, clock: FakeClock) -> BatchCallService:
    """The BatchCallService on `database_url` with the fake clock (no demo data)."""
    from app.services.batch_calls import Actor, BatchCallService

    return BatchCallService(sessions, clock=clock, actor=Actor("qa", "test-host"))


@pytest.fixture(scope="session")
def database_templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    from app.testing.data import Templates

    return Templates(tmp_path_factory.mktemp("batchcalls-templates"))


@pytest.fixture
def context(
    database_url: str,
    clock: FakeClock,
    request: pytest.FixtureRequest,
    database_templates: Templates,
) -> Iterator[AppContext]:
    """The services on a fresh SQLite file with the fake clock and the demo agent and
    number (plus a batch call in every status when the test also asks for `seeded`)."""
    from sqlalchemy.engine import make_url

    from app.services.batch_calls import Actor
    from app.views.context import build_context

    kind = "seeded" if "seeded" in request.fixturenames else "empty"
    source, clock_after = database_templates.get(kind, clock)
    shutil.copyfile(source, str(make_url(database_url).database))
    clock.set(clock_after)
    ctx = build_context(database_url, clock=clock, actor=Actor("qa", "test-host"))
    yield ctx
    ctx.service.on_change = None
    ctx.close()


@pytest.fixture
def seeded(context: AppContext) -> dict[str, BatchCallSnapshot]:
    """The batch calls of STATUS_CASES by case ("running", "paused", ...); the `context`
    fixture copied them in, named "Campaign <case>"."""
    from app.testing.data import STATUS_CASES

    by_name = {s.name: s for s in context.service.list()}
    return {case: by_name[f"Campaign {case}"] for case in STATUS_CASES}


@pytest.fixture
def make_batch(context: AppContext) -> Callable[..., BatchCallSnapshot]:
    """make_batch(name, recipients=10, **NewBatchCall fields) -> snapshot (SCHEDULED)."""
    from app.testing.data import create_batch

    return lambda name, recipients=10, **spec: create_batch(context, name, recipients, **spec)


@pytest.fixture
def set_state(context: AppContext) -> Callable[..., BatchCallSnapshot]:
    """set_state(batch_id, status, {recipient status: count}, failure_reason=...)."""
    from app.testing.data import force_state

    return lambda batch_id, status, outcomes=None, **kw: force_state(
        context, batch_id, status, outcomes, **kw
    )


@pytest.fixture
def performed(context: AppContext, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, Action]]:
    """Every (batch call id, action) the service was asked to perform. The GUI performs
    actions in the background, so a test of a declined action waits until the window's
    background work is done and then checks that this stayed empty."""
    calls: list[tuple[int, Action]] = []
    original = context.service.perform

    def spy(batch_id: int, action: Action) -> BatchCallSnapshot | None:
        calls.append((batch_id, action))
        return original(batch_id, action)

    monkeypatch.setattr(context.service, "perform", spy)
    return calls


# ------------------------------------------------------------------- questions, keyring
@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    """No test ever blocks on a modal question: this object answers them all."""
    from app.views import ask

    stand_in = Answers()
    monkeypatch.setattr(ask, "ask", stand_in.ask)
    monkeypatch.setattr(ask, "inform", stand_in.inform)
    monkeypatch.setattr(ask, "open_file", stand_in.open_file)
    monkeypatch.setattr(ask, "save_file", stand_in.save_file)
    return stand_in


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    """A keyring in a dict (the default one, the null backend, stores nothing), and no
    Twilio credentials from the environment."""
    import keyring

    from app.services import secrets
    from app.testing.keyrings import MemoryKeyring

    backend = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    for name in (secrets.ACCOUNT_SID_ENV, secrets.AUTH_TOKEN_ENV, secrets.API_KEY_SID_ENV):
        monkeypatch.delenv(name, raising=False)
    return backend


# ---------------------------------------------------------------------------- guards
@pytest.fixture
def model_checks(request: pytest.FixtureRequest) -> Iterator[ModelChecks]:
    """`model_checks.check(model)`: Qt's model tester on as many models as needed."""
    from app.testing.guards import ModelChecks

    checks = ModelChecks(request.config)
    yield checks
    checks.cleanup()


@pytest.fixture
def no_window_left(qapp: Any) -> Iterator[None]:
    """A test must not leave a window open (pytest-qt closes those it was given)."""
    from app.testing.guards import close_visible_windows

    yield
    visible = close_visible_windows(qapp)
    assert not visible, f"windows left open: {visible}"


@pytest.fixture
def no_timer_left(qapp: Any) -> Iterator[None]:
    """A test must not leave a timer running in a window, open or closed (a closed
    dialog's refresh timer would keep reading the database)."""
    from app.testing.guards import timers_still_active

    yield
    active = timers_still_active(qapp)
    assert not active, f"timers still running: {active}"


@pytest.fixture
def no_thread_left(qapp: Any) -> Iterator[None]:
    """A test must not leave a detached task (a dialog's keyring, network or file work)
    running: they get 5 s in all to end, then the test fails."""
    from app.testing.guards import threads_still_running

    yield
    left = threads_still_running()
    assert not left, f"detached tasks still running: {left}"


# --------------------------------------------------------------------------- windows
@pytest.fixture
def open_main_window(
    qtbot: Any,
    context: AppContext,
    model_checks: ModelChecks,
    answers: Answers,
    no_window_left: None,
    no_thread_left: None,
    no_timer_left: None,
) -> Iterator[Callable[..., MainWindow]]:
    """Open the main window (models under qtmodeltester from the start) and wait for its
    first load. Closed, with its background work and timers stopped, after the test."""
    from app.views.main_window import MainWindow

    windows: list[MainWindow] = []

    def open_window(engine: Any = None) -> MainWindow:
        window = MainWindow(context, engine=engine)
        qtbot.addWidget(window)
        model_checks.check(window.model)
        model_checks.check(window.proxy)
        windows.append(window)
        window.show()
        qtbot.waitUntil(lambda: window.loaded, timeout=5000)
        return window

    yield open_window
    for window in windows:
        window.close()
        assert window.tasks.worker_calls() == 0, "background work left running"
        assert not window.live_timer.isActive() and not window.poll_timer.isActive()


@pytest.fixture
def twilio_standin(speed_clock: SpeedClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local Twilio stand-in on `speed_clock` (its from numbers: +14155550100 and
    +14155550199). BATCHCALLS_TWILIO_API_BASE points at it, for the Settings dialog."""
    from app.standin import TwilioStandin

    with TwilioStandin(clock=speed_clock) as standin:
        monkeypatch.setenv("BATCHCALLS_TWILIO_API_BASE", standin.base_url)
        yield standin


@pytest.fixture
def launch_app(
    request: pytest.FixtureRequest,
    qtbot: Any,
    database_url: str,
    speed_clock: SpeedClock,
    model_checks: ModelChecks,
    answers: Answers,
    no_window_left: None,
    no_thread_left: None,
    no_timer_left: None,
) -> Callable[..., Launched]:
    """launch_app(clock=speed_clock, standin=None, provider=None, with_engine=True,
    settings=None) -> Launched: the application as `batchcalls` starts it on
    `database_url` (migrated, demo agent and number), the engine on its own thread with
    the simulation or, given `standin` (the `twilio_standin` fixture), the real Twilio
    provider pointed at the stand-in. The models are under qtmodeltester from the start;
    the window has loaded when this returns. After the test the window, its background
    work and the engine are stopped (bounded), before the stand-in."""
    from app.views.qa import launch

    def start(
        *,
        clock: Callable[..., Any] | None = None,
        standin: TwilioStandin | None = None,
        provider: Any = None,
        with_engine: bool = True,
        settings: dict[str, Any] | None = None,
    ) -> Launched:
        overrides = dict(FAST_ENGINE_SETTINGS)
        owned_provider = None
        if standin is not None and provider is None:
            from app.services.twilio_provider import TwilioProvider

            provider = owned_provider = TwilioProvider(
                standin.account_sid, standin.auth_token, base_url=standin.base_url
            )
        if standin is not None:
            overrides.update(provider="twilio", twilio_account_sid=standin.account_sid)
        overrides.update(settings or {})
        launched = launch(
            database_url,
            clock=clock or speed_clock,
            with_engine=with_engine,
            provider=provider,
            settings_overrides=overrides,
            show=False,
        )

        def stop() -> None:
            model_checks.cleanup()
            launched.close()
            if owned_provider is not None:
                owned_provider.close()
            if launched.engine is not None:
                assert not launched.engine.isRunning(), "the engine thread is still running"

        # Registered now, so it runs before the teardown of fixtures the test asked for
        # after this one (the stand-in must outlive the engine that calls it).
        request.node.addfinalizer(stop)
        qtbot.addWidget(launched.window)
        model_checks.check(launched.window.model)
        model_checks.check(launched.window.proxy)
        launched.window.show()
        qtbot.waitUntil(lambda: launched.window.loaded, timeout=START_TIMEOUT_MS)
        return launched

    return start


@pytest.fixture
def launched(launch_app: Callable[..., Launched]) -> Launched:
    """The application with its engine and the simulation provider on `speed_clock`."""
    return launch_app()
