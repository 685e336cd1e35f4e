#!/usr/bin/env bash
# On a GPU machine: CUDA vs CPU parity of the same binary (greedy text of the tiny fixture and of
# the shipped model) and decode throughput against transformers on the GPU. Expects the output of
# tools/build_cuda.sh in target/cuda-bin/ and writes its files to ${OUT:-/tmp/cuda-check}.
set -u
OUT=${OUT:-/tmp/cuda-check}; mkdir -p "$OUT"
xz -dkf target/cuda-bin/crucible.xz && chmod +x target/cuda-bin/crucible
B=target/cuda-bin/crucible
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
SP=$(python3 -c "import nvidia;print(list(nvidia.__path__)[0])")
export LD_LIBRARY_PATH=$(find "$SP" -maxdepth 3 -type d -name lib | tr '\n' ':')${LD_LIBRARY_PATH:-}
export RUST_BACKTRACE=0 RUST_LOG=warn
for d in cpu cuda; do
  CRUCIBLE_DEVICE=$d timeout 120 $B generate --model gpu/tests/fixtures/tiny-mimo --prompt "the parity prompt" \
    --temperature 0 --max-new-tokens 32 --ignore-eos > "$OUT/tiny_$d.txt" 2> "$OUT/tiny_$d.err"
  CRUCIBLE_DEVICE=$d timeout 120 $B generate --model models/crucible-mimo-small --chat --temperature 0 \
    --prompt "Start with 12. Add 7, then multiply by 3." --max-new-tokens 96 > "$OUT/small_$d.txt" 2> "$OUT/small_$d.err"
  tail -n 1 "$OUT/tiny_$d.err" "$OUT/small_$d.err"
done
cmp "$OUT/tiny_cpu.txt" "$OUT/tiny_cuda.txt" && echo "PARITY tiny: identical 32-token greedy text"
cmp "$OUT/small_cpu.txt" "$OUT/small_cuda.txt" && echo "PARITY small: identical greedy text"
CRUCIBLE_DEVICE=cuda timeout 300 $B bench decode --python python3 2>&1 | tail -n 8 | tee "$OUT/bench_cuda.txt"
