"""im2col / col2im, and the convolution built on them.

im2col copies the receptive field of every output position into one row of cols
(N*OH*OW, KH*KW*C); col2im sums such rows back into the image, each input cell gathering what the
windows covering it send back (no atomics). The layer's convolution is one whole-batch im2col +
GEMM: the plain CuPy version of reference.py (the CPU's row-block kernels have no GPU twin).
"""
from minicnn.kernels import reference
from minicnn.kernels.gpu._compile import add_source, _check_size, _i, _launch

SOURCE = r"""
// ---- im2col / col2im ---------------------------------------------------------------------------
// Index arithmetic is 32-bit unsigned (the host checks the sizes): 64-bit division is emulated on
// the GPU and cost more than the copies themselves. Each thread moves one pack of VEC channels
// (VEC = 4 when C % 4 == 0: 16-byte loads and stores for float), so a tap's C values move as C/VEC packs.
template <int VEC> struct alignas(sizeof(T) * VEC) Pack { T v[VEC]; };

// cols[(n*OH + oh)*OW + ow, (i*KW + j)*C + c] = x[n, oh*sh - pt + i, ow*sw - pl + j, c]  (0 outside)
template <int VEC>
__device__ void im2col_impl(const T* __restrict__ x, T* __restrict__ cols, int N, int H, int W, int C,
                            int KH, int KW, int sh, int sw, int pt, int pl, int OH, int OW) {
    typedef Pack<VEC> P;
    unsigned G = C / VEC, taps = KH * KW;
    unsigned total = (unsigned)N * OH * OW * taps * G;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        unsigned g = idx % G, r = idx / G;
        unsigned t = r % taps, p = r / taps;
        int i = t / KW, j = t - i * KW;
        int ow = p % OW; unsigned q = p / OW;
        int oh = q % OH, n = q / OH;
        int h = oh * sh - pt + i, w = ow * sw - pl + j;
        P v;
        if (h >= 0 && h < H && w >= 0 && w < W) {
            v = reinterpret_cast<const P*>(x)[((unsigned)(n * H + h) * W + w) * G + g];
        } else {
            #pragma unroll
            for (int k = 0; k < VEC; ++k) v.v[k] = (T)0;
        }
        reinterpret_cast<P*>(cols)[idx] = v;
    }
}
// one entry point per pack width: name1 (any C) and name4 (C % 4 == 0, aligned)
#define PACKED_ENTRIES(name)                                                                          \
    extern "C" __global__ void name##1(const T* a, T* b, int N, int H, int W, int C, int KH, int KW,    \
                                       int sh, int sw, int pt, int pl, int OH, int OW) {                \
        name##_impl<1>(a, b, N, H, W, C, KH, KW, sh, sw, pt, pl, OH, OW);                              \
    }                                                                                                   \
    extern "C" __global__ void name##4(const T* a, T* b, int N, int H, int W, int C, int KH, int KW,    \
                                       int sh, int sw, int pt, int pl, int OH, int OW) {                \
        name##_impl<4>(a, b, N, H, W, C, KH, KW, sh, sw, pt, pl, OH, OW);                              \
    }
PACKED_ENTRIES(im2col)

// dx[n, h, w, c] = sum over the windows (oh, ow) and offsets (i, j) that read (h, w) of dcols[...]
template <int VEC>
__device__ void col2im_impl(const T* __restrict__ dcols, T* __restrict__ dx, int N, int H, int W, int C,
                            int KH, int KW, int sh, int sw, int pt, int pl, int OH, int OW) {
    typedef Pack<VEC> P;
    unsigned G = C / VEC, taps = KH * KW;
    unsigned total = (unsigned)N * H * W * G;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        unsigned g = idx % G, r = idx / G;
        int w = r % W; r /= W;
        int h = r % H, n = r / H;
        P acc;
        #pragma unroll
        for (int k = 0; k < VEC; ++k) acc.v[k] = (T)0;
        for_windows_covering(h, w, KH, KW, sh, sw, pt, pl, OH, OW, [&](int oh, int ow, int i, int j) {
            P d = reinterpret_cast<const P*>(dcols)[(((unsigned)(n * OH + oh) * OW + ow) * taps + i * KW + j) * G + g];
            #pragma unroll
            for (int k = 0; k < VEC; ++k) acc.v[k] += d.v[k];
        });
        reinterpret_cast<P*>(dx)[idx] = acc;
    }
}
PACKED_ENTRIES(col2im)
"""
add_source(False, 2, SOURCE)


def _vec(C, *arrays):
    """4 when every pointer is 16-byte aligned (32 for float64) and C % 4 == 0, else 1."""
    align = 4 * arrays[0].dtype.itemsize
    return 4 if C % 4 == 0 and all(a.data.ptr % align == 0 for a in arrays) else 1


def im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, out=None):
    import cupy
    N, H, W, C = x.shape
    x = cupy.ascontiguousarray(x)
    cols = out if out is not None else cupy.empty((N * OH * OW, KH * KW * C), dtype=x.dtype)
    _check_size("im2col", cols)
    vec = _vec(C, x, cols)
    _launch(f"im2col{vec}", cols.size // vec, (x, cols) + _i(N, H, W, C, KH, KW, sh, sw, pt, pl, OH, OW), x.dtype)
    return cols


def col2im(dcols, x_shape, KH, KW, sh, sw, pt, pl, OH, OW, out=None):
    import cupy
    N, H, W, C = x_shape
    dx = out if out is not None else cupy.empty(x_shape, dtype=dcols.dtype)
    dcols = cupy.ascontiguousarray(dcols)
    _check_size("col2im", dcols, dx)
    vec = _vec(C, dcols, dx)
    _launch(f"col2im{vec}", dx.size // vec, (dcols, dx) + _i(N, H, W, C, KH, KW, sh, sw, pt, pl, OH, OW),
            dcols.dtype)
    return dx


# The convolution as one whole-batch im2col + GEMM (the layer's own path on the GPU; the CPU's
# row-block kernels have no GPU twin): the plain CuPy version, for the same signature everywhere.
conv2d_forward, conv2d_backward = reference.conv2d_forward, reference.conv2d_backward
