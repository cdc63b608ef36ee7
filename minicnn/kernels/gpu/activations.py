"""Bias + activation (the epilogue of Dense and Conv2D), its backward with the bias gradient,
column sums, and the exact GELU.

bias_act adds the bias and applies linear / relu / tanh / sigmoid in place on the GEMM output;
bias_softmax does softmax per row. bias_act_bwd writes dz = act'(y) * dout and the bias gradient
db = column sums of dz in ONE launch: blocks write column partials and the last block of each
column group to finish (a done counter, _compile._done_counters) adds them in a fixed order, so the
sums are deterministic. column_sum is that kernel with the linear activation.
"""
import numpy as np

from minicnn.kernels import reference
from minicnn.kernels.gpu._compile import add_source, _done_counters, _i, _kernel, _launch, _NULL

BIAS_ACT_SOURCE = r"""
// ---- bias + activation ---------------------------------------------------------------------------
// act: 0 linear, 1 relu, 2 tanh, 3 sigmoid.  Forward in place on z (R, F): z = act(z + b).
__device__ __forceinline__ T act_forward(T z, int act) {
    if (act == 1) return z > (T)0 ? z : (T)0;
    if (act == 2) return tanh(z);
    if (act == 3) return z >= (T)0 ? (T)1 / ((T)1 + exp(-z)) : exp(z) / ((T)1 + exp(z));
    return z;
}

// dz from dy and y = act(z), as in activations.py
__device__ __forceinline__ T act_backward(T dy, T y, int act) {
    if (act == 1) return y > (T)0 ? dy : (T)0;
    if (act == 2) return dy * ((T)1 - y * y);
    if (act == 3) return dy * y * ((T)1 - y);
    return dy;
}

extern "C" __global__ void bias_act(T* __restrict__ z, const T* __restrict__ b, long long R, int F, int act) {
    long long total = R * F;
    for (long long idx = gtid(); idx < total; idx += gstride())
        z[idx] = act_forward(z[idx] + (b ? b[(unsigned)idx % (unsigned)F] : (T)0), act);
}

// softmax over each row of z (R, K), after adding b: one thread per row (K is a class count)
extern "C" __global__ void bias_softmax(T* __restrict__ z, const T* __restrict__ b, int R, int K) {
    for (long long r = gtid(); r < R; r += gstride()) {
        T* row = z + r * K;
        T m = row[0] + (b ? b[0] : (T)0);
        for (int k = 1; k < K; ++k) m = max(m, row[k] + (b ? b[k] : (T)0));
        T s = 0;
        for (int k = 0; k < K; ++k) { T e = exp(row[k] + (b ? b[k] : (T)0) - m); row[k] = e; s += e; }
        for (int k = 0; k < K; ++k) row[k] /= s;
    }
}

// dz = act'(y) * dout, written to dz (R, F) (may alias dout), and db = column sums of dz, in ONE
// launch. Block (32, 8): threadIdx.x picks the column, threadIdx.y the row; block (bx, by) sums its
// rows into partial[by, :]; the last block of each column tile to finish (counted in done[bx], which
// it resets to 0 for the next launch) adds the partials in a fixed order: deterministic, no
// second launch. The done counters are shared by every call: kernels on one stream never overlap.
extern "C" __global__ void bias_act_bwd(const T* dout, const T* __restrict__ y, T* dz, T* __restrict__ partial,
                                        T* __restrict__ db, unsigned int* __restrict__ done,
                                        int R, int F, int act, int rows_per_block) {
    __shared__ T sums[8][33];
    __shared__ bool last;
    int col = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * rows_per_block;
    int r1 = min(R, r0 + rows_per_block);
    T acc = 0;
    if (col < F) {
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            long long o = (long long)r * F + col;
            T d = act_backward(dout[o], act ? y[o] : (T)0, act);
            dz[o] = d;
            acc += d;
        }
    }
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < F) {
        T s = 0;
        for (int k = 0; k < 8; ++k) s += sums[k][threadIdx.x];
        partial[(long long)blockIdx.y * F + col] = s;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0)
        last = atomicAdd(&done[blockIdx.x], 1u) == gridDim.y - 1;
    __syncthreads();
    if (last) {
        if (threadIdx.y == 0 && col < F) {
            T s = 0;
            for (int k = 0; k < gridDim.y; ++k) s += ((volatile T*)partial)[(long long)k * F + col];
            db[col] = s;
        }
        if (threadIdx.x == 0 && threadIdx.y == 0) done[blockIdx.x] = 0;
    }
}
"""
add_source(False, 4, BIAS_ACT_SOURCE)

_ACT = {"linear": 0, "relu": 1, "tanh": 2, "sigmoid": 3}


def bias_activation(z, b, name):
    """In place on z (the fresh GEMM output, (R, F))."""
    if name == "gelu":                  # z + b stays in z (GELU's backward reads it)
        if b is not None:
            z += b
        return gelu(z)
    if z.ndim != 2 or not z.flags.c_contiguous or (name not in _ACT and name != "softmax"):
        return reference.bias_activation(z, b, name)
    if name == "softmax":
        _launch("bias_softmax", z.shape[0], (z, _NULL if b is None else b) + _i(z.shape[0], z.shape[1]), z.dtype)
    else:
        _launch("bias_act", z.size, (z, _NULL if b is None else b, np.int64(z.shape[0])) + _i(z.shape[1], _ACT[name]), z.dtype)
    return z


def bias_activation_backward(dout, y, name, out, db_out=None):
    """out = dz = act'(y) * dout (out may be dout itself); returns db = column sums of dz
    (written into db_out when given). One launch: each block writes dz and its column partials; the
    last block of a column group to finish (a done counter) sums the partials in a fixed order
    (deterministic, no atomics on the sums)."""
    import cupy
    if name == "gelu":
        out[...] = gelu_backward(dout, y)
        return column_sum(out, db_out)
    if name not in _ACT or dout.ndim != 2:
        return reference.bias_activation_backward(dout, y, name, out, db_out)
    R, F = dout.shape
    dout = cupy.ascontiguousarray(dout)
    groups = int(min(max(R // 64, 1), 256))
    rows_per_block = (R + groups - 1) // groups
    db = db_out if db_out is not None else cupy.empty((F,), dtype=dout.dtype)
    partial = cupy.empty((groups, F), dtype=dout.dtype)
    act = _ACT[name]
    _kernel("bias_act_bwd", dout.dtype)(((F + 31) // 32, groups), (32, 8),
                                        (dout, y if act else dout, out, partial, db, _done_counters((F + 31) // 32))
                                        + _i(R, F, act, rows_per_block))
    return db


def column_sum(a, out=None):
    """Sum over the rows of a 2-D array (R, F) -> (F,), deterministic."""
    import cupy
    a = cupy.ascontiguousarray(a)           # the kernel rewrites a's values unchanged (dz = dout)
    return bias_activation_backward(a, None, "linear", a, out)


# ---- GELU -------------------------------------------------------------------------------------------
GELU_SOURCE = r"""
// ---- GELU, exact: y = z Phi(z); dz = dy (Phi(z) + z phi(z))   (reference.gelu, gelu_backward) -------
extern "C" __global__ void gelu_fwd(const T* __restrict__ z, T* __restrict__ y, long long n) {
    for (long long i = gtid(); i < n; i += gstride()) {
        double v = (double)z[i];
        y[i] = (T)(0.5 * v * (1.0 + erf(v * 0.7071067811865476)));
    }
}

extern "C" __global__ void gelu_bwd(const T* __restrict__ dy, const T* __restrict__ z, T* __restrict__ dz, long long n) {
    for (long long i = gtid(); i < n; i += gstride()) {
        double v = (double)z[i];
        double cdf = 0.5 * (1.0 + erf(v * 0.7071067811865476));
        dz[i] = (T)((double)dy[i] * (cdf + v * exp(-0.5 * v * v) * 0.3989422804014327));
    }
}
"""
add_source(False, 9, GELU_SOURCE)


def gelu(z):
    """reference.gelu in one launch (one read, one write)."""
    import cupy
    z = cupy.ascontiguousarray(z)
    y = cupy.empty_like(z)
    _launch("gelu_fwd", z.size, (z, y, np.int64(z.size)), z.dtype)
    return y


def gelu_backward(dy, z):
    """reference.gelu_backward in one launch."""
    import cupy
    z, dy = cupy.ascontiguousarray(z), cupy.ascontiguousarray(dy)
    dz = cupy.empty_like(z)
    _launch("gelu_bwd", z.size, (dy, z, dz, np.int64(z.size)), z.dtype)
    return dz


def activation_forward(x, name):
    """An Activation layer's elementwise pass: GELU in one launch, the others CuPy's own
    elementwise kernels (the plain twins)."""
    return gelu(x) if name == "gelu" else reference.activation_forward(x, name)


def activation_backward(dy, y, name):
    return gelu_backward(dy, y) if name == "gelu" else reference.activation_backward(dy, y, name)
