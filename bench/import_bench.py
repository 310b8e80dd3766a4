"""Import benchmark: recipients CSV → database, against a same-run baseline.

Generates CSV files of 100,000 and 1,000,000 recipients (mostly valid, some invalid, some
duplicates), then measures, each in a fresh process so peak memory is its own:
- baseline: csv.reader + sqlite3 executemany of the same rows, no validation;
- scan: app.services.csv_import.scan (the validation view's pass);
- import: BatchCallService.create_from_csv (validation + storage, as the app creates);
- cli: `batchcalls create --allow-rejected` (what the supervisor runs: check, report, store).
The baseline table has the same columns and indexes as the application's.
Prints rows per second, peak RSS and the ratio to the baseline (medians of --repeat runs).

    .venv/bin/python bench/import_bench.py [--sizes 100000,1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

US_AREAS = ["202", "212", "305", "312", "415", "512", "617", "713", "646", "718"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Mostly valid E.164 numbers; ~3 % national format, ~2 % invalid, ~1 % duplicates."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["phone_number", "name", "city"])
        previous: list[str] = []
        for i in range(rows):
            roll = rng.random()
            if roll < 0.01 and previous:
                phone = rng.choice(previous)
            elif roll < 0.03:
                phone = rng.choice(["12345", "not a number", "+1999", "+44 20"])
            elif roll < 0.06:
                phone = (
                    f"({rng.choice(US_AREAS)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
                )
            elif roll < 0.20:
                phone = f"+447{rng.randint(400, 999)}{rng.randint(0, 999999):06d}"
            else:
                area = rng.choice(US_AREAS)
                phone = f"+1{area}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            if i % 1000 == 0:
                previous.append(phone)
            writer.writerow([phone, f"P{i}", "Austin"])


def run_baseline(csv_path: Path, db_path: Path) -> int:
    connection = sqlite3.connect(db_path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # The same columns and indexes as the application's recipients table (app/models/
    # schema.py), so the ratio measures the application, not the cost of its indexes.
    connection.executescript(
        "CREATE TABLE recipients (id INTEGER PRIMARY KEY, batch_call_id INTEGER NOT NULL,"
        " row_number INTEGER NOT NULL, phone_number VARCHAR(20) NOT NULL, name VARCHAR(200),"
        " variables JSON, status VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL,"
        " last_error TEXT, provider_call_id VARCHAR(64), requested_at DATETIME,"
        " answered_at DATETIME, ended_at DATETIME, duration_seconds INTEGER,"
        " answered_by VARCHAR(32), next_try_at DATETIME, timezones VARCHAR(200),"
        " phone_digits_reversed VARCHAR(20), name_key VARCHAR(200),"
        " name_last_word_key VARCHAR(200));"
        "CREATE INDEX ix_recipients_batch_call_id ON recipients (batch_call_id);"
        "CREATE INDEX ix_recipients_batch_status ON recipients (batch_call_id, status, id);"
        "CREATE INDEX ix_recipients_batch_phone ON recipients (batch_call_id, phone_number);"
        "CREATE INDEX ix_recipients_due ON recipients"
        " (batch_call_id, status, timezones, next_try_at);"
        "CREATE INDEX ix_recipients_batch_digits ON recipients"
        " (batch_call_id, phone_digits_reversed);"
        "CREATE INDEX ix_recipients_batch_name ON recipients (batch_call_id, name_key);"
        "CREATE INDEX ix_recipients_batch_last_word ON recipients"
        " (batch_call_id, name_last_word_key);"
    )
    count = 0
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        batch: list[tuple[object, ...]] = []
        for n, row in enumerate(reader, start=2):
            batch.append((1, n, row[0], row[1], json.dumps({"city": row[2]}), "PENDING", 0))
            if len(batch) == 5000:
                connection.executemany(
                    "INSERT INTO recipients (batch_call_id, row_number, phone_number, name,"
                    " variables, status, attempts) VALUES (?,?,?,?,?,?,?)",
                    batch,
                )
                count += len(batch)
                batch = []
        if batch:
            connection.executemany(
                "INSERT INTO recipients (batch_call_id, row_number, phone_number, name,"
                " variables, status, attempts) VALUES (?,?,?,?,?,?,?)",
                batch,
            )
            count += len(batch)
    connection.commit()
    connection.close()
    return count


def run_scan(csv_path: Path, db_path: Path) -> int:
    from app.services.csv_import import scan

    report = scan(csv_path)
    return report.total_rows


def run_import(csv_path: Path, db_path: Path) -> int:
    from app.models.db import open_database
    from app.services.batch_calls import Actor, BatchCallService, NewBatchCall
    from app.services.csv_import import ImportOptions

    engine, sessions = open_database(f"sqlite:///{db_path}")
    service = BatchCallService(sessions, actor=Actor("bench", "bench"))
    agent = service.add_agent("Bench", "url", "https://example.test/voice")
    number = service.add_from_number("+12025550100")
    created = service.create_from_csv(
        NewBatchCall("Bench", agent.id, number.id), csv_path, ImportOptions(drop_duplicates=False)
    )
    engine.dispose()
    return created.total_recipients


def run_cli(csv_path: Path, db_path: Path) -> int:
    """`batchcalls create` as a supervisor runs it (check, report, store)."""
    import contextlib
    import io

    from app.cli import main

    url = ["--database-url", f"sqlite:///{db_path}"]
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        main(
            [
                *url,
                "agents",
                "add",
                "--name",
                "Bench",
                "--kind",
                "url",
                "--value",
                "https://x.test/v",
            ]
        )
        main([*url, "numbers", "add", "+12025550100"])
        code = main(
            [*url, "--json", "create", "--name", "Bench", "--agent", "Bench",
             "--from-number", "+12025550100", "--csv", str(csv_path), "--timezone", "UTC",
             "--allow-rejected"]
        )  # fmt: skip
    if code != 0:
        raise SystemExit(f"batchcalls create failed: {quiet.getvalue()[-500:]}")
    return int(
        json.loads(quiet.getvalue()[quiet.getvalue().rindex('{\n  "batch_call"') :])["batch_call"][
            "total_recipients"
        ]
    )


MODES = {"baseline": run_baseline, "scan": run_scan, "import": run_import, "cli": run_cli}


def one(mode: str, csv_path: Path, db_path: Path) -> None:
    """Child process: run one measurement, print JSON with seconds, rows and peak RSS."""
    started = time.perf_counter()
    rows = MODES[mode](csv_path, db_path)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    written_mb = 0.0
    try:  # bytes this process caused to be written to storage (Linux)
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                written_mb = int(line.split()[1]) / 1e6
    except OSError:
        pass
    print(
        json.dumps(
            {
                "mode": mode,
                "seconds": seconds,
                "rows": rows,
                "peak_mb": peak_mb,
                "written_mb": written_mb,
            }
        )
    )


def measure(mode: str, csv_path: Path, workdir: Path, repeat: int) -> dict[str, float]:
    runs = []
    for i in range(repeat):
        db_path = workdir / f"{mode}-{i}.sqlite3"
        out = subprocess.run(
            [sys.executable, __file__, "--one", mode, str(csv_path), str(db_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "rows": runs[0]["rows"],
        "peak_mb": max(r["peak_mb"] for r in runs),
        "written_mb": max(r["written_mb"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--one", nargs=3, metavar=("MODE", "CSV", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], Path(args.one[1]), Path(args.one[2]))
        return
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        workdir = Path(tmp)
        print(
            f"{'rows':>9} {'mode':>8} {'median s':>9} {'rows/s':>10} {'peak MB':>8}"
            f" {'written MB':>10} {'x base':>7}"
        )
        for size in (int(s) for s in args.sizes.split(",")):
            csv_path = workdir / f"recipients-{size}.csv"
            generate(csv_path, size)
            repeat = args.repeat if size <= 200_000 else max(1, min(args.repeat, 2))
            results = {mode: measure(mode, csv_path, workdir, repeat) for mode in MODES}
            base = results["baseline"]["seconds"]
            for mode, r in results.items():
                print(
                    f"{size:>9,} {mode:>8} {r['seconds']:>9.2f} {size / r['seconds']:>10,.0f}"
                    f" {r['peak_mb']:>8.0f} {r['written_mb']:>10.0f} {r['seconds'] / base:>7.2f}"
                )
            csv_path.unlink()


if __name__ == "__main__":
    main()
