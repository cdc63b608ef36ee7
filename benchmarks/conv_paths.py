#!/usr/bin/env python
"""The CPU's two ways of running a stride-1 Conv2D, side by side, layer by layer (the zoo's shapes).

    python benchmarks/conv_paths.py                     # every layer below, 9 alternating rounds
    python benchmarks/conv_paths.py --layers m2c2,t0c1 --rounds 15

For each layer: ms per forward on im2col row blocks (cpu_conv.set_implicit("never")) and reading
the input in place ("always"), and, for scale, ms per backward (row blocks in both cases) without
dx (a first layer) and with it. The two forwards alternate within one process and the best of the
rounds is kept: these VMs drift by 2x over minutes, so only a side-by-side figure
means anything. This is the measurement behind cpu_conv.implicit_pays.
"""
import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

# name: (N, H, W, C, F, kernel, padding on each side), batch 32 as in the tutorials
LAYERS = {"m2c1": (32, 32, 32, 3, 32, 5, 2), "m2c2": (32, 32, 32, 32, 32, 5, 0), "m2c3": (32, 14, 14, 32, 32, 3, 0),
          "m2c4": (32, 12, 12, 32, 16, 3, 0), "t0c1": (32, 32, 32, 3, 16, 3, 1), "t0c2": (32, 16, 16, 16, 32, 3, 1),
          "t0c3": (32, 8, 8, 32, 64, 3, 1), "t0c4": (32, 4, 4, 64, 128, 3, 1), "t4c2": (32, 32, 32, 32, 32, 3, 1),
          "t4c4": (32, 16, 16, 64, 64, 3, 1), "t4c6": (32, 8, 8, 128, 128, 3, 1)}
WHAT = {"m2c": "tutorial001_model_2 conv", "t0c": "tutorial000 conv", "t4c": "tutorial004 conv"}


def time_layer(cc, shape, rounds, repeats=3):
    N, H, W, C, F, k, p = shape
    OH, OW = H + 2 * p - k + 1, W + 2 * p - k + 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    Wt = (rng.standard_normal((k, k, C, F)) * 0.05).astype(np.float32)
    b, g = np.zeros(F, np.float32), (k, k, 1, 1, p, p, OH, OW)
    dW, db = np.empty_like(Wt), np.empty_like(b)
    best = {}

    def keep(key, seconds):
        best[key] = min(best.get(key, 1e9), seconds)
    for _ in range(rounds):
        for mode in ("never", "always"):
            cc.set_implicit(mode)
            y = cc.conv2d_forward(x, Wt, b, "relu", *g)                  # warm (and compiled)
            t0 = time.perf_counter()
            for _ in range(repeats):
                y = cc.conv2d_forward(x, Wt, b, "relu", *g)
            keep(mode, (time.perf_counter() - t0) / repeats)
        dy = np.ones_like(y)
        for dx, what in ((False, "dW"), (True, "dW+dx")):
            cc.conv2d_backward(dy, x, y, Wt, "relu", *g, dW, db, dx)
            t0 = time.perf_counter()
            for _ in range(repeats):
                cc.conv2d_backward(dy, x, y, Wt, "relu", *g, dW, db, dx)
            keep(what, (time.perf_counter() - t0) / repeats)
    cc.set_implicit("auto")
    return best, cc.implicit_pays(1, 1, k, OW)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", default=",".join(LAYERS), help="comma-separated names from LAYERS")
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args(argv)
    names = [n.strip() for n in args.layers.split(",") if n.strip()]
    unknown = [n for n in names if n not in LAYERS]
    if unknown or args.rounds < 1:
        p.error(f"--layers takes names from {sorted(LAYERS)} and --rounds >= 1, got {unknown or args.rounds}")
    from minicnn.kernels import cpu_conv
    print("| layer | shape (N, H, W, C -> F, k) | forward ms: row blocks -> in place | auto takes in place "
          "| backward ms: dW, dW+dx |\n| --- | --- | --- | --- | --- |")
    for name in names:
        N, H, W, C, F, k, _ = LAYERS[name]
        best, auto = time_layer(cpu_conv, LAYERS[name], args.rounds)
        print(f"| {WHAT[name[:3]]} {name[3:]} | {N}, {H}, {W}, {C} -> {F}, {k}x{k} | {best['never'] * 1e3:.3f} -> "
              f"{best['always'] * 1e3:.3f} | {'yes' if auto else 'no'} | {best['dW'] * 1e3:.3f}, "
              f"{best['dW+dx'] * 1e3:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
