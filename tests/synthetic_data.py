"""Small datasets written in the canonical on-disk formats, for loader and example tests."""
import gzip
import io
import pickle
import tarfile

import numpy as np

LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def cifar_batch(n, seed):
    """A pickled CIFAR-10 batch: planar uint8 rows, labels, bytes keys (the official format)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    images[..., 0] = (labels * 25)[:, None, None]           # red channel encodes the class: learnable
    data = images.transpose(0, 3, 1, 2).reshape(n, 3072)
    batch = {b"batch_label": b"synthetic", b"labels": labels.tolist(), b"data": data,
             b"filenames": [b"img%d.png" % i for i in range(n)]}
    return pickle.dumps(batch, protocol=4), images, labels


def write_cifar_folder(root, n_train_batch=120, n_test=100):
    """root/cifar-10-batches-py/ as extracted from the official archive; returns (x_train, y_train)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for i in range(1, 6):
        raw, x, y = cifar_batch(n_train_batch, i)
        (folder / f"data_batch_{i}").write_bytes(raw)
        xs.append(x), ys.append(y)
    raw, _, _ = cifar_batch(n_test, 99)
    (folder / "test_batch").write_bytes(raw)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": LABEL_NAMES}))
    return np.concatenate(xs), np.concatenate(ys)


def write_cifar_archive(path, n_train_batch=20, n_test=10):
    """A cifar-10-python.tar.gz with the official member names."""
    with tarfile.open(path, "w:gz") as tar:
        members = [(f"data_batch_{i}", cifar_batch(n_train_batch, i)[0]) for i in range(1, 6)]
        members.append(("test_batch", cifar_batch(n_test, 99)[0]))
        for name, raw in members:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def idx_bytes(array):
    """IDX encoding of a uint8 array: 0, 0, 0x08, ndim, big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_fashion_folder(folder, n_train=300, n_test=100, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, :4, :4] = (labels * 25)[:, None, None]
        arrays[split] = (images, labels)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{split}-{kind}-ubyte"
            raw = idx_bytes(arr)
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return arrays
