#!/usr/bin/env bash
# The runs of docs/REPRODUCTION.md, at cpu scale (hidden layers <= 512, published epochs), two
# at once with one thread each. Rerunning this script continues: finished runs are skipped,
# interrupted ones resume from their checkpoints (checkpoints are not committed, so a run cut
# by the end of a session starts again unless its folder is kept). Then the summaries, and the
# tables of docs/REPRODUCTION.md refilled from them.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python  # made by scripts/setup_env.sh ($PYTHON there is the interpreter it starts from)
[ -x "$PY" ] || { echo "error: no $PY here: run bash scripts/setup_env.sh first" >&2; exit 1; }
run() { "$PY" reproduce.py run "$@" --scale cpu --jobs 2 --out docs/reproduction; }
run fig4ab --seeds 1                                   # Fig. 4(a, b): m = 0 and m = 1.5
run fig4c fig4d --seeds 1                              # Fig. 4(c, d): MNIST then USPS
run fig2 --only bnn-m0.0 bnn-m1.35 --seeds 3           # Fig. 2 (and Table 1's first rows)
run table1 --seeds 1                                   # Table 1: EWC, random consolidation
run fig3 --seeds 1                                     # Fig. 3 at width 512: 4 methods
# The two published versions (docs/REPRODUCTION.md, "The two published versions"): three seeds of
# Fig. 4(a, b) and of Fig. 2's m = 0 / 1.35 under each
run fig4ab --seeds 3                                   # 2023 head (the default)
run fig4ab --seeds 3 --published-version v1.0.0        # tag v1.0.0: gamma ~ U(0, 1), running stats
run fig2 --only bnn-m0.0 bnn-m1.35 --seeds 3 --published-version v1.0.0
run fig2-bn --seeds 3                                  # the BatchNorm question: running stats, gamma = 1
# The remaining rows over three seeds, in this order
run table1 --only ewc random --seeds 3
run fig2 --seeds 3                                     # m = 0.5, 1.0 and the DNN rows
run supp6 --seeds 3
run fig5ce --seeds 3
run stream-fmnist --seeds 3
run fig2gh --seeds 3                                   # Fig. 2(g, h): hidden weights saved
run fig3 --seeds 3
# Fig. 1(a) / 4(a, b) at the paper's width (4096): one run at a time with both threads; on the
# 2-core AMX Xeon with --impl auto they took 2h16m (m = 0) and 3h29m (m = 1.5) of epochs, partly
# beside other work (both finished: skipped)
"$PY" reproduce.py run fig4ab --scale paper --seeds 1 --jobs 1 --threads 2 --out docs/reproduction
"$PY" reproduce.py summarize docs/reproduction --to docs/reproduction/summary \
  --report docs/REPRODUCTION.md
