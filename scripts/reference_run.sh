#!/usr/bin/env bash
# Regenerate the committed reference benchmark run in reports/ (one command):
#   scripts/reference_run.sh [OUT_DIR]
# 1. bnh bench over the standard, batch-sweep and feature-sweep grids at
#    1 and 2 threads (every registered implementation);
# 2. scripts/torch_bench.py on the same grids (torch and torch-noalloc),
#    skipped when PyTorch is not importable;
# 3. bnh accuracy (error vs conditioning against the oracle) -> OUT_DIR/accuracy.csv;
# 4. bnh matrix (the conformance matrix) -> OUT_DIR/matrix.{md,csv};
# 5. bnh report over all CSVs -> OUT_DIR/REPORT.md and SVG charts.
# Knobs: BN_THREADS (default 1,2), BN_MIN_TIME seconds per measurement
# (default 0.2). Run it on a quiet machine: timings are only as good as that.
# bnh's commands write into the scratch folder reports/local/ by default; this
# script is the one place that replaces the committed run, so every output
# path below is given explicitly (--csv, --out "$OUT" with OUT=reports).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-reports}
THREADS=${BN_THREADS:-1,2}
MIN_TIME=${BN_MIN_TIME:-0.2}
GRIDS=(standard batch-sweep feature-sweep)

cargo build --release -p bn-harness
BNH=target/release/bnh
mkdir -p "$OUT"
start=$(date +%s)
csvs=()
for grid in "${GRIDS[@]}"; do
  echo "== bnh bench --grid $grid" >&2
  "$BNH" bench --grid "$grid" --threads "$THREADS" --min-time "$MIN_TIME" \
    --csv "$OUT/bench-$grid.csv" > /dev/null
  csvs+=("$OUT/bench-$grid.csv")
done
# PyTorch's OpenMP workers spin, then sleep, between calls. In a container
# with a CPU quota (the development machine), the spinning burns the quota
# and multi-thread calls then stall ~48 ms each (CFS throttling), which is the
# machine, not torch. ACTIVE keeps workers spinning and avoids the stall;
# export OMP_WAIT_POLICY= (empty) to measure the library default instead.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY-ACTIVE}
[ -z "$OMP_WAIT_POLICY" ] && unset OMP_WAIT_POLICY
if python3 -c 'import torch' 2>/dev/null; then
  for grid in "${GRIDS[@]}"; do
    echo "== torch_bench.py --grid $grid" >&2
    python3 scripts/torch_bench.py --grid "$grid" --threads "$THREADS" --min-time "$MIN_TIME" \
      --csv "$OUT/torch-$grid.csv" 2> /dev/null
    csvs+=("$OUT/torch-$grid.csv")
  done
else
  echo "PyTorch not importable: skipping the torch comparison" >&2
fi
echo "== bnh accuracy" >&2
"$BNH" accuracy --out "$OUT" --csv "$OUT/accuracy.csv" --chart none > "$OUT/accuracy.txt"
csvs+=("$OUT/accuracy.csv")
echo "== bnh matrix" >&2
"$BNH" matrix --out "$OUT" > /dev/null
csvs+=("$OUT/matrix.csv")
"$BNH" report "${csvs[@]}" --out "$OUT"
echo "reference run took $(( $(date +%s) - start )) s; report: $OUT/REPORT.md" >&2
