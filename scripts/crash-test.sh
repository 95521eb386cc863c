#!/usr/bin/env bash
# Crash safety of the live index: `tessera add`, `delete` and `compact` killed with
# SIGKILL at ROUNDS random moments each (default 20). After every kill the index must
# open and answer exactly as the last commit before the kill or as the commit the
# command was making (checked on every live document: three queries ranking the whole
# index, and the live count), never a mix and never an error; then the same command run
# again (the lock was released with the killed process) must reach the complete state.
# Small fixture: SciFact documents and the tiny random model. Run by scripts/test.sh.
#
#   scripts/crash-test.sh [ROUNDS]          (BIN=path/to/tessera to pick a binary)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
BIN=${BIN:-target/ci/tessera}
[ -x "$BIN" ] || BIN=target/release/tessera
[ -x "$BIN" ] || { echo "build tessera first" >&2; exit 1; }
MODEL=tests/fixtures/tiny-bert
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
head -n 200 datasets/scifact/corpus.jsonl >"$WORK/base.jsonl"
sed -n '201,400p' datasets/scifact/corpus.jsonl >"$WORK/more.jsonl"
sed -n '1,200p' datasets/scifact/corpus.jsonl | sed -n '1~8p' | sed 's/.*"_id": "\([^"]*\)".*/\1/' >"$WORK/ids.txt"

answers() { # the index's answer to three queries over every live document, and its count
  for q in "vitamin D deficiency" "cancer cell proliferation" "randomized trial mortality"; do
    "$BIN" search "$1" "$q" -k 1000 --json | grep -v '"latency_ms"' || return 1
  done
  "$BIN" info "$1" --json | grep '"live_docs"' || return 1
}

# States to start from: one segment (add, delete), and several segments with deletions
# (compact). The index has every component the tiny models allow.
"$BIN" index "$WORK/base.jsonl" --out "$WORK/one" --model "$MODEL" --components store,plaid,muvera,bm25 \
  --num-centroids 256 --fde-reps 4 --fde-k-sim 3 --fde-d-proj 8 --quiet 2>/dev/null
cp -a "$WORK/one" "$WORK/many"
for part in 1 2; do
  sed -n "$((part * 100 - 99)),$((part * 100))p" "$WORK/more.jsonl" >"$WORK/part$part.jsonl"
  "$BIN" add "$WORK/many" "$WORK/part$part.jsonl" --quiet 2>/dev/null
done
"$BIN" delete "$WORK/many" --ids-file "$WORK/ids.txt" >/dev/null 2>&1

total_before=0 total_after=0 total_bad=0
run_op() { # name, start state, command (with IDX where the index goes)
  local name=$1 start=$2; shift 2
  local cmd=("$@")
  rm -rf "$WORK/cur"; cp -a "$WORK/$start" "$WORK/cur"
  answers "$WORK/cur" >"$WORK/want-before"
  local t0; t0=$(date +%s%N)
  "${cmd[@]/IDX/$WORK/cur}" >/dev/null 2>&1
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  answers "$WORK/cur" >"$WORK/want-after"
  cmp -s "$WORK/want-before" "$WORK/want-after" && { echo "$name: the command changed nothing" >&2; exit 1; }
  local before=0 after=0 bad=0
  for round in $(seq 1 "$ROUNDS"); do
    rm -rf "$WORK/cur"; cp -a "$WORK/$start" "$WORK/cur"
    "${cmd[@]/IDX/$WORK/cur}" >/dev/null 2>&1 &
    local pid=$!
    # A random moment within the command's run (and a little past it).
    local wait_ms=$(( RANDOM * (ms + ms / 5 + 1) / 32768 ))
    sleep "$(printf '%d.%03d' $((wait_ms / 1000)) $((wait_ms % 1000)))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if answers "$WORK/cur" >"$WORK/got" 2>"$WORK/err"; then
      if cmp -s "$WORK/got" "$WORK/want-before"; then before=$((before + 1))
      elif cmp -s "$WORK/got" "$WORK/want-after"; then after=$((after + 1))
      else bad=$((bad + 1)); echo "$name round $round (killed at $wait_ms ms): a mix of both states" >&2; fi
    else
      bad=$((bad + 1)); echo "$name round $round (killed at $wait_ms ms): $(head -c 300 "$WORK/err")" >&2
    fi
    # Run again: the killed command's lock is gone, and the index reaches the full state.
    if "${cmd[@]/IDX/$WORK/cur}" >/dev/null 2>"$WORK/err" && answers "$WORK/cur" >"$WORK/got" \
       && cmp -s "$WORK/got" "$WORK/want-after"; then :; else
      bad=$((bad + 1)); echo "$name round $round: rerun failed: $(head -c 300 "$WORK/err")" >&2
    fi
  done
  echo "$name (full run $ms ms): $ROUNDS kills; the index answered as before the command $before times, as after it $after times; wrong or broken $bad"
  total_before=$((total_before + before)); total_after=$((total_after + after)); total_bad=$((total_bad + bad))
}

run_op "add" one "$BIN" add IDX "$WORK/more.jsonl" --upsert --quiet
run_op "delete" one "$BIN" delete IDX --ids-file "$WORK/ids.txt"
run_op "compact" many "$BIN" compact IDX
echo "crash test: $((3 * ROUNDS)) kills, $total_before before, $total_after after, $total_bad wrong"
[ "$total_bad" -eq 0 ]
