#!/usr/bin/env bash
# The GPU device check (issue 7), one short run on the GPU machine:
#   1. our encoder (dist/tessera-encode, a stripped CUDA build of src/bin/tessera-encode.rs)
#      encodes SciFact's 5,183 documents on the GPU;
#   2. PyTorch + sentence-transformers (installed on that machine) encodes the same
#      documents with the same weights on the same GPU (scripts/gpu_reference.py);
#   3. our GPU vectors for the parity texts against our CPU f32 vectors and the numpy
#      reference (tests/fixtures/minilm_parity.*);
# then prints both throughputs and their ratio. Everything goes to $OUT (default
# $OUT from the device tool, else /tmp/gpu-check).
#
# Prepare here (no GPU needed):  scripts/gpu-dist.sh
# Rehearse here on the CPU:      DEVICE=cpu LIMIT=200 BIN=target/release/tessera-encode SKIP_TORCH=1 scripts/gpu-check.sh
#   (SKIP_TORCH: no CPU PyTorch is installable here; the GPU machine has it)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-dist/tessera-encode}
model=${MODEL:-dist/all-MiniLM-L6-v2-f16}
device=${DEVICE:-cuda}
out=${OUT:-/tmp/gpu-check}
limit=${LIMIT:-}
mkdir -p "$out"
if [ ! -x "$bin" ] && [ -f "$bin.gz" ]; then gunzip -c "$bin.gz" > "$bin" && chmod +x "$bin"; fi
# The CUDA 13 runtime libraries come with PyTorch's wheels on the GPU machine.
cu13=$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "lib"))' 2>/dev/null || true)
[ -n "$cu13" ] && [ -d "$cu13" ] && export LD_LIBRARY_PATH="$cu13:${LD_LIBRARY_PATH:-}"

(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no GPU") | tee "$out/gpu.txt"
limit_args=(); [ -n "$limit" ] && limit_args=(--limit "$limit")

echo "== ours: $bin on $device"
timeout 240 "$bin" run datasets/scifact --model "$model" --device "$device" --batch-size 64 "${limit_args[@]}" | tee "$out/ours.json"
echo "== parity"
timeout 60 "$bin" parity --model "$model" --device "$device" | tee "$out/parity.json"
if [ -z "${SKIP_TORCH:-}" ]; then
  echo "== PyTorch + sentence-transformers on $device"
  timeout 240 python3 scripts/gpu_reference.py --model "$model" --corpus datasets/scifact/corpus.jsonl \
    --device "$device" --batch-size 64 ${limit:+--limit "$limit"} | tee "$out/torch.json"
fi
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
ours, parity = (json.load(open(f"{out}/{n}.json")) for n in ("ours", "parity"))
print(f"ours:    {ours['documents_per_s']:.1f} docs/s, {ours['tokens_per_s']:.0f} tokens/s ({ours['dtype']}, {ours['documents']} docs)")
if os.path.exists(f"{out}/torch.json"):
    torch = json.load(open(f"{out}/torch.json"))
    print(f"PyTorch: {torch['documents_per_s']:.1f} docs/s, {torch['tokens_per_s']:.0f} tokens/s ({torch['dtype']}, torch {torch['torch']}, {torch['device']})")
    print(f"ratio ours/PyTorch: {ours['documents_per_s'] / torch['documents_per_s']:.2f} (documents/s)")
print(f"parity: worst per-token cosine {parity['worst_cosine_vs_cpu_f32']:.6f} vs our CPU f32, "
      f"{parity['worst_cosine_vs_numpy_reference']} vs numpy (target >= 0.999)")
PY
