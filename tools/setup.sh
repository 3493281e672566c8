#!/usr/bin/env bash
# tools/setup.sh: install what Lode needs from Debian 12's packages, then
# configure and build it in ./build. Safe to run again: it installs only what
# is missing and rebuilds only what changed.
#
#   tools/setup.sh            install, configure, build
#   tools/setup.sh --deps     install only
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

# Package, and why Lode needs it (the README lists the same).
packages=(
  gcc                 # the C17 compiler
  meson               # the build system
  ninja-build         # runs the build
  pkg-config          # finds the libraries below
  libglib2.0-dev      # GLib, GIO, GObject
  libglib2.0-dev-bin  # glib-compile-resources and glib-compile-schemas
  libgtk-4-dev        # the interface (GTK 4.8)
  libgdal-dev         # reading and writing GeoTIFF rasters and vectors
  libsqlite3-dev      # the project store
  libjson-glib-dev    # manifests, class tables, checkpoint headers
  libzip-dev          # PyTorch checkpoint files are zip archives
  zlib1g-dev          # compressed masks in the store
  libopenblas-dev     # CPU matrix work for the models
  gettext             # translations
  desktop-file-utils  # tests validate the desktop file
  appstream           # tests validate the AppStream metainfo
  xvfb                # display tests run the window on a virtual screen
  xauth               # needed by xvfb-run
  fonts-dejavu-core   # text in the window under Xvfb
  adwaita-icon-theme  # the window's icons
  librsvg2-common     # draws the SVG icons
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "tools/setup.sh: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}"
fi

[ "${1:-}" = "--deps" ] && exit 0

# CUDA is optional: nvcc is looked for on PATH and in /usr/local/cuda.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

if [ ! -f build/build.ninja ]; then
  meson setup build
fi
ninja -C build
