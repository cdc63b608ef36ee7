"""airbench94, the anchor of the fast recipe, trained on this project's CIFAR-10 copy (GPU machine).

    python benchmarks/airbench_anchor.py --runs 5 --out results/airbench.json
    python benchmarks/airbench_anchor.py --runs 1 --limit 5000      # a quick look that it runs

airbench (Keller Jordan's PyTorch trainer, `pip install airbench`, or its sdist unpacked on
PYTHONPATH; written against 0.1.8) reads `cifar10/train.pt` and `cifar10/test.pt` relative to the
working directory when they exist; this script writes them from `minicnn.datasets.cifar10.load_data()`
(the same images minicnn trains on) into a scratch folder, runs airbench's warm-up (untimed, as its
README says), then `--runs` runs, each timed by wall clock with the GPU synchronised, in the same
split examples/train_cifar_fast.py reports for minicnn:
  - train_seconds: `train94(verbose=False)`, which computes the whitening layer and trains, and
    returns the trained network (airbench 0.1.8 returns the model, not an accuracy);
  - tta_seconds: airbench's own `evaluate` at its test-time-augmentation level (mirror + 1-pixel
    translations, logits averaged), the accuracy airbench reports;
  - the accuracy without test-time augmentation, evaluated untimed.
Needs PyTorch with CUDA and torchvision (airbench imports it); nothing of minicnn's runs here.
"""
import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np


def write_torch_copy(folder, limit=None):
    """cifar10/train.pt and test.pt in airbench's format (uint8 NHWC images, int64 labels)."""
    import torch
    from minicnn.datasets import cifar10
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    folder.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train.pt", x_train, y_train), ("test.pt", x_test, y_test)):
        torch.save({"images": torch.tensor(np.ascontiguousarray(x)), "labels": torch.tensor(y.reshape(-1).astype(np.int64)),
                    "classes": list(cifar10.CLASS_NAMES)}, folder / name)
    return len(x_train), len(x_test)


def one_run(airbench, torch, run, test_loader, tta_level):
    """Train airbench94 once; its times and accuracies (see the module docstring)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    model = airbench.train94(run=run, verbose=False)
    torch.cuda.synchronize()
    train_seconds = time.perf_counter() - start
    if not isinstance(model, torch.nn.Module):
        raise RuntimeError(f"airbench.train94 returned {type(model).__name__}, expected the trained network "
                           f"(this script follows airbench 0.1.8; found {airbench_version(airbench)})")
    start = time.perf_counter()
    accuracy_tta = float(airbench.evaluate(model, test_loader, tta_level=tta_level))
    torch.cuda.synchronize()
    tta_seconds = time.perf_counter() - start
    accuracy = float(airbench.evaluate(model, test_loader, tta_level=0))
    return {"run": run, "test_accuracy": accuracy, "test_accuracy_tta": accuracy_tta,
            "train_seconds": train_seconds, "tta_seconds": tta_seconds}


def airbench_version(airbench):
    """The installed airbench's version, or where it was imported from (an unpacked sdist has no metadata)."""
    from importlib import metadata
    try:
        return metadata.version("airbench")
    except metadata.PackageNotFoundError:
        return f"unknown ({pathlib.Path(airbench.__file__).parent.parent.name})"


def main(argv=None):
    from minicnn.utils import summarize_runs, write_json
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--limit", type=int, help="train on the first N training images only (a quick look)")
    p.add_argument("--out", help="JSON file for the results")
    args = p.parse_args(argv)
    if args.runs < 1 or (args.limit is not None and args.limit < 1024):
        p.error(f"--runs must be >= 1 and --limit >= 1024 (one batch), got {args.runs} and {args.limit}")
    try:
        import torch
        import airbench
    except ImportError as e:
        print(f"error: airbench needs PyTorch, torchvision and the airbench package ({e}); "
              "pip install airbench, or put its unpacked sdist on PYTHONPATH", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("error: airbench runs on a CUDA GPU only", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out).resolve() if args.out else None      # before the chdir below
    work = pathlib.Path(tempfile.mkdtemp(prefix="airbench-"))
    sizes = write_torch_copy(work / "cifar10", args.limit)
    os.chdir(work)                                   # airbench opens the relative path 'cifar10'
    hyp = getattr(getattr(airbench, "lib_airbench94", None), "hyp", {})
    tta_level = hyp.get("net", {}).get("tta_level", 2)
    test_loader = airbench.CifarLoader("cifar10", train=False, batch_size=2000)
    airbench.warmup94(verbose=False)
    results = []
    for run in range(args.runs):
        r = one_run(airbench, torch, run, test_loader, tta_level)
        results.append(r)
        print(f"airbench94 run {run + 1}/{args.runs}: test accuracy {r['test_accuracy']:.4f}, with TTA "
              f"{r['test_accuracy_tta']:.4f}; training {r['train_seconds']:.2f} s, TTA {r['tta_seconds']:.2f} s",
              flush=True)
    keys = ("test_accuracy", "test_accuracy_tta", "train_seconds", "tta_seconds")
    table = summarize_runs(results, keys)
    for k in keys:
        s = table[k]
        print(f"{k:>18}: {s['mean']:.4f} +- {s['std']:.4f}  (min {s['min']:.4f}, max {s['max']:.4f}, {len(results)} runs)")
    acc, tta, secs = table["test_accuracy"], table["test_accuracy_tta"], table["train_seconds"]
    print("\n| recipe | device | GEMMs | runs | test accuracy | with TTA | training s |\n| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| airbench94 (PyTorch {torch.__version__}) | {torch.cuda.get_device_name(0)} | fp16 | {len(results)} | "
          f"{acc['mean']:.4f} +- {acc['std']:.4f} | {tta['mean']:.4f} +- {tta['std']:.4f} | "
          f"{secs['mean']:.2f} +- {secs['std']:.2f} |")
    report = {"anchor": "airbench94", "airbench_version": airbench_version(airbench),
              "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "train_images": sizes[0],
              "tta_level": tta_level, "runs": results, "summary": table}
    if out:
        write_json(out, report)                      # atomic: an interrupted run leaves no half file
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
