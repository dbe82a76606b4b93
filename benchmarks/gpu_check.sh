#!/usr/bin/env bash
# The one prepared GPU check: build with CUDA, run the GPU parity tests, run the GPU benchmarks,
# summarise them against the targets.
# Usage (repo root, on a GPU machine with no network):  bash benchmarks/gpu_check.sh OUT_DIR
# Writes exactly 8 files under OUT_DIR (the device tool brings back at most 8):
#   summary.txt  environment, each stage's exit code and seconds, the test tail, and the
#                Markdown target tables of benchmarks/gpu_summary.py
#   build.log, gpu_tests.log, bench.log (all benchmark files' pytest output, in order)
#   bench.json   one pytest-benchmark JSON merged from the per-file runs
#   cost.log, cost_cuda.md, cost_cuda.json   the paper's Tables 9/10 grid, fast vs reference
# Budget: the stage limits add up to 540 s (9 min) in the worst case (run it with a 600 s
# limit); a normal run is shorter. Every stage has its own timeout and each benchmark file is its own pytest run, so a
# hang or crash costs only that stage's figures.
# Triton compiles every kernel variant (dtype, head dim, block sizes, dropout, split) on first
# use, single-threaded, ~0.5-1 s each: the GPU tests meet ~150 variants, more than their stage's
# time if compiled one after another. So the tests run under pytest-xdist (8 processes, one GPU;
# serial where xdist is missing), and a warm-up stage runs each small benchmark once, in
# parallel, so that the timed stages find their kernels in Triton's on-disk cache.
# Stages run in order of value: parity first, then the numbers that set the dispatch rules.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
# The source tree on the path too: if the build stage fails, the Triton kernels (pure Python)
# and lcnet_reference still import, and their tests and benchmarks still run.
export PYTHONPATH="$PWD:$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 LCNET_FAST_FORCE_CUDA=1
unset TRITON_INTERPRET LCNET_FAST_BACKEND
scratch=$(mktemp -d)
summary="$out/summary.txt"

stage() {  # stage NAME SECONDS LOG CMD...: run CMD with a timeout, append its log, record rc
  local name=$1 limit=$2 log=$3 start rc
  shift 3
  start=$(date +%s)
  timeout "$limit" "$@" >> "$log" 2>&1
  rc=$?
  echo "$name rc=$rc seconds=$(( $(date +%s) - start ))$([ $rc = 124 ] && echo ' TIMED OUT')" \
    | tee -a "$summary"
}

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python - <<'PY'
import torch, importlib
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
for name in ("triton", "timm"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as e:
        print(name, "MISSING", e)
PY
} > "$summary" 2>&1

# In place (PYTHONPATH above finds it): no pip, so neither an externally managed Python nor
# pip's own start can fail or slow the build.
stage build 50 "$out/build.log" python setup.py build_ext --inplace
python -c "import lcnet_fast; print(lcnet_fast.build_info())" >> "$summary" 2>&1

parallel=()
python -c "import xdist" 2>/dev/null && parallel=(-n 8)
echo "pytest parallel: ${parallel[*]:-none (no pytest-xdist)}" >> "$summary"
stage gpu-tests 100 "$out/gpu_tests.log" python -m pytest -q "${parallel[@]}" -m gpu tests \
  -p no:cacheprovider
tail -n 5 "$out/gpu_tests.log" >> "$summary"

# Compile (not time) the small benchmarks' kernels: each benchmark runs once, in parallel.
echo "=== warm-up: each benchmark once, untimed ===" >> "$out/bench.log"
stage bench-warmup 35 "$out/bench.log" python -m pytest -q "${parallel[@]}" -m gpu \
  benchmarks/bench_cross_attention.py benchmarks/bench_crop_views.py \
  benchmarks/bench_dropout_add_layer_norm.py -p no:cacheprovider --benchmark-disable

# Benchmarks, most decision-relevant first (the SDPA/split rules, then the targets). Each timed
# run writes its JSON only when it ends, so a run that times out loses all its figures: the
# LCNet file is split into four runs, so that torch.compile's slow start (the LLCD stack's
# compiled reference) or the paper model's first steps cannot cost the other figures. -m gpu
# skips the CPU-only cases of the op files (their CPU inductor compiles take seconds); the
# LLCD stack and train-step benchmarks are not marked gpu and run on CUDA here.
bench() {  # bench NAME SECONDS FILE [PYTEST ARGS...]: one timed pytest-benchmark run
  local name=$1 limit=$2 file=$3
  shift 3
  echo "=== bench-$name ===" >> "$out/bench.log"
  stage "bench-$name" "$limit" "$out/bench.log" python -m pytest -q "benchmarks/$file" "$@" \
    -p no:cacheprovider --benchmark-json="$scratch/$name.json" \
    --benchmark-columns=min,median,max,rounds
}
bench cross_attention 60 bench_cross_attention.py -m gpu
bench crop_views 20 bench_crop_views.py -m gpu
bench dropout_add_layer_norm 20 bench_dropout_add_layer_norm.py -m gpu
bench lcnet-single-image 40 bench_lcnet.py -m gpu -k single_image
bench lcnet-one-call 30 bench_lcnet.py -m gpu -k one_call
bench lcnet-stack 35 bench_lcnet.py -m "not gpu" -k "not compiled_reference"
bench lcnet-stack-compiled 60 bench_lcnet.py -k compiled_reference
stage bench-inference 40 "$out/bench.log" python -m benchmarks.bench_inference --device cuda \
  --rounds 5 --configs main --batches 1
python benchmarks/gpu_summary.py "$out/bench.json" "$scratch"/*.json >> "$summary" 2>&1

# The paper's Tables 9/10 grid (LLCD depth x crop level), fast vs reference, TResNet-L 448, bf16.
stage cost-tables 50 "$out/cost.log" python -m lcnet_fast.experiments cost --device cuda \
  --backbone tresnet_l --image-size 448 --num-classes 80 --d-model 768 --num-heads 8 \
  --dim-feedforward 2048 --batch-size 8 --rounds 3 --grid paper --no-plot --output "$scratch"
cp "$scratch"/cost_cuda.md "$scratch"/cost_cuda.json "$out"/ 2>> "$out/cost.log"
rm -rf "$scratch"
cat "$summary"
