"""Reshaping layers (Keras's family of that name): ZeroPadding2D."""
from minicnn import backend
from minicnn.layers.base import Layer, is_int

_PADDING_FORMS = ("an int, a tuple of 2 ints (height_pad, width_pad) or a tuple of 2 tuples "
                  "((top, bottom), (left, right)), each an int >= 0")


def padding_pairs(padding):
    """Keras's three ways to write ZeroPadding2D's padding -> ((top, bottom), (left, right)):

        1             -> ((1, 1), (1, 1))      the same on all four sides
        (1, 2)        -> ((1, 1), (2, 2))      (height, width): rows on top and bottom, columns left and right
        ((0, 1), (2, 3))                       (top, bottom), (left, right) as written
    Each entry may be an int or a pair (Keras reads them one by one); ints are Python or NumPy
    integers >= 0, not bools. A clear ValueError names what was expected and what came."""
    given = padding
    hint = " (Conv2D's padding='same' is another argument)" if isinstance(given, str) else ""
    if is_int(padding):
        padding = (padding, padding)
    if not isinstance(padding, (tuple, list)) or len(padding) != 2:
        raise ValueError(f"ZeroPadding2D padding must be {_PADDING_FORMS}; got {given!r}{hint}")
    pairs = []
    for axis in padding:
        if is_int(axis):
            axis = (axis, axis)
        if not isinstance(axis, (tuple, list)) or len(axis) != 2 or not all(is_int(p) for p in axis):
            raise ValueError(f"ZeroPadding2D padding must be {_PADDING_FORMS}; got {given!r}")
        if min(axis) < 0:
            raise ValueError(f"ZeroPadding2D padding must be >= 0 on every side, got {given!r}")
        pairs.append((int(axis[0]), int(axis[1])))
    return tuple(pairs)


class ZeroPadding2D(Layer):
    """Rows and columns of zeros around each image (no weights).

    y[n, top + h, left + w, c] = x[n, h, w, c], and y = 0 in the border;
    dx = dout[:, top:top + H, left:left + W, :]  (the border's gradients go nowhere: it is constant).
    x (N, H, W, C) -> y (N, top + H + bottom, left + W + right, C).

    padding: an int (all sides), (height_pad, width_pad) or ((top, bottom), (left, right)), as in
    Keras. ZeroPadding2D(1) then a 3x3 Conv2D(padding='valid', strides=1) is a 3x3 Conv2D(padding='same').
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"minicnn is NHWC only: data_format must be 'channels_last', got {data_format!r}")
        self.padding = padding_pairs(padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"ZeroPadding2D {self.name!r} expects input of shape (H, W, C), got {tuple(input_shape)}")
        (top, bottom), (left, right) = self.padding
        H, W, C = input_shape
        return top + H + bottom, left + W + right, C

    def forward(self, x, training=False):
        (top, bottom), (left, right) = self.padding
        N, H, W, C = x.shape
        y = backend.xp.zeros((N, top + H + bottom, left + W + right, C), dtype=x.dtype)
        y[:, top:top + H, left:left + W, :] = x
        self.cache = (H, W)
        return y

    def backward(self, dout):
        H, W = self.cache
        (top, _), (left, _) = self.padding
        return dout[:, top:top + H, left:left + W, :].copy()          # C-contiguous, and never dout itself

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding], "data_format": "channels_last"}
