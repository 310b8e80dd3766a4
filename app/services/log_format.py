"""Log lines for people (text) or for a log collector (one JSON object a line), as the
headless worker's `--log-format` asks. Messages are the loggers' own: they mask phone
numbers and never hold a secret, in either format."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLinesFormatter(logging.Formatter):
    """`{"time": ISO 8601 UTC, "level", "logger", "message"[, "exception"]}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def formatter(json_lines: bool = False) -> logging.Formatter:
    return JsonLinesFormatter() if json_lines else logging.Formatter(TEXT_FORMAT)


def configure_worker_logging(json_lines: bool = False) -> None:
    """INFO and above on stderr, when nobody configured logging (the command line may
    have, with its own -v level and --log-format)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(json_lines))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
