"""Reading the CIFAR pickles without letting a file run code or take memory without bound.

A pickle names Python callables and has them called while it loads (os.system, eval, ... are one
opcode away), so `pickle.load` on a downloaded or hand-copied file runs whatever its author chose.
The CIFAR files need none of that: a dict of bytes, ints, lists and one NumPy array. The
unpickler below resolves only the globals that rebuild a NumPy array (the numpy < 2 and numpy >= 2
spellings, protocols 2 to 5; plain number dtypes only: an object array would turn the file's
bytes into pointers) and the latin-1 bytes decoding Python 3 writes at protocol 2; any other
global is refused with pickle.UnpicklingError before anything is called.

Memory: Python's unpickler allocates what an opcode announces before reading it (a bytes object of
the announced length, a memo grown to twice the index of a PUT), so a 9-byte file can make it fill
gigabytes. load() first walks the opcodes without running them (check_opcodes) and refuses a
counted argument or frame longer than the rest of the file, and a memo index beyond the opcodes read.
"""
import codecs
import itertools
import os
import pickle
import pickletools
import struct

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


def _dtype(spec, align=False, copy=False):
    """np.dtype(spec) for a plain number or bool type only, and NumPy's own shared instance of it:
    the BUILD that follows in the pickle cannot change a shared dtype (NumPy ignores __setstate__
    there), while a fresh void dtype could be given object flags and make bytes pass for pointers."""
    dtype = np.dtype(spec)
    if dtype.kind not in "biuf" or not dtype.isbuiltin:
        raise pickle.UnpicklingError(f"refusing dtype {spec!r}: a dataset file holds plain numbers")
    return dtype


class _NDArrayName:
    """What the name numpy.ndarray stands for in a dataset pickle: the class _reconstruct is asked to
    make. It is never called itself (np.ndarray(shape, 'O') would allocate whatever shape it is given)."""

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("refusing to call numpy.ndarray: a pickled array is rebuilt by _reconstruct")


_NDARRAY = _NDArrayName()


def _reconstruct(subtype, shape, dtype):
    """numpy's _reconstruct(ndarray, (0,), b'b'): the empty array a pickled one starts from, before
    its __setstate__ gives it a dtype (one _dtype made), a shape and the file's bytes (NumPy checks
    that their sizes agree before it copies anything). Any other shape would be allocated here."""
    if subtype is not _NDARRAY or shape != (0,):
        raise pickle.UnpicklingError(f"refusing _reconstruct(..., {shape!r:.60}, ...): not the empty array "
                                     "a pickled ndarray starts from")
    return _multiarray._reconstruct(np.ndarray, (0,), b"b")


ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,                 # protocols 0-4
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,             # protocol 5 (checks the size)
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("_codecs", "encode"): _latin1_encode,
}


# what a damaged or foreign file raises while it is unpickled and its arrays taken out (the loaders
# turn each into a DatasetError naming the file)
READ_ERRORS = (OSError, EOFError, pickle.UnpicklingError, KeyError, IndexError, ValueError, TypeError,
               AttributeError, OverflowError)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds plain containers and NumPy arrays and refuses every other global."""

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a dataset file holds only "
                                         "arrays, lists and bytes (corrupted or malicious file?)") from None


# the opcodes' arguments, from pickletools' table: a fixed size, a line (two for GLOBAL), or a length
# of 1, 4 or 8 bytes followed by that many bytes
_LENGTHS = {pickletools.TAKEN_FROM_ARGUMENT1: "<B", pickletools.TAKEN_FROM_ARGUMENT4: "<i",
            pickletools.TAKEN_FROM_ARGUMENT4U: "<I", pickletools.TAKEN_FROM_ARGUMENT8U: "<Q"}
_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


def check_opcodes(f, size):
    """Walk a pickle's opcodes without running them, seeking past each argument, and refuse
    (UnpicklingError) what would make the unpickler allocate beyond the file: a counted argument
    (bytes, a string, a long) or a FRAME longer than the rest of the file, or a memo index past the
    number of opcodes read (the unpickler grows its memo to twice the index)."""
    for count in itertools.count(1):
        pos, code = f.tell(), f.read(1)
        op = pickletools.code2op.get(code.decode("latin-1")) if code else None
        if op is None:
            raise pickle.UnpicklingError(f"not a pickle: {'no STOP before' if not code else f'opcode {code!r} at'} "
                                         f"byte {pos}")
        if op.name == "STOP":
            return
        if op.arg is None:
            continue
        if op.arg.n in _LENGTHS:
            length = struct.unpack(_LENGTHS[op.arg.n], _exactly(f, struct.calcsize(_LENGTHS[op.arg.n]), pos))[0]
            if not 0 <= length <= size - f.tell():
                raise pickle.UnpicklingError(f"{op.name} at byte {pos} announces {length} bytes; "
                                             f"{size - f.tell()} are left in the file")
            f.seek(length, 1)
            continue
        if op.arg.n == pickletools.UP_TO_NEWLINE:
            value = b"".join(f.readline() for _ in range(2 if op.arg.name.endswith("_pair") else 1))
        else:
            value = int.from_bytes(_exactly(f, op.arg.n, pos), "little")
        if op.name == "FRAME" and value > size - f.tell():
            raise pickle.UnpicklingError(f"a frame of {value} bytes at byte {pos}, past the end of the file")
        if op.name in _PUTS and not _memo_index_ok(value, count):
            raise pickle.UnpicklingError(f"memo index {value!r:.40} at byte {pos}, after only {count} opcodes")


def _memo_index_ok(index, count):
    """A PUT's index (a decimal line at protocol 0, an int above) is at most the opcodes read so far."""
    if isinstance(index, bytes):
        index = index.strip()
        if not index.isdigit() or len(index) > 18:
            return False
    return int(index) <= count


def _exactly(f, n, pos):
    data = f.read(n)
    if len(data) != n:
        raise pickle.UnpicklingError(f"not a pickle: the opcode at byte {pos} is cut short")
    return data


def load(path):
    """Unpickle one file with RestrictedUnpickler, bytes kept as bytes (encoding='bytes', as CIFAR
    needs), after check_opcodes has walked it."""
    with open(path, "rb") as f:
        check_opcodes(f, os.fstat(f.fileno()).st_size)
        f.seek(0)
        return RestrictedUnpickler(f, encoding="bytes").load()
