"""CUDA kernels (CuPy RawKernels) for the GPU backend: the same functions as ``cpu.py``.

Each kernel is written once in CUDA C below, with T standing for the float type (float or
double, chosen when the kernel is compiled); the geometry is the one documented in
``reference.py``, which is also every kernel's test oracle (``tests/test_gpu.py``).
Design rules:
  - gather, never scatter: col2im and the pooling backwards give each INPUT cell one thread that
    sums the windows covering it, so no atomics are needed and results are deterministic;
  - one launch per kernel family call; no host synchronisation anywhere (a training step built
    from these functions can be captured into a CUDA graph);
  - values that change from step to step (the optimizer's step count and learning rate, the
    dropout stream's counter) are read from device memory, never passed as host numbers.
"""
import numpy as np

from minicnn.kernels import reference

_THREADS = 256
_NULL = np.uint64(0)     # a null pointer argument (the kernels test their optional pointers)

_SOURCE = r"""
__device__ __forceinline__ long long gtid() { return blockIdx.x * (long long)blockDim.x + threadIdx.x; }
__device__ __forceinline__ long long gstride() { return (long long)gridDim.x * blockDim.x; }

// Calls f(oh, ow, i, j) for every window (oh, ow) whose offset (i, j) lands on cell (h, w): the
// gather form of every backward pass here (each input cell sums what its windows send back).
template <typename F>
__device__ __forceinline__ void for_windows_covering(int h, int w, int KH, int KW, int sh, int sw, int pt, int pl,
                                                     int OH, int OW, F f) {
    for (int i = 0; i < KH; ++i) {
        int hh = h + pt - i;
        if (hh < 0 || hh % sh) continue;
        int oh = hh / sh;
        if (oh >= OH) continue;
        for (int j = 0; j < KW; ++j) {
            int ww = w + pl - j;
            if (ww < 0 || ww % sw) continue;
            int ow = ww / sw;
            if (ow >= OW) continue;
            f(oh, ow, i, j);
        }
    }
}

// Calls f(i, j, h, w) for every real cell (h, w) of window (oh, ow), offset (i, j) in the window, in
// row-major window order (padding cells skipped): the forward passes of the poolings.
template <typename F>
__device__ __forceinline__ void for_window_cells(int oh, int ow, int H, int W, int PH, int PW, int sh, int sw, int pt,
                                                 int pl, F f) {
    for (int i = 0; i < PH; ++i) {
        int h = oh * sh - pt + i;
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < PW; ++j) {
            int w = ow * sw - pl + j;
            if (w < 0 || w >= W) continue;
            f(i, j, h, w);
        }
    }
}

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

// ---- fused softmax cross-entropy from the logits, with the batch's loss and accuracy -------------
// One block. Row n: t = targets (one-hot/soft row, or the class id `labels[n]` when sparse),
// smoothed toward uniform by ls; L_n = -sum_k t_k log softmax(z)_k; dz = (p * sum(t) - t) / B;
// correct_n = [argmax z == argmax t]. stats[0] += sum L_n, stats[1] += sum correct_n,
// stats[2] = mean L_n (this batch).
extern "C" __global__ void softmax_xent(const T* __restrict__ z, const T* __restrict__ onehot,
                                        const int* __restrict__ labels, T* __restrict__ dz,
                                        double* __restrict__ stats, int B, int K, double ls) {
    __shared__ double sl[1024];
    __shared__ double sc[1024];
    double loss = 0, correct = 0;
    for (int n = threadIdx.x; n < B; n += blockDim.x) {
        const T* zr = z + (long long)n * K;
        T m = zr[0]; int zarg = 0;
        for (int k = 1; k < K; ++k) if (zr[k] > m) { m = zr[k]; zarg = k; }
        double s = 0;
        for (int k = 0; k < K; ++k) s += exp((double)(zr[k] - m));
        double lse = log(s);
        double tsum = 0, l = 0; T tbest = 0; int targ = -1;
        for (int k = 0; k < K; ++k) {
            double t = labels ? (labels[n] == k ? 1.0 : 0.0) : (double)onehot[(long long)n * K + k];
            if (targ < 0 || (T)t > tbest) { tbest = (T)t; targ = k; }
            t = t * (1.0 - ls) + ls / K;
            tsum += t;
            l -= t * ((double)(zr[k] - m) - lse);
        }
        for (int k = 0; k < K; ++k) {
            double t = labels ? (labels[n] == k ? 1.0 : 0.0) : (double)onehot[(long long)n * K + k];
            t = t * (1.0 - ls) + ls / K;
            double p = exp((double)(zr[k] - m) - lse);
            dz[(long long)n * K + k] = (T)((p * tsum - t) / B);
        }
        loss += l;
        correct += (zarg == targ) ? 1.0 : 0.0;
    }
    sl[threadIdx.x] = loss;
    sc[threadIdx.x] = correct;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) { sl[threadIdx.x] += sl[threadIdx.x + half]; sc[threadIdx.x] += sc[threadIdx.x + half]; }
        __syncthreads();
    }
    if (threadIdx.x == 0) { stats[0] += sl[0]; stats[1] += sc[0]; stats[2] = sl[0] / B; }
}

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

// ---- optimizer updates: ONE launch updates every parameter ("multi-tensor") ---------------------
// ptrs holds S pointers per parameter (w, g, slot...); offsets[k] = first flat index of parameter k
// (offsets[P] = total); mult[2k] = parameter k's learning-rate factor (lr_multipliers; 1 by default),
// mult[2k + 1] its weight-decay factor (0 when excluded from weight decay, else 1). Hyper-parameters
// come from device memory: step = t[0] (updates already applied), lr = lr_table[clamp(step - t_base,
// 0, n_table - 1)]; parameter k steps with lr * mult[2k] and decays by lr * wd * mult[2k + 1] (the
// multiplier speeds up learning, not the decay).
__device__ __forceinline__ double table_lr(const long long* t, const double* lr_table, int n_table, long long t_base) {
    long long k = t[0] - t_base;
    k = k < 0 ? 0 : (k >= n_table ? n_table - 1 : k);
    return lr_table[k];
}

// decoupled weight decay, applied before the update: w - lr * wd * w (in the parameter's type, as the host does)
__device__ __forceinline__ double decayed(T w, double lr, double wd) {
    return wd != 0.0 ? (double)(w - w * (T)(lr * wd)) : (double)w;
}

__device__ __forceinline__ int find_param(const long long* offsets, int P, long long i) {
    int lo = 0, hi = P;
    while (hi - lo > 1) { int mid = (lo + hi) / 2; if (offsets[mid] <= i) lo = mid; else hi = mid; }
    return lo;
}

// Lookahead sync (Optimizer.lookahead_sync): slow += rate (w - slow); w = slow      (ptrs: w, slow)
extern "C" __global__ void lookahead(const unsigned long long* __restrict__ ptrs, const long long* __restrict__ offsets,
                                     int P, double rate) {
    for (long long i = gtid(); i < offsets[P]; i += gstride()) {
        int k = find_param(offsets, P, i);
        long long j = i - offsets[k];
        T* w = (T*)ptrs[2 * k]; T* slow = (T*)ptrs[2 * k + 1];
        T v = slow[j] + (T)rate * (w[j] - slow[j]);
        slow[j] = v;
        w[j] = v;
    }
}

// Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps),
// alpha = lr sqrt(1 - b2^(step+1)) / (1 - b1^(step+1))            (ptrs: w, g, m, v)
extern "C" __global__ void adam(const unsigned long long* __restrict__ ptrs, const long long* __restrict__ offsets,
                                const double* __restrict__ mult,
                                int P, const long long* __restrict__ t, const double* __restrict__ lr_table,
                                int n_table, long long t_base, double b1, double b2, double eps, double wd) {
    double step = (double)(t[0] + 1), base_lr = table_lr(t, lr_table, n_table, t_base);
    double bias_correction = sqrt(1.0 - pow(b2, step)) / (1.0 - pow(b1, step));
    for (long long i = gtid(); i < offsets[P]; i += gstride()) {
        int k = find_param(offsets, P, i);
        long long j = i - offsets[k];
        double lr = base_lr * mult[2 * k], wdk = wd * mult[2 * k + 1], alpha = lr * bias_correction;
        T* w = (T*)ptrs[4 * k]; const T* g = (const T*)ptrs[4 * k + 1];
        T* m = (T*)ptrs[4 * k + 2]; T* v = (T*)ptrs[4 * k + 3];
        T gi = g[j];
        T mi = m[j] + (gi - m[j]) * (T)(1.0 - b1);
        T vi = v[j] + (gi * gi - v[j]) * (T)(1.0 - b2);
        m[j] = mi;
        v[j] = vi;
        w[j] = (T)(decayed(w[j], base_lr, wdk) - alpha * (double)mi / (sqrt((double)vi) + eps));
    }
}

// RMSprop: v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + eps)      (ptrs: w, g, v)
extern "C" __global__ void rmsprop(const unsigned long long* __restrict__ ptrs, const long long* __restrict__ offsets,
                                   const double* __restrict__ mult,
                                   int P, const long long* __restrict__ t, const double* __restrict__ lr_table,
                                   int n_table, long long t_base, double rho, double eps, double wd) {
    double base_lr = table_lr(t, lr_table, n_table, t_base);
    for (long long i = gtid(); i < offsets[P]; i += gstride()) {
        int k = find_param(offsets, P, i);
        long long j = i - offsets[k];
        double lr = base_lr * mult[2 * k], wdk = wd * mult[2 * k + 1];
        T* w = (T*)ptrs[3 * k]; const T* g = (const T*)ptrs[3 * k + 1]; T* v = (T*)ptrs[3 * k + 2];
        T gi = g[j];
        T vi = (T)rho * v[j] + (T)(1.0 - rho) * gi * gi;
        v[j] = vi;
        w[j] = (T)(decayed(w[j], base_lr, wdk) - lr * (double)gi / sqrt((double)vi + eps));
    }
}

// SGD: no momentum slot (null): w -= lr g;  else m = mu m - lr g; w += m (nesterov: w += mu m - lr g)
// (ptrs: w, g, m)
extern "C" __global__ void sgd(const unsigned long long* __restrict__ ptrs, const long long* __restrict__ offsets,
                               const double* __restrict__ mult,
                               int P, const long long* __restrict__ t, const double* __restrict__ lr_table,
                               int n_table, long long t_base, double mu, int nesterov, double wd) {
    double base_lr = table_lr(t, lr_table, n_table, t_base);
    for (long long i = gtid(); i < offsets[P]; i += gstride()) {
        int k = find_param(offsets, P, i);
        long long j = i - offsets[k];
        double lr = base_lr * mult[2 * k], wdk = wd * mult[2 * k + 1];
        T* w = (T*)ptrs[3 * k]; const T* g = (const T*)ptrs[3 * k + 1]; T* m = (T*)ptrs[3 * k + 2];
        double gi = (double)g[j];
        if (!m) { w[j] = (T)(decayed(w[j], base_lr, wdk) - lr * gi); continue; }
        double mi = mu * (double)m[j] - lr * gi;
        m[j] = (T)mi;
        w[j] = (T)(decayed(w[j], base_lr, wdk) + (nesterov ? mu * mi - lr * gi : mi));
    }
}
"""

_DATA_SOURCE = r"""
__device__ __forceinline__ long long gtid() { return blockIdx.x * (long long)blockDim.x + threadIdx.x; }
__device__ __forceinline__ long long gstride() { return (long long)gridDim.x * blockDim.x; }

extern "C" __global__ void increment_i64(long long* counter, long long by) {
    if (gtid() == 0) counter[0] += by;
}

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

// stats[0] += loss * n; stats[1] += correct; stats[2] = loss   (losses without a fused kernel)
extern "C" __global__ void accumulate_stats(double* stats, const T* loss, const long long* correct, int n) {
    if (gtid() == 0) { stats[0] += (double)loss[0] * n; stats[1] += (double)correct[0]; stats[2] = (double)loss[0]; }
}
"""

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.int8): "signed char",
           np.dtype(np.int32): "int", np.dtype(np.uint8): "unsigned char", np.dtype(np.int64): "long long",
           np.dtype(np.uint64): "unsigned long long"}
_modules = {}


_DATA_KERNELS = ("increment_i64", "gather_rows", "accumulate_stats", "flip_crop")


def _kernel(name, T, A=np.int32, S=None):
    """Compiled kernel `name` for element type T (pooling arg type A, gather source type S); cached.
    The math kernels compile for float/double T; the data kernels for any listed type."""
    import cupy
    data = name in _DATA_KERNELS
    key = (data, np.dtype(T), np.dtype(A), np.dtype(S if S is not None else T))
    mod = _modules.get(key)
    if mod is None:
        mod = _modules[key] = cupy.RawModule(code=module_source(*key), options=("--std=c++14",))
    return mod.get_function(name)


def module_source(data, T, A, S):
    """The CUDA C text of one compiled module: the data or the math kernels for types T, A, S."""
    head = "".join(f"typedef {_CTYPES[np.dtype(t)]} {name};\n" for name, t in (("T", T), ("A", A), ("S", S)))
    return head + (_DATA_SOURCE if data else _SOURCE)


def _grid(total):
    return (int(min(max((total + _THREADS - 1) // _THREADS, 1), 65535 * 4)),), (_THREADS,)


def _launch(name, total, args, T, A=np.int32, S=None):
    grid, block = _grid(total)
    _kernel(name, T, A, S)(grid, block, args)


def _i(*values):
    return tuple(np.int32(v) for v in values)


# ---- im2col / col2im --------------------------------------------------------------------------
def _check_size(what, *arrays):
    """The kernels index with 32-bit unsigned arithmetic: refuse (clearly) what does not fit."""
    for a in arrays:
        if a.size >= 2**32:
            raise ValueError(f"{what}: {a.size} elements do not fit one launch (at most 2^32 - 1); "
                             "use a smaller batch_size")


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


# ---- pooling ----------------------------------------------------------------------------------
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


# ---- bias + activation ------------------------------------------------------------------------
_ACT = {"linear": 0, "relu": 1, "tanh": 2, "sigmoid": 3}


def bias_activation(z, b, activation):
    """In place on z (the fresh GEMM output, (R, F))."""
    name = activation.name
    if z.ndim != 2 or not z.flags.c_contiguous or (name not in _ACT and name != "softmax"):
        return reference.bias_activation(z, b, activation)
    if name == "softmax":
        _launch("bias_softmax", z.shape[0], (z, _NULL if b is None else b) + _i(z.shape[0], z.shape[1]), z.dtype)
    else:
        _launch("bias_act", z.size, (z, _NULL if b is None else b, np.int64(z.shape[0])) + _i(z.shape[1], _ACT[name]), z.dtype)
    return z


def bias_activation_backward(dout, y, activation, out, db_out=None):
    """out = dz = act'(y) * dout (out may be dout itself); returns db = column sums of dz
    (written into db_out when given). One launch: each block writes dz and its column partials; the
    last block of a column group to finish (a done counter) sums the partials in a fixed order
    (deterministic, no atomics on the sums)."""
    import cupy
    if activation.name not in _ACT or dout.ndim != 2:
        return reference.bias_activation_backward(dout, y, activation, out, db_out)
    R, F = dout.shape
    dout = cupy.ascontiguousarray(dout)
    groups = int(min(max(R // 64, 1), 256))
    rows_per_block = (R + groups - 1) // groups
    db = db_out if db_out is not None else cupy.empty((F,), dtype=dout.dtype)
    partial = cupy.empty((groups, F), dtype=dout.dtype)
    act = _ACT[activation.name]
    _kernel("bias_act_bwd", dout.dtype)(((F + 31) // 32, groups), (32, 8),
                                        (dout, y if act else dout, out, partial, db, _done_counters((F + 31) // 32))
                                        + _i(R, F, act, rows_per_block))
    return db


_DONE = None


def _done_counters(n):
    """Zeroed block counters for the one-launch reductions (each launch leaves them at zero)."""
    global _DONE
    import cupy
    if _DONE is None or _DONE.size < n:
        _DONE = cupy.zeros(max(n, 4096), dtype=cupy.uint32)
    return _DONE


def column_sum(a, out=None):
    """Sum over the rows of a 2-D array (R, F) -> (F,), deterministic."""
    from minicnn import activations
    import cupy
    a = cupy.ascontiguousarray(a)           # the kernel rewrites a's values unchanged (dz = dout)
    return bias_activation_backward(a, None, activations.get("linear"), a, out)


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


# ---- max_norm ---------------------------------------------------------------------------------------
def max_norm(w, max_value):
    """In place: every column of w viewed as (R, F) (F = last axis) scaled to norm <= max_value,
    w *= min(norm, max) / (1e-7 + norm). Three launches, no host sync."""
    import cupy
    F = w.shape[-1]
    R = w.size // F
    groups = int(min(max(R // 64, 1), 256))
    rows_per_block = (R + groups - 1) // groups
    partial = cupy.empty((groups, F), dtype=w.dtype)
    scale = cupy.empty((F,), dtype=w.dtype)
    _kernel("sq_partial", w.dtype)(((F + 31) // 32, groups), (32, 8), (w, partial) + _i(R, F, rows_per_block))
    _launch("maxnorm_scale", F, (partial, scale) + _i(groups, F) + (np.float64(max_value),), w.dtype)
    _launch("scale_columns", w.size, (w, scale, np.int64(R), np.int32(F)), w.dtype)


# ---- dropout --------------------------------------------------------------------------------------
def dropout_forward(x, seed, counter, rate, out, mask):
    """mask = keep / (1 - rate) from the (seed, counter[0]) stream; out = x * mask; then counter[0]
    += 1 (by the kernel's last block: one launch). counter: a device uint64 array of one element."""
    scale = x.dtype.type(1.0 / (1.0 - rate))
    _launch("dropout_fwd", x.size, (x, out, mask, np.int64(x.size), np.uint64(seed), counter, np.float64(rate), scale,
                                    _done_counters(1)), x.dtype)
    return out


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


def advance_cursor(cursor, by):
    """cursor[0] += by on the device (int64)."""
    _kernel("increment_i64", np.int64)((1,), (1,), (cursor, np.int64(by)))


# ---- fused softmax cross-entropy --------------------------------------------------------------------
def softmax_cross_entropy(z, y, label_smoothing, dz, stats):
    """Fused loss + gradient + accuracy of one batch from the logits z (B, K). y: one-hot/soft (B, K)
    float or class ids (B,) int32. Writes dz; stats (float64, 3): += loss sum, += correct count,
    = batch mean loss."""
    import cupy
    B, K = z.shape
    z = cupy.ascontiguousarray(z)
    sparse = y.ndim == 1
    labels = cupy.ascontiguousarray(y, dtype=cupy.int32) if sparse else None
    onehot = None if sparse else cupy.ascontiguousarray(y, dtype=z.dtype)
    threads = 1
    while threads < min(B, 1024):
        threads *= 2
    _kernel("softmax_xent", z.dtype)((1,), (threads,), (z, _NULL if sparse else onehot,
                                                         labels if sparse else _NULL, dz, stats, np.int32(B), np.int32(K),
                                                         np.float64(label_smoothing)))
    return dz


# ---- optimizers (device step count and learning-rate table) -----------------------------------------
def param_table(groups, lr_factors=None, decay_factors=None):
    """Device tables for a multi-tensor update: groups = [(w, g, slot, ...) per parameter] (None for a
    missing slot); each parameter's learning-rate factor and weight-decay factor (default 1). Returns
    (pointers, offsets, factors, P, total); build it once and reuse it (it is read in place)."""
    import cupy
    ptrs = [0 if a is None else a.data.ptr for group in groups for a in group]
    sizes = [group[0].size for group in groups]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    mult = np.ones((len(groups), 2))
    for column, factors in enumerate((lr_factors, decay_factors)):
        if factors is not None:
            if len(factors) != len(groups):
                raise ValueError(f"param_table: expected {len(groups)} factors, got {len(factors)}")
            mult[:, column] = factors
    return (cupy.asarray(np.array(ptrs, dtype=np.uint64)), cupy.asarray(offsets), cupy.asarray(mult),
            len(groups), int(offsets[-1]))


def _hyper(dev):
    return (dev["t"], dev["lr_table"], np.int32(dev["lr_table"].size), np.int64(dev["t_base"]))


def _multi(name, table, dtype, dev, extra):
    ptrs, offsets, mult, P, total = table
    _launch(name, total, (ptrs, offsets, mult, np.int32(P)) + _hyper(dev) + extra, dtype)


def lookahead(table, dtype, rate):
    """Lookahead's sync on every (w, slow) pair of `table` (param_table) in one launch."""
    ptrs, offsets, _, P, total = table
    _launch("lookahead", total, (ptrs, offsets, np.int32(P), np.float64(rate)), dtype)


def adam_device(table, dtype, dev, beta_1, beta_2, epsilon, weight_decay=0.0):
    """Adam on every parameter of `table` (groups w, g, m, v) in one launch."""
    _multi("adam", table, dtype, dev, (np.float64(beta_1), np.float64(beta_2), np.float64(epsilon),
                                       np.float64(weight_decay)))


def rmsprop_device(table, dtype, dev, rho, epsilon, weight_decay=0.0):
    """RMSprop on every parameter of `table` (groups w, g, v) in one launch."""
    _multi("rmsprop", table, dtype, dev, (np.float64(rho), np.float64(epsilon), np.float64(weight_decay)))


def sgd_device(table, dtype, dev, momentum, nesterov, weight_decay=0.0):
    """SGD (momentum slot or None) on every parameter of `table` (groups w, g, m) in one launch."""
    _multi("sgd", table, dtype, dev, (np.float64(momentum), np.int32(nesterov), np.float64(weight_decay)))


# Host-number versions (the same signatures as cpu.py): what an optimizer's host path calls (EMA,
# amsgrad, centered RMSprop...). They run the plain CuPy twins: the graphed path uses the kernels above.
def adam_update(w, g, m, v, alpha, beta_1, beta_2, epsilon):
    return reference.adam_update(w, g, m, v, alpha, beta_1, beta_2, epsilon)


def sgd_momentum_update(w, g, m, lr, momentum, nesterov):
    return reference.sgd_momentum_update(w, g, m, lr, momentum, nesterov)


def rmsprop_update(w, g, v, lr, rho, epsilon):
    return reference.rmsprop_update(w, g, v, lr, rho, epsilon)


# An Activation layer's elementwise pass: CuPy's own elementwise kernels (the plain twins).
activation_forward, activation_backward = reference.activation_forward, reference.activation_backward


# The convolution as one whole-batch im2col + GEMM (the layer's own path on the GPU; the CPU's
# row-block kernels have no GPU twin): the plain CuPy version, for the same signature everywhere.
conv2d_forward, conv2d_backward = reference.conv2d_forward, reference.conv2d_backward


# ---- batches ----------------------------------------------------------------------------------------
def gather_rows(x, order, cursor, out, scale=1.0):
    """out[i] = scale * x[order[cursor[0] + i]] for i < len(out) (cursor None: 0), cast to out's type."""
    rows = out.shape[0]
    row_size = int(np.prod(out.shape[1:])) if out.ndim > 1 else 1
    _launch("gather_rows", rows * row_size, (x, order, _NULL if cursor is None else cursor, out, np.int32(rows), np.int64(row_size),
                                             np.float64(scale)), out.dtype, np.int32, x.dtype)
    return out


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


def accumulate_stats(stats, loss, correct, n):
    """stats[0] += loss * n; stats[1] += correct; stats[2] = loss (device scalars in, no sync)."""
    import cupy
    _kernel("accumulate_stats", loss.dtype)((1,), (1,), (stats, loss, cupy.asarray(correct, dtype=cupy.int64),
                                                          np.int32(n)))
