"""Dataset loaders against small files in the canonical formats: good, tampered, truncated, missing."""
import numpy as np
import pytest

from minicnn.datasets import cifar10, fashion_mnist
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
