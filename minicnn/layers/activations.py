"""Keras's activation layers: ReLU (with its options), LeakyReLU and Softmax.

    ReLU(max_value=None, negative_slope=0.0, threshold=0.0), Keras 3's definition:
        y = x                          for x > threshold          (clipped to max_value when given)
        y = negative_slope (x - threshold)   for x <= threshold
      (with threshold 0 and no max_value, values in [0, ...) pass, the plain relu; with max_value
      the output is also clipped below at 0, as Keras clips to [0, max_value])
        dx = dy * [threshold < x, and 0 <= x < max_value]  +  dy * negative_slope [x < threshold]
    LeakyReLU(negative_slope=0.3):  y = x (x > 0), negative_slope x (x <= 0);  dx = dy or negative_slope dy
    Softmax(axis=-1): the softmax activation as a layer (activations.py has its math); as a model's
    last layer with a cross-entropy loss, the loss owns it (Trainer.configure_head).
Shapes: any; x and y have the same shape.
"""
from minicnn import activations, backend, kernels
from minicnn.layers.base import Layer, is_real
from minicnn.layers.core import Activation


def _number(value, what, low=None):
    if not is_real(value) or (low is not None and value < low):
        raise ValueError(f"{what} must be a number{'' if low is None else f' >= {low}'}, got {value!r}")
    return float(value)


class ReLU(Layer):
    """max(x, 0), or Keras 3's variants (see the module docstring). The plain ReLU runs on the relu
    kernels; the variants on the formula above."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = None if max_value is None else _number(max_value, "ReLU max_value", 0)
        self.negative_slope = _number(negative_slope, "ReLU negative_slope", 0)
        self.threshold = _number(threshold, "ReLU threshold", 0)             # Keras refuses a negative one

    def _plain(self):
        return self.max_value is None and self.negative_slope == 0 and self.threshold == 0

    @property
    def absorbed_activation(self):
        """The relu a Conv2D or Dense before this layer may apply for it (base.fused_pairs), else None."""
        return activations.get("relu") if self._plain() else None

    def forward(self, x, training=False):
        if self._plain():
            y = kernels.activation_forward(x, "relu")
            self.cache = {"y": y}
            return y
        xp, t = backend.xp, x.dtype.type(self.threshold)
        above = x > t
        y = xp.where(above, x, x.dtype.type(0))
        if self.max_value is not None:
            y = xp.clip(y, 0, self.max_value)
        y = y + xp.where(above, x.dtype.type(0), x.dtype.type(self.negative_slope) * (x - t))
        self.cache = {"x": x}
        return y

    def backward(self, dout):
        if self._plain():
            return kernels.activation_backward(dout, self.cache["y"], "relu")
        x = self.cache["x"]
        above = x > x.dtype.type(self.threshold)
        passes = above & (x >= 0) if self.max_value is not None else above
        if self.max_value is not None:
            passes &= x < x.dtype.type(self.max_value)
        below = x < x.dtype.type(self.threshold)          # (at x = threshold both parts are flat, as in Keras)
        return dout * passes.astype(dout.dtype) + dout * (below * self.negative_slope).astype(dout.dtype)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class LeakyReLU(Layer):
    """y = x for x > 0, negative_slope * x otherwise (Keras 3's default slope 0.3; Keras 2 called
    it alpha). dx = dy where x > 0, negative_slope * dy elsewhere."""

    def __init__(self, negative_slope=0.3, alpha=None, **kwargs):
        super().__init__(**kwargs)
        if alpha is not None:                      # the Keras 2 spelling
            negative_slope = alpha
        self.negative_slope = _number(negative_slope, "LeakyReLU negative_slope", 0)

    def forward(self, x, training=False):
        positive = x > 0
        self.cache = {"positive": positive}
        return backend.xp.where(positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dout):
        return backend.xp.where(self.cache["positive"], dout, dout * dout.dtype.type(self.negative_slope))

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class Softmax(Activation):
    """y_k = e^x_k / sum_j e^x_j over the last axis (Keras's Softmax layer; axis=-1 only)."""

    def __init__(self, axis=-1, **kwargs):
        if axis not in (-1,):
            raise ValueError(f"Softmax supports axis=-1 (the channels, NHWC) only, got axis={axis!r}")
        kwargs.pop("activation", None)
        super().__init__("softmax", **kwargs)
        self.axis = -1

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "axis": self.axis}
