#!/usr/bin/env bash
# The standard preset on a GPU: the four models at their published sizes on the full built-in data (digits,
# synthetic_sentiment), the preset's epochs, bf16 autocast; per-phase times, samples/s (latency table of each
# report), peak GPU memory and accuracy into BENCHMARKS.md's "GPU" section and benchmarks/gpu.json.
# Usage: benchmarks/gpu.sh [cuda|cuda:N]   (needs a CUDA device with bf16; CI never runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
device="${1:-cuda}"
python - "$device" <<'PY'
import sys, torch
assert torch.cuda.is_available(), "no CUDA device: this benchmark needs a GPU"
assert torch.cuda.is_bf16_supported(), "this GPU has no bf16: run standard_smoke with --precision fp16"
print("GPU:", torch.cuda.get_device_name(torch.device(sys.argv[1])))
PY
python -m benchmarks.standard_smoke --device "$device" --precision bf16 --max-samples 0 --preset-epochs \
    --section "## GPU: standard preset, full built-in data, bf16" --json benchmarks/gpu.json
