"""Keras <-> minicnn: import Keras weights, build a minicnn model from a Keras one, export weights.

    keras_io.load_keras_weights(model, "m.weights.h5")   # Keras 3 .weights.h5, .keras, or legacy .h5
    model = keras_io.from_keras(keras_model)             # same layers, config and weights
    keras_io.save_keras_weights(model, "m.weights.h5")   # loadable by keras_model.load_weights()

Layouts need no conversion: minicnn stores Conv2D kernels as (KH, KW, C, F), Dense kernels as
(D_in, D_out) and flattens NHWC in C order, exactly as Keras does. Keras 3 weight files key each
layer by its class name in snake_case made unique by position (conv2d, conv2d_1, ...), which is
minicnn's structural key too; legacy .h5 files are matched by position over layers with weights.
h5py is needed (pip install h5py); Keras itself only for from_keras.
"""
import io
import math
import os
import zipfile

import numpy as np

from minicnn import layers as L
from minicnn import optimizers as O
from minicnn.constraints import MaxNorm
from minicnn.functional import Model
from minicnn.model import Residual, Sequential
from minicnn import npz, saving
from minicnn.saving import atomic_write


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading or writing Keras weight files needs h5py: pip install h5py") from None
    return h5py


def _mismatch(path, rows):
    raise ValueError(f"{path} does not match the model; the layers that differ:\n" + "\n".join(rows))


# what h5py (and zipfile, for a .keras) raise on a damaged file: read_keras_weights turns each into
# a ValueError naming the file
H5_ERRORS = (OSError, KeyError, RuntimeError, AttributeError, TypeError, ValueError, IndexError) + npz.ZIP_ERRORS


def _values(item, name, limit):
    """A weight's values, once the item is known to be a numeric dataset of at most `limit` bytes
    (an HDF5 dataset may declare any shape and read back its fill value: terabytes from a small file)."""
    dtype, shape = getattr(item, "dtype", None), getattr(item, "shape", None)
    if dtype is None or shape is None or dtype.kind not in "biuf":
        raise ValueError(f"{name} is not a numeric dataset (dtype {dtype})")
    if math.prod(shape) * dtype.itemsize > limit:
        raise ValueError(f"{name} declares {dtype} {shape}, more bytes than the file can hold ({limit})")
    return np.asarray(item)


def _read_keras3(h5, path, limit):
    """{structural key: [arrays in creation order]} from a Keras 3 .weights.h5 (or a .keras's)."""
    if "layers" not in h5:
        raise ValueError(f"{path}: no /layers group; not a Keras 3 weights file")
    out = {}
    for key, group in h5["layers"].items():
        variables = group.get("vars", {})
        out[key] = [_values(variables[str(i)], f"layers/{key}/vars/{i}", limit) for i in range(len(variables))]
    return out


def _read_legacy(h5, path, limit):
    """[(layer name, [arrays])] in file order from a legacy HDF5 file (tf.keras save_weights / save)."""
    root = h5["model_weights"] if "model_weights" in h5 else h5
    if "layer_names" not in root.attrs:
        raise ValueError(f"{path}: neither a Keras 3 weights file nor a legacy HDF5 weights file")
    layers = []
    for name in root.attrs["layer_names"]:
        name = name.decode() if isinstance(name, bytes) else str(name)
        group = root[name]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
        layers.append((name, [_values(group[n], f"{name}/{n}", limit) for n in names]))
    return layers


def read_keras_weights(path):
    """('keras3', {key: arrays}) or ('legacy', [(name, arrays)]) from .weights.h5 / .keras / .h5.
    Nothing in the file is trusted: a .keras's zip member is checked as npz checks one, each weight's
    dtype and size before it is read, and any error from h5py becomes a ValueError naming the file."""
    h5py = _h5py()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such Keras weights file: {path}")
    limit = npz.MAX_EXPANSION * os.path.getsize(path)
    try:
        if zipfile.is_zipfile(path):                       # .keras: a zip holding model.weights.h5
            with zipfile.ZipFile(path) as z:
                if "model.weights.h5" not in z.namelist():
                    raise ValueError(f"{path}: a zip without model.weights.h5; not a .keras file")
                npz.check_member(z.getinfo("model.weights.h5"))
                with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
                    return "keras3", _read_keras3(h5, path, limit)
        with h5py.File(path, "r") as h5:
            if "layers" in h5:
                return "keras3", _read_keras3(h5, path, limit)
            return "legacy", _read_legacy(h5, path, limit)
    except H5_ERRORS as e:
        if isinstance(e, ValueError) and str(e).startswith(path):
            raise
        raise ValueError(f"{path} is not a readable HDF5/.keras file: {type(e).__name__}: {e}") from None


def load_keras_weights(model, path):
    """Copy the weights of a Keras file into `model` (same architecture), with a clear error listing
    every layer whose weights differ."""
    if not model.built:
        model.build()
    kind, data = read_keras_weights(path)
    with_weights = [(key, layer) for key, layer in zip(model.structural_keys(), model.layers) if layer.weight_keys()]
    rows, plan = [], []
    if kind == "keras3":
        for key, layer in zip(model.structural_keys(), model.layers):
            arrays = data.get(key, [])
            mine = [tuple(w.shape) for w in layer.get_weights()]
            theirs = [tuple(a.shape) for a in arrays]
            if key not in data and mine:
                rows.append(f"  {key} ({type(layer).__name__}): in the model, not in the file")
            elif mine != theirs:
                rows.append(f"  {key} ({type(layer).__name__}): file {theirs} vs model {mine}")
            elif mine:
                plan.append((layer, arrays))
        rows += [f"  {key}: in the file, not in the model" for key in data
                 if data[key] and key not in model.structural_keys()]
    else:
        if len(data) != len(with_weights):
            rows.append(f"  the file has {len(data)} layers with weights, the model {len(with_weights)}")
        for (name, arrays), (key, layer) in zip(data, with_weights):
            mine, theirs = [tuple(w.shape) for w in layer.get_weights()], [tuple(a.shape) for a in arrays]
            if mine != theirs:
                rows.append(f"  {key} (file layer {name!r}): file {theirs} vs model {mine}")
            else:
                plan.append((layer, arrays))
    if rows:
        _mismatch(path, rows)
    for layer, arrays in plan:
        layer.set_weights(arrays)


def save_keras_weights(model, path):
    """Write a Keras 3 .weights.h5 that keras_model.load_weights(path) accepts for the same architecture."""
    h5py = _h5py()
    if not str(path).endswith(".weights.h5"):
        raise ValueError(f"Keras requires a weights file name ending in .weights.h5, got {path!r}")

    def write(f):
        buf = io.BytesIO()
        with h5py.File(buf, "w") as h5:
            h5.create_group("vars")
            layers = h5.create_group("layers")
            for key, layer in zip(model.structural_keys(), model.layers):
                group = layers.create_group(key)
                variables = group.create_group("vars")
                for i, w in enumerate(layer.get_weights()):
                    variables.create_dataset(str(i), data=w.astype(np.float32))
        f.write(buf.getvalue())
    atomic_write(path, write)


# the augmentation layers: the same class names and the same arguments in Keras and minicnn
_AFFINE = ("fill_mode", "interpolation", "seed", "fill_value")
AUGMENTATION_ARGS = {"RandomFlip": ("mode", "seed"), "RandomCrop": ("height", "width", "seed"),
                     "RandomTranslation": ("height_factor", "width_factor") + _AFFINE,
                     "RandomRotation": ("factor",) + _AFFINE, "RandomZoom": ("height_factor", "width_factor") + _AFFINE}


def _augmentation_twin(module, kind, config):
    """The layer called `kind` of `module` (minicnn's or Keras's layers) with config's arguments."""
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in AUGMENTATION_ARGS[kind]}
    return getattr(module, kind)(**args)


# ---- building a minicnn model from a Keras model --------------------------------------------------
def _convert_layer(layer):
    c = layer.get_config()
    kind = type(layer).__name__
    act = lambda: c.get("activation", "linear") if isinstance(c.get("activation", "linear"), str) else "linear"

    def constraint(spec):
        if spec is None:
            return None
        if isinstance(spec, dict) and spec.get("class_name") == "MaxNorm":
            return MaxNorm(spec["config"]["max_value"], spec["config"].get("axis", 0))
        raise ValueError(f"layer {layer.name}: constraint {spec!r} has no minicnn equivalent")

    if kind == "Conv2D":
        if tuple(c.get("dilation_rate", (1, 1))) != (1, 1) or c.get("groups", 1) != 1:
            raise ValueError(f"layer {layer.name}: dilated or grouped Conv2D is not supported")
        return L.Conv2D(c["filters"], tuple(c["kernel_size"]), strides=tuple(c["strides"]), padding=c["padding"],
                        activation=act(), use_bias=c["use_bias"], kernel_constraint=constraint(c.get("kernel_constraint")))
    if kind == "Dense":
        return L.Dense(c["units"], activation=act(), use_bias=c["use_bias"],
                       kernel_constraint=constraint(c.get("kernel_constraint")))
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        cls = L.MaxPooling2D if kind == "MaxPooling2D" else L.AveragePooling2D
        return cls(tuple(c["pool_size"]), strides=tuple(c["strides"]), padding=c["padding"])
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return getattr(L, kind)(keepdims=c.get("keepdims", False))
    if kind == "Rescaling":
        return L.Rescaling(float(c["scale"]), float(c.get("offset", 0.0)))
    if kind in AUGMENTATION_ARGS:
        return _augmentation_twin(L, kind, c)
    if kind == "Dropout":
        return L.Dropout(c["rate"])
    if kind == "Flatten":
        return L.Flatten()
    if kind == "Add":
        return L.Add()
    if kind == "Concatenate":
        return L.Concatenate(axis=c.get("axis", -1))
    if kind == "Activation":
        return L.Activation(c["activation"])
    if kind == "ReLU":
        return L.ReLU(c.get("max_value"), c.get("negative_slope", 0.0), c.get("threshold", 0.0))
    if kind == "LeakyReLU":
        return L.LeakyReLU(c.get("negative_slope", c.get("alpha", 0.3)))
    if kind == "Softmax":
        axis = c.get("axis", -1)
        return L.Softmax(axis=-1 if axis in (-1, [-1], (-1,), 3, [3]) else axis)
    if kind == "BatchNormalization":
        axis = c["axis"][0] if isinstance(c["axis"], (list, tuple)) else c["axis"]
        return L.BatchNormalization(axis=-1 if axis in (-1, 3) else axis, momentum=c["momentum"],
                                    epsilon=c["epsilon"], center=c["center"], scale=c["scale"])
    raise ValueError(f"Keras layer {layer.name} ({kind}) has no minicnn equivalent")


def _from_keras_graph(kmodel):
    """A minicnn Model making the same calls as Keras functional model `kmodel`, and the (minicnn
    layer, Keras layer) pairs. Walks back from the output through Keras's node records (each
    tensor's _keras_history: the layer and call that made it); a shared Keras layer stays shared."""
    if len(kmodel.inputs) != 1 or len(kmodel.outputs) != 1:
        raise ValueError(f"Keras model {kmodel.name!r} has {len(kmodel.inputs)} inputs and {len(kmodel.outputs)} "
                         "outputs; minicnn's functional models have one of each")
    tensors, twins = {}, {}

    def convert(kt):
        if id(kt) not in tensors:
            klayer, node_index, _ = kt._keras_history
            node = klayer._inbound_nodes[node_index]
            if node.is_input:
                tensors[id(kt)] = L.Input(shape=tuple(kt.shape[1:]), name=klayer.name)
            else:
                args = [convert(t) for t in node.input_tensors]
                if klayer not in twins:
                    twins[klayer] = _convert_layer(klayer)
                many = isinstance(twins[klayer], (L.Add, L.Concatenate))
                tensors[id(kt)] = twins[klayer](args if many else args[0])
        return tensors[id(kt)]

    outputs = convert(kmodel.outputs[0])
    return Model(convert(kmodel.inputs[0]), outputs, name=kmodel.name), [(m, k) for k, m in twins.items()]


def from_keras(kmodel):
    """A minicnn model with the same layers, configuration and weights as Keras model `kmodel`: a
    Sequential for a keras.Sequential, a functional Model for a functional one."""
    if isinstance(kmodel, _keras().Sequential):
        model = Sequential([_convert_layer(layer) for layer in kmodel.layers], name=kmodel.name)
        model.build(tuple(kmodel.input_shape[1:]))
        pairs = zip(model.layers, kmodel.layers)
    else:
        model, pairs = _from_keras_graph(kmodel)
    for layer, klayer in pairs:
        weights = [np.asarray(w) for w in klayer.get_weights()]
        if weights:
            layer.set_weights(weights)
    return model


# ---- the Keras twin of a minicnn model (for side-by-side benchmarks and parity checks) ----------
def _keras_constraint(keras, constraint):
    if constraint is None:
        return None
    return keras.constraints.MaxNorm(constraint.max_value, axis=constraint.axis)


def _keras_layer(keras, layer):
    c = layer.get_config()
    name = type(layer).__name__
    if isinstance(layer, L.Conv2D):
        return keras.layers.Conv2D(c["filters"], tuple(c["kernel_size"]), strides=tuple(c["strides"]),
                                   padding=c["padding"], activation=c["activation"], use_bias=c["use_bias"],
                                   kernel_constraint=_keras_constraint(keras, layer.kernel_constraint))
    if isinstance(layer, L.Dense):
        return keras.layers.Dense(c["units"], activation=c["activation"], use_bias=c["use_bias"],
                                  kernel_constraint=_keras_constraint(keras, layer.kernel_constraint))
    if isinstance(layer, L.MaxPooling2D):
        return keras.layers.MaxPooling2D(tuple(c["pool_size"]), strides=tuple(c["strides"]), padding=c["padding"])
    if isinstance(layer, L.AveragePooling2D):
        return keras.layers.AveragePooling2D(tuple(c["pool_size"]), strides=tuple(c["strides"]), padding=c["padding"])
    if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
        return getattr(keras.layers, type(layer).__name__)(keepdims=c["keepdims"])
    if isinstance(layer, L.Rescaling):
        return keras.layers.Rescaling(c["scale"], offset=c["offset"])
    if name in AUGMENTATION_ARGS:
        return _augmentation_twin(keras.layers, name, c)
    if isinstance(layer, L.Dropout):
        return keras.layers.Dropout(c["rate"])
    if isinstance(layer, L.Flatten):
        return keras.layers.Flatten()
    if isinstance(layer, L.Add):
        return keras.layers.Add()
    if isinstance(layer, L.Concatenate):
        return keras.layers.Concatenate(axis=c["axis"])
    if isinstance(layer, L.Softmax):                   # (before Activation: a Softmax is one)
        return keras.layers.Softmax(axis=-1)
    if isinstance(layer, L.Activation):
        return keras.layers.Activation(c["activation"])
    if isinstance(layer, L.ReLU):
        return keras.layers.ReLU(max_value=c["max_value"], negative_slope=c["negative_slope"],
                                 threshold=c["threshold"])
    if isinstance(layer, L.LeakyReLU):
        return keras.layers.LeakyReLU(negative_slope=c["negative_slope"])
    if isinstance(layer, L.BatchNormalization):
        return keras.layers.BatchNormalization(momentum=c["momentum"], epsilon=c["epsilon"], center=c["center"],
                                               scale=c["scale"])
    raise ValueError(f"no Keras twin for layer class {name}")


def _keras_optimizer(keras, opt):
    lr = opt.learning_rate
    if isinstance(lr, O.InverseTimeDecay):
        lr = keras.optimizers.schedules.InverseTimeDecay(lr.initial_learning_rate, lr.decay_steps, lr.decay_rate)
    if opt.lr_multipliers:
        raise ValueError("Keras optimizers have no per-variable learning rates: an optimizer with "
                         "lr_multipliers has no Keras twin")
    if opt._no_decay_ids or opt._no_decay_names:
        raise ValueError("exclude_from_weight_decay matches minicnn variable paths, which Keras names "
                         "differently: such an optimizer has no exact Keras twin")
    if opt.lookahead_steps:
        raise ValueError("Keras optimizers have no Lookahead: an optimizer with lookahead_steps has no Keras twin")
    wd = {"weight_decay": opt.weight_decay} if opt.weight_decay else {}
    if opt.use_ema:
        wd.update(use_ema=True, ema_momentum=opt.ema_momentum, ema_overwrite_frequency=opt.ema_overwrite_frequency)
    if isinstance(opt, O.Adam):
        return keras.optimizers.Adam(learning_rate=lr, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon, **wd)
    if isinstance(opt, O.RMSprop):
        return keras.optimizers.RMSprop(learning_rate=lr, rho=opt.rho, momentum=opt.momentum, epsilon=opt.epsilon,
                                        centered=opt.centered, **wd)
    if isinstance(opt, O.SGD):
        return keras.optimizers.SGD(learning_rate=lr, momentum=opt.momentum, nesterov=opt.nesterov, **wd)
    if isinstance(opt, O.Adadelta):
        return keras.optimizers.Adadelta(learning_rate=lr, rho=opt.rho, epsilon=opt.epsilon, **wd)
    if isinstance(opt, O.Adagrad):
        return keras.optimizers.Adagrad(learning_rate=lr, initial_accumulator_value=opt.initial_accumulator_value,
                                        epsilon=opt.epsilon, **wd)
    if isinstance(opt, O.Nadam):
        return keras.optimizers.Nadam(learning_rate=lr, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon, **wd)
    raise ValueError(f"no Keras twin for optimizer {type(opt).__name__}")


def _keras_graph(keras, layers, x, pairs):
    """Apply the Keras twins of `layers` to the Keras tensor x (functional API); a Residual becomes
    its branch and shortcut joined by keras.layers.Add. Appends (minicnn layer, Keras layer) to pairs."""
    for layer in layers:
        if isinstance(layer, Residual):
            branch = _keras_graph(keras, layer.layers, x, pairs)
            side = x if layer.shortcut is None else _keras_graph(keras, layer.shortcut.layers, x, pairs)
            x = keras.layers.Add()([branch, side])
        elif isinstance(layer, Model):
            x = _keras_calls(keras, layer, pairs)(x)
        elif isinstance(layer, Sequential):
            x = _keras_graph(keras, layer.layers, x, pairs)
        else:
            klayer = _keras_layer(keras, layer)
            pairs.append((layer, klayer))
            x = klayer(x)
    return x


def _keras_calls(keras, model, pairs):
    """The Keras twin of functional Model `model`: the same calls on the Keras twins of its layers
    (a shared layer's twin is called as often; a nested Sequential or Residual is unrolled)."""
    inputs = keras.Input(shape=model.input_shape)
    twins, outputs = {}, []
    for node in model._nodes:
        args = [inputs if p < 0 else outputs[p] for p in node.inputs]
        if isinstance(node.layer, Sequential):
            outputs.append(_keras_graph(keras, [node.layer], args[0], pairs))
            continue
        if node.layer not in twins:
            twins[node.layer] = _keras_layer(keras, node.layer)
            pairs.append((node.layer, twins[node.layer]))
        outputs.append(twins[node.layer](args if node.many else args[0]))
    return keras.Model(inputs, outputs[-1], name=model.name)


def to_keras(model, compile=True, copy_weights=True):
    """A Keras model with the same layers (and, with copy_weights, the same weights) as minicnn
    `model`, compiled with the Keras equivalent of its optimizer (legacy decay as InverseTimeDecay,
    which is what it meant). A Sequential for a plain stack; a functional Model for a functional
    Model, or when the stack holds Residual blocks (each an Add of its branch and its shortcut)."""
    import keras
    if not model.built:
        model.build()
    pairs = []
    if isinstance(model, Model):
        kmodel = _keras_calls(keras, model, pairs)
    elif any(isinstance(layer, Sequential) for layer in model.layers):
        inputs = keras.Input(shape=model.input_shape)
        kmodel = keras.Model(inputs, _keras_graph(keras, model.layers, inputs, pairs), name=model.name)
    else:
        kmodel = keras.Sequential([keras.Input(shape=model.input_shape)] + [_keras_layer(keras, l) for l in model.layers])
        pairs = list(zip(model.layers, kmodel.layers))
    for layer, klayer in pairs:
        if copy_weights and layer.weight_keys():
            klayer.set_weights(layer.get_weights())
    if compile and model.compiled:
        kmodel.compile(optimizer=_keras_optimizer(keras, model.optimizer), loss="categorical_crossentropy",
                       metrics=["accuracy"])
    return kmodel


# ---- model.save / load_model with Keras's file names (saving.py dispatches here) --------------------
def _keras():
    try:
        import keras
    except ImportError:
        raise ImportError("a Keras model file (.keras, .h5, .hdf5) is written and read through Keras: "
                          "pip install keras (or save to a .npz name: minicnn's own format)") from None
    return keras


def save_keras_model(model, path):
    """model.save('m.keras' | 'm.h5'): the Keras twin of the model (layers, weights, optimizer),
    saved by Keras into a temporary file next to `path`, then renamed over it (never half-written)."""
    _keras()
    kmodel = to_keras(model)
    path = os.fspath(path)
    suffix = ".keras" if path.lower().endswith(".keras") else ".h5"
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp{suffix}")
    try:
        kmodel.save(tmp)                            # Keras picks its format by the suffix
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_keras_model(path):
    """load_model of a Keras model file: Keras reads it, from_keras rebuilds it in minicnn (layers and
    weights; compile it again: Keras's loss and optimizer state are not carried over)."""
    keras = _keras()
    return from_keras(keras.saving.load_model(os.fspath(path), compile=False))


saving.keras_files.update(save_weights=save_keras_weights, load_weights=load_keras_weights,
                          save_model=save_keras_model, load_model=load_keras_model)
