"""Numbers, percentages and dates written the way the supervisor's locale writes them
(QLocale), with English as the docs and screenshots show it, and sort keys that stay
numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from PySide6.QtCore import QLocale, Qt

from app.models.status import BatchStatus, RecipientStatus
from app.views import formatting
from app.views.batch_model import Column
from app.views.detail_models import RecipientColumn

INSTANT = datetime(2026, 12, 1, 9, 5, 7, tzinfo=UTC)
NNBSP = "\u202f"  # the narrow no-break space French groups digits with


@pytest.fixture
def default_locale():
    """use(language, country): QLocale.setDefault for this test only."""
    before = QLocale()

    def use(language: QLocale.Language, country: QLocale.Country) -> None:
        QLocale.setDefault(QLocale(language, country))

    yield use
    QLocale.setDefault(before)


def german(default_locale) -> None:
    default_locale(QLocale.Language.German, QLocale.Country.Germany)


def test_a_system_without_a_locale_writes_english_as_the_docs_show(default_locale):
    default_locale(QLocale.Language.C, QLocale.Country.AnyCountry)
    assert formatting.count(1234567) == "1,234,567"
    assert formatting.number(12.5) == "12.5"
    assert formatting.percent(6) == "6%"
    assert formatting.local_time(INSTANT, UTC) == "2026-12-01 09:05"


@pytest.mark.parametrize("country", [QLocale.Country.UnitedStates, QLocale.Country.UnitedKingdom])
def test_english_keeps_the_year_month_day_dates_and_comma_groups(default_locale, country):
    default_locale(QLocale.Language.English, country)
    assert formatting.count(1234) == "1,234"
    assert formatting.number(1234.5) == "1,234.5"
    assert formatting.percent(21.9, 1) == "21.9%"
    assert formatting.local_time(INSTANT, UTC) == "2026-12-01 09:05"
    assert formatting.local_time(INSTANT, UTC, seconds=True) == "2026-12-01 09:05:07"
    assert formatting.date_pattern() == "yyyy-MM-dd"
    assert formatting.time_pattern() == "HH:mm"
    assert formatting.ordinal(1234) == "1234"


def test_german_groups_with_dots_and_writes_day_month_year(default_locale):
    german(default_locale)
    assert formatting.count(1234) == "1.234"
    assert formatting.count(1234567) == "1.234.567"
    assert formatting.number(12.5) == "12,5"
    assert formatting.percent(21.9, 1) == f"21,9{NNBSP}%"
    assert formatting.local_time(INSTANT, UTC) == "01.12.2026 09:05"
    assert formatting.local_time(INSTANT, UTC, seconds=True) == "01.12.2026 09:05:07"
    assert formatting.local_time(None) == formatting.NO_VALUE
    assert formatting.date_pattern() == "dd.MM.yyyy"
    assert formatting.ordinal(1234) == "1234"  # a CSV row, not an amount
    assert formatting.duration(3725) == "1 h 2 min 5 s"


def test_french_groups_with_spaces(default_locale):
    default_locale(QLocale.Language.French, QLocale.Country.France)
    assert formatting.count(1234) == f"1{NNBSP}234"
    assert formatting.count(1234567) == f"1{NNBSP}234{NNBSP}567"
    assert formatting.number(0.5) == "0,5"
    assert formatting.local_time(INSTANT, UTC) == "01/12/2026 09:05"


def test_a_twelve_hour_locale_keeps_its_own_times(default_locale):
    default_locale(QLocale.Language.Hindi, QLocale.Country.India)
    assert formatting.count(1234567) == "12,34,567"  # lakh grouping
    assert formatting.local_time(INSTANT, UTC) == "1/12/2026 9:05 am"
    assert formatting.local_time(INSTANT, UTC, seconds=True) == "1/12/2026 9:05:07 am"


def test_the_forecast_is_written_in_the_locale(default_locale):
    from app.models.policy import Forecast

    forecast = Forecast(
        finish_at=datetime(2026, 11, 23, 19, 10, tzinfo=UTC), calls_left=5000, calls_per_hour=1200
    )
    zone = ZoneInfo("America/New_York")
    english = "About Mon 23 Nov 14:10 EST (about 1,200 calls an hour)."
    assert forecast.describe(zone) == english  # the CLI's, and the default
    assert forecast.describe(zone, formatting.count, formatting.weekday_time) == english
    german(default_locale)
    assert forecast.describe(zone, formatting.count, formatting.weekday_time) == (
        "About Mo. 23. Nov. 14:10 EST (about 1.200 calls an hour)."
    )


def test_the_list_and_the_details_follow_the_locale(
    default_locale, open_main_window, make_batch, set_state, qtbot
):
    from tests.views.test_details import details_of, label

    german(default_locale)
    big = make_batch("Groß", recipients=1500)
    make_batch("Klein", recipients=900)
    set_state(big.id, BatchStatus.RUNNING, {RecipientStatus.COMPLETED: 1234})
    window = open_main_window()
    qtbot.waitUntil(lambda: window.model.snapshot(big.id) is not None, timeout=5000)
    model = window.model
    row = model.row_of(big.id)
    assert model.index(row, Column.TOTAL).data() == "1.500"
    assert model.index(row, Column.PROGRESS).data() == f"82{NNBSP}% (1.234/1.500)"
    created = model.index(row, Column.CREATED).data()
    assert created[2] == "." and created[5] == "." and len(created) == len("01.12.2026 09:05")
    # Sorting by the number of recipients stays numeric: 900 before 1.500 (as text,
    # "1.500" would come first).
    window.proxy.sort(Column.TOTAL, Qt.SortOrder.AscendingOrder)
    order = [window.proxy.index(r, Column.NAME).data() for r in range(window.proxy.rowCount())]
    assert order.index("Klein") < order.index("Groß")

    dialog = details_of(window, big.id, qtbot)
    qtbot.waitUntil(lambda: dialog.recipient_model.rowCount() > 0, timeout=5000)
    assert label(dialog, "summaryTotal") == "1.500"
    assert label(dialog, "summaryCompleted") == "1.234 of 1.500"
    assert label(dialog, "summaryRemaining") == "266"
    assert label(dialog, "summaryPercent") == f"82,2{NNBSP}%"
    assert label(dialog, "recipientCountLabel") == "200 of 1.500 recipients loaded"
    recipients = dialog.recipient_model
    ended = recipients.index(0, RecipientColumn.ENDED).data()
    assert ended[2] == "." and ended[5] == ".", ended
    dialog.close()


def test_a_zone_this_computer_lacks_shows_times_in_utc_not_an_error():
    """A batch call created on a machine whose tzdata has a zone this one lacks: its
    times are shown (in UTC, named), in the list's reason line and the details alike."""
    from zoneinfo import ZoneInfo

    assert formatting.zone_named("America/New_York") == ZoneInfo("America/New_York")
    assert formatting.zone_named("Mars/Olympus_Mons") == ZoneInfo("UTC")
