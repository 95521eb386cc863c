#!/usr/bin/env bash
# Build Tessera's `cuda` feature on a machine without a GPU or a CUDA install.
#
# Toolchain: NVIDIA's CUDA 13.0 wheels from PyPI (nvcc 13.0.88, cuBLAS 13.0.2.14,
# cuRAND 10.4.0.35, ...). 13.0 because the GPU machines run driver 580 (CUDA 13.0): a
# newer nvcc may emit PTX that driver cannot load. Everything goes under .cuda/
# (git-ignored): the unpacked wheels, a CUDA_HOME of symlinks, and a link-time stub of
# the driver library (no wheel ships libcuda; candle links -lcuda). The stub answers
# every call with CUDA_ERROR_NO_DEVICE and is never shipped: on a GPU machine the real
# driver's libcuda.so.1 is used.
#
# Output: target/cuda/release/tessera (separate from the CPU build in target/release).
# Usage: scripts/build-cuda.sh [extra cargo args]     e.g. CUDA_COMPUTE_CAP=90 (default)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
root="$repo/.cuda"
site="$root/site"
home="$root/home"
python=${PYTHON:-python3}

wheels=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14
  nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
)

if [ ! -x "$site/nvidia/cu13/bin/nvcc" ]; then
  echo "installing the CUDA 13.0 toolchain wheels into $site (about 1.2 GB)"
  mkdir -p "$site"
  "$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$site" "${wheels[@]}"
fi
cu="$site/nvidia/cu13"

# CUDA_HOME: bin, include, nvvm from the wheel tree; lib/ with unversioned names.
mkdir -p "$home/lib/stubs"
for d in bin include nvvm; do ln -sfn "$cu/$d" "$home/$d"; done
link_lib() { # link_lib <unversioned name> <glob of the real file>
  local real
  real=$(ls "$cu"/lib/$2 2>/dev/null | head -1)
  [ -n "$real" ] || { echo "error: no $2 in $cu/lib" >&2; exit 1; }
  ln -sfn "$real" "$home/lib/$1"
}
link_lib libcudart.so 'libcudart.so.13*'
link_lib libcublas.so 'libcublas.so.13*'
link_lib libcublasLt.so 'libcublasLt.so.13*'
link_lib libcurand.so 'libcurand.so.10*'
link_lib libnvrtc.so 'libnvrtc.so.13*'

# Link-time stub of the driver: one `int NAME(void){return 100;}` per symbol.
stub="$home/lib/stubs/libcuda.so"
if [ ! -f "$stub" ] || [ "$repo/scripts/cuda/libcuda-symbols.txt" -nt "$stub" ]; then
  src="$root/libcuda-stub.c"
  grep -v '^\s*$' "$repo/scripts/cuda/libcuda-symbols.txt" | sed 's/.*/int &(void){return 100;}/' > "$src"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub" "$src"
fi
# The runtime name, so the binary can start here (and fall back to CPU) for a smoke test.
ln -sfn libcuda.so "$home/lib/stubs/libcuda.so.1"

export CUDA_HOME="$home" CUDA_PATH="$home"
export PATH="$home/bin:$PATH"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CUDARC_CUDA_VERSION=13000
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)}
export LIBRARY_PATH="$home/lib:$home/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$home/lib -L native=$home/lib/stubs"

echo "nvcc: $(nvcc --version | tail -1)"
start=$(date +%s)
cargo build --release --features cuda --target-dir target/cuda --bin tessera "$@"
echo "built target/cuda/release/tessera in $(( $(date +%s) - start )) s"
echo "smoke-run it here (stub driver: no GPU, so --device auto falls back to CPU):"
echo "  LD_LIBRARY_PATH=$cu/lib:$home/lib/stubs target/cuda/release/tessera search <index> \"query\" --device auto"
echo "on a GPU machine, use the real driver and the CUDA 13 runtime libraries instead of .cuda/"
