#!/usr/bin/env bash
# The real-text scale corpus (issue 17): Debian's dict-gcide (126k dictionary entries)
# and wordnet-base (118k glosses), 243,898 passages, downloaded and converted at bench
# time (GCIDE is GPL: its text is never committed), then indexed with every component
# and measured:
#   scripts/real-corpus.sh            # all 243,898 passages (hours of CPU encoding)
#   LIMIT=30000 scripts/real-corpus.sh  # the first 30,000 (both sources interleaved)
# Writes $REAL_DIR (default target/realtext): the dataset (gcide-wordnet/), the index,
# and results/*.json: the build report and its peak RSS, eval --json per mode (plaid,
# bm25, bm25+splade; one search thread), and a read-only server's memory after warm-up.
# Needs apt-get (the packages are only downloaded, not installed), python3, and the
# release binary (cargo build --release --bins) and models (scripts/fetch-models.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${REAL_DIR:-target/realtext}
BIN=${BIN:-target/release}
LIMIT=${LIMIT:-0}
mkdir -p "$DIR/debs" "$DIR/results"
if [ ! -d "$DIR/debs/x/usr/share/dictd" ] || [ ! -d "$DIR/debs/x/usr/share/wordnet" ]; then
  (cd "$DIR/debs" && apt-get download dict-gcide wordnet-base)
  for d in "$DIR"/debs/*.deb; do dpkg-deb -x "$d" "$DIR/debs/x"; done
fi
data=$DIR/gcide-wordnet
python3 scripts/real-corpus.py "$DIR/debs/x" "$data" --prefix "$LIMIT" > "$DIR/results/corpus.json"
idx=$DIR/gcide-wordnet-$LIMIT.idx
limit_args=()
[ "$LIMIT" != 0 ] && limit_args=(--limit "$LIMIT")
scripts/peak-rss.py --json "$DIR/results/build-rss-$LIMIT.json" -- \
  "$BIN/tessera" index "$data" --out "$idx" --components store,plaid,bm25,splade \
  "${limit_args[@]}" --json --quiet --force > "$DIR/results/build-$LIMIT.json"
for mode in plaid bm25 bm25+splade exhaustive; do
  "$BIN/tessera" eval "$data" --index "$idx" --mode "$mode" --threads 1 --json --quiet \
    > "$DIR/results/eval-$LIMIT-$mode.json"
done
scripts/serve-rss.py "$idx" "$data/queries.jsonl" --modes plaid,bm25,bm25+splade,exhaustive \
  --limit 20 --bin "$BIN/tessera" --json "$DIR/results/serve-rss-$LIMIT.json" > /dev/null
python3 - "$DIR/results" "$LIMIT" <<'PY'
import json, sys
root, limit = sys.argv[1], sys.argv[2]
b = json.load(open(f"{root}/build-{limit}.json"))
r = json.load(open(f"{root}/build-rss-{limit}.json"))
print(f"{b['num_docs']} passages, {b['num_vectors']} vectors: encode {b['encode_docs_per_s']:.1f} docs/s "
      f"({b['encode_tokens_per_s']:.0f} tokens/s), build {b['build_seconds']:.0f} s, peak RSS "
      f"{r['peak_rss_gib']:.2f} GiB (anon {r['peak_anon_gib']:.2f}), {b['bytes_per_vector']:.1f} B/vector")
for mode in ("plaid", "bm25", "bm25+splade", "exhaustive"):
    e = json.load(open(f"{root}/eval-{limit}-{mode}.json"))
    print(f"  {mode:12} p50 {e['latency_ms']['p50']:.2f} ms  p95 {e['latency_ms']['p95']:.2f} ms  "
          f"nDCG@10 {e['metrics'].get('ndcg@10', float('nan')):.3f}  query encoding p50 {e['query_encode_ms']['p50']:.1f} ms")
s = json.load(open(f"{root}/serve-rss-{limit}.json"))
for mode, m in s["modes"].items():
    print(f"  serve {mode:12} RSS {m['warm']['VmRSS'] / 2**20:.0f} MiB (anon {m['warm']['RssAnon'] / 2**20:.0f} MiB)")
PY
