"""Reading the CIFAR pickles without letting a file run code.

A pickle names Python callables and has them called while it loads (os.system, eval, ... are one
opcode away), so `pickle.load` on a downloaded or hand-copied file runs whatever its author chose.
The CIFAR files need none of that: a dict of bytes, ints, lists and one NumPy array. The
unpickler below resolves only the globals that rebuild a NumPy array (the numpy < 2 and numpy >= 2
spellings, protocols 2 to 5) and the latin-1 bytes decoding Python 3 writes at protocol 2; any
other global is refused with pickle.UnpicklingError before anything is called.
"""
import codecs
import pickle

import numpy as np

try:                                               # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:                                # numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


def _latin1_encode(text, encoding="latin1"):
    """What Python 3 protocol-2 pickles call to rebuild bytes: _codecs.encode(str, 'latin1')."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return codecs.encode(text, "latin1")


ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,     # protocols 0-4
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,             # protocol 5
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds plain containers and NumPy arrays and refuses every other global."""

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a dataset file holds only "
                                         "arrays, lists and bytes (corrupted or malicious file?)") from None


def load(path):
    """Unpickle one file with RestrictedUnpickler, bytes kept as bytes (encoding='bytes', as CIFAR needs)."""
    with open(path, "rb") as f:
        return RestrictedUnpickler(f, encoding="bytes").load()
