#!/usr/bin/env bash
# Refresh constraints.txt: resolve requirements-dev.txt afresh (ignoring the old pins) in a throw-away
# virtualenv and write down every version pip chose. Run the tests (bash scripts/test.sh) before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
env=$(mktemp -d)
trap 'rm -rf "$env"' EXIT
python3 -m venv "$env"
grep -v -- '-c constraints.txt' requirements.txt > "$env/requirements.txt"
grep -v -- '-c constraints.txt' requirements-dev.txt > "$env/requirements-dev.txt"
"$env/bin/pip" install -q -r "$env/requirements-dev.txt"
{
  echo "# Every package, runtime and test, at the versions the suite was proven with (Python 3.11, Linux x86_64)."
  echo "# requirements*.txt use it through -c. Refresh: bash scripts/lock.sh  (then run bash scripts/test.sh)."
  "$env/bin/pip" freeze --exclude-editable | grep -v -E '^(pip|setuptools|wheel)=='
} > constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) packages pinned"
