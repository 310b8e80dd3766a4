"""Stop signals: raised at start-up (one line, 130 / 143, no traceback), only recorded
around work that must be all or nothing, and a second one stops at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.services.interrupts import Interrupted, deferred_stop_signals, exit_status

ROOT = Path(__file__).resolve().parents[2]


def test_a_deferred_signal_is_recorded_not_raised():
    with deferred_stop_signals() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs between two bytecodes
        assert stop.requested() and stop.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is not stop._handle  # put back


def test_the_message_and_the_exit_status():
    stop = Interrupted(signal.SIGTERM, "nothing was created")
    assert stop.message("batchcalls") == "batchcalls: interrupted (SIGTERM): nothing was created."
    assert (stop.exit_status, exit_status(signal.SIGINT)) == (143, 130)
    assert isinstance(stop, KeyboardInterrupt)


def test_a_second_signal_stops_at_once():
    script = (
        "import os, signal, time\n"
        "from app.services.interrupts import deferred_stop_signals\n"
        "with deferred_stop_signals() as stop:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.05)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "print('not reached')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 143
    assert done.stdout == ""
    assert "interrupted again (SIGTERM)" in done.stderr


def caught(pid: int, signum: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    line = next((ln for ln in status.splitlines() if ln.startswith("SigCgt:")), "")
    return bool(line) and bool(int(line.split()[1], 16) & (1 << (signum - 1)))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_start_up_imports_is_one_line(tmp_path, signum):
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to see when the entry point is ready")
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--database-url", f"sqlite:///{tmp_path}/x.db",
         "list"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not caught(process.pid, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.001)
    process.send_signal(signum)  # main.py is importing the application now
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert err.strip().splitlines() == [f"batchcalls: interrupted ({signum.name})."], err
