#!/usr/bin/env bash
# Two `tessera index` runs into one directory at the same time, ROUNDS times (default 20),
# both overwriting an existing index. After every round the index must open and answer
# exactly as an index built by one of the two writers alone; the other writer either
# finished first (its index was then replaced) or was refused by the writer lock. Prints
# the counts and the refused writer's message. Uses the tiny random model, so it needs no
# download: corpora a and b are SciFact documents 1-1,000 and 1,001-2,000.
#
#   scripts/two-writers.sh [ROUNDS]        (BIN=path/to/tessera to pick a binary)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
BIN=${BIN:-target/release/tessera}
[ -x "$BIN" ] || BIN=target/ci/tessera
[ -x "$BIN" ] || { echo "build tessera first (cargo build --release)" >&2; exit 1; }
MODEL=tests/fixtures/tiny-bert
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
head -n 1000 datasets/scifact/corpus.jsonl >"$WORK/a.jsonl"
sed -n '1001,2000p' datasets/scifact/corpus.jsonl >"$WORK/b.jsonl"
QUERY="vitamin D deficiency and mortality"
index() { "$BIN" index "$1" --out "$2" --model "$MODEL" --components store,plaid,bm25 --quiet; }
answer() { "$BIN" search "$1" "$QUERY" -k 10 --json | grep -v latency_ms; }
index "$WORK/a.jsonl" "$WORK/ref-a"
index "$WORK/b.jsonl" "$WORK/ref-b"
answer "$WORK/ref-a" >"$WORK/want-a"
answer "$WORK/ref-b" >"$WORK/want-b"
index "$WORK/a.jsonl" "$WORK/idx" # the existing index both runs overwrite
refused=0 both_ok=0 as_a=0 as_b=0 broken=0 message=""
for round in $(seq 1 "$ROUNDS"); do
  set +e
  index "$WORK/a.jsonl" "$WORK/idx" 2>"$WORK/err-a" &
  pa=$!
  index "$WORK/b.jsonl" "$WORK/idx" 2>"$WORK/err-b" &
  pb=$!
  wait $pa; ra=$?
  wait $pb; rb=$?
  set -e
  if [ $ra -ne 0 ] || [ $rb -ne 0 ]; then
    refused=$((refused + 1))
    [ $ra -ne 0 ] && message=$(cat "$WORK/err-a") || message=$(cat "$WORK/err-b")
  else
    both_ok=$((both_ok + 1))
  fi
  if answer "$WORK/idx" >"$WORK/got" 2>"$WORK/err-search"; then
    if cmp -s "$WORK/got" "$WORK/want-a"; then as_a=$((as_a + 1))
    elif cmp -s "$WORK/got" "$WORK/want-b"; then as_b=$((as_b + 1))
    else broken=$((broken + 1)); echo "round $round: results equal neither writer's" >&2; fi
  else
    broken=$((broken + 1)); echo "round $round: $(cat "$WORK/err-search")" >&2
  fi
done
echo "rounds: $ROUNDS · one writer refused: $refused · both succeeded (one after the other): $both_ok"
echo "index afterwards answers as writer a: $as_a · as writer b: $as_b · neither or broken: $broken"
[ -n "$message" ] && echo "refused writer's message: $message"
[ "$broken" -eq 0 ]
