"""docs/qa.md shows real code: every block marked `<!-- source: path -->` is copied
verbatim from that test file, so the guide cannot drift from what the tests do."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- source: (?P<path>[^ ]+) -->\n```python\n(?P<code>.*?)```", re.S)


def test_the_guides_code_is_the_tests_code():
    guide = (ROOT / "docs" / "qa.md").read_text(encoding="utf-8")
    blocks = list(BLOCK.finditer(guide))
    assert len(blocks) >= 5
    for block in blocks:
        source = (ROOT / block["path"]).read_text(encoding="utf-8")
        # Blocks are shown dedented; compare line by line, ignoring indentation.
        assert _lines(block["code"]) in _lines(source), (
            f"docs/qa.md block no longer matches {block['path']}"
        )


def _lines(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines())
