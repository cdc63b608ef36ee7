#!/usr/bin/env python
"""Train tutorial 003's LeNet-5 on Fashion-MNIST (tanh, AveragePooling, SGD, batch 128, 10 epochs).

    python examples/train_fashion_mnist.py                          # the model the tutorial trains
    python examples/train_fashion_mnist.py --model tutorial003_lenet5_bn   # as first written (32x32, BN)

Fashion-MNIST comes from the data folder, Debian's dataset-fashion-mnist package, or a download.
Writes history, weights, run.json and the tutorial's pictures into --out.
"""
import argparse
import pathlib
import sys

import numpy as np

import minicnn
from minicnn import backend, plot, zoo
from minicnn.callbacks import EpochTimer
from minicnn.datasets import fashion_mnist
from minicnn.datasets.fetch import DatasetError
from minicnn.utils import environment_info, to_categorical, write_history, write_json


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tutorial003_lenet5",
                   choices=[n for n, e in zoo.MODELS.items() if e.dataset == "fashion_mnist"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--backend", default="cpu", choices=["cpu", "gpu", "auto"])
    p.add_argument("--data-dir")
    p.add_argument("--out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int)
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    args = p.parse_args(argv)
    entry = zoo.get(args.model)
    backend.set_backend(args.backend)
    minicnn.utils.set_random_seed(args.seed)
    out = pathlib.Path(args.out or f"runs/{entry.name}")
    out.mkdir(parents=True, exist_ok=True)
    try:
        (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(args.data_dir)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    plot.image_grid(x_train, y_train, fashion_mnist.CLASS_NAMES, path=out / "train_images.png")
    # the tutorial: X / X.max(), one channel, one-hot labels; the 32x32 LeNet gets 2 pixels of zero border
    pad = (entry.input_shape[0] - 28) // 2
    def prep(x):
        x = (x.astype("float32") / 255)[..., None]
        return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else x
    x_train, x_test = prep(x_train), prep(x_test)
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)

    model = entry.build()
    model.summary()
    timer = EpochTimer()
    history = model.fit(x_train, y_train, epochs=args.epochs or entry.epochs,
                        batch_size=args.batch_size or entry.batch_size, validation_data=(x_test, y_test),
                        callbacks=[timer], verbose=args.verbose)
    write_history(history, out)
    model.save_weights(out / "final.weights.npz")
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"\nTest accuracy: {acc:.4f}  (test loss {loss:.4f})")
    plot.training_report(model, history, x_test, y_test, fashion_mnist.CLASS_NAMES, out)
    write_json(out / "run.json", {"model": entry.name, "protocol": entry.protocol(), "args": vars(args),
                                  "epoch_seconds": timer.times, "test_accuracy": acc, "test_loss": loss,
                                  "environment": environment_info()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
