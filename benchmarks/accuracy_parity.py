#!/usr/bin/env python
"""Accuracy side by side: each tutorial model trained in minicnn and in Keras with the tutorial's
protocol, several seeds each, on the same data; mean +- std of the test accuracy.

    python benchmarks/accuracy_parity.py                              # 000, 001 model_1, 002 (20 ep), 003 small
    python benchmarks/accuracy_parity.py --models tutorial000 --seeds 3 --backend gpu --keras-backend jax

Every run is its own process (fresh RNG state, memory, threads). Keras builds and initialises its
own weights (keras.utils.set_random_seed(seed)); minicnn uses minicnn.utils.set_random_seed(seed).
The protocol is the zoo entry's: split, optimizer, batch size, epochs, best-val_loss weights where
the tutorial keeps them. Results: benchmarks/results/accuracy-<date>-<machine>.json and .md.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))                 # runs from a checkout without `pip install -e .`
DEFAULT_EPOCHS = {"tutorial002": 20}          # 002's best val_loss comes near epoch 14 of 100

CHILD = r"""
import json, os, sys, time
framework, name, seed, epochs, backend_name, out = sys.argv[1:7]
seed, epochs = int(seed), int(epochs)
import numpy as np
import minicnn
from minicnn import zoo
from minicnn.datasets import cifar10
from minicnn.utils import split_first, to_categorical
minicnn.set_backend(backend_name)
entry = zoo.get(name)
(x, y), (xt, yt) = cifar10.load_data(download_if_missing=False)
x, xt = x.astype("float32") / 255, xt.astype("float32") / 255
y, yt = to_categorical(y, 10), to_categorical(yt, 10)
if entry.validation == "first5000":
    (x, y), (xv, yv) = split_first(x, y, 5000)
else:
    xv, yv = xt, yt
start = time.perf_counter()
if framework == "keras":                      # Keras initialises its own weights
    import keras
    from minicnn import keras_io
    keras.utils.set_random_seed(seed)
    model = keras_io.to_keras(entry.build(), copy_weights=False)
    Checkpoint, ckpt = keras.callbacks.ModelCheckpoint, os.path.join(out, "best.weights.h5")
else:
    minicnn.utils.set_random_seed(seed)
    model = entry.build()
    Checkpoint, ckpt = minicnn.callbacks.ModelCheckpoint, os.path.join(out, "best.weights.npz")
cbs = [Checkpoint(ckpt, save_best_only=True, save_weights_only=True)] if entry.checkpoint else []
hist = model.fit(x, y, batch_size=entry.batch_size, epochs=epochs, validation_data=(xv, yv), callbacks=cbs,
                 verbose=2, shuffle=True)
if entry.checkpoint:
    model.load_weights(ckpt)
loss, acc = model.evaluate(xt, yt, verbose=0)
val_loss = hist.history["val_loss"]
print("RESULT " + json.dumps({"test_accuracy": float(acc), "test_loss": float(loss), "seconds": time.perf_counter() - start,
                              "best_epoch": int(np.argmin(val_loss)) + 1}))
"""


def run_one(framework, name, seed, epochs, args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]), "KERAS_BACKEND": args.keras_backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([sys.executable, "-c", CHILD, framework, name, str(seed), str(epochs), args.backend, out],
                              capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{framework} {name} seed {seed} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summary(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="tutorial000,tutorial001_model_1,tutorial002,tutorial003_small")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--frameworks", default="minicnn,keras")
    p.add_argument("--backend", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--keras-backend", default="tensorflow", choices=["tensorflow", "jax", "torch"])
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    from minicnn import zoo
    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        entry = zoo.get(name)
        epochs = DEFAULT_EPOCHS.get(name, entry.epochs)
        row = {"model": name, "epochs": epochs, "protocol": entry.protocol()}
        for fw in [f.strip() for f in args.frameworks.split(",")]:
            runs = []
            for seed in range(args.seeds):
                r = run_one(fw, name, seed, epochs, args)
                print(f"{name} {fw} seed {seed}: test accuracy {r['test_accuracy']:.4f} ({r['seconds']:.0f} s)",
                      flush=True)
                runs.append(r)
            mean, std = summary([r["test_accuracy"] for r in runs])
            row[fw] = {"runs": runs, "mean": mean, "std": std}
        if "minicnn" in row and "keras" in row:
            row["difference_points"] = 100 * (row["minicnn"]["mean"] - row["keras"]["mean"])
        results.append(row)
    lines = ["| model | epochs | minicnn test acc (mean ± std) | Keras test acc (mean ± std) | difference (points) |",
             "| --- | --- | --- | --- | --- |"]
    for r in results:
        def cell(fw):
            if fw not in r:
                return "-"
            runs = ", ".join(f"{x['test_accuracy']:.3f}" for x in r[fw]["runs"])
            return f"{r[fw]['mean']:.4f} ± {r[fw]['std']:.4f} ({runs})"
        diff = f"{r['difference_points']:+.2f}" if "difference_points" in r else "-"
        lines.append(f"| {r['model']} | {r['epochs']} | {cell('minicnn')} | {cell('keras')} | {diff} |")
    table = "\n".join(lines)
    stamp = datetime.date.today().isoformat()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"accuracy-{stamp}-{platform.node()}-{args.backend}"
    from minicnn.utils import environment_info, write_json
    write_json(base.with_suffix(".json"), {"date": stamp, "args": vars(args), "results": results,
                                           "environment": environment_info()})
    base.with_suffix(".md").write_text(table + "\n")
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
