"""The fused softmax cross-entropy: loss, gradient and accuracy of one batch from the logits.

One block of threads: each thread takes rows of the batch (softmax, the loss against one-hot/soft
targets or class ids, with label smoothing, and dz), then the block adds the rows' losses and
correct counts in a fixed tree order into the running stats (device float64), with no host sync.
Losses without this kernel report through data.accumulate_stats.
"""
import numpy as np

from minicnn.kernels.gpu._compile import add_source, _kernel, _NULL

SOURCE = r"""
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
"""
add_source(False, 7, SOURCE)


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
    threads = 1                  # a power of two (the tree sum halves it); each thread loops over rows.
    while threads < min(B, 256):  # 256, not 1024: the kernel's double-precision registers exceed
        threads *= 2             # 64 per thread, which a 1024-thread block cannot have on sm_90
    _kernel("softmax_xent", z.dtype)((1,), (threads,), (z, _NULL if sparse else onehot,
                                                         labels if sparse else _NULL, dz, stats, np.int32(B), np.int32(K),
                                                         np.float64(label_smoothing)))
    return dz
