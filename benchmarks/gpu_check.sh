#!/usr/bin/env bash
# The one prepared GPU check: build with CUDA, run the GPU parity tests, run the GPU benchmarks.
# Usage (repo root, on a GPU machine with no network):  bash benchmarks/gpu_check.sh OUT_DIR
# Writes under OUT_DIR: env.txt, build.log, gpu_tests.log, bench.log, bench.json, cost.log,
# cost/cost_cuda.{md,json,png}, summary.txt (at most 8 files come back from the device tool).
# Budget: under 8 minutes on one H200. Each stage has its own timeout so a hang cannot eat the rest.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 LCNET_FAST_FORCE_CUDA=1
unset TRITON_INTERPRET

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
} > "$out/env.txt" 2>&1

start=$(date +%s)
timeout 180 python -m pip install --no-build-isolation --no-deps -e . > "$out/build.log" 2>&1
echo "build rc=$? seconds=$(( $(date +%s) - start ))" | tee "$out/summary.txt"
python -c "import lcnet_fast; print(lcnet_fast.build_info())" >> "$out/summary.txt" 2>&1

start=$(date +%s)
timeout 120 python -m pytest -q -m gpu tests -p no:cacheprovider > "$out/gpu_tests.log" 2>&1
echo "gpu tests rc=$? seconds=$(( $(date +%s) - start ))" | tee -a "$out/summary.txt"
tail -n 3 "$out/gpu_tests.log" >> "$out/summary.txt"

start=$(date +%s)
timeout 180 python -m pytest -q benchmarks -p no:cacheprovider --benchmark-json="$out/bench.json" \
  --benchmark-columns=min,median,max,rounds > "$out/bench.log" 2>&1
echo "benchmarks rc=$? seconds=$(( $(date +%s) - start ))" | tee -a "$out/summary.txt"

# The paper's Tables 9/10 grid (LLCD depth x crop level), fast vs reference, TResNet-L 448, bf16.
start=$(date +%s)
timeout 120 python -m lcnet_fast.experiments cost --device cuda --backbone tresnet_l --image-size 448 \
  --num-classes 80 --d-model 768 --num-heads 8 --dim-feedforward 2048 --batch-size 8 --rounds 3 \
  --grid paper --output "$out/cost" > "$out/cost.log" 2>&1
echo "cost tables rc=$? seconds=$(( $(date +%s) - start ))" | tee -a "$out/summary.txt"
cat "$out/summary.txt"
