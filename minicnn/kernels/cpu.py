"""Numba kernels for the CPU: the same functions as ``reference.py``, as explicit loops.

Each ``_nb_*`` kernel writes into a preallocated output; the thin wrappers below allocate it and
keep the reference signatures. Windows are walked without padding the input: a cell outside the
input is 0 for convolution and skipped for pooling. Parallel loops split over independent rows
(im2col) or images (everything that scatters), so no two threads write the same cell.
"""
import numpy as np
from numba import njit, prange

from minicnn.kernels.reference import argmax_dtype


@njit(parallel=True, cache=True)
def _nb_im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, cols):
    N, H, W, C = x.shape
    for r in prange(N * OH):
        n = r // OH
        oh = r - n * OH
        for ow in range(OW):
            row = r * OW + ow
            for i in range(KH):
                h = oh * sh - pt + i
                for j in range(KW):
                    w = ow * sw - pl + j
                    base = (i * KW + j) * C
                    if 0 <= h < H and 0 <= w < W:
                        for c in range(C):
                            cols[row, base + c] = x[n, h, w, c]
                    else:
                        for c in range(C):
                            cols[row, base + c] = 0


@njit(parallel=True, cache=True)
def _nb_col2im(dcols, KH, KW, sh, sw, pt, pl, OH, OW, dx):
    N, H, W, C = dx.shape
    for n in prange(N):
        dx[n] = 0
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                for i in range(KH):
                    h = oh * sh - pt + i
                    if h < 0 or h >= H:
                        continue
                    for j in range(KW):
                        w = ow * sw - pl + j
                        if w < 0 or w >= W:
                            continue
                        base = (i * KW + j) * C
                        for c in range(C):
                            dx[n, h, w, c] += dcols[row, base + c]


@njit(parallel=True, cache=True)
def _nb_maxpool_forward(x, PH, PW, sh, sw, pt, pl, y, arg):
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for r in prange(N * OH):
        n = r // OH
        oh = r - n * OH
        for ow in range(OW):
            for c in range(C):
                best = -np.inf
                k = 0
                for i in range(PH):
                    h = oh * sh - pt + i
                    if h < 0 or h >= H:
                        continue
                    for j in range(PW):
                        w = ow * sw - pl + j
                        if w < 0 or w >= W:
                            continue
                        v = x[n, h, w, c]
                        if v > best:            # strict: ties keep the first cell
                            best = v
                            k = i * PW + j
                y[n, oh, ow, c] = best
                arg[n, oh, ow, c] = k


@njit(parallel=True, cache=True)
def _nb_maxpool_backward(dout, arg, PH, PW, sh, sw, pt, pl, dx):
    N, H, W, C = dx.shape
    OH, OW = dout.shape[1], dout.shape[2]
    for n in prange(N):
        dx[n] = 0
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    k = arg[n, oh, ow, c]
                    i = k // PW
                    j = k - i * PW
                    dx[n, oh * sh - pt + i, ow * sw - pl + j, c] += dout[n, oh, ow, c]


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


def im2col(x, KH, KW, sh, sw, pt, pl, OH, OW):
    x = np.ascontiguousarray(x)
    cols = np.empty((x.shape[0] * OH * OW, KH * KW * x.shape[3]), dtype=x.dtype)
    _nb_im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, cols)
    return cols


def col2im(dcols, x_shape, KH, KW, sh, sw, pt, pl, OH, OW):
    dx = np.empty(x_shape, dtype=dcols.dtype)
    _nb_col2im(np.ascontiguousarray(dcols), KH, KW, sh, sw, pt, pl, OH, OW, dx)
    return dx


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
