"""Command-line start-up benchmark (issue 11 item 5), against baselines of the same run.

Times whole processes, interleaved round-robin so a busy moment of a shared machine hits
every command alike, and prints each command's median and its ratio to its baseline:
- `batchcalls --help` and `batchcalls --version` against `python -c pass` (target: 3x);
- `batchcalls list --json` on an up-to-date SQLite database with a few batch calls against
  `python -c "import sqlalchemy"` (target: 2x, and under 0.4 s).

    .venv/bin/python bench/cli_startup.py [--repeat 21] [--bundle dist/batchcalls]

With --bundle, the packaged program (make package) is timed too, with the same commands.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def batchcalls_command() -> list[str]:
    """The installed console script (what a user runs), else the module."""
    script = Path(sys.executable).with_name("batchcalls")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def prepare_database(folder: Path) -> str:
    """A migrated database with a few batch calls, so `list` has rows to print."""
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    csv_path = folder / "recipients.csv"
    csv_path.write_text(
        "phone_number,name\n" + "".join(f"+1202555{i:04d},R{i}\n" for i in range(50)),
        encoding="utf-8",
    )
    cli = [*batchcalls_command(), "--database-url", url]
    steps = [
        ["agents", "add", "--name", "Bench", "--kind", "twiml", "--value", "<Response/>"],
        ["numbers", "add", "+12025550100"],
    ]
    steps += [
        [
            "create",
            "--name",
            f"Bench {n}",
            "--agent",
            "Bench",
            "--from-number",
            "+12025550100",
            "--csv",
            str(csv_path),
            "--timezone",
            "UTC",
        ]
        for n in range(5)
    ]
    for step in steps:
        subprocess.run([*cli, *step], check=True, capture_output=True)
    return url


def time_once(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="runs of each command")
    parser.add_argument(
        "--bundle", type=Path, help="also time this packaged program folder (make package)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = prepare_database(Path(tmp))
        env = {**os.environ, "BATCHCALLS_DATABASE_URL": url, "PYTHONDONTWRITEBYTECODE": "0"}
        cli = batchcalls_command()
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import sqlalchemy'": [sys.executable, "-c", "import sqlalchemy"],
            "batchcalls --help": [*cli, "--help"],
            "batchcalls --version": [*cli, "--version"],
            "batchcalls list --json": [*cli, "list", "--json"],
        }
        if args.bundle:
            frozen = str(args.bundle.resolve() / "batchcalls")
            commands["frozen --version"] = [frozen, "--version"]
            commands["frozen list --json"] = [frozen, "list", "--json"]
        for command in commands.values():  # warm the file cache and the bytecode
            time_once(command, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, command in commands.items():
                times[name].append(time_once(command, env))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"CLI start-up, medians of {args.repeat} interleaved runs (load: {os.getloadavg()[0]:.1f})"
    )
    for name, value in median.items():
        low, high = min(times[name]), max(times[name])
        print(f"  {name:32} {value * 1000:7.1f} ms  (min {low * 1000:.1f}, max {high * 1000:.1f})")
    checks = [
        ("batchcalls --help", "python -c pass", 3.0, None),
        ("batchcalls --version", "python -c pass", 3.0, None),
        ("batchcalls list --json", "python -c 'import sqlalchemy'", 2.0, 0.4),
    ]
    print("Targets")
    failed = False
    for name, baseline, ratio_target, seconds_target in checks:
        ratio = median[name] / median[baseline]
        ok = ratio <= ratio_target and (seconds_target is None or median[name] < seconds_target)
        failed |= not ok
        limit = f", under {seconds_target} s" if seconds_target else ""
        print(
            f"  {name:24} {ratio:4.2f}x {baseline} (target {ratio_target:g}x{limit}): "
            f"{'met' if ok else 'MISSED'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
