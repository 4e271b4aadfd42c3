#!/usr/bin/env bash
# The GPU path, which no CPU machine here runs: install the `gpu` extra (unsloth, bitsandbytes) from wheels carried
# to the machine, run the `gpu`-marked tests on the tiny model (unsloth SFT/DPO/SFT+DPO, 4-bit QLoRA, ORPO) and print
# tokens/s of adapterci against plain TRL for SFT and DPO. Budget: under 10 minutes on one GPU.
#
# Prepare the wheels where there is network (same Python and platform as the GPU machine), next to the checkout:
#   pip download -d wheels ".[gpu]" pytest pytest-timeout pytest-xdist --extra-index-url https://download.pytorch.org/whl/cu124
# Then on the GPU machine, from the repository root:   WHEELS=wheels bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-wheels}
VENV=${VENV:-/tmp/adapterci-gpu}
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  timeout 240 "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" -e ".[gpu]" pytest pytest-timeout pytest-xdist
fi
PY="$VENV/bin/python"
"$PY" -c 'import torch, unsloth, bitsandbytes; assert torch.cuda.is_available(); print("torch", torch.__version__, "cuda", torch.version.cuda, "unsloth", unsloth.__version__)'
echo "== gpu-marked tests (unsloth SFT and DPO, 4-bit QLoRA, ORPO) on the tiny model"
timeout 300 "$PY" -m pytest -p no:cacheprovider -q -m gpu tests/test_train.py tests/test_preferences.py
echo "== tokens/s: adapterci against plain TRL (tiny model, 40 steps)"
timeout 60 "$PY" bench/train_throughput.py --tiny --max-steps 40
timeout 60 "$PY" bench/train_throughput.py --tiny --dpo --max-steps 40
