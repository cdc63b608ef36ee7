"""Optimizer updates on the device: Adam, RMSprop, SGD (momentum, Nesterov) and Lookahead's sync.

The graphed training step updates EVERY parameter in one launch ("multi-tensor"): param_table
builds, once, device tables of the parameters' pointers (w, g, slots...), their flat offsets and
their learning-rate and weight-decay factors. The step count and the learning rate are read from
device memory (dev["t"], dev["lr_table"]), never passed as host numbers, so a captured CUDA graph
replays the schedule. adam_update & co. are the per-array host-number versions (cpu.py's
signatures), run as the plain CuPy twins; Adadelta, Adagrad and Nadam have only those (no
multi-tensor kernel: their optimizers run eagerly on the GPU).
"""
import numpy as np

from minicnn.kernels import reference
from minicnn.kernels.gpu._compile import add_source, _launch

SOURCE = r"""
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
add_source(False, 10, SOURCE)


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
# The per-variable rules (eager steps, and the configurations without a multi-tensor kernel): CuPy's
# elementwise operations on the readable twins.
adam_update, sgd_update, rmsprop_update = reference.adam_update, reference.sgd_update, reference.rmsprop_update
adadelta_update, adagrad_update, nadam_update = (reference.adadelta_update, reference.adagrad_update,
                                               reference.nadam_update)     # no multi-tensor kernel: eager
