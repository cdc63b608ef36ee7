#!/usr/bin/env bash
# Everything that needs the GPU, in one call on a GPU machine (README "Results on one NVIDIA H100"):
#   bash benchmarks/gpu_checks.sh [tests] [step] [accuracy] [bench] [fast]   (no argument: the first four)
# 'fast' is fast-fp32 fast-tf32 fast-bf16 anchor fast-profile; name them one by one to split the work
# across calls of a bounded length (e.g. "tests fast-tf32 anchor", then "fast-fp32 fast-bf16 fast-profile").
# Carried folders (git-ignored; fill both on the machine that makes the call with
# `bash benchmarks/prepare_gpu_carry.sh`, then name them in the call's carry): .whl/ (Keras 3 +
# namex + optree wheels for the device's Python 3.12, for the Keras-JAX side of the benchmark; the
# airbench sdist, for the fast recipe's anchor) and .data/ (cifar10-jpeg.npz + install_cifar10.py).
# Logs and results go to $OUT.
set -o pipefail
OUT=${OUT:-/tmp/minicnn-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$OUT/env.txt"
python3 -c "import cupy, numpy, numba; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'numba', numba.__version__)" | tee -a "$OUT/env.txt"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
for sdist in .whl/airbench-*.tar.gz; do
  [ -f "$sdist" ] && tar xzf "$sdist" -C /tmp && export PYTHONPATH=$(ls -d /tmp/airbench-*/ | head -1):$PYTHONPATH
done
export MINICNN_DATA_DIR=${MINICNN_DATA_DIR:-/tmp/minicnn-data}
if [ -f .data/cifar10-jpeg.npz ] && [ ! -d "$MINICNN_DATA_DIR/cifar-10-batches-py" ]; then
  (cd .data && python3 install_cifar10.py "$MINICNN_DATA_DIR") > "$OUT/data.log" 2>&1 || echo "data install failed"
fi
stages=""
for stage in ${*:-tests step accuracy bench}; do
  [ "$stage" = fast ] && stage="fast-fp32 fast-tf32 fast-bf16 anchor fast-profile"
  stages="$stages $stage"
done
for stage in $stages; do
  echo "=== $stage"
  case $stage in
    tests)    timeout 300 python3 -m pytest -q -m gpu -rs -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.log" | tail -40 ;;
    step)     timeout 200 python3 benchmarks/gpu_step.py --profile --out "$OUT/gpu_step.json" 2>&1 | tail -45 ;;
    accuracy) timeout 300 python3 examples/train_cifar.py --backend gpu --model tutorial000 --out "$OUT/run000" \
                --verbose 2 2>&1 | tee "$OUT/train000.log" | tail -25 ;;
    fast-fp32|fast-tf32|fast-bf16)
              precision=${stage#fast-}
              timeout 300 python3 examples/train_cifar_fast.py --backend gpu --runs 5 --precision $precision \
                --out "$OUT/fast_$precision" 2>&1 | tee "$OUT/fast_$precision.log" | tail -10 ;;
    anchor)   timeout 300 python3 benchmarks/airbench_anchor.py --runs 5 --out "$OUT/airbench94.json" 2>&1 \
                | tee "$OUT/airbench94.log" | tail -8 ;;
    fast-profile)
              timeout 200 python3 benchmarks/gpu_step.py --models fast_cifar10 --replays 100 --eager-steps 20 --profile \
                --precisions fp32,tf32,bf16 --out "$OUT/gpu_step_fast.json" 2>&1 | tail -45 ;;
    bench)    timeout 400 python3 benchmarks/bench_speed.py --backend gpu --keras-backend jax --epochs 4 \
                --models tutorial000,tutorial004 --out "$OUT" 2>&1 | tail -30
              timeout 200 python3 benchmarks/bench_speed.py --backend gpu --keras-backend jax --epochs 4 --tf32 \
                --models tutorial000,tutorial004 --out "$OUT/tf32" 2>&1 | tail -16 ;;
    *)        echo "unknown stage '$stage': expected tests, step, accuracy, bench, fast, fast-fp32, fast-tf32," \
                   "fast-bf16, anchor or fast-profile" >&2 ;;
  esac
done
