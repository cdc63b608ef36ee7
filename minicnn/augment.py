"""Data augmentation and test-time augmentation for NHWC image batches (NumPy or CuPy arrays).

    xb = augment.flip_translate(xb, pad=2, seed=s, counter=k)      # training batch k
    probs = augment.predict_tta(model, x_test)                     # flips + 1-pixel shifts, averaged

Randomness is keyed, as everywhere in minicnn: the k-th batch of seed s always gets the same flips
and shifts (SplitMix64, the stream Dropout uses), on every backend.
    flip:       image n is mirrored left-right when u_n < 1/2
    translate:  the image is reflect-padded by `pad` pixels and a window of the original size is cut
                at offset (dy, dx), dy, dx uniform in {0, ..., 2 pad}: a shift of up to pad pixels
                with mirrored borders (the crop that fast CIFAR-10 recipes use)
Alternating flips (each image flipped in every other epoch, starting from a random half) are
`alternating_flips(n, epoch, seed)`: over two epochs every image is seen both ways.

Whole-epoch augmentation for fit (the training set is re-drawn once per epoch, on the device
where the data live: on the GPU it never leaves it, and CUDA-graph steps are unaffected):

    model.fit(x, y, augment=augment.FlipTranslate(pad=2, flips="alternating"))
"""
import numbers

import numpy as np

from minicnn import activations, backend, kernels
from minicnn.kernels.reference import uniforms


def flip(x, which=None):
    """Mirror images left-right: all of them, or those where the boolean array `which` (N,) is True."""
    xp = backend.xp
    mirrored = x[:, :, ::-1, :]
    if which is None:
        return mirrored.copy()
    return xp.where(which[:, None, None, None], mirrored, x)


def shift(x, dy, dx):
    """Shift every image by (dy, dx) pixels (positive: down/right), borders mirrored (reflect)."""
    xp = backend.xp
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x.copy()
    padded = xp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    H, W = x.shape[1:3]
    return padded[:, p - dy:p - dy + H, p - dx:p - dx + W, :].copy()


def flip_translate(x, pad=2, seed=0, counter=0, flips=True):
    """A randomly flipped and translated copy of the batch x (N, H, W, C) (see the module docstring)."""
    N = len(x)
    u = uniforms(3 * N, seed, counter)
    return _flip_and_crop(x, u[:N] < 0.5 if flips else None, *_offsets(u[N:], N, pad), pad)


def _offsets(u, n, pad):
    """Crop offsets dy, dx in {0, ..., 2 pad} from 2n uniforms."""
    xp = backend.xp
    return (u[:n] * (2 * pad + 1)).astype(xp.int64), (u[n:2 * n] * (2 * pad + 1)).astype(xp.int64)


def _flip_and_crop(x, which, dy, dx, pad):
    """x mirrored where `which` (None: nowhere), then image n cut at (dy[n], dx[n]) out of its
    reflect-padded copy: kernels.flip_crop (Numba on the CPU, one CUDA kernel on the GPU)."""
    if not pad and which is None:
        return x.copy()
    return kernels.flip_crop(x, which, dy, dx, pad)


class FlipTranslate:
    """Epoch-level augmentation for ``fit(augment=...)``: called once per epoch with the whole
    training array, it returns a flipped and translated copy (same shape and dtype).

    pad:    translate by up to `pad` pixels each way, borders mirrored (0: no translation)
    flips:  "random" (each image mirrored with probability 1/2, redrawn every epoch),
            "alternating" (a random half in epoch 0, then every image flips each epoch), or None
    seed:   the key of the random stream (epoch e of seed s is always the same augmentation)
    chunk:  images processed at a time (bounds the temporary memory: ~chunk images padded)
    """
    def __init__(self, pad=2, flips="random", seed=0, chunk=10000):
        if isinstance(pad, bool) or not isinstance(pad, numbers.Integral) or pad < 0:
            raise ValueError(f"pad must be an int >= 0, got {pad!r}")
        if flips not in ("random", "alternating", None):
            raise ValueError(f"flips must be 'random', 'alternating' or None, got {flips!r}")
        if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1:
            raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
        self.pad, self.flips, self.seed, self.chunk = int(pad), flips, int(seed), int(chunk)

    def __call__(self, x, epoch):
        xp = backend.xp
        if getattr(x, "ndim", 0) != 4:
            raise ValueError(f"FlipTranslate expects images (N, H, W, C), got shape {getattr(x, 'shape', None)}")
        N = len(x)
        if min(x.shape[1:3]) <= self.pad:
            raise ValueError(f"FlipTranslate(pad={self.pad}) needs images larger than the padding, got {x.shape[1:3]}")
        u = uniforms(3 * N, self.seed, 0x5EED0000 + int(epoch))
        which = {"random": lambda: u[:N] < 0.5, "alternating": lambda: alternating_flips(N, epoch, self.seed),
                 None: lambda: None}[self.flips]()
        dy, dx = _offsets(u[N:], N, self.pad)
        out = xp.empty_like(x)
        for start in range(0, N, self.chunk):
            part = slice(start, start + self.chunk)
            out[part] = _flip_and_crop(x[part], None if which is None else which[part], dy[part], dx[part], self.pad)
        return out

    def __repr__(self):
        return f"FlipTranslate(pad={self.pad}, flips={self.flips!r}, seed={self.seed})"


def alternating_flips(n, epoch, seed=0):
    """(n,) booleans: which images to mirror in `epoch`. Epoch 0 draws a random half; every later
    epoch flips exactly the other images of the epoch before (so each image alternates)."""
    first = uniforms(n, seed, 0x7F1F) < 0.5
    return first if epoch % 2 == 0 else ~first


def predict_tta(model, x, batch_size=256, flips=True, translate=True, average="probabilities"):
    """Average of the model's outputs over mirrored and 1-pixel-shifted copies of x: weight 1/2 on
    the unshifted images, 1/4 on each of the shifts (-1, -1) and (+1, +1); each with its mirror
    when flips=True. Returns a NumPy array like model.predict.

    average="logits" (airbench's test-time augmentation) averages the softmax's inputs instead:
    for a model ending in softmax, log p = z - logsumexp(z), and the per-image logsumexp term does
    not depend on the class, so softmax(weighted mean of log p) = softmax(weighted mean of z)."""
    if average not in ("probabilities", "logits"):
        raise ValueError(f"predict_tta average must be 'probabilities' or 'logits', got {average!r}")

    def outputs(images):
        p = model.predict(images, batch_size=batch_size)
        if average == "probabilities":
            return p
        if p.ndim != 2 or p.min() < 0 or not np.allclose(p.sum(axis=1), 1, atol=1e-3):
            raise ValueError("predict_tta(average='logits') needs a model whose outputs are softmax probabilities "
                             f"(rows summing to 1), got outputs of shape {p.shape} with row sums "
                             f"{p.sum(axis=-1).ravel()[:3]}...")
        return np.log(np.maximum(p, np.finfo(p.dtype).tiny))

    def views(images):
        outs = [outputs(images)]
        if flips:
            outs.append(outputs(flip(images)))
        return sum(outs) / len(outs)
    xd = backend.to_device(np.asarray(x) if not hasattr(x, "shape") else x)
    result = views(xd)
    if translate:
        result = 0.5 * result + 0.25 * views(shift(xd, -1, -1)) + 0.25 * views(shift(xd, 1, 1))
    if average == "logits":                      # the model's own softmax, on the mean log-probabilities
        result = backend.to_host(activations.get("softmax").forward(backend.to_device(result)))
    return result
