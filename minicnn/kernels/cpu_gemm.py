"""A small GEMM for the CPU's blocked convolution: C (+)= A @ B on tiles that sit in the cache.

Why not BLAS? A convolution's matrices are tall and thin (N*OH*OW rows, F = 16..128 columns).
OpenBLAS runs such shapes at about half its large-matrix speed (measured on a 2-core AVX-512 VM:
~90 GFLOP/s per core on a 784 x 800 x 32 product, against ~160 for the kernel below), because it
packs every operand before multiplying and its register blocking is shaped for square matrices.
Here the operands are already where a GEMM wants them: the im2col tile IS the packed panel.

The whole product is the textbook loop nest (Goto's), with the innermost block done by a
micro-kernel that keeps an MR x NR block of C in vector registers:

    for k0 in range(0, K, KC):                 # a KC x NR strip of B stays in L1 ...
        for n0 in range(0, N, NR):
            for m0 in range(0, M, MR):         # ... while A streams through it from L2
                C[m0:m0+MR, n0:n0+NR] += A[m0:m0+MR, k0:k0+KC] @ B[k0:k0+KC, n0:n0+NR]

    micro-kernel, per k:   acc[m, :] += A[m, k] * B[k, n0:n0+NR]    for m < MR (MR*NR/VW FMAs)

Numba cannot be made to keep `acc` in registers from Python loops (tried: the loops compile to
scalar code, ~7 GFLOP/s), so the micro-kernel is written as LLVM vector instructions through a
Numba intrinsic: VW-wide vectors (16 floats on AVX-512, 8 otherwise), MR rows, NV vectors per
row; acc lives in MR*NV registers across the whole k loop. Everything around it is plain Numba.

Strides make one micro-kernel serve every product of a convolution, without copies:
    A[m, k] = a[a_off + m*sam + k*sak],  B[k, n] = b[b_off + k*ldb + n],  C[m, n] = c[c_off + m*ldc + n]
  forward  Z  = cols @ W      A = cols (sam = row stride, sak = 1)
  weights  dW = cols^T @ dZ   A = cols read transposed (sam = 1, sak = row stride)
  input    dcols = dZ @ W^T   A = dZ, B = W^T stored row-major
`gemm` needs M a multiple of MR and N a multiple of VW (callers pad their buffers; the padding
only ever holds outputs nobody reads); K, the summed dimension, is exact.
The specification is `C (+)= A @ B`; tests check it against numpy.matmul on random strides.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic


def _vector_width():
    """Floats per SIMD register of the machine Numba compiles for: 16 with AVX-512, else 8."""
    if numba.config.CPU_NAME:            # a user-chosen (portable) target: assume no AVX-512
        return 8
    try:
        import llvmlite.binding as llvm
        return 16 if llvm.get_host_cpu_features().get("avx512f", False) else 8
    except Exception:                    # features unknown on this platform
        return 8


VW = _vector_width()     # vector width, in elements (float64 uses the same count, in two registers)
MR = 12 if VW == 16 else 6  # rows of C per micro-kernel call (2*MR accumulator registers)
NR = 2 * VW              # columns of C per micro-kernel call (NV = 2 vectors)
KC = 384                 # depth of one pass: a KC x NR strip of B (48 KB in float32) for L1
MC = 336                 # rows of A per pass: an MC x KC block of A (516 KB in float32) for L2
NC = 512                 # columns of a packed B per pass: a KC x NC panel (768 KB in float32)
PACK_B_BYTES = 1 << 20   # a B larger than this, with rows of 512 floats or more, is packed


def _make_microkernel(mr):
    """The MR x NR micro-kernel as a Numba intrinsic (see the module docstring).

    kernel(dtype, wide, pa, sam, sak, pb, ldb, pc, ldc, K, accumulate, KI, sai):
        C[m, n] = (C[m, n] if accumulate else 0) + sum_{i<KI} sum_{k<K} A_i[m, k] B[i*K + k, n]
    for m < mr, n < NR (n < VW when not wide: a block's last columns), where A_i is A moved on by
    i*sai elements: KI = 1 is a plain product; KI > 1 sums KI of them without storing C between
    (the stride-1 forward's KH kernel rows: A_i is the input view of kernel row i, and B's rows
    i*K.. are that row's weights). pa, pb, pc: addresses of A[0, 0], B[0, 0],
    C[0, 0] (plain integers: arrays passed here would be reference-counted on every call, which
    costs more than a short micro-kernel itself).
    """
    @intrinsic
    def kernel(typingctx, dtype, wide, pa, sam, sak, pb, ldb, pc, ldc, K, accumulate, KI, sai):
        if not (isinstance(dtype, types.DType) and dtype.dtype in (types.float32, types.float64)):
            return None
        sig = types.void(dtype, wide, pa, sam, sak, pb, ldb, pc, ldc, K, accumulate, KI, sai)

        def codegen(context, builder, signature, args):
            scalar = ir.FloatType() if signature.args[0].dtype == types.float32 else ir.DoubleType()
            pa, sam, sak, pb, ldb, pc, ldc, K = [context.cast(builder, v, t, types.int64)
                                                 for v, t in zip(args[2:10], signature.args[2:10])]
            KI, sai = [context.cast(builder, v, t, types.int64) for v, t in zip(args[11:13], signature.args[11:13])]
            pa, pb, pc = (builder.inttoptr(p, scalar.as_pointer()) for p in (pa, pb, pc))
            with builder.if_else(args[1]) as (two_vectors, one_vector):
                with two_vectors:
                    _emit_block(builder, scalar, mr, 2, pa, sam, sak, pb, ldb, pc, ldc, K, args[10], KI, sai)
                with one_vector:
                    _emit_block(builder, scalar, mr, 1, pa, sam, sak, pb, ldb, pc, ldc, K, args[10], KI, sai)
            return context.get_dummy_value()
        return sig, codegen
    return kernel


def _emit_block(builder, scalar, mr, nv, pa, sam, sak, pb, ldb, pc, ldc, K, accumulate, KI, sai):
    """LLVM IR of one micro-kernel: an mr x nv*VW block of C in vector registers (phi nodes) across
    the loops over i < KI and k < K, each step: nv vector loads of B's row i*K + k, mr broadcasts of
    A_i[m, k], mr*nv FMAs."""
    i64 = ir.IntType(64)
    vec = ir.VectorType(scalar, VW)

    def at(ptr, offset):                                        # <VW x T>* at ptr + offset
        return builder.bitcast(builder.gep(ptr, [offset]), vec.as_pointer())

    def const(v):
        return ir.Constant(i64, v)
    fmuladd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                             f"llvm.fmuladd.v{VW}{'f32' if scalar == ir.FloatType() else 'f64'}")
    zero = ir.Constant(vec, [0.0] * VW)
    c_at = [[at(pc, builder.add(builder.mul(const(m), ldc), const(j * VW))) for j in range(nv)] for m in range(mr)]
    rows_a = [builder.gep(pa, [builder.mul(const(m), sam)]) for m in range(mr)]       # &A[m, 0]
    before = builder.block
    with builder.if_then(accumulate):                           # C's old values, only when adding to them
        old = [[builder.load(c_at[m][j], align=1) for j in range(nv)] for m in range(mr)]
        loaded = builder.block
    start = [[builder.phi(vec) for _ in range(nv)] for _ in range(mr)]
    for m in range(mr):
        for j in range(nv):
            start[m][j].add_incoming(old[m][j], loaded)
            start[m][j].add_incoming(zero, before)
    entry = builder.block
    outer = builder.append_basic_block("microkernel_i")
    loop = builder.append_basic_block("microkernel_k")
    latch = builder.append_basic_block("microkernel_next_i")
    done = builder.append_basic_block("microkernel_done")

    def head(incoming, first):                                  # a loop's counter from 0, and the block
        index = builder.phi(i64)                                # of C entering it from `incoming`
        index.add_incoming(const(0), incoming)
        phis = [[builder.phi(vec) for _ in range(nv)] for _ in range(mr)]
        for m in range(mr):
            for j in range(nv):
                phis[m][j].add_incoming(first[m][j], incoming)
        return index, phis
    builder.branch(outer)
    builder.position_at_end(outer)                              # for i in range(KI):
    i, acc_i = head(entry, start)
    shift_a, shift_b = builder.mul(i, sai), builder.mul(builder.mul(i, K), ldb)
    builder.branch(loop)
    builder.position_at_end(loop)                               #     for k in range(K):
    k, acc = head(outer, acc_i)
    row_b = builder.add(shift_b, builder.mul(k, ldb))
    bk = [builder.load(at(pb, builder.add(row_b, const(j * VW))), align=1) for j in range(nv)]
    col_a = builder.add(shift_a, builder.mul(k, sak))
    new = []
    for m in range(mr):                                         # acc[m] += A_i[m, k] * B[i*K + k, :]
        a_mk = builder.load(builder.gep(rows_a[m], [col_a]))
        splat = builder.shuffle_vector(
            builder.insert_element(ir.Constant(vec, ir.Undefined), a_mk, ir.Constant(ir.IntType(32), 0)),
            ir.Constant(vec, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), VW), [0] * VW))
        new.append([builder.call(fmuladd, [splat, bk[j], acc[m][j]]) for j in range(nv)])
        for j in range(nv):
            acc[m][j].add_incoming(new[m][j], loop)
    k_next = builder.add(k, const(1))
    k.add_incoming(k_next, loop)
    builder.cbranch(builder.icmp_signed("<", k_next, K), loop, latch)
    builder.position_at_end(latch)
    i_next = builder.add(i, const(1))
    i.add_incoming(i_next, latch)
    for m in range(mr):
        for j in range(nv):
            acc_i[m][j].add_incoming(new[m][j], latch)
    builder.cbranch(builder.icmp_signed("<", i_next, KI), outer, done)
    builder.position_at_end(done)
    for m in range(mr):
        for j in range(nv):
            builder.store(new[m][j], c_at[m][j], align=1)


# One micro-kernel per row count: MR rows for the body, 8/4/2/1 for a block's last rows.
_K_MR, _K8, _K4, _K2, _K1 = (_make_microkernel(m) for m in (MR, 8, 4, 2, 1))


@intrinsic
def _load(typingctx, dtype, address):
    """The dtype value stored at a byte address (for packing an operand known by its address)."""
    if not (isinstance(dtype, types.DType) and isinstance(address, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        scalar = context.get_value_type(signature.args[0].dtype)
        return builder.load(builder.inttoptr(args[1], scalar.as_pointer()))
    return dtype.dtype(dtype, address), codegen


@intrinsic
def _store(typingctx, dtype, address, value):
    """Store value, as dtype, at a byte address."""
    if not (isinstance(dtype, types.DType) and isinstance(address, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        scalar_type = signature.args[0].dtype
        value = context.cast(builder, args[2], signature.args[2], scalar_type)
        builder.store(value, builder.inttoptr(args[1], context.get_value_type(scalar_type).as_pointer()))
        return context.get_dummy_value()
    return types.void(dtype, address, value), codegen


@njit(cache=True, inline="always")
def _strip(dt, size, rows, wide, pa, a_step, sam, sak, pb, ldb, pc, ldc, depth, add, ki=1, sai=0):
    """C[:rows, :NR or VW] (+)= A[:rows, :depth] @ B[:depth, :NR or VW] (wide: NR columns), in
    micro-kernel calls of MR rows, then 8, 4, 2, 1 for what is left. Addresses in bytes; A's
    row r is at pa + (r // MR) * a_step + (r % MR) * sam (a_step = MR * sam unless A is packed).
    ki > 1: the sum of ki such products, A moved on by sai elements each time (the micro-kernel's KI)."""
    r = 0
    while r < rows:
        left = rows - r
        a_r, c_r = pa + (r // MR) * a_step + (r % MR) * sam * size, pc + r * ldc * size
        if left >= MR:
            _K_MR(dt, wide, a_r, sam, sak, pb, ldb, c_r, ldc, depth, add, ki, sai)
            r += MR
        elif left >= 8:
            _K8(dt, wide, a_r, sam, sak, pb, ldb, c_r, ldc, depth, add, ki, sai)
            r += 8
        elif left >= 4:
            _K4(dt, wide, a_r, sam, sak, pb, ldb, c_r, ldc, depth, add, ki, sai)
            r += 4
        elif left >= 2:
            _K2(dt, wide, a_r, sam, sak, pb, ldb, c_r, ldc, depth, add, ki, sai)
            r += 2
        else:
            _K1(dt, wide, a_r, sam, sak, pb, ldb, c_r, ldc, depth, add, ki, sai)
            r += 1


@njit(cache=True, inline="always")
def gemm(a, a_off, sam, sak, b, b_off, ldb, c, c_off, ldc, M, N, K, accumulate):
    """C (+)= A @ B for C of M x N (N a multiple of VW), A, B, C addressed in arrays a, b, c by
    element offsets and strides as above; one thread. K >= 1."""
    size = a.itemsize
    gemm_at(a.dtype, size, np.int64(a.ctypes.data) + a_off * size, sam, sak,     # int64: uint64 + int64
            np.int64(b.ctypes.data) + b_off * size, ldb, 1,                # would give a float
            np.int64(c.ctypes.data) + c_off * size, ldc, M, N, K, accumulate)


@njit(cache=True, inline="always")
def gemm_packed(a, a_off, sam, sak, strips, c, c_off, ldc, M, N, K, accumulate):
    """gemm with B already packed by pack_strips (strips: (N/NR, K, NR)): a layer's weights, packed
    once per call of the layer, then multiplied by every tile."""
    size = a.itemsize
    gemm_at(a.dtype, size, np.int64(a.ctypes.data) + a_off * size, sam, sak,
            np.int64(strips.ctypes.data), strips.shape[1] * NR, 0,
            np.int64(c.ctypes.data) + c_off * size, ldc, M, N, K, accumulate)


def pack_strips(b):
    """B (K, N) -> strips (ceil(N/NR), K, NR): column block s of B, NR wide, contiguous (zeros past N)."""
    K, N = b.shape
    strips = np.empty((-(-N // NR), K, NR), dtype=b.dtype)
    _nb_pack_strips(b, strips)
    return strips


@njit(cache=True)
def _nb_pack_strips(b, strips):
    K, N = b.shape
    for s in range(strips.shape[0]):
        if b.strides[1] == b.itemsize or K == 0:        # rows of b contiguous: read them in order
            width = min(NR, N - s * NR)
            for k in range(K):
                src, dst = b[k, s * NR:s * NR + width], strips[s, k]
                for j in range(width):
                    dst[j] = src[j]
                for j in range(width, NR):
                    dst[j] = 0
        else:                                           # b a transposed view: read its columns in order
            for j in range(NR):
                n = s * NR + j
                for k in range(K):
                    strips[s, k, j] = b[k, n] if n < N else 0


@njit(cache=True)
def gemm_at(dt, size, pa, sam, sak, pb, sbk, sbn, pc, ldc, M, N, K, accumulate):
    """gemm on byte addresses of A[0, 0], B[0, 0], C[0, 0] (size: bytes per element): compiled once
    per dtype, whatever arrays the caller holds. B[k, n] is at pb + (k*sbk + n*sbn) * size, or with
    sbn = 0 in strips packed beforehand: at pb + ((n // NR)*sbk + k*NR + n % NR) * size.

    Goto's blocking: a KC-deep slice of A, MC rows at a time (MC x KC stays in L2), is swept by
    every KC x NR strip of B (in L1). Two operands are copied first (BLAS's "packing"), so that
    the micro-kernel reads each as one stream: A read transposed (sak != 1), into k-major panels
    of MR rows; and B, NC columns at a time, into strips of NR columns, when it is read transposed
    (sbn != 1) or too big for the cache with long rows (a Dense layer's weights: reading a strip
    straight from such a B jumps a whole row, often a whole memory page, per k).
    """
    pack_a = sak != 1
    pre_packed = sbn == 0
    pack_b = sbn > 1 or (sbn == 1 and sbk * size >= 2048 and K * N * size > PACK_B_BYTES)
    mc, kc = min(MC, M), min(KC, K)                     # panels no bigger than this product needs
    a_panel = np.empty(((mc + MR - 1) // MR, kc, MR) if pack_a else (1, 1, 1), dtype=dt)
    b_panel = np.empty(((min(NC, N) + NR - 1) // NR, kc, NR) if pack_b else (1, 1, 1), dtype=dt)
    nc = NC if pack_b else N
    for k0 in range(0, K, KC):
        depth = min(KC, K - k0)
        add = accumulate or k0 > 0
        for c0 in range(0, N, nc):
            cols = min(nc, N - c0)
            if pack_b and sbn == 1:                     # b_panel[s, k, j] = B[k0 + k, c0 + s*NR + j]
                for k in range(depth):                  # (reading B row by row ...
                    row = pb + ((k0 + k) * sbk + c0) * size
                    for j in range(cols):
                        b_panel[j // NR, k, j % NR] = _load(dt, row + j * size)
            elif pack_b:                                # ... or, transposed, column by column)
                for j in range(cols):
                    column = pb + (k0 * sbk + (c0 + j) * sbn) * size
                    for k in range(depth):
                        b_panel[j // NR, k, j % NR] = _load(dt, column + k * sbk * size)
            for m0 in range(0, M, MC):
                rows = min(MC, M - m0)
                a_blk = pa + (m0 * sam + k0 * sak) * size
                a_step, sm, sk = MR * sam * size, sam, sak
                if pack_a:                              # a_panel[p, k, i] = A[m0 + p*MR + i, k0 + k]
                    for p in range((rows + MR - 1) // MR):
                        for k in range(depth):
                            row = a_blk + (p * MR * sam + k * sak) * size
                            for i in range(min(MR, rows - p * MR)):
                                a_panel[p, k, i] = _load(dt, row + i * sam * size)
                    a_blk, a_step, sm, sk = np.int64(a_panel.ctypes.data), kc * MR * size, 1, MR
                for n0 in range(c0, c0 + cols, NR):
                    wide = n0 + NR <= c0 + cols             # else: the last VW columns
                    if pre_packed:
                        b_at, lb = pb + (n0 // NR * sbk + k0 * NR) * size, NR
                    elif pack_b:
                        b_at, lb = np.int64(b_panel.ctypes.data) + (n0 - c0) // NR * kc * NR * size, NR
                    else:
                        b_at, lb = pb + (k0 * sbk + n0) * size, sbk
                    _strip(dt, size, rows, wide, a_blk, a_step, sm, sk, b_at, lb, pc + (m0 * ldc + n0) * size,
                           ldc, depth, add)


def round_up(n, multiple):
    return -(-n // multiple) * multiple


# ---- a whole product on every core: numpy.matmul's meaning, gemm's speed -------------------------------
@njit(cache=True)
def _block(dt, size, pa, sam, sak, pb, sbk, sbn, pc, ldc, M, N, K, b_tail, c_tail):
    """C = A @ B for an M x N block (one thread), on byte addresses as gemm_at. gemm takes the
    columns that make a multiple of VW; the last ones go through zero-padded copies (b_tail
    K x VW, c_tail M x VW), so B is never read past its end."""
    n_main = N // VW * VW
    if n_main:
        gemm_at(dt, size, pa, sam, sak, pb, sbk, sbn, pc, ldc, M, n_main, K, False)
    width = N - n_main
    if width:
        for k in range(K):
            for j in range(VW):
                b_tail[k, j] = _load(dt, pb + (k * sbk + (n_main + j) * sbn) * size) if j < width else 0
        gemm_at(dt, size, pa, sam, sak, np.int64(b_tail.ctypes.data), VW, 1, np.int64(c_tail.ctypes.data), VW,
                M, VW, K, False)
        for m in range(M):
            for j in range(width):
                _store(dt, pc + (m * ldc + n_main + j) * size, c_tail[m, j])


@njit(parallel=True, cache=True)
def _nb_matmul(dt, size, pa, sam, sak, pb, sbk, sbn, pc, ldc, M, N, K, b_tail, c_tail):
    """C = A @ B, the rows (or, when B is wider than A is tall, the columns) split between threads."""
    T = b_tail.shape[0]
    by_rows = M >= N
    total = M if by_rows else N
    step = MR if by_rows else VW
    chunk = (total // T + step - 1) // step * step
    for t in prange(T):
        lo = min(t * chunk, total)
        hi = total if t == T - 1 else min((t + 1) * chunk, total)
        if hi > lo:
            if by_rows:
                _block(dt, size, pa + lo * sam * size, sam, sak, pb, sbk, sbn, pc + lo * ldc * size, ldc,
                       hi - lo, N, K, b_tail[t], c_tail[t])
            else:
                _block(dt, size, pa, sam, sak, pb + lo * sbn * size, sbk, sbn, pc + lo * size, ldc,
                       M, hi - lo, K, b_tail[t], c_tail[t])


SMALL = 1 << 18     # M*N*K below which numpy.matmul is used: OpenBLAS runs it on one thread (its own
                    # rule), so no BLAS thread is left spinning on a core the kernels here need


def matmul(a, b, out=None):
    """out = a @ b for 2-D float arrays with any strides (transposed views too), on every core:
    numpy.matmul's meaning, its sums in another order, so equal to float rounding."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or a.dtype != b.dtype \
            or a.dtype not in (np.float32, np.float64) or a.shape[0] * a.shape[1] * b.shape[1] < SMALL \
            or (out is not None and (out.shape != (a.shape[0], b.shape[1]) or out.dtype != a.dtype)):
        return np.matmul(a, b, out=out)                 # (and numpy's errors for what does not fit)
    M, K = a.shape
    N = b.shape[1]
    if out is None:
        out = np.empty((M, N), dtype=a.dtype)
    if b.strides[1] != b.itemsize and b.size > a.size + out.size:
        tmp = np.empty((N, M), dtype=a.dtype)           # a big b read transposed (dx = dz @ W^T):
        matmul(b.T, a.T, tmp)                           # out^T = b^T @ a^T streams it along its rows
        out[...] = tmp.T
        return out
    c = out if out.strides[1] == out.itemsize else np.empty((M, N), dtype=a.dtype)
    size = a.itemsize
    T = numba.get_num_threads()
    _nb_matmul(a.dtype, size, a.ctypes.data, a.strides[0] // size, a.strides[1] // size, b.ctypes.data,
               b.strides[0] // size, b.strides[1] // size, c.ctypes.data, c.strides[0] // size, M, N, K,
               np.empty((T, K, VW), a.dtype), np.empty((T, M, VW), a.dtype))
    if c is not out:
        out[...] = c
    return out
