#!/usr/bin/env bash
# The GPU checks of fused packs and shared GPUs, as one short run on a lent GPU machine. From the repository root:
#
#   bash benchmarks/gpu_check.sh prepare    # here: the wheels the GPU machine's Python lacks, into .whl/
#   bash benchmarks/gpu_check.sh run        # there: the `device` tool's run, with carry [".whl"]; a few minutes
#   bash benchmarks/gpu_check.sh dry-run    # here, on the CPU, tiny sizes: that the script itself works
#
# `run` prints, and keeps in $OUT/gpu_check.log when $OUT is set:
#   1. the GPU (nvidia-smi) and torch's version;
#   2. benchmarks/fused.py --pack-sizes 1 8 32 --only mlp: samples/s of packs of the default MLP, each against a
#      pack of 1 (target: 32 over 1 >= 6x);
#   3. benchmarks/jobs_per_gpu.py: a 4-job local sweep with jobs_per_gpu 1 and 2, the device each job's
#      metrics.json records, how many jobs ran at once on each GPU, and the two wall times.
# The GPU machine's Python (the device tool's KINDS.md) has torch, pytorch-lightning, torchmetrics, numpy and scipy,
# but not hydra-core, omegaconf or mnist1d: those travel as wheels. tricklab runs there from src/ (PYTHONPATH),
# with W&B off (logger=none).
set -euo pipefail
cd "$(dirname "$0")/.."

version() { python -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }

checks() {  # $1: accelerator, $2: hydra.launcher.gpus, $3: pack sizes, $4: epochs of the sweep's jobs
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  python benchmarks/fused.py --pack-sizes $3 --only mlp --repeats 2 --accelerator "$1"
  python benchmarks/jobs_per_gpu.py --jobs 4 --share 2 --gpus "$2" --epochs "$4"
}

case "${1:-}" in
prepare)
  rm -rf .whl && mkdir .whl
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform any -d .whl "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)" \
    "mnist1d==$(version mnist1d)"
  # hydra-core's parser runtime is published as a source archive only; pure Python, so a wheel built here runs there.
  python -m pip wheel -q --no-deps -w .whl "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
  ls .whl
  ;;
run)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
  python() { python3 "$@"; }
  if [ -n "${OUT:-}" ]; then checks gpu auto "1 8 32" 10 2>&1 | tee "$OUT/gpu_check.log"; else checks gpu auto "1 8 32" 10; fi
  ;;
dry-run)  # GPU id 0 does not exist here: the workers train on the CPU, the plan and the records are still checked
  checks cpu 0 "1 2" 1
  ;;
*)
  echo "usage: bash benchmarks/gpu_check.sh prepare|run|dry-run" >&2
  exit 2
  ;;
esac
