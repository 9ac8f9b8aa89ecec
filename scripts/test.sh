#!/usr/bin/env bash
# Install what the tests need, check lint and format, then run the tests. The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements-dev.txt
# The dashboard's browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
# The scale-out tests start their own redis-server (Debian's package) on a free port.
if ! command -v redis-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
fi
# The dashboard's Socket.IO client: the pinned npm package, copied to backend/static/vendor/ by postinstall.
if ! command -v npm >/dev/null 2>&1; then
  echo "scripts/test.sh: npm (Node.js) is needed for the dashboard's Socket.IO client (npm ci)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
# Lint and format (ruff), then imports only point down (import-linter), all configured in pyproject.toml; then the
# whole suite.
python3 -m ruff check .
python3 -m ruff format --check .
lint-imports --no-cache
python3 -m pytest -q "$@"
