"""Kernel dispatch: one function per kernel family, chosen by the active backend.

Layers call these names, never a specific implementation:
  cpu -> Numba kernels (``kernels/cpu.py``); gpu -> the plain-xp twins on CuPy for now
  (``kernels/reference.py``), until CuPy RawKernels replace them.
Setting ``MINICNN_KERNELS=reference`` forces the plain twins everywhere (for debugging).
"""
import os

from minicnn import backend
from minicnn.kernels import reference


def _impl():
    if backend.name == "cpu" and os.environ.get("MINICNN_KERNELS", "") != "reference":
        from minicnn.kernels import cpu
        return cpu
    return reference


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


def bias_activation_backward(dout, y, activation, out):
    return _impl().bias_activation_backward(dout, y, activation, out)


def adam_update(w, g, m, v, alpha, beta_1, beta_2, epsilon):
    return _impl().adam_update(w, g, m, v, alpha, beta_1, beta_2, epsilon)


def sgd_momentum_update(w, g, m, lr, momentum, nesterov):
    return _impl().sgd_momentum_update(w, g, m, lr, momentum, nesterov)


def rmsprop_update(w, g, v, lr, rho, epsilon):
    return _impl().rmsprop_update(w, g, v, lr, rho, epsilon)


def dropout_mask(shape, seed, counter, rate, dtype):
    return _impl().dropout_mask(shape, seed, counter, rate, dtype)
