#!/usr/bin/env bash
# Quickstart 2: set everything up, then run the whole test suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
exec </dev/null  # nothing below may wait for input
python=$(bash scripts/setup.sh)
export PYTHONUNBUFFERED=1
status=0
"$python" -m pytest -q --timeout=900 "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "scripts/test.sh: pytest collected no tests" >&2
fi
exit "$status"
