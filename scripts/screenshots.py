"""Screenshots of every screen, for the README and for review (docs/screenshots/*.png).

Builds a temporary database whose batch calls were really dialed by the engine with the
simulation provider on a manual clock (so counts, outcomes and history are genuine and the
same on every run), opens the real windows offscreen and saves `widget.grab()` of each.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QPoint, QTime  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QWidget  # noqa: E402
from sqlalchemy import update  # noqa: E402

from app.models.schema import BatchCall  # noqa: E402
from app.models.snapshots import BatchCallSnapshot, SendType  # noqa: E402
from app.models.status import BatchStatus, RecipientStatus  # noqa: E402
from app.services.batch_calls import Actor, NewBatchCall, scheduled_instant  # noqa: E402
from app.services.engine import DialerEngine  # noqa: E402
from app.services.engine.state import DIALING  # noqa: E402
from app.services.simulation import SimulationProvider  # noqa: E402
from app.views.app import prepare_application  # noqa: E402
from app.views.context import AppContext, build_context, ensure_demo_defaults  # noqa: E402
from app.views.create_dialog import CreateDialog  # noqa: E402
from app.views.detail_models import RecipientColumn  # noqa: E402
from app.views.main_window import MainWindow  # noqa: E402
from app.views.qa import process_events_until  # noqa: E402
from app.views.rename_dialog import RenameDialog  # noqa: E402
from app.views.settings_dialog import SettingsDialog  # noqa: E402

log = logging.getLogger("screenshots")

FIRST = ["Ada", "Bruno", "Chloé", "Dmitri", "Esther", "Farid", "Grace", "Hiro", "Inès", "Jamal"]
LAST = ["Lovelace", "Okafor", "Martin", "Ivanov", "Cohen", "Haddad", "Hopper", "Tanaka", "Diaz"]
CLINICS = ["North clinic", "Riverside", "Downtown", "Harbor view"]


class ManualClock:
    """Moves only when told: the engine and the service share it."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Row:
    __slots__ = ("name", "phone_number", "row_number", "variables")

    def __init__(self, index: int, rng: random.Random):
        self.row_number = index + 2
        self.phone_number = f"+1202555{index:04d}"
        self.name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        self.variables = {
            "appointment_date": f"2026-12-{rng.randint(1, 20):02d}",
            "clinic": rng.choice(CLINICS),
        }


def seed(context: AppContext, clock: ManualClock) -> dict[str, BatchCallSnapshot]:
    """Batch calls in every status, dialed for real by the engine on the manual clock."""
    service = context.service
    ensure_demo_defaults(service)
    agent = service.add_agent(
        "Appointment reminder",
        "twiml",
        "<Response><Say>Hello {{name}}, a reminder of your appointment on "
        "{{appointment_date}} at {{clinic}}.</Say></Response>",
    )
    number = service.add_from_number("+12025550123", "Reminders line")
    engine = DialerEngine(
        context.sessions,
        SimulationProvider(clock, seed=7),
        clock=clock,
        settings_overrides={"plan_concurrency": 30, "calls_per_second": 5.0},
        use_lease=False,
    )
    rng = random.Random(42)
    made: dict[str, BatchCallSnapshot] = {}

    def create(key: str, name: str, count: int, **spec: object) -> BatchCallSnapshot:
        defaults: dict[str, object] = {
            "timezone": "America/New_York",
            "window_start": "08:00",
            "window_end": "20:00",
            "allowed_days": frozenset({1, 2, 3, 4, 5, 6}),
            "reserved_concurrency": 10,
        }
        defaults.update(spec)
        new = NewBatchCall(name=name, agent_id=agent.id, from_number_id=number.id, **defaults)  # type: ignore[arg-type]
        snapshot = service.create(new, [[Row(i, rng) for i in range(count)]])
        made[key] = snapshot
        clock.advance(90)
        return snapshot

    def run(seconds: float, step: float = 5.0) -> None:
        for _ in range(int(seconds / step)):
            engine.tick()
            clock.advance(step)

    done = create("completed", "Nov reminders", 400, reserved_concurrency=15)
    run(60 * 60)
    cancelled = create("cancelled", "Holiday hours notice", 250)
    run(4 * 60)
    service.cancel(cancelled.id)
    paused = create("paused", "Payment follow-up", 300, reserved_concurrency=5)
    run(6 * 60)
    service.pause(paused.id)
    failed = create("failed", "Clinic closure alert", 120)
    create(
        "scheduled",
        "December satisfaction survey",
        500,
        send_type=SendType.SCHEDULE,
        scheduled_at=scheduled_instant(date(2026, 11, 30), time(10, 0), "America/New_York"),
    )
    running = create(
        "running",
        "Flu shot outreach",
        800,
        reserved_concurrency=12,
        time_ranges="08:00-12:00,13:00-20:00",
        blackout_dates="2026-11-26",
        local_hours="08:00-21:00",
        max_attempts=3,
        retry_delay_minutes=60,
    )
    run(8 * 60)
    # The "failed" batch call as a Twilio run ends when the account is suspended mid-way
    # (engine-made fatal errors need Twilio; the simulation never suspends an account).
    with context.sessions.begin() as session:
        session.execute(
            update(BatchCall)
            .where(BatchCall.id == failed.id)
            .values(
                status=BatchStatus.FAILED.value,
                failure_reason="The Twilio account is not active (suspended or closed). "
                "Reactivate it in the Twilio Console, then retry the batch call. "
                "(Twilio error 20005)",
                started_at=clock(),
                finished_at=clock(),
            )
        )
    service.rename(done.id, "November appointment reminders")
    engine.close()
    made = {key: service.get(s.id) for key, s in made.items()}
    log.info(
        "seeded: %s",
        {k: (s.status.value, s.finished_count, s.total_recipients) for k, s in made.items()},
    )
    assert made["completed"].status is BatchStatus.COMPLETED, made["completed"]
    assert made["running"].status is BatchStatus.RUNNING, made["running"]
    del running
    return made


def settle(widget: QWidget, condition: object = None) -> None:
    widget.show()
    process_events_until(lambda: condition() if callable(condition) else True, 10)
    QApplication.processEvents()


#: The screens made again in the dark palette (--dark), saved as <name>_dark.png.
DARK_SHOTS = frozenset(
    {
        "02_main_window",
        "07_details_recipients",
        "09_details_summary_in_progress",
        "10_create_dialog_validation",
    }
)
_dark = False


def save(widget: QWidget, out: Path, name: str) -> None:
    if _dark and name not in DARK_SHOTS:
        return
    QApplication.processEvents()
    path = out / f"{name}_dark.png" if _dark else out / f"{name}.png"
    if not widget.grab().save(str(path)):
        raise SystemExit(f"could not write {path}")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument(
        "--dark",
        action="store_true",
        help="the dark palette and style sheet (a system in dark mode); only the main window, "
        "the details and the create dialog, saved as *_dark.png",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    global _dark
    _dark = args.dark
    app = prepare_application(dark=args.dark)
    app.setFont(app.font())  # the platform default (DejaVu Sans where fonts-dejavu is)

    with tempfile.TemporaryDirectory() as directory:
        # The empty state: a first start.
        clock = ManualClock(datetime(2026, 11, 23, 14, 0, tzinfo=UTC))  # a Monday
        empty = build_context(f"sqlite:///{Path(directory) / 'empty.sqlite3'}", clock=clock)
        ensure_demo_defaults(empty.service)
        window = MainWindow(empty)
        window.resize(1100, 560)
        settle(window, lambda: window.loaded)
        save(window, args.out, "01_main_window_empty")
        window.shutdown()
        window.deleteLater()
        empty.close()

        context = build_context(
            f"sqlite:///{Path(directory) / 'demo.sqlite3'}",
            clock=clock,
            actor=Actor("maria.lopez", "callcenter-07"),
        )
        batches = seed(context, clock)
        window = MainWindow(context)
        window.set_engine_state(DIALING)
        window.resize(1100, 560)
        settle(window, lambda: window.loaded)
        window.select_batch(batches["running"].id)
        save(window, args.out, "02_main_window")

        menu = window.row_menu(batches["running"])
        menu.popup(window.mapToGlobal(QPoint(300, 200)))
        QApplication.processEvents()
        save(menu, args.out, "03_row_menu_in_progress")
        menu.close()

        window.search_field.setText("remind")
        save(window, args.out, "04_main_window_search")
        window.search_field.clear()

        details = window.open_details(batches["completed"].id)
        details.resize(920, 700)
        settle(
            details,
            lambda: details.recipient_model.rowCount() > 0 and details.live_figures_shown,
        )
        save(details, args.out, "05_details_summary")
        details.tabs.setCurrentWidget(details.configuration_tab)
        save(details, args.out, "06_details_configuration")
        details.tabs.setCurrentWidget(details.recipients_tab)
        statuses = [
            details.recipient_model.index(r, RecipientColumn.STATUS).data()
            for r in range(details.recipient_model.rowCount())
        ]
        details.select_recipient(statuses.index(RecipientStatus.COMPLETED.display_name))
        history = details.findChild(QLabel, "callHistory")
        settle(details, lambda: history is None or "Loading" not in history.text())
        save(details, args.out, "07_details_recipients")
        details.tabs.setCurrentWidget(details.history_tab)
        settle(details, lambda: details.history_model.rowCount() > 0)
        save(details, args.out, "08_details_history")
        details.close()

        running = window.open_details(batches["running"].id)
        running.resize(920, 700)
        # The live figures (and the estimate, which needs the pacing setting) come from a
        # background read.
        settle(
            running,
            lambda: running.recipient_model.rowCount() > 0 and running.live_figures_shown,
        )
        save(running, args.out, "09_details_summary_in_progress")
        running.tabs.setCurrentWidget(running.configuration_tab)
        save(running, args.out, "16_details_configuration_policy")
        running.close()

        csv_path = Path(directory) / "december-reminders.csv"
        csv_path.write_text(
            "phone_number,name,appointment_date,clinic\n"
            "+12025550101,Ada Lovelace,2026-12-02,North clinic\n"
            "(202) 555-0102,Bruno Okafor,2026-12-02,Riverside\n"
            "555-0103,Chloé Martin,2026-12-03,Downtown\n"
            "+12025550104,Dmitri Ivanov,2026-12-03,North clinic\n"
            "call after 5pm,Esther Cohen,2026-12-04,Harbor view\n"
            "+12025550101,Ada Lovelace,2026-12-05,North clinic\n"
            "1.20255501E+10,Farid Haddad,2026-12-05,Riverside\n"
            "+12025550108,Grace Hopper,2026-12-06,Downtown\n",
            encoding="utf-8",
        )
        create = CreateDialog(context, window)
        create.resize(1060, 700)
        create.name_field.setText("December appointment reminders")
        create.timezone_combo.setCurrentText("America/New_York")
        create.end_edit.setTime(QTime(17, 30))
        create.show()
        create.load_csv(str(csv_path))  # read once the agents and numbers arrived
        settle(create, lambda: create.choices_loaded and create.report is not None)
        create.rejected_model.fix(0, "(202) 555-0103")
        create.select_rejected(1)
        save(create, args.out, "10_create_dialog_validation")
        create.abandon()

        rename = RenameDialog("Flu shot outreach", window)
        rename.field.setText("   ")
        settle(rename)
        save(rename, args.out, "11_rename_invalid")
        rename.reject()

        settings = SettingsDialog(context, window)
        settle(  # the keyring, the settings and the lists are read off-thread
            settings,
            lambda: (
                settings.credentials_ready
                and settings.settings_loaded
                and settings.numbers_model.rowCount() > 0
            ),
        )
        save(settings, args.out, "12_settings_telephony")
        for tab_name, shot in (
            ("agentsTab", "13_settings_agents"),
            ("numbersTab", "14_settings_numbers"),
            ("databaseTab", "15_settings_database"),
            ("engineTab", "18_settings_dialing"),
        ):
            settings.tabs.setCurrentWidget(settings.findChild(QWidget, tab_name))
            save(settings, args.out, shot)
        from app.services.do_not_call import DoNotCallService

        listed = DoNotCallService(context.sessions, clock=clock, actor=Actor("ann", "desk-7"))
        for phone in ("+12025550188", "+13105550142", "+442079460958"):
            listed.add(phone)
        tab = settings.do_not_call_tab
        tab.refresh()
        settle(settings, lambda: tab.model.rowCount() == 3)
        settings.tabs.setCurrentWidget(tab)
        save(settings, args.out, "17_settings_do_not_call")
        settings.reject()

        window.shutdown()
        window.deleteLater()
        QApplication.processEvents()
        context.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
