#!/usr/bin/env bash
# Quickstart 1: set everything up, then run the main job end to end (scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(bash scripts/setup.sh)
exec "$python" scripts/demo.py
