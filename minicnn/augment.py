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
"""
import numpy as np

from minicnn import backend
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
    xp = backend.xp
    N, H, W, _ = x.shape
    u = uniforms(3 * N, seed, counter)
    out = flip(x, u[:N] < 0.5) if flips else x
    if pad:
        dy = (u[N:2 * N] * (2 * pad + 1)).astype(xp.int64)
        dx = (u[2 * N:] * (2 * pad + 1)).astype(xp.int64)
        padded = xp.pad(out, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
        rows = dy[:, None] + xp.arange(H)[None, :]                    # (N, H) source rows per image
        cols = dx[:, None] + xp.arange(W)[None, :]                    # (N, W)
        out = padded[xp.arange(N)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out


def alternating_flips(n, epoch, seed=0):
    """(n,) booleans: which images to mirror in `epoch`. Epoch 0 draws a random half; every later
    epoch flips exactly the other images of the epoch before (so each image alternates)."""
    first = uniforms(n, seed, 0x7F1F) < 0.5
    return first if epoch % 2 == 0 else ~first


def predict_tta(model, x, batch_size=256, flips=True, translate=True):
    """Average of the model's outputs over mirrored and 1-pixel-shifted copies of x: weight 1/2 on
    the unshifted images, 1/4 on each of the shifts (-1, -1) and (+1, +1); each with its mirror
    when flips=True. Returns a NumPy array like model.predict."""
    def views(images):
        outs = [model.predict(images, batch_size=batch_size)]
        if flips:
            outs.append(model.predict(flip(images), batch_size=batch_size))
        return sum(outs) / len(outs)
    xd = backend.to_device(np.asarray(x) if not hasattr(x, "shape") else x)
    result = views(xd)
    if translate:
        result = 0.5 * result + 0.25 * views(shift(xd, -1, -1)) + 0.25 * views(shift(xd, 1, 1))
    return result
