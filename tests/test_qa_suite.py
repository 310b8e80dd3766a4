"""The example QA suite (examples/qa-suite: the three tests docs/qa.md shows) runs as a QA
team runs it: copied to a folder of its own outside this repository, `python -m pytest`
there against the installed package, with no conftest: only the `batchcalls` pytest plugin.
Without the plugin it cannot run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SUITE = ROOT / "examples" / "qa-suite"
EXAMPLE_TESTS = 3


def run_suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    suite = tmp_path / "qa-suite"
    shutil.copytree(EXAMPLE_SUITE, suite, ignore=shutil.ignore_patterns("__pycache__"))
    # Nothing from this pytest run (PYTEST_CURRENT_TEST, PYTEST_ADDOPTS...) leaks in.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.pop("PYTHONPATH", None)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_example_suite_has_no_conftest_and_imports_nothing_from_tests():
    files = sorted(p.name for p in EXAMPLE_SUITE.rglob("*") if p.is_file())
    assert "conftest.py" not in files and "pytest.ini" in files
    tests = sorted(EXAMPLE_SUITE.glob("test_*.py"))
    assert len(tests) == EXAMPLE_TESTS
    for path in tests:
        text = path.read_text(encoding="utf-8")
        assert "from tests" not in text and "import tests" not in text, path.name


def test_the_example_suite_passes_from_its_own_folder_with_only_the_plugin(tmp_path):
    result = run_suite(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"{EXAMPLE_TESTS} passed" in result.stdout, output
    assert f"rootdir: {tmp_path / 'qa-suite'}" in result.stdout  # not this repository
    plugins = next(line for line in result.stdout.splitlines() if line.startswith("plugins:"))
    assert "batchcalls-" in plugins  # the installed package's pytest11 entry point


def test_the_example_suite_fails_without_the_plugin(tmp_path):
    result = run_suite(tmp_path, "-p", "no:batchcalls")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"{EXAMPLE_TESTS} errors" in result.stdout, output
    assert "fixture 'open_main_window' not found" in result.stdout
    assert "fixture 'launch_app' not found" in result.stdout


def test_the_qa_extra_pins_what_this_suite_runs_with():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert extras["qa"] and set(extras["qa"]) <= set(extras["test"])
    assert project["entry-points"]["pytest11"] == {"batchcalls": "app.testing.pytest_plugin"}
