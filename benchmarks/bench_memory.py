#!/usr/bin/env python
"""Peak memory of predict/evaluate on 50,000 CIFAR-sized images: they stream in batches, so the
extra memory is the output array plus one batch's activations, whatever N is.

    python benchmarks/bench_memory.py [--model tutorial000] [--n 50000] [--batch-size 256]

Each measurement runs in a fresh process: peak RSS after the data are in memory, then after
predict / evaluate; the difference is what minicnn itself needed.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, numpy as np
import minicnn
from minicnn import zoo
name, n, bs, what = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
model = zoo.get(name).build()
model.predict(np.zeros((bs,) + model.input_shape, np.float32), batch_size=bs)     # warm-up: kernels, workspaces
x = np.random.default_rng(0).random((n,) + model.input_shape, dtype=np.float32)
y = np.eye(10, dtype=np.float32)[np.random.default_rng(1).integers(0, 10, n)]
base = peak()
if what == "predict":
    model.predict(x, batch_size=bs)
else:
    model.evaluate(x, y, batch_size=bs, verbose=0)
print(json.dumps({"what": what, "data_mb": x.nbytes / 2**20, "rss_before_mb": base, "rss_peak_mb": peak(),
                  "extra_mb": peak() - base}))
"""


def measure(model, n, batch_size, what):
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(n), str(batch_size), what], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tutorial000")
    p.add_argument("--n", type=int, nargs="+", default=[10_000, 50_000])
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args(argv)
    rows = ["| call | N | data (MB) | peak RSS before (MB) | peak RSS after (MB) | extra (MB) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for what in ("predict", "evaluate"):
        for n in args.n:
            r = measure(args.model, n, args.batch_size, what)
            rows.append(f"| {what} | {n:,} | {r['data_mb']:.0f} | {r['rss_before_mb']:.0f} | {r['rss_peak_mb']:.0f} | "
                        f"{r['extra_mb']:.0f} |")
    print(f"model {args.model}, batch {args.batch_size}\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
