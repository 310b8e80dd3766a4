"""Recipient export: opens in Excel with the right characters and runs no formulas."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from app.services.csv_export import CsvExportError, export_recipients, neutralize_cell
from app.services.csv_import import scan


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://evil","click")', '\'=HYPERLINK("http://evil","click")'),
        ("+SUM(A1:A9)", "'+SUM(A1:A9)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("+1 202 555 0143", "'+1 202 555 0143"),  # not plain E.164: could be a formula
        ("+12025550143", "+12025550143"),
        ("-3.5", "-3.5"),
        ("+7", "+7"),
        ("-1e5", "-1e5"),
        ("Ada = Lovelace", "Ada = Lovelace"),
        ("", ""),
        (None, ""),
        (42, "42"),
        (-3.5, "-3.5"),
    ],
)
def test_neutralize_cell(value: object, expected: str) -> None:
    assert neutralize_cell(value) == expected


def read_back(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def test_export_writes_utf8_with_bom_and_neutralised_cells(tmp_path: Path) -> None:
    path = tmp_path / "recipients.csv"
    rows: list[dict[str, object]] = [
        {"phone_number": "+12025550143", "name": "Zoë", "status": "COMPLETED", "note": "=1+1"},
        {"phone_number": "+442079460958", "name": "北京 客户", "status": "FAILED", "note": None},
    ]
    count = export_recipients(rows, ["phone_number", "name", "status", "note"], path)
    assert count == 2
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_back(path) == [
        ["phone_number", "name", "status", "note"],
        ["+12025550143", "Zoë", "COMPLETED", "'=1+1"],
        ["+442079460958", "北京 客户", "FAILED", ""],
    ]


def test_export_keeps_only_the_named_columns_in_order(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    rows: list[dict[str, object]] = [{"a": 1, "b": 2, "secret": "x"}, {"b": "only b"}]
    assert export_recipients(rows, ["b", "a"], path) == 2
    assert read_back(path) == [["b", "a"], ["2", "1"], ["only b", ""]]


def test_export_streams_a_generator_and_values_with_line_breaks(tmp_path: Path) -> None:
    def rows() -> Iterator[Mapping[str, object]]:
        for i in range(3):
            yield {"phone_number": f"+1202555014{i}", "note": f"line 1\nline {i}, with comma"}

    path = tmp_path / "gen.csv"
    assert export_recipients(rows(), ["phone_number", "note"], path) == 3
    assert read_back(path)[3] == ["+12025550142", "line 1\nline 2, with comma"]


def test_exported_file_can_be_imported_again(tmp_path: Path) -> None:
    path = tmp_path / "again.csv"
    export_recipients(
        [{"phone_number": "+12025550143", "name": "Ada", "city": "Paris"}],
        ["phone_number", "name", "city"],
        path,
    )
    report = scan(path)
    assert (report.accepted_count, report.variable_columns) == (1, ("city",))


def test_export_failure_leaves_no_file_and_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "folder" / "out.csv"
    with pytest.raises(CsvExportError, match=r"could not be saved .* choose another folder"):
        export_recipients([{"a": 1}], ["a"], missing)

    target = tmp_path / "partial.csv"

    def broken_rows() -> Iterator[Mapping[str, object]]:
        yield {"a": 1}
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        export_recipients(broken_rows(), ["a"], target)
    assert list(tmp_path.iterdir()) == []
