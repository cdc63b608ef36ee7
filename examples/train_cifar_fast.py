#!/usr/bin/env python
"""Train the fast 90%+ CIFAR-10 recipe (zoo entry fast_cifar10) and report accuracy and time per run.

    python examples/train_cifar_fast.py                     # one run, GPU when CuPy finds one
    python examples/train_cifar_fast.py --runs 5 --precision tf32   # mean +- std over 5 runs (GPU)
    python examples/train_cifar_fast.py --limit 5000 --epochs 2 --widths 16,32,32    # a quick CPU look

Each run: a fresh network (seed + run index), its whitening layer computed from the first 5,000
training images, `epochs` epochs of SGD on reflect-padded 2-pixel crops with alternating flips,
then the test accuracy with and without test-time augmentation (flips + 1-pixel shifts). The
time reported covers the whitening layer's computation and fit (data already in memory / on the device);
on the GPU a short untimed warm-up first compiles every kernel, as other fast trainers do.
Writes --out/run.json (every run, the summary, the settings and the machine), rewritten after each run
("complete": false until the last) so that an interrupted series keeps the runs it finished.
"""
import argparse
import math
import pathlib
import sys
import time

import numpy as np

import minicnn
from minicnn import augment, backend, losses, zoo
from minicnn.datasets import cifar10
from minicnn.datasets.fetch import DatasetError
from minicnn.model import Sequential
from minicnn.utils import environment_info, summarize_runs, to_categorical, write_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=1, help="independent training runs (default 1)")
    p.add_argument("--epochs", type=int, default=zoo.FAST_EPOCHS)
    p.add_argument("--batch-size", type=int, default=zoo.FAST_BATCH)
    p.add_argument("--widths", default=",".join(map(str, zoo.FAST_WIDTHS)),
                   help="channels of the three blocks (default 64,256,256)")
    p.add_argument("--lr", type=float, default=1.5, help="peak learning rate (Keras scale: mean loss)")
    p.add_argument("--momentum", type=float, default=0.85, help="Nesterov momentum")
    p.add_argument("--decay-per-step", type=float, default=0.0133,
                   help="weight decay per step at the peak learning rate (weight_decay = this / lr)")
    p.add_argument("--bias-scale", type=float, default=64.0, help="learning-rate factor of the BN biases")
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--no-lookahead", action="store_true", help="plain SGD, without Lookahead")
    p.add_argument("--backend", default="auto", choices=["cpu", "gpu", "auto"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16", "fp16"],
                   help="GPU: how float32 GEMMs compute (tensor cores for tf32/bf16/fp16); weights, "
                        "gradients and BN statistics stay float32")
    p.add_argument("--tf32", action="store_true", help="the same as --precision tf32")
    p.add_argument("--no-tta", action="store_true", help="skip the test-time-augmented evaluation")
    p.add_argument("--tta-average", default="logits", choices=["logits", "probabilities"],
                   help="what the test-time augmentation averages over the views (airbench: logits)")
    p.add_argument("--data-dir", help="dataset folder (default $MINICNN_DATA_DIR or ~/.minicnn/datasets)")
    p.add_argument("--limit", type=int, help="train on the first N training images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2])
    p.add_argument("--out", default="runs/fast_cifar10")
    p.add_argument("--save-models", action="store_true",
                   help="also save each run's trained model as OUT/model-runN.npz (minicnn.load_model reads it)")
    args = p.parse_args(argv)
    try:
        args.widths = tuple(int(w) for w in args.widths.split(","))
    except ValueError:
        p.error(f"--widths takes three integers like 64,256,256, got {args.widths!r}")
    if len(args.widths) != 3 or min(args.widths) < 1:
        p.error(f"--widths takes three positive integers, got {args.widths}")
    for name in ("runs", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name, low, high in (("lr", 0, None), ("momentum", 0, 1), ("decay_per_step", 0, 1), ("bias_scale", 0, None),
                            ("label_smoothing", 0, 1)):
        value = getattr(args, name)
        if value < low or (high is not None and value >= high) or (name == "lr" and value == 0):
            p.error(f"--{name.replace('_', '-')} must be in [{low}, {high or 'inf'}){' and > 0' * (name == 'lr')}, "
                    f"got {value}")
    return args


def build(entry, args, n_train):
    """A fresh compiled network for a run of args.epochs over n_train images."""
    model = Sequential(zoo._fast_layers(args.widths), name=entry.name)
    model.build(entry.input_shape)
    steps = args.epochs * math.ceil(n_train / args.batch_size)
    opt = zoo.fast_optimizer(steps, lr=args.lr, momentum=args.momentum, decay_per_step=args.decay_per_step,
                             bias_scale=args.bias_scale, lookahead=not args.no_lookahead)
    model.compile(optimizer=opt, loss=losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
                  metrics=["accuracy"])
    return model


def one_run(entry, args, seed, data, save=None):
    (x_train, y_train), (x_test, y_test), test_labels = data
    minicnn.utils.set_random_seed(seed)
    model = build(entry, args, len(x_train))
    start = time.perf_counter()                       # timed from the whitening layer on, as airbench
    entry.prepare(model, x_train)
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=args.verbose,
                        augment=augment.FlipTranslate(pad=2, flips="alternating", seed=seed),
                        callbacks=entry.callbacks())          # the whitening bias trains for 3 epochs
    seconds = time.perf_counter() - start
    if save is not None:
        model.save(save)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=2000, verbose=0)
    result = {"seed": seed, "train_seconds": seconds, "test_accuracy": accuracy,
              "train_accuracy_last_epoch": history.history["accuracy"][-1],
              "train_loss_last_epoch": history.history["loss"][-1]}
    if not args.no_tta:
        start = time.perf_counter()
        probs = augment.predict_tta(model, x_test, batch_size=2000, average=args.tta_average)
        result["tta_seconds"] = time.perf_counter() - start
        result["test_accuracy_tta"] = float((probs.argmax(axis=1) == test_labels).mean())
    return result


def main(argv=None):
    args = parse_args(argv)
    backend.set_backend(args.backend)
    if args.tf32:
        args.precision = "tf32"
    if args.precision != "fp32":
        if backend.name != "gpu":
            raise SystemExit(f"--precision {args.precision} needs the GPU backend (the CPU computes in float32)")
        backend.set_gemm_precision(args.precision)
    entry = zoo.get("fast_cifar10")
    try:
        (x_train, y_train), (x_test, y_test) = cifar10.load_data(args.data_dir)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.limit:
        if args.limit < 2:
            raise SystemExit(f"--limit must be >= 2, got {args.limit}")
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    test_labels = np.asarray(y_test).reshape(-1)
    x_train, x_test = x_train.astype(np.float32) / 255, x_test.astype(np.float32) / 255
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)
    if backend.name == "gpu":                      # on the device once, for every run
        x_train, y_train = backend.to_device(x_train), backend.to_device(y_train)
        x_test, y_test = backend.to_device(x_test), backend.to_device(y_test)
    data = ((x_train, y_train), (x_test, y_test), test_labels)
    print(f"fast_cifar10: widths {args.widths}, batch {args.batch_size}, {args.epochs} epochs, peak lr {args.lr}, "
          f"{len(x_train)} training images; backend {backend.name}"
          + f" ({args.precision} GEMMs)" * (backend.name == "gpu") + f"; {args.runs} run(s)")

    if backend.name == "gpu":                      # compile every kernel once, untimed
        warm = argparse.Namespace(**{**vars(args), "epochs": 1, "no_tta": True, "verbose": 0})
        n = min(len(x_train), 2 * args.batch_size + 1)
        one_run(entry, warm, args.seed + 10_000, ((x_train[:n], y_train[:n]), (x_test[:1000], y_test[:1000]),
                                                 test_labels[:1000]))

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []

    def record(complete, **summary):
        write_json(out / "run.json", {"recipe": "fast_cifar10", "args": {**vars(args), "widths": list(args.widths)},
                                      "backend": backend.name, "gemm_precision": args.precision, "runs": results,
                                      "complete": complete, **summary})
    for i in range(args.runs):
        r = one_run(entry, args, args.seed + i, data, save=out / f"model-run{i + 1}.npz" if args.save_models else None)
        results.append(r)
        tta = f", with TTA {r['test_accuracy_tta']:.4f}" if "test_accuracy_tta" in r else ""
        print(f"run {i + 1}/{args.runs}: test accuracy {r['test_accuracy']:.4f}{tta}; training {r['train_seconds']:.2f} s",
              flush=True)
        if i + 1 < args.runs:                      # the runs so far survive an interrupted series
            record(False)
    keys = ["test_accuracy", "train_seconds"] + ([] if args.no_tta else ["test_accuracy_tta"])
    table = summarize_runs(results, keys)
    for k in keys:
        s = table[k]
        print(f"{k:>18}: {s['mean']:.4f} +- {s['std']:.4f}  (min {s['min']:.4f}, max {s['max']:.4f}, {len(results)} runs)")
    tta = table.get("test_accuracy_tta")
    print("\n| recipe | device | GEMMs | runs | test accuracy | with TTA | training s |\n| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| fast_cifar10 {'x'.join(map(str, args.widths))}, {args.epochs} epochs | {backend.name} | {args.precision} | "
          f"{len(results)} | {table['test_accuracy']['mean']:.4f} +- {table['test_accuracy']['std']:.4f} | "
          + (f"{tta['mean']:.4f} +- {tta['std']:.4f}" if tta else "-")
          + f" | {table['train_seconds']['mean']:.2f} +- {table['train_seconds']['std']:.2f} |")
    record(True, summary=table, environment=environment_info())
    print(f"wrote {out / 'run.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
