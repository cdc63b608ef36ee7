"""airbench94, the anchor of the fast recipe, trained on this project's CIFAR-10 copy (GPU machine).

    python benchmarks/airbench_anchor.py --runs 5 --out results/airbench.json

airbench (Keller Jordan's PyTorch trainer, `pip install airbench`, or its sdist unpacked on
PYTHONPATH) reads `cifar10/train.pt` and `cifar10/test.pt` relative to the working directory when
they exist; this script writes them from `minicnn.datasets.cifar10.load_data()` (the same images
minicnn trains on) into a scratch folder, runs airbench's warm-up (untimed, as its README says),
then `--runs` timed runs. Each run is timed by wall clock around `train94` with the GPU
synchronised: training plus its test-time-augmented evaluation. The same split is reported for
minicnn by examples/train_cifar_fast.py (train_seconds + tta_seconds).
Needs PyTorch with CUDA and torchvision (airbench imports it); nothing of minicnn's runs here.
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np


def write_torch_copy(folder):
    import torch
    from minicnn.datasets import cifar10
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    folder.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train.pt", x_train, y_train), ("test.pt", x_test, y_test)):
        torch.save({"images": torch.tensor(np.ascontiguousarray(x)), "labels": torch.tensor(y.reshape(-1).astype(np.int64)),
                    "classes": list(cifar10.CLASS_NAMES)}, folder / name)
    return len(x_train), len(x_test)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", help="JSON file for the results")
    args = p.parse_args(argv)
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
    work = pathlib.Path(tempfile.mkdtemp(prefix="airbench-"))
    sizes = write_torch_copy(work / "cifar10")
    os.chdir(work)                                   # airbench opens the relative path 'cifar10'
    airbench.warmup94(verbose=False)
    results = []
    for run in range(args.runs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        accuracy = float(airbench.train94(run=run, verbose=False))
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        results.append({"run": run, "test_accuracy_tta": accuracy, "train_and_eval_seconds": seconds})
        print(f"airbench94 run {run + 1}/{args.runs}: test accuracy (TTA) {accuracy:.4f}; "
              f"training + evaluation {seconds:.2f} s", flush=True)
    acc = np.array([r["test_accuracy_tta"] for r in results])
    secs = np.array([r["train_and_eval_seconds"] for r in results])
    report = {"anchor": "airbench94", "airbench_version": getattr(airbench, "__version__", "unknown"),
              "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "train_images": sizes[0],
              "runs": results, "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
              "seconds_mean": float(secs.mean()), "seconds_std": float(secs.std(ddof=1)) if len(secs) > 1 else 0.0}
    print(f"airbench94: {report['accuracy_mean']:.4f} +- {report['accuracy_std']:.4f} accuracy, "
          f"{report['seconds_mean']:.2f} +- {report['seconds_std']:.2f} s over {len(results)} runs")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
