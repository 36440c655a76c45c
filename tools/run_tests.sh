#!/usr/bin/env bash
# Install mimlab with its tested dependency pins and the test extras into .venv, then run the test suite.
# Usage: bash tools/run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt -r requirements/tests.txt -r requirements/trackers.txt
.venv/bin/python -m pip install -q --no-deps -e .
.venv/bin/python -m pytest "$@"
