"""The layer contract every layer (and Sequential itself) follows.

    build(input_shape)        create self.params (name -> array) and zeroed self.grads, same keys;
                              non-trainable arrays (BatchNorm's moving statistics) go in self.state
    forward(x, training)      return y; keep what backward needs in self.cache
    backward(dout)            fill self.grads, return dx (None when no layer below needs it); never
                              write into dout (at a fork, one gradient goes to several layers)
    compute_output_shape, count_params, get_config, get_weights / set_weights (Keras order)

Calling a layer on an array runs it (building it first; the array is checked as predict checks
its input, then cast to floatx: call_input); calling it on a KerasTensor (what Input returns)
records the call for the functional API and returns the output's KerasTensor (functional.py turns
the recorded calls into a Model). Merge layers (Add, Concatenate) take a list of inputs.

Shapes exclude the batch axis: input_shape (32, 32, 3) means x has shape (N, 32, 32, 3).
Only optimizers change params, and they change them in place.
"""
import contextlib
import contextvars
import itertools
import math
import numbers
import operator
import re
import warnings

import numpy as np

from minicnn import activations, backend, constraints, initializers, kernels, regularizers

def snake_case(name):
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower().replace("2_d", "2d")


def structural_keys(class_names):
    """Keras 3's weight-file keys of a model's layers, in order: each class name in snake_case,
    made unique by position (conv2d, conv2d_1, ...)."""
    counts, keys = {}, []
    for class_name in class_names:
        base = snake_case(class_name)
        n = counts.get(base, 0)
        counts[base] = n + 1
        keys.append(base if n == 0 else f"{base}_{n}")
    return keys


def unique_name(prefix):
    """Keras-style auto names: conv2d, conv2d_1, conv2d_2, ... (one counter per prefix, per process)."""
    counter = backend.name_counters.setdefault(prefix, itertools.count())
    n = next(counter)
    return prefix if n == 0 else f"{prefix}_{n}"


def is_int(value):
    """A Python or NumPy integer, not a bool: what counts (filters, sizes, epochs) take."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """A Python or NumPy real number, not a bool: what rates and factors take."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_pair(value, what):
    """An int or a 2-tuple of positive ints (Python or NumPy) -> (a, b), with a clear error otherwise."""
    if is_int(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(is_int(v) for v in value):
        raise ValueError(f"{what} must be an int or a tuple of 2 ints, got {value!r}")
    if min(value) < 1:
        raise ValueError(f"{what} must be >= 1, got {tuple(value)}")
    return (int(value[0]), int(value[1]))


def check_input_shape(shape, what="input_shape"):
    """The shape of one example (no batch axis) as a tuple of positive ints, or a clear error. minicnn
    fixes each layer's geometry when it builds it, so no dimension may be None (variable)."""
    if not isinstance(shape, (tuple, list)):
        flat = f" (for a flat input write ({shape},))" if is_int(shape) else ""
        raise ValueError(f"{what} must be a tuple of positive ints without the batch axis, got {shape!r}{flat}")
    shape = tuple(shape)
    if any(d is None for d in shape):
        batch = "; leave the batch axis out" if shape[0] is None and len(shape) == 4 else ""
        raise ValueError(f"minicnn needs a fixed height and width: {what} {shape} has unknown (None) "
                         f"dimensions{batch}")
    if not shape or not all(is_int(d) and d > 0 for d in shape):
        raise ValueError(f"{what} must be a tuple of positive ints without the batch axis, got {shape!r}")
    return tuple(int(d) for d in shape)


def without_batch_axis(shape):
    """model.build's shape, checked: (H, W, C), or Keras's (None, H, W, C) with its batch axis dropped."""
    if isinstance(shape, (tuple, list)) and shape and shape[0] is None:
        shape = shape[1:]
    return check_input_shape(shape)


def check_padding(padding):
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def window_geometry(size, k, s, padding):
    """Output size and padding before the data, for one spatial axis (TensorFlow's rule).

    valid: out = floor((size - k) / s) + 1, no padding, leftover rows at the end are dropped.
    same:  out = ceil(size / s); total padding P = max((out - 1)*s + k - size, 0), of which
           floor(P / 2) goes before (top/left) and the rest after: an odd P puts the extra
           row/column at the bottom/right.
    Returns (out, pad_before).
    """
    if padding == "valid":
        return (size - k) // s + 1, 0
    out = math.ceil(size / s)
    return out, max((out - 1) * s + k - size, 0) // 2


def activate(layer, z, act):
    """act(z + b) for a layer with a kernel, bias and activation (Conv2D, Dense), fused in place on z;
    a linear layer without bias has nothing to do (z is its output)."""
    if layer.use_bias or act.name != "linear":
        return kernels.bias_activation(z, layer.params.get("b"), act.name)
    return z


def activation_backward(layer, dout, y, act):
    """dz = dL/d(z + b) from dout = dL/dy (db into grads['b']); a linear layer without bias passes
    dout through untouched."""
    if not layer.use_bias and act.name == "linear":
        return dout
    dz = layer.workspace("dz", y.shape, y.dtype)
    kernels.bias_activation_backward(dout, y, act.name, out=dz, db_out=layer.grads.get("b"))  # db: column sums
    return dz


def fused_pairs(layers):
    """Positions i where layers[i], a Conv2D or Dense without activation of its own, takes in the
    plain relu of the Activation / ReLU layer at i + 1 (Sequential runs the pair as one layer: the
    relu applied while the GEMM's output is hot, its derivative inside the layer's backward, one
    pass over the activations fewer each way; TensorFlow's remapper fuses the same pairs). Nothing
    changes in either layer: called alone, each computes what it always did."""
    return [i for i in range(len(layers) - 1)
            if getattr(layers[i], "takes_activation", False) and layers[i].activation.name == "linear"
            and getattr(layers[i + 1], "absorbed_activation", None) is not None]


def fusion_plan(layers):
    """How Sequential runs its layers: ({i: keyword arguments for layers[i].forward}, the positions of
    the layers run inside the one before them). The pairs of fused_pairs (a Conv2D or Dense takes
    the relu after it), and a relu Conv2D followed by a MaxPooling2D with windows that tile its
    output (strides = pool_size, 'valid'): the Conv2D is handed the pooling layer, so where its
    kernels can (kernels.conv2d_relu_maxpool) the conv's output is pooled in the cache tile that
    computed it, and never written out whole. Called alone, each layer computes what it always did."""
    pairs = fused_pairs(layers)
    plan = {i: {"activation": layers[i + 1].absorbed_activation} for i in pairs}
    absorbed = {i + 1 for i in pairs}
    for i, layer in enumerate(layers):
        j = i + 2 if i in pairs else i + 1
        if i in absorbed or j >= len(layers) or not getattr(layer, "takes_pool", False):
            continue
        act = plan.get(i, {}).get("activation") or layer.activation
        if act.name == "relu" and getattr(layers[j], "tiles_its_input", False):
            plan.setdefault(i, {})["pool"] = layers[j]
            absorbed.add(j)
    return plan, absorbed


def entry_count(layers):
    """How many of a stack's first layers stand where its input's gradient would be computed: the
    leading preprocessing layers (augmentation: no weights, no dL/dx wanted) and the first layer
    after them. They compute dL/dx only when the stack's own input needs it; the layers after them
    always do."""
    n = 0
    while n < len(layers) and layers[n].preprocessing:
        n += 1
    return min(n + 1, len(layers))


# ---- a cap on the weights layers may create (load_model builds a file's architecture under it) ----------
_weight_cap = contextvars.ContextVar("weight_cap", default=None)


@contextlib.contextmanager
def weight_cap(values, source, held="the file holds", why=": the architecture does not match the file's weights"):
    """Inside this block the layers built may create at most `values` weight values in all, and
    add_weight refuses, before allocating, a weight past that. load_model builds the architecture
    a file describes under the number of values the file holds, so a config asking for
    filters=10**12 is a ValueError naming `source` (the file), not a terabyte allocation.
    held, why: what the cap is and what passing it means, for the message (model_from_json's cap
    is a fixed limit)."""
    token = _weight_cap.set({"left": values, "source": source, "held": held, "why": why})
    try:
        yield
    finally:
        _weight_cap.reset(token)


def _take_from_cap(layer, key, shape):
    cap = _weight_cap.get()
    if cap is None:
        return
    if not all(isinstance(d, int) and d >= 0 for d in shape) or math.prod(shape) > cap["left"]:
        raise ValueError(f"{cap['source']}: layer {layer.name!r} would create weight {key!r} of shape "
                         f"{tuple(shape)}, more values than {cap['held']} ({cap['left']} left for it){cap['why']}")
    cap["left"] -= math.prod(shape)


def kernel_bias_config(layer):
    """Config entries shared by the layers with a kernel, a bias and an activation (Conv2D, Dense)."""
    return {"activation": activations.serialize(layer.activation), "use_bias": layer.use_bias,
            "kernel_initializer": initializers.serialize(layer.kernel_initializer),
            "bias_initializer": initializers.serialize(layer.bias_initializer),
            "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
            "kernel_constraint": constraints.serialize(layer.kernel_constraint),
            "bias_constraint": constraints.serialize(layer.bias_constraint)}


def set_regularizers(layer, kernel_regularizer, bias_regularizer, activity_regularizer):
    """A kernel layer's Keras regularizer arguments (regularizers.py): the weights' penalties kept,
    an activity regularizer (a penalty on the layer's output) refused."""
    if activity_regularizer is not None:
        raise ValueError(f"{type(layer).__name__} {layer.name!r}: activity_regularizer is not supported "
                         f"(got {activity_regularizer!r}); minicnn has kernel_regularizer and bias_regularizer")
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)


def kernel_bias_from_config(config):
    """A copy of `config` with kernel_bias_config's entries turned back into objects."""
    config = dict(config)
    for key in ("kernel_initializer", "bias_initializer"):
        config[key] = initializers.deserialize(config[key])
    for key in ("kernel_constraint", "bias_constraint"):
        config[key] = constraints.deserialize(config[key])
    for key in ("kernel_regularizer", "bias_regularizer"):       # (absent from files before them)
        config[key] = regularizers.deserialize(config.get(key))
    return config


class KerasTensor:
    """A symbolic tensor of the functional API: the shape of what flows along one edge of a graph
    (batch axis None, as in Keras) and the layer call that produces it. No data.

        inputs = Input(shape=(32, 32, 3))        # KerasTensor made by an InputLayer
        x = Conv2D(32, 3)(inputs)                # records Conv2D called on `inputs`
    layer: the layer called; inputs: the KerasTensors it read (none for an Input's); many: the call
    took a list (a merge layer's)."""

    def __init__(self, shape, layer, inputs=(), many=False):
        self.shape = (None,) + tuple(shape)
        self.layer, self.inputs, self.many = layer, tuple(inputs), many

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, from {self.layer.name!r}>"


def symbolic(x):
    """True for a KerasTensor or a list of them (a functional-API call), False for arrays."""
    items = x if isinstance(x, (list, tuple)) else [x]
    kinds = {isinstance(t, KerasTensor) for t in items}
    if len(kinds) > 1:
        raise TypeError("a layer call takes arrays or KerasTensors (functional API), not a mix of both")
    return kinds == {True}


# ---- what a layer call takes (data.check_x checks fit's and predict's input with the same pieces) ---------
def is_tf_dataset(x):
    """True for a tf.data.Dataset (told by its classes' module: TensorFlow is never imported here)."""
    return any(c.__module__.startswith("tensorflow") and "Dataset" in c.__name__ for c in type(x).__mro__)


def as_array(x, what):
    """x as an array, as Keras takes its data: a NumPy array (or the backend's) as it is; anything
    NumPy reads (lists; objects with __array__: TensorFlow tensors, PyTorch CPU tensors, pandas
    DataFrames and Series) through np.asarray. A tf.data.Dataset, or another iterable that is no
    array, is a clear error."""
    if isinstance(x, (np.ndarray, backend.xp.ndarray)):
        return x
    if is_tf_dataset(x):
        raise TypeError(f"{what}: a tf.data.Dataset is not supported: pass NumPy arrays, or a generator "
                        "(dataset.as_numpy_iterator() with steps_per_epoch)")
    if not hasattr(x, "__array__") and hasattr(x, "__iter__") and not isinstance(x, (list, tuple)):
        raise TypeError(f"{what} is a {type(x).__name__}, an iterable that is neither an array nor a generator "
                        "or Sequence of batches: pass NumPy arrays, or a generator of (x, y) batches")
    try:
        return np.asarray(x)
    except (TypeError, ValueError, RuntimeError) as e:        # (a tensor on a GPU, one that requires grad)
        raise TypeError(f"{what} ({type(x).__name__}) could not be read as a NumPy array: "
                        f"{_ragged(x) or e}") from None


def _ragged(x):
    """What is wrong with a list or tuple of arrays of different shapes, in words (else None)."""
    if not isinstance(x, (list, tuple)) or not x or not all(hasattr(item, "shape") for item in x):
        return None
    shapes = [tuple(item.shape) for item in x]
    shown = ", ".join(map(str, shapes[:4])) + (", ..." if len(shapes) > 4 else "")
    if isinstance(x, tuple) and len(x) == 2:
        return f"it is a tuple of 2 arrays of shapes {shown}: for (x, y) pass them as two arguments, fit(x, y)"
    return f"its {len(x)} arrays have different shapes ({shown}): give every example the same shape"


def real_array(x, what):
    """x as an array of real numbers (as_array); None, bools, complex numbers, strings and objects
    are refused with a clear error."""
    if x is None:
        raise ValueError(f"{what} is None; pass an array of images")
    x = as_array(x, what)
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"{what} must hold real numbers (float or integer), got dtype {x.dtype}")
    return x


def _dtype_name(dtype):
    """'float32' for 'float32', np.float32 or np.dtype('float32'); the text of anything else."""
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def warn_unscaled(owner, x, what, stacklevel):
    """Integer x with values above 1 (raw pixels?) is cast to floatx as it is: say so, once per model
    (or layer called directly), unless the model scales its input itself (a Rescaling where the
    input comes in). stacklevel: warnings.warn's, counted from this function."""
    entry = owner.entry_layers() if hasattr(owner, "entry_layers") else [owner]
    if any(getattr(layer, "scales_its_input", False) for layer in entry):
        return
    if (np.issubdtype(x.dtype, np.integer) and x.size and int(x.max()) > 1
            and not getattr(owner, "_warned_integer_input", False)):
        owner._warned_integer_input = True
        warnings.warn(f"{what} is {x.dtype} with values up to {int(x.max())}; minicnn casts it to "
                      f"{backend.floatx()} unscaled (the tutorials divide by 255 first)", stacklevel=stacklevel)


def call_input(layer, x, expected, what="x"):
    """The array a direct call layer(x) (or model(x)) runs on: checked as predict checks its input,
    then cast to floatx where the backend computes. `expected`: the per-example shape the layer was
    built (or declared) for, or None. minicnn fixes a layer's input shape when it builds it (the
    weights, Conv2D's output size, the pooling windows), so a built layer takes that shape only.
    Only calls pay for these checks: fit, evaluate and predict check their data once, then run
    layer.forward."""
    x = real_array(x, what)
    name, shape = f"{type(layer).__name__} {layer.name!r}", tuple(x.shape)
    if x.ndim < 2 or (expected is not None and shape == tuple(expected)):
        raise ValueError(f"a layer call takes a batch: {name} got {what} of shape {shape}, one example; "
                         "use x[None] for a batch of one")
    if shape[0] == 0:
        raise ValueError(f"{name} was called on an empty batch ({what} of shape {shape}); there is nothing to compute")
    if expected is not None and shape[1:] != tuple(expected):
        expected = tuple(expected)
        flipped = len(expected) == 3 and shape[1:] == (expected[2], expected[0], expected[1])
        raise ValueError(f"{name} was {'built' if layer.built else 'declared'} for inputs {expected}; got "
                         f"{shape[1:]} ({what} of shape {shape})"
                         + ("; channels-first? minicnn is channels-last (NHWC): use x.transpose(0, 2, 3, 1)"
                            if flipped else ""))
    warn_unscaled(layer, x, what, stacklevel=4)
    return backend.to_device(x, backend.floatx())


class Layer:
    """Base class. Subclass it, implement build/forward/backward, and gradcheck can test it."""
    input_grad = True       # False on the first layer: nobody needs dL/dx there
    takes_list = False      # True for merge layers: a call takes a list of inputs
    preprocessing = False   # True: no weights and no dL/dx (augmentation): the layers after it need none either

    def __init__(self, name=None, trainable=True, input_shape=None, dtype=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected argument(s): {sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string, got {name!r}")
        if dtype is not None and _dtype_name(dtype) != backend.floatx():
            raise ValueError(f"{type(self).__name__} got dtype={dtype!r}; minicnn computes every layer in "
                             f"backend.floatx() ('{backend.floatx()}'): leave dtype out, or call "
                             "minicnn.backend.set_floatx(...) before building the model")
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        self.grads = {}
        self._new_weight_dicts()
        self.constraints, self.regularizers = {}, {}
        self.cache = None
        self.built = False
        if input_shape is not None:         # (a merge layer's: one shape per input)
            input_shape = (tuple(check_input_shape(s) for s in input_shape) if self.takes_list
                           else check_input_shape(input_shape))
        self.input_shape = input_shape
        self.output_shape = None

    def _new_weight_dicts(self):
        """params (trainable arrays) and state (the others), empty until build. A container keeps
        none of its own: its params and state are read-only views of its layers'."""
        self.params, self.state = {}, {}

    # ---- building -------------------------------------------------------------------------
    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def add_weight(self, key, shape, initializer, rng, trainable=True, constraint=None, regularizer=None):
        shape = tuple(operator.index(d) for d in shape)
        _take_from_cap(self, key, shape)
        value = initializers.make(initializers.get(initializer), shape, rng)
        if trainable:
            self.params[key] = value
            self.grads[key] = backend.xp.zeros_like(value)
            if constraint is not None:
                self.constraints[key] = constraint
            if regularizer is not None:
                self.regularizers[key] = regularizer
        else:
            self.state[key] = value
        return value

    # ---- computing ------------------------------------------------------------------------
    def workspace(self, key, shape, dtype):
        """A scratch array kept from step to step, for intermediates a layer never hands out
        (im2col matrices, gradients inside backward). Fresh memory is slow to touch; reuse is not."""
        ws = self.__dict__.setdefault("_workspaces", {})
        buf = ws.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = ws[key] = backend.xp.empty(shape, dtype=dtype)
        return buf

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def __call__(self, x, training=False):
        """Run the layer on an array (a list of arrays for a merge layer), building it on the first
        call; or, on KerasTensors, record the call (functional API) and return the output's. An
        array is checked first, as predict checks its input, and cast to floatx (call_input)."""
        if symbolic(x):
            return self._call_symbolic(x, [t.shape[1:] for t in x] if isinstance(x, (list, tuple)) else x.shape[1:])
        if self.takes_list:
            expected = self.input_shape or [None] * len(x)
            x = [call_input(self, t, e, f"input {i}") for i, (t, e) in enumerate(zip(x, expected))]
            shape = [t.shape[1:] for t in x]
        else:
            x = call_input(self, x, self.input_shape)
            shape = x.shape[1:]
        if not self.built:
            self.build(shape)
        return self.forward(x, training=training)

    def _call_symbolic(self, x, shape):
        many = isinstance(x, (list, tuple))
        shape = tuple(tuple(s) for s in shape) if many else tuple(shape)
        if not self.built:
            self.build(shape)
        elif shape != tuple(self.input_shape):
            raise ValueError(f"layer {self.name!r} was built for input {self.input_shape} and is now called "
                             f"on {shape}; a layer called twice (shared) takes inputs of one shape")
        out = KerasTensor(self.output_shape, self, x if many else [x], many)
        self.__dict__.setdefault("_symbolic_outputs", []).append(out)
        return out

    @property
    def output(self):
        """Keras's layer.output: the KerasTensor the layer's first call on KerasTensors produced (a
        functional model's, or the graph a built Sequential records), e.g. Model(model.inputs,
        model.layers[3].output) for a model of the first layers' features. layer.input: what that
        call read."""
        return self._first_call("output")

    @property
    def input(self):
        call = self._first_call("input")
        return list(call.inputs) if call.many else call.inputs[0]

    def _first_call(self, what):
        calls = self.__dict__.get("_symbolic_outputs")
        if not calls:
            raise AttributeError(f"layer {self.name!r} has never been called on KerasTensors, so it has no {what} "
                                 "(call it on Input(...) in a functional model, or put it in a built Sequential)")
        return calls[0]

    # ---- weights --------------------------------------------------------------------------
    def weight_keys(self):
        """Keras order: trainable weights as created, then non-trainable ones."""
        return list(self.params) + list(self.state)

    def _weight(self, key):
        return self.params[key] if key in self.params else self.state[key]

    def get_weights(self):
        return [backend.to_host(self._weight(k)).copy() for k in self.weight_keys()]

    def require_built(self, what):
        """A clear error for `what` (count_params, set_weights) on a layer with no weights yet, as Keras's."""
        if not self.built:
            raise ValueError(f"You tried to call {what} on {type(self).__name__} {self.name!r}, but it isn't built "
                             "yet (its input shape is unknown): give the first layer input_shape=..., call "
                             "build(input_shape), or call it on data first")

    def weight_list(self, weights):
        """set_weights's argument as a list (of arrays, lists or numbers), or a clear error."""
        self.require_built("set_weights")
        if weights is None or isinstance(weights, (str, bytes, dict)) or not hasattr(weights, "__iter__"):
            raise TypeError(f"set_weights expects a list of arrays (as get_weights returns), got "
                            f"{type(weights).__name__}")
        return list(weights)

    def set_weights(self, weights):
        keys, weights = self.weight_keys(), self.weight_list(weights)
        if len(weights) != len(keys):
            raise ValueError(f"layer {self.name!r} expects {len(keys)} weight arrays {keys}, got {len(weights)}")
        for key, value in zip(keys, weights):
            target, shape = self._weight(key), tuple(np.shape(value))   # np.shape: of a list or number too
            if shape != tuple(target.shape):
                raise ValueError(f"layer {self.name!r} weight {key!r}: expected shape {tuple(target.shape)}, "
                                 f"got {shape} ({type(value).__name__})")
            target[...] = backend.xp.asarray(value, dtype=target.dtype)   # in place: buffers stay put

    def count_params(self, trainable=None):
        """Number of scalars: all (None), trainable only (True) or non-trainable only (False).
        A frozen layer (trainable=False) counts its params as non-trainable, as in Keras."""
        self.require_built("count_params")
        n_params = int(sum(v.size for v in self.params.values()))
        n_state = int(sum(v.size for v in self.state.values()))
        if trainable is None:
            return n_params + n_state
        if trainable:
            return n_params if self.trainable else 0
        return n_state + (0 if self.trainable else n_params)

    def extra_state(self):
        """JSON-able state that is not a weight (e.g. a random stream's counter); saved with the model."""
        return {}

    def set_extra_state(self, state):
        pass

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} {self.input_shape} -> {self.output_shape}>"
