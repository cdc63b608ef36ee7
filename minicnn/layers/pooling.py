"""Max and average pooling over KH x KW windows (NHWC), with Keras's padding rules.

Padded cells never count: they act as -inf for max pooling and are left out of the divisor for
average pooling (TensorFlow's 'same' semantics).
"""
from minicnn import backend, kernels
from minicnn.layers.base import Layer, as_pair, check_padding, window_geometry


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"minicnn is NHWC only: data_format must be 'channels_last', got {data_format!r}")
        self.pool_size = as_pair(pool_size, f"{type(self).__name__} pool_size")
        self.strides = self.pool_size if strides is None else as_pair(strides, f"{type(self).__name__} strides")
        self.padding = check_padding(padding)

    def _geometry(self, input_shape):
        """(OH, OW, pt, pl) for an input (H, W, C): TensorFlow's rule (layers/base.py)."""
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects input of shape (H, W, C), "
                             f"got {tuple(input_shape)}")
        (PH, PW), (sh, sw) = self.pool_size, self.strides
        OH, pt = window_geometry(input_shape[0], PH, sh, self.padding)
        OW, pl = window_geometry(input_shape[1], PW, sw, self.padding)
        if OH < 1 or OW < 1:
            raise ValueError(f"{type(self).__name__} {self.name!r}: pool {self.pool_size} is larger than "
                             f"its {self.padding}-padded input {tuple(input_shape[:2])}")
        return OH, OW, pt, pl

    def compute_output_shape(self, input_shape):
        OH, OW, _, _ = self._geometry(input_shape)
        return OH, OW, input_shape[2]

    def build(self, input_shape):
        super().build(input_shape)
        self.geometry = self._geometry(input_shape)      # what forward uses: fixed at build

    def _args(self):
        (PH, PW), (sh, sw) = self.pool_size, self.strides
        return PH, PW, sh, sw, self.geometry[2], self.geometry[3]

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    """y[n,oh,ow,c] = max over the window of x;  dx: dout goes to the one cell that won.

    Ties send the whole gradient to the first maximum in row-major window order (TF/JAX rule).
    x (N, H, W, C) -> y (N, OH, OW, C); valid: OH = floor((H - PH)/sh) + 1; same: OH = ceil(H/sh).
    """

    @property
    def tiles_its_input(self):
        """Windows side by side, none hanging over an edge: a relu Conv2D before this layer may pool
        its output itself (base.fusion_plan)."""
        return tuple(self.strides) == tuple(self.pool_size) and self.padding == "valid"

    def forward(self, x, training=False):
        OH, OW = self.output_shape[:2]
        y, arg = kernels.maxpool_forward(x, *self._args(), OH, OW)
        self.cache = (x.shape, arg)
        return y

    def backward(self, dout):
        x_shape, arg = self.cache
        return kernels.maxpool_backward(dout, arg, x_shape, *self._args())


class AveragePooling2D(_Pooling2D):
    """y[n,oh,ow,c] = mean of the real cells of the window;  dx[cell] = sum of dout / count.

    Shapes as MaxPooling2D. Under 'same' the divisor counts only real (non-padding) cells.
    """

    def forward(self, x, training=False):
        OH, OW = self.output_shape[:2]
        self.cache = x.shape
        return kernels.avgpool_forward(x, *self._args(), OH, OW)

    def backward(self, dout):
        x_shape = self.cache
        return kernels.avgpool_backward(dout, x_shape, *self._args())


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class _GlobalPooling2D(Layer):
    """What global average and max pooling share: arguments, output shape (N, C) or (N, 1, 1, C)."""

    def __init__(self, keepdims=False, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"minicnn is NHWC only: data_format must be 'channels_last', got {data_format!r}")
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects input of shape (H, W, C), "
                             f"got {tuple(input_shape)}")
        return (1, 1, input_shape[2]) if self.keepdims else (input_shape[2],)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """y[n, c] = mean over all H x W positions of x[n, :, :, c];  dx = dout / (H*W) at every position.

    x (N, H, W, C) -> y (N, C) (keepdims=True: (N, 1, 1, C)). Replaces Flatten before a classifier
    in all-convolutional networks.
    """

    def forward(self, x, training=False):
        self.cache = x.shape
        return x.mean(axis=(1, 2), keepdims=self.keepdims)

    def backward(self, dout):
        N, H, W, C = self.cache
        share = dout.reshape(N, 1, 1, C) / (H * W)
        return backend.xp.broadcast_to(share, self.cache).copy()


class GlobalMaxPooling2D(_GlobalPooling2D):
    """y[n, c] = max over all H x W positions of x[n, :, :, c];  dx: dout goes to the first position
    (row-major) that holds the maximum, as in MaxPooling2D.  x (N, H, W, C) -> y (N, C)."""

    def forward(self, x, training=False):
        N, H, W, C = x.shape
        flat = x.reshape(N, H * W, C)
        arg = flat.argmax(axis=1)                    # the first maximum: the tie rule of MaxPooling2D
        self.cache = (x.shape, arg)
        y = backend.xp.take_along_axis(flat, arg[:, None, :], axis=1)[:, 0, :]
        return y.reshape(N, 1, 1, C) if self.keepdims else y

    def backward(self, dout):
        (N, H, W, C), arg = self.cache
        winner = backend.xp.arange(H * W)[None, :, None] == arg[:, None, :]      # (N, H*W, C), one True per (n, c)
        return (winner * dout.reshape(N, 1, C)).astype(dout.dtype).reshape(N, H, W, C)


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
