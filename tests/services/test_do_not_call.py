"""The do-not-call list: add, remove, import (section 6 CSV rules), export, audited."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import pytest

from app.services.batch_calls import Actor, NotFound, ValidationError
from app.services.csv_import import CsvImportError
from app.services.do_not_call import DoNotCallService, blocked_numbers

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def dnc(sessions) -> DoNotCallService:
    return DoNotCallService(sessions, clock=lambda: NOW, actor=Actor("ann", "desk-1"))


def test_add_remove_and_audit(dnc, sessions) -> None:
    assert dnc.add("(202) 555-0143") == ("+12025550143", True)
    assert dnc.add("+1 202 555 0143") == ("+12025550143", False)
    assert dnc.contains("2025550143") and dnc.count() == 1
    with sessions() as session:
        assert blocked_numbers(session, ["+12025550143", "+12025550199"]) == {"+12025550143"}
    assert dnc.remove("+12025550143") == "+12025550143"
    assert not dnc.contains("+12025550143")
    with pytest.raises(NotFound, match="not on the do-not-call list"):
        dnc.remove("+12025550143")
    with pytest.raises(ValidationError, match="12345"):
        dnc.add("12345")
    events = dnc.events()
    assert [(e.action, e.phone_number, e.user, e.host) for e in events] == [
        ("REMOVE", "+12025550143", "ann", "desk-1"),
        ("ADD", "+12025550143", "ann", "desk-1"),
    ]


def test_import_reads_like_a_recipients_file_and_reports_rejects(dnc, tmp_path) -> None:
    dnc.add("+12025550100")
    path = tmp_path / "dnc.csv"
    path.write_text(
        "\ufeffPhone;name\n2025550100;Known\n+44 20 7946 0958;UK\nnot a number;Bad\n"
        "2025550101;New\n2025550101;Again\n",
        encoding="utf-8",
    )
    result = dnc.import_csv(path, "US")
    assert (result.added, result.already_listed, result.rejected_count) == (2, 2, 1)
    assert result.rejected[0].row_number == 4
    assert dnc.count() == 3
    assert dnc.events()[0].action == "IMPORT"
    assert "2 added" in dnc.events()[0].detail
    (tmp_path / "bad.txt").write_text("x")
    with pytest.raises(CsvImportError):
        dnc.import_csv(tmp_path / "bad.txt")
    assert dnc.count() == 3


def test_export_is_every_number_formula_safe(dnc, tmp_path) -> None:
    dnc.add("+12025550100")
    dnc.add("+442079460958")
    out = tmp_path / "out.csv"
    assert dnc.export(out) == 2
    with open(out, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["phone_number", "source", "added_by", "added_at"]
    assert [r[0] for r in rows[1:]] == ["+12025550100", "+442079460958"]
    # The export reads back as an import without a single rejected row.
    again = dnc.import_csv(out)
    assert (again.added, again.rejected_count) == (0, 0)
