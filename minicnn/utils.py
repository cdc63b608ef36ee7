"""Small helpers: one-hot labels, train/validation splits, seeding."""
import numpy as np

from minicnn import backend


def to_categorical(y, num_classes=None, dtype="float32"):
    """Class ids (N,) or (N, 1) -> one-hot (N, num_classes). A trailing axis of 1 is squeezed;
    num_classes defaults to max(y) + 1. Returns float32 (Keras 3 returns float64; fit casts anyway)."""
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or (y != np.round(y)).any():
            raise ValueError(f"to_categorical expects integer class ids, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical expects class ids >= 0, got {y.min()}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and y.max() >= num_classes:
        raise ValueError(f"class id {y.max()} is out of range for num_classes={num_classes}")
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def split_first(x, y, n_valid):
    """The tutorials' split: the FIRST n_valid samples for validation, the rest for training.
    Returns (x_train, y_train), (x_valid, y_valid) as views (no copy)."""
    if not 0 < n_valid < len(x):
        raise ValueError(f"n_valid must be in (0, {len(x)}), got {n_valid}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    return (x[n_valid:], y[n_valid:]), (x[:n_valid], y[:n_valid])


def split_last(x, y, validation_split):
    """Keras's validation_split: the LAST fraction (before any shuffling) for validation."""
    if not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
    at = int(np.floor(len(x) * (1 - validation_split)))
    return (x[:at], y[:at]), (x[at:], y[at:])


def set_random_seed(seed):
    """Seed minicnn (weights, dropout, shuffling) and NumPy's global generator."""
    backend.set_seed(seed)
    np.random.seed(seed)
