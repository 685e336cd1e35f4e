#!/usr/bin/env bash
# Builds `crucible` with the `cuda` feature on a machine without a CUDA toolkit or GPU, for a GPU
# machine that has the NVIDIA driver and CUDA 13 libraries (e.g. from PyPI) but no Rust.
#
# nvcc 13.0 comes from PyPI wheels. candle links cudarc dynamically, so the linker needs
# libcuda/libcublas/libcublasLt/libcurand/libnvrtc: link-only stubs with the right SONAMEs are
# generated from the symbols the build references; at run time the real libraries load instead
# (put their folders on LD_LIBRARY_PATH). Output: $OUT_DIR/crucible.xz (default target/cuda-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CUDA_VENV:-$HOME/.cache/crucible/cuda-venv}
target=${CUDA_TARGET_DIR:-$HOME/.cache/crucible/target-cuda}
out=${OUT_DIR:-target/cuda-bin}
if [ ! -x "$venv/bin/pip" ]; then python3 -m venv "$venv"; fi
# nvvm must match nvcc: a newer cicc emits PTX that nvcc 13.0's ptxas rejects.
"$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-runtime==13.0.*" \
  "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-crt==13.0.*"
cuda=$("$venv/bin/python" -c "import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],'cu13'))")
export PATH="$cuda/bin:$PATH" CUDA_HOME="$cuda" CUDA_PATH="$cuda" CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR="$target"
build() { cargo build --release -p crucible --features cuda; }
if ! build 2>"$target.log"; then
  grep -q "unable to find library" "$target.log" || { cat "$target.log" >&2; exit 1; }
  # First link failed for want of the CUDA libraries: make link-only stubs, then link again.
  syms=$(for l in "$target"/release/deps/lib{cudarc,candle_core}-*.rlib; do nm --undefined-only "$l" 2>/dev/null; done | awk '{print $2}' | sort -u)
  stub() { # name soname pattern [exclude]
    printf '%s\n' "$syms" | grep -E "$3" | { if [ -n "${4:-}" ]; then grep -vE "$4"; else cat; fi; } \
      | sed 's/.*/void &(void) {}/' > "$target/$1.c"
    gcc -shared -fPIC -Wl,-soname,"$2" -o "$cuda/lib/lib$1.so" "$target/$1.c"
  }
  stub cuda libcuda.so.1 '^cu[A-Z]'
  stub nvrtc libnvrtc.so.13 '^nvrtc'
  stub curand libcurand.so.10 '^curand'
  stub cublasLt libcublasLt.so.13 '^cublasLt'
  stub cublas libcublas.so.13 '^cublas' '^cublasLt'
  ln -sf libcudart.so.13 "$cuda/lib/libcudart.so"
  build
fi
mkdir -p "$out"
strip -o "$out/crucible" "$target/release/crucible"
xz -T0 -6 -f "$out/crucible"
echo "built $out/crucible.xz"
