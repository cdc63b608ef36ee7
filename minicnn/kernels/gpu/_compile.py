"""What every kernel family shares: the CUDA source's assembly, compiling, caching and launching.

The kernels are compiled together, one CuPy RawModule per combination of types, from the CUDA C
text that module_source assembles out of the family modules (each holds its kernels' text beside
the Python functions that launch them). In that text T is the element type, A the pooling argmax
type and S gather_rows's source type, each a typedef at the top. There are two kinds of module:
  - the math module: every family but data.py, compiled for T float or double;
  - the data module: data.py's kernels, compiled for any type in _CTYPES (uint8 images too).
CuPy is imported inside the functions that use it, so the package imports without it.
"""
import re

import numpy as np

_THREADS = 256
_NULL = np.uint64(0)     # a null pointer argument (the kernels test their optional pointers)

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.int8): "signed char",
           np.dtype(np.int32): "int", np.dtype(np.uint8): "unsigned char", np.dtype(np.int64): "long long",
           np.dtype(np.uint64): "unsigned long long"}
_modules = {}            # (data, T, A, S) -> the compiled cupy.RawModule

# The start of both modules: a thread's flat index and the grid-stride step of the kernels' loops.
HEADER_SOURCE = r"""
__device__ __forceinline__ long long gtid() { return blockIdx.x * (long long)blockDim.x + threadIdx.x; }
__device__ __forceinline__ long long gstride() { return (long long)gridDim.x * blockDim.x; }
"""

# The math module's window walks: the gather form of col2im and of the pooling backwards, and the
# poolings' forward walk over a window's real cells.
WINDOWS_SOURCE = r"""
// Calls f(oh, ow, i, j) for every window (oh, ow) whose offset (i, j) lands on cell (h, w): the
// gather form of every backward pass here (each input cell sums what its windows send back).
template <typename F>
__device__ __forceinline__ void for_windows_covering(int h, int w, int KH, int KW, int sh, int sw, int pt, int pl,
                                                     int OH, int OW, F f) {
    for (int i = 0; i < KH; ++i) {
        int hh = h + pt - i;
        if (hh < 0 || hh % sh) continue;
        int oh = hh / sh;
        if (oh >= OH) continue;
        for (int j = 0; j < KW; ++j) {
            int ww = w + pl - j;
            if (ww < 0 || ww % sw) continue;
            int ow = ww / sw;
            if (ow >= OW) continue;
            f(oh, ow, i, j);
        }
    }
}

// Calls f(i, j, h, w) for every real cell (h, w) of window (oh, ow), offset (i, j) in the window, in
// row-major window order (padding cells skipped): the forward passes of the poolings.
template <typename F>
__device__ __forceinline__ void for_window_cells(int oh, int ow, int H, int W, int PH, int PW, int sh, int sw, int pt,
                                                 int pl, F f) {
    for (int i = 0; i < PH; ++i) {
        int h = oh * sh - pt + i;
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < PW; ++j) {
            int w = ow * sw - pl + j;
            if (w < 0 || w >= W) continue;
            f(i, j, h, w);
        }
    }
}
"""


# The CUDA text of each compiled module, piece by piece: every family module adds its own at import
# (add_source), at the position it had in the single source the kernels were verified from, so the
# assembled text is the same byte for byte. Positions of the math module (data=False):
#   0 header, 1 window walks, 2 conv, 3 pooling, 4 bias + activation, 5 max-norm, 6 dropout,
#   7 softmax cross-entropy, 8 batch norm, 9 GELU, 10 optimizers;
# of the data module (data=True): 0 header, 1 cursor, 2 gather, 3 flip-crop, 4 stats.
_PIECES = {False: {}, True: {}}


def add_source(data, position, text):
    """Register a family's CUDA text at `position` of the data (True) or math (False) module."""
    _PIECES[bool(data)][position] = text


add_source(False, 0, HEADER_SOURCE)
add_source(False, 1, WINDOWS_SOURCE)
add_source(True, 0, HEADER_SOURCE)


def data_kernel_names():
    """The kernels of the data module (they compile for any element type)."""
    return frozenset(kernel_names("".join(_parts(True)[1:])))


def _parts(data):
    """The CUDA texts of the data or the math module, in order."""
    pieces = _PIECES[bool(data)]
    return tuple(pieces[k] for k in sorted(pieces))


def module_source(data, T, A, S):
    """The CUDA C text of one compiled module: the data or the math kernels for types T, A, S."""
    head = "".join(f"typedef {_CTYPES[np.dtype(t)]} {name};\n" for name, t in (("T", T), ("A", A), ("S", S)))
    return head + "".join(_parts(data))


_ENTRY = re.compile(r'extern "C" __global__ void (\w+)\(|^PACKED_ENTRIES\((\w+)\)$', re.MULTILINE)


def kernel_names(source):
    """The kernels (entry points) a CUDA text defines; PACKED_ENTRIES(name) defines name1 and name4."""
    names = []
    for plain, packed in _ENTRY.findall(source):
        names += [plain] if plain else [packed + "1", packed + "4"]
    return names


def _kernel(name, T, A=np.int32, S=None):
    """Compiled kernel `name` for element type T (pooling arg type A, gather source type S); cached.
    The math kernels compile for float/double T; the data kernels for any listed type."""
    import cupy
    data = name in data_kernel_names()
    key = (data, np.dtype(T), np.dtype(A), np.dtype(S if S is not None else T))
    mod = _modules.get(key)
    if mod is None:
        mod = _modules[key] = cupy.RawModule(code=module_source(*key), options=("--std=c++14",))
    return mod.get_function(name)


def _grid(total):
    return (int(min(max((total + _THREADS - 1) // _THREADS, 1), 65535 * 4)),), (_THREADS,)


def _launch(name, total, args, T, A=np.int32, S=None):
    """One launch of kernel `name` on a grid-stride grid covering `total` items."""
    grid, block = _grid(total)
    _kernel(name, T, A, S)(grid, block, args)


def _i(*values):
    return tuple(np.int32(v) for v in values)


def _check_size(what, *arrays):
    """Kernels that index with 32-bit unsigned arithmetic (im2col, col2im, the poolings) refuse,
    clearly, what does not fit."""
    for a in arrays:
        if a.size >= 2**32:
            raise ValueError(f"{what}: {a.size} elements do not fit one launch (at most 2^32 - 1); "
                             "use a smaller batch_size")


# ---- the done counters of the one-launch reductions -----------------------------------------------
# bias_act_bwd (activations.py) and dropout_fwd (regularizers.py) let the last block to finish do
# the final step; each counts finished blocks in this one shared array and leaves it at zero.
_DONE = None


def _done_counters(n):
    """Zeroed block counters for the one-launch reductions (each launch leaves them at zero)."""
    global _DONE
    import cupy
    if _DONE is None or _DONE.size < n:
        _DONE = cupy.zeros(max(n, 4096), dtype=cupy.uint32)
    return _DONE
