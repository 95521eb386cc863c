#!/usr/bin/env bash
# One synthetic scale point (issue 17; docs/SCALING.md "Measured scale"):
#   scripts/scale-run.sh DIM VECTORS
# generates DIM-d synthetic vectors (tessera-bench gen), builds a model-less store+plaid
# index from them under scripts/peak-rss.py, evaluates PLAID against exhaustive MaxSim on
# the 50 queries with one search thread, and measures a read-only server's memory after
# warm-up (scripts/serve-rss.py). Results: $SCALE_DIR/results/s<VECTORS>-<DIM>.*.json;
# scripts/scale-table.py prints them as a table. The data and the index are deleted at the
# end unless KEEP=1 (20 M x 384-d is 15 GB of vectors and 17 GB of index).
# Needs the release binaries: cargo build --release --bins.
set -euo pipefail
cd "$(dirname "$0")/.."
DIM=${1:?usage: scale-run.sh DIM VECTORS}
N=${2:?usage: scale-run.sh DIM VECTORS}
DIR=${SCALE_DIR:-target/scale}
BIN=${BIN:-target/release}
NAME=s$N-$DIM
data=$DIR/$NAME
idx=$DIR/$NAME.idx
out=$DIR/results/$NAME
mkdir -p "$DIR/results"
if [ ! -f "$data/synthetic.json" ]; then
  "$BIN/tessera-bench" gen --out "$data" --dim "$DIM" --vectors "$N" > "$out.gen.json"
fi
rm -rf "$idx"
scripts/peak-rss.py --json "$out.build-rss.json" -- \
  "$BIN/tessera" index --vectors "$data/corpus" --out "$idx" --components store,plaid --json --quiet \
  > "$out.build.json"
scripts/peak-rss.py --json "$out.eval-rss.json" -- \
  "$BIN/tessera" eval "$data" --index "$idx" --query-vectors "$data/queries" --mode plaid \
  --compare-exhaustive --threads 1 --json --quiet > "$out.eval.json"
scripts/serve-rss.py "$idx" "$data/queries" --modes plaid,exhaustive --limit 5 \
  --bin "$BIN/tessera" --json "$out.serve-rss.json" > /dev/null
du -sb "$idx" | cut -f1 > "$out.index-bytes"
if [ "${KEEP:-}" != 1 ]; then
  rm -rf "$idx" "$data"
fi
echo "$NAME done: $out.*.json"
