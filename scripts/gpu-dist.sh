#!/usr/bin/env bash
# Prepare dist/ for scripts/gpu-check.sh on a GPU machine (device tool: carry ["dist"]):
#   dist/tessera-encode.gz           the CUDA build of src/bin/tessera-encode.rs, stripped, gzipped
#   dist/all-MiniLM-L6-v2-f16/       the default model with f16 weights (45 MB)
# Together under the 64 MiB a device call carries. Builds what is missing (the CUDA build
# with scripts/build-cuda.sh; no GPU needed).
set -euo pipefail
cd "$(dirname "$0")/.."
cuda_bin=target/cuda/release/tessera-encode
[ -x "$cuda_bin" ] || scripts/build-cuda.sh --bin tessera-encode
cargo build --release --quiet --bin tessera-encode
scripts/fetch-models.sh
mkdir -p dist
strip -o dist/tessera-encode "$cuda_bin"
gzip -9 -f dist/tessera-encode
rm -rf dist/all-MiniLM-L6-v2-f16
target/release/tessera-encode export-f16 --model models/all-MiniLM-L6-v2 --out dist/all-MiniLM-L6-v2-f16
du -sh dist/tessera-encode.gz dist/all-MiniLM-L6-v2-f16 dist
