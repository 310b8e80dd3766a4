"""Recipients CSV import: the files supervisors really upload, and what they are told.

The corpus in tests/data/csv holds small awkward files; large or generated ones are written
into tmp_path by the tests themselves.
"""

from __future__ import annotations

import csv
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.services import csv_import
from app.services.csv_import import (
    MAX_FILE_BYTES,
    REJECTED_KEEP,
    CsvImportError,
    CsvReport,
    ImportCancelled,
    ImportOptions,
    RecipientRow,
    RejectedRow,
    iter_recipient_chunks,
    require_recipients,
    scan,
    validate_fix,
    write_template,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "csv"


def corpus(name: str) -> Path:
    path = CORPUS / name
    assert path.exists(), f"missing corpus file {name}"
    return path


def rows_of(path: Path, options: ImportOptions | None = None, **kwargs: Any) -> list[RecipientRow]:
    """Every accepted row, through the streaming reader the import uses."""
    return [row for chunk in iter_recipient_chunks(path, options, **kwargs) for row in chunk]


def rejected_by_row(report: CsvReport) -> dict[int, str]:
    return {row.row_number: row.reason for row in report.rejected}


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_text("\n".join(lines) + "\n", encoding=encoding, newline="")
    return path


def us_numbers(count: int, start: int = 0) -> Iterator[str]:
    """Distinct valid US numbers: 202-2xx-xxxx."""
    for i in range(start, start + count):
        yield f"+1202{200 + i // 10000:03d}{i % 10000:04d}"


# ------------------------------------------------------------------ whole-file problems


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("empty.csv", ["The file is empty", "phone_number"]),
        ("no_phone_column.csv", ["no phone number column", "'mobile', 'name'"]),
        ("latin1.csv", ["not UTF-8 text", "byte 0xe9 at row 3", "Save As › CSV UTF-8"]),
        ("utf16_no_bom.csv", ["not UTF-8 text", "zero bytes", "Save As › CSV UTF-8"]),
        ("duplicate_headers.csv", ["“city” twice", "“City” and “city”"]),
        ("two_phone_columns.csv", ["more than one phone column", "“phone” and “phone_number”"]),
        ("ambiguous_delimiter.csv", ["comma and semicolon", "ambiguous"]),
        ("recipients.txt", ["“recipients.txt” is not a .csv file"]),
        ("workbook.csv", ["Excel workbook", "Save As › CSV UTF-8"]),
    ],
)
def test_unusable_files_are_refused_with_a_clear_message(name: str, fragments: list[str]) -> None:
    with pytest.raises(CsvImportError) as caught:
        scan(corpus(name))
    for fragment in fragments:
        assert fragment in str(caught.value)
    # The streaming reader refuses the same files the same way.
    with pytest.raises(CsvImportError, match=fragments[0].replace("(", r"\(")):
        rows_of(corpus(name))


def test_unknown_default_country_is_refused_before_reading() -> None:
    with pytest.raises(CsvImportError, match="default country “XX” is not known"):
        scan(corpus("utf8_bom.csv"), ImportOptions(default_country="XX"))


def test_missing_file_and_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvImportError, match="does not exist"):
        scan(tmp_path / "gone.csv")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(CsvImportError, match="is a folder, not a file"):
        scan(folder)


def test_file_over_50_mb_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as handle:
        handle.write(b"phone_number\n+12025550143\n")
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: the zero bytes would fail any read
    with pytest.raises(CsvImportError, match=r"is 50\.1 MB; the limit is 50 MB\. Split it"):
        scan(big)


def test_size_limit_is_inclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_import, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "limit.csv"
    head = b"phone_number,note\n+12025550143,"
    path.write_bytes(head + b"x" * (1000 - len(head) - 1) + b"\n")
    assert scan(path).accepted_count == 1
    path.write_bytes(path.read_bytes() + b"\n")
    with pytest.raises(CsvImportError, match="the limit is 50 MB"):
        scan(path)


def test_undecodable_byte_deep_in_the_file_names_its_row(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    lines = ["phone_number,name"] + [f"{n},Ada" for n in us_numbers(20_000)]
    body = ("\n".join(lines) + "\n").encode()
    path.write_bytes(body + b"+12025550143,Jos\xe9\n")
    with pytest.raises(CsvImportError, match=r"byte 0xe9 at row 20002\)"):
        rows_of(path)


def test_truncated_utf16_file_is_refused_as_utf16(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_bytes("phone_number\r\n+12025550143\r\n".encode("utf-16") + b"\x00")
    with pytest.raises(CsvImportError, match="not UTF-16 text"):
        scan(path)


def test_stray_quote_that_swallows_the_file_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    lines = ["phone_number,name", "+12025550143,Ada", '+12025550177,"Bob'] + ["x," * 40] * 4000
    write_lines(path, lines)
    with pytest.raises(CsvImportError, match=r"Row 3 cannot be read .*double quote"):
        scan(path)


# ------------------------------------------------------------------ encodings and layouts


def test_header_only_file_is_reported_but_cannot_create_a_batch() -> None:
    report = scan(corpus("header_only.csv"))
    assert (report.total_rows, report.accepted_count, report.rejected_count) == (0, 0, 0)
    assert report.variable_columns == ("city",)
    with pytest.raises(CsvImportError, match="No valid recipients: the file has a header but no"):
        require_recipients(report)


def test_utf8_bom_is_not_part_of_the_first_column_name() -> None:
    report = scan(corpus("utf8_bom.csv"))
    assert report.encoding == "utf-8-sig"
    assert report.columns == ("phone_number", "name")
    assert [r.phone_number for r in rows_of(corpus("utf8_bom.csv"))] == ["+12025550143"]


def test_excel_unicode_text_utf16_with_tabs_is_read() -> None:
    report = scan(corpus("utf16_bom.csv"))
    assert (report.encoding, report.delimiter) == ("utf-16", "\t")
    rows = rows_of(corpus("utf16_bom.csv"))
    assert [(r.phone_number, r.name, r.variables) for r in rows] == [
        ("+12025550143", "José", {"city": "Málaga"}),
        ("+442079460958", "Zoë", {"city": "London"}),
    ]


def test_semicolon_file_keeps_decimal_commas_in_variables() -> None:
    report = scan(corpus("semicolons.csv"))
    assert report.delimiter == ";"
    rows = rows_of(corpus("semicolons.csv"))
    assert [r.variables for r in rows] == [{"amount": "12,50"}, {"amount": "3,00"}]


def test_tab_file_with_phone_not_first_and_commas_in_values() -> None:
    report = scan(corpus("tabs.csv"))
    assert report.delimiter == "\t"
    rows = rows_of(corpus("tabs.csv"))
    assert [(r.name, r.phone_number, r.variables["City"]) for r in rows] == [
        ("Ada", "+12025550143", "Springfield, IL"),
        ("Bob", "+12025550177", "Boston"),
    ]


def test_old_mac_line_endings_are_read() -> None:
    assert [r.phone_number for r in rows_of(corpus("crlf_mac_mixed.csv"))] == [
        "+12025550143",
        "+12025550177",
    ]


def test_quoted_line_breaks_stay_in_the_value_and_rows_keep_spreadsheet_numbers() -> None:
    rows = rows_of(corpus("quoted_newlines.csv"))
    assert rows[0].name == "Ada\nLovelace"
    assert rows[0].variables == {"note": "line one\r\nline two"}
    assert [r.row_number for r in rows] == [2, 3]
    report = scan(corpus("quoted_newlines.csv"))
    assert rejected_by_row(report) == {4: "contains letters"}


@pytest.mark.parametrize("name", ["alias_phoneNumber.csv", "alias_PHONE.csv"])
def test_phone_column_aliases_in_any_case(name: str) -> None:
    rows = rows_of(corpus(name))
    assert [(r.phone_number, r.name, r.variables) for r in rows] == [("+12025550143", "Ada", {})]


def test_extra_columns_become_variables_verbatim_with_unicode() -> None:
    report = scan(corpus("variables_unicode.csv"))
    assert report.variable_columns == ("appointment date", "城市", "column_5", "emoji")
    rows = rows_of(corpus("variables_unicode.csv"))
    assert rows[0].variables == {
        "appointment date": "2030-05-14",
        "城市": "北京",
        "column_5": "x",
        "emoji": "🎉 party",
    }
    assert rows[1].name == "Ørjan"
    assert rows[1].variables["appointment date"] == " 2030-05-15 "  # values are not trimmed


def test_formula_looking_values_are_imported_as_plain_text() -> None:
    rows = rows_of(corpus("formula_values.csv"))
    assert rows[0].name == '=HYPERLINK("http://x")'
    assert rows[0].variables == {"note": "@SUM(A1)"}


# ------------------------------------------------------------------ row-level problems


def test_empty_and_blank_lines_are_skipped_but_keep_their_row_number() -> None:
    report = scan(corpus("empty_lines.csv"))
    assert (report.total_rows, report.accepted_count, report.rejected_count) == (3, 3, 0)
    assert [r.row_number for r in rows_of(corpus("empty_lines.csv"))] == [3, 6, 9]


def test_ragged_rows_are_rejected_with_the_count_of_values() -> None:
    report = scan(corpus("ragged.csv"))
    assert report.accepted_count == 2
    reasons = rejected_by_row(report)
    assert set(reasons) == {3, 4}
    assert reasons[3].startswith("has 4 values but the header has 3 columns")
    assert reasons[4].startswith("has 2 values but the header has 3 columns")
    by_row = {r.row_number: r for r in report.rejected}
    assert by_row[3].values == {
        "phone_number": "+12025550177",
        "name": "Bob",
        "city": "Rome",
        "column_4": "Extra",
    }
    assert by_row[4].phone_raw == "+12025550188"
    assert [r.row_number for r in rows_of(corpus("ragged.csv"))] == [2, 5]


def test_unclosed_quote_is_explained_on_the_row_it_starts() -> None:
    # The quote never closes: the rest of the file cannot be trusted, so nothing is accepted.
    with pytest.raises(CsvImportError, match=r"Row 2 cannot be read .*closing quote"):
        scan(corpus("unterminated_quote.csv"))


def test_a_quote_closed_rows_later_does_not_swallow_them_silently(tmp_path: Path) -> None:
    path = tmp_path / "swallow.csv"
    write_lines(
        path,
        [
            "phone_number,name",
            '+12025550101,"Bob',
            "+12025550102,Carl",
            '+12025550103,Dina"',
            "+12025550104,Eve",
        ],
    )
    report = scan(path)
    assert report.accepted_count == 1  # Eve
    reason = rejected_by_row(report)[2]
    assert "missing its closing quote" in reason
    assert [r.name for r in rows_of(path)] == ["Eve"]


def test_a_quoted_multi_line_name_is_still_accepted(tmp_path: Path) -> None:
    path = tmp_path / "multiline.csv"
    write_lines(path, ["phone_number,name", '+12025550101,"Bob', 'the builder"'])
    assert [r.name for r in rows_of(path)] == ["Bob\nthe builder"]


def test_a_name_longer_than_200_characters_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    write_lines(path, ["phone_number,name", f"+12025550101,{'x' * 201}", "+12025550102,Ann"])
    report = scan(path)
    assert "201 characters" in rejected_by_row(report)[2]
    assert report.accepted_count == 1


def test_scientific_notation_rows() -> None:
    report = scan(corpus("scientific.csv"))
    rows = rows_of(corpus("scientific.csv"))
    assert [(r.row_number, r.phone_number) for r in rows] == [
        (2, "+12025550143"),
        (3, "+447911123456"),
    ]
    reasons = rejected_by_row(report)
    assert set(reasons) == {4, 5}
    assert all("scientific notation and digits were lost" in r for r in reasons.values())


def test_lost_plus_and_float_tails_are_repaired() -> None:
    assert [r.phone_number for r in rows_of(corpus("lost_plus.csv"))] == [
        "+447911123456",
        "+12025550143",
        "+33612345678",
    ]
    assert [r.phone_number for r in rows_of(corpus("float_tail.csv"))] == [
        "+12025550143",
        "+447911123456",
    ]


def test_national_numbers_use_the_default_country() -> None:
    us = scan(corpus("national_us.csv"), ImportOptions(default_country="US"))
    assert us.accepted_count == 4
    assert rejected_by_row(us)[6].startswith("too long for United States")
    assert [r.phone_number for r in rows_of(corpus("national_us.csv"))][:4] == [
        "+12025550143",
        "+12025550143",
        "+12025550177",
        "+442079460958",
    ]
    gb_options = ImportOptions(default_country="GB")
    gb = scan(corpus("national_gb.csv"), gb_options)
    assert rejected_by_row(gb) == {
        5: "not a valid number for United Kingdom "
        "(numbers from other countries need + and the country code)"
    }
    assert [r.phone_number for r in rows_of(corpus("national_gb.csv"), gb_options)] == [
        "+442079460958",
        "+447911123456",
        "+12025550143",
    ]


def test_ignore_e164_validation_column() -> None:
    report = scan(corpus("ignore_e164.csv"))
    reasons = rejected_by_row(report)
    assert reasons == {
        3: "too short: 5 digits, at least 7 needed",
        4: "ignoreE164Validation must be true or false (yes/no, 1/0 also work), not “maybe”",
        6: "must start with + and the country code when ignoreE164Validation is set",
    }
    rows = rows_of(corpus("ignore_e164.csv"))
    assert [(r.row_number, r.phone_number, r.ignore_e164_validation) for r in rows] == [
        (2, "+99912345678", True),
        (5, "+12025550177", False),
    ]
    assert "ignoreE164Validation" not in report.variable_columns


def test_duplicates_are_reported_and_kept_by_default() -> None:
    report = scan(corpus("duplicates.csv"))
    assert report.duplicate_count == 3
    assert [(g.phone_number, g.row_numbers) for g in report.duplicates] == [
        ("+12025550143", (2, 4, 7)),
        ("+12025550177", (3, 5)),
    ]
    assert report.accepted_count == 6
    assert len(rows_of(corpus("duplicates.csv"))) == 6


def test_duplicates_can_be_dropped_keeping_the_first_row() -> None:
    options = ImportOptions(drop_duplicates=True)
    report = scan(corpus("duplicates.csv"), options)
    assert (report.accepted_count, report.duplicate_count) == (3, 3)
    rows = rows_of(corpus("duplicates.csv"), options)
    assert [(r.row_number, r.name) for r in rows] == [(2, "Ada"), (3, "Bob"), (6, "Carl")]


def test_one_valid_and_999_invalid_rows(tmp_path: Path) -> None:
    lines = ["phone_number,name"] + [f"555-01{i % 100:02d},Bad {i}" for i in range(999)]
    lines.insert(500, "+12025550143,Good")
    path = write_lines(tmp_path / "mostly_bad.csv", lines)
    report = scan(path)
    assert (report.total_rows, report.accepted_count, report.rejected_count) == (1000, 1, 999)
    assert report.rejected[0].row_number == 2
    assert report.rejected[0].reason.startswith("too short for United States")
    assert 501 not in rejected_by_row(report)
    require_recipients(report)  # one is enough
    assert [r.row_number for r in rows_of(path)] == [501]


def test_all_rejected_file_cannot_create_a_batch(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.csv", ["phone", "nope", "12"])
    report = scan(path)
    with pytest.raises(CsvImportError, match="No valid recipients: all 2 rows were rejected"):
        require_recipients(report)


def test_rejected_list_is_capped_but_the_count_is_exact(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.csv", ["phone"] + ["x"] * (REJECTED_KEEP + 5))
    report = scan(path)
    assert report.rejected_count == REJECTED_KEEP + 5
    assert len(report.rejected) == REJECTED_KEEP


# ------------------------------------------------------------------ fixes and removals


def test_fixes_and_removed_rows_are_applied_by_the_import() -> None:
    path = corpus("ignore_e164.csv")  # rows 3, 4 and 6 are rejected
    options = ImportOptions(
        fixes={
            3: {"phone_number": "+1 202 555 0188"},
            4: {"ignoreE164Validation": "no"},
        },
        removed_rows=frozenset({6}),
    )
    rows = rows_of(path, options)
    assert [(r.row_number, r.phone_number, r.name) for r in rows] == [
        (2, "+99912345678", "Test line"),
        (3, "+12025550188", "Too short"),
        (4, "+12025550143", "Bad flag"),
        (5, "+12025550177", "Normal"),
    ]
    report = scan(path, options)
    assert (report.accepted_count, report.rejected_count, report.removed_count) == (4, 0, 1)
    assert report.total_rows == 5


def test_fix_may_name_the_phone_column_by_its_header_or_by_phone_number(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "f.csv", ["Phone,Name", "nope,Ada", "nope,Bob", "x,Carl"])
    options = ImportOptions(
        fixes={2: {"Phone": "+12025550143"}, 3: {"phone_number": "+12025550177"}},
        removed_rows=frozenset({4}),
    )
    assert [r.phone_number for r in rows_of(path, options)] == ["+12025550143", "+12025550177"]


def test_a_fix_that_is_still_wrong_stays_rejected_and_fixes_complete_ragged_rows() -> None:
    options = ImportOptions(fixes={3: {"phone_number": "+1555"}, 4: {"city": "Oslo"}})
    report = scan(corpus("ragged.csv"), options)
    assert rejected_by_row(report) == {3: "too short for United States"}
    fixed = [r for r in rows_of(corpus("ragged.csv"), options) if r.row_number == 4]
    assert fixed[0].variables == {"city": "Oslo"}


def test_validate_fix_rechecks_one_edited_row() -> None:
    options = ImportOptions(default_country="GB")
    fixed = validate_fix(
        {"phone_number": "020 7946 0958", "name": " Ada ", "city": "London"},
        options,
        row_number=7,
    )
    assert fixed == RecipientRow(7, "+442079460958", "Ada", {"city": "London"}, False)
    still_bad = validate_fix({"Phone": "12", "name": "Ada"}, options, row_number=7)
    assert isinstance(still_bad, RejectedRow)
    assert (still_bad.row_number, still_bad.phone_raw) == (7, "12")
    assert still_bad.reason == "too short for United Kingdom"
    flagged = validate_fix({"phone": "+999 1234567", "IGNOREE164VALIDATION": "1"}, options)
    assert isinstance(flagged, RecipientRow)
    assert (flagged.phone_number, flagged.ignore_e164_validation) == ("+9991234567", True)
    missing = validate_fix({"name": "Ada"}, options)
    assert isinstance(missing, RejectedRow)
    assert missing.reason == "the phone number is empty"


# ------------------------------------------------------------------ streaming


def make_big_file(path: Path, count: int, name_width: int = 20) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone_number", "name", "city"])
        for i, number in enumerate(us_numbers(count)):
            writer.writerow([number, f"Customer {i}".ljust(name_width, "."), "Springfield"])
    return path


def test_chunks_are_in_file_order_and_sized(tmp_path: Path) -> None:
    path = make_big_file(tmp_path / "n.csv", 2_345)
    chunks = list(iter_recipient_chunks(path, chunk_size=1000))
    assert [len(c) for c in chunks] == [1000, 1000, 345]
    numbers = [r.row_number for c in chunks for r in c]
    assert numbers == list(range(2, 2_347))
    assert scan(path).accepted_count == 2_345
    with pytest.raises(ValueError, match="chunk_size"):
        next(iter_recipient_chunks(path, chunk_size=0))


def test_progress_is_reported_in_steps_and_reaches_the_total(tmp_path: Path) -> None:
    path = make_big_file(tmp_path / "p.csv", 20_000)
    size = path.stat().st_size
    for run in (scan, rows_of):
        calls: list[tuple[int, int]] = []

        def record(done: int, total: int, calls: list[tuple[int, int]] = calls) -> None:
            calls.append((done, total))

        run(path, progress=record)
        assert calls[-1] == (size, size)
        assert all(total == size for _, total in calls)
        assert [done for done, _ in calls] == sorted(done for done, _ in calls)
        assert len(calls) <= size // (64 * 1024) + 3  # at most one call per ~64 KB


def test_cancel_mid_file_stops_the_import(tmp_path: Path) -> None:
    path = make_big_file(tmp_path / "c.csv", 30_000)
    progress: list[int] = []
    received: list[int] = []
    with pytest.raises(ImportCancelled):
        for chunk in iter_recipient_chunks(
            path,
            chunk_size=200,
            progress=lambda done, _total: progress.append(done),
            cancel=lambda: len(progress) >= 3,
        ):
            received.append(len(chunk))
    assert 0 < sum(received) < 30_000
    assert progress[-1] < path.stat().st_size
    with pytest.raises(ImportCancelled):
        scan(path, cancel=lambda: True)


def test_memory_stays_flat_while_streaming(tmp_path: Path) -> None:
    path = make_big_file(tmp_path / "m.csv", 20_000, name_width=60)
    tracemalloc.start()
    try:
        count = 0
        for chunk in iter_recipient_chunks(path, chunk_size=1000):
            count += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    # Holding every row would take well over 10 MB; one chunk plus buffers is far less.
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_template_is_a_valid_recipients_file(tmp_path: Path) -> None:
    path = tmp_path / "template.csv"
    write_template(path)
    text = path.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("phone_number,name,")
    report = scan(path)
    assert (report.accepted_count, report.rejected_count) == (2, 0)
    assert report.variable_columns == ("appointment_date", "city")
    with pytest.raises(CsvImportError, match="could not be saved"):
        write_template(tmp_path / "no" / "such" / "folder.csv")
