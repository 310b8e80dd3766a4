"""Read a recipients CSV (SPEC §6): check it, report problems per row, stream accepted rows.

Two passes over the file serve the "Create batch call" flow: ``scan`` builds the validation
report the supervisor reviews (counts, rejected rows with reasons, duplicates), then
``iter_recipient_chunks`` streams the accepted rows, with the supervisor's fixes and removals
applied, into the database. Both stream: memory stays flat whatever the file size.

Row numbers are the ones a spreadsheet shows: the header is row 1, the first data row is
row 2, a record with a line break inside quotes is one row, and blank lines keep their number
(so row 7 here is row 7 in Excel) although they are skipped and not counted.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import math
import operator
import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.models.phone import PhoneError, is_supported_country, normalize_phone

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_FILE_BYTES",
    "REJECTED_KEEP",
    "CancelCheck",
    "CsvImportError",
    "CsvReport",
    "DuplicateGroup",
    "ImportCancelled",
    "ImportOptions",
    "ProgressCallback",
    "RecipientRow",
    "RejectedRow",
    "iter_recipient_chunks",
    "require_recipients",
    "scan",
    "validate_fix",
    "write_template",
]

MAX_FILE_BYTES = 50 * 1024 * 1024
REJECTED_KEEP = 10_000
"""The report keeps this many rejected rows (and duplicate groups); the counts stay exact."""
DUPLICATE_GROUPS_KEEP = 10_000
PROGRESS_EVERY_BYTES = 64 * 1024

PHONE_COLUMN_NAMES = ("phone_number", "phoneNumber", "phone")
_PHONE_ALIASES = frozenset(name.casefold() for name in PHONE_COLUMN_NAMES)
_NAME_ALIAS = "name"
_IGNORE_ALIAS = "ignoree164validation"
_DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0", ""})
_SAVE_AS_HINT = "In Excel use Save As › CSV UTF-8."

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes_read, total_bytes), at most every ~64 KB and once at the end."""
CancelCheck = Callable[[], bool]
"""Returns True to stop the import; the reader then raises ImportCancelled."""


class CsvImportError(Exception):
    """The whole file cannot be used; ``str()`` is the message for the supervisor."""


class ImportCancelled(Exception):
    """The supervisor cancelled while the file was being read."""


@dataclass(frozen=True, slots=True)
class RecipientRow:
    """An accepted row: the phone number is E.164, variables are kept verbatim."""

    row_number: int
    phone_number: str
    name: str | None
    variables: dict[str, str]
    ignore_e164_validation: bool


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that cannot be imported as it is; ``values`` is the raw row keyed by header."""

    row_number: int
    phone_raw: str
    reason: str
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """One phone number that occurs on several rows (first occurrence included)."""

    phone_number: str
    row_numbers: tuple[int, ...]


@dataclass(frozen=True)
class CsvReport:
    """What ``scan`` found; the validation view shows it before the batch call is created.

    ``accepted_count`` is the number of recipients ``iter_recipient_chunks`` will yield with
    the same options (duplicates dropped when asked). ``duplicate_count`` counts occurrences
    beyond the first. ``rejected`` and ``duplicates`` are capped at REJECTED_KEEP and
    DUPLICATE_GROUPS_KEEP entries; the counts are exact. ``removed_count`` is the number of
    rows the supervisor removed; ``total_rows`` counts every non-blank data row.
    """

    path: Path
    delimiter: str
    encoding: str
    columns: tuple[str, ...]
    variable_columns: tuple[str, ...]
    total_rows: int
    accepted_count: int
    rejected: tuple[RejectedRow, ...]
    rejected_count: int
    duplicates: tuple[DuplicateGroup, ...]
    duplicate_count: int
    removed_count: int = 0


@dataclass(frozen=True)
class ImportOptions:
    """How to read the file: default country, duplicates policy and the supervisor's edits."""

    default_country: str = "US"
    drop_duplicates: bool = False
    fixes: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    removed_rows: frozenset[int] = frozenset()


# --------------------------------------------------------------------------------- the file


@dataclass(frozen=True, slots=True)
class _Layout:
    """What the header says: where the phone, name and flag are, which columns are variables."""

    delimiter: str
    columns: tuple[str, ...]
    phone_index: int
    name_index: int | None
    ignore_index: int | None
    variable_indexes: tuple[int, ...]

    @property
    def variable_columns(self) -> tuple[str, ...]:
        return tuple(self.columns[i] for i in self.variable_indexes)


class _ProgressReader(io.RawIOBase):
    """Raw file reader that reports progress and checks for cancel every ~64 KB read."""

    def __init__(
        self,
        raw: io.FileIO,
        total: int,
        progress: ProgressCallback | None,
        cancel: CancelCheck | None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self.total = total
        self.position = 0
        self._reported = -PROGRESS_EVERY_BYTES  # the first read reports
        self._progress = progress
        self._cancel = cancel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer) or 0
        self.position += count
        if count and self.position - self._reported >= PROGRESS_EVERY_BYTES:
            self._reported = self.position
            if self._cancel is not None and self._cancel():
                raise ImportCancelled("The import was cancelled.")
            if self._progress is not None:
                self._progress(self.position, self.total)
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


def _check_path(path: str | os.PathLike[str]) -> tuple[Path, int]:
    """Whole-file checks that need no reading: extension, existence, size."""
    file_path = Path(path)
    if file_path.suffix.lower() != ".csv":
        raise CsvImportError(
            f"“{file_path.name}” is not a .csv file. Save the spreadsheet as CSV "
            "(Excel: Save As › CSV UTF-8) and choose that file."
        )
    try:
        stat = file_path.stat()
    except FileNotFoundError:
        raise CsvImportError(
            f"The file “{file_path}” does not exist; it may have been moved or renamed. "
            "Choose the file again."
        ) from None
    except OSError as exc:
        raise CsvImportError(
            f"The file “{file_path}” cannot be opened ({exc.strerror}). Check that you are "
            "allowed to read it and choose it again."
        ) from None
    if file_path.is_dir():
        raise CsvImportError(f"“{file_path}” is a folder, not a file. Choose a .csv file.")
    size = stat.st_size
    if size > MAX_FILE_BYTES:
        raise CsvImportError(
            f"The file is {math.ceil(size * 10 / (1024 * 1024)) / 10:.1f} MB; the limit is "
            "50 MB. Split it into smaller files and create one batch call per file."
        )
    if size == 0:
        raise CsvImportError(
            "The file is empty. The first row must be a header with a phone_number column; "
            "use Download template for an example."
        )
    return file_path, size


def _detect_encoding(start: bytes) -> tuple[str, int]:
    """Pick the codec from the first bytes; return (codec name, length of the BOM)."""
    if start.startswith(codecs.BOM_UTF32_LE) or start.startswith(codecs.BOM_UTF32_BE):
        raise CsvImportError(f"The file is UTF-32 text, which is not supported. {_SAVE_AS_HINT}")
    if start.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", len(codecs.BOM_UTF8)
    if start.startswith(codecs.BOM_UTF16_LE) or start.startswith(codecs.BOM_UTF16_BE):
        return "utf-16", 2
    if start.startswith(b"PK\x03\x04"):
        raise CsvImportError(
            f"This is an Excel workbook (or another zip file), not a CSV file. {_SAVE_AS_HINT}"
        )
    if b"\x00" in start:
        raise CsvImportError(
            "The file is not UTF-8 text (it contains zero bytes, as UTF-16 text without a "
            f"byte order mark does). {_SAVE_AS_HINT}"
        )
    return "utf-8", 0


def _decode_error(path: Path, encoding: str, delimiter: str) -> CsvImportError:
    """Find the first undecodable byte and the spreadsheet row it is on (error path only)."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        prefix = exc.object[: exc.start].decode(encoding, errors="replace")
        bad = exc.object[exc.start : exc.start + 1]
        # The sentinel makes the record that holds the bad byte count even when it is empty.
        rows = csv.reader(io.StringIO(prefix + "x", newline=""), delimiter=delimiter)
        row = sum(1 for _ in rows)
        where = f"byte 0x{bad.hex()} at row {row}" if bad else f"it ends mid-character, row {row}"
    else:  # pragma: no cover - the reader and bytes.decode disagree: still refuse clearly
        where = "undecodable text"
    name = "UTF-16" if encoding == "utf-16" else "UTF-8"
    return CsvImportError(f"The file is not {name} text ({where}). {_SAVE_AS_HINT}")


def _split_header(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def _is_phone_header(name: str) -> bool:
    return name.strip().casefold() in _PHONE_ALIASES


def _detect_delimiter(header_line: str) -> str:
    """The one of comma, semicolon and tab that appears in the header and yields a phone column."""
    line = header_line.rstrip("\r\n")
    present = [d for d in _DELIMITERS if d in line]
    with_phone = [d for d in present if any(map(_is_phone_header, _split_header(line, d)))]
    if len(with_phone) == 1:
        return with_phone[0]
    if len(with_phone) > 1:
        names = " and ".join(_DELIMITER_NAMES[d] for d in with_phone)
        raise CsvImportError(
            f"The header row can be read with {names} as separator, so the columns are "
            "ambiguous. Use only one kind of separator in the header row."
        )
    if not present and _is_phone_header(line):
        return ","  # a one-column file
    found = _split_header(line, present[0]) if present else [line]
    shown = ", ".join(repr(name.strip()) for name in found[:10] if name.strip()) or "nothing"
    raise CsvImportError(
        "The file has no phone number column. The first row must be a header that names a "
        f"column phone_number (or phoneNumber or phone); it contains {shown}. "
        "Use Download template for an example."
    )


def _build_layout(header: list[str], delimiter: str) -> _Layout:
    columns = []
    for index, raw_name in enumerate(header):
        name = raw_name.strip().lstrip("\ufeff").strip()
        columns.append(name or f"column_{index + 1}")
    seen: dict[str, str] = {}
    for name in columns:
        key = name.casefold()
        if key in seen:
            raise CsvImportError(
                f"The header row has the column name “{name}” twice (“{seen[key]}” and "
                f"“{name}”). Rename or delete one of the columns."
            )
        seen[key] = name
    folded = [name.casefold() for name in columns]
    phones = [i for i, name in enumerate(folded) if name in _PHONE_ALIASES]
    if len(phones) > 1:
        both = " and ".join(f"“{columns[i]}”" for i in phones)
        raise CsvImportError(
            f"The header row has more than one phone column ({both}). Keep one and rename the "
            "others."
        )
    if not phones:  # the header line had a phone column but the full record does not
        raise CsvImportError(
            "The file has no phone number column. The first row must be a header that names "
            "a column phone_number (or phoneNumber or phone)."
        )
    name_index = folded.index(_NAME_ALIAS) if _NAME_ALIAS in folded else None
    ignore_index = folded.index(_IGNORE_ALIAS) if _IGNORE_ALIAS in folded else None
    special = {phones[0], name_index, ignore_index}
    variables = tuple(i for i in range(len(columns)) if i not in special)
    return _Layout(delimiter, tuple(columns), phones[0], name_index, ignore_index, variables)


@dataclass
class _OpenFile:
    path: Path
    size: int
    encoding: str
    layout: _Layout
    records: Iterator[list[str]]
    text: io.TextIOWrapper


def _open_csv(
    path: str | os.PathLike[str],
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> _OpenFile:
    """Check the file, detect encoding and delimiter, read the header; return a row iterator."""
    file_path, size = _check_path(path)
    try:
        raw = io.FileIO(file_path, "r")
    except OSError as exc:
        raise CsvImportError(
            f"The file “{file_path}” cannot be opened ({exc.strerror}). Check that you are "
            "allowed to read it and choose it again."
        ) from None
    start = raw.read(4096) or b""
    raw.seek(0)
    try:
        encoding, _ = _detect_encoding(start)
    except CsvImportError:
        raw.close()
        raise
    reader = _ProgressReader(raw, size, progress, cancel)
    buffered = io.BufferedReader(reader, buffer_size=PROGRESS_EVERY_BYTES)
    text = io.TextIOWrapper(buffered, encoding=encoding, errors="strict", newline="")
    text._CHUNK_SIZE = PROGRESS_EVERY_BYTES  # type: ignore[attr-defined]  # fewer, larger reads
    try:
        try:
            header_line = text.readline()
        except UnicodeDecodeError:
            raise _decode_error(file_path, encoding, ",") from None
        if not header_line.strip():
            raise CsvImportError(
                "The first row of the file is empty. The first row must be a header with a "
                "phone_number column; use Download template for an example."
            )
        delimiter = _detect_delimiter(header_line)
        # strict: a quote still open at the end of the file is an error, not a swallowed tail.
        records = csv.reader(itertools.chain([header_line], text), delimiter=delimiter, strict=True)
        header = next(records)
        layout = _build_layout(header, delimiter)
    except BaseException:
        text.close()
        raise
    logger.info(
        "Reading %s: %d bytes, %s, %s-separated, %d columns",
        file_path.name,
        size,
        encoding,
        _DELIMITER_NAMES[delimiter],
        len(layout.columns),
    )
    return _OpenFile(file_path, size, encoding, layout, records, text)


# --------------------------------------------------------------------------------- the rows


def _parse_flag(value: str) -> bool | None:
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


def _values_by_column(columns: tuple[str, ...], fields: list[str]) -> dict[str, str]:
    """The raw row keyed by header; extra fields of a too-long row get column_N keys."""
    values = dict(zip(columns, fields, strict=False))
    for index in range(len(columns), len(fields)):
        values.setdefault(f"column_{index + 1}", fields[index])
    return values


def _ragged_reason(count: int, expected: int, fields: list[str]) -> str:
    noun = "value" if count == 1 else "values"
    reason = f"has {count} {noun} but the header has {expected} columns"
    if any("\n" in f or "\r" in f for f in fields):
        reason += (
            '; a value contains a line break, so a double quote (") may be missing its '
            "closing quote"
        )
    elif count > expected:
        reason += "; a value may contain an unquoted separator"
    return reason


NAME_MAX_CHARS = 200
_SWALLOWED_REASON = (
    "a value runs over several lines and a following line looks like another row, so a "
    'double quote (") is probably missing its closing quote; fix the quote and load the file again'
)


def _swallowed_rows(fields: list[str], delimiter: str) -> bool:
    """True when a quoted value spans lines that look like rows of their own: the mark of
    an opening quote whose closing quote is missing (the rows would be lost silently)."""
    for value in fields:
        if "\n" in value or "\r" in value:
            for line in value.splitlines()[1:]:
                stripped = line.strip()
                if delimiter in stripped or (stripped[:1] in "+0123456789" and stripped):
                    return True
    return False


def _name_problem(name: str | None) -> str | None:
    if name is not None and len(name) > NAME_MAX_CHARS:
        return f"the name is {len(name)} characters long; at most {NAME_MAX_CHARS} are kept"
    return None


def _check_row(
    row_number: int,
    phone_raw: str,
    name_raw: str | None,
    flag_raw: str | None,
    variables: dict[str, str],
    default_country: str,
    values: Callable[[], dict[str, str]],
) -> RecipientRow | RejectedRow:
    """Validate one row's cells; ``values`` builds the raw row only when it is rejected."""
    ignore = False
    if flag_raw is not None:
        flag = _parse_flag(flag_raw)
        if flag is None:
            return RejectedRow(
                row_number,
                phone_raw,
                f"ignoreE164Validation must be true or false (yes/no, 1/0 also work), "
                f"not “{flag_raw.strip()}”",
                values(),
            )
        ignore = flag
    try:
        phone = normalize_phone(phone_raw, default_country, ignore)
    except PhoneError as exc:
        return RejectedRow(row_number, phone_raw, exc.reason, values())
    name = (name_raw.strip() or None) if name_raw is not None else None
    problem = _name_problem(name)
    if problem:
        return RejectedRow(row_number, phone_raw, problem, values())
    return RecipientRow(row_number, phone, name, variables, ignore)


def _roles(keys: Iterable[str]) -> tuple[str | None, str | None, str | None]:
    """Which keys of an edited row are the phone, name and ignoreE164Validation."""
    phone = name = flag = None
    for key in keys:
        folded = key.strip().casefold()
        if folded in _PHONE_ALIASES and phone is None:
            phone = key
        elif folded == _NAME_ALIAS and name is None:
            name = key
        elif folded == _IGNORE_ALIAS and flag is None:
            flag = key
    return phone, name, flag


def validate_fix(
    values: Mapping[str, str], options: ImportOptions, *, row_number: int = 0
) -> RecipientRow | RejectedRow:
    """Re-check one row the supervisor edited in the validation view.

    ``values`` is keyed by header name (as in ``RejectedRow.values``); the phone may be under
    any of the phone column names. Every key that is not phone, name or ignoreE164Validation
    becomes a variable, as in the file.
    """
    phone_key, name_key, flag_key = _roles(values)
    plain = {str(k): "" if v is None else str(v) for k, v in values.items()}
    if phone_key is None:
        return RejectedRow(row_number, "", "the phone number is empty", plain)
    special = {phone_key, name_key, flag_key}
    variables = {k.strip(): v for k, v in plain.items() if k not in special}
    return _check_row(
        row_number,
        plain[phone_key],
        plain[name_key] if name_key is not None else None,
        plain[flag_key] if flag_key is not None else None,
        variables,
        options.default_country,
        lambda: plain,
    )


def _resolve_fix(layout: _Layout, fix: Mapping[str, str]) -> dict[int, str]:
    """Map a fix's keys (header names, or phone_number & co.) to column indexes."""
    by_name = {name: i for i, name in enumerate(layout.columns)}
    by_folded = {name.casefold(): i for i, name in enumerate(layout.columns)}
    resolved: dict[int, str] = {}
    for key, value in fix.items():
        folded = key.strip().casefold()
        index = by_name.get(key, by_folded.get(folded))
        if index is None and folded in _PHONE_ALIASES:
            index = layout.phone_index
        if index is None:
            logger.debug("Ignoring a fix for unknown column %r", key)
            continue
        resolved[index] = "" if value is None else str(value)
    return resolved


def _rows(opened: _OpenFile, options: ImportOptions) -> Iterator[RecipientRow | RejectedRow | None]:
    """Validate every data row; yields None for a row the supervisor removed.

    Blank rows are skipped without a trace. This is the hot loop of a million-row import, so
    it avoids per-row allocations it does not need.
    """
    layout = opened.layout
    columns = layout.columns
    width = len(columns)
    phone_index = layout.phone_index
    name_index = layout.name_index
    flag_index = layout.ignore_index
    variables_of = _variables_getter(columns, layout.variable_indexes)
    country = options.default_country
    fixes = options.fixes
    removed = options.removed_rows
    normalize = normalize_phone
    row_number = 1
    records = opened.records
    try:
        for fields in records:
            row_number += 1
            if row_number in removed:
                if fields and any(f.strip() for f in fields):
                    yield None
                continue
            fixed = row_number in fixes
            if fixed:
                if not fields:
                    continue
                fields = list(fields[:width]) + [""] * (width - len(fields))
                for index, value in _resolve_fix(layout, fixes[row_number]).items():
                    fields[index] = value
            elif len(fields) != width:
                if not any(f.strip() for f in fields):
                    continue
                yield RejectedRow(
                    row_number,
                    fields[phone_index] if phone_index < len(fields) else "",
                    _ragged_reason(len(fields), width, fields),
                    _values_by_column(columns, fields),
                )
                continue
            phone_raw = fields[phone_index]
            if (not phone_raw or phone_raw.isspace()) and not any(f.strip() for f in fields):
                continue
            if not fixed and _swallowed_rows(fields, layout.delimiter):
                yield RejectedRow(
                    row_number,
                    phone_raw,
                    _SWALLOWED_REASON,
                    dict(zip(columns, fields, strict=True)),
                )
                continue
            if flag_index is not None or fixed:
                yield _check_row(
                    row_number,
                    phone_raw,
                    fields[name_index] if name_index is not None else None,
                    fields[flag_index] if flag_index is not None else None,
                    variables_of(fields),
                    country,
                    lambda f=fields: dict(zip(columns, f, strict=True)),  # type: ignore[misc]
                )
                continue
            # The common case, inlined: no flag column, no fix.
            try:
                phone = normalize(phone_raw, country)
            except PhoneError as exc:
                yield RejectedRow(
                    row_number,
                    phone_raw,
                    exc.reason,
                    dict(zip(columns, fields, strict=True)),
                )
                continue
            name = (fields[name_index].strip() or None) if name_index is not None else None
            if name is not None and len(name) > NAME_MAX_CHARS:
                yield RejectedRow(
                    row_number,
                    phone_raw,
                    _name_problem(name) or "",
                    dict(zip(columns, fields, strict=True)),
                )
                continue
            yield RecipientRow(row_number, phone, name, variables_of(fields), False)
    except UnicodeDecodeError:
        raise _decode_error(opened.path, opened.encoding, layout.delimiter) from None
    except csv.Error as exc:
        raise CsvImportError(
            f"Row {row_number + 1} cannot be read ({exc}). Check that row for a double quote "
            '(") without its closing quote.'
        ) from None


def _variables_getter(
    columns: tuple[str, ...], indexes: tuple[int, ...]
) -> Callable[[list[str]], dict[str, str]]:
    """Build the per-row variables dict as cheaply as the column count allows."""
    names = tuple(columns[i] for i in indexes)
    if not names:
        return lambda fields: {}
    if len(names) == 1:
        name, index = names[0], indexes[0]
        return lambda fields: {name: fields[index]}
    pick = operator.itemgetter(*indexes)
    return lambda fields: dict(zip(names, pick(fields), strict=True))


def _duplicate_key(phone: str) -> int:
    """A compact key for the seen-numbers set; the leading 1 keeps leading zeros distinct."""
    return int("1" + phone[1:])


# ------------------------------------------------------------------------------ public API


def _checked(options: ImportOptions | None) -> ImportOptions:
    options = options or ImportOptions()
    if not is_supported_country(options.default_country):
        raise CsvImportError(
            f"The default country “{options.default_country}” is not known, so national "
            "numbers cannot be read. Choose a country in Settings."
        )
    return options


def scan(
    path: str | os.PathLike[str],
    options: ImportOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> CsvReport:
    """Read the whole file once and report what an import would do.

    Raises CsvImportError for a whole-file problem and ImportCancelled on cancel. A file with a
    header and no valid rows is reported, not refused; see ``require_recipients``.
    """
    options = _checked(options)
    opened = _open_csv(path, progress, cancel)
    builder = _ReportBuilder(options.drop_duplicates)
    with opened.text:
        for item in _rows(opened, options):
            builder.add(item)
    if progress is not None:
        progress(opened.size, opened.size)
    return builder.report(opened)


class _ReportBuilder:
    """What a pass over the rows found: counts, the first rejected rows, duplicates."""

    def __init__(self, drop_duplicates: bool) -> None:
        self.total = self.accepted = self.rejected_count = 0
        self.removed_count = self.duplicate_count = 0
        self.rejected: list[RejectedRow] = []
        self.seen: set[int] = set()
        # Accepted numbers in file order; only read back to find the first row of duplicates.
        self.keys = array("Q")
        self.key_rows = array("L")
        self.later_rows: dict[int, list[int]] = {}
        self.phone_of: dict[int, str] = {}
        self.drop = drop_duplicates

    def add(self, item: RecipientRow | RejectedRow | None) -> bool:
        """Count one row; True when it is a recipient to store."""
        self.total += 1
        if item is None:
            self.removed_count += 1
            return False
        if type(item) is RecipientRow:
            key = _duplicate_key(item.phone_number)
            if key in self.seen:
                self.duplicate_count += 1
                rows = self.later_rows.get(key)
                if rows is not None:
                    rows.append(item.row_number)
                elif len(self.later_rows) < DUPLICATE_GROUPS_KEEP:
                    self.later_rows[key] = [item.row_number]
                    self.phone_of[key] = item.phone_number
                if self.drop:
                    return False
            else:
                self.seen.add(key)
                self.keys.append(key)
                self.key_rows.append(item.row_number)
            self.accepted += 1
            return True
        self.rejected_count += 1
        if len(self.rejected) < REJECTED_KEEP:
            self.rejected.append(item)  # type: ignore[arg-type]
        return False

    def report(self, opened: _OpenFile) -> CsvReport:
        self.seen = set()
        duplicates = _duplicate_groups(self.keys, self.key_rows, self.later_rows, self.phone_of)
        layout = opened.layout
        logger.info(
            "Scanned %s: %d rows, %d accepted, %d rejected, %d duplicates, %d removed",
            opened.path.name,
            self.total,
            self.accepted,
            self.rejected_count,
            self.duplicate_count,
            self.removed_count,
        )
        return CsvReport(
            path=opened.path,
            delimiter=layout.delimiter,
            encoding=opened.encoding,
            columns=layout.columns,
            variable_columns=layout.variable_columns,
            total_rows=self.total,
            accepted_count=self.accepted,
            rejected=tuple(self.rejected),
            rejected_count=self.rejected_count,
            duplicates=duplicates,
            duplicate_count=self.duplicate_count,
            removed_count=self.removed_count,
        )


class CheckedImport:
    """One pass over a file that both yields the recipients to store and builds the same
    report as `scan`, so the command line validates each row once (the report is ready
    once the chunks are exhausted: `report`)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        options: ImportOptions | None = None,
        chunk_size: int = 5000,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> None:
        self.options = _checked(options)
        self._opened = _open_csv(path, progress, cancel)
        self._chunk_size = chunk_size
        self._progress = progress
        self.report: CsvReport | None = None

    def chunks(self) -> Iterator[list[RecipientRow]]:
        opened = self._opened
        builder = _ReportBuilder(self.options.drop_duplicates)
        chunk: list[RecipientRow] = []
        with opened.text:
            for item in _rows(opened, self.options):
                if builder.add(item):
                    chunk.append(item)  # type: ignore[arg-type]
                    if len(chunk) >= self._chunk_size:
                        yield chunk
                        chunk = []
        if chunk:
            yield chunk
        if self._progress is not None:
            self._progress(opened.size, opened.size)
        self.report = builder.report(opened)


def _duplicate_groups(
    keys: array[int],
    key_rows: array[int],
    later_rows: dict[int, list[int]],
    phone_of: dict[int, str],
) -> tuple[DuplicateGroup, ...]:
    if not later_rows:
        return ()
    first_row: dict[int, int] = {}
    for key, row in zip(keys, key_rows, strict=True):
        if key in later_rows and key not in first_row:
            first_row[key] = row
    groups = [
        DuplicateGroup(phone_of[key], (first_row[key], *rows)) for key, rows in later_rows.items()
    ]
    groups.sort(key=lambda group: group.row_numbers[0])
    return tuple(groups)


def iter_recipient_chunks(
    path: str | os.PathLike[str],
    options: ImportOptions | None = None,
    chunk_size: int = 5000,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Iterator[list[RecipientRow]]:
    """Stream the accepted rows in file order, ``chunk_size`` at a time.

    Fixes and removals from ``options`` are applied; rejected rows are skipped; with
    ``drop_duplicates`` only the first row of each number is kept. Raises CsvImportError or
    ImportCancelled (the file is closed either way).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    options = _checked(options)
    opened = _open_csv(path, progress, cancel)
    seen: set[int] | None = set() if options.drop_duplicates else None
    chunk: list[RecipientRow] = []
    count = 0
    with opened.text:
        for item in _rows(opened, options):
            if type(item) is not RecipientRow:
                continue
            if seen is not None:
                key = _duplicate_key(item.phone_number)
                if key in seen:
                    continue
                seen.add(key)
            chunk.append(item)
            if len(chunk) >= chunk_size:
                count += len(chunk)
                yield chunk
                chunk = []
    if chunk:
        count += len(chunk)
        yield chunk
    if progress is not None:
        progress(opened.size, opened.size)
    logger.info("Read %d recipients from %s", count, opened.path.name)


def iter_rows(
    path: str | os.PathLike[str],
    options: ImportOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Iterator[RecipientRow | RejectedRow]:
    """Every data row once, accepted or rejected, in file order (the do-not-call import reads
    a file in one pass with the same rules as a recipients file)."""
    options = _checked(options)
    opened = _open_csv(path, progress, cancel)
    with opened.text:
        for item in _rows(opened, options):
            if item is not None:
                yield item
    if progress is not None:
        progress(opened.size, opened.size)


def require_recipients(report: CsvReport) -> None:
    """Refuse to create a batch call from a report without a single valid recipient."""
    if report.accepted_count > 0:
        return
    if report.total_rows == 0:
        detail = "the file has a header but no data rows"
    elif report.rejected_count:
        detail = (
            f"all {report.rejected_count} rows were rejected; fix or remove them in the list, "
            "or correct the file"
        )
    else:
        detail = "every row was removed"
    raise CsvImportError(f"No valid recipients: {detail}. At least one is needed.")


TEMPLATE_COLUMNS = ("phone_number", "name", "appointment_date", "city")
TEMPLATE_ROWS = (
    ("+12025550143", "Ada Lovelace", "2030-05-14", "Washington"),
    ("+442079460958", "Alan Turing", "2030-05-15", "London"),
)


def write_template(path: str | os.PathLike[str]) -> None:
    """Write the sample CSV behind "Download template" (UTF-8 with BOM so Excel reads it)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".part")
    try:
        with open(tmp, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(TEMPLATE_COLUMNS)
            writer.writerows(TEMPLATE_ROWS)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CsvImportError(
            f"The template could not be saved to “{target}” ({exc.strerror}). Choose another "
            "folder or close the file if it is open in another program."
        ) from None
