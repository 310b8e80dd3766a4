"""Guard tests for the pinned dependencies: a pin is a claim that the version works.

PySide6-Essentials 6.12.0 loses one reference to `True` on every `emit()` of a
Python-declared signal and one to `None` every time a Python `data()` override returns
`None` through a `QSortFilterProxyModel`. On CPython 3.11 those objects are not immortal:
the count reaches zero after a while and the process dies ("Fatal Python error:
bool_dealloc" / "none_dealloc"), which no short functional test notices. These tests count
the references over 10,000 emits and 10,000 proxy calls and fail on such a version.

The measurement runs in a child process (this file run as a script), so a version that
aborts fails the test with the child's message instead of killing the test run. The file
imports only PySide6 and the standard library: it can be run alone in a throw-away venv to
vet another PySide6 release before it is pinned:

    python -m pytest tests/test_dependencies.py -p no:cacheprovider --noconftest
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any

import pytest

ITERATIONS = 10_000
#: References that may come and go for reasons of their own (a cached frame, an interned
#: constant); a leak of one per call is ITERATIONS.
TOLERANCE = 50
CHUNK = 100


def _counts() -> dict[str, int]:
    gc.collect()
    return {"True": sys.getrefcount(True), "None": sys.getrefcount(None)}


def _guarded(step: Any, label: str) -> dict[str, Any]:
    """Run `step` ITERATIONS times in chunks; stop early (before the interpreter would
    abort) once a count has dropped by more than the tolerance."""
    before = _counts()
    done = 0
    while done < ITERATIONS:
        for _ in range(CHUNK):
            step()
        done += CHUNK
        now = _counts()
        if any(before[k] - now[k] > TOLERANCE for k in before):
            break
    after = _counts()
    return {"label": label, "calls": done, "before": before, "after": after}


def _measure_signal() -> dict[str, Any]:
    from PySide6.QtCore import QCoreApplication, QObject, Signal

    app = QCoreApplication.instance() or QCoreApplication([])

    class Emitter(QObject):
        changed = Signal(int)
        flagged = Signal(bool)

    received: list[int] = []
    emitter = Emitter()
    emitter.changed.connect(lambda value: received.append(value))
    emitter.flagged.connect(lambda _flag: None)

    def step() -> None:
        emitter.changed.emit(1)
        emitter.flagged.emit(True)
        if len(received) > 1000:
            received.clear()

    result = _guarded(step, "signal emit")
    app.processEvents()
    return result


def _measure_proxy() -> dict[str, Any]:
    from PySide6.QtCore import (
        QAbstractTableModel,
        QCoreApplication,
        QModelIndex,
        QPersistentModelIndex,
        QSortFilterProxyModel,
        Qt,
    )

    app = QCoreApplication.instance() or QCoreApplication([])

    class Names(QAbstractTableModel):
        """Display text for even rows, None for odd rows and for every other role."""

        def rowCount(self, parent: Any = None) -> int:
            return 0 if parent is not None and parent.isValid() else 200

        def columnCount(self, parent: Any = None) -> int:
            return 0 if parent is not None and parent.isValid() else 1

        def data(
            self,
            index: QModelIndex | QPersistentModelIndex,
            role: int = Qt.ItemDataRole.DisplayRole,
        ) -> Any:
            if role == Qt.ItemDataRole.DisplayRole and index.row() % 2 == 0:
                return f"Batch {index.row()}"
            return None

    source = Names()
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(source)
    filters = ["", "Batch 1", "zzz", "Batch"]
    state = {"call": 0}

    def step() -> None:
        call = state["call"]
        state["call"] = call + 1
        if call % 100 == 0:  # setFilterFixedString churn: data() for every row, odd ones None
            proxy.setFilterFixedString(filters[(call // 100) % len(filters)])
        if proxy.rowCount() == 0:
            proxy.setFilterFixedString("")
        proxy.data(proxy.index(0, 0), Qt.ItemDataRole.ToolTipRole)  # Python data() -> None

    result = _guarded(step, "proxy data() returning None")
    app.processEvents()
    return result


def _run_child(kind: str) -> dict[str, Any]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    completed = subprocess.run(
        [sys.executable, __file__, kind],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    if completed.returncode != 0:
        pytest.fail(
            f"the {kind} measurement died with exit status {completed.returncode}:\n"
            f"{completed.stderr[-2000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _assert_flat(result: dict[str, Any]) -> None:
    import PySide6

    lost = {k: result["before"][k] - result["after"][k] for k in result["before"]}
    assert result["calls"] == ITERATIONS and all(v <= TOLERANCE for v in lost.values()), (
        f"PySide6 {PySide6.__version__}: {result['label']} lost references "
        f"{lost} after {result['calls']} calls (tolerance {TOLERANCE}); this version "
        "aborts a long-running process: do not pin it"
    )


@pytest.mark.parametrize("kind", ["signal", "proxy"])
def test_pyside_keeps_references_to_true_and_none(kind: str) -> None:
    _assert_flat(_run_child(kind))


if __name__ == "__main__":
    measure = {"signal": _measure_signal, "proxy": _measure_proxy}[sys.argv[1]]
    print(json.dumps(measure()), flush=True)
    # A leaking version may have left too few references to survive the interpreter's
    # own clean-up: the figures are out, skip it.
    os._exit(0)
