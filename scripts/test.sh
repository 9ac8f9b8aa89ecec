#!/usr/bin/env bash
# Install what the tests need, then run them. The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements-dev.txt
python3 -m pytest -q "$@"
