#!/usr/bin/env bash
# Fill the two git-ignored folders a GPU machine needs (it reaches no network), on THIS machine:
#   .whl/   Keras 3 + namex + optree wheels for the device's Python 3.12 (the Keras-JAX side of
#           bench_speed.py) and the airbench 0.1.8 sdist (the fast recipe's anchor, airbench_anchor.py)
#   .data/  the project's CIFAR-10 copy and its installer (from ../shared/datasets)
# Then name both in the device call's carry and run benchmarks/gpu_checks.sh there, e.g.
#   carry [".whl", ".data"], command "bash benchmarks/gpu_checks.sh tests fast-tf32 anchor"
#   bash benchmarks/prepare_gpu_carry.sh [path/to/shared/datasets]
set -euo pipefail
cd "$(dirname "$0")/.."
datasets=${1:-../shared/datasets}
if [ ! -f "$datasets/cifar10-jpeg.npz" ] || [ ! -f "$datasets/install_cifar10.py" ]; then
  echo "error: expected cifar10-jpeg.npz and install_cifar10.py in '$datasets' (give the folder as the argument)" >&2
  exit 2
fi
mkdir -p .whl .data
platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64"
# shellcheck disable=SC2086
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
  -d .whl keras==3.15.1 namex optree
python3 -m pip download --quiet --no-deps --no-binary=:all: -d .whl airbench==0.1.8
install -m 0644 "$datasets/cifar10-jpeg.npz" "$datasets/install_cifar10.py" .data/
ls -l .whl .data
du -sh .whl .data
