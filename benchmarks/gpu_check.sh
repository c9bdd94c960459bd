#!/usr/bin/env bash
# On a machine with a CUDA GPU: the test suite on the GPU, the time of one 784-4096-4096-10
# epoch, and Fig. 2(d) at paper scale (BNN 4096-4096, m = 1.35, 6 pMNIST tasks x 40 epochs),
# printing the times and the final accuracies. Everything it writes goes under $OUT
# (default results/gpu_check). Run the README's set-up first (bash scripts/setup_env.sh).
#
#   bash benchmarks/gpu_check.sh              # all three parts
#   PARTS="bench fig2d" bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python  # made by scripts/setup_env.sh ($PYTHON there is the interpreter it starts from)
[ -x "$PY" ] || { echo "error: no $PY here: run bash scripts/setup_env.sh first" >&2; exit 1; }
OUT=${OUT:-results/gpu_check}
PARTS=${PARTS:-"tests bench fig2d"}
mkdir -p "$OUT"
"$PY" - <<'PYEOF'
import torch
if not torch.cuda.is_available():
    raise SystemExit("gpu_check.sh: no CUDA GPU is visible to torch "
                     f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PYEOF
for part in $PARTS; do
  start=$(date +%s)
  case $part in
    tests)  # every main.py runs with --device auto, i.e. on the GPU
      "$PY" -m pytest -q -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -5 ;;
    bench)
      "$PY" benchmarks/benchmark_epoch.py --hidden 512 4096 --device cuda --steps 600 \
        --test-sets 6 2>&1 | tee "$OUT/benchmark_epoch.log" ;;
    fig2d)
      "$PY" reproduce.py run fig2 --only bnn-m1.35 --seeds 1 --out "$OUT/runs" 2>&1 \
        | tee "$OUT/fig2d.log" | grep -v "^  " || true
      "$PY" reproduce.py summarize "$OUT/runs" fig2 --to "$OUT/summary" | tee "$OUT/fig2d_summary.md" ;;
    *) echo "unknown part $part (tests, bench, fig2d)"; exit 2 ;;
  esac
  echo "== $part: $(( $(date +%s) - start )) s"
done
