#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to the whole test suite: lint, types, unit, vagrant and VM tests.
# The VM tests start their own libvirtd inside a network namespace (tests/integration/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
# Root installs packages and starts libvirtd. Another user goes through sudo where Debian has it.
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
  exec sudo -E bash "$PWD/scripts/test.sh" "$@"
fi
scripts/setup-host --test
.venv/bin/ruff check labkit tests bench
.venv/bin/ruff format --check labkit tests bench
.venv/bin/mypy
.venv/bin/mypy bench  # the benchmarks use the library's API: a change there must not leave them broken
# The layers and their contracts (pyproject.toml [tool.importlinter]): a new import circle fails here.
.venv/bin/lint-imports
# The VM tests run inside a network namespace without a route to the apt mirror: build the box first.
.venv/bin/labkit box build
set +e
# -rs: every skip prints its reason; LABKIT_REQUIRE_VM: a run in which every vm test was skipped (not root,
# no libvirtd) fails instead of passing green without having booted a VM (tests/conftest.py).
LABKIT_REQUIRE_VM=1 .venv/bin/pytest -p no:cacheprovider -rs --durations=30 --timeout=3600 "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
