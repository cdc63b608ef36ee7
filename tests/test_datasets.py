"""Dataset loaders against small files in the canonical formats: good, tampered, truncated, missing."""
import collections
import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from minicnn.datasets import cifar10, cifar100, fashion_mnist, mnist
from minicnn.datasets.fetch import DatasetError, md5_of
from minicnn.utils import split_first, split_last, summarize_runs, to_categorical

from synthetic_data import idx_bytes, write_cifar_archive, write_cifar_folder, write_fashion_folder


def test_cifar_extracted_folder_used_as_is(tmp_path):
    x_expected, y_expected = write_cifar_folder(tmp_path, n_train_batch=30, n_test=20)
    (x, y), (xt, yt) = cifar10.load_data(tmp_path, download_if_missing=False)
    assert x.shape == (150, 32, 32, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert y.shape == (150, 1) and y.dtype == np.uint8 and yt.shape == (20, 1) and yt.dtype == np.uint8
    np.testing.assert_array_equal(x, x_expected)                 # planar rows decoded to NHWC
    np.testing.assert_array_equal(y[:, 0], y_expected)


def test_cifar_hostile_pickle_is_refused(tmp_path):
    """A CIFAR-10 batch whose pickle would call os.mkdir (a stand-in for os.system) is refused
    before anything runs (the batches are read by datasets/pickles.py's restricted unpickler)."""
    write_cifar_folder(tmp_path, n_train_batch=4, n_test=4)
    marker = tmp_path / "planted"
    hostile = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Plant(marker)}
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(hostile, protocol=2))
    with pytest.raises(DatasetError, match=r"data_batch_2 is not a readable CIFAR-10 batch \(UnpicklingError"):
        cifar10.load_data(tmp_path, download_if_missing=False)
    assert not marker.exists()


def test_cifar_archive_verified_and_extracted(tmp_path, monkeypatch):
    archive = tmp_path / cifar10.ARCHIVE
    write_cifar_archive(archive)
    monkeypatch.setattr(cifar10, "MD5", md5_of(archive))
    (x, y), (xt, yt) = cifar10.load_data(tmp_path)
    assert x.shape == (100, 32, 32, 3) and xt.shape == (10, 32, 32, 3)
    assert (tmp_path / "cifar-10-batches-py" / "test_batch").exists()
    assert not (tmp_path / "cifar-10-batches-py.partial").exists()


def test_cifar_tampered_archive_is_rejected_and_moved_aside(tmp_path, monkeypatch):
    archive = tmp_path / cifar10.ARCHIVE
    write_cifar_archive(archive)
    monkeypatch.setattr(cifar10, "MD5", md5_of(archive))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="truncated or tampered"):
        cifar10.load_data(tmp_path)
    assert not archive.exists() and (tmp_path / (cifar10.ARCHIVE + ".corrupt")).exists()
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_cifar_truncated_archive_is_rejected(tmp_path, monkeypatch):
    archive = tmp_path / cifar10.ARCHIVE
    write_cifar_archive(archive)
    monkeypatch.setattr(cifar10, "MD5", md5_of(archive))
    archive.write_bytes(archive.read_bytes()[:500])
    with pytest.raises(DatasetError, match="md5"):
        cifar10.load_data(tmp_path)
    assert not archive.exists()


def test_cifar_missing_without_network_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")   # nothing listens there
    with pytest.raises(DatasetError, match=r"could not download(.|\n)*put the file cifar-10-python.tar.gz") as e:
        cifar10.load_data(tmp_path)
    assert str(tmp_path) in str(e.value)
    assert not (tmp_path / cifar10.ARCHIVE).exists()


def test_cifar_broken_batch_file(tmp_path):
    write_cifar_folder(tmp_path, n_train_batch=10, n_test=10)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DatasetError, match="data_batch_3 is not a readable CIFAR-10 batch"):
        cifar10.load_data(tmp_path, download_if_missing=False)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    write_cifar_folder(tmp_path, n_train_batch=4, n_test=4)
    monkeypatch.setenv("MINICNN_DATA_DIR", str(tmp_path))
    (x, _), _ = cifar10.load_data(download_if_missing=False)
    assert len(x) == 20


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_data_dir(tmp_path, gz):
    arrays = write_fashion_folder(tmp_path / "fashion-mnist", gz=gz)
    (x, y), (xt, yt) = fashion_mnist.load_data(tmp_path, download_if_missing=False)
    assert x.shape == (300, 28, 28) and x.dtype == np.uint8 and y.shape == (300,) and xt.shape == (100, 28, 28)
    np.testing.assert_array_equal(x, arrays["train"][0])
    np.testing.assert_array_equal(yt, arrays["t10k"][1])


def test_fashion_mnist_falls_back_to_debian_folder(tmp_path, monkeypatch):
    write_fashion_folder(tmp_path / "system")
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    (x, _), _ = fashion_mnist.load_data(tmp_path / "empty", download_if_missing=False)
    assert x.shape == (300, 28, 28)


def test_fashion_mnist_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "nothing")
    monkeypatch.setattr(fashion_mnist, "URL", "http://127.0.0.1:9/")
    with pytest.raises(DatasetError, match="could not download"):
        fashion_mnist.load_data(tmp_path)


def test_fashion_mnist_gzip_bomb_and_wrapping_sizes_are_refused(tmp_path, monkeypatch):
    """A .gz that inflates past any Fashion-MNIST file is refused after 64 MB, not read whole; an IDX
    header whose sizes multiply past 2**64 is refused, not wrapped around to a size that fits."""
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "nothing")
    write_fashion_folder(tmp_path / "fashion-mnist")
    bomb = tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(idx_bytes(np.zeros((1, 28, 28), np.uint8))[:16] + bytes(2**26 + 1), 1))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz holds more than 67108864 bytes"):
        fashion_mnist.load_data(tmp_path, download_if_missing=False)
    with pytest.raises(DatasetError, match=r"promises \(65536, 65536, 65536, 65536\) = 18446744073709551616 bytes"):
        fashion_mnist.parse_idx(b"\x00\x00\x08\x04" + (65536).to_bytes(4, "big") * 4)


def test_idx_parsing():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(fashion_mnist.parse_idx(idx_bytes(a)), a)
    with pytest.raises(DatasetError, match="magic"):
        fashion_mnist.parse_idx(b"\x01\x02\x08\x01" + bytes(8))
    with pytest.raises(DatasetError, match="truncated"):
        fashion_mnist.parse_idx(idx_bytes(a)[:-3])
    with pytest.raises(DatasetError, match="unsigned byte"):
        fashion_mnist.parse_idx(b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + bytes(4))


def test_to_categorical():
    y = np.array([[3], [0], [9]], dtype=np.uint8)
    one = to_categorical(y, 10)
    assert one.shape == (3, 10) and one.dtype == np.float32
    np.testing.assert_array_equal(one.argmax(1), [3, 0, 9])
    assert to_categorical([0, 2]).shape == (2, 3)
    with pytest.raises(ValueError, match="out of range"):
        to_categorical([0, 10], 10)
    with pytest.raises(ValueError, match="integer"):
        to_categorical([0.5, 1.0])


def test_splits():
    x, y = np.arange(100), np.arange(100) * 2
    (xt, yt), (xv, yv) = split_first(x, y, 10)
    assert xv.tolist() == list(range(10)) and len(xt) == 90 and yt[0] == 20
    (xt, yt), (xv, yv) = split_last(x, y, 0.25)
    assert xv[0] == 75 and len(xt) == 75
    with pytest.raises(ValueError):
        split_first(x, y, 0)


def test_summarize_runs_gives_the_sample_spread():
    runs = [{"acc": 0.90, "s": 3.0}, {"acc": 0.91, "s": 5.0}, {"acc": 0.95, "s": 4.0}]
    table = summarize_runs(runs, ["acc", "s"])
    assert table["acc"]["mean"] == pytest.approx(0.92) and table["acc"]["std"] == pytest.approx(np.std([0.90, 0.91, 0.95], ddof=1))
    assert table["s"] == {"mean": 4.0, "std": 1.0, "min": 3.0, "max": 5.0}
    assert summarize_runs(runs[:1], ["s"])["s"]["std"] == 0.0            # one run: no spread, not NaN


# ---- MNIST (Keras's mnist.npz) and CIFAR-100 (cifar-100-python.tar.gz): small files in those layouts ----

def _write_mnist_npz(path, n_train=50, n_test=20, **override):
    """An mnist.npz with Keras's array names; digit d's image has a d*25 square at the top left."""
    rng = np.random.default_rng(7)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        x[:, :3, :3] = (y * 25)[:, None, None]
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    arrays.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:                   # np.savez on a file object: the name stays mnist.npz
        np.savez(f, **arrays)
    return arrays


def _cifar100_split(n, seed, protocol=4):
    """A pickled CIFAR-100 split as in the real archive: bytes keys, planar (n, 3072) uint8 rows,
    fine_labels / coarse_labels lists of ints; returns (raw, images NHWC, fine, coarse)."""
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 100, n)
    coarse = fine // 5
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    data = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(n, 3072))
    split = {b"filenames": [b"img_%d.png" % i for i in range(n)], b"batch_label": b"synthetic",
             b"fine_labels": fine.tolist(), b"coarse_labels": coarse.tolist(), b"data": data}
    return pickle.dumps(split, protocol=protocol), images, fine, coarse


def _cifar100_meta():
    return pickle.dumps({b"fine_label_names": [s.encode() for s in cifar100.FINE_CLASS_NAMES],
                         b"coarse_label_names": [s.encode() for s in cifar100.COARSE_CLASS_NAMES]}, protocol=4)


def _write_cifar100_folder(root, n_train=40, n_test=12, protocol=4):
    """root/cifar-100-python/{train, test, meta} as extracted; returns {split: (images, fine, coarse)}."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        raw, *out[split] = _cifar100_split(n, seed, protocol)
        (folder / split).write_bytes(raw)
    (folder / "meta").write_bytes(_cifar100_meta())
    return out


def _write_cifar100_archive(path, n_train=30, n_test=10):
    with tarfile.open(path, "w:gz") as tar:
        members = [("train", _cifar100_split(n_train, 1)[0]), ("test", _cifar100_split(n_test, 2)[0]),
                   ("meta", _cifar100_meta()), ("file.txt~", b"")]
        for name, raw in members:
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


class _Plant:
    """Unpickling this calls os.mkdir(marker): stands in for a hostile pickle's os.system."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.fixture
def offline(monkeypatch):
    """Every download URL points at a port where nothing listens: no network is ever reached."""
    monkeypatch.setattr(mnist, "URL", "http://127.0.0.1:9/mnist.npz")
    monkeypatch.setattr(cifar100, "URL", "http://127.0.0.1:9/cifar-100-python.tar.gz")


def test_keras_import_paths():
    import minicnn
    from minicnn import datasets
    assert {"cifar10", "cifar100", "fashion_mnist", "mnist", "data_dir"} <= set(datasets.__all__)
    for name in ("cifar10", "cifar100", "fashion_mnist", "mnist"):
        assert callable(getattr(datasets, name).load_data) and getattr(minicnn.datasets, name) is getattr(datasets, name)


def test_mnist_from_the_data_folder(tmp_path, monkeypatch, offline):
    arrays = _write_mnist_npz(tmp_path / "mnist.npz")
    monkeypatch.setattr(mnist, "MD5", md5_of(tmp_path / "mnist.npz"))
    (x, y), (xt, yt) = mnist.load_data(tmp_path)
    assert x.shape == (50, 28, 28) and x.dtype == np.uint8 and y.shape == (50,) and y.dtype == np.uint8
    assert xt.shape == (20, 28, 28) and xt.dtype == np.uint8 and yt.shape == (20,) and yt.dtype == np.uint8
    for got, key in ((x, "x_train"), (y, "y_train"), (xt, "x_test"), (yt, "y_test")):
        np.testing.assert_array_equal(got, arrays[key])
    assert x[4, 1, 2] == y[4] * 25


def test_mnist_path_spellings(tmp_path, monkeypatch, offline):
    """Keras's spelling path="mnist.npz" (relative to the data folder), an absolute file, and $MINICNN_DATA_DIR."""
    _write_mnist_npz(tmp_path / "mnist.npz")
    other = _write_mnist_npz(tmp_path / "elsewhere" / "my_mnist.npz", n_train=7)
    monkeypatch.setattr(mnist, "MD5", md5_of(tmp_path / "mnist.npz"))
    monkeypatch.setenv("MINICNN_DATA_DIR", str(tmp_path))
    assert len(mnist.load_data()[0][0]) == 50
    assert len(mnist.load_data("mnist.npz")[0][0]) == 50
    monkeypatch.setattr(mnist, "MD5", md5_of(tmp_path / "elsewhere" / "my_mnist.npz"))
    (x, _), _ = mnist.load_data(tmp_path / "elsewhere" / "my_mnist.npz")
    np.testing.assert_array_equal(x, other["x_train"])


def test_mnist_tampered_file_is_rejected_and_moved_aside(tmp_path, monkeypatch, offline):
    path = tmp_path / "mnist.npz"
    _write_mnist_npz(path)
    monkeypatch.setattr(mnist, "MD5", md5_of(path))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="truncated or tampered"):
        mnist.load_data(tmp_path)
    assert not path.exists() and (tmp_path / "mnist.npz.corrupt").exists()


def test_mnist_missing_says_which_file_to_put_where(tmp_path, offline):
    with pytest.raises(DatasetError, match=r"MNIST is not in .*mnist\.npz \(md5 8a61469f7ea1b51cbae51d4f78837e45") as e:
        mnist.load_data(tmp_path, download_if_missing=False)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(DatasetError, match=r"could not download MNIST(.|\n)*put the file mnist.npz") as e:
        mnist.load_data(tmp_path)
    assert str(tmp_path) in str(e.value) and not (tmp_path / "mnist.npz").exists()


def test_mnist_wrong_contents_are_reported(tmp_path, monkeypatch):
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as f:
        np.savez(f, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8), x_test=np.zeros((1, 28, 28), np.uint8))
    monkeypatch.setattr(mnist, "MD5", md5_of(path))
    with pytest.raises(DatasetError, match=r"not a readable MNIST file.*y_test"):
        mnist.load_data(tmp_path, download_if_missing=False)
    _write_mnist_npz(path, y_test=np.zeros(20, np.int64))
    monkeypatch.setattr(mnist, "MD5", md5_of(path))
    with pytest.raises(DatasetError, match=r"MNIST test arrays .* expected uint8"):
        mnist.load_data(tmp_path, download_if_missing=False)


def test_mnist_never_unpickles(tmp_path, monkeypatch):
    """An npz whose array is a pickle (object dtype) is refused, never loaded: allow_pickle=False."""
    path = tmp_path / "mnist.npz"
    marker = tmp_path / "planted"
    _write_mnist_npz(path, y_test=np.array([_Plant(marker)], dtype=object))
    monkeypatch.setattr(mnist, "MD5", md5_of(path))
    with pytest.raises(DatasetError, match="not a readable MNIST file"):
        mnist.load_data(tmp_path, download_if_missing=False)
    assert not marker.exists()


@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
def test_cifar100_extracted_folder_used_as_is(tmp_path, label_mode):
    expected = _write_cifar100_folder(tmp_path)
    (x, y), (xt, yt) = cifar100.load_data(label_mode, path=tmp_path, download_if_missing=False)
    assert x.shape == (40, 32, 32, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert xt.shape == (12, 32, 32, 3) and xt.dtype == np.uint8
    assert y.shape == (40, 1) and yt.shape == (12, 1) and y.dtype == np.int64 and yt.dtype == np.int64   # as Keras
    column = 1 if label_mode == "fine" else 2
    np.testing.assert_array_equal(x, expected["train"][0])
    np.testing.assert_array_equal(y[:, 0], expected["train"][column])
    np.testing.assert_array_equal(yt[:, 0], expected["test"][column])
    assert y.max() < (100 if label_mode == "fine" else 20)


def test_cifar100_planar_rows_become_nhwc(tmp_path):
    """A known value at row r, column c of the blue plane lands at x[i, r, c, 2]."""
    raw, _, fine, coarse = _cifar100_split(3, 5)
    split = pickle.loads(raw)
    data = np.zeros((3, 3072), np.uint8)
    data[1, 2 * 1024 + 5 * 32 + 7] = 201          # image 1, blue, row 5, column 7
    data[2, 0 * 1024 + 31 * 32 + 0] = 77          # image 2, red, row 31, column 0
    split[b"data"] = data
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test"):
        (folder / name).write_bytes(pickle.dumps(split, protocol=4))
    (x, _), _ = cifar100.load_data(path=tmp_path, download_if_missing=False)
    assert x[1, 5, 7, 2] == 201 and x[2, 31, 0, 0] == 77 and int(x.sum()) == 201 + 77


def test_cifar100_label_mode_is_checked_first(tmp_path, offline):
    with pytest.raises(ValueError, match=r'label_mode must be one of "fine", "coarse"; got \'Fine\''):
        cifar100.load_data("Fine", path=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cifar100_archive_verified_and_extracted(tmp_path, monkeypatch, offline):
    archive = tmp_path / cifar100.ARCHIVE
    _write_cifar100_archive(archive)
    monkeypatch.setattr(cifar100, "MD5", md5_of(archive))
    (x, y), (xt, yt) = cifar100.load_data("coarse", path=tmp_path)
    assert x.shape == (30, 32, 32, 3) and xt.shape == (10, 32, 32, 3) and y.shape == (30, 1) and y.max() < 20
    assert sorted(p.name for p in (tmp_path / "cifar-100-python").iterdir()) == ["file.txt~", "meta", "test", "train"]
    assert not (tmp_path / "cifar-100-python.partial").exists()
    monkeypatch.setattr(cifar100, "MD5", "0" * 32)            # the extracted folder is now used as it is
    (x2, _), _ = cifar100.load_data("coarse", path=tmp_path)
    np.testing.assert_array_equal(x2, x)


def test_cifar100_tampered_archive_is_rejected_and_moved_aside(tmp_path, monkeypatch, offline):
    archive = tmp_path / cifar100.ARCHIVE
    _write_cifar100_archive(archive)
    monkeypatch.setattr(cifar100, "MD5", md5_of(archive))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="truncated or tampered"):
        cifar100.load_data(path=tmp_path)
    assert not archive.exists() and (tmp_path / (cifar100.ARCHIVE + ".corrupt")).exists()
    assert not (tmp_path / "cifar-100-python").exists()


def test_cifar100_archive_without_the_splits(tmp_path, monkeypatch):
    archive = tmp_path / cifar100.ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-100-python/meta")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    monkeypatch.setattr(cifar100, "MD5", md5_of(archive))
    with pytest.raises(DatasetError, match=r"does not hold the CIFAR-100 files \['train', 'test'\]"):
        cifar100.load_data(path=tmp_path, download_if_missing=False)
    assert not (tmp_path / "cifar-100-python").exists() and not (tmp_path / "cifar-100-python.partial").exists()


def test_cifar100_incomplete_folder_next_to_an_archive(tmp_path, monkeypatch):
    archive = tmp_path / cifar100.ARCHIVE
    _write_cifar100_archive(archive)
    monkeypatch.setattr(cifar100, "MD5", md5_of(archive))
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"cifar-100-python is incomplete \(no \['test'\]\): delete that folder"):
        cifar100.load_data(path=tmp_path, download_if_missing=False)


def test_cifar100_missing_says_which_file_to_put_where(tmp_path, monkeypatch, offline):
    with pytest.raises(DatasetError, match=r"CIFAR-100 is not in .*: put cifar-100-python.tar.gz "
                                           r"\(md5 eb9058c3a382ffc7106e4002c42a8d85\) or an extracted cifar-100-python/"):
        cifar100.load_data(path=tmp_path, download_if_missing=False)
    monkeypatch.setenv("MINICNN_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match=r"could not download CIFAR-100(.|\n)*put the file cifar-100-python.tar.gz") as e:
        cifar100.load_data()
    assert str(tmp_path) in str(e.value) and not (tmp_path / cifar100.ARCHIVE).exists()


def test_cifar100_hostile_pickle_is_refused(tmp_path):
    """A split whose pickle would call os.mkdir (a stand-in for os.system) is refused before anything runs."""
    _write_cifar100_folder(tmp_path)
    marker = tmp_path / "planted"
    hostile = {b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [0], b"coarse_labels": [0], b"x": _Plant(marker)}
    (tmp_path / "cifar-100-python" / "train").write_bytes(pickle.dumps(hostile, protocol=4))
    with pytest.raises(DatasetError, match=r"train is not a readable CIFAR-100 file \(UnpicklingError: refusing to load"):
        cifar100.load_data(path=tmp_path, download_if_missing=False)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar100_pickles_of_every_protocol_are_read(tmp_path, protocol):
    """Python 2's cPickle (the real archive), Python 3's protocol 2 (bytes via _codecs.encode), 4 and 5."""
    expected = _write_cifar100_folder(tmp_path, n_train=6, n_test=4, protocol=protocol)
    (x, y), _ = cifar100.load_data(path=tmp_path, download_if_missing=False)
    np.testing.assert_array_equal(x, expected["train"][0])
    np.testing.assert_array_equal(y[:, 0], expected["train"][1])


def test_restricted_unpickler_allows_arrays_only():
    from minicnn.datasets import pickles
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for protocol in (2, 4, 5):
        got = pickles.RestrictedUnpickler(io.BytesIO(pickle.dumps({b"a": a, b"l": [1, 2]}, protocol=protocol)),
                                          encoding="bytes").load()
        np.testing.assert_array_equal(got[b"a"], a)
    for payload in (pickle.dumps(eval), pickle.dumps(os.system), pickle.dumps(collections.OrderedDict()),
                    b"c_codecs\nencode\n(Vx\nVrot13\ntR."):
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            pickles.RestrictedUnpickler(io.BytesIO(payload), encoding="bytes").load()


# Pickles that would make Python's unpickler take memory without bound, or make bytes pass for
# object pointers (a crash): each is refused by pickles.load before it is unpickled.
HOSTILE_PICKLES = {
    "memo index": (b"\x80\x02}r" + struct.pack("<I", 2**31) + b".", r"memo index 2147483648 at byte 3"),
    "bytes longer than the file": (b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"abc",
                                   r"BINBYTES8 at byte 2 announces 1099511627776 bytes; 3 are left"),
    "frame longer than the file": (b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"}.", r"a frame of 1099511627776 bytes"),
    "void dtype given object flags": (pickle.dumps(np.zeros(1, "V8"), protocol=2), r"refusing dtype 'V8'"),
    "object array": (pickle.dumps(np.array([1, "a"], dtype=object), protocol=4), r"refusing dtype 'O8'"),
    "ndarray called": (b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a;\x85U\x01O\x86R.", r"refusing to call numpy.ndarray"),
    "a large empty array": (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xca\x9a;\x85U\x01b\x87R.",
                            r"refusing _reconstruct\(..., \(1000000000,\)"),
    "no STOP": (b"\x80\x02}", r"no STOP before byte 3"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_PICKLES))
def test_restricted_unpickler_bounds_memory_and_dtypes(tmp_path, name):
    from minicnn.datasets import pickles
    payload, message = HOSTILE_PICKLES[name]
    (tmp_path / "p").write_bytes(payload)
    with pytest.raises(pickle.UnpicklingError, match=message):
        pickles.load(tmp_path / "p")


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_hostile_memory_pickle_is_a_dataset_error(tmp_path, dataset):
    """A 9-byte batch whose memo index would have the unpickler fill 32 GB, and a batch that is an
    array where a dict belongs: DatasetErrors naming the file, for CIFAR-10 and CIFAR-100 alike."""
    if dataset == "cifar10":
        write_cifar_folder(tmp_path, n_train_batch=4, n_test=4)
        path, load = tmp_path / "cifar-10-batches-py" / "data_batch_1", lambda: cifar10.load_data(tmp_path, False)
    else:
        _write_cifar100_folder(tmp_path)
        path, load = tmp_path / "cifar-100-python" / "train", lambda: cifar100.load_data(path=tmp_path, download_if_missing=False)
    path.write_bytes(HOSTILE_PICKLES["memo index"][0])
    with pytest.raises(DatasetError, match=rf"{path.name} is not a readable CIFAR-10\d? (batch|file) \(UnpicklingError: memo"):
        load()
    path.write_bytes(pickle.dumps(np.zeros((1, 3072), np.uint8), protocol=4))
    with pytest.raises(DatasetError, match=rf"{path.name} is not a readable CIFAR-10\d? (batch|file) \(IndexError"):
        load()


def test_cifar100_broken_and_wrong_files(tmp_path):
    _write_cifar100_folder(tmp_path)
    train = tmp_path / "cifar-100-python" / "train"
    good = train.read_bytes()
    train.write_bytes(good[:200])
    with pytest.raises(DatasetError, match="train is not a readable CIFAR-100 file"):
        cifar100.load_data(path=tmp_path, download_if_missing=False)
    split = pickle.loads(good)
    split[b"fine_labels"][0] = 100
    train.write_bytes(pickle.dumps(split, protocol=4))
    with pytest.raises(DatasetError, match=r"fine labels outside 0..99"):
        cifar100.load_data(path=tmp_path, download_if_missing=False)
    del split[b"coarse_labels"]
    train.write_bytes(pickle.dumps(split, protocol=4))
    with pytest.raises(DatasetError, match="KeyError"):
        cifar100.load_data("coarse", path=tmp_path, download_if_missing=False)


def test_same_arrays_as_keras(tmp_path, monkeypatch):
    """Keras's own loaders, pointed at the same files, return the same arrays, dtypes and shapes."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pytest.importorskip("keras", reason="Keras is not installed: dataset parity with Keras skipped")
    k_mnist = pytest.importorskip("keras.src.datasets.mnist", reason="Keras 3's keras.src.datasets not found")
    k_cifar100 = pytest.importorskip("keras.src.datasets.cifar100", reason="Keras 3's keras.src.datasets not found")
    _write_mnist_npz(tmp_path / "mnist.npz")
    _write_cifar100_folder(tmp_path, n_train=8, n_test=5)
    monkeypatch.setattr(mnist, "MD5", md5_of(tmp_path / "mnist.npz"))
    monkeypatch.setattr(k_mnist, "get_file", lambda *a, **k: str(tmp_path / "mnist.npz"))
    monkeypatch.setattr(k_cifar100, "get_file", lambda *a, **k: str(tmp_path))
    pairs = [(k_mnist.load_data(), mnist.load_data(tmp_path, download_if_missing=False))]
    for mode in ("fine", "coarse"):
        pairs.append((k_cifar100.load_data(mode), cifar100.load_data(mode, path=tmp_path, download_if_missing=False)))
    for theirs, ours in pairs:
        for t, o in zip(theirs[0] + theirs[1], ours[0] + ours[1]):
            assert (o.dtype, o.shape) == (t.dtype, t.shape)
            np.testing.assert_array_equal(o, t)
