#!/usr/bin/env bash
# Sets up a machine to run transship and its tests: Debian packages (registry server,
# skopeo, umoci, ...), a virtualenv in .venv, and transship installed into it.
# Idempotent: a second run only checks. Prints the venv's python path last.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/support/system.sh

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: transship needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  # System site packages are visible, so what the machine already has is not installed again.
  "$PYTHON" -m venv --system-site-packages "$VENV" >&2
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Reinstall (which rebuilds the native extension) only when what it is built from changed.
stamp="$VENV/.transship-installed"
inputs=$(cat pyproject.toml native/Cargo.toml native/Cargo.lock 2>/dev/null; find native/src -type f -print0 2>/dev/null | sort -z | xargs -0 cat 2>/dev/null)
wanted=$(printf '%s' "$inputs" | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]] || ! "$VENV/bin/python" -c 'import transship' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q -e '.[test]' >&2
  echo "$wanted" >"$stamp"
fi
echo "$VENV/bin/python"
