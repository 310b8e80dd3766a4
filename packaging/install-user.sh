#!/bin/sh
# Install Batch Calls for the current user only (no root): a desktop entry and icon that
# point at this folder, and `batchcalls` on the PATH through ~/.local/bin. Run it from the
# unpacked folder; run it again after moving the folder. `--uninstall` removes them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
apps="$data/applications"
icons="$data/icons/hicolor/scalable/apps"
bin="$HOME/.local/bin"
if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$apps/batchcalls.desktop" "$icons/batchcalls.svg"
  [ -L "$bin/batchcalls" ] && rm -f "$bin/batchcalls"
  echo "Removed the Batch Calls desktop entry (the data folder is kept)."
  exit 0
fi
mkdir -p "$apps" "$icons" "$bin"
cp "$here/batchcalls.svg" "$icons/batchcalls.svg"
sed -e "s|^Exec=.*|Exec=\"$here/batchcalls\"|" -e "s|^Icon=.*|Icon=$icons/batchcalls.svg|" \
  "$here/batchcalls.desktop" > "$apps/batchcalls.desktop"
ln -sf "$here/batchcalls" "$bin/batchcalls"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$apps" || true
echo "Batch Calls is in the applications menu; \"batchcalls\" is in $bin."
