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
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
source .venv/bin/activate
export ATTNROBUST_DEVICE=${ATTNROBUST_DEVICE:-cuda}
results=benchmarks/results
python - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"no usable GPU: torch {torch.__version__} (CUDA {torch.version.cuda}); see README, Paper scale")
PY
{ nvidia-smi; python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"; } \
  > "$results/gpu_check_machine.txt"
python -m pytest -m gpu tests/gpu -q -p no:cacheprovider -n 0 2>&1 | tee "$results/gpu_check_tests.txt"
for benchmark in pgd_throughput recipe_epochs resnet18_throughput patch_throughput detr_throughput; do
  python -m "benchmarks.$benchmark"
done
python -m benchmarks.project_paper --device cuda --gpus 8
echo "GPU check written to $results/"
