"""Naive loop implementations, written straight from the definitions: the oracles for the
layers' forward and backward and for every backend's kernels (tests/test_kernels.py). Slow on
purpose; use tiny shapes."""
import math

import numpy as np


def same_pads(size, k, s):
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2


def geometry(size, k, s, padding):
    if padding == "valid":
        return (size - k) // s + 1, 0
    return same_pads(size, k, s)


def conv2d_forward(x, W, b, stride, padding):
    """y[n,oh,ow,f] = b[f] + sum_{i,j,c} x[n, oh*sh - pt + i, ow*sw - pl + j, c] W[i,j,c,f] (0 outside)."""
    N, H, Wd, C = x.shape
    KH, KW, _, F = W.shape
    sh, sw = stride
    OH, pt = geometry(H, KH, sh, padding)
    OW, pl = geometry(Wd, KW, sw, padding)
    y = np.zeros((N, OH, OW, F))
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for f in range(F):
                    s = b[f]
                    for i in range(KH):
                        for j in range(KW):
                            h, w = oh * sh - pt + i, ow * sw - pl + j
                            if 0 <= h < H and 0 <= w < Wd:
                                s += x[n, h, w, :] @ W[i, j, :, f]
                    y[n, oh, ow, f] = s
    return y


def conv2d_backward(x, W, dy, stride, padding):
    """(dx, dW, db) by the chain rule applied to conv2d_forward term by term."""
    N, H, Wd, C = x.shape
    KH, KW, _, F = W.shape
    sh, sw = stride
    OH, pt = geometry(H, KH, sh, padding)
    OW, pl = geometry(Wd, KW, sw, padding)
    dx, dW, db = np.zeros_like(x, dtype=float), np.zeros_like(W, dtype=float), dy.sum(axis=(0, 1, 2))
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for i in range(KH):
                    for j in range(KW):
                        h, w = oh * sh - pt + i, ow * sw - pl + j
                        if 0 <= h < H and 0 <= w < Wd:
                            dW[i, j] += np.outer(x[n, h, w, :], dy[n, oh, ow, :])
                            dx[n, h, w, :] += W[i, j] @ dy[n, oh, ow, :]
    return dx, dW, db


def _windows(shape, pool, stride, padding):
    N, H, Wd, C = shape
    (PH, PW), (sh, sw) = pool, stride
    OH, pt = geometry(H, PH, sh, padding)
    OW, pl = geometry(Wd, PW, sw, padding)
    for oh in range(OH):
        for ow in range(OW):
            cells = [(oh * sh - pt + i, ow * sw - pl + j) for i in range(PH) for j in range(PW)]
            yield oh, ow, [(h, w) for h, w in cells if 0 <= h < H and 0 <= w < Wd]


def pool_output_shape(shape, pool, stride, padding):
    N, H, Wd, C = shape
    return N, geometry(H, pool[0], stride[0], padding)[0], geometry(Wd, pool[1], stride[1], padding)[0], C


def maxpool_forward(x, pool, stride, padding):
    y = np.zeros(pool_output_shape(x.shape, pool, stride, padding))
    for oh, ow, cells in _windows(x.shape, pool, stride, padding):
        y[:, oh, ow, :] = np.max([x[:, h, w, :] for h, w in cells], axis=0)
    return y


def maxpool_backward(x, dy, pool, stride, padding):
    """The gradient of each window goes to its first maximum in row-major order."""
    dx = np.zeros_like(x, dtype=float)
    for oh, ow, cells in _windows(x.shape, pool, stride, padding):
        for n in range(x.shape[0]):
            for c in range(x.shape[3]):
                vals = [x[n, h, w, c] for h, w in cells]
                h, w = cells[int(np.argmax(vals))]        # argmax returns the first maximum
                dx[n, h, w, c] += dy[n, oh, ow, c]
    return dx


def avgpool_forward(x, pool, stride, padding):
    y = np.zeros(pool_output_shape(x.shape, pool, stride, padding))
    for oh, ow, cells in _windows(x.shape, pool, stride, padding):
        y[:, oh, ow, :] = np.mean([x[:, h, w, :] for h, w in cells], axis=0)
    return y


def avgpool_backward(x, dy, pool, stride, padding):
    dx = np.zeros_like(x, dtype=float)
    for oh, ow, cells in _windows(x.shape, pool, stride, padding):
        for h, w in cells:
            dx[:, h, w, :] += dy[:, oh, ow, :] / len(cells)
    return dx


def zero_pad(x, top, bottom, left, right):
    """y[n, h, w, c] = x[n, h - top, w - left, c] where that cell exists, else 0 (ZeroPadding2D)."""
    N, H, W, C = x.shape
    y = np.zeros((N, top + H + bottom, left + W + right, C))
    for n in range(N):
        for h in range(y.shape[1]):
            for w in range(y.shape[2]):
                if 0 <= h - top < H and 0 <= w - left < W:
                    y[n, h, w, :] = x[n, h - top, w - left, :]
    return y


def zero_pad_backward(dy, x_shape, top, left):
    """dx[n, h, w, c] = dy[n, h + top, w + left, c]: each input cell's one output cell."""
    N, H, W, C = x_shape
    dx = np.zeros(x_shape)
    for n in range(N):
        for h in range(H):
            for w in range(W):
                dx[n, h, w, :] = dy[n, h + top, w + left, :]
    return dx


def flip_crop(x, flips, dy, dx, pad):
    """Naive loops: mirror image n where flips[n], pad it by reflection (the border pixel is not
    repeated), cut the window at (dy[n], dx[n])."""
    N, H, W, C = x.shape
    out = np.empty_like(x)
    for n in range(N):
        img = x[n, :, ::-1] if flips[n] else x[n]
        padded = np.empty((H + 2 * pad, W + 2 * pad, C), x.dtype)
        for i in range(H + 2 * pad):
            for j in range(W + 2 * pad):
                r, c = i - pad, j - pad
                r = -r if r < 0 else (2 * (H - 1) - r if r >= H else r)
                c = -c if c < 0 else (2 * (W - 1) - c if c >= W else c)
                padded[i, j] = img[r, c]
        out[n] = padded[dy[n]:dy[n] + H, dx[n]:dx[n] + W]
    return out


def im2col(x, kernel, stride, padding):
    """cols[(n*OH + oh)*OW + ow, (i*KW + j)*C + c] = x[n, oh*sh - pt + i, ow*sw - pl + j, c] (0 outside)."""
    N, H, Wd, C = x.shape
    (KH, KW), (sh, sw) = kernel, stride
    OH, pt = geometry(H, KH, sh, padding)
    OW, pl = geometry(Wd, KW, sw, padding)
    cols = np.zeros((N, OH, OW, KH, KW, C), dtype=x.dtype)
    for oh in range(OH):
        for ow in range(OW):
            for i in range(KH):
                for j in range(KW):
                    h, w = oh * sh - pt + i, ow * sw - pl + j
                    if 0 <= h < H and 0 <= w < Wd:
                        cols[:, oh, ow, i, j, :] = x[:, h, w, :]
    return cols.reshape(N * OH * OW, KH * KW * C)


def col2im(dcols, x_shape, kernel, stride, padding):
    """The adjoint of im2col: every entry of dcols added to the input cell it was copied from."""
    N, H, Wd, C = x_shape
    (KH, KW), (sh, sw) = kernel, stride
    OH, pt = geometry(H, KH, sh, padding)
    OW, pl = geometry(Wd, KW, sw, padding)
    d = dcols.reshape(N, OH, OW, KH, KW, C)
    dx = np.zeros(x_shape)
    for oh in range(OH):
        for ow in range(OW):
            for i in range(KH):
                for j in range(KW):
                    h, w = oh * sh - pt + i, ow * sw - pl + j
                    if 0 <= h < H and 0 <= w < Wd:
                        dx[:, h, w, :] += d[:, oh, ow, i, j, :]
    return dx


def maxpool_argmax(x, pool, stride, padding):
    """Where each window's first maximum (row-major) is, as the offset i*PW + j inside the window
    (cells outside the input counted in the numbering, never chosen)."""
    PH, PW = pool
    y = pool_output_shape(x.shape, pool, stride, padding)
    arg = np.zeros(y, dtype=np.int64)
    _, pt = geometry(x.shape[1], PH, stride[0], padding)
    _, pl = geometry(x.shape[2], PW, stride[1], padding)
    for n in range(x.shape[0]):
        for c in range(x.shape[3]):
            for oh, ow, cells in _windows(x.shape, pool, stride, padding):
                vals = [x[n, h, w, c] for h, w in cells]
                h, w = cells[int(np.argmax(vals))]
                arg[n, oh, ow, c] = (h - (oh * stride[0] - pt)) * PW + (w - (ow * stride[1] - pl))
    return arg


def activation(name, z):
    """act(z) in float64 from the definitions (softmax over the last axis)."""
    z = np.asarray(z, dtype=float)
    if name == "linear":
        return z
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "gelu":
        return gelu(z)
    raise ValueError(name)


def activation_grad(name, dy, saved):
    """dL/dz = act'(z) dy in float64, written as activations.py's contract has it: in terms of the
    output y = saved (softmax: y (dy - sum_k dy_k y_k) over the last axis; relu'(0) = 0, as in TF),
    except GELU, whose saved value is its input z."""
    dy, s = np.asarray(dy, dtype=float), np.asarray(saved, dtype=float)
    if name == "linear":
        return dy
    if name == "relu":
        return dy * (s > 0)
    if name == "tanh":
        return dy * (1 - s * s)
    if name == "sigmoid":
        return dy * s * (1 - s)
    if name == "softmax":
        return s * (dy - (dy * s).sum(axis=-1, keepdims=True))
    if name == "gelu":
        return gelu_grad(s, dy)
    raise ValueError(name)


def gelu(z):
    """z Phi(z), Phi the standard normal CDF, one math.erf call per element."""
    z = np.asarray(z, dtype=float)
    return np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z.ravel()]).reshape(z.shape)


def gelu_grad(z, dy):
    """dy (Phi(z) + z phi(z)), phi the standard normal density."""
    z, dy = np.asarray(z, dtype=float), np.asarray(dy, dtype=float)
    d = [0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in z.ravel()]
    return dy * np.array(d).reshape(z.shape)


def batchnorm_forward(x, gamma, beta, eps):
    """Per column c of x (M, C): mean, biased variance, y = gamma (x - mean) / sqrt(var + eps) + beta."""
    x = np.asarray(x, dtype=float)
    M, C = x.shape
    mean, var, y = np.zeros(C), np.zeros(C), np.zeros((M, C))
    for c in range(C):
        mean[c] = sum(x[:, c]) / M
        var[c] = sum((x[:, c] - mean[c]) ** 2) / M
        g = 1.0 if gamma is None else float(gamma[c])
        b = 0.0 if beta is None else float(beta[c])
        y[:, c] = g * (x[:, c] - mean[c]) / math.sqrt(var[c] + eps) + b
    return y, mean, var


def batchnorm_backward(dy, x, gamma, eps):
    """(dx, dgamma, dbeta) by the chain rule through mean and variance, one step at a time."""
    x, dy = np.asarray(x, dtype=float), np.asarray(dy, dtype=float)
    M, C = x.shape
    _, mean, var = batchnorm_forward(x, None, None, eps)
    g = np.ones(C) if gamma is None else np.asarray(gamma, dtype=float)
    xc = x - mean
    inv = 1 / np.sqrt(var + eps)
    dxhat = dy * g
    dvar = (dxhat * xc).sum(axis=0) * -0.5 * inv ** 3
    dmean = -(dxhat * inv).sum(axis=0) + dvar * (-2 * xc).sum(axis=0) / M
    dx = dxhat * inv + dvar * 2 * xc / M + dmean / M
    return dx, (dy * xc * inv).sum(axis=0), dy.sum(axis=0)


_M64 = (1 << 64) - 1


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def dropout_keep(shape, seed, counter, rate):
    """Which entries a dropout mask keeps, in Python integers: key = mix64(seed * 2^32 XOR counter),
    u_i = (mix64(key + (i + 1) * golden) >> 40) / 2^24 in C order, kept where u_i >= rate."""
    key = _mix64(((int(seed) << 32) ^ int(counter)) & _M64)
    n = int(np.prod(shape))
    u = [(_mix64((key + (i + 1) * 0x9E3779B97F4A7C15) & _M64) >> 40) / 16777216.0 for i in range(n)]
    return (np.array(u) >= rate).reshape(shape)


def max_norm(w, max_value):
    """w * min(norm, max) / (1e-7 + norm) per column, norms over every axis but the last (float64)."""
    w = np.asarray(w, dtype=float)
    norms = np.sqrt((w.reshape(-1, w.shape[-1]) ** 2).sum(axis=0))
    return w * np.minimum(norms, max_value) / (1e-7 + norms)


def fill_index(i, size, fill_mode):
    """An integer position outside [0, size) brought inside, one reflection or period at a time:
    reflect mirrors about the edge (-1 -> 0, -2 -> 1, size -> size - 1), wrap adds or subtracts
    size, nearest clips. (constant is handled by the caller.)"""
    if fill_mode == "nearest":
        return min(max(i, 0), size - 1)
    while not 0 <= i < size:
        if fill_mode == "reflect":
            i = -1 - i if i < 0 else 2 * size - 1 - i
        else:
            i = i + size if i < 0 else i - size
    return i


def _resample_taps(r, c, interpolation):
    """[(row, col, weight)] of one position: the closest pixel (halves rounded up), or the four
    around it with the bilinear weights."""
    if interpolation == "nearest":
        return [(math.floor(r + 0.5), math.floor(c + 0.5), 1.0)]
    r0, c0 = math.floor(r), math.floor(c)
    fr, fc = r - r0, c - c0
    return [(r0, c0, (1 - fr) * (1 - fc)), (r0, c0 + 1, (1 - fr) * fc), (r0 + 1, c0, fr * (1 - fc)),
            (r0 + 1, c0 + 1, fr * fc)]


def resample(x, rows, cols, fill_mode, fill_value, interpolation):
    """Naive loops: out[n, i, j] = sum of weight * pixel over the taps of (rows, cols)[n, i, j];
    a pixel outside the image is fill_value (constant) or fill_index's pixel."""
    N, H, W, C = x.shape
    out = np.zeros(rows.shape + (C,))
    for n, i, j in np.ndindex(rows.shape):
        for r, c, w in _resample_taps(rows[n, i, j], cols[n, i, j], interpolation):
            if fill_mode == "constant" and not (0 <= r < H and 0 <= c < W):
                out[n, i, j] += w * fill_value
            else:
                out[n, i, j] += w * x[n, fill_index(r, H, fill_mode), fill_index(c, W, fill_mode)]
    return out


def resample_backward(dy, rows, cols, x_shape, fill_mode, interpolation):
    """Naive loops: every tap adds weight * dy[n, i, j] to the pixel it read (nothing for fill_value)."""
    N, H, W, C = x_shape
    dx = np.zeros(x_shape)
    for n, i, j in np.ndindex(rows.shape):
        for r, c, w in _resample_taps(rows[n, i, j], cols[n, i, j], interpolation):
            if fill_mode == "constant" and not (0 <= r < H and 0 <= c < W):
                continue
            dx[n, fill_index(r, H, fill_mode), fill_index(c, W, fill_mode)] += w * dy[n, i, j]
    return dx
