# Two commands matter: `make run` and `make test`. Everything else is their plumbing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit qt-deps postgres bench screenshots clean package

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,package]'
	touch $(STAMP)

## Qt's xcb/offscreen platform plugins need a few system libraries that a bare Debian lacks.
qt-deps:
	@bash scripts/qt_deps.sh

## Start the desktop application: simulation mode, local SQLite file.
run: $(STAMP) qt-deps
	$(PY) main.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

## The whole suite, headless, lint included; starts its own PostgreSQL when it can.
test: $(STAMP) qt-deps lint
	bash scripts/run_tests.sh

## The one-folder bundle (PyInstaller), its desktop entry and a tarball, in dist/.
package: $(STAMP)
	bash scripts/package.sh

bench: $(STAMP)
	$(PY) bench/import_bench.py

clean:
	rm -rf $(VENV) build dist *.egg-info
