"""Kernel dispatch: one function per kernel family, chosen by the active backend.

Layers call these names, never a specific implementation:
  cpu -> Numba kernels (``kernels/cpu.py``) and NumPy's BLAS;
  gpu -> CUDA kernels (``kernels/gpu.py``, CuPy RawKernels) and cuBLAS through minicnn's own
         capturable wrapper (``kernels/cublas.py``).
Setting ``MINICNN_KERNELS=reference`` forces the plain twins (``kernels/reference.py``) and
``xp.matmul`` everywhere (for debugging; on the GPU it also turns CUDA graphs off).
"""
import contextlib
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
    """out = a @ b for 2-D float arrays (transposed views are fine): cpu_gemm's GEMM on every core on
    the CPU (one thread pool, Numba's: OpenBLAS's threads spin after each call and would take the
    cores from the kernels that follow), cuBLAS on the GPU, numpy/cupy.matmul for the reference."""
    if device_kernels():
        from minicnn.kernels import cublas
        return cublas.gemm(a, b, out=out)
    if backend.name == "cpu" and not reference_forced():
        from minicnn.kernels import cpu_gemm
        return cpu_gemm.matmul(a, b, out=out)
    return backend.xp.matmul(a, b, out=out)


def im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, out=None):
    return _impl().im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, out)


def col2im(dcols, x_shape, KH, KW, sh, sw, pt, pl, OH, OW):
    return _impl().col2im(dcols, x_shape, KH, KW, sh, sw, pt, pl, OH, OW)


_CONV_PATHS = ("auto", "blocked", "whole")
_conv_path = {"path": os.environ.get("MINICNN_CONV", "auto")}


def set_conv_path(path="auto"):
    """How the CPU runs Conv2D: 'auto' (per layer, by the measured rule), 'blocked' (row blocks
    everywhere) or 'whole' (the whole-batch im2col everywhere). Env MINICNN_CONV. For tests and
    benchmarks; the numbers are the same to float rounding."""
    if path not in _CONV_PATHS:
        raise ValueError(f"conv path must be one of {_CONV_PATHS}, got {path!r}")
    _conv_path["path"] = path


def conv_blocked(x_shape, W_shape, OH, OW, training=True):
    """Whether a convolution runs on row blocks (kernels/cpu_conv.py: the CPU, where the rule in
    cpu_conv.blocked_pays says it is faster) or as one whole-batch im2col + GEMM (everywhere else).
    x_shape (N, H, W, C), W_shape (KH, KW, C, F)."""
    if backend.name != "cpu" or reference_forced() or _conv_path["path"] == "whole":
        return False
    if _conv_path["path"] == "blocked":
        return True
    from minicnn.kernels import cpu_conv
    return cpu_conv.blocked_pays(x_shape, W_shape, OH, OW, training)


def conv2d_forward(x, W, b, activation, KH, KW, sh, sw, pt, pl, OH, OW):
    """y = act(im2col(x) @ W.reshape(-1, F) + b), act 'relu' or 'linear' (reference.conv2d_forward)."""
    return _impl().conv2d_forward(x, W, b, activation, KH, KW, sh, sw, pt, pl, OH, OW)


def conv2d_backward(dy, x, y, W, activation, KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out, input_grad):
    """dW, db (into dW_out, db_out) and dx of conv2d_forward, from dy (reference.conv2d_backward)."""
    return _impl().conv2d_backward(dy, x, y, W, activation, KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out,
                                   input_grad)


def maxpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW):
    return _impl().maxpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW)


def maxpool_backward(dout, arg, x_shape, PH, PW, sh, sw, pt, pl):
    return _impl().maxpool_backward(dout, arg, x_shape, PH, PW, sh, sw, pt, pl)


def avgpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW):
    return _impl().avgpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW)


def avgpool_backward(dout, x_shape, PH, PW, sh, sw, pt, pl):
    return _impl().avgpool_backward(dout, x_shape, PH, PW, sh, sw, pt, pl)


def flip_crop(x, which, dy, dx, pad):
    """Mirrored (where `which`) and reflect-padded-cropped copies of images x (see reference.flip_crop)."""
    return _impl().flip_crop(x, which, dy, dx, pad)


def activation_forward(x, name):
    """y = act(x) for an activation by name, any shape (a new array): an Activation layer's forward."""
    return _impl().activation_forward(x, name)


def activation_backward(dy, y, name):
    """dx from dy and y = act(x) (x for GELU), any shape (a new array)."""
    return _impl().activation_backward(dy, y, name)


def bias_activation(z, b, activation):
    return _impl().bias_activation(z, b, activation)


def bias_activation_backward(dout, y, activation, out, db_out=None):
    return _impl().bias_activation_backward(dout, y, activation, out, db_out)


def batchnorm_forward(x, gamma, beta, eps):
    """Batch normalization in training mode over the rows of x (M, C): (y, mean, var)."""
    return _impl().batchnorm_forward(x, gamma, beta, eps)


def batchnorm_backward(dout, x, mean, var, gamma, eps):
    """BatchNormalization's training-mode backward: (dx, dgamma, dbeta)."""
    return _impl().batchnorm_backward(dout, x, mean, var, gamma, eps)


def gelu(z):
    """GELU's forward, y = z Phi(z), in one pass (activations.GELU)."""
    return _impl().gelu(z)


def gelu_backward(dy, z):
    """GELU's derivative applied to dy, from the input z, in one pass."""
    return _impl().gelu_backward(dy, z)


def max_norm(w, max_value):
    """In place: each column of w seen as (R, F), norm over all axes but the last, capped at
    max_value (reference.max_norm)."""
    return _impl().max_norm(w, max_value)


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


def dropout_apply(x, seed, counter, rate):
    """x * dropout_mask(x.shape, seed, counter, rate) in one pass, the mask never stored: the
    forward, and with the same counter the backward (reference.dropout_apply)."""
    return _impl().dropout_apply(x, seed, counter, rate)


# ---- overlap: weight-gradient GEMMs on a side stream (GPU) ------------------------------------------
# Inside a training step (``overlap()``), a layer's weight gradient does not feed the layers below
# it: ``side_stream(...)`` runs it on a second CUDA stream, forked from the main one, while the main
# stream goes on with dL/dx. The scope joins every fork before it ends (before the optimizer reads
# the gradients). A captured CUDA graph keeps the fork/join as two parallel branches. The arrays a
# side block reads are kept referenced until the join, so the memory pool cannot hand them out
# again meanwhile. Outside a scope, and on the CPU, side_stream() runs its block in place.
_overlap = {"depth": 0, "pending": [], "stream": None, "enabled": os.environ.get("MINICNN_OVERLAP", "1") != "0"}


def set_overlap(enabled):
    """Turn the side-stream weight gradients on (default) or off (env MINICNN_OVERLAP=0)."""
    _overlap["enabled"] = bool(enabled)


def side_stream_object():
    """The side stream (created once, with its cuBLAS handle; call it outside graph capture)."""
    if _overlap["stream"] is None:
        import cupy
        from minicnn.kernels import cublas
        _overlap["stream"] = cupy.cuda.Stream(non_blocking=True)
        cublas._prepare(_overlap["stream"])
    return _overlap["stream"]


@contextlib.contextmanager
def overlap():
    """A training step's scope for side-stream work; joins it all at the end."""
    if not (device_kernels() and _overlap["enabled"]):
        yield
        return
    side_stream_object()
    _overlap["depth"] += 1
    try:
        yield
    finally:
        _overlap["depth"] -= 1
        if _overlap["depth"] == 0:
            join_side_stream()


@contextlib.contextmanager
def side_stream(*keep_alive):
    """Run the block on the side stream when an overlap() scope is open (else in place)."""
    if _overlap["depth"] == 0:
        yield
        return
    import cupy
    main, side = cupy.cuda.get_current_stream(), _overlap["stream"]
    fork = cupy.cuda.Event(disable_timing=True)
    fork.record(main)
    side.wait_event(fork)
    with side:
        yield
    done = cupy.cuda.Event(disable_timing=True)
    done.record(side)
    _overlap["pending"].append((done, keep_alive))


def join_side_stream():
    """Make the current stream wait for every side block launched so far."""
    if not _overlap["pending"]:
        return
    import cupy
    main = cupy.cuda.get_current_stream()
    for done, _ in _overlap["pending"]:
        main.wait_event(done)
    _overlap["pending"].clear()
