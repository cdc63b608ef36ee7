"""Numba kernels for the CPU: the same functions as ``reference.py``, as explicit loops.

Each ``_nb_*`` kernel writes into a preallocated output; the thin wrappers below allocate it and
keep the reference signatures. The convolution family (im2col, col2im, and the blocked
conv2d_forward / conv2d_backward) lives in cpu_conv.py, its GEMM in cpu_gemm.py. Windows are walked without padding the input: a cell outside the
input is 0 for convolution and skipped for pooling. Parallel loops split over independent rows
(im2col) or images (everything that scatters), so no two threads write the same cell.
"""
import math

import numba
import numpy as np
from numba import njit, prange

from minicnn.kernels import reference
from minicnn.kernels.cpu_conv import col2im, conv2d_backward, conv2d_forward, im2col  # noqa: F401
from minicnn.kernels.reference import argmax_dtype


@njit(parallel=True, cache=True)
def _nb_maxpool_forward(x, PH, PW, sh, sw, pt, pl, y, arg):
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for r in prange(N * OH):
        n = r // OH
        oh = r - n * OH
        for ow in range(OW):
            yv, av = y[n, oh, ow], arg[n, oh, ow]      # views over the C channels (contiguous)
            first = True
            for i in range(PH):
                h = oh * sh - pt + i
                if h < 0 or h >= H:
                    continue
                for j in range(PW):
                    w = ow * sw - pl + j
                    if w < 0 or w >= W:
                        continue
                    xv, k = x[n, h, w], i * PW + j
                    if first:                           # the first real cell starts the maximum
                        for c in range(C):
                            yv[c] = xv[c]
                            av[c] = k
                        first = False
                    else:
                        for c in range(C):              # strict: ties keep the earlier cell
                            if xv[c] > yv[c]:
                                yv[c] = xv[c]
                                av[c] = k


@njit(parallel=True, cache=True)
def _nb_maxpool_backward(dout, arg, PH, PW, sh, sw, pt, pl, dx):
    N, H, W, C = dx.shape
    OH, OW = dout.shape[1], dout.shape[2]
    for n in prange(N):
        dx[n] = 0
        for oh in range(OH):
            for ow in range(OW):
                av, dv = arg[n, oh, ow], dout[n, oh, ow]
                for i in range(PH):
                    h = oh * sh - pt + i
                    if h < 0 or h >= H:
                        continue
                    for j in range(PW):
                        w = ow * sw - pl + j
                        if w < 0 or w >= W:
                            continue
                        dxv, k = dx[n, h, w], i * PW + j
                        for c in range(C):              # the cell gets dout where it won the window
                            if av[c] == k:
                                dxv[c] += dv[c]


@njit(parallel=True, cache=True)
def _nb_avgpool_forward(x, PH, PW, sh, sw, pt, pl, y):
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for r in prange(N * OH):
        n = r // OH
        oh = r - n * OH
        h0, h1 = max(oh * sh - pt, 0), min(oh * sh - pt + PH, H)
        for ow in range(OW):
            w0, w1 = max(ow * sw - pl, 0), min(ow * sw - pl + PW, W)
            inv = 1.0 / ((h1 - h0) * (w1 - w0))
            for c in range(C):
                s = 0.0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        s += x[n, h, w, c]
                y[n, oh, ow, c] = s * inv


@njit(parallel=True, cache=True)
def _nb_avgpool_backward(dout, PH, PW, sh, sw, pt, pl, dx):
    N, H, W, C = dx.shape
    OH, OW = dout.shape[1], dout.shape[2]
    for n in prange(N):
        dx[n] = 0
        for oh in range(OH):
            h0, h1 = max(oh * sh - pt, 0), min(oh * sh - pt + PH, H)
            for ow in range(OW):
                w0, w1 = max(ow * sw - pl, 0), min(ow * sw - pl + PW, W)
                inv = 1.0 / ((h1 - h0) * (w1 - w0))
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        for c in range(C):
                            dx[n, h, w, c] += dout[n, oh, ow, c] * inv


def maxpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW):
    x = np.ascontiguousarray(x)
    y = np.empty((x.shape[0], OH, OW, x.shape[3]), dtype=x.dtype)
    arg = np.empty(y.shape, dtype=argmax_dtype(PH, PW))
    _nb_maxpool_forward(x, PH, PW, sh, sw, pt, pl, y, arg)
    return y, arg


def maxpool_backward(dout, arg, x_shape, PH, PW, sh, sw, pt, pl):
    dx = np.empty(x_shape, dtype=dout.dtype)
    _nb_maxpool_backward(np.ascontiguousarray(dout), arg, PH, PW, sh, sw, pt, pl, dx)
    return dx


def avgpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW):
    x = np.ascontiguousarray(x)
    y = np.empty((x.shape[0], OH, OW, x.shape[3]), dtype=x.dtype)
    _nb_avgpool_forward(x, PH, PW, sh, sw, pt, pl, y)
    return y


def avgpool_backward(dout, x_shape, PH, PW, sh, sw, pt, pl):
    dx = np.empty(x_shape, dtype=dout.dtype)
    _nb_avgpool_backward(np.ascontiguousarray(dout), PH, PW, sh, sw, pt, pl, dx)
    return dx


# ---- fused elementwise: bias + activation, and its backward with the bias gradient --------------
@njit(parallel=True, cache=True)
def _nb_bias_relu(z, b):
    R, F = z.shape
    for r in prange(R):
        for f in range(F):
            v = z[r, f] + b[f]
            z[r, f] = v if v > 0 else 0


@njit(parallel=True, cache=True)
def _nb_relu_backward(dout, y, dz, partial):
    R, F = dz.shape
    T = partial.shape[0]
    chunk = (R + T - 1) // T
    for t in prange(T):                                 # each thread sums its own rows into partial[t]
        for f in range(F):
            partial[t, f] = 0
        for r in range(t * chunk, min(R, (t + 1) * chunk)):
            for f in range(F):
                g = dout[r, f] if y[r, f] > 0 else 0
                dz[r, f] = g
                partial[t, f] += g


@njit(parallel=True, cache=True)
def _nb_relu(x, y):
    for i in prange(x.size):
        y[i] = x[i] if x[i] > 0 else 0


@njit(parallel=True, cache=True)
def _nb_relu_grad(dy, y, dx):
    for i in prange(y.size):
        dx[i] = dy[i] if y[i] > 0 else 0


def activation_forward(x, name):
    if name == "gelu":
        return gelu(x)
    if name != "relu":
        return reference.activation_forward(x, name)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _nb_relu(x.reshape(-1), y.reshape(-1))
    return y


def activation_backward(dy, y, name):
    if name == "gelu":
        return gelu_backward(dy, y)
    if name != "relu":
        return reference.activation_backward(dy, y, name)
    y = np.ascontiguousarray(y)
    dy = np.ascontiguousarray(dy, dtype=y.dtype)
    dx = np.empty_like(y)
    _nb_relu_grad(dy.reshape(-1), y.reshape(-1), dx.reshape(-1))
    return dx


def bias_activation(z, b, name):
    """In place on z when the activation is relu or linear (z is the fresh GEMM output)."""
    if name == "gelu":                  # z + b stays in z (GELU's backward reads it)
        if b is not None:
            z += b
        return gelu(z)
    if name not in ("relu", "linear") or not z.flags.c_contiguous or z.ndim != 2:
        return reference.bias_activation(z, b, name)
    if name == "linear":
        if b is not None:
            z += b
        return z
    _nb_bias_relu(z, b if b is not None else np.zeros(z.shape[1], z.dtype))
    return z


def bias_activation_backward(dout, y, name, out, db_out=None):
    if name == "gelu":
        out[...] = gelu_backward(dout, y)
        return out.sum(axis=0, out=db_out)
    if name != "relu":
        return reference.bias_activation_backward(dout, y, name, out, db_out)
    partial = np.empty((min(numba.get_num_threads(), max(1, dout.shape[0])), dout.shape[1]), dtype=dout.dtype)
    _nb_relu_backward(np.ascontiguousarray(dout), y, out, partial)
    return partial.sum(axis=0, out=db_out)


# ---- batch normalization (reference.batchnorm_forward / _backward): two passes each -------------
@njit(parallel=True, cache=True)
def _nb_column_sums(a, b, mean, inv, chunks, partial):
    """partial[k] = column sums over row chunk k of a and of a * xhat(b) (b None-like: a * a when
    mean is empty). float64 accumulators."""
    M, C = a.shape
    step = (M + chunks - 1) // chunks
    for k in prange(chunks):
        for r in range(k * step, min(M, (k + 1) * step)):
            for c in range(C):
                v = np.float64(a[r, c])
                partial[k, 0, c] += v
                if mean.size == 0:
                    partial[k, 1, c] += v * v
                else:
                    partial[k, 1, c] += v * ((np.float64(b[r, c]) - mean[c]) * inv[c])


@njit(parallel=True, cache=True)
def _nb_bn_apply(x, mean, inv, gamma, beta, y):
    M, C = x.shape
    for r in prange(M):
        for c in range(C):
            y[r, c] = (x[r, c] - mean[c]) * inv[c] * gamma[c] + beta[c]


@njit(parallel=True, cache=True)
def _nb_bn_dx(dout, x, mean, inv, gamma, dbeta, dgamma, dx):
    M, C = x.shape
    for r in prange(M):
        for c in range(C):
            xhat = (x[r, c] - mean[c]) * inv[c]
            dx[r, c] = gamma[c] * inv[c] / M * (M * dout[r, c] - dbeta[c] - xhat * dgamma[c])


def _column_sums(a, b=None, mean=None, inv=None):
    a = np.ascontiguousarray(a)
    chunks = max(1, min(len(a), 4 * numba.get_num_threads()))
    partial = np.zeros((chunks, 2, a.shape[1]))
    empty = np.zeros(0)
    _nb_column_sums(a, a if b is None else np.ascontiguousarray(b), empty if mean is None else mean,
                    empty if inv is None else inv, chunks, partial)
    return partial.sum(axis=0)                    # a fixed order: deterministic


def batchnorm_forward(x, gamma, beta, eps):
    M, C = x.shape
    sums = _column_sums(x)
    mean = sums[0] / M
    var = np.maximum(sums[1] / M - mean * mean, 0.0)
    inv = 1.0 / np.sqrt(var + eps)
    y = np.empty_like(x)
    _nb_bn_apply(np.ascontiguousarray(x), mean, inv, np.ones(C) if gamma is None else gamma.astype(np.float64),
                 np.zeros(C) if beta is None else beta.astype(np.float64), y)
    return y, mean.astype(x.dtype), var.astype(x.dtype)


def batchnorm_backward(dout, x, mean, var, gamma, eps):
    M, C = x.shape
    mean64, inv = mean.astype(np.float64), 1.0 / np.sqrt(var.astype(np.float64) + eps)
    sums = _column_sums(dout, x, mean64, inv)
    dbeta, dgamma = sums[0], sums[1]
    dx = np.empty_like(x)
    _nb_bn_dx(np.ascontiguousarray(dout), np.ascontiguousarray(x), mean64, inv,
              np.ones(C) if gamma is None else gamma.astype(np.float64), dbeta, dgamma, dx)
    return dx, dgamma.astype(x.dtype), dbeta.astype(x.dtype)


# ---- data augmentation (reference.flip_crop) ------------------------------------------------------
@njit(parallel=True, cache=True)
def _nb_flip_crop(x, flip, dy, dx, pad, out):
    N, H, W, C = x.shape
    for n in prange(N):
        for h in range(H):
            sh = h + dy[n] - pad
            sh = -sh if sh < 0 else (2 * (H - 1) - sh if sh >= H else sh)      # reflect
            for w in range(W):
                sw = w + dx[n] - pad
                sw = -sw if sw < 0 else (2 * (W - 1) - sw if sw >= W else sw)
                if flip[n]:
                    sw = W - 1 - sw
                for c in range(C):
                    out[n, h, w, c] = x[n, sh, sw, c]


def flip_crop(x, which, dy, dx, pad):
    x = np.ascontiguousarray(x)
    flip = np.zeros(len(x), np.bool_) if which is None else np.ascontiguousarray(which, dtype=np.bool_)
    out = np.empty_like(x)
    _nb_flip_crop(x, flip, np.ascontiguousarray(dy, dtype=np.int64), np.ascontiguousarray(dx, dtype=np.int64),
                  int(pad), out)
    return out


# ---- resampling (reference.resample / resample_backward): a pixel's taps computed once, in registers --
_FILL_CODES = {"reflect": 0, "wrap": 1, "nearest": 2, "constant": 3}


@njit(cache=True)
def _fold(index, size, mode):
    """reference.fold for one integer position (mode: a _FILL_CODES number)."""
    if 0 <= index < size:                               # most taps: no division
        return index
    if mode == 0:
        period = index % (2 * size)                     # Python's %: in [0, 2 size)
        return 2 * size - 1 - period if period >= size else period
    if mode == 1:
        return index % size
    return min(max(index, 0), size - 1)


@njit(cache=True)
def _tap(r, c, H, W, mode):
    """(row, column, inside) of one tap: the pixel it reads, and False when constant mode reads
    fill_value there instead."""
    inside = mode != 3 or (0 <= r < H and 0 <= c < W)
    return _fold(r, H, mode), _fold(c, W, mode), inside


@njit(cache=True)
def _taps(r, c, H, W, mode):
    """The four bilinear taps around position (r, c): (row, column, inside) of each, and the weights
    (1-fr)(1-fc), (1-fr) fc, fr (1-fc), fr fc, in reference.resample_taps's order."""
    r0, c0 = math.floor(r), math.floor(c)
    fr, fc = r - r0, c - c0
    r0, c0 = int(r0), int(c0)
    return (_tap(r0, c0, H, W, mode), _tap(r0, c0 + 1, H, W, mode), _tap(r0 + 1, c0, H, W, mode),
            _tap(r0 + 1, c0 + 1, H, W, mode), ((1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc))


@njit(parallel=True, cache=True)
def _nb_resample(x, rows, cols, mode, fill_value, nearest, out):
    N, H, W, C = x.shape
    OH, OW = out.shape[1], out.shape[2]
    for p in prange(N * OH):
        n = p // OH
        i = p - n * OH
        for j in range(OW):
            r, c = rows[n, i, j], cols[n, i, j]
            if nearest:                                  # the closest pixel
                t = _tap(int(math.floor(r + 0.5)), int(math.floor(c + 0.5)), H, W, mode)
                for ch in range(C):
                    out[n, i, j, ch] = x[n, t[0], t[1], ch] if t[2] else fill_value
                continue
            a, b, e, d, w = _taps(r, c, H, W, mode)
            for ch in range(C):                          # summed in float64, in the reference's order
                s = w[0] * (x[n, a[0], a[1], ch] if a[2] else fill_value)
                s += w[1] * (x[n, b[0], b[1], ch] if b[2] else fill_value)
                s += w[2] * (x[n, e[0], e[1], ch] if e[2] else fill_value)
                s += w[3] * (x[n, d[0], d[1], ch] if d[2] else fill_value)
                out[n, i, j, ch] = s


@njit(parallel=True, cache=True)
def _nb_resample_backward(dy, rows, cols, mode, nearest, dx):
    N, H, W, C = dx.shape
    OH, OW = dy.shape[1], dy.shape[2]
    for n in prange(N):                                  # a thread per image: it alone writes dx[n]
        dx[n] = 0
        for i in range(OH):
            for j in range(OW):
                r, c = rows[n, i, j], cols[n, i, j]
                if nearest:
                    t = _tap(int(math.floor(r + 0.5)), int(math.floor(c + 0.5)), H, W, mode)
                    if t[2]:
                        for ch in range(C):
                            dx[n, t[0], t[1], ch] += dy[n, i, j, ch]
                    continue
                a, b, e, d, w = _taps(r, c, H, W, mode)
                for ch in range(C):                      # a tap that read fill_value gets nothing
                    g = dy[n, i, j, ch]
                    if a[2]:
                        dx[n, a[0], a[1], ch] += w[0] * g
                    if b[2]:
                        dx[n, b[0], b[1], ch] += w[1] * g
                    if e[2]:
                        dx[n, e[0], e[1], ch] += w[2] * g
                    if d[2]:
                        dx[n, d[0], d[1], ch] += w[3] * g


def resample(x, rows, cols, fill_mode, fill_value, interpolation):
    x = np.ascontiguousarray(x)
    out = np.empty(rows.shape + (x.shape[3],), dtype=x.dtype)
    _nb_resample(x, np.ascontiguousarray(rows, dtype=np.float64), np.ascontiguousarray(cols, dtype=np.float64),
                 _FILL_CODES[fill_mode], float(fill_value), interpolation == "nearest", out)
    return out


def resample_backward(dy, rows, cols, x_shape, fill_mode, interpolation):
    dx = np.empty(x_shape, dtype=np.float64)             # summed in float64, as the reference
    _nb_resample_backward(np.ascontiguousarray(dy), np.ascontiguousarray(rows, dtype=np.float64),
                          np.ascontiguousarray(cols, dtype=np.float64), _FILL_CODES[fill_mode],
                          interpolation == "nearest", dx)
    return dx.astype(dy.dtype)


# ---- GELU (reference.gelu / gelu_backward), one pass each, libm's erf ------------------------------
@njit(parallel=True, cache=True)
def _nb_gelu(z, y):
    for i in prange(z.size):
        v = z[i]
        y[i] = 0.5 * v * (1.0 + math.erf(v * 0.7071067811865476))


@njit(parallel=True, cache=True)
def _nb_gelu_backward(dy, z, dz):
    for i in prange(z.size):
        v = z[i]
        cdf = 0.5 * (1.0 + math.erf(v * 0.7071067811865476))
        dz[i] = dy[i] * (cdf + v * math.exp(-0.5 * v * v) * 0.3989422804014327)


def gelu(z):
    z = np.ascontiguousarray(z)
    y = np.empty_like(z)
    _nb_gelu(z.reshape(-1), y.reshape(-1))
    return y


def gelu_backward(dy, z):
    z, dy = np.ascontiguousarray(z), np.ascontiguousarray(dy, dtype=z.dtype)
    dz = np.empty_like(z)
    _nb_gelu_backward(dy.reshape(-1), z.reshape(-1), dz.reshape(-1))
    return dz


# ---- dropout: a counter-based random stream (SplitMix64), the same numbers on every backend ----------
_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(parallel=True, cache=True)
def _nb_dropout_mask(seed, counter, rate, scale, mask):
    key = _mix64((np.uint64(seed) << np.uint64(32)) ^ np.uint64(counter))
    for i in prange(mask.size):
        u = (_mix64(key + (np.uint64(i) + np.uint64(1)) * _GOLDEN) >> np.uint64(40)) * (1.0 / 16777216.0)
        mask[i] = scale if u >= rate else 0


def dropout_mask(shape, seed, counter, rate, dtype):
    mask = np.empty(shape, dtype=dtype)
    _nb_dropout_mask(seed, counter, rate, 1.0 / (1.0 - rate), mask.reshape(-1))
    return mask


@njit(parallel=True, cache=True)
def _nb_dropout_apply(x, seed, counter, rate, scale, y):
    key = _mix64((np.uint64(seed) << np.uint64(32)) ^ np.uint64(counter))
    for i in prange(x.size):
        u = (_mix64(key + (np.uint64(i) + np.uint64(1)) * _GOLDEN) >> np.uint64(40)) * (1.0 / 16777216.0)
        y[i] = x[i] * scale if u >= rate else 0


def dropout_apply(x, seed, counter, rate):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _nb_dropout_apply(x.reshape(-1), seed, counter, rate, x.dtype.type(1.0 / (1.0 - rate)), y.reshape(-1))
    return y


def dropout_train(x, seed, counter, rate, mask_shape):
    """reference.dropout_train with the kernels above."""
    return reference.dropout_train(x, seed, counter, rate, mask_shape, apply=dropout_apply, mask_of=dropout_mask)


# ---- optimizer rules (reference.sgd_update & co.): one pass over each variable ---------------------
@njit(parallel=True, cache=True)
def _nb_adam(w, g, m, v, alpha, beta_1, beta_2, epsilon, decay):
    for i in prange(w.size):
        wi = w[i] - w[i] * decay if decay else w[i]
        gi = g[i]
        mi = m[i] + (gi - m[i]) * (1 - beta_1)
        vi = v[i] + (gi * gi - v[i]) * (1 - beta_2)
        m[i] = mi
        v[i] = vi
        w[i] = wi - alpha * mi / (np.sqrt(vi) + epsilon)


@njit(parallel=True, cache=True)
def _nb_sgd_momentum(w, g, m, lr, momentum, nesterov, decay):
    for i in prange(w.size):
        wi = w[i] - w[i] * decay if decay else w[i]
        mi = momentum * m[i] - lr * g[i]
        m[i] = mi
        w[i] = wi + (momentum * mi - lr * g[i] if nesterov else mi)


@njit(parallel=True, cache=True)
def _nb_rmsprop(w, g, v, lr, rho, epsilon, decay):
    for i in prange(w.size):
        wi = w[i] - w[i] * decay if decay else w[i]
        gi = g[i]
        vi = rho * v[i] + (1 - rho) * gi * gi
        v[i] = vi
        w[i] = wi - lr * gi / np.sqrt(vi + epsilon)


@njit(parallel=True, cache=True)
def _nb_adadelta(w, g, a, d, lr, rho, epsilon, decay):
    for i in prange(w.size):
        wi = w[i] - w[i] * decay if decay else w[i]
        gi = g[i]
        ai = rho * a[i] + (1 - rho) * gi * gi
        delta = -(np.sqrt(d[i] + epsilon) * gi) / np.sqrt(ai + epsilon)
        a[i] = ai
        d[i] = rho * d[i] + (1 - rho) * delta * delta
        w[i] = wi + lr * delta


@njit(parallel=True, cache=True)
def _nb_adagrad(w, g, a, lr, epsilon, decay):
    for i in prange(w.size):
        wi = w[i] - w[i] * decay if decay else w[i]
        gi = g[i]
        ai = a[i] + gi * gi
        a[i] = ai
        w[i] = wi - lr * gi / np.sqrt(ai + epsilon)


@njit(parallel=True, cache=True)
def _nb_nadam(w, g, m, v, lr, c_m, c_g, v_correction, beta_1, beta_2, epsilon, decay):
    # m_hat = c_m m + c_g g, v_hat = v / v_correction (the host coefficients of reference.nadam_update)
    for i in prange(w.size):
        wi = w[i] - w[i] * decay if decay else w[i]
        gi = g[i]
        mi = m[i] + (gi - m[i]) * (1 - beta_1)
        vi = v[i] + (gi * gi - v[i]) * (1 - beta_2)
        m[i] = mi
        v[i] = vi
        w[i] = wi - lr * (c_m * mi + c_g * gi) / (np.sqrt(vi / v_correction) + epsilon)


def _flat(*arrays):
    return [a.reshape(-1) for a in arrays]


def _fast(*arrays):
    """The Numba rules need C-contiguous arrays of one dtype (always true of weights and slots)."""
    return all(a.flags.c_contiguous and a.dtype == arrays[0].dtype for a in arrays)


def adam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, vhat=None):
    if vhat is not None or not _fast(w, g, m, v):
        return reference.adam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, vhat)
    alpha = reference.adam_step_size(lr, t, beta_1, beta_2)
    _nb_adam(*_flat(w, g, m, v), alpha, beta_1, beta_2, epsilon, w.dtype.type(decay))   # decay in w's type, as NumPy


def sgd_update(w, g, m, lr, momentum, nesterov, decay):
    if m is None or not _fast(w, g, m):
        return reference.sgd_update(w, g, m, lr, momentum, nesterov, decay)
    _nb_sgd_momentum(*_flat(w, g, m), lr, momentum, nesterov, w.dtype.type(decay))


def rmsprop_update(w, g, v, lr, rho, epsilon, decay, momentum=0.0, mom=None, average=None):
    if mom is not None or average is not None or not _fast(w, g, v):
        return reference.rmsprop_update(w, g, v, lr, rho, epsilon, decay, momentum, mom, average)
    _nb_rmsprop(*_flat(w, g, v), lr, rho, epsilon, w.dtype.type(decay))


def adadelta_update(w, g, accumulated_grad, accumulated_delta, lr, rho, epsilon, decay):
    if not _fast(w, g, accumulated_grad, accumulated_delta):
        return reference.adadelta_update(w, g, accumulated_grad, accumulated_delta, lr, rho, epsilon, decay)
    _nb_adadelta(*_flat(w, g, accumulated_grad, accumulated_delta), lr, rho, epsilon, w.dtype.type(decay))


def adagrad_update(w, g, accumulator, lr, epsilon, decay):
    if not _fast(w, g, accumulator):
        return reference.adagrad_update(w, g, accumulator, lr, epsilon, decay)
    _nb_adagrad(*_flat(w, g, accumulator), lr, epsilon, w.dtype.type(decay))


def nadam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, u_product):
    if not _fast(w, g, m, v):
        return reference.nadam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, u_product)
    u_t, u_next = reference.nadam_momentum(t + 1, beta_1), reference.nadam_momentum(t + 2, beta_1)
    c_m, c_g = u_next / (1 - u_product * u_next), (1 - u_t) / (1 - u_product)
    _nb_nadam(*_flat(w, g, m, v), lr, c_m, c_g, 1 - beta_2 ** (t + 1), beta_1, beta_2, epsilon, w.dtype.type(decay))


# ---- the max-norm constraint (reference.max_norm): column norms in float64, then one scaling pass ---
@njit(parallel=True, cache=True)
def _nb_scale_columns(w, scale):
    R, F = w.shape
    for r in prange(R):
        for f in range(F):
            w[r, f] *= scale[f]


def max_norm(w, max_value):
    if not w.flags.c_contiguous:
        return reference.max_norm(w, max_value)
    w2 = w.reshape(-1, w.shape[-1])
    norms = np.sqrt(_column_sums(w2)[1])                     # batch normalization's sums: x and x^2
    _nb_scale_columns(w2, (np.clip(norms, 0, max_value) / (1e-7 + norms)).astype(w.dtype))
