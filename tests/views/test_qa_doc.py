"""docs/qa.md shows real code: every block marked `<!-- source: path -->` is copied
verbatim from that file, every block marked `<!-- file: path -->` is that whole file (the
example QA suite, which tests/test_qa_suite.py runs), so the guide cannot drift from what
the tests do; and it describes every fixture of the `batchcalls` pytest plugin."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "qa.md"
BLOCK = re.compile(r"<!-- source: (?P<path>[^ ]+) -->\n```python\n(?P<code>.*?)```", re.S)
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```[a-z]*\n(?P<code>.*?)```", re.S)
PLUGIN = ROOT / "app" / "testing" / "pytest_plugin.py"


def test_the_guides_code_is_the_tests_code():
    guide = GUIDE.read_text(encoding="utf-8")
    blocks = list(BLOCK.finditer(guide))
    assert len(blocks) >= 5
    for block in blocks:
        source = (ROOT / block["path"]).read_text(encoding="utf-8")
        # Blocks are shown dedented; compare line by line, ignoring indentation.
        assert _lines(block["code"]) in _lines(source), (
            f"docs/qa.md block no longer matches {block['path']}"
        )


def test_the_guide_shows_the_whole_example_suite():
    guide = GUIDE.read_text(encoding="utf-8")
    shown = {block["path"]: block["code"] for block in FILE_BLOCK.finditer(guide)}
    suite = ROOT / "examples" / "qa-suite"
    expected = {
        str(path.relative_to(ROOT)) for path in [*suite.glob("test_*.py"), suite / "pytest.ini"]
    }
    assert set(shown) == expected
    for path, code in shown.items():
        assert code == (ROOT / path).read_text(encoding="utf-8"), (
            f"docs/qa.md no longer shows {path} as it is"
        )


def plugin_fixtures() -> list[str]:
    tree = ast.parse(PLUGIN.read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
            "fixture" in ast.unparse(decorator) for decorator in node.decorator_list
        ):
            names.append(node.name)
    return names


def test_the_guide_describes_every_fixture_of_the_plugin():
    fixtures = plugin_fixtures()
    assert {"context", "seeded", "answers", "launch_app", "twilio_standin"} <= set(fixtures)
    guide = GUIDE.read_text(encoding="utf-8")
    section = guide[guide.index("## 2. The fixtures") : guide.index("## 3.")]
    internal = {"database_templates"}  # the session's template cache behind `context`
    missing = [n for n in fixtures if n not in internal and f"`{n}`" not in section]
    assert missing == [], f"fixtures not described in docs/qa.md section 2: {missing}"


def _lines(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines())
