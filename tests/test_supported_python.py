"""The README's "Supported Python" sentence is what the package metadata, the tools and the
interpreter running this suite say."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def readme_versions() -> list[str]:
    """The minor versions the README names after "Supported Python: CPython"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"\*\*Supported Python: CPython ([0-9., and]+)\*\*", readme)
    assert match, 'README.md has no "**Supported Python: CPython X.Y**" sentence'
    return re.findall(r"3\.\d+", match.group(1))


def test_readme_names_supported_versions_and_requires_python_allows_exactly_those() -> None:
    named = readme_versions()
    assert named, "the README names no Python version"
    allowed = SpecifierSet(PYPROJECT["project"]["requires-python"])
    for minor in range(8, 20):
        version = f"3.{minor}"
        in_range = Version(f"{version}.0") in allowed and Version(f"{version}.99") in allowed
        assert in_range == (version in named), (
            f"requires-python {allowed} and the README ({', '.join(named)}) disagree on {version}"
        )


def test_classifiers_list_the_readme_versions() -> None:
    classifiers = PYPROJECT["project"]["classifiers"]
    listed = sorted(
        c.rsplit(" :: ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert listed == sorted(readme_versions())


def test_tools_target_the_oldest_supported_version() -> None:
    oldest = min(readme_versions(), key=lambda v: int(v.split(".")[1]))
    assert PYPROJECT["tool"]["mypy"]["python_version"] == oldest
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + oldest.replace(".", "")


def test_the_suite_runs_on_a_supported_interpreter() -> None:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert sys.implementation.name == "cpython"
    assert running in readme_versions()
    assert Version(".".join(map(str, sys.version_info[:3]))) in SpecifierSet(
        PYPROJECT["project"]["requires-python"]
    )
