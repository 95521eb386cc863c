#!/usr/bin/env bash
# The compact-index table (issue 15, goal 2): for nbits 1/2/4 x store f16/int8/none,
# rebuild from SRC (an index with the f16 store; no re-encoding) and evaluate PLAID at
# k = 100 on one thread against exhaustive search on SRC (its run is computed once, as
# a TREC file, and every row is compared with it through `eval --reference-run`).
#
#   scripts/compact-table.sh SRC [OUT_DIR]
#   (BIN, DATA, NBITS ("1 2 4"), STORES ("f16 int8 none"), BUILD_ARGS and EVAL_ARGS
#   override; rows whose index exists in OUT_DIR are evaluated again, not rebuilt)
set -euo pipefail
src=${1:?usage: scripts/compact-table.sh SRC_INDEX [OUT_DIR]}
out=${2:-/tmp/compact-table}
bin=${BIN:-target/release/tessera}
data=${DATA:-datasets/scifact}
mkdir -p "$out"
ref=${REFERENCE:-$out/exhaustive.trec}
if [ ! -f "$ref" ]; then
  "$bin" eval "$data" --index "$src" --mode exhaustive --threads 1 --run-file "$ref" --json \
    > "$out/exhaustive.json"
fi
printf '| nbits | store | B/vector (all) | B/vector without texts | share of exhaustive top-100 | top-10 | nDCG@10 | p50 ms | p95 ms |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for nbits in ${NBITS:-1 2 4}; do
  for store in ${STORES:-f16 int8 none}; do
    idx=$out/n$nbits-$store
    if [ ! -f "$idx/manifest.json" ]; then
      # shellcheck disable=SC2086
      "$bin" rebuild "$src" --out "$idx" --components store,plaid --nbits "$nbits" \
        --store "$store" --json ${BUILD_ARGS:-} > "$idx.build.json"
    fi
    # shellcheck disable=SC2086
    "$bin" eval "$data" --index "$idx" --mode plaid --threads 1 --reference-run "$ref" \
      --json ${EVAL_ARGS:-} > "$idx.eval.json"
    python3 - "$idx" "$nbits" "$store" <<'EOF'
import json, sys
idx, nbits, store = sys.argv[1:]
m = json.load(open(f"{idx}/manifest.json"))
e = json.load(open(f"{idx}.eval.json"))
texts = sum(s["store"].get("texts", {}).get("bytes", 0) for s in m["segments"])
nv = e["num_vectors"]
r = e["vs_reference"]
print(f"| {nbits} | {store} | {e['index_bytes'] / nv:.1f} | {(e['index_bytes'] - texts) / nv:.1f} "
      f"| {r['share_at_k']:.4f} | {r['share_at_10']:.4f} | {e['metrics']['ndcg@10']:.4f} "
      f"| {e['latency_ms']['p50']:.1f} | {e['latency_ms']['p95']:.1f} |")
EOF
  done
done
[ -f "$out/exhaustive.json" ] || exit 0
python3 - "$out/exhaustive.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
print(f"\nexhaustive on the source: nDCG@10 {e['metrics']['ndcg@10']:.4f}, p50 {e['latency_ms']['p50']:.1f} ms, "
      f"{e['index_bytes'] / e['num_vectors']:.1f} B/vector")
EOF
