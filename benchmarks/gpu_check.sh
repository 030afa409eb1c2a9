#!/usr/bin/env bash
# The GPU check (issue 20 §5), one command on a machine with an NVIDIA GPU:  bash benchmarks/gpu_check.sh
# 1. the machine (nvidia-smi, the torch build) → benchmarks/results/gpu_check_machine.txt
# 2. the GPU tests (tests/gpu, marker gpu: resume equality under the deterministic settings, bf16 within 1 point)
#    → benchmarks/results/gpu_check_tests.txt
# 3. every benchmark on the GPU at paper size, fp32 and bf16 where the benchmark has both
#    → benchmarks/results/*_cuda.json
# 4. the paper profile's projected wall time per stage on 1 and 8 GPUs from those throughputs
#    → benchmarks/results/paper_projection_cuda.json
# Fails at once when no GPU is usable (the benchmarks would otherwise measure the CPU).
# Python: the project's .venv (make install), or on a GPU machine that reaches no package index, its own Python with a
# CUDA torch, given as GPU_CHECK_PYTHON, plus the wheels of what that Python lacks (GPU_CHECK_WHEELS, a folder made by
# benchmarks/gpu_wheels.sh where PyPI is reachable; installed into a temporary folder, never over the machine's).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${GPU_CHECK_PYTHON:-}" ]]; then
  bin=$(mktemp -d)                   # `python` runs it by its own path (a virtual environment's stays one)
  printf '#!/bin/sh\nexec %q "$@"\n' "$(command -v "$GPU_CHECK_PYTHON")" > "$bin/python"
  chmod +x "$bin/python"
  export PATH="$bin:$PATH"
  if [[ -n "${GPU_CHECK_WHEELS:-}" ]]; then
    python -m pip install --quiet --disable-pip-version-check --no-index --no-deps --target "$bin/site" \
      "$GPU_CHECK_WHEELS"/*.whl
    export PYTHONPATH="$bin/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
else
  make install >/dev/null
  source .venv/bin/activate
fi
export ATTNROBUST_DEVICE=${ATTNROBUST_DEVICE:-cuda}
results=benchmarks/results
python - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"no usable GPU: torch {torch.__version__} (CUDA {torch.version.cuda}); see README, Paper scale")
PY
{ nvidia-smi; python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"; } \
  > "$results/gpu_check_machine.txt"
tests=0                               # a failing GPU test still leaves the benchmarks to run; the exit status tells
python -m pytest -m gpu tests/gpu -q -p no:cacheprovider -n 0 2>&1 | tee "$results/gpu_check_tests.txt" || tests=$?
for benchmark in pgd_throughput recipe_epochs resnet18_throughput patch_throughput detr_throughput; do
  python -m "benchmarks.$benchmark"
done
python -m benchmarks.project_paper --device cuda --gpus 8
echo "GPU check written to $results/ (GPU tests: $([[ $tests == 0 ]] && echo passed || echo "FAILED, exit $tests"))"
exit "$tests"
