"""Kernel dispatch: one function per kernel family, chosen by the active backend.

Layers call these names, never a specific implementation:
  cpu -> Numba kernels (``kernels/cpu.py``) and NumPy's BLAS;
  gpu -> CUDA kernels (``kernels/gpu.py``, CuPy RawKernels) and cuBLAS through minicnn's own
         capturable wrapper (``kernels/cublas.py``).
Setting ``MINICNN_KERNELS=reference`` forces the plain twins (``kernels/reference.py``) and
``xp.matmul`` everywhere (for debugging; on the GPU it also turns CUDA graphs off).
"""
import os

from minicnn import backend
from minicnn.kernels import reference


def reference_forced():
    return os.environ.get("MINICNN_KERNELS", "") == "reference"


def device_kernels():
    """True when the GPU backend runs minicnn's CUDA kernels (what CUDA-graph steps need)."""
    return backend.name == "gpu" and not reference_forced()


def _impl():
    if reference_forced():
        return reference
    if backend.name == "cpu":
        from minicnn.kernels import cpu
        return cpu
    from minicnn.kernels import gpu
    return gpu


def matmul(a, b, out=None):
    """out = a @ b for 2-D float arrays (transposed views are fine): BLAS on the CPU, cuBLAS on the GPU."""
    if device_kernels():
        from minicnn.kernels import cublas
        return cublas.gemm(a, b, out=out)
    return backend.xp.matmul(a, b, out=out)


def im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, out=None):
    return _impl().im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, out)


def col2im(dcols, x_shape, KH, KW, sh, sw, pt, pl, OH, OW):
    return _impl().col2im(dcols, x_shape, KH, KW, sh, sw, pt, pl, OH, OW)


def maxpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW):
    return _impl().maxpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW)


def maxpool_backward(dout, arg, x_shape, PH, PW, sh, sw, pt, pl):
    return _impl().maxpool_backward(dout, arg, x_shape, PH, PW, sh, sw, pt, pl)


def avgpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW):
    return _impl().avgpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW)


def avgpool_backward(dout, x_shape, PH, PW, sh, sw, pt, pl):
    return _impl().avgpool_backward(dout, x_shape, PH, PW, sh, sw, pt, pl)


def bias_activation(z, b, activation):
    return _impl().bias_activation(z, b, activation)


def bias_activation_backward(dout, y, activation, out, db_out=None):
    return _impl().bias_activation_backward(dout, y, activation, out, db_out)


def column_sum(a, out=None):
    """Sum over the rows of a 2-D array: (R, F) -> (F,)."""
    if device_kernels():
        from minicnn.kernels import gpu
        return gpu.column_sum(a, out)
    return a.sum(axis=0, out=out)


def adam_update(w, g, m, v, alpha, beta_1, beta_2, epsilon):
    return _impl().adam_update(w, g, m, v, alpha, beta_1, beta_2, epsilon)


def sgd_momentum_update(w, g, m, lr, momentum, nesterov):
    return _impl().sgd_momentum_update(w, g, m, lr, momentum, nesterov)


def rmsprop_update(w, g, v, lr, rho, epsilon):
    return _impl().rmsprop_update(w, g, v, lr, rho, epsilon)


def dropout_mask(shape, seed, counter, rate, dtype):
    return _impl().dropout_mask(shape, seed, counter, rate, dtype)
