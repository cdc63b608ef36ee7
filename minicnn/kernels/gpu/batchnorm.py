"""Batch normalization in training mode (reference.batchnorm_forward / _backward), x seen as (M, C).

Both directions need two column sums over the M rows, taken in ONE read of the data into double
precision: (sum of x, sum of x^2) forward, (sum of dout, sum of dout * xhat) backward. Blocks of
rows write partial sums and a second launch adds them in block order (deterministic, no atomics);
a third, elementwise launch then writes y (with the batch mean and variance) or dx.
"""
import numpy as np

from minicnn.kernels.gpu._compile import add_source, _i, _kernel, _launch, _NULL

SOURCE = r"""
// ---- batch normalization in training mode (reference.batchnorm_forward / _backward), x as (M, C) ----
// Column sums per block of rows, in double: part[g, 0, c] = sum of a, part[g, 1, c] = sum of a * a
// (statistics: b null) or of a * xhat, xhat = (b - mean) / sqrt(var + eps) (backward). Block (32, 8).
extern "C" __global__ void bn_partial_sums(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ mean,
                                           const T* __restrict__ var, double* __restrict__ part, int M, int C,
                                           int rows_per_block, double eps) {
    __shared__ double s1[8][33], s2[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * rows_per_block, r1 = min(M, r0 + rows_per_block);
    double acc1 = 0.0, acc2 = 0.0;
    if (col < C) {
        double m = b ? (double)mean[col] : 0.0, k = b ? rsqrt((double)var[col] + eps) : 0.0;
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            long long o = (long long)r * C + col;
            double v = (double)a[o];
            acc1 += v;
            acc2 += b ? v * (((double)b[o] - m) * k) : v * v;
        }
    }
    s1[threadIdx.y][threadIdx.x] = acc1;
    s2[threadIdx.y][threadIdx.x] = acc2;
    __syncthreads();
    if (threadIdx.y == 0 && col < C) {
        double t1 = 0.0, t2 = 0.0;
        for (int k = 0; k < 8; ++k) { t1 += s1[k][threadIdx.x]; t2 += s2[k][threadIdx.x]; }
        part[2LL * blockIdx.y * C + col] = t1;
        part[(2LL * blockIdx.y + 1) * C + col] = t2;
    }
}

// sums[0, c], sums[1, c]: the partial sums added in block order (deterministic, no atomics)
extern "C" __global__ void bn_finish_sums(const double* __restrict__ part, double* __restrict__ sums, int groups, int C) {
    for (long long c = gtid(); c < C; c += gstride()) {
        double t1 = 0.0, t2 = 0.0;
        for (int g = 0; g < groups; ++g) { t1 += part[2LL * g * C + c]; t2 += part[(2LL * g + 1) * C + c]; }
        sums[c] = t1;
        sums[C + c] = t2;
    }
}

// y = gamma (x - mean) / sqrt(var + eps) + beta, mean = sums[0] / M, var = sums[1] / M - mean^2
// (gamma / beta null: 1 / 0); row 0's threads also store mean and var for the layer
extern "C" __global__ void bn_apply(const T* __restrict__ x, const double* __restrict__ sums, const T* __restrict__ gamma,
                                    const T* __restrict__ beta, T* __restrict__ y, T* __restrict__ mean_out,
                                    T* __restrict__ var_out, long long M, int C, double eps) {
    for (long long i = gtid(); i < M * C; i += gstride()) {
        int c = (int)(i % C);
        double mean = sums[c] / (double)M;
        double var = fmax(sums[C + c] / (double)M - mean * mean, 0.0);
        double g = gamma ? (double)gamma[c] : 1.0, bb = beta ? (double)beta[c] : 0.0;
        y[i] = (T)(((double)x[i] - mean) * rsqrt(var + eps) * g + bb);
        if (i < C) { mean_out[c] = (T)mean; var_out[c] = (T)var; }
    }
}

// dx = gamma inv / M (M dout - dbeta - xhat dgamma), dbeta = sums[0], dgamma = sums[1]
extern "C" __global__ void bn_dx(const T* __restrict__ dout, const T* __restrict__ x, const T* __restrict__ mean,
                                 const T* __restrict__ var, const T* __restrict__ gamma, const double* __restrict__ sums,
                                 T* __restrict__ dx, long long M, int C, double eps) {
    for (long long i = gtid(); i < M * C; i += gstride()) {
        int c = (int)(i % C);
        double k = rsqrt((double)var[c] + eps), g = gamma ? (double)gamma[c] : 1.0;
        double xhat = ((double)x[i] - (double)mean[c]) * k;
        dx[i] = (T)(g * k / (double)M * ((double)M * (double)dout[i] - sums[c] - xhat * sums[C + c]));
    }
}
"""
add_source(False, 8, SOURCE)


def _bn_sums(a, b, mean, var, eps):
    """(2, C) float64 column sums of a and of a * a (b None) or a * xhat(b): two launches."""
    import cupy
    M, C = a.shape
    groups = int(min(max(M // 256, 1), 512))
    rows_per_block = (M + groups - 1) // groups
    part = cupy.empty((groups, 2, C), dtype=cupy.float64)
    null = _NULL
    _kernel("bn_partial_sums", a.dtype)(((C + 31) // 32, groups), (32, 8),
                                        (a, null if b is None else b, null if mean is None else mean,
                                         null if var is None else var, part) + _i(M, C, rows_per_block)
                                        + (np.float64(eps),))
    sums = cupy.empty((2, C), dtype=cupy.float64)
    _launch("bn_finish_sums", C, (part, sums, np.int32(groups), np.int32(C)), a.dtype)
    return sums


def batchnorm_forward(x, gamma, beta, eps):
    """reference.batchnorm_forward in three launches (statistics in one read of x, then y)."""
    import cupy
    x = cupy.ascontiguousarray(x)
    M, C = x.shape
    sums = _bn_sums(x, None, None, None, eps)
    y = cupy.empty_like(x)
    mean, var = cupy.empty(C, dtype=x.dtype), cupy.empty(C, dtype=x.dtype)
    _launch("bn_apply", x.size, (x, sums, _NULL if gamma is None else gamma, _NULL if beta is None else beta, y, mean,
                                 var, np.int64(M), np.int32(C), np.float64(eps)), x.dtype)
    return y, mean, var


def batchnorm_backward(dout, x, mean, var, gamma, eps):
    """reference.batchnorm_backward in three launches (the two column sums in one read, then dx)."""
    import cupy
    dout, x = cupy.ascontiguousarray(dout), cupy.ascontiguousarray(x)
    M, C = x.shape
    sums = _bn_sums(dout, x, mean, var, eps)
    dx = cupy.empty_like(x)
    _launch("bn_dx", x.size, (dout, x, mean, var, _NULL if gamma is None else gamma, sums, dx, np.int64(M),
                              np.int32(C), np.float64(eps)), x.dtype)
    return dx, sums[1].astype(x.dtype), sums[0].astype(x.dtype)
