"""The regularizing kernels: the max-norm weight constraint and dropout.

max_norm scales every column of a weight (R, F) to norm <= max_value (Keras's rule) in three
launches: per-block partial sums of squares, the scale of each column, the scaling.
Dropout draws its mask from a counter-based stream (SplitMix64 keyed by (seed, counter)): the same
numbers as reference.dropout_mask and the CPU kernels. The graphed training step reads the counter
from device memory and the kernel's last block advances it, so the step can be replayed as is.
"""
import numpy as np

from minicnn.kernels import reference

from minicnn.kernels.gpu._compile import add_source, _done_counters, _i, _kernel, _launch, _NULL

MAX_NORM_SOURCE = r"""
// ---- max_norm: each column of w (R, F) scaled to norm <= max_value -----------------------------
// partial[blockIdx.y, f] = sum of w[r, f]^2 over the block's rows (block (32, 8), as bias_act_bwd)
extern "C" __global__ void sq_partial(const T* __restrict__ w, T* __restrict__ partial, int R, int F,
                                      int rows_per_block) {
    __shared__ T sums[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * rows_per_block, r1 = min(R, r0 + rows_per_block);
    T acc = 0;
    if (col < F)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) { T v = w[(long long)r * F + col]; acc += v * v; }
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < F) {
        T s = 0;
        for (int k = 0; k < 8; ++k) s += sums[k][threadIdx.x];
        partial[(long long)blockIdx.y * F + col] = s;
    }
}

// scale[f] = min(norm, max_value) / (1e-7 + norm), norm = sqrt(sum of the G partials)  (Keras's rule)
extern "C" __global__ void maxnorm_scale(const T* __restrict__ partial, T* __restrict__ scale, int G, int F,
                                         double max_value) {
    for (long long f = gtid(); f < F; f += gstride()) {
        T s = 0;
        for (int k = 0; k < G; ++k) s += partial[(long long)k * F + f];
        T norm = sqrt(s);
        scale[f] = min(norm, (T)max_value) / ((T)1e-7 + norm);
    }
}

extern "C" __global__ void scale_columns(T* __restrict__ w, const T* __restrict__ scale, long long R, int F) {
    long long total = R * F;
    for (long long idx = gtid(); idx < total; idx += gstride()) w[idx] *= scale[(unsigned)idx % (unsigned)F];
}
"""
add_source(False, 5, MAX_NORM_SOURCE)


def max_norm(w, max_value):
    """In place: every column of w viewed as (R, F) (F = last axis) scaled to norm <= max_value,
    w *= min(norm, max) / (1e-7 + norm). Three launches, no host sync. A strided w (never a layer's
    weight) goes to the twin: the kernels read w in C order."""
    import cupy
    if not w.flags.c_contiguous:
        return reference.max_norm(w, max_value)
    F = w.shape[-1]
    R = w.size // F
    groups = int(min(max(R // 64, 1), 256))
    rows_per_block = (R + groups - 1) // groups
    partial = cupy.empty((groups, F), dtype=w.dtype)
    scale = cupy.empty((F,), dtype=w.dtype)
    _kernel("sq_partial", w.dtype)(((F + 31) // 32, groups), (32, 8), (w, partial) + _i(R, F, rows_per_block))
    _launch("maxnorm_scale", F, (partial, scale) + _i(groups, F) + (np.float64(max_value),), w.dtype)
    _launch("scale_columns", w.size, (w, scale, np.int64(R), np.int32(F)), w.dtype)


# ---- dropout ----------------------------------------------------------------------------------------
DROPOUT_SOURCE = r"""
// ---- dropout: SplitMix64 keyed by (seed, counter), the numbers of reference.dropout_mask ---------
__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// mask[i] = scale if u_i >= rate else 0; y = x * mask (x may be null: mask only).
// The stream's counter is read from device memory (it changes every step inside a CUDA graph).
// Like bias_act_bwd, it uses the shared `done` counters: such kernels run on the main stream only.
extern "C" __global__ void dropout_fwd(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ mask, long long n,
                                       unsigned long long seed, unsigned long long* __restrict__ counter,
                                       double rate, T scale, unsigned int* __restrict__ done) {
    __shared__ bool last;
    unsigned long long key = mix64((seed << 32) ^ counter[0]);
    for (long long i = gtid(); i < n; i += gstride()) {
        double u = (double)(mix64(key + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL) >> 40) * (1.0 / 16777216.0);
        T m = u >= rate ? scale : (T)0;
        mask[i] = m;
        if (x) y[i] = x[i] * m;
    }
    // every block has read counter[0] once it has finished: the last one to finish advances it
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&done[0], 1u) == gridDim.x - 1;
    __syncthreads();
    if (last && threadIdx.x == 0) { counter[0] += 1; done[0] = 0; }
}
"""
add_source(False, 6, DROPOUT_SOURCE)


def dropout_forward(x, seed, counter, rate, out, mask):
    """mask = keep / (1 - rate) from the (seed, counter[0]) stream; out = x * mask; then counter[0]
    += 1 (by the kernel's last block: one launch). counter: a device uint64 array of one element."""
    scale = x.dtype.type(1.0 / (1.0 - rate))
    _launch("dropout_fwd", x.size, (x, out, mask, np.int64(x.size), np.uint64(seed), counter, np.float64(rate), scale,
                                    _done_counters(1)), x.dtype)
    return out


def dropout_train(x, seed, counter, rate, mask_shape):
    """reference.dropout_train with the key read from the device counter (uint64, one element) by
    the kernel, which also advances it: no host sync, so a captured CUDA graph draws a new mask at
    every replay. The mask is kept (saved = mask): x's shape, or mask_shape (noise_shape), broadcast."""
    import cupy
    mask = cupy.empty(tuple(mask_shape), dtype=x.dtype)
    if tuple(mask_shape) == tuple(x.shape):
        y = cupy.empty_like(x)
        dropout_forward(x, seed, counter, rate, y, mask)           # also advances the counter
        return y, mask
    _launch("dropout_fwd", mask.size, (_NULL, _NULL, mask, np.int64(mask.size), np.uint64(seed), counter,
                                       np.float64(rate), x.dtype.type(1.0 / (1.0 - rate)), _done_counters(1)),
            x.dtype)                                               # the mask alone; advances the counter
    return x * mask, mask


def dropout_apply(x, seed, counter, rate):
    """x * dropout_mask(...) (reference.dropout_apply); the graphed step uses dropout_forward."""
    return x * dropout_mask(x.shape, seed, counter, rate, x.dtype)


def dropout_mask(shape, seed, counter, rate, dtype):
    """The mask alone, for a host counter (the reference's numbers)."""
    import cupy
    mask = cupy.empty(shape, dtype=dtype)
    dev_counter = cupy.asarray(np.array([counter], dtype=np.uint64))
    _launch("dropout_fwd", mask.size, (_NULL, _NULL, mask, np.int64(mask.size), np.uint64(seed), dev_counter,
                                       np.float64(rate), np.dtype(dtype).type(1.0 / (1.0 - rate)),
                                       _done_counters(1)), dtype)
    return mask
