"""Conv2D on the CPU: im2col + GEMM computed on row blocks that stay in the core's cache.

The equations are the layer's (layers/conv.py), unchanged:
    cols = im2col(x);  Z = cols @ Wm + b;  y = act(Z)
    dZ = dy * act'(y);  dWm = cols^T @ dZ;  db = sum_rows dZ;  dx = col2im(dZ @ Wm^T)
The whole-batch version builds `cols` for all N*OH*OW output pixels at once: 105 MB for a 5x5
convolution over 32x32x32 at batch 32, written once, read by two GEMMs and matched by a `dcols`
of the same size: the time goes into memory traffic. Here the rows of those matrices are cut
into tiles (a band of output rows, `band` image rows q = n*OH + oh at a time) sized to stay in L2:

  forward, per tile:  im2col the tile's rows into a per-thread buffer -> Z_tile = cols_tile @ Wm
                      -> y_tile = act(Z_tile + b), written while the tile is hot
  backward, per tile: dZ_tile = dy_tile * act'(y_tile) (db summed on the way) -> im2col again
                      (recomputing the columns is cheaper than a round trip through memory)
                      -> dWm += cols_tile^T @ dZ_tile -> dcols_tile = dZ_tile @ Wm^T -> col2im into dx
                      (or, where dx_in_place: dx += dZ_tile @ Wm^T block by block, straight into dx)

At stride 1 the forward skips the copy: the columns of one kernel row are a strided view of the
input itself (see "the forward at stride 1" below), where implicit_pays says it is faster; and for
inputs of few channels (a first layer's C = 3) so does the backward ("the backward at stride 1":
dWm_i = view_i^T @ dZ, and dx as the forward of the padded dZ with the kernel turned by 180
degrees), where implicit_backward_pays says so.

Threads: the forward splits tiles between threads; the backward gives each thread whole images
(their dx rows are its own), a private dWm/db sum, and adds the threads' sums in a fixed order,
so a run is bit-for-bit repeatable for a given thread count. The GEMMs are cpu_gemm's micro-
kernel (one thread each). The activation is fused only for 'relu' and 'linear'; the layer
applies any other one to Z itself. Tile size: TILE_BYTES of working set per thread (default half
the L2 cache; env MINICNN_TILE_BYTES or set_tile_bytes()).
"""
import math
import os

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from minicnn.kernels.cpu_gemm import KC, MR, NR, VW, _strip, gemm_at, gemm_packed, pack_strips
from minicnn.kernels.reference import argmax_dtype


# ---- im2col / col2im over a range of image rows ----------------------------------------------------
@intrinsic
def _copy_bytes(typingctx, dst, src, nbytes):
    """memcpy(dst, src, nbytes) on byte addresses (LLVM's memcpy: a short run costs a few cycles,
    where slicing out two array views to copy it costs more than the copy)."""
    def codegen(context, builder, signature, args):
        byte_ptr = ir.IntType(8).as_pointer()
        cgutils.raw_memcpy(builder, builder.inttoptr(args[0], byte_ptr), builder.inttoptr(args[1], byte_ptr),
                           args[2], 1)
        return context.get_dummy_value()
    return types.void(dst, src, nbytes), codegen


@intrinsic
def _zero_bytes(typingctx, dst, nbytes):
    """memset(dst, 0, nbytes) on a byte address."""
    def codegen(context, builder, signature, args):
        cgutils.memset(builder, builder.inttoptr(args[0], ir.IntType(8).as_pointer()), args[1], 0)
        return context.get_dummy_value()
    return types.void(dst, nbytes), codegen


@njit(cache=True)
def im2col_rows(x, q0, q1, KH, KW, sh, sw, pt, pl, OH, OW, cols):
    """cols[(q - q0)*OW + ow, (i*KW + j)*C + c] = xpad[n, oh*sh + i, ow*sw + j, c] for the image
    rows q = n*OH + oh in [q0, q1) (reference.im2col, restricted to those rows; 0 = padding).

    For one kernel row i, a patch's KW*C entries are one contiguous run of x's row h (NHWC):
    copied in one go, except where the window hangs over the left or right edge. x is
    C-contiguous; cols's rows may be longer than KH*KW*C (the tail is left alone)."""
    N, H, W, C = x.shape
    size = x.itemsize
    px, pc, ld = np.int64(x.ctypes.data), np.int64(cols.ctypes.data), np.int64(cols.strides[0])
    pixel, run = C * size, KW * C * size                   # bytes
    for q in range(q0, q1):
        n, oh = q // OH, q % OH
        for ow in range(OW):
            row = pc + ((q - q0) * OW + ow) * ld
            w0 = ow * sw - pl
            inside = 0 <= w0 and w0 + KW <= W
            for i in range(KH):
                h = oh * sh - pt + i
                dst = row + i * run
                if h < 0 or h >= H:
                    _zero_bytes(dst, run)
                elif inside:
                    _copy_bytes(dst, px + ((n * H + h) * W + w0) * pixel, run)
                else:
                    for j in range(KW):
                        w = w0 + j
                        if 0 <= w < W:
                            _copy_bytes(dst + j * pixel, px + ((n * H + h) * W + w) * pixel, pixel)
                        else:
                            _zero_bytes(dst + j * pixel, pixel)


@njit(cache=True)
def col2im_rows(dcols, q0, q1, KH, KW, sh, sw, pt, pl, OH, OW, dx):
    """The adjoint of im2col_rows: dx[n, h, w, c] += every patch entry that came from it."""
    N, H, W, C = dx.shape
    dxr = dx.reshape(N, H, W * C)
    run = KW * C
    for q in range(q0, q1):
        n, oh = q // OH, q % OH
        for ow in range(OW):
            src = dcols[(q - q0) * OW + ow]
            w0 = ow * sw - pl
            for i in range(KH):
                h = oh * sh - pt + i
                if h < 0 or h >= H:
                    continue
                part = src[i * run:(i + 1) * run]
                if 0 <= w0 and w0 + KW <= W:
                    dst = dxr[n, h, w0 * C:w0 * C + run]
                    for e in range(run):
                        dst[e] += part[e]
                else:
                    for j in range(KW):
                        w = w0 + j
                        if 0 <= w < W:
                            for c in range(C):
                                dx[n, h, w, c] += part[j * C + c]


@njit(parallel=True, cache=True)
def _nb_im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, cols):
    for n in prange(x.shape[0]):
        im2col_rows(x, n * OH, (n + 1) * OH, KH, KW, sh, sw, pt, pl, OH, OW, cols[n * OH * OW:(n + 1) * OH * OW])


@njit(parallel=True, cache=True)
def _nb_col2im(dcols, KH, KW, sh, sw, pt, pl, OH, OW, dx):
    for n in prange(dx.shape[0]):
        dx[n].reshape(-1)[:] = 0
        col2im_rows(dcols[n * OH * OW:(n + 1) * OH * OW], n * OH, (n + 1) * OH, KH, KW, sh, sw, pt, pl, OH, OW, dx)


def im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, out=None):
    x = np.ascontiguousarray(x)
    cols = np.empty((x.shape[0] * OH * OW, KH * KW * x.shape[3]), dtype=x.dtype) if out is None else out
    _nb_im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, cols)
    return cols


def col2im(dcols, x_shape, KH, KW, sh, sw, pt, pl, OH, OW):
    dx = np.empty(x_shape, dtype=dcols.dtype)
    _nb_col2im(np.ascontiguousarray(dcols), KH, KW, sh, sw, pt, pl, OH, OW, dx)
    return dx


# ---- the blocked convolution ---------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _nb_conv_forward(x, Wp, b, relu, KH, KW, sh, sw, pt, pl, OH, OW, band, cols, z, y):
    """y (N*OH*OW, F) = act(im2col(x) @ Wm + b), tile by tile. Wp: Wm packed by pack_strips (its
    columns padded to Fp, a multiple of VW); cols (T, rows, Kp) and z (T, rows, Fp): per-thread."""
    F, Fp, K = y.shape[1], z.shape[2], Wp.shape[1]
    Q = x.shape[0] * OH                                   # image rows
    tiles = (Q + band - 1) // band
    T = cols.shape[0]
    per_thread = (tiles + T - 1) // T
    for t in prange(T):
        for tile in range(t * per_thread, min(tiles, (t + 1) * per_thread)):
            q0 = tile * band
            q1 = min(Q, q0 + band)
            rows = (q1 - q0) * OW
            im2col_rows(x, q0, q1, KH, KW, sh, sw, pt, pl, OH, OW, cols[t])
            gemm_packed(cols[t], 0, cols.shape[2], 1, Wp, z[t], 0, Fp, rows, Fp, K, False)     # Z = cols @ Wm
            out = y[q0 * OW:q1 * OW]
            zt = z[t]
            for r in range(rows):                         # bias + activation while the tile is hot
                for f in range(F):
                    v = zt[r, f] + b[f]
                    out[r, f] = v if (v > 0 or not relu) else 0


@njit(cache=True, inline="always")
def _dz_rows(dy, y, relu, dz, db_sum):
    """dz = dy * act'(y) over a block of pixels (rows of F): relu's derivative reads y, linear
    passes dy through. db_sum += dz, pixel by pixel."""
    for r in range(dy.shape[0]):
        for f in range(dy.shape[1]):
            g = dy[r, f] if (y[r, f] > 0 or not relu) else 0
            dz[r, f] = g
            db_sum[f] += g


@njit(cache=True, inline="always")
def _dz_pooled_row(dout, arg, pooled, n, oh, PH, PW, dz, db_sum):
    """dz[ow, :] for output row oh of image n when a max-pooling (PH x PW windows side by side) took
    this relu conv's output: each window's pooled gradient dout goes to its winner, where the relu
    let it through (the winner's value, pooled, > 0); every other cell, and any cell outside all
    windows, gets 0 (maxpool_backward and relu's derivative in one). db_sum += dz, pixel by pixel."""
    OW, F = dz.shape[0], dout.shape[3]
    ph, i = oh // PH, oh % PH
    covered = 0
    if ph < dout.shape[1]:
        dr, ar, pr = dout[n, ph], arg[n, ph], pooled[n, ph]
        covered = dout.shape[2] * PW
        for pw in range(dout.shape[2]):
            for j in range(PW):
                ow, k = pw * PW + j, ar.dtype.type(i * PW + j)
                for f in range(F):                  # & (not `and`): no branch on random data, a select
                    keep = (ar[pw, f] == k) & (pr[pw, f] > 0)
                    dz[ow, f] = dr[pw, f] if keep else dr.dtype.type(0)
        for ow in range(covered):                   # db apart: the loop above stays vectorized
            for f in range(F):
                db_sum[f] += dz[ow, f]
    for ow in range(covered, OW):
        for f in range(F):
            dz[ow, f] = 0


@njit(parallel=True, cache=True)
def _nb_conv_backward(dy, y, relu, x, WTp, KH, KW, sh, sw, pt, pl, OH, OW, band, input_grad, in_place,
                      cols, dz, dcols, dW_part, db_part, dx, pool_dout, pool_arg, pooled, PH, PW):
    """Per thread, for its images, tile by tile: dz = dy * act'(y) (db summed), cols = im2col,
    dWm += cols^T @ dz, and when input_grad: dcols = dz @ Wm^T, col2im into dx (or dx in place).
    dy, y (N*OH*OW, F); WTp: Wm^T (F, Kp) packed by pack_strips; dW_part (T, Kp, Fp).
    (cols^T is read without a copy: a micro-kernel's MR rows of it are MR neighbouring columns of
    cols, one short run of each row; dz, the tile's small operand, stays in L1 for all of them.
    Measured 1.03-1.45x the backward of dWm^T = dz^T @ cols on the zoo's layers.)
    PH > 0: dz comes from the max-pooling that took y instead (_dz_pooled_row; dy, y unused)."""
    N = x.shape[0]
    T, Kp, Fp = cols.shape[0], cols.shape[2], dz.shape[2]
    F = WTp.shape[1]
    per_thread = (N + T - 1) // T
    for t in prange(T):
        dW_part[t].reshape(-1)[:] = 0
        db_sum = np.zeros(F)                              # float64: a sum over N*OH*OW rows
        n0, n1 = min(N, t * per_thread), min(N, (t + 1) * per_thread)
        if input_grad:
            dx[n0:n1].reshape(-1)[:] = 0
        for q0 in range(n0 * OH, n1 * OH, band):
            q1 = min(n1 * OH, q0 + band)
            rows = (q1 - q0) * OW
            r0 = q0 * OW
            dzt = dz[t]
            if PH > 0:                                    # dz from the pooling's gradient
                for q in range(q0, q1):
                    _dz_pooled_row(pool_dout, pool_arg, pooled, q // OH, q % OH, PH, PW,
                                   dzt[(q - q0) * OW:(q - q0 + 1) * OW], db_sum)
            else:                                         # dz = dy * act'(y), and db
                _dz_rows(dy[r0:r0 + rows], y[r0:r0 + rows], relu, dzt, db_sum)
            im2col_rows(x, q0, q1, KH, KW, sh, sw, pt, pl, OH, OW, cols[t])
            size, pc, pd, pw = x.itemsize, np.int64(cols[t].ctypes.data), np.int64(dz[t].ctypes.data), \
                np.int64(dW_part[t].ctypes.data)
            for n0 in range(0, Fp, NR):                   # dWm += cols^T @ dz, NR (or VW) columns at a time
                _strip(x.dtype, size, Kp, n0 + NR <= Fp, pc, MR * size, 1, Kp, pd + n0 * size, Fp, pw + n0 * size,
                       Fp, rows, True)
            if input_grad and in_place:                 # dx += dz @ Wm^T straight into dx: no dcols
                _dx_in_place(dz[t], q0, q1, WTp, KH, KW, sh, sw, pt, pl, OH, OW, dx)
            elif input_grad:
                gemm_packed(dz[t], 0, Fp, 1, WTp, dcols[t], 0, Kp, rows, Kp, F, False)     # dcols = dz @ Wm^T
                col2im_rows(dcols[t], q0, q1, KH, KW, sh, sw, pt, pl, OH, OW, dx)
        db_part[t, :] = db_sum


@njit(cache=True)
def _dx_in_place(dz, q0, q1, WTp, KH, KW, sh, sw, pt, pl, OH, OW, dx):
    """dx += col2im(dz @ Wm^T) for the image rows q in [q0, q1), without the dcols matrix: the block
    of dcols for kernel cell (i, j) and the pixels ow of one output row adds into dx[n, h, w, :] at
    h = oh*sh - pt + i, w = ow*sw - pl + j, i.e. into rows sw*C apart. So each (output row, i, j)
    is one small GEMM whose C operand IS dx (accumulated in place): dz rows (F deep) times the
    (F x C) block of Wm^T, over the pixels whose w falls inside the image. C % VW == 0."""
    N, H, W, C = dx.shape
    F = WTp.shape[1]
    Fp, size = dz.shape[1], dz.itemsize
    pa0, pb, px = np.int64(dz.ctypes.data), np.int64(WTp.ctypes.data), np.int64(dx.ctypes.data)
    for q in range(q0, q1):
        n, oh = q // OH, q % OH
        for i in range(KH):
            h = oh * sh - pt + i
            if h < 0 or h >= H:
                continue
            for j in range(KW):
                lo = max(0, (pl - j + sw - 1) // sw)          # the pixels with 0 <= ow*sw - pl + j < W
                hi = min(OW, (W - 1 + pl - j) // sw + 1)
                if hi <= lo:
                    continue
                pa = pa0 + ((q - q0) * OW + lo) * Fp * size
                c0 = 0
                while c0 < C:                                  # NR columns at a time, or VW
                    col = (i * KW + j) * C + c0                # the column of Wm^T (and of dcols)
                    wide = C - c0 >= NR and col % NR == 0
                    pc = px + (((n * H + h) * W + lo * sw - pl + j) * C + c0) * size
                    _strip(dz.dtype, size, hi - lo, wide, pa, MR * Fp * size, Fp, 1,
                           pb + ((col // NR) * F * NR + col % NR) * size, NR, pc, sw * C, F, True)
                    c0 += NR if wide else VW


@njit(cache=True, inline="always")
def _views_gemm(dt, size, pa, C, row, KH, run, ps, pz, Fp, M):
    """Z (M x Fp, at pz) = sum_i view_i @ Wm_i for i < KH, where view_i[m, k] = a[pa + (i*row + m*C +
    k) elements], k < run, and ps holds Wm (KH*run x Fp) packed by pack_strips. A product no deeper
    than KC is one pass of the micro-kernel over all KH views (its KI: Z stays in registers);
    a deeper one, KH products of gemm_at added up."""
    K = KH * run
    if K <= KC:
        for s0 in range(0, Fp, NR):
            _strip(dt, size, M, s0 + NR <= Fp, pa, MR * C * size, C, 1, ps + s0 * K * size, NR, pz + s0 * size, Fp,
                   run, False, KH, row)
    else:
        for i in range(KH):
            gemm_at(dt, size, pa + i * row * size, C, 1, ps + i * run * NR * size, K * NR, 0, pz, Fp, M, Fp, run, i > 0)


# ---- the forward at stride 1: no column matrix at all ("implicit GEMM") -------------------------------
# With stride 1 the columns need not be copied: for kernel row i, the patch entries (j, c) of the
# output pixels of one output row are KW*C consecutive floats of input row oh + i, and the next
# pixel's start C floats further on. So the columns of kernel row i ARE a strided view of the
# (padded) input: cols_i[m, k] = xp[base_i + m*C + k], k < KW*C. Let an output row have Wp = OW +
# KW - 1 "virtual" pixels (the padded input's width; the last KW - 1 are junk, computed and never
# kept): then the view runs on from one output row to the next with the same stride, and a band
# of output rows is one matrix. The forward is KH GEMMs on those views, accumulated:
#   Z_band = sum_i cols_i @ Wm[i*KW*C:(i+1)*KW*C]
# No im2col: the GEMM reads the input where it lies. It pays where the junk share (KW-1)/Wp is
# small (implicit_pays); the backward stays on im2col row blocks (dx added in place where
# dx_in_place), which measured as fast or faster for the weight gradient and for dx than the same
# views there (the note of the CPU engine issue has the figures).
@njit(parallel=True, cache=True)
def _nb_pad(x, pt, pl, Hp, Wp, xp):
    """xp[n, hp, wp, :] = x[n, hp - pt, wp - pl, :] where that lies inside x, else 0 (xp flat,
    N*Hp*Wp*C long at least)."""
    N, H, W, C = x.shape
    xr = x.reshape(N, H, W * C)
    w0, w1 = max(0, pl), min(Wp, W + pl)                 # the padded columns that come from x
    for n in prange(N):
        for hp in range(Hp):
            row = xp[(n * Hp + hp) * Wp * C:(n * Hp + hp + 1) * Wp * C]
            h = hp - pt
            if h < 0 or h >= H or w1 <= w0:
                row[:] = 0
                continue
            row[:w0 * C] = 0
            row[w0 * C:w1 * C] = xr[n, h, (w0 - pl) * C:(w1 - pl) * C]
            row[w1 * C:] = 0


@njit(parallel=True, cache=True)
def _nb_implicit_forward(xp, Hp, Wp, C, strips, b, relu, KH, KW, OH, OW, band, z, y, PH, PW, arg):
    """y[n, oh, ow, :] = act(b + sum_i xp-view_i @ Wm_i) (see above), band output rows per tile.
    xp: the padded input, flat (N*Hp*Wp*C); strips: Wm packed by pack_strips; z (T, band*Wp, Fp).
    PH > 0: y is instead the max-pooling of relu(...) over PH x PW windows (stride = window, valid;
    band a multiple of PH), and arg the winning cell i*PW + j of each (the first maximum in
    row-major order, as maxpool_forward): the conv's own output never leaves the tile."""
    N, F = y.shape[0], y.shape[3]
    T, Fp = z.shape[0], z.shape[2]
    run = KW * C
    size = xp.itemsize
    bands = (OH + band - 1) // band
    tiles = N * bands
    per_thread = (tiles + T - 1) // T
    px, ps = np.int64(xp.ctypes.data), np.int64(strips.ctypes.data)
    for t in prange(T):
        zt = z[t]
        pz = np.int64(zt.ctypes.data)
        for tile in range(t * per_thread, min(tiles, (t + 1) * per_thread)):
            n, oh0 = tile // bands, tile % bands * band
            oh1 = min(OH, oh0 + band)
            M = (oh1 - oh0) * Wp - (Wp - OW)               # the band's virtual rows, less the last junk
            _views_gemm(xp.dtype, size, px + (n * Hp + oh0) * Wp * C * size, C, Wp * C, KH, run, ps, pz, Fp, M)
            if PH > 0:
                _pool_epilogue(zt, Wp, b, oh0, oh1, PH, PW, y[n], arg[n])
                continue
            for r in range(oh1 - oh0):                     # bias + activation, real pixels only
                zr, out = zt[r * Wp:r * Wp + OW], y[n, oh0 + r]                  # one output row
                for ow in range(OW):
                    for f in range(F):
                        v = zr[ow, f] + b[f]
                        out[ow, f] = v if (v > 0 or not relu) else 0


@njit(cache=True)
def _pool_epilogue(zt, Wp, b, oh0, oh1, PH, PW, pooled, arg):
    """pooled[ph, pw, f] = max over the window's cells of relu(z + b), arg = the first cell holding
    it (strict >: ties keep the earlier cell), for the windows whose rows lie in [oh0, oh1)."""
    OWp, F = pooled.shape[1], pooled.shape[2]
    for ph in range(oh0 // PH, min(pooled.shape[0], oh1 // PH)):
        out, won = pooled[ph], arg[ph]
        for k in range(PH * PW):                                   # the window's cells, row-major
            r = ph * PH + k // PW - oh0                            # (the tile's row of cell k)
            cells = zt[r * Wp + k % PW:(r + 1) * Wp]               # cells[pw * PW]: window pw's cell k
            for pw in range(OWp):
                for f in range(F):
                    v = cells[pw * PW, f] + b[f]
                    v = v if v > 0 else 0
                    better = k == 0 or v > out[pw, f]              # (no branch: a select, vectorized)
                    won[pw, f] = k if better else won[pw, f]
                    out[pw, f] = v if better else out[pw, f]


def conv2d_relu_maxpool(x, W, b, KH, KW, sh, sw, pt, pl, OH, OW, PH, PW):
    """(pooled, arg) = max-pooling (PH x PW windows, stride = window, valid) of relu(conv(x) + b), in
    one pass where the stride-1 forward runs without columns (implicit_pays): the conv's output is
    pooled in the tile that computed it and never written out. None elsewhere (the caller then
    runs conv2d_forward and maxpool_forward). Same numbers as those two, bit for bit."""
    if not implicit_pays(sh, sw, KW, OW):
        return None
    x = np.ascontiguousarray(x)
    F = W.shape[3]
    bias = np.zeros(F, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    return _implicit_forward(x, W, bias, True, KH, KW, pt, pl, OH, OW, (PH, PW))


# ---- the backward at stride 1: no column matrix either -------------------------------------------------
# Both gradients read the same strided views, one image at a time (a thread's images in turn):
#   dW: for kernel row i, dWm_i (KW*C x F) = cols_i^T @ dz, where cols_i is the forward's view of the
#       padded input read transposed: A[m = j*C + c, k = pixel v] = xv[base_i + v*C + m] (sam = 1,
#       sak = C). The pixels v run over the image's virtual rows (width V), and dz is laid out on the
#       same grid with zeros at the junk pixels, so they add nothing.
#   dx: the gradient of a convolution with respect to its input is a convolution: of dz, zero-padded
#       by KH-1-pt rows above and KW-1-pl columns on the left, with the kernel turned by 180 degrees
#       and its C and F swapped:
#           dx[n, h, w, c] = sum_{i, j, f} dzp[n, h + i, w + j, f] * W[KH-1-i, KW-1-j, c, f]
#       i.e. the implicit forward again, with dzp as its input (KH GEMMs on views of dzp).
# dzp has width V = W + KW - 1, and the padded input xv is given the same width, so one grid serves
# both: dz[oh, ow] sits at dzp[oh + KH-1-pt, ow + KW-1-pl], and the junk pixels (ow >= OW) of the
# dW product land on dzp's zero border.
@njit(cache=True)
def _pad_image(x, n, pt, pl, xp):
    """xp[r, s, :] = x[n, r - pt, s - pl, :] inside the image, 0 elsewhere (xp (Hx, V, C))."""
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    Hx, V = xp.shape[0], xp.shape[1]
    rows, image = xp.reshape(Hx, V * C), x[n].reshape(H, W * C)    # flat rows: one loop each, not (w, c)
    for r in range(Hx):
        row = rows[r]
        h = r - pt
        if h < 0 or h >= H:
            row[:] = 0
            continue
        row[:pl * C] = 0
        src = image[h]
        for e in range(W * C):
            row[pl * C + e] = src[e]
        row[(pl + W) * C:] = 0


@njit(parallel=True, cache=True)
def _nb_implicit_backward(dy, y, relu, x, WFp, KH, KW, pt, pl, input_grad, xv, dzp, z, dW_part, db_part, dx,
                          pool_dout, pool_arg, pooled, PH, PW):
    """Per thread, for its images: dz = dy * act'(y) into dzp's interior (db summed), the image padded
    into xv, dWm_i += view_i(xv)^T @ dz for each kernel row i, and, when input_grad, dx = the implicit
    forward of dzp with WFp (the turned kernel, packed by pack_strips). dy, y (N, OH, OW, F); xv (T, Hx,
    V, C); dzp (T, Hd, V, Fp); z (T, H*V, Cp); dW_part (T, Kp, Fp). PH > 0: dz comes from the
    max-pooling that took y instead (_dz_pooled_row)."""
    N, H, W, C = x.shape
    OH, OW = dy.shape[1], dy.shape[2]                      # (with a pooling, dy and y are empty: (N, OH, OW, 0))
    F = dy.shape[3] if PH == 0 else pool_dout.shape[3]
    T, V, Fp, Cp = dzp.shape[0], dzp.shape[2], dzp.shape[3], z.shape[2]
    a, bb = KH - 1 - pt, KW - 1 - pl                       # where dz sits in dzp
    size = x.itemsize
    run = KW * C
    depth = OH * V - (V - OW)                              # the image's virtual pixels, less the last junk
    M = H * V - (V - W)                                    # dx's virtual pixels, likewise
    per_thread = (N + T - 1) // T
    for t in prange(T):
        dW_part[t].reshape(-1)[:] = 0
        dzt, xt, zt = dzp[t], xv[t], z[t]
        dzt.reshape(-1)[:] = 0                             # the border stays 0; the interior is rewritten
        db_sum = np.zeros(F)                               # float64: a sum over N*OH*OW pixels
        px, pd, pz = np.int64(xt.ctypes.data), np.int64(dzt.ctypes.data), np.int64(zt.ctypes.data)
        pw, pf = np.int64(dW_part[t].ctypes.data), np.int64(WFp.ctypes.data)
        for n in range(min(N, t * per_thread), min(N, (t + 1) * per_thread)):
            for oh in range(OH):                           # dz = dy * act'(y), and db
                if PH > 0:                                 # (from the pooling's gradient)
                    _dz_pooled_row(pool_dout, pool_arg, pooled, n, oh, PH, PW, dzt[a + oh, bb:bb + OW], db_sum)
                    continue
                _dz_rows(dy[n, oh], y[n, oh], relu, dzt[a + oh, bb:bb + OW], db_sum)    # one output row
            _pad_image(x, n, pt, pl, xt)
            for i in range(KH):                            # dWm_i += view_i^T @ dz, KC pixels at a time
                for k0 in range(0, depth, KC):
                    d = min(KC, depth - k0)
                    for s0 in range(0, Fp, NR):
                        _strip(x.dtype, size, run, s0 + NR <= Fp, px + (i * V + k0) * C * size, MR * size, 1, C,
                               pd + ((a * V + bb + k0) * Fp + s0) * size, Fp, pw + (i * run * Fp + s0) * size, Fp,
                               d, True)
            if input_grad:                                 # dx = sum_i view_i(dzp) @ WF_i
                _views_gemm(x.dtype, size, pd, Fp, V * Fp, KH, KW * Fp, pf, pz, Cp, M)
                dxn = dx[n]
                for h in range(H):
                    for w in range(W):
                        src, dst = zt[h * V + w], dxn[h, w]
                        for c in range(C):
                            dst[c] = src[c]
        db_part[t, :] = db_sum


def implicit_backward_fits(sh, sw, KH, KW, pt, pl, H, W, OH, OW):
    """The geometry _nb_implicit_backward handles: stride 1, and padding no wider than Keras's 'same'
    (pt <= KH-1, pl <= KW-1, and the padded width OW + KW - 1 within W + KW - 1)."""
    return sh == 1 and sw == 1 and 0 <= pt <= KH - 1 and 0 <= pl <= KW - 1 and OW <= W and OH <= H + KH - 1


def _implicit_backward(dy, x, y, W, relu, KH, KW, pt, pl, OH, OW, input_grad, pool, dW_part, db_part, dx):
    """dWm (K, F) and db (F,) as the threads' sums into dW_part, db_part, and dx (when input_grad)."""
    N, H, Wd, C = x.shape
    F = W.shape[3]
    Fp, Cp = _round_up(F, VW), _round_up(C, VW)
    V = Wd + KW - 1
    T = numba.get_num_threads()
    WF = np.zeros((KH, KW, Fp if input_grad else 0, C), dtype=x.dtype)   # the kernel turned by 180 degrees,
    if input_grad:                                                      # C and F swapped (for dx only)
        WF[:, :, :F, :] = np.asarray(W, dtype=x.dtype)[::-1, ::-1].transpose(0, 1, 3, 2)
    _nb_implicit_backward(dy, y, relu, x, pack_strips(WF.reshape(-1, C)), KH, KW, pt, pl, input_grad,
                          scratch("xv", (T, OH + KH - 1, V, C), x.dtype),
                          scratch("dzp", (T, H + KH - 1, V, Fp), x.dtype),
                          scratch("z", (T, H * V if input_grad else 1, Cp), x.dtype), dW_part, db_part, dx, *pool)


_DX_IN_PLACE = {"on": True}     # off: the dcols path everywhere (for tests and A/B measurements)


def dx_in_place(C, OW):
    """Whether the row-block backward adds dx in place (_dx_in_place) rather than through dcols and
    col2im: C whole vectors, and output rows of 10 pixels or more. Measured on the zoo's layers
    (backward dW + dx, best of 11 alternating rounds): 1.09-1.14x faster from 10x10 to 32x32
    outputs with 32 channels, 1.02x at 16x16 and at 8x8 with 128, 0.96x at 8x8 with 32 and 0.87x at
    4x4, where each small GEMM covers only a few pixels."""
    return _DX_IN_PLACE["on"] and C % VW == 0 and OW >= 10


_IMPLICIT = {"mode": os.environ.get("MINICNN_IMPLICIT", "auto")}


def set_implicit(mode="auto"):
    """The stride-1 forward without a column matrix: 'auto' (where implicit_pays), 'always' (every
    stride-1 convolution) or 'never' (im2col row blocks, like other strides). Env MINICNN_IMPLICIT.
    For tests and benchmarks; the numbers agree to float rounding."""
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"implicit mode must be 'auto', 'always' or 'never', got {mode!r}")
    _IMPLICIT["mode"] = mode


def implicit_pays(sh, sw, KW, OW):
    """Stride 1 and at most 1/6 of the virtual pixels junk: OW >= 5 (KW - 1). Measured layer by layer
    on the zoo's convolutions (CPU engine note): 20-40% faster forwards from 10x10 outputs up (3x3
    kernels), the same at 8x8, slower at 4x4, where a third of the work would be junk."""
    mode = _IMPLICIT["mode"]
    if sh != 1 or sw != 1 or mode == "never":
        return False
    return mode == "always" or OW >= 5 * (KW - 1)


def implicit_backward_pays(sh, sw, KH, KW, pt, pl, H, W, OH, OW, C, F, input_grad):
    """The stride-1 backward without a column matrix, under the same setting as the forward. 'auto':
    where implicit_pays, with at most 16 input channels, at most 32 filters, and dx wanted only
    over whole vectors of channels. Measured layer by layer (medians of 8-40 alternating calls, the
    CPU engine note): a first layer's weight gradient (C = 3: no dx) 1.3-1.6x with 16 filters
    (tutorial000), 1.1-1.4x with 32 (tutorial001_model_2, tutorial004), 1.3x with 8 (tutorial003_larger);
    16 channels into 32 filters with dx 1.08-1.14x; but 0.96x with 64 filters, 0.90x with 128,
    0.65x for a first layer of 512 filters (dz then outweighs the input it is multiplied with),
    0.73x and 0.48x for dx over 8 channels (a vector half empty), and 0.75-0.95x from 32
    channels up, where the row blocks' dx added in place wins."""
    mode = _IMPLICIT["mode"]
    if mode == "never" or not implicit_backward_fits(sh, sw, KH, KW, pt, pl, H, W, OH, OW):
        return False
    return mode == "always" or (implicit_pays(sh, sw, KW, OW) and C <= 16 and F <= 32
                                and (not input_grad or C % VW == 0))


def _padded(x, pt, pl, Hp, Wp):
    """x itself, flat, when it already is its own padded form (no padding, width Wp), else a
    zero-padded copy (N, Hp, Wp, C) in a reused buffer, flat."""
    N, H, W, C = x.shape
    if pt == 0 and pl == 0 and W == Wp and Hp <= H:
        return x.reshape(-1)
    xp = scratch("xpad", (N * Hp * Wp * C,), x.dtype)
    _nb_pad(x, pt, pl, Hp, Wp, xp)
    return xp


def _implicit_band(Wp, C, Fp, itemsize, rows):
    """Output rows per band: the band's input rows and its virtual Z rows within TILE_BYTES."""
    return max(1, min(rows, TILE_BYTES // (Wp * (C + Fp) * itemsize)))


def _implicit_forward(x, W, b, relu, KH, KW, pt, pl, OH, OW, pool=None):
    """y, or with pool = (PH, PW) the pair (pooled, arg) of conv2d_relu_maxpool."""
    N, C = x.shape[0], x.shape[3]
    F = W.shape[3]
    K, Fp = KH * KW * C, _round_up(F, VW)
    Hp, Wp = OH + KH - 1, OW + KW - 1
    T = numba.get_num_threads()
    band = _implicit_band(Wp, C, Fp, x.dtype.itemsize, OH)
    if N * -(-OH // band) < T:                             # fewer tiles than threads: thinner bands
        band = max(1, -(-OH // -(-T // N)))
    PH, PW = pool or (0, 0)
    if pool:                                               # whole windows in every band
        band = max(PH, band // PH * PH)
        y = np.empty((N, OH // PH, OW // PW, F), dtype=x.dtype)
        arg = np.empty(y.shape, dtype=argmax_dtype(PH, PW))
    else:
        y, arg = np.empty((N, OH, OW, F), dtype=x.dtype), np.empty((1, 1, 1, 1), dtype=np.int8)
    xp = _padded(x, pt, pl, Hp, Wp)
    _nb_implicit_forward(xp, Hp, Wp, C, pack_strips(np.ascontiguousarray(W, dtype=x.dtype).reshape(K, F)),
                         b, relu, KH, KW, OH, OW, band, scratch("z", (T, band * Wp, Fp), x.dtype), y, PH, PW, arg)
    return (y, arg) if pool else y


def _round_up(n, multiple):
    return -(-n // multiple) * multiple


def _l2_bytes():
    """The L2 cache of one core, from Linux's sysfs (1 MiB when it cannot be read)."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as f:
            text = f.read().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
        return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        return 1 << 20


TILE_BYTES = int(os.environ.get("MINICNN_TILE_BYTES", 0)) or _l2_bytes() // 2


def set_tile_bytes(nbytes=None):
    """Working set of one tile, per thread, in bytes (None: half the L2 cache, the default)."""
    global TILE_BYTES
    if nbytes is not None and (not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 4096):
        raise ValueError(f"tile bytes must be an int >= 4096, got {nbytes!r}")
    TILE_BYTES = nbytes or _l2_bytes() // 2


def band_rows(OW, Kp, Fp, itemsize, backward):
    """Image rows per tile: as many as keep the tile's buffers (cols, z; and dcols, dz in backward)
    within TILE_BYTES, at least one."""
    per_row = OW * (Kp + Fp) * itemsize * (2 if backward else 1)
    return max(1, TILE_BYTES // per_row)


_scratch = {}


def scratch(name, shape, dtype):
    """A reused buffer of this shape (grown, never shrunk, shared by every layer: the tile buffers
    live only during one kernel call). Zeroed when first made, so padding columns never hold junk."""
    size = math.prod(shape)
    buf = _scratch.get((name, np.dtype(dtype)))
    if buf is None or buf.size < size:
        buf = _scratch[(name, np.dtype(dtype))] = np.zeros(size, dtype=dtype)
    return buf[:size].reshape(shape)


def balanced_band(rows, band, parts):
    """Even tiles: `rows` image rows cut into a multiple of `parts` tiles (one share per thread) of
    at most `band` rows each, as equal as can be (93 + 35 rows would keep one thread waiting)."""
    tiles = -(-max(1, rows) // band)
    tiles = -(-tiles // parts) * parts
    return max(1, -(-rows // tiles))


def _geometry(W_shape, OW, dtype, backward):
    """K = KH*KW*C; Kp, Fp: K and F rounded up to whole vectors; image rows per tile; rows per tile."""
    KH, KW, C, F = W_shape
    K = KH * KW * C
    Kp, Fp = _round_up(K, VW), _round_up(F, VW)
    band = band_rows(OW, Kp, Fp, np.dtype(dtype).itemsize, backward)
    return K, Kp, Fp, band, band * OW


def conv2d_forward(x, W, b, activation, KH, KW, sh, sw, pt, pl, OH, OW):
    """y = act(im2col(x) @ Wm + b), act 'relu' or 'linear'. x (N, H, W, C), W (KH, KW, C, F), b (F,)
    or None -> y (N, OH, OW, F). Same result as reference.conv2d_forward, computed on tiles (at
    stride 1, where implicit_pays, without copying the columns)."""
    x = np.ascontiguousarray(x)
    N, F = x.shape[0], W.shape[3]
    bias = np.zeros(F, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    if implicit_pays(sh, sw, KW, OW):
        return _implicit_forward(x, W, bias, activation == "relu", KH, KW, pt, pl, OH, OW)
    K, Kp, Fp, band, rows = _geometry(W.shape, OW, x.dtype, backward=False)
    T = numba.get_num_threads()
    band = balanced_band(N * OH, band, T)
    Wp = pack_strips(np.ascontiguousarray(W, dtype=x.dtype).reshape(K, F))
    y = np.empty((N, OH, OW, F), dtype=x.dtype)
    _nb_conv_forward(x, Wp, bias, activation == "relu", KH, KW, sh, sw, pt, pl, OH, OW, band,
                     scratch("cols", (T, rows, Kp), x.dtype), scratch("z", (T, rows, Fp), x.dtype),
                     y.reshape(-1, F))
    return y


def conv2d_backward(dy, x, y, W, activation, KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out, input_grad):
    """From dy = dL/dy: dW into dW_out (KH, KW, C, F), db into db_out (F,) when given, and
    dx = col2im(dz @ Wm^T) returned (None when not input_grad); y is the forward's output (relu's
    derivative reads it). Same result as reference.conv2d_backward, computed on tiles."""
    N, F = x.shape[0], W.shape[3]
    dy = np.ascontiguousarray(dy, dtype=x.dtype).reshape(N, OH, OW, F)
    y = np.ascontiguousarray(y, dtype=x.dtype).reshape(N, OH, OW, F) if activation == "relu" else dy
    none = np.zeros((1, 1, 1, 1), dtype=x.dtype)                  # (no pooling: PH = 0)
    return _conv_backward(dy, x, y, W, activation == "relu", KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out,
                          input_grad, (none, np.zeros((1, 1, 1, 1), np.int8), none, 0, 0))


def conv2d_maxpool_backward(dout, arg, pooled, PH, PW, x, W, KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out,
                            input_grad):
    """The backward of a relu conv whose output y a max-pooling took (PH x PW windows side by side):
    from the pooling's dout, arg (each window's winning cell) and pooled output, the conv's dz is
    dout routed to each winner where pooled > 0 (relu'(y) there), 0 elsewhere, built tile by tile
    as the kernel goes (reference: maxpool_backward(dout * (pooled > 0), arg), then conv2d_backward
    'linear'). Returns dx as conv2d_backward."""
    N = x.shape[0]
    empty = np.empty((N, OH, OW, 0), dtype=x.dtype)
    return _conv_backward(empty, x, empty, W, True, KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out, input_grad,
                          (np.ascontiguousarray(dout, dtype=x.dtype), np.ascontiguousarray(arg),
                           np.ascontiguousarray(pooled, dtype=x.dtype), PH, PW))


def _conv_backward(dy, x, y, W, relu, KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out, input_grad, pool):
    x = np.ascontiguousarray(x)
    F = W.shape[3]
    K, Kp, Fp, band, rows = _geometry(W.shape, OW, x.dtype, backward=True)
    T = numba.get_num_threads()
    dW_part, db_part = scratch("dW", (T, Kp, Fp), x.dtype), scratch("db", (T, F), np.float64)
    dx = np.empty(x.shape, dtype=x.dtype) if input_grad else np.empty((0,) + x.shape[1:], dtype=x.dtype)
    if implicit_backward_pays(sh, sw, KH, KW, pt, pl, x.shape[1], x.shape[2], OH, OW, x.shape[3], F, input_grad):
        _implicit_backward(dy, x, y, W, relu, KH, KW, pt, pl, OH, OW, input_grad, pool, dW_part, db_part, dx)
    else:
        band = balanced_band(-(-x.shape[0] // T) * OH, band, 1)      # each thread: its images' rows
        WTp = pack_strips(np.ascontiguousarray(W, dtype=x.dtype).reshape(K, F).T) if input_grad else \
            np.zeros((1, F, NR), dtype=x.dtype)               # (only dx reads Wm^T)
        in_place = dx_in_place(x.shape[3], OW)
        pixels = x.shape[0] * OH * OW
        _nb_conv_backward(dy.reshape(pixels, dy.shape[3]), y.reshape(pixels, y.shape[3]), relu, x, WTp,
                          KH, KW, sh, sw, pt, pl, OH, OW, band, input_grad, in_place,
                          scratch("cols", (T, rows, Kp), x.dtype), scratch("dz", (T, rows, Fp), x.dtype),
                          scratch("dcols", (T, rows, Kp) if input_grad and not in_place else (T, 1, 1), x.dtype),
                          dW_part, db_part, dx, *pool)
    _add_parts(dW_part, db_part, dW_out.reshape(K, F), db_out if db_out is not None else db_part[0], db_out is not None)
    return dx if input_grad else None


@njit(cache=True)
def _add_parts(dW_part, db_part, dW, db, with_db):
    """dW = sum_t dW_part[t, :K, :F] and db = sum_t db_part[t]: the threads' sums, added in a fixed
    order (thread 0, 1, ...), so a run is repeatable bit for bit."""
    T = dW_part.shape[0]
    K, F = dW.shape
    for k in range(K):
        row, part = dW[k], dW_part[0, k]
        for f in range(F):
            row[f] = part[f]
        for t in range(1, T):
            part = dW_part[t, k]
            for f in range(F):
                row[f] += part[f]
    if with_db:
        for f in range(db.shape[0]):
            total = db_part[0, f]
            for t in range(1, T):
                total += db_part[t, f]
            db[f] = total


GRADIENT_BYTES = 2 << 20        # training: a weight gradient (K x F) larger than this, and ...
WHOLE_COLS_LIMIT = 256 << 20    # ... a whole-batch cols matrix no larger than this: the whole-batch path


def blocked_pays(x_shape, W_shape, OH, OW, training=True):
    """The rule measured layer by layer (the CPU engine's note, benchmarks/results): in inference,
    row blocks always (no backward to feed, and no cols matrix however large the batch). In
    training, row blocks unless the layer's weight gradient K x F is larger than GRADIENT_BYTES:
    every tile adds its rows into that gradient, re-reading it, and a tile of a K = 3*3*512 layer
    holds only a few dozen rows (tutorial 003's last conv, K x F = 4608 x 256: 23-39 ms blocked,
    17.5 whole; 1152 x 128, tutorial004's last, is still faster blocked). A whole-batch cols matrix
    above WHOLE_COLS_LIMIT is never built (bounded memory first). The tile size does not enter."""
    if not training:
        return True
    KH, KW, C, F = W_shape
    K = KH * KW * C
    return K * F * 4 <= GRADIENT_BYTES or x_shape[0] * OH * OW * K * 4 > WHOLE_COLS_LIMIT
