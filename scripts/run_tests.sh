#!/usr/bin/env bash
# The test suite: installs what it needs, prepares the offline data, runs pytest.
# Extra arguments go to pytest (e.g. scripts/run_tests.sh -k optim).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
"$PY" -m pytest "$@"
