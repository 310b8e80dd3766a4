"""A command loads only what it needs (issue 11 item 5): `--help` and `--version` no
database library, `list` no Qt, twilio, phonenumbers or Alembic once the schema is current.
Not timed here (bench/cli_startup.py measures it); these check the imports, in a fresh
process each, so a new top-level import that would slow every command fails a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from app.models.db import head_revisions, make_engine, migrate, schema_is_current

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("PySide6", "twilio", "phonenumbers", "alembic")

_PROBE = """
import json, sys
from app.cli import main
code = main(sys.argv[2:])
loaded = sorted({name.split(".")[0] for name in sys.modules})
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump({"code": code, "loaded": loaded}, f)
"""


def run_probe(tmp_path: Path, *args: str) -> tuple[int, set[str], str]:
    """Run `batchcalls ARGS` in a fresh interpreter; its exit code, the top-level packages
    it imported, and what it printed."""
    report = tmp_path / "probe.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    if not report.exists():  # --help and --version end in SystemExit inside argparse
        raise AssertionError(f"probe did not finish: {done.stderr}")
    result = json.loads(report.read_text(encoding="utf-8"))
    return result["code"], set(result["loaded"]), done.stdout


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["list", "--help"]])
def test_help_and_version_load_no_database_qt_or_twilio(tmp_path, args):
    code, loaded, out = run_probe(tmp_path, *args)
    assert code == 0
    assert out.strip()
    assert loaded.isdisjoint({"sqlalchemy", *HEAVY}), loaded & {"sqlalchemy", *HEAVY}


def test_list_json_on_a_current_schema_loads_no_qt_twilio_phonenumbers_or_alembic(
    tmp_path, database_url
):
    engine = make_engine(database_url)
    migrate(engine)
    engine.dispose()

    code, loaded, out = run_probe(tmp_path, "--database-url", database_url, "list", "--json")

    assert code == 0
    assert json.loads(out) == {"batch_calls": []}
    assert "sqlalchemy" in loaded  # the probe really ran the command
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_list_json_on_a_new_database_migrates_it_with_alembic(tmp_path, database_url):
    code, loaded, out = run_probe(tmp_path, "--database-url", database_url, "list", "--json")

    assert code == 0
    assert json.loads(out) == {"batch_calls": []}
    assert "alembic" in loaded
    engine = make_engine(database_url)
    assert schema_is_current(engine)
    engine.dispose()


def test_head_revision_read_from_the_files_is_alembics_head():
    from alembic.script import ScriptDirectory

    from app.models.db import alembic_config

    engine = make_engine("sqlite://")
    script = ScriptDirectory.from_config(alembic_config(engine))
    assert head_revisions() == frozenset(script.get_heads())


def test_an_older_schema_is_not_current_and_is_brought_up_to_date(database_url):
    from alembic import command
    from alembic.script import ScriptDirectory

    from app.models.db import alembic_config

    engine = make_engine(database_url)
    assert not schema_is_current(engine)  # no alembic_version table at all
    (head,) = head_revisions()
    config = alembic_config(engine)
    previous = ScriptDirectory.from_config(config).get_revision(head).down_revision
    command.upgrade(config, str(previous))
    assert not schema_is_current(engine)

    migrate(engine)

    assert schema_is_current(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [
            (head,)
        ]
    engine.dispose()
