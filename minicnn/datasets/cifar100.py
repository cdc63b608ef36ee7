"""CIFAR-100: 50,000 training and 10,000 test images, 32x32x3 uint8, 100 classes in 20 superclasses.

load_data(label_mode="fine") returns what keras.datasets.cifar100.load_data returns:
(x_train, y_train), (x_test, y_test) with x uint8 (N, 32, 32, 3) (NHWC, C-contiguous) and y int64
(N, 1), the fine labels (0-99) or with label_mode="coarse" the superclasses (0-19). (Keras's
docstring says uint8, but Keras 2 and 3 reshape the pickled list of ints, which gives int64; these
labels are the same arrays.)

Source: the canonical archive cifar-100-python.tar.gz (md5 eb9058c3a382ffc7106e4002c42a8d85; Keras
checks sha256 85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7 of the same file)
in the data folder, downloaded there if missing and extracted to cifar-100-python/; an existing
extracted folder is used as it is. Its pickles are read with a restricted unpickler (pickles.py):
they rebuild NumPy arrays and nothing else.
"""
import numpy as np

from minicnn.datasets import pickles
from minicnn.datasets.fetch import DatasetError, data_dir, download, extract_folder, verify_md5

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
ARCHIVE = "cifar-100-python.tar.gz"
FOLDER = "cifar-100-python"
TRAIN_FILE, TEST_FILE, META_FILE = "train", "test", "meta"
LABEL_MODES = ("fine", "coarse")
# the order of the archive's meta file: label i is name i
FINE_CLASS_NAMES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"]
COARSE_CLASS_NAMES = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2"]
CLASS_NAMES = {"fine": FINE_CLASS_NAMES, "coarse": COARSE_CLASS_NAMES}


def _check_label_mode(label_mode):
    if label_mode not in LABEL_MODES:
        raise ValueError(f'label_mode must be one of "fine", "coarse"; got {label_mode!r}')


def _extract(archive, root):
    """Extract the archive's cifar-100-python/ into root, atomically (temp folder, then rename)."""
    extract_folder(archive, root, FOLDER, [TRAIN_FILE, TEST_FILE], "CIFAR-100 files")


def _read_split(path, label_mode):
    """One pickled split -> (x uint8 (n, 32, 32, 3), y int64 (n, 1)) with the label_mode's labels."""
    key = f"{label_mode}_labels".encode()
    classes = len(CLASS_NAMES[label_mode])
    try:
        split = pickles.load(path)
        data, labels = split[b"data"], split[key]
        data = np.asarray(data, dtype=np.uint8)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1, 1)
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise ValueError(f"data {data.shape} and {len(labels)} labels; expected (n, 3072) and n labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"{label_mode} labels outside 0..{classes - 1}")
    except pickles.READ_ERRORS as e:
        raise DatasetError(f"{path} is not a readable CIFAR-100 file ({type(e).__name__}: {e}); delete the "
                           f"{path.parent} folder to extract or download it again") from None
    # planar rows: 1024 red, 1024 green, 1024 blue -> (n, 3, 32, 32) -> NHWC
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, labels


def load_data(label_mode="fine", path=None, download_if_missing=True):
    """Return (x_train, y_train), (x_test, y_test) as Keras does. `label_mode`: "fine" (100 classes) or
    "coarse" (20 superclasses); `path`: the data folder (default $MINICNN_DATA_DIR, ~/.minicnn/datasets)."""
    _check_label_mode(label_mode)
    root = data_dir(path)
    folder = root / FOLDER
    if not all((folder / f).exists() for f in (TRAIN_FILE, TEST_FILE)):
        archive = root / ARCHIVE
        if archive.exists():
            verify_md5(archive, MD5)
        elif download_if_missing:
            print(f"Downloading CIFAR-100 (161 MB) into {root} ...", flush=True)
            download(URL, MD5, archive, "CIFAR-100")
        else:
            raise DatasetError(f"CIFAR-100 is not in {root}: put {ARCHIVE} (md5 {MD5}) or an extracted "
                               f"{FOLDER}/ folder (holding {TRAIN_FILE} and {TEST_FILE}) there")
        _extract(archive, root)
    x_train, y_train = _read_split(folder / TRAIN_FILE, label_mode)
    x_test, y_test = _read_split(folder / TEST_FILE, label_mode)
    return (x_train, y_train), (x_test, y_test)
