"""The data module's kernels: batches gathered on the device, the epoch's augmentation, and the
running loss/accuracy statistics.

These compile into their own RawModule (_compile.module_source(data=True)) for any element type
in _CTYPES: T is the batch's type, S the stored data's (uint8 images are gathered, scaled and cast
in one pass). A device-resident training loop (device_training.py) keeps the shuffled order and
a cursor on the device: each step gathers its rows at the cursor and advances it, no host sync.
"""
import numpy as np

from minicnn.kernels.gpu._compile import add_source, _i, _kernel, kernel_names, _launch, _NULL

CURSOR_SOURCE = r"""
extern "C" __global__ void increment_i64(long long* counter, long long by) {
    if (gtid() == 0) counter[0] += by;
}
"""
add_source(True, 1, CURSOR_SOURCE)


def advance_cursor(cursor, by):
    """cursor[0] += by on the device (int64)."""
    _kernel("increment_i64", np.int64)((1,), (1,), (cursor, np.int64(by)))


GATHER_SOURCE = r"""
// ---- batch gathering: xb[i] = scale * x[order[cursor + i]], yb likewise ------------------------
extern "C" __global__ void gather_rows(const S* __restrict__ x, const int* __restrict__ order,
                                       const long long* __restrict__ cursor, T* __restrict__ xb,
                                       int rows, long long row_size, double scale) {
    long long total = (long long)rows * row_size;
    long long base = cursor ? cursor[0] : 0;
    for (long long idx = gtid(); idx < total; idx += gstride()) {
        long long r = idx / row_size, k = idx - r * row_size;
        long long src = order[base + r];
        xb[idx] = (T)((double)x[src * row_size + k] * scale);
    }
}
"""
add_source(True, 2, GATHER_SOURCE)


def gather_rows(x, order, cursor, out, scale=1.0):
    """out[i] = scale * x[order[cursor[0] + i]] for i < len(out) (cursor None: 0), cast to out's type."""
    rows = out.shape[0]
    row_size = int(np.prod(out.shape[1:])) if out.ndim > 1 else 1
    _launch("gather_rows", rows * row_size, (x, order, _NULL if cursor is None else cursor, out, np.int32(rows), np.int64(row_size),
                                             np.float64(scale)), out.dtype, np.int32, x.dtype)
    return out


FLIP_CROP_SOURCE = r"""
// ---- epoch augmentation (reference.flip_crop): out[n, h, w] = x[n, reflect(h + dy - pad),
// reflect(w + dx - pad) mirrored where flip[n]]; T is the image type (uint8 or float) ----------------
__device__ __forceinline__ int reflect_index(int i, int n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); }

extern "C" __global__ void flip_crop(const T* __restrict__ x, T* __restrict__ out, const unsigned char* __restrict__ flip,
                                     const long long* __restrict__ dy, const long long* __restrict__ dx,
                                     int N, int H, int W, int C, int pad) {
    long long total = (long long)N * H * W * C;
    for (long long idx = gtid(); idx < total; idx += gstride()) {
        int c = (int)(idx % C);
        long long r = idx / C;
        int w = (int)(r % W); r /= W;
        int h = (int)(r % H);
        long long n = r / H;
        int sh = reflect_index(h + (int)dy[n] - pad, H);
        int sw = reflect_index(w + (int)dx[n] - pad, W);
        if (flip && flip[n]) sw = W - 1 - sw;
        out[idx] = x[((n * H + sh) * W + sw) * C + c];
    }
}
"""
add_source(True, 3, FLIP_CROP_SOURCE)


def flip_crop(x, which, dy, dx, pad):
    """reference.flip_crop in one launch: each output element reads its source pixel directly."""
    import cupy
    x = cupy.ascontiguousarray(x)
    out = cupy.empty_like(x)
    N, H, W, C = x.shape
    flip = _NULL if which is None else cupy.ascontiguousarray(which).astype(cupy.uint8)
    _launch("flip_crop", x.size, (x, out, flip, cupy.ascontiguousarray(dy, dtype=cupy.int64),
                                  cupy.ascontiguousarray(dx, dtype=cupy.int64)) + _i(N, H, W, C, pad), x.dtype)
    return out


STATS_SOURCE = r"""
// stats[0] += loss * n; stats[1] += correct; stats[2] = loss   (losses without a fused kernel)
extern "C" __global__ void accumulate_stats(double* stats, const T* loss, const long long* correct, int n) {
    if (gtid() == 0) { stats[0] += (double)loss[0] * n; stats[1] += (double)correct[0]; stats[2] = (double)loss[0]; }
}
"""
add_source(True, 4, STATS_SOURCE)


def accumulate_stats(stats, loss, correct, n):
    """stats[0] += loss * n; stats[1] += correct; stats[2] = loss (device scalars in, no sync)."""
    import cupy
    _kernel("accumulate_stats", loss.dtype)((1,), (1,), (stats, loss, cupy.asarray(correct, dtype=cupy.int64),
                                                          np.int32(n)))


# The kernels _compile._kernel compiles into the data module (every other kernel is a math one).
KERNELS = frozenset(kernel_names(CURSOR_SOURCE + GATHER_SOURCE + FLIP_CROP_SOURCE + STATS_SOURCE))
