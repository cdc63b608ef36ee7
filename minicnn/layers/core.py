"""Core layers: Input, Dense, Flatten, Activation, Rescaling, Dropout."""
import numpy as np

from minicnn import activations, backend, constraints, initializers, kernels
from minicnn.layers.base import (KerasTensor, Layer, activate, activation_backward, check_input_shape, is_int,
                                 is_real, kernel_bias_config, kernel_bias_from_config, set_regularizers)


class InputLayer(Layer):
    """Declares the shape of one example (no batch axis); y = x."""

    def __init__(self, shape=None, name=None, batch_size=None, dtype=None, **kwargs):
        """dtype: the data's (Keras's Input(..., dtype='uint8')); the input is cast to floatx as fit
        and predict cast any real array."""
        if shape is None:
            shape = kwargs.pop("input_shape", None)
        if shape is None:
            raise ValueError("Input needs a shape, e.g. Input(shape=(32, 32, 3))")
        if is_int(shape):
            shape = (shape,)
        super().__init__(name=name, input_shape=check_input_shape(shape, "Input shape"), **kwargs)

    def forward(self, x, training=False):
        return x

    def backward(self, dout):
        return dout

    def get_config(self):
        return {"name": self.name, "shape": list(self.input_shape)}


def Input(shape=None, name=None, **kwargs):
    """Keras's ``Input(shape=...)``: the KerasTensor an InputLayer produces. Start a functional model
    from it (``x = Conv2D(32, 3)(inputs)``, then ``Model(inputs, outputs)``), or put it first in a
    Sequential."""
    layer = InputLayer(shape=shape, name=name, **kwargs)
    layer.build(layer.input_shape)
    return KerasTensor(layer.input_shape, layer)


class StackTensors:
    """Keras's model.inputs and model.outputs (and Keras 2's model.input, model.output) for a built
    Sequential: as Keras 3 builds a Sequential's graph, Sequential.build calls its layers in turn on
    an Input, once (record_stack), so each layer's .input and .output exist too and
    Model(model.inputs, model.layers[3].output) is a model of the first layers' features, sharing
    their weights."""

    def record_stack(self, layer=None):
        """Call the layers on an Input (or, given `layer`, just added: that one on the last output)."""
        if layer is None:
            first = self._layers[0] if isinstance(self._layers[0], InputLayer) else InputLayer(self.input_shape)
            first.build(first.input_shape)
            self._stack_input = self._stack_output = KerasTensor(self.input_shape, first)
        for each in [layer] if layer is not None else self.layers:
            self._stack_output = each._call_symbolic(self._stack_output, self._stack_output.shape[1:])

    def _stack(self, which):
        if "_stack_input" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__} {self.name!r} has no {which} yet: it is not built (give its "
                                 "first layer input_shape=..., start it with Input(shape=...), or call build)")
        return self.__dict__["_stack_" + which]

    input = property(lambda self: self._stack("input"))
    inputs = property(lambda self: [self._stack("input")])
    outputs = property(lambda self: [self._stack("output")])

    @property
    def output(self):
        """The stack's output tensor; that of its call, for a Sequential called in a functional model."""
        return Layer.output.fget(self) if self.__dict__.get("_symbolic_outputs") else self._stack("output")


class Dense(Layer):
    """Fully connected layer.  z = x @ W + b;  y = act(z).

    Backward: dW = x^T @ dz;  db = sum_n dz;  dx = dz @ W^T.
    Shapes: x (N, D), W (D, units), b (units,), y (N, units).
    """

    takes_activation = True     # Sequential may run a following Activation('relu') inside it (base.fused_pairs)

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, input_dim=None,
                 **kwargs):
        if input_dim is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_dim,)                 # Keras 2's Dense(64, input_dim=784)
        super().__init__(**kwargs)
        if not is_int(units) or units < 1:
            raise ValueError(f"Dense units must be a positive int, got {units!r}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        set_regularizers(self, kernel_regularizer, bias_regularizer, activity_regularizer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense {self.name!r} expects flat input of shape (D,), got {tuple(input_shape)}; "
                             "put a Flatten layer before it")
        return (self.units,)

    def build(self, input_shape, rng=None):
        super().build(input_shape)
        rng = rng or backend.new_rng()
        self.add_weight("W", (input_shape[-1], self.units), self.kernel_initializer, rng,
                        constraint=self.kernel_constraint, regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.add_weight("b", (self.units,), self.bias_initializer, rng, constraint=self.bias_constraint,
                            regularizer=self.bias_regularizer)

    def forward(self, x, training=False, activation=None):
        """y = act(x @ W + b); `activation` replaces the layer's own linear one when Sequential fuses
        the Activation layer that follows (base.fused_pairs)."""
        act = self.activation if activation is None else activation
        z = kernels.matmul(x, self.params["W"])
        y = activate(self, z, act)                                 # act(z + b), fused: y may be z itself
        # what backward reads: x, and y (or z + b, for an activation whose derivative needs its input)
        self.cache = {"x": x, "act": act, **({"z": z} if act.needs_input else {"y": y})}
        return y

    def backward(self, dout):
        act = self.cache["act"]
        saved = self.cache["z"] if act.needs_input else self.cache["y"]
        dz = activation_backward(self, dout, saved, act)           # and db into grads['b']
        x = self.cache["x"]
        with kernels.side_stream(x, dz):                    # GPU: overlaps with dx below
            kernels.matmul(x.T, dz, out=self.grads["W"])
        return kernels.matmul(dz, self.params["W"].T) if self.input_grad else None

    def get_config(self):
        return {**super().get_config(), "units": self.units, **kernel_bias_config(self)}

    @classmethod
    def from_config(cls, config):
        return cls(**kernel_bias_from_config(config))


class Flatten(Layer):
    """y = x.reshape(N, -1) in C order: for NHWC the flat index is (h*W + w)*C + c, as in Keras.
    dx = dout.reshape(x.shape)."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.cache)


class Activation(Layer):
    """y = act(x) elementwise (softmax: over the last axis); dx = act'(x) applied to dout."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    @property
    def absorbed_activation(self):
        """The relu a Conv2D or Dense before this layer may apply for it (base.fused_pairs), else None."""
        return self.activation if self.activation.name == "relu" else None

    def forward(self, x, training=False, activation=None):
        """y = act(x); `activation` replaces the layer's own (a model whose loss owns this head's
        softmax runs it as SoftmaxInTheLoss: y = x, the logits)."""
        act = self.activation if activation is None else activation
        y = kernels.activation_forward(x, act.name)                   # activations.py has the math
        self.cache = {"act": act, **({"z": x} if act.needs_input else {"y": y})}
        return y

    def backward(self, dout):
        act = self.cache["act"]
        saved = self.cache["z"] if act.needs_input else self.cache["y"]
        return kernels.activation_backward(dout, saved, act.name)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Rescaling(Layer):
    """y = x * scale + offset (fixed numbers, no weights);  dx = dout * scale.

    Keras's preprocessing layer (e.g. Rescaling(1/255) on raw pixels), also used to scale logits
    by a constant before the softmax."""
    scales_its_input = True     # a model starting with it takes raw uint8 pixels without a warning

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        for what, v in (("scale", scale), ("offset", offset)):
            if not is_real(v):
                raise ValueError(f"Rescaling {what} must be a number, got {v!r}")
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x, training=False):
        return x * x.dtype.type(self.scale) + x.dtype.type(self.offset)

    def backward(self, dout):
        return dout * dout.dtype.type(self.scale)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class Dropout(Layer):
    """Inverted dropout: training y = x * m / (1 - rate), m ~ Bernoulli(1 - rate); inference y = x.

    dx = dout * m / (1 - rate).  `rate` is the fraction DROPPED. noise_shape broadcasts the mask
    (None entries take the input's size). The k-th training call draws its mask from a
    counter-based stream keyed by (seed, k) (kernels.dropout_mask): the same seed gives the same
    masks on every backend, and a resumed run continues the sequence.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not is_real(rate) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        if noise_shape is not None and (not isinstance(noise_shape, (list, tuple)) or not all(
                s is None or (is_int(s) and s >= 1) for s in noise_shape)):
            raise ValueError(f"Dropout noise_shape must be a tuple of positive ints and Nones, one per axis of the "
                             f"input, batch axis first (e.g. (None, 1, 1, C)), got {noise_shape!r}")
        self.noise_shape = None if noise_shape is None else tuple(None if s is None else int(s) for s in noise_shape)
        self.seed = seed
        self.draws = 0              # training calls so far: the mask stream's counter

    def build(self, input_shape):
        super().build(input_shape)
        if self.seed is None:
            self.seed = int(backend.new_rng().integers(2**31))
        shape = self.noise_shape
        if shape is not None and (len(shape) != len(input_shape) + 1 or not all(
                s is None or s in (1, d) for s, d in zip(shape[1:], input_shape))):
            raise ValueError(f"Dropout {self.name!r}: noise_shape {shape} does not fit inputs of shape "
                             f"(batch, {', '.join(map(str, input_shape))}): give one entry per axis, batch first, "
                             "each None (the input's size), 1 (one draw shared along that axis) or the input's size")

    def _mask_shape(self, x_shape):
        """noise_shape with its Nones filled in from x's shape (Keras's rule): a 1 shares a draw
        along that axis, the batch axis too."""
        if self.noise_shape is None:
            return x_shape
        shape = tuple(d if s is None else s for s, d in zip(self.noise_shape, x_shape))
        if shape[0] not in (1, x_shape[0]):
            raise ValueError(f"Dropout {self.name!r}: noise_shape {self.noise_shape} gives the batch axis "
                             f"{shape[0]}, but the batch has {x_shape[0]} examples (use None or 1)")
        return shape

    @property
    def draws(self):
        """Training calls so far. The count lives in an array where the backend computes (on the
        GPU a CUDA graph advances it); reading it there synchronises, so only saving and tests do."""
        if self._counter is not None:
            return int(backend.to_host(self._counter)[0])
        return self._draws

    @draws.setter
    def draws(self, value):
        self._draws = int(value)
        self._counter = None        # made again, from _draws, by the next training forward

    def prepare_device(self):
        """Make the counter array now (the GPU strategy calls this before a CUDA graph's private
        allocations, so the array keeps its address for every replay)."""
        if self._counter is None:
            self._counter = backend.to_device(np.array([self._draws], dtype=np.uint64))

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self.cache = None
            return x
        self.prepare_device()
        y, self.cache = kernels.dropout_train(x, self.seed, self._counter, self.rate, self._mask_shape(x.shape))
        return y

    def backward(self, dout):
        if self.cache is None:
            return dout
        return kernels.dropout_backward(dout, self.seed, self.cache, self.rate)

    def extra_state(self):
        return {"draws": self.draws}

    def set_extra_state(self, state):
        self.draws = int(state.get("draws", 0))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape), "seed": self.seed}
