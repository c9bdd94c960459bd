#!/usr/bin/env bash
# The demo: a reduced Fig. 2 on this machine (CPU or GPU). A 784-512-512-10 BNN learns two
# permuted-MNIST tasks, 10 epochs each, once without (m = 0) and once with metaplasticity
# (m = 1.35); writes both runs' CSVs and a PNG of every task's test accuracy against epoch.
# Rerunning it continues an interrupted run and redraws the figure. Extra arguments go to
# continual_learning/main.py (e.g. --device cpu, --no-progress).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
OUT="${DEMO_OUT:-results/demo}"
for META in 0.0 1.35; do
  RUN="$OUT/meta-$META"
  RESUME=()
  [ -f "$RUN/checkpoint.pt" ] && RESUME=(--resume)
  echo "== m = $META -> $RUN"
  "$PY" continual_learning/main.py --net bnn --hidden-layers 512 512 --lr 0.005 --decay 1e-7 \
    --meta "$META" --epochs-per-task 10 --task-sequence pMNIST pMNIST --seed 0 \
    --out-dir "$RUN" ${RESUME[@]+"${RESUME[@]}"} "$@"
done
"$PY" plot_figures.py accuracy "$OUT/meta-0.0" "$OUT/meta-1.35" --out "$OUT/demo_accuracy.png"
"$PY" - "$OUT" <<'PYEOF'
import sys
from pathlib import Path
from metaplastic.runs.records import read_records
out = Path(sys.argv[1])
from metaplastic.runs.records import load_config
for meta in ("0.0", "1.35"):
    last = read_records(out / f"meta-{meta}" / "metrics.csv").iloc[-1]
    implementation = (load_config(out / f"meta-{meta}").get("environment") or {}).get(
        "implementation") or "?"
    print(f"m = {meta:>4}: after task 2, task 1 test accuracy {last.acc_test_tsk_1:.2f} %, "
          f"task 2 {last.acc_test_tsk_2:.2f} %  [--impl {implementation.split(':')[0]}]")
print(f"figure: {out / 'demo_accuracy.png'}")
PYEOF
