#!/usr/bin/env bash
# tools/test-sanitize.sh: build Lode with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-sanitize/ and run the unit suite there,
# so memory errors, leaks and undefined behaviour in the parsers and kernels
# fail the run. CI runs it after tools/test.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
tools/setup.sh --deps

if [ ! -f build-sanitize/build.ninja ]; then
  meson setup build-sanitize -Db_sanitize=address,undefined -Dbuildtype=debug \
    -Dcuda=disabled -Ddisplay_tests=false
fi
ninja -C build-sanitize
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
meson test -C build-sanitize --suite unit --print-errorlogs --num-processes 2 \
  --timeout-multiplier 4 "$@"
