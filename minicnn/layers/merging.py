"""Merge layers: where branches of a functional model meet. Each takes a list of inputs.

    Add()([x1, x2, ...])              y = x1 + x2 + ...            (same shapes)
    Concatenate(axis=-1)([x1, x2])    y = [x1 | x2] along axis     (same shapes but on that axis)

Their backward returns a list: one dL/dxi per input. Keras's function forms add([x1, x2]) and
concatenate([x1, x2], axis) make the layer and call it.
"""
from minicnn import backend
from minicnn.layers.base import Layer, is_int


class _Merge(Layer):
    """A layer over a list of at least two inputs (shapes without the batch axis)."""
    takes_list = True

    def build(self, input_shape):
        if not (isinstance(input_shape, (list, tuple)) and input_shape
                and all(isinstance(s, (list, tuple)) for s in input_shape)):
            raise ValueError(f"{type(self).__name__} {self.name!r} merges a list of inputs, e.g. "
                             f"{type(self).__name__}()([x1, x2]); got one input of shape {tuple(input_shape)}")
        if len(input_shape) < 2:
            raise ValueError(f"{type(self).__name__} {self.name!r} needs at least 2 inputs, got {len(input_shape)}")
        super().build(tuple(tuple(s) for s in input_shape))

    def __call__(self, x, training=False):
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"{type(self).__name__} takes a list of inputs, e.g. {type(self).__name__}()([x1, x2]); "
                            f"got {type(x).__name__}")
        if self.input_shape is not None and len(x) != len(self.input_shape):
            raise ValueError(f"{type(self).__name__} {self.name!r} was built for {len(self.input_shape)} inputs, "
                             f"got {len(x)}")
        return super().__call__(x, training=training)


class Add(_Merge):
    """y = x1 + x2 + ... + xn, elementwise; every input has the same shape.

    Backward: each xi enters the sum once, so dL/dxi = dL/dy for every i: one array handed to
    every branch (no layer's backward writes into its dout)."""

    def compute_output_shape(self, input_shape):
        if any(tuple(s) != tuple(input_shape[0]) for s in input_shape):
            raise ValueError(f"Add {self.name!r}: the inputs must have the same shape, got "
                             f"{[tuple(s) for s in input_shape]}")
        return tuple(input_shape[0])

    def forward(self, xs, training=False):
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        self.cache = len(xs)
        return y

    def backward(self, dout):
        return [dout] * self.cache


class Concatenate(_Merge):
    """y = the inputs joined along `axis` (Keras counts the batch axis: -1 is the channels of NHWC).

    Backward: y's slice along the axis that came from xi is xi itself, so dL/dxi is that slice
    of dL/dy."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not is_int(axis) or axis == 0:
            raise ValueError(f"Concatenate axis must be a non-zero int (axis 0 is the batch), got {axis!r}")
        self.axis = int(axis)

    def _axis(self, ndim):
        """The axis within one example's shape (no batch axis)."""
        axis = self.axis if self.axis < 0 else self.axis - 1
        if not -ndim <= axis < ndim:
            raise ValueError(f"Concatenate {self.name!r}: axis {self.axis} is out of range for inputs of "
                             f"rank {ndim + 1} (with the batch axis)")
        return axis % ndim

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        if len({len(s) for s in shapes}) != 1:
            raise ValueError(f"Concatenate {self.name!r}: the inputs must have the same rank, got {shapes}")
        axis = self._axis(len(shapes[0]))
        rest = {s[:axis] + s[axis + 1:] for s in shapes}
        if len(rest) != 1:
            raise ValueError(f"Concatenate {self.name!r}: the inputs must have the same shape except on axis "
                             f"{self.axis}, got {shapes}")
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return tuple(out)

    def forward(self, xs, training=False):
        axis = self._axis(xs[0].ndim - 1) + 1
        self.cache = [x.shape[axis] for x in xs]
        return backend.xp.concatenate(xs, axis=axis)

    def backward(self, dout):
        axis = self._axis(dout.ndim - 1) + 1
        bounds = [0]
        for size in self.cache:
            bounds.append(bounds[-1] + size)
        index = [slice(None)] * dout.ndim
        grads = []
        for start, stop in zip(bounds, bounds[1:]):
            index[axis] = slice(start, stop)
            grads.append(backend.xp.ascontiguousarray(dout[tuple(index)]))
        return grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """Keras's functional form: Add(**kwargs)(inputs)."""
    return Add(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """Keras's functional form: Concatenate(axis, **kwargs)(inputs)."""
    return Concatenate(axis=axis, **kwargs)(inputs)
