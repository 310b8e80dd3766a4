#!/usr/bin/env bash
# `make package`: the one-folder PyInstaller bundle (packaging/batchcalls.spec), with its
# desktop entry, icon and per-user installer, and a tarball of it, in dist/.
#   DIST=... WORK=... bash scripts/package.sh     (other output and work folders)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DIST=${DIST:-dist}
WORK=${WORK:-build}
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
  echo "PyInstaller is missing: $PY -m pip install -e '.[package]'" >&2
  exit 1
fi
version=$("$PY" -c "import app; print(app.__version__)")
started=$(date +%s)
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath "$WORK" \
  packaging/batchcalls.spec
bundle="$DIST/batchcalls"
cp packaging/batchcalls.desktop resources/batchcalls.svg packaging/install-user.sh "$bundle/"
tarball="$DIST/batchcalls-$version-linux-$(uname -m).tar.gz"
tar -C "$DIST" -czf "$tarball" batchcalls
echo "Built $bundle ($(du -sh "$bundle" | cut -f1)) and $tarball ($(du -sh "$tarball" | cut -f1)) in $(( $(date +%s) - started )) s."
