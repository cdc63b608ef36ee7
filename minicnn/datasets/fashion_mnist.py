"""Fashion-MNIST: 60,000 training and 10,000 test images, 28x28 grayscale uint8, 10 classes.

load_data() returns (x_train, y_train), (x_test, y_test) with x uint8 (N, 28, 28) and y uint8 (N,),
as Keras does. The four canonical IDX files (gzipped or not) are looked for in
<data folder>/fashion-mnist/, then in Debian's /usr/share/datasets/fashion-mnist/
(`apt-get install dataset-fashion-mnist`), and downloaded (md5-checked) if found nowhere.
"""
import gzip
import math
import pathlib

import numpy as np

from minicnn.datasets.fetch import DatasetError, data_dir, download

URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FILES = {"train_images": ("train-images-idx3-ubyte", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
         "train_labels": ("train-labels-idx1-ubyte", "25c81989df183df01b3e8a0aad5dffbe"),
         "test_images": ("t10k-images-idx3-ubyte", "bef4ecab320f06d8554ea6380940ec79"),
         "test_labels": ("t10k-labels-idx1-ubyte", "bb300cfdad3c16e7a12a480ee83cd310")}
SYSTEM_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
MAX_FILE_BYTES = 2**26          # 64 MB: the training images are 47 MB
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


def parse_idx(raw, what="IDX data"):
    """Parse an IDX file's bytes: magic 0x00 0x00 <type> <ndim>, ndim big-endian uint32 sizes, data.

    Only unsigned bytes (type 0x08) are used by (Fashion-)MNIST. Returns a uint8 array of that shape.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"{what}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DatasetError(f"{what}: IDX element type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{what}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(shape)                         # (Python ints: no int64 wrap-around)
    if len(raw) - header != size:
        raise DatasetError(f"{what}: IDX header promises {shape} = {size} bytes, the file holds "
                           f"{len(raw) - header} (truncated or corrupted)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read(path):
    """One IDX file's array, reading at most MAX_FILE_BYTES (gunzipped): a .gz that inflates past
    that (a gzip bomb, or not Fashion-MNIST) is refused before it fills memory."""
    try:
        with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path} could not be read ({type(e).__name__}: {e})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DatasetError(f"{path} holds more than {MAX_FILE_BYTES} bytes (unzipped); the largest "
                           "Fashion-MNIST file holds 47,040,016")
    return parse_idx(raw, str(path))


def _find(name, folders):
    for folder in folders:
        for candidate in (folder / name, folder / (name + ".gz")):
            if candidate.exists():
                return candidate
    return None


def load_data(path=None, download_if_missing=True):
    own = data_dir(path) / "fashion-mnist"
    arrays = {}
    for key, (name, md5) in FILES.items():
        found = _find(name, [own, SYSTEM_DIR])
        if found is None:
            if not download_if_missing:
                raise DatasetError(f"Fashion-MNIST file {name}(.gz) is neither in {own} nor in {SYSTEM_DIR}; "
                                   "`apt-get install dataset-fashion-mnist` or put the IDX files in " + str(own))
            found = download(URL + name + ".gz", md5, own / (name + ".gz"), f"Fashion-MNIST {name}")
        arrays[key] = _read(found)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(f"Fashion-MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
    return (arrays["train_images"], arrays["train_labels"]), (arrays["test_images"], arrays["test_labels"])
