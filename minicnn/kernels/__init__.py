"""Kernel dispatch: one function per kernel family, chosen by the active backend.

Layers call these names, never a specific implementation:
  cpu -> Numba kernels (``kernels/cpu.py``, ``cpu_conv.py``) and minicnn's GEMM (``cpu_gemm.py``);
  gpu -> CUDA kernels (the package ``kernels/gpu/``, CuPy RawKernels) and cuBLAS through
         minicnn's own capturable wrapper (``kernels/cublas.py``).
``minicnn.set_kernels("reference")`` (or env ``MINICNN_KERNELS=reference``) runs everything on the
readable twins (``kernels/reference.py``: NumPy or CuPy loops and ``xp.matmul``), the code to read
next to a layer; on the GPU it also turns CUDA graphs off. ``set_kernels("fast")`` goes back.
This package, ``backend.py`` and the GPU training strategy (``training/graphed.py``) are the only
places that branch on the backend.
"""
import contextlib
import os

import numpy

from minicnn import backend
from minicnn.kernels import cublas, gpu, reference


_KERNEL_SETS = ("fast", "reference")
_kernel_set = {"name": "reference" if os.environ.get("MINICNN_KERNELS", "") == "reference" else "fast"}


def set_kernels(which="fast"):
    """Which implementation every kernel runs: "fast" (Numba on the CPU, CUDA on the GPU: the
    default) or "reference" (the readable twins in kernels/reference.py, same signatures, same
    numbers to rounding). Env MINICNN_KERNELS=reference sets it at import."""
    if which not in _KERNEL_SETS:
        raise ValueError(f"kernels must be one of {_KERNEL_SETS}, got {which!r}")
    _kernel_set["name"] = which


def reference_forced():
    return _kernel_set["name"] == "reference"


def device_kernels():
    """True when the GPU backend runs minicnn's CUDA kernels (what CUDA-graph steps need)."""
    return backend.name == "gpu" and not reference_forced()


def _impl():
    if reference_forced():
        return reference
    if backend.name == "cpu":
        from minicnn.kernels import cpu
        return cpu
    return gpu


def matmul(a, b, out=None):
    """out = a @ b for 2-D float arrays (transposed views are fine): cpu_gemm's GEMM on every core on
    the CPU (one thread pool, Numba's: OpenBLAS's threads spin after each call and would take the
    cores from the kernels that follow), cuBLAS on the GPU, numpy/cupy.matmul for the reference."""
    if device_kernels():
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


def conv2d_relu_maxpool(x, W, b, KH, KW, sh, sw, pt, pl, OH, OW, PH, PW):
    """(pooled, arg) = maxpool_forward(conv2d_forward(x, W, b, 'relu', ...)) over PH x PW windows
    (stride = window, valid) in one pass, where a fused kernel takes this geometry (the CPU's
    stride-1 forward: cpu_conv.conv2d_relu_maxpool); None elsewhere, and the caller runs the two
    kernels (their composition, reference.conv2d_relu_maxpool, is the specification)."""
    if backend.name != "cpu" or reference_forced() or _conv_path["path"] == "whole":
        return None
    from minicnn.kernels import cpu_conv
    return cpu_conv.conv2d_relu_maxpool(x, W, b, KH, KW, sh, sw, pt, pl, OH, OW, PH, PW)


def conv2d_maxpool_backward(dout, arg, pooled, PH, PW, x, W, KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out,
                            input_grad):
    """The backward of a relu conv and the max-pooling (windows side by side) that took its output:
    from the pooling's dout, arg and pooled output, dW, db (into dW_out, db_out) and dx of the conv.
    The CPU builds dz tile by tile (cpu_conv.conv2d_maxpool_backward); elsewhere the kernels run in
    turn (reference.conv2d_maxpool_backward, the specification)."""
    impl = reference
    if backend.name == "cpu" and not reference_forced():
        from minicnn.kernels import cpu_conv as impl
    return impl.conv2d_maxpool_backward(dout, arg, pooled, PH, PW, x, W, KH, KW, sh, sw, pt, pl, OH, OW, dW_out,
                                        db_out, input_grad)


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


def affine_positions(matrices, OH, OW):
    """Where output pixel (i, j) of image n reads under the affine map M_n: (r, c, 1) = M_n (i, j, 1);
    rows, cols (N, OH, OW) float64. Plain xp on every backend (reference.affine_positions)."""
    return reference.affine_positions(matrices, OH, OW)


def resample(x, rows, cols, fill_mode, fill_value, interpolation):
    """Images x (N, H, W, C) read at the positions (rows, cols) (N, OH, OW), bilinear or nearest,
    outside pixels by fill_mode (reference.resample; the GPU runs that plain-CuPy twin)."""
    return _impl().resample(x, rows, cols, fill_mode, fill_value, interpolation)


def resample_backward(dy, rows, cols, x_shape, fill_mode, interpolation):
    """dx of resample: dy (N, OH, OW, C) handed back to the pixels each output read (scatter-add)."""
    return _impl().resample_backward(dy, rows, cols, x_shape, fill_mode, interpolation)


def activation_forward(x, name):
    """y = act(x) for an activation by name, any shape (a new array): an Activation layer's forward."""
    return _impl().activation_forward(x, name)


def activation_backward(dy, y, name):
    """dx from dy and y = act(x) (x for GELU), any shape (a new array)."""
    return _impl().activation_backward(dy, y, name)


def bias_activation(z, b, name):
    """y = act(z + b), in place on the GEMM output z (R, F) where it can be; act by name."""
    return _impl().bias_activation(z, b, name)


def bias_activation_backward(dout, y, name, out, db_out=None):
    """out = dz from dout and y (z for GELU); returns db, the column sums of dz (into db_out)."""
    return _impl().bias_activation_backward(dout, y, name, out, db_out)


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
        return gpu.column_sum(a, out)
    return a.sum(axis=0, out=out)


# The optimizer rules, one variable at a time (reference.py holds them readable; optimizers.py the notation)
def sgd_update(w, g, m, lr, momentum, nesterov, decay):
    return _impl().sgd_update(w, g, m, lr, momentum, nesterov, decay)


def rmsprop_update(w, g, v, lr, rho, epsilon, decay, momentum=0.0, mom=None, average=None):
    return _impl().rmsprop_update(w, g, v, lr, rho, epsilon, decay, momentum, mom, average)


def adam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, vhat=None):
    return _impl().adam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, vhat)


def adadelta_update(w, g, accumulated_grad, accumulated_delta, lr, rho, epsilon, decay):
    return _impl().adadelta_update(w, g, accumulated_grad, accumulated_delta, lr, rho, epsilon, decay)


def adagrad_update(w, g, accumulator, lr, epsilon, decay):
    return _impl().adagrad_update(w, g, accumulator, lr, epsilon, decay)


def nadam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, u_product):
    return _impl().nadam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, u_product)


def nadam_momentum(k, beta_1):
    """Nadam's momentum schedule mu(k) = b1 (1 - 0.5 * 0.96^k) at step k (1-based): a host number,
    the same on every backend (reference.nadam_momentum)."""
    return reference.nadam_momentum(k, beta_1)


def dropout_mask(shape, seed, counter, rate, dtype):
    return _impl().dropout_mask(shape, seed, counter, rate, dtype)


def dropout_train(x, seed, counter, rate, mask_shape):
    """Dropout's training forward from the stream (seed, counter[0]), advancing counter[0] (an
    integer array of one element, where the backend computes); returns (y, saved) for
    dropout_backward (reference.dropout_train)."""
    return _impl().dropout_train(x, seed, counter, rate, mask_shape)


def dropout_backward(dy, seed, saved, rate):
    """dx = dy * mask: the mask recomputed from its key (saved: an int) or kept (saved: an array)."""
    if isinstance(saved, int):
        return dropout_apply(dy, seed, saved, rate)
    return dy * saved


def dropout_apply(x, seed, counter, rate):
    """x * dropout_mask(x.shape, seed, counter, rate) in one pass, the mask never stored: the
    forward, and with the same counter the backward (reference.dropout_apply)."""
    return _impl().dropout_apply(x, seed, counter, rate)


def take_rows(x, idx, out):
    """out[...] = x[idx] (rows idx of x, a host or device array) cast to out's dtype, where the backend
    computes: a batch gathered for a training or inference step. Returns out."""
    if backend.name == "cpu" and x.dtype == out.dtype:
        return backend.xp.take(x, idx, axis=0, out=out)
    # host arrays are gathered on the host, then copied; device arrays on the device
    out[...] = backend.to_device(x[idx]) if isinstance(x, numpy.ndarray) else x[backend.xp.asarray(idx)]
    return out


# ---- multi-tensor optimizer updates (GPU): one launch updates every variable -----------------------
# The optimizer keeps its step count t and its learning rates in device memory there, so a step
# replayed as a CUDA graph needs no host number (optimizers.py, Optimizer.apply). Elsewhere the
# optimizer updates each variable with the kernels above.
def multi_tensor_updates():
    """True when the backend updates every variable in one launch (the GPU's CUDA kernels)."""
    return device_kernels()


def pointer_key(groups):
    """The device addresses of the arrays in groups (None: 0): the key a pointer table is cached by."""
    return tuple(0 if a is None else a.data.ptr for group in groups for a in group)


def param_table(groups, lr_factors=None, decay_factors=None):
    """The device table of pointers (and per-variable factors) one multi-tensor launch reads."""
    return gpu.param_table(groups, lr_factors, decay_factors)


def set_table_factors(table, lr_factors, decay_factors):
    """Rewrite a param_table's learning-rate and weight-decay factors in place (freeze)."""
    table[2].set(numpy.ascontiguousarray(numpy.array([lr_factors, decay_factors], dtype=numpy.float64).T))


def multi_tensor_update(rule, table, dtype, dev, *hyper):
    """One launch of rule 'sgd' | 'rmsprop' | 'adam' over every variable of table, t and lr read
    from dev (the optimizer's device step count and learning-rate table)."""
    return {"sgd": gpu.sgd_device, "rmsprop": gpu.rmsprop_device, "adam": gpu.adam_device}[rule](
        table, dtype, dev, *hyper)


def advance_counter(counter, by):
    """counter[0] += by where the counter lives (a kernel on the GPU: capturable, no host sync)."""
    if device_kernels():
        return gpu.advance_cursor(counter, by)
    counter[0] += by


def lookahead_sync(pairs, rate, tables):
    """Lookahead's sync for each (w, slow) pair: slow += rate (w - slow); w = slow. On the GPU one
    launch for every pair (its pointer table cached in the dict `tables`); elsewhere a loop."""
    if device_kernels():
        key = pointer_key(pairs)
        if key not in tables:
            tables[key] = gpu.param_table(pairs)
        gpu.lookahead(tables[key], pairs[0][0].dtype, rate)
        return
    for w, slow in pairs:
        slow += rate * (w - slow)
        w[...] = slow


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
