"""Keras's ImageDataGenerator: random affine transforms and flips of image batches, then scaling.

    gen = ImageDataGenerator(rotation_range=15, width_shift_range=0.1, height_shift_range=0.1,
                             horizontal_flip=True, rescale=1/255)
    gen.fit(x_train)                                 # only for featurewise_center / _std_normalization
    model.fit(gen.flow(x_train, y_train, batch_size=32), epochs=10)

Each image gets Keras's random parameters: rotation theta ~ U(-r, r) degrees; shifts tx (from
height_shift_range, times the height) and ty (width_shift_range, times the width) when the range
is < 1, else pixels (an int range picks a whole number of pixels); shear ~ U(-s, s) degrees;
zooms zx, zy ~ U(1 - z, 1 + z); flips with probability 1/2. Keras's matrix then moves the image
by tx along the columns and by ty along the rows (its x/y swap for NHWC); minicnn keeps that, so
the same parameters give Keras's images. The transform is Keras's matrix (rotation, then shift, shear and zoom, about the
image centre): output pixel (i, j) reads input position M (i, j) + offset, bilinearly
interpolated (kernels.resample, the sampler the augmentation layers use); outside the image
fill_mode decides as scipy.ndimage does for Keras (nearest: the edge pixel; reflect: mirrored
about the edge, d c b a | a b c d | d c b a; wrap: the position taken modulo size - 1, scipy's
rule; constant: cval). Flips follow the
transform; then standardize: preprocessing_function, rescale, samplewise and featurewise
centring / scaling (x -= mean; x /= std + 1e-6), in Keras's order.

What differs from Keras: the random numbers (each batch draws from its own stream keyed by
(seed, epoch, batch), so the same seed gives the same images whatever is read in between), and
a whole batch is transformed at once (vectorised), not image by image.
"""
import math

import numpy as np

from minicnn import backend, kernels
from minicnn.layers.base import is_int, is_real
from minicnn.training import data

_FILL_MODES = ("nearest", "reflect", "wrap", "constant")


def _range(value, what):
    if not is_real(value) or value < 0:
        raise ValueError(f"ImageDataGenerator {what} must be a number >= 0, got {value!r}")
    return value


class ImageDataGenerator:
    """Keras 2's ImageDataGenerator (see the module docstring). It takes every argument of Keras 2's;
    zca_whitening, brightness_range and channel_shift_range are not implemented and are accepted
    only at the values that change nothing (a ValueError naming them otherwise)."""

    def __init__(self, featurewise_center=False, samplewise_center=False, featurewise_std_normalization=False,
                 samplewise_std_normalization=False, zca_whitening=False, zca_epsilon=1e-06, rotation_range=0,
                 width_shift_range=0.0, height_shift_range=0.0, brightness_range=None, shear_range=0.0,
                 zoom_range=0.0, channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None, data_format=None,
                 validation_split=0.0, interpolation_order=1, dtype=None):
        # Keras 2's arguments, in its order; those minicnn does not implement are taken at the values
        # that leave the images unchanged (zca_epsilon matters only with zca_whitening)
        unsupported = {"zca_whitening": zca_whitening, "brightness_range": brightness_range,
                       "channel_shift_range": channel_shift_range}
        for name, value in unsupported.items():
            if value is not None and value is not False and (not is_real(value) or value != 0):
                raise ValueError(f"ImageDataGenerator({name}={value!r}) is not implemented in minicnn (only its "
                                 f"default, which changes nothing, is accepted); the transforms are rotation, "
                                 "shifts, shear, zoom, flips and the (feature/sample-wise) scaling")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"minicnn images are NHWC: data_format must be 'channels_last', got {data_format!r}")
        if fill_mode not in _FILL_MODES:
            raise ValueError(f"fill_mode must be one of {_FILL_MODES}, got {fill_mode!r}")
        if interpolation_order != 1:
            raise ValueError("minicnn interpolates bilinearly (interpolation_order=1) only")
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        self.featurewise_center, self.samplewise_center = bool(featurewise_center), bool(samplewise_center)
        self.featurewise_std_normalization = bool(featurewise_std_normalization)
        self.samplewise_std_normalization = bool(samplewise_std_normalization)
        self.rotation_range = _range(rotation_range, "rotation_range")
        self.width_shift_range = _range(width_shift_range, "width_shift_range")
        self.height_shift_range = _range(height_shift_range, "height_shift_range")
        self.shear_range = _range(shear_range, "shear_range")
        if is_real(zoom_range):
            zoom_range = (1 - _range(zoom_range, "zoom_range"), 1 + zoom_range)
        if not (isinstance(zoom_range, (tuple, list)) and len(zoom_range) == 2 and 0 < zoom_range[0] <= zoom_range[1]):
            raise ValueError(f"zoom_range must be a number or a pair (low, high) with 0 < low <= high, got {zoom_range!r}")
        self.zoom_range = (float(zoom_range[0]), float(zoom_range[1]))
        self.fill_mode, self.cval = fill_mode, float(cval)
        self.horizontal_flip, self.vertical_flip = bool(horizontal_flip), bool(vertical_flip)
        self.rescale, self.preprocessing_function = rescale, preprocessing_function
        self.validation_split = float(validation_split)
        self.zca_epsilon = zca_epsilon
        self.dtype = np.dtype(dtype or "float32")
        self.mean = self.std = None

    # ---- statistics -------------------------------------------------------------------------------
    def fit(self, x, augment=False, rounds=1, seed=None):
        """The per-channel mean and std of x (after rescale) for featurewise_center / _std_normalization."""
        if augment:
            raise ValueError("ImageDataGenerator.fit(augment=True) is not implemented; fit on the images themselves")
        x = np.array(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(f"ImageDataGenerator.fit expects images (N, H, W, C), got shape {x.shape}")
        if self.rescale:
            x *= self.rescale
        if self.featurewise_center:
            self.mean = x.mean(axis=(0, 1, 2)).reshape(1, 1, -1)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = x.std(axis=(0, 1, 2)).reshape(1, 1, -1)

    # ---- one batch --------------------------------------------------------------------------------
    def random_parameters(self, n, shape, rng):
        """Keras's transform parameters for n images of shape (H, W, C), drawn from rng: a dict of
        arrays (n,) theta, tx, ty, shear, zx, zy, flip_horizontal, flip_vertical."""
        H, W = shape[0], shape[1]

        def shift(r, size):
            if not r:
                return np.zeros(n)
            if is_int(r) and r >= 1:                       # whole pixels, as Keras's np.random.choice
                return rng.integers(0, r, n) * rng.choice([-1, 1], n)
            s = rng.uniform(-r, r, n)
            return s * size if r < 1 else s
        zx, zy = ((np.ones(n), np.ones(n)) if self.zoom_range == (1.0, 1.0)
                  else rng.uniform(self.zoom_range[0], self.zoom_range[1], (2, n)))
        return {"theta": rng.uniform(-self.rotation_range, self.rotation_range, n) if self.rotation_range else np.zeros(n),
                "tx": shift(self.height_shift_range, H), "ty": shift(self.width_shift_range, W),
                "shear": rng.uniform(-self.shear_range, self.shear_range, n) if self.shear_range else np.zeros(n),
                "zx": zx, "zy": zy,
                "flip_horizontal": (rng.random(n) < 0.5) & self.horizontal_flip,
                "flip_vertical": (rng.random(n) < 0.5) & self.vertical_flip}

    def apply_transform(self, x, params):
        """The transforms of params (random_parameters) applied to images x (n, H, W, C), all at once
        (a new array: x is left as it is)."""
        x = np.array(x, dtype=self.dtype)
        n, H, W, C = x.shape
        matrices = transform_matrices(params, H, W)
        if not np.allclose(matrices, np.eye(3)):
            x = affine_sample(x, matrices, self.fill_mode, self.cval).astype(self.dtype, copy=False)
        flips = np.asarray(params["flip_horizontal"], bool)
        x[flips] = x[flips, :, ::-1]
        flips = np.asarray(params["flip_vertical"], bool)
        x[flips] = x[flips, ::-1]
        return x

    def standardize(self, x):
        """preprocessing_function, rescale, samplewise then featurewise centring and scaling (Keras's order)."""
        if self.preprocessing_function:                  # one image at a time, as Keras calls it
            x = np.stack([np.asarray(self.preprocessing_function(image), dtype=self.dtype) for image in x])
        if self.rescale:
            x = x * self.dtype.type(self.rescale)
        if self.samplewise_center:
            x = x - x.mean(axis=(1, 2, 3), keepdims=True)
        if self.samplewise_std_normalization:
            x = x / (x.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
        for wanted, stat, what in ((self.featurewise_center, self.mean, "featurewise_center"),
                                   (self.featurewise_std_normalization, self.std, "featurewise_std_normalization")):
            if wanted and stat is None:
                raise ValueError(f"ImageDataGenerator({what}=True) needs its statistics: call gen.fit(x_train) first")
        if self.featurewise_center:
            x = x - self.mean
        if self.featurewise_std_normalization:
            x = x / (self.std + 1e-6)
        return x.astype(self.dtype, copy=False)

    def flow(self, x, y=None, batch_size=32, shuffle=True, seed=None, subset=None, sample_weight=None, **kwargs):
        """Batches (x, y) (or x alone) of transformed images: a Sequence for fit/evaluate/predict."""
        if kwargs:
            raise TypeError(f"flow() got unexpected argument(s) {sorted(kwargs)} (saving augmented images "
                            "to a folder is not implemented)")
        if sample_weight is not None:
            raise ValueError("flow(sample_weight=...): minicnn weighs every sample the same")
        return ImageBatches(self, x, y, batch_size, shuffle, seed, subset)


def transform_matrices(params, H, W):
    """Keras's 3x3 matrices (n, 3, 3), in (row, column) order: rotation @ shift @ shear @ zoom,
    about the centre (H/2 - 1/2, W/2 - 1/2); output (i, j) reads input M (i, j, 1)."""
    theta, shear = np.deg2rad(params["theta"]), np.deg2rad(params["shear"])
    n = len(theta)
    rotation, shift, shear_m, zoom = (np.tile(np.eye(3), (n, 1, 1)) for _ in range(4))
    rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = (np.cos(theta), -np.sin(theta),
                                                                                   np.sin(theta), np.cos(theta))
    shift[:, 0, 2], shift[:, 1, 2] = params["tx"], params["ty"]
    shear_m[:, 0, 1], shear_m[:, 1, 1] = -np.sin(shear), np.cos(shear)
    zoom[:, 0, 0], zoom[:, 1, 1] = params["zx"], params["zy"]
    M = rotation @ shift @ shear_m @ zoom
    centre = np.array([[1, 0, H / 2 - 0.5], [0, 1, W / 2 - 0.5], [0, 0, 1]])
    uncentre = np.array([[1, 0, -(H / 2 - 0.5)], [0, 1, -(W / 2 - 0.5)], [0, 0, 1]])
    M = centre @ M @ uncentre
    # Keras builds M for (x, y) and swaps the two axes of an image with columns after rows: M' = P M P
    return M[:, [1, 0, 2]][:, :, [1, 0, 2]]


def affine_sample(x, matrices, mode="nearest", cval=0.0):
    """out[b, i, j] = x[b] read bilinearly at M_b (i, j, 1) (matrices (n, 3, 3)), x (n, H, W, C), with
    scipy's fill modes (Keras 2's). nearest and reflect are the shared sampler's (kernels.resample,
    which the augmentation layers use too); scipy's other two differ from Keras 3's: wrap takes a
    position outside [0, size - 1] modulo size - 1 first, and constant gives cval wherever the
    position lies outside [0, size - 1] (no blending with the edge pixels)."""
    xp = backend.xp
    n, H, W, C = x.shape
    x = backend.to_device(x)
    rows, cols = kernels.affine_positions(backend.to_device(matrices), H, W)
    outside = (rows < 0) | (rows > H - 1) | (cols < 0) | (cols > W - 1)
    if mode == "wrap":
        rows = xp.where((rows < 0) | (rows > H - 1), xp.mod(rows, max(H - 1, 1)), rows)
        cols = xp.where((cols < 0) | (cols > W - 1), xp.mod(cols, max(W - 1, 1)), cols)
    out = kernels.resample(x, rows, cols, "reflect" if mode == "reflect" else "nearest", 0.0, "bilinear")
    if mode == "constant":
        out = xp.where(outside[..., None], xp.asarray(cval, dtype=out.dtype), out)
    return backend.to_host(out)


class ImageBatches:
    """ImageDataGenerator.flow's batches: a Keras Sequence (len, [i], on_epoch_end) and an endless
    iterator. The epoch's order is a permutation keyed by (seed, epoch); batch i of an epoch draws
    its transforms from the stream (seed, epoch, i)."""

    def __init__(self, generator, x, y, batch_size, shuffle, seed, subset):
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"flow expects images (N, H, W, C), got shape {x.shape}")
        if y is not None and len(y) != len(x):
            raise ValueError(f"flow: x has {len(x)} images but y has {len(y)} labels")
        split = generator.validation_split
        if subset not in (None, "training", "validation"):
            raise ValueError(f"subset must be 'training', 'validation' or None, got {subset!r}")
        if subset is not None:
            if not split:
                raise ValueError("flow(subset=...) needs ImageDataGenerator(validation_split=...)")
            cut = int(math.ceil(len(x) * split))                # Keras: the first fraction validates
            part = slice(0, cut) if subset == "validation" else slice(cut, None)
            x, y = x[part], None if y is None else np.asarray(y)[part]
        self.generator, self.x, self.y = generator, x, None if y is None else np.asarray(y)
        self.batch_size = data.check_batch_size(batch_size)
        self.shuffle, self.seed = bool(shuffle), 0 if seed is None else int(seed)
        self.epoch, self._next_index = 0, 0
        self._order()

    def _order(self):
        self.index = (np.random.default_rng((self.seed, self.epoch)).permutation(len(self.x)) if self.shuffle
                      else np.arange(len(self.x)))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} of {len(self)}")
        idx = self.index[i * self.batch_size:(i + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, self.epoch, i))
        params = self.generator.random_parameters(len(idx), self.x.shape[1:], rng)
        xb = self.generator.standardize(self.generator.apply_transform(self.x[idx], params))
        return xb if self.y is None else (xb, self.y[idx])

    def on_epoch_end(self):
        self.epoch += 1
        self._order()

    def __iter__(self):
        return self

    def __next__(self):
        batch = self[self._next_index]
        self._next_index += 1
        if self._next_index == len(self):
            self._next_index = 0
            self.on_epoch_end()
        return batch
