#!/usr/bin/env bash
# Everything that needs the GPU, in one call on a GPU machine (issue: verify the GPU path, race the
# fast recipe against airbench94, re-measure Keras-JAX), most important first:
#   bash benchmarks/gpu_checks.sh [STAGE ...]     (no argument: tests fast-tf32 anchor bench fast-profile)
# Stages: tests            pytest -m gpu, the whole GPU suite
#         fast-tf32        the fast 90%+ recipe, 5 runs, TF32 GEMMs (also fast-fp32, fast-bf16)
#         anchor           airbench94, 5 runs on the same GPU (benchmarks/airbench_anchor.py)
#         bench            bench_speed.py --backend gpu --keras-backend jax, tutorial000/004, FP32 then TF32
#         fast-profile     the fast recipe's step: GEMM, im2col/col2im, other kernels, CuPy ops + launch gaps
#         step             gpu_step.py --profile on tutorial000/004;  accuracy: train_cifar.py tutorial000
# Every stage has its own timeout, and the whole call a deadline (GPU_DEADLINE seconds, default 480):
# a stage gets what is left, and stages past the deadline are skipped. Each stage's log and results
# are packed into $OUT/results.tgz as soon as the stage ends (the device tool brings back at most 8
# files), and $OUT/summary.txt says how each stage ended.
# Carried folders (git-ignored; fill both on the machine that makes the call with
# `bash benchmarks/prepare_gpu_carry.sh`, then name them in the call's carry): .whl/ (Keras 3 +
# namex + optree wheels for the device's Python 3.12, for the Keras-JAX side of the benchmark; the
# airbench sdist, for the fast recipe's anchor) and .data/ (cifar10-jpeg.npz + install_cifar10.py).
set -o pipefail
OUT=${OUT:-/tmp/minicnn-gpu-out}
WORK=${GPU_WORK:-/tmp/minicnn-gpu-work}
DEADLINE=$(( $(date +%s) + ${GPU_DEADLINE:-480} ))
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
pack() {   # everything so far, replaced atomically
  tar czf "$OUT/.results.tgz" -C "$WORK" . && mv "$OUT/.results.tgz" "$OUT/results.tgz"
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$WORK/env.txt"
python3 -c "import sys, cupy, numpy, numba; print('python', sys.version.split()[0], 'cupy', cupy.__version__, \
'numpy', numpy.__version__, 'numba', numba.__version__)" | tee -a "$WORK/env.txt"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
for sdist in .whl/airbench-*.tar.gz; do
  [ -f "$sdist" ] && tar xzf "$sdist" -C /tmp && export PYTHONPATH=$(ls -d /tmp/airbench-*/ | head -1):$PYTHONPATH
done
export PYTHONPATH=$PWD:$PYTHONPATH
export MINICNN_DATA_DIR=${MINICNN_DATA_DIR:-/tmp/minicnn-data}
if [ -f .data/cifar10-jpeg.npz ] && [ ! -d "$MINICNN_DATA_DIR/cifar-10-batches-py" ]; then
  (cd .data && python3 install_cifar10.py "$MINICNN_DATA_DIR") > "$WORK/data.log" 2>&1 || echo "data install failed"
fi
timeout_py=""
python3 -c "import pytest_timeout" 2>/dev/null && timeout_py="--timeout=90"
stages=""
for stage in ${*:-tests fast-tf32 anchor bench fast-profile}; do
  [ "$stage" = fast ] && stage="fast-fp32 fast-tf32 fast-bf16 anchor fast-profile"
  stages="$stages $stage"
done
# run NAME LIMIT CMD...: the command under min(LIMIT, time left), its output in $WORK/NAME.log
run() {
  local name=$1 limit=$2; shift 2
  local left=$(( DEADLINE - $(date +%s) ))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 15 ]; then echo "$name: skipped (deadline)" | tee -a "$WORK/summary.txt"; return; fi
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  echo "$name: rc $rc after $(( $(date +%s) - t0 )) s (limit $limit s)" | tee -a "$WORK/summary.txt"
  tail -n 30 "$WORK/$name.log"
  cp "$WORK/summary.txt" "$OUT/summary.txt"
  pack
}
for stage in $stages; do
  echo "=== $stage"
  case $stage in
    tests)    run pytest_gpu 170 python3 -m pytest -q -m gpu -rs -p no:cacheprovider $timeout_py --durations=10 ;;
    step)     run gpu_step 150 python3 benchmarks/gpu_step.py --profile --out "$WORK/gpu_step.json" ;;
    accuracy) run train000 240 python3 examples/train_cifar.py --backend gpu --model tutorial000 --out "$WORK/run000" \
                --verbose 2 ;;
    fast-fp32|fast-tf32|fast-bf16)
              precision=${stage#fast-}
              run "fast_$precision" 170 python3 examples/train_cifar_fast.py --backend gpu --runs 5 \
                --precision "$precision" --out "$WORK/fast_$precision" ;;
    anchor)   run airbench94 110 python3 benchmarks/airbench_anchor.py --runs 5 --out "$WORK/airbench94.json" ;;
    fast-profile)
              run gpu_step_fast 70 python3 benchmarks/gpu_step.py --models fast_cifar10 --replays 50 --eager-steps 10 \
                --profile --precisions tf32,fp32 --out "$WORK/gpu_step_fast.json" ;;
    bench)    run bench_fp32 120 python3 benchmarks/bench_speed.py --backend gpu --keras-backend jax --epochs 3 \
                --predict-repeats 1 --models tutorial000,tutorial004 --out "$WORK/bench_fp32"
              run bench_tf32 110 python3 benchmarks/bench_speed.py --backend gpu --keras-backend jax --epochs 3 --tf32 \
                --predict-repeats 1 --models tutorial000,tutorial004 --out "$WORK/bench_tf32" ;;
    *)        echo "unknown stage '$stage': expected tests, fast-tf32, fast-fp32, fast-bf16, fast, anchor, bench," \
                   "fast-profile, step or accuracy" >&2 ;;
  esac
done
pack
cat "$WORK/summary.txt"
