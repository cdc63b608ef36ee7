"""python -m minicnn.explain RUN_DIR_OR_MODEL_FILE [--image N] [--out page.html]

A run folder of examples/train_cifar.py (run.json, the weights, history.json, dynamics.json):
the zoo model it names, with its weights, on the CIFAR-10 test set; the page goes to
RUN_DIR/explain.html. A model file (model.save(...): .minicnn, .keras, .h5): the model it holds,
on the test set of --dataset; the page goes next to it, as NAME.explain.html.
"""
import argparse
import json
import pathlib
import sys

from minicnn import datasets, explain, models, zoo
from minicnn.datasets.fetch import DatasetError

DATASETS = {"cifar10": datasets.cifar10, "mnist": datasets.mnist, "fashion_mnist": datasets.fashion_mnist}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m minicnn.explain", description=__doc__.split("\n")[0])
    p.add_argument("path", help="a train_cifar.py run folder, or a model file")
    p.add_argument("--image", type=int, default=0, help="which test image to follow through the layers")
    p.add_argument("--out", help="the HTML file to write")
    p.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS), help="test set for a model file")
    p.add_argument("--data-dir", help="dataset folder (default $MINICNN_DATA_DIR or ~/.minicnn/datasets)")
    p.add_argument("--test-limit", type=int, help="use the first N test images only")
    return p.parse_args(argv)


def _read_json(path):
    return json.loads(path.read_text()) if path.exists() else None


def load_run(folder):
    """(model, history, dynamics, dataset name, data folder, model name) of a train_cifar.py run folder."""
    run = _read_json(folder / "run.json")
    if run is None:
        raise SystemExit(f"{folder} has no run.json: not a train_cifar.py run folder")
    entry = zoo.get(run["model"])
    model = entry.build()
    model.load_weights(folder / run["weights"])
    history = _read_json(folder / "history.json") or {}
    history.pop("epoch", None)
    return (model, history, _read_json(folder / "dynamics.json"), entry.dataset,
            (run.get("args") or {}).get("data_dir"), entry.name)


def test_set(name, data_dir, model):
    """The dataset's test images as the tutorials feed them (float32 / 255, channels last)."""
    module = DATASETS[name]
    _, (x, y) = module.load_data(path=data_dir)
    x = x.astype("float32") / 255
    if x.ndim == 3:
        x = x[..., None]
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise SystemExit(f"the model takes {tuple(model.input_shape)} images, {name}'s are {x.shape[1:]}: "
                         "pick its dataset with --dataset")
    return x, y, module.CLASS_NAMES


def main(argv=None):
    args = parse_args(argv)
    path = pathlib.Path(args.path)
    if path.is_dir():
        model, history, dynamics, dataset, data_dir, name = load_run(path)
        out = pathlib.Path(args.out or path / "explain.html")
    elif path.is_file():
        model, history, dynamics, dataset, data_dir = models.load_model(path), None, None, args.dataset, None
        name = path.name
        out = pathlib.Path(args.out or path.with_name(path.name + ".explain.html"))
    else:
        print(f"error: {path} is neither a run folder nor a model file", file=sys.stderr)
        return 2
    try:
        x, y, class_names = test_set(dataset, args.data_dir or data_dir, model)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.test_limit:
        x, y = x[:args.test_limit], y[:args.test_limit]
    try:
        explain.write_page(out, model, x, y, history=history, dynamics=dynamics, image=args.image,
                           class_names=class_names, title=f"What {name} computes")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
