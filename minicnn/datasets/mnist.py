"""MNIST: 60,000 training and 10,000 test images of handwritten digits, 28x28 grayscale uint8, 10 classes.

load_data() returns what keras.datasets.mnist.load_data returns: (x_train, y_train), (x_test, y_test)
with x uint8 (N, 28, 28) and y uint8 (N,). Source: Keras's own file mnist.npz (arrays x_train,
y_train, x_test, y_test; md5 8a61469f7ea1b51cbae51d4f78837e45, which Keras 2 checked; Keras 3
checks sha256 731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1 of the same file),
looked for in the data folder, downloaded there from Keras's URL if missing, and md5-checked on
every load (a file that fails is moved aside to mnist.npz.corrupt). Read with allow_pickle=False.
"""
import pathlib
import zipfile

import numpy as np

from minicnn.datasets.fetch import DatasetError, data_dir, download, verify_md5

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MD5 = "8a61469f7ea1b51cbae51d4f78837e45"
FILE = "mnist.npz"
KEYS = ("x_train", "y_train", "x_test", "y_test")
CLASS_NAMES = [str(d) for d in range(10)]


def _target(path):
    """Where mnist.npz is: `path` may be Keras's file name ("mnist.npz", relative to the data folder, or
    an absolute file path) or minicnn's data folder; None means <data folder>/mnist.npz."""
    if path is not None:
        p = pathlib.Path(path).expanduser()
        if p.suffix == ".npz" and not p.is_dir():
            return p if p.is_absolute() else data_dir() / p
    return data_dir(path) / FILE


def _read(path):
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise KeyError(f"no arrays {missing} (it holds {sorted(f.files)})")
            arrays = {k: f[k] for k in KEYS}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path} is not a readable MNIST file ({type(e).__name__}: {e}); delete it to "
                           "download it again") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) \
                or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(f"{path}: MNIST {split} arrays are x {x.dtype} {x.shape} and y {y.dtype} {y.shape}; "
                               "expected uint8 (n, 28, 28) and uint8 (n,)")
    return arrays


def load_data(path=None, download_if_missing=True):
    """Return (x_train, y_train), (x_test, y_test) as Keras does. `path`: the data folder (default
    $MINICNN_DATA_DIR, ~/.minicnn/datasets), or Keras's spelling, a file name such as "mnist.npz"."""
    target = _target(path)
    if target.exists():
        verify_md5(target, MD5)
    elif download_if_missing:
        print(f"Downloading MNIST (11 MB) into {target.parent} ...", flush=True)
        download(URL, MD5, target, "MNIST")
    else:
        raise DatasetError(f"MNIST is not in {target.parent}: put Keras's {FILE} (md5 {MD5}, from {URL}) "
                           f"there as {target.name}")
    arrays = _read(target)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
