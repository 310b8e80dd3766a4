"""Write recipients to CSV that Excel opens correctly and cannot run as formulas (SPEC §8).

A cell such as ``=HYPERLINK(...)`` in a recipient's name or variable would run when a
supervisor opens the export in a spreadsheet; such cells get a leading ``'`` so they show as
text. Phone numbers in E.164 and plain numbers are left alone: a supervisor must see
``+15551234567`` in the phone column, not ``'+15551234567``.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from app.models.sqlite_file import PRIVATE_FILE

logger = logging.getLogger(__name__)

__all__ = ["CsvExportError", "export_recipients", "neutralize_cell"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"\+[0-9]+")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class CsvExportError(Exception):
    """The export file could not be written; ``str()`` is the message for the supervisor."""


def neutralize_cell(value: object) -> str:
    """Return the text for one cell, with a leading ``'`` if a spreadsheet would run it."""
    text = "" if value is None else str(value)
    if not text.startswith(_FORMULA_STARTS):
        return text
    if _E164.fullmatch(text) or _PLAIN_NUMBER.fullmatch(text):
        return text
    return "'" + text


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, PRIVATE_FILE)


def export_recipients(
    rows: Iterable[Mapping[str, object]], columns: Sequence[str], path: str | os.PathLike[str]
) -> int:
    """Write ``rows`` (only ``columns``, in that order) to ``path``; return the row count.

    UTF-8 with a BOM so Excel shows accents and non-Latin names correctly. The file appears
    only when complete: a failure leaves no half-written export behind.
    """
    target = Path(path)
    partial = target.with_name(target.name + ".part")
    count = 0
    try:
        partial.unlink(missing_ok=True)  # a leftover would keep its old permissions
        # Recipients' numbers and names: readable by the user who exported them only.
        with open(partial, "w", encoding="utf-8-sig", newline="", opener=_private) as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow([neutralize_cell(name) for name in columns])
            for row in rows:
                writer.writerow([neutralize_cell(row.get(name)) for name in columns])
                count += 1
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise CsvExportError(
            f"The export could not be saved to “{target}” ({reason}). Close the file if it is "
            "open in a spreadsheet, or choose another folder, and export again."
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    logger.info("Exported %d recipients to %s", count, target.name)
    return count
