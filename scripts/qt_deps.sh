#!/usr/bin/env bash
# Installs the system libraries Qt's platform plugins (offscreen, xcb) and fonts need on a
# bare Debian/Ubuntu machine. Does nothing when they are already there; names them when it
# cannot install (not root, no apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PKGS=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libfreetype6 libdbus-1-3 libglib2.0-0
      libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
      libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-randr0 libxrender1 libxi6
      libsm6 libice6 libx11-xcb1 fonts-dejavu-core)

missing_libs() {
  local qtdir
  qtdir=$("$PY" -c 'import os, PySide6; print(os.path.dirname(PySide6.__file__))')
  for lib in "$qtdir"/Qt/lib/libQt6Gui.so.6 "$qtdir"/Qt/lib/libQt6Widgets.so.6 \
             "$qtdir"/Qt/plugins/platforms/libqoffscreen.so; do
    [ -f "$lib" ] && ldd "$lib" 2>/dev/null | grep "not found" || true
  done
}

needs_fonts() { ! fc-list 2>/dev/null | grep -qi dejavu; }

if [ -z "$(missing_libs)" ] && ! needs_fonts; then
  exit 0
fi
echo "Qt needs system libraries: $(missing_libs | awk '{print $1}' | sort -u | tr '\n' ' ')"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${PKGS[@]}" fontconfig >/dev/null
elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
  sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends "${PKGS[@]}" fontconfig
else
  echo "Install these packages, then run make again: ${PKGS[*]}" >&2
  exit 1
fi
if [ -n "$(missing_libs)" ]; then
  echo "Still missing after install:" >&2; missing_libs >&2; exit 1
fi
