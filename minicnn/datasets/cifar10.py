"""CIFAR-10: 50,000 training and 10,000 test images, 32x32x3 uint8, 10 classes.

load_data() returns Keras's arrays: (x_train, y_train), (x_test, y_test) with x uint8 (N, 32, 32, 3)
(NHWC, C-contiguous) and y uint8 (N, 1). Source: the canonical archive cifar-10-python.tar.gz
(md5 c58f30108f718f92721af3b95e74349a) in the data folder, downloaded there if missing and
extracted to cifar-10-batches-py/; an existing extracted folder is used as it is.
"""
import numpy as np

from minicnn.datasets import pickles
from minicnn.datasets.fetch import DatasetError, data_dir, download, extract_folder, verify_md5

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _extract(archive, root):
    """Extract the archive's cifar-10-batches-py/ into root, atomically (temp folder, then rename)."""
    extract_folder(archive, root, FOLDER, TRAIN_FILES + [TEST_FILE], "CIFAR-10 batches")


def _read_batch(path):
    """One pickled batch -> (x uint8 (n, 32, 32, 3), y uint8 (n,))."""
    try:
        batch = pickles.load(path)                 # arrays, lists and bytes only: a pickle runs no code here
        data, labels = batch[b"data"], batch[b"labels"]
        data = np.asarray(data, dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise ValueError(f"data {data.shape} and {len(labels)} labels; expected (n, 3072) and n labels")
    except pickles.READ_ERRORS as e:
        raise DatasetError(f"{path} is not a readable CIFAR-10 batch ({type(e).__name__}: {e}); delete the "
                           f"{path.parent} folder to extract or download it again") from None
    # planar rows: 1024 red, 1024 green, 1024 blue -> (n, 3, 32, 32) -> NHWC
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, np.asarray(labels, dtype=np.uint8)


def load_data(path=None, download_if_missing=True):
    """Return (x_train, y_train), (x_test, y_test) as Keras does. `path`: the data folder."""
    root = data_dir(path)
    folder = root / FOLDER
    if not all((folder / f).exists() for f in TRAIN_FILES + [TEST_FILE]):
        archive = root / ARCHIVE
        if archive.exists():
            verify_md5(archive, MD5)
        elif download_if_missing:
            print(f"Downloading CIFAR-10 (163 MB) into {root} ...", flush=True)
            download(URL, MD5, archive, "CIFAR-10")
        else:
            raise DatasetError(f"CIFAR-10 is not in {root}: put {ARCHIVE} (md5 {MD5}) or an extracted "
                               f"{FOLDER}/ folder there")
        _extract(archive, root)
    parts = [_read_batch(folder / f) for f in TRAIN_FILES]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts]).reshape(-1, 1)
    x_test, y_test = _read_batch(folder / TEST_FILE)
    return (x_train, y_train), (x_test, y_test.reshape(-1, 1).astype(y_train.dtype))
