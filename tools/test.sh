#!/usr/bin/env bash
# tools/test.sh: set up and build Lode, then run every test suite:
# unit, slow, display (on a virtual X screen) and gpu (skips without a device).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
tools/setup.sh

# The display suite needs a screen: use Xvfb unless one is already there.
run=()
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  run=(xvfb-run -a -s "-screen 0 1600x1000x24")
  export GDK_BACKEND=x11
fi
export GSK_RENDERER="${GSK_RENDERER:-cairo}"
"${run[@]}" meson test -C build --print-errorlogs --num-processes 2 "$@"
