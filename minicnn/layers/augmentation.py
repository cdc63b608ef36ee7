"""Keras 3's image augmentation layers: RandomFlip, RandomTranslation, RandomRotation, RandomZoom,
RandomCrop. x, y: (N, H, W, C) (RandomCrop's y: (N, height, width, C)).

They change images in training only; at inference (evaluate, predict, validation) each is the
identity, except RandomCrop, which keeps the centre. Randomness is keyed, as Dropout's: training
call k of a layer with seed s draws all its numbers at once, one or two per image, from the
counter-based stream (s, k) (kernels.reference.uniforms): the same seed gives the same images, bit
for bit, on every run and backend, and a saved model continues the sequence (k is saved with it).

Translation, rotation and zoom are affine maps, one 3x3 matrix M per image in (row, column) order,
written as the inverse mapping: output pixel (i, j) reads the input at (r, c, 1) = M (i, j, 1), so
every output pixel gets a value. (r, c) mostly falls between pixels; with r0 = floor(r), fr = r - r0
(c0, fc the same for columns), bilinear interpolation mixes the four pixels around it:
    y = (1-fr)(1-fc) x[r0, c0] + (1-fr) fc x[r0, c0+1] + fr (1-fc) x[r0+1, c0] + fr fc x[r0+1, c0+1]
and interpolation="nearest" takes the closest pixel. A pixel outside the image is read through
fill_mode: reflect (d c b a | a b c d | d c b a), wrap (a b c d | a b c d | a b c d), nearest
(a a a a | a b c d | d d d d) or constant (fill_value). kernels.resample does it for the batch
(Numba on the CPU).

Backward: y is linear in x, y = S x with S holding the weights above, so dx = S^T dy: each output
pixel hands w * dy back to every pixel it read (kernels.resample_backward, a scatter-add). A flip
is its own transpose (dx = the same flips of dy); a crop puts dy back in its window, zeros elsewhere.
The stream's counter is a host number (each call's key is made on the host), so on the GPU a model
with these layers trains with eager steps: a CUDA graph would replay one draw (graph_safe below).
"""
import numpy as np

from minicnn import backend, kernels
from minicnn.kernels.reference import FILL_MODES, uniforms
from minicnn.layers.base import Layer


def _number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def factor_range(value, layer, what, closed_low=True):
    """Keras's factor: a number f gives the range (-|f|, |f|), a pair (lower, upper) is sorted; each
    number in [-1, 1] ((-1, 1] when not closed_low: a zoom factor of -1 would shrink to nothing)."""
    pair = isinstance(value, (tuple, list))
    numbers = list(value) if pair else [value]
    if len(numbers) != (2 if pair else 1) or not all(
            _number(v) and (-1 <= v if closed_low else -1 < v) and v <= 1 for v in numbers):
        raise ValueError(f"{layer} {what} must be a number or a pair (lower, upper), each in "
                         f"{'[-1, 1]' if closed_low else '(-1, 1]'} (fractions), got {value!r}")
    if not pair:
        return -abs(float(value)), abs(float(value))
    return tuple(sorted(float(v) for v in numbers))


def _json(factor):
    """A factor as given, for the config (JSON: a pair becomes a list)."""
    if factor is None:
        return None
    return [float(v) for v in factor] if isinstance(factor, (tuple, list)) else float(factor)


class RandomLayer(Layer):
    """The base of the augmentation layers: keyed draws, training only, identity at inference.
    A subclass gives random_parameters(n, H, W) (a dict of (n,) arrays, Keras's units) and
    transform(x, params) (y, filling self.cache for backward)."""
    graph_safe = False          # keyed on the host: the GPU loop runs steps eagerly (training/graphed.py)
    preprocessing = True        # no weights, no dL/dx wanted: the layer after it skips its own (base.entry_count)

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{type(self).__name__}: minicnn images are NHWC, so data_format must be "
                             f"'channels_last', got {data_format!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{type(self).__name__} seed must be an int >= 0 or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self.draws = 0              # training calls so far: the stream's counter

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects images (H, W, C), "
                             f"got input shape {tuple(input_shape)}")
        super().build(input_shape)
        if self.seed is None:
            self.seed = int(backend.new_rng().integers(2**31))

    def uniforms(self, n):
        """n numbers uniform in [0, 1) from the stream (seed, draws), then draws += 1."""
        u = uniforms(n, self.seed, self.draws)
        self.draws += 1
        return u

    def forward(self, x, training=False):
        if not training:
            self.cache = None
            return x
        return self.transform(x, self.random_parameters(*x.shape[:3]))

    def backward(self, dout):
        if self.cache is None:                      # inference: the identity
            return dout
        return self.transform_backward(dout) if self.input_grad else None

    def extra_state(self):
        return {"draws": self.draws}

    def set_extra_state(self, state):
        self.draws = int(state.get("draws", 0))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomFlip(RandomLayer):
    """Mirrors each image with probability 1/2:  y[n] = flip(x[n]) where u_n < 1/2, else x[n].

    mode "horizontal": left-right, y[n, i, j] = x[n, i, W-1-j]; "vertical": top-bottom,
    y[n, i, j] = x[n, H-1-i, j]; "horizontal_and_vertical" (the default): both at once, from the
    same draw (a half-turn), as Keras 3 does. dx = the same flips of dout (a flip undoes itself).
    """
    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"RandomFlip mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def random_parameters(self, n, H, W):
        return {"flips": self.uniforms(n) < 0.5}

    def _flip(self, a, flips):
        mirrored = a[:, :, ::-1] if self.mode != "vertical" else a
        mirrored = mirrored[:, ::-1] if self.mode != "horizontal" else mirrored
        return backend.xp.where(flips[:, None, None, None], mirrored, a)

    def transform(self, x, params):
        self.cache = params["flips"]
        return self._flip(x, params["flips"])

    def transform_backward(self, dout):
        return self._flip(dout, self.cache)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class AffineLayer(RandomLayer):
    """The geometric layers: matrices(params, H, W) (n, 3, 3) map output pixels to input positions
    (see the module docstring), resampled with fill_mode and interpolation."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        name = type(self).__name__
        if fill_mode not in FILL_MODES:
            raise ValueError(f"{name} fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"{name} interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        if not _number(fill_value):
            raise ValueError(f"{name} fill_value must be a number, got {fill_value!r}")
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, float(fill_value)

    def transform(self, x, params):
        """y = x resampled at M (i, j, 1), M = self.matrices(params, H, W); x (N, H, W, C)."""
        H, W = x.shape[1:3]
        rows, cols = kernels.affine_positions(self.matrices(params, H, W), H, W)
        self.cache = (rows, cols, x.shape)
        return kernels.resample(x, rows, cols, self.fill_mode, self.fill_value, self.interpolation)

    def transform_backward(self, dout):
        rows, cols, x_shape = self.cache
        return kernels.resample_backward(dout, rows, cols, x_shape, self.fill_mode, self.interpolation)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value}


def _matrices(n, r_i, r_j, r_1, c_i, c_j, c_1):
    """n matrices (n, 3, 3) with rows (r_i, r_j, r_1), (c_i, c_j, c_1), (0, 0, 1), i.e. output pixel
    (i, j) reads r = r_i i + r_j j + r_1, c = c_i i + c_j j + c_1 (numbers or (n,) arrays)."""
    M = backend.xp.zeros((n, 3, 3))
    M[:, 0, 0], M[:, 0, 1], M[:, 0, 2], M[:, 1, 0], M[:, 1, 1], M[:, 1, 2] = r_i, r_j, r_1, c_i, c_j, c_1
    M[:, 2, 2] = 1
    return M


class RandomTranslation(AffineLayer):
    """Shifts each image by dy rows and dx columns (down and right when positive), fractions of its size:
        dy = U(height_factor) H,  dx = U(width_factor) W;   y[n, i, j] = x[n, i - dy, j - dx]
    M = [[1, 0, -dy], [0, 1, -dx], [0, 0, 1]] (shifts are rarely whole pixels: bilinear). A factor f
    is the range (-f, f); a pair (lower, upper) is used as it is; each in [-1, 1].
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_range = factor_range(height_factor, "RandomTranslation", "height_factor")
        self.width_range = factor_range(width_factor, "RandomTranslation", "width_factor")

    def random_parameters(self, n, H, W):
        """height_translate, width_translate (n,): the shifts in pixels (Keras's draw order)."""
        u = self.uniforms(2 * n)
        (hl, hu), (wl, wu) = self.height_range, self.width_range
        return {"height_translate": (hl + (hu - hl) * u[:n]) * H, "width_translate": (wl + (wu - wl) * u[n:]) * W}

    def matrices(self, params, H, W):
        dy, dx = params["height_translate"], params["width_translate"]
        return _matrices(len(dy), 1, 0, -dy, 0, 1, -dx)

    def get_config(self):
        return {**super().get_config(), "height_factor": _json(self.height_factor),
                "width_factor": _json(self.width_factor)}


class RandomRotation(AffineLayer):
    """Turns each image about its centre (cy, cx) = ((H-1)/2, (W-1)/2) by theta = U(factor) 360 degrees
    (counter-clockwise when positive). Output pixel (i, j) reads the input at
        r = cy + cos(theta) (i - cy) + sin(theta) (j - cx)
        c = cx - sin(theta) (i - cy) + cos(theta) (j - cx)
    A factor f is the range (-f, f) of fractions of a full turn; a pair (lower, upper) is used as it
    is; each in [-1, 1].
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.factor = factor_range(factor, "RandomRotation", "factor")

    def random_parameters(self, n, H, W):
        """angle (n,): degrees."""
        lower, upper = self.factor
        return {"angle": (lower + (upper - lower) * self.uniforms(n)) * 360.0}

    def matrices(self, params, H, W):
        xp = backend.xp
        theta = xp.deg2rad(xp.asarray(params["angle"], dtype=xp.float64))
        cos, sin = xp.cos(theta), xp.sin(theta)
        cy, cx = (H - 1) / 2, (W - 1) / 2
        return _matrices(len(theta), cos, sin, cy - cos * cy - sin * cx, -sin, cos, cx + sin * cy - cos * cx)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


class RandomZoom(AffineLayer):
    """Scales each image about its centre (cy, cx) = ((H-1)/2, (W-1)/2): output pixel (i, j) reads
        r = cy + zy (i - cy),  c = cx + zx (j - cx),   zy = 1 + U(height_factor), zx = 1 + U(width_factor)
    (zx = zy when width_factor is None). A positive factor reads a larger area: it zooms OUT; a
    negative one zooms in. A factor f is the range (-f, f); a pair (lower, upper) is used as it is;
    each in (-1, 1].
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_range = factor_range(height_factor, "RandomZoom", "height_factor", closed_low=False)
        self.width_range = (None if width_factor is None
                            else factor_range(width_factor, "RandomZoom", "width_factor", closed_low=False))

    def random_parameters(self, n, H, W):
        """height_zoom, width_zoom (n,): the scales zy, zx."""
        u = self.uniforms(n if self.width_range is None else 2 * n)
        lower, upper = self.height_range
        zy = 1 + lower + (upper - lower) * u[:n]
        if self.width_range is None:
            return {"height_zoom": zy, "width_zoom": zy}
        lower, upper = self.width_range
        return {"height_zoom": zy, "width_zoom": 1 + lower + (upper - lower) * u[n:]}

    def matrices(self, params, H, W):
        zy, zx = params["height_zoom"], params["width_zoom"]
        cy, cx = (H - 1) / 2, (W - 1) / 2
        return _matrices(len(zy), zy, 0, cy * (1 - zy), 0, zx, cx * (1 - zx))

    def get_config(self):
        return {**super().get_config(), "height_factor": _json(self.height_factor),
                "width_factor": _json(self.width_factor)}


class RandomCrop(RandomLayer):
    """Cuts a height x width window:  y = x[:, top:top + height, left:left + width].

    Training, on images larger than the window both ways: one random window for the whole batch,
    as Keras 3 draws it: top = floor(U (H - height + 1)), left = floor(U (W - width + 1)).
    Otherwise (inference, or a small image): the largest centred box with the window's aspect ratio,
        ch = min(H, floor(W height / width)), cw = min(W, floor(H width / height))   (at least 1)
        top = floor((H - ch) / 2), left = floor((W - cw) / 2)
    resized to height x width when it is not that size: bilinear, TensorFlow's half-pixel rule,
    r = (i + 1/2) ch / height - 1/2, clamped at the edges (keras.ops.image.resize(x, (height, width),
    crop_to_aspect_ratio=True), as Keras's docstring describes). dx = dy put back in the box (through
    the resize's transpose), zeros elsewhere.

    Keras 3.15 differs outside the random case: at inference its layer returns the input uncropped
    (while declaring the cropped shape: keras-team/keras#21868), and a small training image is cut
    height x width from the box's corner before the resize. minicnn does what the docstring says, so
    that a model's shapes hold in predict.
    """

    def __init__(self, height, width, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        for what, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"RandomCrop {what} must be an int >= 1, got {v!r}")
        self.height, self.width = int(height), int(width)

    def compute_output_shape(self, input_shape):
        return (self.height, self.width) + tuple(input_shape[2:])

    def box(self, H, W, training):
        """(top, left, rows, columns) of the part of the image kept (see the class docstring)."""
        h, w = self.height, self.width
        if training and H > h and W > w:
            u = backend.to_host(self.uniforms(2))
            return int(u[0] * (H - h + 1)), int(u[1] * (W - w + 1)), h, w
        ch, cw = max(min(H, int(W * h / w)), 1), max(min(W, int(H * w / h)), 1)
        return int((H - ch) / 2), int((W - cw) / 2), ch, cw

    def forward(self, x, training=False):
        top, left, ch, cw = self.box(x.shape[1], x.shape[2], training)
        cut = x[:, top:top + ch, left:left + cw]
        if (ch, cw) == (self.height, self.width):
            self.cache = (x.shape, top, left, None)
            return backend.xp.ascontiguousarray(cut)
        sh, sw = ch / self.height, cw / self.width                     # the resize: input pixels per output pixel
        M = _matrices(len(x), sh, 0, sh / 2 - 0.5, 0, sw, sw / 2 - 0.5)
        rows, cols = kernels.affine_positions(M, self.height, self.width)
        self.cache = (x.shape, top, left, (rows, cols, cut.shape))
        return kernels.resample(cut, rows, cols, "nearest", 0.0, "bilinear")

    def transform_backward(self, dout):
        x_shape, top, left, resized = self.cache
        if resized is not None:
            rows, cols, cut_shape = resized
            dout = kernels.resample_backward(dout, rows, cols, cut_shape, "nearest", "bilinear")
        dx = backend.xp.zeros(x_shape, dtype=dout.dtype)
        dx[:, top:top + dout.shape[1], left:left + dout.shape[2]] = dout
        return dx

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}

