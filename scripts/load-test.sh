#!/usr/bin/env bash
# Load test of `tessera serve` with oha (installed into .tools/ on first use).
#
#   scripts/load-test.sh INDEX_DIR [MODE] [SECONDS]
#
# Starts the server on INDEX_DIR, then for 1, 8 and 64 concurrent clients POSTs the same
# search ({"query": ..., "k": 10, "mode": MODE}) for SECONDS each (default 30), and
# prints QPS, p50/p99 latency and error counts as a Markdown table. MODE defaults to
# plaid (the index needs that component; use exhaustive otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
index=${1:?usage: scripts/load-test.sh INDEX_DIR [MODE] [SECONDS]}
mode=${2:-plaid}
seconds=${3:-30}
port=${PORT:-18080}

if ! command -v oha >/dev/null && [ ! -x .tools/bin/oha ]; then
  echo "installing oha into .tools/ (once; a few minutes)" >&2
  cargo install oha --locked --root .tools >&2
fi
oha=$(command -v oha || echo .tools/bin/oha)
cargo build --release --quiet

target/release/tessera serve "$index" --addr "127.0.0.1:$port" 2>/tmp/tessera-load-serve.log &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.5
done
name=$(curl -sf "http://127.0.0.1:$port/indexes" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')
body=$(printf '{"query": "vitamin D deficiency is associated with higher mortality", "k": 10, "mode": "%s"}' "$mode")
url="http://127.0.0.1:$port/indexes/$name/search"
# One request first: a bad mode or index fails here, not as 30 s of errors.
curl -sf "$url" -H 'content-type: application/json' -d "$body" >/dev/null

echo "| clients | requests | QPS | p50 ms | p99 ms | errors | cut by the deadline |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for c in 1 8 64; do
  "$oha" -z "${seconds}s" -c "$c" -m POST -H 'content-type: application/json' -d "$body" \
    --no-tui --output-format json "$url" > "/tmp/tessera-load-$c.json"
  python3 - "$c" "/tmp/tessera-load-$c.json" <<'EOF'
import json, sys
c, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
codes = r.get("statusCodeDistribution", {})
ok = int(codes.get("200", 0))
total = sum(int(v) for v in codes.values())
# oha cancels the requests still in flight when the duration ends: not server errors.
errors = dict(r.get("errorDistribution", {}))
cut = int(errors.pop("aborted due to deadline", 0))
failed = sum(int(v) for v in errors.values())
p = r["latencyPercentiles"]
print(f"| {c} | {total} | {r['summary']['requestsPerSec']:.1f} | {p['p50'] * 1e3:.1f} | "
      f"{p['p99'] * 1e3:.1f} | {total - ok + failed} | {cut} |")
EOF
done
echo "(index $index, mode $mode, ${seconds} s per row, $(nproc) cores; server log /tmp/tessera-load-serve.log)"
