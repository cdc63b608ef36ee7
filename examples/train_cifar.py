#!/usr/bin/env python
"""Train a tutorial model on CIFAR-10 with its tutorial's protocol, and draw the tutorials' pictures.

    python examples/train_cifar.py                      # tutorial 000: 45k/5k split, Adam, batch 32,
                                                        # 15 epochs, best-val_loss weights, test accuracy
    python examples/train_cifar.py --list-models
    python examples/train_cifar.py --model tutorial003_small --epochs 10
    python examples/train_cifar.py --limit 2000 --epochs 1      # a quick look

Writes into --out: history.json/.csv, best (or final) weights, run.json (versions, backend,
timings, metrics), PNGs: training images, accuracy/loss curves, test predictions, confusion
matrix, first-layer filters, feature maps; and explain.html (minicnn.explain: the model's
arithmetic, one test image through every layer) with dynamics.json (callbacks.TrainingDynamics:
per-layer statistics each epoch), both left out with --no-explain.
"""
import argparse
import pathlib
import sys
import time

import numpy as np

import minicnn
from minicnn import backend, explain, plot, zoo
from minicnn.callbacks import EpochTimer, ModelCheckpoint, TrainingDynamics
from minicnn.datasets import cifar10
from minicnn.datasets.fetch import DatasetError
from minicnn.utils import environment_info, to_categorical, write_history, write_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=zoo.DEFAULT, help="zoo model name (see --list-models)")
    p.add_argument("--epochs", type=int, help="default: the tutorial's")
    p.add_argument("--batch-size", type=int, help="default: the tutorial's")
    p.add_argument("--backend", default="auto", choices=["cpu", "gpu", "auto"],
                   help="auto (default): the GPU when CuPy finds one, else the CPU")
    p.add_argument("--data-dir", help="dataset folder (default $MINICNN_DATA_DIR or ~/.minicnn/datasets)")
    p.add_argument("--out", help="output folder (default runs/<model>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="train on the first N training images only")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    p.add_argument("--no-explain", action="store_true",
                   help="no explain.html at the end and no per-layer statistics (dynamics.json) during training")
    p.add_argument("--list-models", action="store_true", help="print the zoo table and exit")
    return p.parse_args(argv)


def prepare_data(entry, args):
    """The tutorial's preprocessing: uint8 -> float32 / 255, one-hot labels, its validation split."""
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(args.data_dir)
    if args.limit:
        if args.limit < 2:
            raise SystemExit(f"--limit must be >= 2, got {args.limit}")
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    raw_train = (x_train, y_train)
    x_train, x_test = x_train.astype("float32") / 255, x_test.astype("float32") / 255
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)
    if entry.validation == "first5000":
        n_valid = 5000 if len(x_train) > 10000 else max(1, len(x_train) // 10)
        (x_train, y_train), valid = minicnn.utils.split_first(x_train, y_train, n_valid)
    else:
        valid = (x_test, y_test)
    return raw_train, (x_train, y_train), valid, (x_test, y_test)


def main(argv=None):
    args = parse_args(argv)
    if args.list_models:
        print(zoo.table())
        return 0
    entry = zoo.get(args.model)
    if entry.dataset != "cifar10":
        raise SystemExit(f"{entry.name} trains on {entry.dataset}: use examples/train_fashion_mnist.py")
    if entry.prepare is not None:
        raise SystemExit(f"{entry.name} is a training recipe of its own (whitening from the data, per-epoch "
                         "augmentation, test-time augmentation): use examples/train_cifar_fast.py")
    backend.set_backend(args.backend)
    minicnn.utils.set_random_seed(args.seed)
    out = pathlib.Path(args.out or f"runs/{entry.name}")
    out.mkdir(parents=True, exist_ok=True)
    epochs, batch_size = args.epochs or entry.epochs, args.batch_size or entry.batch_size

    try:
        raw_train, (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = prepare_data(entry, args)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{entry.name} ({entry.tutorial}): {entry.protocol()}")
    print(f"x_train {x_train.shape}, validation {x_valid.shape[0]}, test {x_test.shape[0]}; "
          f"backend {backend.name}; output -> {out}")
    plot.image_grid(*raw_train, cifar10.CLASS_NAMES, path=out / "train_images.png", title="first training images")

    model = entry.build()
    model.summary()
    weights = out / ("best.weights.npz" if entry.checkpoint else "final.weights.npz")
    timer = EpochTimer()
    callbacks = [timer]
    if not args.no_explain:              # per-layer statistics each epoch, on 64 validation images
        dynamics = TrainingDynamics(x_valid, y_valid, path=out / "dynamics.json")
        callbacks.append(dynamics)
    if entry.checkpoint:
        callbacks.append(ModelCheckpoint(str(weights), monitor="val_loss", verbose=1, save_best_only=True,
                                         save_weights_only=True))
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_data=(x_valid, y_valid),
                        callbacks=callbacks, verbose=args.verbose, shuffle=True)
    train_seconds = time.perf_counter() - start
    write_history(history, out)
    if entry.checkpoint and weights.exists():
        model.load_weights(weights)            # the tutorial reports the best-val_loss weights
    else:
        model.save_weights(weights)
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"\nTest accuracy: {test_acc:.4f}  (test loss {test_loss:.4f}, {'best-val_loss' if entry.checkpoint else 'last-epoch'} weights)")

    probs = plot.training_report(model, history, x_test, y_test, cifar10.CLASS_NAMES, out)
    if not args.no_explain:
        explain.write_page(out / "explain.html", model, x_test, y_test, history=history.history,
                           dynamics=dynamics.record, class_names=cifar10.CLASS_NAMES, probs=probs,
                           title=f"What {entry.name} computes")
    write_json(out / "run.json", {
        "model": entry.name, "tutorial": entry.tutorial, "protocol": entry.protocol(), "args": vars(args),
        "epochs": epochs, "batch_size": batch_size, "train_samples": len(x_train),
        "validation_samples": len(x_valid), "epoch_seconds": timer.times, "train_seconds": train_seconds,
        "test_accuracy": test_acc, "test_loss": test_loss, "weights": weights.name,
        "explain": None if args.no_explain else "explain.html",
        "best_epoch": int(np.argmin(history.history["val_loss"])) + 1 if history.history else None,
        "stopped": model.stop_reason, "environment": environment_info()})
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
