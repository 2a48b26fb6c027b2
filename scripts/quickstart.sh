#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running three-node lab.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-host
.venv/bin/labkit box build
.venv/bin/labkit up three-node "$@"
.venv/bin/labkit ssh node1 -- hostname
.venv/bin/labkit status
