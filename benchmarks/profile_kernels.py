#!/usr/bin/env python
"""Time every kernel call inside real fit() steps of a zoo model (CPU wall clock per call).

    python benchmarks/profile_kernels.py                         # tutorial000, 100 steps
    python benchmarks/profile_kernels.py --model tutorial004 --steps 50

Unlike --profile of bench_speed.py (layer by layer, each timed on its own), this wraps the kernel
dispatch functions (im2col, matmul, pooling, bias+activation, optimizer...) and times them while
Sequential.fit runs its ordinary loop, so cache and thread hand-off effects between kernels are
included. Synthetic data; prints ms per step by (kernel, first argument's shape), largest first.
On the GPU, use benchmarks/gpu_step.py --profile instead (kernels there run asynchronously).
"""
import argparse
import collections
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

KERNELS = ("im2col", "col2im", "maxpool_forward", "maxpool_backward", "avgpool_forward", "avgpool_backward",
           "bias_activation", "bias_activation_backward", "matmul", "column_sum", "dropout_train", "dropout_backward",
           "adam_update",
           "rmsprop_update", "sgd_update", "conv2d_forward", "conv2d_relu_maxpool", "conv2d_backward",
           "conv2d_maxpool_backward", "activation_forward",
           "activation_backward", "take_rows")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tutorial000")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    import numpy as np
    import minicnn
    from minicnn import kernels, zoo
    minicnn.utils.set_random_seed(0)
    entry = zoo.get(args.model)
    model = entry.build()
    B = entry.batch_size
    rng = np.random.default_rng(0)
    n = B * args.steps
    x = rng.random((n,) + entry.input_shape, dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    model.fit(x[:10 * B], y[:10 * B], batch_size=B, epochs=1, verbose=0)        # compile, allocate
    spent, calls = collections.defaultdict(float), collections.Counter()
    for name in KERNELS:
        fn = getattr(kernels, name)

        def timed(*a, _fn=fn, _name=name, **k):
            start = time.perf_counter()
            result = _fn(*a, **k)
            key = (_name, tuple(getattr(a[0], "shape", a[0])))
            spent[key] += time.perf_counter() - start
            calls[key] += 1
            return result
        setattr(kernels, name, timed)
    start = time.perf_counter()
    model.fit(x, y, batch_size=B, epochs=1, verbose=0)
    total = time.perf_counter() - start
    print(f"{args.model}, batch {B}: {total / args.steps * 1e3:.2f} ms per step, of which kernels "
          f"{sum(spent.values()) / args.steps * 1e3:.2f} ms")
    for (name, shape), seconds in sorted(spent.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {name:26s} {str(shape):22s} {seconds / args.steps * 1e3:7.3f} ms  x{calls[name, shape] // args.steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
