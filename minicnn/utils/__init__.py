"""Small helpers: one-hot labels, train/validation splits, seeding, run records.
(`minicnn.utils.np_utils.to_categorical`, Keras 2's path, is the same function.)"""
import json
import os
import pathlib
import platform

import numpy as np

from minicnn import _keras_names, backend
from minicnn._version import __version__
from minicnn.layers.base import is_int
from minicnn.saving import atomic_write


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
    elif not is_int(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
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


def summarize_runs(results, keys):
    """{key: {mean, std (n - 1; 0 for one run), min, max}} of each key's values over `results`,
    a list of per-run dicts (the training scripts' mean +- std tables)."""
    table = {}
    for key in keys:
        values = np.array([r[key] for r in results], dtype=np.float64)
        table[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                      "min": float(values.min()), "max": float(values.max())}
    return table


def write_json(path, obj):
    """Write obj as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2, default=_json_default) + "\n").encode()))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_history(history, folder):
    """history.json and history.csv (one row per epoch) in folder; returns their paths."""
    folder = pathlib.Path(folder)
    h = history.history if hasattr(history, "history") else history
    epochs = history.epoch if hasattr(history, "epoch") else list(range(len(next(iter(h.values()), []))))
    write_json(folder / "history.json", {"epoch": [e + 1 for e in epochs], **h})
    keys = list(h)
    lines = [",".join(["epoch"] + keys)]
    lines += [",".join([str(e + 1)] + [repr(float(h[k][i])) for k in keys]) for i, e in enumerate(epochs)]
    atomic_write(folder / "history.csv", lambda f: f.write(("\n".join(lines) + "\n").encode()))
    return folder / "history.json", folder / "history.csv"


def environment_info():
    """Versions, backend and threading settings: what a reported figure depends on."""
    info = {"minicnn": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "backend": backend.name, "floatx": backend.floatx(),
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                                                    "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_NUM_THREADS",
                                                    "MINICNN_BACKEND", "MINICNN_TILE_BYTES", "MINICNN_CONV")}}
    try:
        import numba
        info["numba"] = numba.__version__
        info["numba_threads"] = numba.get_num_threads()
        info["numba_threading_layer"] = numba.threading_layer()
    except (ImportError, ValueError):
        pass
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: p.get(k) for k in ("internal_api", "num_threads", "architecture", "version")}
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        pass
    info.update(backend.device_info())
    return info


def __getattr__(name):
    raise _keras_names.missing("utils", name, globals())
