#!/usr/bin/env bash
# The test command: install, static checks, Chromium for the browser tests, the suite on SQLite,
# then the tests that reach the database or Redis again on PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --dev
export PATH="$PWD/.venv/bin:$PATH"

echo "== static checks: ruff, mypy (strict), import-linter" >&2
ruff check src tests bench
ruff format --check src tests bench
mypy
lint-imports --no-cache >/dev/null

if browser=$(scripts/browser.sh); then
  eval "$browser"
elif [ -n "${CI:-}" ]; then
  echo "Chromium could not be installed; CI runs the browser tests" >&2
  exit 1
else
  echo "Chromium not available here: the browser tests will be skipped (CI runs them)" >&2
fi

# Two workers (pytest-xdist): the tests wait on servers, subprocesses and browsers more than they
# compute; each worker has its own SQLite files, PostgreSQL database and Redis database number.
WORKERS=(-n "${DIZUO_TEST_WORKERS:-2}" --dist loadgroup)

echo "== test suite on SQLite" >&2
pytest "${WORKERS[@]}" "$@"

if services=$(scripts/services.sh); then
  eval "$services"
  echo "== tests that reach PostgreSQL ($DIZUO_TEST_DATABASE_URL) and Redis" >&2
  pytest "${WORKERS[@]}" "$@"
elif [ -n "${CI:-}" ]; then
  echo "PostgreSQL could not be started; CI needs both databases green" >&2
  exit 1
else
  echo "PostgreSQL not available here: skipped the second run (CI runs it)" >&2
fi
