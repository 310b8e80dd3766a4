"""Fixtures for the GUI tests: the services on a temporary database with a fake clock, batch
calls in every status, the main window, answers to modal questions, and leak checks.

docs/qa.md shows how to use them (and how to do the same in a test of your own).
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QAbstractItemModel
from PySide6.QtWidgets import QApplication, QWidget
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from app.models.schema import BatchCall, Recipient
from app.models.snapshots import BatchCallSnapshot
from app.models.status import Action, BatchStatus, RecipientStatus
from app.services.batch_calls import Actor, NewBatchCall
from app.views import ask
from app.views.context import AppContext, build_context, ensure_demo_defaults
from app.views.main_window import MainWindow
from app.views.tasks import detached_threads
from tests.conftest import Row, make_rows

#: Qt's offscreen platform cannot raise windows, grab the keyboard or propagate size
#: hints, and says so each time; that is the test platform talking, not the application.
OFFSCREEN_NOISE = r"^This plugin does not support "
VIEWS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if VIEWS_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


def rows(count: int, start: int = 0) -> list[Row]:
    return make_rows(count, start)


_TEMPLATES: dict[tuple[str, datetime], tuple[Path, datetime]] = {}


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gui-templates")


def _template(kind: str, clock: Any, directory: Path) -> tuple[Path, datetime]:
    """A migrated database file ("empty": demo agent and number; "seeded": also one batch
    call per status), built once per session and copied for each test (fast set-up)."""
    key = (kind, clock.current)
    if key not in _TEMPLATES:
        path = directory / f"{kind}-{len(_TEMPLATES)}.sqlite3"
        template_clock = copy.copy(clock)
        ctx = build_context(f"sqlite:///{path}", clock=template_clock, actor=Actor("qa", "seed"))
        ensure_demo_defaults(ctx.service)
        if kind == "seeded":
            seed_every_status(ctx)
        with ctx.db.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        ctx.close()
        _TEMPLATES[key] = (path, template_clock.current)
    return _TEMPLATES[key]


@pytest.fixture
def context(
    database_url: str, clock: Any, request: pytest.FixtureRequest, template_dir: Path
) -> Iterator[AppContext]:
    """The services on a fresh SQLite file with the fake clock and the demo agent and
    number (plus a batch call in every status when the test also asks for `seeded`)."""
    kind = "seeded" if "seeded" in request.fixturenames else "empty"
    source, clock_after = _template(kind, clock, template_dir)
    shutil.copyfile(source, make_url(database_url).database)
    clock.set(clock_after)
    ctx = build_context(database_url, clock=clock, actor=Actor("qa", "test-host"))
    yield ctx
    ctx.service.on_change = None
    ctx.close()


def create_batch(
    context: AppContext, name: str, recipients: int = 10, **spec: Any
) -> BatchCallSnapshot:
    agent = context.service.list_agents(active_only=True)[0]
    number = context.service.list_from_numbers(active_only=True)[0]
    new = NewBatchCall(name=name, agent_id=agent.id, from_number_id=number.id, **spec)
    return context.service.create(new, [rows(recipients)])


def force_state(
    context: AppContext,
    batch_id: int,
    status: BatchStatus,
    outcomes: dict[RecipientStatus, int] | None = None,
    *,
    failure_reason: str | None = None,
    waiting_reason: str | None = None,
) -> BatchCallSnapshot:
    """Put a batch call (and its first recipients) where the engine would have put them."""
    now = context.clock()
    with context.sessions.begin() as session:
        ids = session.scalars(
            select(Recipient.id).where(Recipient.batch_call_id == batch_id).order_by(Recipient.id)
        ).all()
        position = 0
        for recipient_status, how_many in (outcomes or {}).items():
            chosen = ids[position : position + how_many]
            position += how_many
            called = recipient_status is not RecipientStatus.PENDING
            terminal = recipient_status.is_terminal
            for offset, recipient_id in enumerate(chosen):
                session.execute(
                    update(Recipient)
                    .where(Recipient.id == recipient_id)
                    .values(
                        status=recipient_status.value,
                        attempts=1 if called else 0,
                        provider_call_id=f"SIM{recipient_id:029d}" if called else None,
                        requested_at=now - timedelta(minutes=5) if called else None,
                        answered_at=now - timedelta(minutes=4)
                        if recipient_status is RecipientStatus.COMPLETED
                        else None,
                        ended_at=now - timedelta(minutes=3) if terminal else None,
                        duration_seconds=42 + offset
                        if recipient_status is RecipientStatus.COMPLETED
                        else None,
                        answered_by="human"
                        if recipient_status is RecipientStatus.COMPLETED
                        else None,
                        last_error="The line was busy."
                        if recipient_status is RecipientStatus.NO_ANSWER
                        else (
                            "The recipient's phone number cannot be reached."
                            if recipient_status is RecipientStatus.FAILED
                            else None
                        ),
                    )
                )
        counts = dict(
            session.execute(
                select(Recipient.status, func.count())
                .where(Recipient.batch_call_id == batch_id)
                .group_by(Recipient.status)
            )
            .tuples()
            .all()
        )
        session.execute(
            update(BatchCall)
            .where(BatchCall.id == batch_id)
            .values(
                status=status.value,
                pending_count=counts.get("PENDING", 0),
                queued_count=counts.get("QUEUED", 0),
                in_progress_count=counts.get("IN_PROGRESS", 0),
                completed_count=counts.get("COMPLETED", 0),
                failed_count=counts.get("FAILED", 0),
                no_answer_count=counts.get("NO_ANSWER", 0),
                failure_reason=failure_reason,
                waiting_reason=waiting_reason,
                started_at=None
                if status in (BatchStatus.SCHEDULED, BatchStatus.PENDING)
                else now - timedelta(minutes=10),
                finished_at=now
                if status in (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.FAILED)
                else None,
            )
        )
    return context.service.get(batch_id)


#: One batch call per status, as SPEC §3 lists them (COMPLETED twice: with and without
#: failures, because only the first offers Retry).
STATUS_CASES: dict[str, tuple[BatchStatus, dict[RecipientStatus, int]]] = {
    "scheduled": (BatchStatus.SCHEDULED, {}),
    "pending": (BatchStatus.PENDING, {}),
    "running": (
        BatchStatus.RUNNING,
        {RecipientStatus.COMPLETED: 3, RecipientStatus.IN_PROGRESS: 2, RecipientStatus.QUEUED: 1},
    ),
    "paused": (BatchStatus.PAUSED, {RecipientStatus.COMPLETED: 4}),
    "completed": (
        BatchStatus.COMPLETED,
        {RecipientStatus.COMPLETED: 7, RecipientStatus.FAILED: 2, RecipientStatus.NO_ANSWER: 1},
    ),
    "completed-clean": (BatchStatus.COMPLETED, {RecipientStatus.COMPLETED: 10}),
    "cancelled": (BatchStatus.CANCELLED, {RecipientStatus.COMPLETED: 2}),
    "failed": (BatchStatus.FAILED, {RecipientStatus.FAILED: 1}),
}


def seed_every_status(context: AppContext) -> dict[str, BatchCallSnapshot]:
    """One batch call named after each case of STATUS_CASES ("Campaign running", ...)."""
    made: dict[str, BatchCallSnapshot] = {}
    for offset, (case, (status, outcomes)) in enumerate(STATUS_CASES.items()):
        snapshot = create_batch(context, f"Campaign {case}")
        made[case] = force_state(
            context,
            snapshot.id,
            status,
            outcomes,
            failure_reason="Twilio rejected the credentials." if case == "failed" else None,
        )
        context.clock.advance(minutes=1 + offset)  # type: ignore[attr-defined]
    return made


@pytest.fixture
def seeded(context: AppContext) -> dict[str, BatchCallSnapshot]:
    """The batch calls of STATUS_CASES by case (the `context` fixture copied them in)."""
    by_name = {s.name: s for s in context.service.list()}
    return {case: by_name[f"Campaign {case}"] for case in STATUS_CASES}


@pytest.fixture
def make_batch(context: AppContext) -> Callable[..., BatchCallSnapshot]:
    """make_batch(name, recipients=10, **NewBatchCall fields) -> snapshot (SCHEDULED)."""
    return lambda name, recipients=10, **spec: create_batch(context, name, recipients, **spec)


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


@pytest.fixture
def set_state(context: AppContext) -> Callable[..., BatchCallSnapshot]:
    """set_state(batch_id, status, {recipient status: count}, failure_reason=...)."""
    return lambda batch_id, status, outcomes=None, **kw: force_state(
        context, batch_id, status, outcomes, **kw
    )


class ModelChecks:
    """qtmodeltester for several models at once (the fixture keeps only its last check)."""

    def __init__(self, config: Any):
        self._config = config
        self._testers: list[Any] = []

    def check(self, model: QAbstractItemModel) -> None:
        from pytestqt.modeltest import ModelTester  # needs pytest-qt's Qt set up first

        tester = ModelTester(self._config)
        tester.check(model)
        self._testers.append(tester)

    def cleanup(self) -> None:
        for tester in self._testers:
            tester._cleanup()
        self._testers.clear()


@pytest.fixture
def model_checks(request: pytest.FixtureRequest) -> Iterator[ModelChecks]:
    checks = ModelChecks(request.config)
    yield checks
    checks.cleanup()


class Answers:
    """Stands in for the supervisor at every modal question (app.views.ask)."""

    def __init__(self) -> None:
        self.confirm = True
        self.questions: list[tuple[str, str]] = []
        self.messages: list[tuple[str, str, bool]] = []
        self.open_path: str | None = None
        self.save_path: str | None = None

    def ask(self, _parent: QWidget | None, title: str, text: str, **_kwargs: Any) -> bool:
        self.questions.append((title, text))
        return self.confirm

    def inform(self, _parent: QWidget | None, title: str, text: str, warning: bool = False) -> None:
        self.messages.append((title, text, warning))

    def open_file(self, *_args: Any) -> str | None:
        return self.open_path

    def save_file(self, *_args: Any) -> str | None:
        return self.save_path


@pytest.fixture(autouse=True)
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    """No GUI test ever blocks on a modal question: this object answers them all."""
    stand_in = Answers()
    monkeypatch.setattr(ask, "ask", stand_in.ask)
    monkeypatch.setattr(ask, "inform", stand_in.inform)
    monkeypatch.setattr(ask, "open_file", stand_in.open_file)
    monkeypatch.setattr(ask, "save_file", stand_in.save_file)
    return stand_in


@pytest.fixture
def open_main_window(
    qtbot: Any, context: AppContext, model_checks: ModelChecks
) -> Iterator[Callable[..., MainWindow]]:
    """Open the main window (models under qtmodeltester from the start) and wait for its
    first load. Closed, with its background work and timers stopped, after the test."""
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
        assert window.tasks.pool.activeThreadCount() == 0, "background work left running"
        assert not window.live_timer.isActive() and not window.poll_timer.isActive()


@pytest.fixture(autouse=True)
def no_window_left(qapp: QApplication) -> Iterator[None]:
    """A test must not leave a window open (pytest-qt closes those it was given)."""
    yield
    QApplication.processEvents()
    visible = [w.objectName() or type(w).__name__ for w in qapp.topLevelWidgets() if w.isVisible()]
    for widget in qapp.topLevelWidgets():
        if widget.isVisible():
            widget.close()
    assert not visible, f"windows left open: {visible}"


@pytest.fixture(autouse=True)
def no_thread_left(qapp: QApplication) -> Iterator[None]:
    """A test must not leave a detached task (a dialog's keyring, network or file work)
    running: they get 5 s in all to end, then the test fails."""
    yield
    deadline = time.monotonic() + 5.0
    for thread in detached_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    QApplication.processEvents()  # their (dropped) results, routed on the GUI thread
    left = detached_threads()
    assert not left, f"detached tasks still running: {len(left)}"
