#!/usr/bin/env bash
# tools/run.sh: set up and build Lode, write the demo data set on first run,
# and open the demo project. Extra arguments go to lode.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
tools/setup.sh

export GSETTINGS_SCHEMA_DIR="$here/build/data"
export LODE_UNINSTALLED=1
lode="$here/build/app/lode"
demo="$here/demo-data"
project="$demo/demo.lode"

if [ ! -f "$project" ]; then
  "$lode" demo "$demo"
fi
exec "$lode" "$project" "$@"
