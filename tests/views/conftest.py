"""The GUI tests get their fixtures from the `batchcalls` pytest plugin shipped with the
application (app/testing/pytest_plugin.py: the services on a temporary database with a fake
clock, batch calls in every status, the main window, answers to modal questions, leak
guards), exactly as a QA suite in another repository does. docs/qa.md describes them.
"""

from __future__ import annotations

import pytest

# Helpers the tests here may import by these names.
from app.testing.answers import Answers
from app.testing.data import STATUS_CASES, create_batch, force_state, make_rows, seed_every_status
from app.testing.guards import ModelChecks
from app.testing.pytest_plugin import OFFSCREEN_NOISE

__all__ = [
    "OFFSCREEN_NOISE",
    "STATUS_CASES",
    "Answers",
    "ModelChecks",
    "create_batch",
    "force_state",
    "rows",
    "seed_every_status",
]

rows = make_rows


@pytest.fixture(autouse=True)
def gui_guards(
    answers: Answers, no_window_left: None, no_thread_left: None, no_timer_left: None
) -> None:
    """Every test here: modal questions answered by `answers`, and no window, detached
    thread or running timer left behind (the plugin's fixtures; its window fixtures use
    them anyway)."""
