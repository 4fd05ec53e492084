#!/usr/bin/env bash
# Issue 4 item 8, as one short script for a CUDA machine: the example suite on CUDA against the
# CPU goldens (cross-device profile), then strictly (no profile), with JSON reports and the
# per-statistic drift tables. Writes to ${OUT:-out}/. Needs a Python with a CUDA torch build.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print(torch.cuda.get_device_name(0))" | tee "$OUT/device.txt"
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv >> "$OUT/device.txt" 2>&1
# 1. the default: CPU goldens judged with the cross-device profile (rtol floor 1e-3)
$PY -m pytest examples/test_torch_examples.py examples/test_numpy_examples.py -p no:cacheprovider \
    --weightshape-device=cuda --weightshape-device-strict \
    --weightshape-report="$OUT/cuda.json" 2>&1 | tail -25 | tee "$OUT/cuda.txt"
# 2. the same with TF32 off, to separate TF32 from other kernel differences
NVIDIA_TF32_OVERRIDE=0 $PY -m pytest examples/test_torch_examples.py -p no:cacheprovider \
    --weightshape-device=cuda --weightshape-device-strict \
    --weightshape-report="$OUT/cuda_no_tf32.json" 2>&1 | tail -5 | tee "$OUT/cuda_no_tf32.txt"
for r in cuda cuda_no_tf32; do
    $PY scripts/drift_by_statistic.py "$OUT/$r.json" > "$OUT/$r.md" && cat "$OUT/$r.md"
done
