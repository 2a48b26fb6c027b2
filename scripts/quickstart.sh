#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running three-node lab.
set -euo pipefail
cd "$(dirname "$0")/.."
# Root installs packages and starts libvirtd. Another user goes through sudo where Debian has it.
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
  exec sudo -E bash "$PWD/scripts/quickstart.sh" "$@"
fi
scripts/setup-host
.venv/bin/labkit box build
.venv/bin/labkit up three-node "$@"
.venv/bin/labkit ssh node1 -- hostname
.venv/bin/labkit status
