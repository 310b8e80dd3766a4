"""The installer (issue 11 item 1): `scripts/package.sh` (what `make package` runs) builds
the one-folder bundle and its tarball, and the frozen program works on a fresh data
folder: --version, list --json, a small batch call dialed by its worker through the
Twilio stand-in to completion, and the window offscreen for a few seconds.

Slow (the build takes minutes): run by `make test` and CI. BATCHCALLS_TEST_BUNDLE=<dir
containing batchcalls/> reuses a bundle built before instead of building one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import __version__
from app.standin.twilio_server import TwilioStandin

ROOT = Path(__file__).resolve().parent.parent
FROM = "+14155550100"
PEOPLE = [f"+1202555{n:04d}" for n in range(6)]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    reused = os.environ.get("BATCHCALLS_TEST_BUNDLE")
    if reused:
        return Path(reused) / "batchcalls"
    pytest.importorskip(
        "PyInstaller", reason="the package extra is not installed: pip install -e '.[package]'"
    )
    out = tmp_path_factory.mktemp("package")
    env = dict(os.environ, PY=sys.executable, DIST=str(out / "dist"), WORK=str(out / "work"))
    built = subprocess.run(
        ["bash", "scripts/package.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tarballs = list((out / "dist").glob(f"batchcalls-{__version__}-linux-*.tar.gz"))
    assert len(tarballs) == 1
    return out / "dist" / "batchcalls"


@pytest.fixture
def frozen(bundle, tmp_path):
    """Run the frozen program as a user on a machine without this project: a fresh home
    and data folder, no virtual environment, no PYTHONPATH."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }

    def run(*args: str, extra: dict[str, str] | None = None, **kwargs):
        return subprocess.run(
            [str(bundle / "batchcalls"), *args],
            env={**env, **(extra or {})},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            **kwargs,
        )

    run.env = env  # type: ignore[attr-defined]
    return run


def test_the_bundle_holds_what_a_machine_without_python_needs(bundle):
    internal = bundle / "_internal"
    assert os.access(bundle / "batchcalls", os.X_OK)
    assert (internal / "app" / "migrations" / "versions" / "0001_initial_schema.py").is_file()
    assert list(internal.rglob("tzdata/zoneinfo/America/New_York"))
    platforms = {p.name for p in internal.rglob("platforms/*.so")}
    assert {"libqxcb.so", "libqoffscreen.so"} <= platforms
    assert (internal / "resources" / "style.qss").is_file()
    assert (internal / "resources" / "style-dark.qss").is_file()
    desktop = (bundle / "batchcalls.desktop").read_text()
    assert "Exec=batchcalls" in desktop and "Icon=batchcalls" in desktop
    assert (bundle / "batchcalls.svg").is_file()
    assert os.access(bundle / "install-user.sh", os.X_OK)


def test_version_and_list_on_a_fresh_data_folder(frozen, tmp_path):
    version = frozen("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"batchcalls {__version__}"

    listed = frozen("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"batch_calls": []}
    assert (tmp_path / "data" / "BatchCalls" / "batchcalls.sqlite3").is_file()


def test_the_frozen_worker_dials_a_small_batch_call_to_completion(frozen, bundle, tmp_path):
    csv_path = tmp_path / "recipients.csv"
    csv_path.write_text(
        "phone_number,name\n" + "".join(f"{p},P{i}\n" for i, p in enumerate(PEOPLE))
    )
    with TwilioStandin(seed=11) as standin:
        for person in PEOPLE:
            standin.program(person, ring_seconds=0.3, talk_seconds=0.3)
        twilio = {
            "BATCHCALLS_TWILIO_API_BASE": standin.base_url,
            "BATCHCALLS_TWILIO_ACCOUNT_SID": standin.account_sid,
            "BATCHCALLS_TWILIO_AUTH_TOKEN": standin.auth_token,
        }
        steps = [
            ["settings", "set", "provider", "twilio"],
            ["settings", "set", "calls_per_second", "20"],
            ["twilio", "check"],
            ["numbers", "add", FROM],
            ["agents", "add", "--name", "Hello", "--kind", "twiml",
             "--value", "<Response><Say>Hello {{name}}</Say></Response>"],
            ["create", "--name", "Frozen", "--agent", "Hello", "--from-number", FROM,
             "--csv", str(csv_path), "--send-now", "--timezone", "UTC",
             "--time-range", "00:00-23:59", "--days", "mon-sun", "--concurrency", "3"],
        ]  # fmt: skip
        for step in steps:
            done = frozen(*step, extra=twilio)
            assert done.returncode == 0, (step, done.stdout, done.stderr)

        worker = subprocess.Popen(
            [str(bundle / "batchcalls"), "worker", "--log-format", "json",
             "--pickup-interval", "0.5", "--dial-interval", "0.1", "--poll-interval", "0.3"],
            env={**frozen.env, **twilio},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            status = None
            while time.monotonic() < deadline:
                shown = frozen("show", "Frozen", "--json")
                status = json.loads(shown.stdout)["batch_call"]["status"]
                if status == "COMPLETED":
                    break
                time.sleep(1)
        finally:
            worker.send_signal(signal.SIGTERM)
            _, log = worker.communicate(timeout=60)
        assert status == "COMPLETED", log
        assert worker.returncode == 0, log
        assert standin.calls_created_per_destination() == dict.fromkeys(PEOPLE, 1)
    batch = json.loads(frozen("show", "Frozen", "--json").stdout)["batch_call"]
    assert batch["counts"]["COMPLETED"] == len(PEOPLE)
    records = [json.loads(line) for line in log.splitlines()]
    assert any(r["message"] == "worker stopped" for r in records)
    assert standin.auth_token not in log


def test_the_window_opens_offscreen_and_quits_on_ctrl_c(frozen, bundle):
    window = subprocess.Popen(
        [str(bundle / "batchcalls")],
        env=frozen.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(5)
        assert window.poll() is None, window.communicate()[1]
    finally:
        window.send_signal(signal.SIGINT)
        _, err = window.communicate(timeout=30)
    # Ctrl+C closes the window and says so in one line, with the shell's status for it.
    assert window.returncode == 130, err
    assert "Traceback" not in err and "not created" not in err, err
    assert (
        err.strip().splitlines()[-1] == "batchcalls: interrupted (SIGINT): the window was closed."
    )
