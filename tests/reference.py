"""Naive loop implementations, written straight from the definitions: the oracles for the
layers' forward and backward. Slow on purpose; use tiny shapes."""
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
