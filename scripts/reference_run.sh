#!/usr/bin/env bash
# Regenerate the committed reference benchmark run in reports/ (one command):
#   scripts/reference_run.sh [OUT_DIR]
# 1. in each of BN_ROUNDS rounds, grid by grid (standard, standard-half,
#    batch-sweep, feature-sweep; 1 and 2 threads): bnh bench (every
#    registered implementation), then scripts/torch_bench.py (torch and
#    torch-noalloc; skipped when PyTorch is not importable)
#    -> OUT_DIR/{bench,torch}-GRID-rN.csv. standard-half is the standard
#    grid's shapes in bf16 and f16 (--dtypes bf16,f16; PyTorch's pure-half
#    kernels), about 9 minutes a round;
# 2. bnh accuracy (error vs conditioning against the oracle) -> OUT_DIR/accuracy.csv;
# 3. bnh matrix (the conformance matrix) -> OUT_DIR/matrix.{md,csv};
# 4. bnh report over all CSVs -> OUT_DIR/REPORT.md and SVG charts.
# Every round of a tool has one run id, so the report keeps each cell's
# fastest round: on a shared machine, other processes only ever add time,
# and a round disturbed for one tool is not set against a quiet round of
# the other (each grid's bnh and torch rounds run back to back).
# Knobs: BN_ROUNDS (default 3; about 23 minutes each on the 2-core VM),
# BN_THREADS (default 1,2), BN_MIN_TIME seconds per measurement (default
# 0.2). Run it on a quiet machine: timings are only as good as that.
# bnh's commands write into the scratch folder reports/local/ by default; this
# script is the one place that replaces the committed run, so every output
# path below is given explicitly (--csv, --out "$OUT" with OUT=reports). It
# first removes its own earlier bench/torch CSVs from OUT_DIR (the names
# above, and the single-round names bench-GRID.csv / torch-GRID.csv), so the
# folder holds one run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-reports}
ROUNDS=${BN_ROUNDS:-3}
THREADS=${BN_THREADS:-1,2}
MIN_TIME=${BN_MIN_TIME:-0.2}
GRIDS=(standard standard-half batch-sweep feature-sweep)
if ! [[ $ROUNDS =~ ^[1-9][0-9]?$ ]]; then
  echo "reference_run.sh: BN_ROUNDS=$ROUNDS: give a count of rounds from 1 to 99" >&2
  exit 2
fi

cargo build --release -p bn-harness
BNH=target/release/bnh
mkdir -p "$OUT"
for grid in "${GRIDS[@]}"; do
  for tool in bench torch; do
    rm -f "$OUT/$tool-$grid".csv "$OUT/$tool-$grid".machine.json \
      "$OUT/$tool-$grid"-r[0-9]*.csv "$OUT/$tool-$grid"-r[0-9]*.machine.json
  done
done
start=$(date +%s)
RUN=ref-$(date -u +%Y%m%dT%H%M%SZ)
# PyTorch's OpenMP workers spin, then sleep, between calls. In a container
# with a CPU quota (the development machine), the spinning burns the quota
# and multi-thread calls then stall ~48 ms each (CFS throttling), which is the
# machine, not torch. ACTIVE keeps workers spinning and avoids the stall;
# export OMP_WAIT_POLICY= (empty) to measure the library default instead.
# bnh ignores the variable.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY-ACTIVE}
[ -z "$OMP_WAIT_POLICY" ] && unset OMP_WAIT_POLICY
torch=0
if python3 -c 'import torch' 2>/dev/null; then
  torch=1
else
  echo "PyTorch not importable: skipping the torch comparison" >&2
fi
# The grid and dtypes each name stands for.
grid_args() {
  case "$1" in
    standard-half) echo "--grid standard --dtypes bf16,f16" ;;
    *) echo "--grid $1" ;;
  esac
}
csvs=()
for round in $(seq 1 "$ROUNDS"); do
  for grid in "${GRIDS[@]}"; do
    read -r -a args <<< "$(grid_args "$grid")"
    echo "== round $round/$ROUNDS: bnh bench ${args[*]}" >&2
    "$BNH" bench "${args[@]}" --threads "$THREADS" --min-time "$MIN_TIME" \
      --run-id "$RUN" --csv "$OUT/bench-$grid-r$round.csv" > /dev/null
    csvs+=("$OUT/bench-$grid-r$round.csv")
    if [ "$torch" = 1 ]; then
      echo "== round $round/$ROUNDS: torch_bench.py ${args[*]}" >&2
      python3 scripts/torch_bench.py "${args[@]}" --threads "$THREADS" \
        --min-time "$MIN_TIME" --run-id "$RUN" --csv "$OUT/torch-$grid-r$round.csv" 2> /dev/null
      csvs+=("$OUT/torch-$grid-r$round.csv")
    fi
  done
done
echo "== bnh accuracy" >&2
"$BNH" accuracy --out "$OUT" --csv "$OUT/accuracy.csv" --chart none > "$OUT/accuracy.txt"
csvs+=("$OUT/accuracy.csv")
echo "== bnh matrix" >&2
"$BNH" matrix --out "$OUT" > /dev/null
csvs+=("$OUT/matrix.csv")
"$BNH" report "${csvs[@]}" --out "$OUT"
echo "reference run took $(( $(date +%s) - start )) s; report: $OUT/REPORT.md" >&2
