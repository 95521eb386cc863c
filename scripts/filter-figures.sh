#!/usr/bin/env bash
# Filtered search on SciFact, one thread: each mode unfiltered and at selectivities
# 50/10/1/0.1% (eval --filter-selectivity, against filtered exhaustive search in the same
# run), then plaid and muvera approximate vs exact over the allowed documents at
# 0.1-10% (the planner threshold, --filter-exact-below). One JSON line per run into OUT.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/tessera}
IDX=${1:?usage: scripts/filter-figures.sh INDEX [OUT.jsonl]  (SciFact, built with store,plaid,muvera,splade,bm25)}
OUT=${2:-/tmp/filter-figures.jsonl}
: > $OUT
run() {  # label, args...
  local label=$1; shift
  local t0=$(date +%s)
  $BIN eval datasets/scifact --index $IDX --threads 1 --json --quiet --compare-exhaustive "$@" > $OUT.tmp 2>$OUT.err || { echo "FAIL $label"; cat $OUT.err; return; }
  python3 - "$OUT.tmp" "$label" "$@" <<'PY' >> $OUT
import json,sys
r=json.load(open(sys.argv[1]))
v=r['vs_exhaustive']; f=r.get('filter') or {}
print(json.dumps({"label":sys.argv[2],"args":sys.argv[3:],"mode":r['mode'],"p50":r['latency_ms']['p50'],"p95":r['latency_ms']['p95'],
 "share":v['recall_at_k'],"exh_p50":v['exhaustive_latency_ms']['p50'],"ndcg10":r['metrics'].get('ndcg@10'),
 "allowed":f.get('allowed_docs'),"ran":f.get('ran'),"exact":f.get('exact'),"filter_ms_p50":(f.get('filter_ms') or {}).get('p50')}))
PY
  echo "$label done in $(( $(date +%s) - t0 )) s"; tail -1 $OUT
}
for mode in plaid muvera bm25+splade; do
  run "$mode unfiltered" --mode $mode
  for sel in 0.5 0.1 0.01 0.001; do
    run "$mode sel=$sel" --mode $mode --filter-selectivity $sel
  done
done
# The planner's threshold: plaid/muvera approximate (never exact) vs exact over the allowed set.
for mode in plaid muvera; do
  for sel in 0.001 0.01 0.02 0.05 0.1; do
    run "$mode sel=$sel approximate" --mode $mode --filter-selectivity $sel --filter-exact-below 0
    run "$mode sel=$sel exact" --mode $mode --filter-selectivity $sel --filter-exact-below 1
  done
done
