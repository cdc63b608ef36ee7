"""The example scripts run end to end on small synthetic datasets in the canonical layouts."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from minicnn import zoo

from synthetic_data import write_cifar_folder, write_fashion_folder

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(script, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                          env=env, timeout=600)


def check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, path
    from PIL import Image
    with Image.open(path) as im:
        im.verify()


def test_list_models():
    result = run("train_cifar.py", "--list-models")
    assert result.returncode == 0, result.stderr
    for name, entry in zoo.MODELS.items():
        assert f"`{name}`" in result.stdout and entry.tutorial in result.stdout


def test_train_cifar_end_to_end(tmp_path):
    write_cifar_folder(tmp_path / "data", n_train_batch=120, n_test=100)
    out = tmp_path / "out"
    result = run("train_cifar.py", "--limit", "512", "--epochs", "1", "--data-dir", str(tmp_path / "data"),
                 "--out", str(out), "--verbose", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Total params: 231,338" in result.stdout
    assert "Epoch 1/" not in result.stdout                       # Keras 3 names the epoch only when there are several
    assert "val_loss" in result.stdout and "Test accuracy:" in result.stdout
    for name in ("train_images", "history", "predictions", "confusion_matrix", "filters", "feature_maps"):
        check_png(out / f"{name}.png")
    history = json.loads((out / "history.json").read_text())
    assert set(history) == {"epoch", "accuracy", "loss", "val_accuracy", "val_loss"} and history["epoch"] == [1]
    csv = (out / "history.csv").read_text().splitlines()
    assert csv[0] == "epoch,accuracy,loss,val_accuracy,val_loss" and len(csv) == 2
    record = json.loads((out / "run.json").read_text())
    assert record["train_samples"] == 512 - 51 and record["validation_samples"] == 51
    assert 0 <= record["test_accuracy"] <= 1 and len(record["epoch_seconds"]) == 1
    assert record["environment"]["backend"] == "cpu" and "numpy" in record["environment"]
    with np.load(out / "best.weights.npz") as w:
        assert "conv2d/W" in w.files and w["conv2d/W"].shape == (3, 3, 3, 16)
    page = (out / "explain.html").read_text()               # minicnn.explain, with the run's dynamics
    assert record["explain"] == "explain.html" and '<section id="dot-product">' in page
    assert "No training dynamics recorded" not in page and 'src="http' not in page
    dynamics = json.loads((out / "dynamics.json").read_text())
    assert dynamics["epochs"] == [1] and len(dynamics["layers"]["conv2d"]["grad_norm"]) == 1
    again = subprocess.run([sys.executable, "-m", "minicnn.explain", str(out), "--image", "5", "--out",
                            str(out / "again.html")], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '<section id="dynamics">' in (out / "again.html").read_text()


def test_train_cifar_no_explain(tmp_path):
    write_cifar_folder(tmp_path / "data", n_train_batch=120, n_test=100)
    out = tmp_path / "out"
    result = run("train_cifar.py", "--model", "tutorial003_small", "--limit", "64", "--epochs", "1", "--data-dir",
                 str(tmp_path / "data"), "--out", str(out), "--verbose", "0", "--no-explain")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not (out / "explain.html").exists() and not (out / "dynamics.json").exists()
    assert json.loads((out / "run.json").read_text())["explain"] is None


def test_train_cifar_without_data_is_a_clear_error(tmp_path):
    """No dataset and no network (an address where nothing listens): exit 2, naming the folder."""
    script = (f"import runpy, sys; from minicnn.datasets import cifar10; "
              f"cifar10.URL = 'http://127.0.0.1:9/cifar-10-python.tar.gz'; "
              f"sys.argv = ['train_cifar.py', '--data-dir', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]; "
              f"runpy.run_path({str(ROOT / 'examples' / 'train_cifar.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "cifar-10-python.tar.gz" in result.stderr and str(tmp_path) in result.stderr


def test_train_fashion_mnist_end_to_end(tmp_path):
    write_fashion_folder(tmp_path / "data" / "fashion-mnist")
    out = tmp_path / "out"
    result = run("train_fashion_mnist.py", "--epochs", "1", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                 "--verbose", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Total params: 61,610" in result.stdout and "Test accuracy:" in result.stdout
    for name in ("train_images", "history", "predictions", "confusion_matrix", "filters", "feature_maps"):
        check_png(out / f"{name}.png")
    assert json.loads((out / "run.json").read_text())["model"] == "tutorial003_lenet5"


def test_train_cifar_fast_end_to_end(tmp_path):
    """Two runs of the fast recipe (narrow, one epoch) on synthetic data: accuracy with and
    without test-time augmentation, times, and the mean +- std summary in run.json."""
    write_cifar_folder(tmp_path / "data", n_train_batch=120, n_test=100)
    out = tmp_path / "out"
    result = run("train_cifar_fast.py", "--backend", "cpu", "--limit", "300", "--epochs", "1", "--batch-size", "64",
                 "--widths", "8,8,8", "--runs", "2", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                 "--save-models")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "run 2/2: test accuracy" in result.stdout and "with TTA" in result.stdout
    assert "| fast_cifar10 8x8x8, 1 epochs | cpu | fp32 | 2 | " in result.stdout          # the README row
    report = json.loads((out / "run.json").read_text())
    assert [r["seed"] for r in report["runs"]] == [0, 1]
    assert report["args"]["widths"] == [8, 8, 8] and report["backend"] == "cpu"
    for key in ("test_accuracy", "test_accuracy_tta", "train_seconds"):
        values = [r[key] for r in report["runs"]]
        assert report["summary"][key]["mean"] == np.mean(values)
        assert report["summary"][key]["std"] == np.std(values, ddof=1)
    assert all(0 <= r["test_accuracy_tta"] <= 1 and r["train_seconds"] > 0 for r in report["runs"])
    import minicnn                                  # --save-models: each trained model, as evaluated
    from minicnn.datasets import cifar10
    _, (x_test, y_test) = cifar10.load_data(tmp_path / "data")
    for i, r in enumerate(report["runs"]):
        model = minicnn.load_model(out / f"model-run{i + 1}.npz")
        predicted = model.predict(x_test.astype(np.float32) / 255).argmax(axis=1)
        assert np.mean(predicted == y_test.reshape(-1)) == pytest.approx(r["test_accuracy"], abs=1e-6)
    bad = run("train_cifar_fast.py", "--widths", "8,8", "--data-dir", str(tmp_path / "data"))
    assert bad.returncode == 2 and "--widths takes three positive integers" in bad.stderr
