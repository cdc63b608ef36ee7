"""Weight initializers with Keras's formulas (fans as in keras.initializers.compute_fans).

For a kernel of shape (..., fan_in_dim, fan_out_dim): receptive = prod(shape[:-2]),
fan_in = shape[-2] * receptive, fan_out = shape[-1] * receptive.
    glorot_uniform  U(-l, l), l = sqrt(6 / (fan_in + fan_out))          (Keras default)
    glorot_normal   truncated N(0, s), s = sqrt(2 / (fan_in + fan_out)) / .87962566
    he_uniform      U(-l, l), l = sqrt(6 / fan_in)
    he_normal       truncated N(0, s), s = sqrt(2 / fan_in) / .87962566
    lecun_uniform   U(-l, l), l = sqrt(3 / fan_in);  lecun_normal: s = sqrt(1 / fan_in) / .87962566
    zeros, ones, constant(value), random_normal(mean, stddev), random_uniform(minval, maxval)
    Dirac(base)     minicnn's own: conv filters that start as identity channels (fast recipes)
The draws come from a NumPy Generator (host side), then move to the backend; Keras's own random
streams cannot be reproduced, so parity tests copy weights instead of sharing a seed.
"""
import math

import numpy as np

from minicnn import backend

_TRUNC_STD = 0.87962566103423978   # std of a unit normal truncated to [-2, 2]


def compute_fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(rng, shape, std):
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():                      # redraw outside [-2, 2], as Keras's truncated normal
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * std


class Initializer:
    def __call__(self, shape, rng):
        """Return a host float64 array of the given shape."""
        raise NotImplementedError

    def get_config(self):
        return {}


class Zeros(Initializer):
    def __call__(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    def __call__(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


class VarianceScaling(Initializer):
    """scale / fan (fan_in, fan_out or their average); 'uniform' or 'truncated_normal'."""
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ("uniform", "truncated_normal"):
            raise ValueError(f"distribution must be 'uniform' or 'truncated_normal', got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        return _truncated_normal(rng, shape, math.sqrt(variance) / _TRUNC_STD)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


def GlorotUniform():
    return VarianceScaling(1.0, "fan_avg", "uniform")


def GlorotNormal():
    return VarianceScaling(1.0, "fan_avg", "truncated_normal")


def HeUniform():
    return VarianceScaling(2.0, "fan_in", "uniform")


def HeNormal():
    return VarianceScaling(2.0, "fan_in", "truncated_normal")


def LecunUniform():
    return VarianceScaling(1.0, "fan_in", "uniform")


def LecunNormal():
    return VarianceScaling(1.0, "fan_in", "truncated_normal")


class Dirac(Initializer):
    """Partial identity for a convolution kernel (kh, kw, C_in, F): filter f < min(C_in, F) has a
    single 1 at the kernel centre on input channel f (it copies its channel through); the other
    filters (and the rest of the first ones' taps: zeros) are drawn from `base`. A block starts
    close to the identity, which lets a deep stack train fast from the first step."""
    def __init__(self, base="glorot_uniform"):
        self.base = get(base) if not isinstance(base, dict) else deserialize(base)

    def __call__(self, shape, rng):
        if len(shape) != 4:
            raise ValueError(f"Dirac initializes Conv2D kernels (kh, kw, C_in, F), got shape {shape}")
        kernel = np.array(self.base(shape, rng), dtype=np.float64)
        kh, kw, c_in, filters = shape
        n = min(c_in, filters)
        kernel[:, :, :, :n] = 0.0
        kernel[(kh - 1) // 2, (kw - 1) // 2, np.arange(n), np.arange(n)] = 1.0
        return kernel

    def get_config(self):
        return {"base": serialize(self.base)}


_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal, "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
}


def get(identifier):
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown initializer {identifier!r}; expected one of {sorted(_BY_NAME)} "
                     "or an Initializer instance")


def serialize(init):
    """A JSON-able description: {'class_name', 'config'} (named schemes become VarianceScaling)."""
    return {"class_name": type(init).__name__, "config": init.get_config()}


def deserialize(spec):
    if isinstance(spec, str):
        return get(spec)
    classes = {c.__name__: c for c in (Zeros, Ones, Constant, RandomNormal, RandomUniform, VarianceScaling, Dirac)}
    if spec.get("class_name") not in classes:
        raise ValueError(f"unknown initializer in config: {spec!r}")
    return classes[spec["class_name"]](**spec.get("config", {}))


def make(init, shape, rng):
    """Draw an initial value and place it on the backend in floatx."""
    return backend.xp.asarray(np.asarray(init(tuple(shape), rng), dtype=backend.floatx()))


def _patch_statistics(images, size):
    """Mean (D,) and covariance (D, D) of every size x size window of images (N, H, W, C), each
    flattened in the (kh, kw, c) order of a Conv2D kernel (D = size*size*C). Computed where the
    images are (NumPy or CuPy, float64); returned as NumPy arrays."""
    xp = backend.xp
    x = xp.asarray(images, dtype=xp.float64)
    if x.ndim != 4 or min(x.shape[1:3]) < size:
        raise ValueError(f"patch_whitening needs images (N, H, W, C) of at least {size}x{size}, got {tuple(x.shape)}")
    N, H, W, C = x.shape
    windows = [x[:, i:H - size + 1 + i, j:W - size + 1 + j, :] for i in range(size) for j in range(size)]
    patches = xp.stack(windows, axis=3).reshape(-1, size * size * C)          # (kh, kw, c) order
    n = patches.shape[0]
    mean = patches.mean(axis=0)
    cov = (patches.T @ patches - n * xp.outer(mean, mean)) / (n - 1)
    return backend.to_host(mean), backend.to_host(cov)


def patch_whitening(images, size=2, eps=5e-4, center=False, standardize=False):
    """A fixed first-layer kernel that whitens size x size patches of `images` (N, H, W, C).

    The patches (every size x size window, flattened in the (kh, kw, c) order of a Conv2D kernel)
    have covariance S = V diag(lam) V^T. Filter k is V[:, k] / sqrt(lam_k + eps): convolving with it
    gives the patch's k-th principal component scaled to unit variance. The kernel holds those D =
    size*size*C filters and their negatives (2D filters: a ReLU-like activation after it keeps both
    signs), shape (size, size, C, 2D), for Conv2D(2D, size, padding='valid', trainable=False).
    center=True also returns the bias -mean_patch @ filters, which makes the outputs zero-mean.

    eps damps the directions of smallest variance, so its size is relative to the images' scale.
    standardize=True measures it as airbench does, on images whose channels are divided by their
    standard deviation: with s the (D,) channel deviations of the patch entries, the eigenvectors
    are those of S_n = diag(1/s) S diag(1/s) and the kernel diag(1/s) V_n / sqrt(lam_n + eps) still
    takes the raw images (so scaling the images by any factor gives the same outputs).
    """
    mean, cov = _patch_statistics(images, size)
    C = cov.shape[0] // (size * size)
    if standardize:                                       # one deviation per channel, over the window positions
        s = np.tile(np.sqrt(np.diag(cov).reshape(size * size, C).mean(axis=0)), size * size)
        if not np.all(s > 0):
            raise ValueError(f"patch_whitening(standardize=True) needs every channel to vary; channel deviations {s[:C]}")
    else:
        s = np.ones(cov.shape[0])
    lam, V = np.linalg.eigh(cov / np.outer(s, s))
    filters = V / np.sqrt(lam + eps) / s[:, None]         # column k: the k-th whitening filter
    kernel = np.concatenate([filters, -filters], axis=1)  # (D, 2D)
    dtype = backend.floatx()
    out = kernel.reshape(size, size, C, 2 * size * size * C).astype(dtype)
    return (out, (-mean @ kernel).astype(dtype)) if center else out
