"""The domain and the engine-free services never import Qt (STYLE.md: the layers)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import app.models
import app.services

ROOT = Path(__file__).resolve().parent.parent
#: The one services module that hosts the engine on a QThread.
QT_SERVICE_MODULES = {"app.services.engine_thread"}


def qt_free_modules() -> list[str]:
    names = [f"app.models.{m.name}" for m in pkgutil.iter_modules(app.models.__path__)]
    names += [
        f"app.services.{m.name}"
        for m in pkgutil.iter_modules(app.services.__path__)
        if f"app.services.{m.name}" not in QT_SERVICE_MODULES
    ]
    return sorted(names)


def test_domain_and_services_import_no_qt() -> None:
    modules = qt_free_modules()
    assert "app.models.status" in modules and "app.services.batch_calls" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "qt = {'PySide6', 'shiboken6', 'qasync'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in qt)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"Qt imported by the domain/services: {result.stdout}"


def test_models_import_nothing_from_upper_layers() -> None:
    for path in (ROOT / "app" / "models").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "app.services" not in text and "app.views" not in text, path.name
