"""Max and average pooling, forward and backward, NHWC.

Forward: one thread per output cell walks its window's real cells (padding skipped); max pooling
also stores the winner's offset i*PW + j (the first maximum, in row-major window order), in type A.
Backward: one thread per input cell sums what the windows covering it send back (gather, never
scatter): deterministic, no atomics. Average pooling leaves padding out of the divisor.
"""
from minicnn.kernels import reference
from minicnn.kernels.gpu._compile import add_source, _check_size, _i, _launch

SOURCE = r"""
// ---- pooling -------------------------------------------------------------------------------------
// y = max over the window's real cells; arg = i*PW + j of the FIRST maximum (row-major window order)
extern "C" __global__ void maxpool_fwd(const T* __restrict__ x, T* __restrict__ y, A* __restrict__ arg,
                                       int N, int H, int W, int C, int PH, int PW, int sh, int sw,
                                       int pt, int pl, int OH, int OW) {
    long long total = (long long)N * OH * OW * C;
    for (long long idx = gtid(); idx < total; idx += gstride()) {
        unsigned r = (unsigned)idx;
        int c = r % C; r /= C;
        int ow = r % OW; r /= OW;
        int oh = r % OH; int n = r / OH;
        T best = 0; int besti = -1;
        for_window_cells(oh, ow, H, W, PH, PW, sh, sw, pt, pl, [&](int i, int j, int h, int w) {
            T v = x[(((long long)n * H + h) * W + w) * C + c];
            if (besti < 0 || v > best) { best = v; besti = i * PW + j; }
        });
        y[idx] = best;
        arg[idx] = (A)besti;
    }
}

// dx[cell] = sum of dout over the windows whose winner is this cell
extern "C" __global__ void maxpool_bwd(const T* __restrict__ dout, const A* __restrict__ arg, T* __restrict__ dx,
                                       int N, int H, int W, int C, int PH, int PW, int sh, int sw,
                                       int pt, int pl, int OH, int OW) {
    long long total = (long long)N * H * W * C;
    for (long long idx = gtid(); idx < total; idx += gstride()) {
        unsigned r = (unsigned)idx;
        int c = r % C; r /= C;
        int w = r % W; r /= W;
        int h = r % H; int n = r / H;
        T acc = 0;
        for_windows_covering(h, w, PH, PW, sh, sw, pt, pl, OH, OW, [&](int oh, int ow, int i, int j) {
            long long o = (((long long)n * OH + oh) * OW + ow) * C + c;
            if ((int)arg[o] == i * PW + j) acc += dout[o];
        });
        dx[idx] = acc;
    }
}

__device__ __forceinline__ int window_count(int oh, int ow, int H, int W, int PH, int PW, int sh, int sw,
                                            int pt, int pl) {
    int h0 = max(oh * sh - pt, 0), h1 = min(oh * sh - pt + PH, H);
    int w0 = max(ow * sw - pl, 0), w1 = min(ow * sw - pl + PW, W);
    return (h1 - h0) * (w1 - w0);
}

// y = mean of the window's real cells (padding is left out of the divisor)
extern "C" __global__ void avgpool_fwd(const T* __restrict__ x, T* __restrict__ y, int N, int H, int W, int C,
                                       int PH, int PW, int sh, int sw, int pt, int pl, int OH, int OW) {
    long long total = (long long)N * OH * OW * C;
    for (long long idx = gtid(); idx < total; idx += gstride()) {
        unsigned r = (unsigned)idx;
        int c = r % C; r /= C;
        int ow = r % OW; r /= OW;
        int oh = r % OH; int n = r / OH;
        T acc = 0;
        for_window_cells(oh, ow, H, W, PH, PW, sh, sw, pt, pl, [&](int, int, int h, int w) {
            acc += x[(((long long)n * H + h) * W + w) * C + c];
        });
        y[idx] = acc / (T)window_count(oh, ow, H, W, PH, PW, sh, sw, pt, pl);
    }
}

// dx[cell] = sum over the windows holding the cell of dout / count(window)
extern "C" __global__ void avgpool_bwd(const T* __restrict__ dout, T* __restrict__ dx, int N, int H, int W, int C,
                                       int PH, int PW, int sh, int sw, int pt, int pl, int OH, int OW) {
    long long total = (long long)N * H * W * C;
    for (long long idx = gtid(); idx < total; idx += gstride()) {
        unsigned r = (unsigned)idx;
        int c = r % C; r /= C;
        int w = r % W; r /= W;
        int h = r % H; int n = r / H;
        T acc = 0;
        for_windows_covering(h, w, PH, PW, sh, sw, pt, pl, OH, OW, [&](int oh, int ow, int i, int j) {
            acc += dout[(((long long)n * OH + oh) * OW + ow) * C + c]
                   / (T)window_count(oh, ow, H, W, PH, PW, sh, sw, pt, pl);
        });
        dx[idx] = acc;
    }
}
"""
add_source(False, 3, SOURCE)


def maxpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW, out=None, arg_out=None):
    import cupy
    N, H, W, C = x.shape
    adt = reference.argmax_dtype(PH, PW)
    y = out if out is not None else cupy.empty((N, OH, OW, C), dtype=x.dtype)
    arg = arg_out if arg_out is not None else cupy.empty((N, OH, OW, C), dtype=adt)
    _check_size("maxpool_fwd", y)
    _launch("maxpool_fwd", y.size, (cupy.ascontiguousarray(x), y, arg) + _i(N, H, W, C, PH, PW, sh, sw, pt, pl, OH, OW),
            x.dtype, adt)
    return y, arg


def maxpool_backward(dout, arg, x_shape, PH, PW, sh, sw, pt, pl, out=None):
    import cupy
    N, H, W, C = x_shape
    OH, OW = dout.shape[1:3]
    dx = out if out is not None else cupy.empty(x_shape, dtype=dout.dtype)
    _check_size("maxpool_bwd", dx)
    _launch("maxpool_bwd", dx.size, (cupy.ascontiguousarray(dout), arg, dx)
            + _i(N, H, W, C, PH, PW, sh, sw, pt, pl, OH, OW), dout.dtype, arg.dtype)
    return dx


def avgpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW, out=None):
    import cupy
    N, H, W, C = x.shape
    y = out if out is not None else cupy.empty((N, OH, OW, C), dtype=x.dtype)
    _check_size("avgpool_fwd", y)
    _launch("avgpool_fwd", y.size, (cupy.ascontiguousarray(x), y) + _i(N, H, W, C, PH, PW, sh, sw, pt, pl, OH, OW),
            x.dtype)
    return y


def avgpool_backward(dout, x_shape, PH, PW, sh, sw, pt, pl, out=None):
    import cupy
    N, H, W, C = x_shape
    OH, OW = dout.shape[1:3]
    dx = out if out is not None else cupy.empty(x_shape, dtype=dout.dtype)
    _check_size("avgpool_bwd", dx)
    _launch("avgpool_bwd", dx.size, (cupy.ascontiguousarray(dout), dx) + _i(N, H, W, C, PH, PW, sh, sw, pt, pl, OH, OW),
            dout.dtype)
    return dx
