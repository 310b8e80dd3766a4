"""A recipient search shows its first page before its matches are counted (counting
100,000 matches takes longer than the page), and the count it shows is never wrong: unknown
until counted, the current query's only, and a failure says so."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import QLabel, QLineEdit

from app.views.detail_models import PAGE_SIZE

#: "Person 0" ... "Person 449": the search "person" matches all 450, more than a page.
RECIPIENTS = 450


def label(dialog, name: str) -> QLabel:
    widget = dialog.findChild(QLabel, name)
    assert widget is not None, name
    return widget


class HeldCount:
    """count_recipients held in its worker until `release()` (what a count of 125,000
    matches does for a while), or failing with `error`."""

    def __init__(self, original, error: Exception | None = None):
        self.original = original
        self.error = error
        self.gate = threading.Event()
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        assert self.gate.wait(10), "the test never released the count"
        if self.error is not None:
            raise self.error
        return self.original(*args, **kwargs)

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def searching(open_main_window, make_batch, context, qtbot, monkeypatch):
    """(dialog, held count, search(text) -> the loaded signal's argument): the details of
    a batch call of 450 recipients on its Recipients tab, with the search's count held.
    No model tester: it fetches every page on each change, which would answer the count."""
    from tests.views.test_details import details_of

    window = open_main_window()
    dialog = details_of(window, make_batch("Many", recipients=RECIPIENTS).id, qtbot)
    dialog.tabs.setCurrentWidget(dialog.recipients_tab)
    model = dialog.recipient_model
    qtbot.waitUntil(lambda: model.rowCount() == PAGE_SIZE, timeout=5000)
    held = HeldCount(context.service.count_recipients)
    monkeypatch.setattr(context.service, "count_recipients", held)
    field = dialog.findChild(QLineEdit, "recipientSearch")

    def search(text: str) -> int:
        with qtbot.waitSignal(model.loaded, timeout=5000) as loaded:
            field.setText(text)
        return loaded.args[0]

    yield dialog, held, search
    # Too late for a count still held: pytest-qt closes the windows before any fixture's
    # teardown, and closing the main window waits (5 s at most) for the worker calls its
    # tasks still run, the held count too. A test that leaves a count running releases it.
    held.release()


def test_the_first_page_shows_before_the_count(searching, qtbot):
    dialog, held, search = searching
    model = dialog.recipient_model
    assert search("person") == -1
    assert model.rowCount() == PAGE_SIZE
    assert model.total is None
    assert label(dialog, "recipientCountLabel").text() == (
        "200 matching recipients loaded, counting…"
    )
    with qtbot.waitSignal(model.counted, timeout=5000) as counted:
        held.release()
    assert counted.args == [RECIPIENTS]
    assert model.total == RECIPIENTS
    assert label(dialog, "recipientCountLabel").text() == "200 of 450 matching recipients loaded"


def test_a_search_within_one_page_needs_no_count(searching, qtbot):
    dialog, held, search = searching
    with qtbot.waitSignal(dialog.recipient_model.counted, timeout=5000) as counted:
        assert search("person 1") == 111  # Person 1, 10-19, 100-199
    assert counted.args == [111]
    assert held.calls == 0
    assert label(dialog, "recipientCountLabel").text() == "111 matching recipients"


def test_the_count_of_an_earlier_search_is_never_shown(searching, qtbot):
    dialog, held, search = searching
    model = dialog.recipient_model
    assert search("person") == -1
    assert search("person 1") == 111
    with qtbot.waitSignal(dialog.tasks.taskFinished, timeout=5000, check_params_cb=_count_done):
        held.release()  # the count of "person" (450) arrives after "person 1" showed
    assert model.total == 111
    assert label(dialog, "recipientCountLabel").text() == "111 matching recipients"


def test_scrolling_to_the_last_match_counts_them(searching, qtbot):
    dialog, held, search = searching
    model = dialog.recipient_model
    assert search("person") == -1
    assert model.canFetchMore(QModelIndex())
    with qtbot.waitSignal(model.pageFetched, timeout=5000):
        model.fetchMore(QModelIndex())
    assert model.total is None
    assert label(dialog, "recipientCountLabel").text() == (
        "400 matching recipients loaded, counting…"
    )
    with qtbot.waitSignal(model.counted, timeout=5000) as counted:
        model.fetchMore(QModelIndex())  # 50 rows, a short page: the last one
    assert counted.args == [RECIPIENTS]
    assert not model.canFetchMore(QModelIndex())
    assert label(dialog, "recipientCountLabel").text() == "450 matching recipients"
    # The count the last page answered is still running; when it arrives it changes nothing.
    with qtbot.waitSignal(dialog.tasks.taskFinished, timeout=5000, check_params_cb=_count_done):
        held.release()
    assert model.total == RECIPIENTS
    assert label(dialog, "recipientCountLabel").text() == "450 matching recipients"
    assert dialog.tasks.worker_calls() == 0


def test_closing_the_details_during_a_count_does_not_wait_for_it(searching, qtbot):
    dialog, held, search = searching
    tasks = dialog.tasks  # the main window's
    assert search("person") == -1
    qtbot.waitUntil(lambda: held.calls == 1, timeout=5000)
    started = time.monotonic()
    dialog.close()
    assert time.monotonic() - started < 1
    # The dialog (and its model) is deleted: the count's task is cancelled, its answer
    # dropped; the query itself ends on its own in the worker.
    qtbot.waitUntil(lambda: not tasks.running("recipientsCount"), timeout=5000)
    assert tasks.worker_calls() == 1
    held.release()
    qtbot.waitUntil(lambda: tasks.worker_calls() == 0, timeout=5000)


def test_closing_the_window_waits_only_until_the_count_ends(searching, qtbot):
    dialog, held, search = searching
    window = dialog.parentWidget()
    assert search("person") == -1
    qtbot.waitUntil(lambda: held.calls == 1, timeout=5000)
    # The count ends half a second into the close: the close waits for it (the database is
    # closed after the window), and no longer.
    release = threading.Timer(0.5, held.release)
    release.start()
    started = time.monotonic()
    window.close()
    waited = time.monotonic() - started
    release.join()
    assert 0.4 < waited < 3
    assert window.tasks.worker_calls() == 0


def test_a_failed_count_says_so_and_reload_counts_again(searching, context, qtbot, monkeypatch):
    dialog, held, search = searching
    model = dialog.recipient_model
    held.error = RuntimeError("database is locked")
    held.release()
    with qtbot.waitSignal(dialog.tasks.taskFinished, timeout=5000, check_params_cb=_count_done):
        search("person")
    count_label = label(dialog, "recipientCountLabel")
    assert model.total is None
    assert count_label.text() == "200 matching recipients loaded; counting failed (Reload to retry)"
    assert count_label.toolTip() == "database is locked"
    monkeypatch.setattr(context.service, "count_recipients", held.original)
    with qtbot.waitSignal(dialog.reloaded, timeout=5000):
        dialog.reload()
    qtbot.waitUntil(lambda: model.total == RECIPIENTS, timeout=5000)
    assert count_label.text() == "200 of 450 matching recipients loaded"
    assert count_label.toolTip() == ""


def _count_done(name: str) -> bool:
    return name == "recipientsCount"
