"""Keras files, written and read with h5py alone (Keras need not be installed), and live Keras models.

    model.save("m.keras")  /  model.save("m.h5")      save_keras_model: a .keras zip / a legacy HDF5 file
    minicnn.load_model("m.keras" or "m.h5")           load_keras_model (written by Keras or by minicnn)
    model.save_weights("m.weights.h5")                save_keras_weights (Keras 3's weights file)
    model.load_weights(any of them)                   load_keras_weights (same architecture)
    keras_io.to_keras(model) / from_keras(kmodel)     live Keras models (these need Keras)

The JSON inside (architecture, compile settings) is keras_config's; this module lays out the arrays:

    .keras             a zip: metadata.json (Keras version, date), config.json (the model) and
                       model.weights.h5, laid out as a .weights.h5:
    .weights.h5        layers/<key>/vars/0, 1, ...   each layer's weights, in Keras's order, under its
                                                     key (conv2d, conv2d_1, ...: layers.base.structural_keys)
                       optimizer/vars/0, 1, ...      the optimizer's variables (.keras only; _optimizer_layout)
                       vars                          the model's own variables (none)
    legacy .h5         attributes model_config and training_config (JSON), keras_version, backend;
                       model_weights/<layer name>    attribute weight_names, the arrays at those names
                       optimizer_weights             attribute weight_names, the arrays at those names

Layouts need no conversion: minicnn stores Conv2D kernels as (KH, KW, C, F), Dense kernels as
(D_in, D_out) and flattens NHWC in C order, exactly as Keras does. A file is recognised by its
content (saving.keras_content), whatever its name; every write is atomic (saving.atomic_write).
"""
import io
import json
import math
import os
import struct
import time
import warnings
import zipfile
import zlib

import numpy as np

from minicnn import backend, npz, saving
from minicnn import optimizers as O
from minicnn.keras_config import (KERAS_VERSION, KerasTwin, compile_arguments, compile_config, legacy_config,
                                  model_from_config, optimizer_config_error)
from minicnn.layers.base import weight_cap
from minicnn.saving import atomic_write

_KERAS_WEIGHT = {"W": "kernel", "b": "bias"}           # minicnn weight key -> Keras's variable name
_HEADER_LIMIT = 64512                                  # bytes an HDF5 attribute may hold (Keras splits longer lists)
# what a damaged or foreign file makes the readers raise (turned into a ValueError naming the file)
_UNREADABLE = (OSError, KeyError, TypeError, IndexError, AttributeError, RuntimeError, EOFError,
               zipfile.BadZipFile, zlib.error, struct.error) + npz.ZIP_ERRORS


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading or writing Keras files (.keras, .h5, .weights.h5) needs h5py: "
                          "pip install h5py (or save to a .npz name: minicnn's own format)") from None
    return h5py


def _keras():
    try:
        import keras
    except ImportError:
        raise ImportError("to_keras / from_keras build live Keras models: pip install keras "
                          "(Keras files need only h5py: model.save('m.keras'), minicnn.load_model)") from None
    return keras


def _readable(path, read):
    """read(), with what a damaged or foreign file raises turned into a ValueError naming the file."""
    try:
        return read()
    except ValueError as e:
        if str(e).startswith(path):
            raise
        raise ValueError(f"{path}: {e}") from None
    except _UNREADABLE as e:
        raise ValueError(f"{path} is not a Keras file minicnn can read ({type(e).__name__}: {e})") from None


def _values(item, name, limit):
    """A weight's values, once the item is known to be a numeric dataset of at most `limit` bytes
    (an HDF5 dataset may declare any shape and read back its fill value: terabytes from a small file)."""
    dtype, shape = getattr(item, "dtype", None), getattr(item, "shape", None)
    if dtype is None or shape is None or dtype.kind not in "biuf":
        raise ValueError(f"{name} is not a numeric dataset (dtype {dtype})")
    if math.prod(shape) * dtype.itemsize > limit:
        raise ValueError(f"{name} declares {dtype} {shape}, more bytes than the file can hold ({limit})")
    return np.asarray(item)


def _limit(path):
    """The most bytes of weights a file of this size can give (npz's zip-bomb ratio)."""
    return npz.MAX_EXPANSION * os.path.getsize(path)


def _member(z, name):
    """A .keras zip's member, checked first as npz checks one (no zip bomb, no odd compression)."""
    npz.check_member(z.getinfo(name))
    return z.read(name)


def _mismatch(path, rows):
    raise ValueError(f"{path} does not match the model; the layers that differ:\n" + "\n".join(rows))


def _assign(pairs, path, rows=()):
    """Set each layer's weights to the file's, pairs being (label, minicnn layer, arrays or None
    when the file has none); first a ValueError listing every layer whose weights differ."""
    rows, plan = list(rows), []
    for label, layer, arrays in pairs:
        mine = [tuple(w.shape) for w in layer.get_weights()]
        theirs = None if arrays is None else [tuple(np.shape(a)) for a in arrays]
        if theirs is None and mine:
            rows.append(f"  {label}: in the model, not in the file")
        elif theirs is not None and mine != theirs:
            rows.append(f"  {label}: file {theirs} vs model {mine}")
        elif mine:
            plan.append((layer, arrays))
    if rows:
        _mismatch(path, rows)
    for layer, arrays in plan:
        layer.set_weights(arrays)


# ---- HDF5 name lists (Keras splits one longer than an attribute holds: name0, name1, ...) ----------
def _write_names(group, attr, names):
    data = np.array([n.encode("utf8") for n in names]) if names else np.zeros(0)
    chunks = 1
    while any(c.nbytes > _HEADER_LIMIT for c in np.array_split(data, chunks)):
        chunks += 1
    if chunks == 1:
        group.attrs[attr] = data
    else:
        for i, chunk in enumerate(np.array_split(data, chunks)):
            group.attrs[f"{attr}{i}"] = chunk


def _has_names(group, attr):
    return attr in group.attrs or f"{attr}0" in group.attrs


def _names(group, attr):
    values = list(group.attrs[attr]) if attr in group.attrs else []
    i = 0
    while f"{attr}{i}" in group.attrs:
        values += list(group.attrs[f"{attr}{i}"])
        i += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _arrays(group, limit, attr="weight_names"):
    """The arrays a legacy HDF5 group lists, in its order (each at most `limit` bytes)."""
    return [_values(group[name], f"{group.name}/{name}", limit) for name in _names(group, attr)]


def _legacy_weights(root, klayers, limit):
    """{KerasLayer: arrays} from a legacy file's model_weights: a group per layer of the model with
    its weights; a nested Sequential's group holds all its layers' trainable weights, then all their
    other weights (Keras's legacy order), dealt out here to its layers."""
    groups = {}
    for kl in klayers:
        if kl.layer is not None and kl.path[0] in root:
            groups.setdefault(kl.path[0], []).append(kl)
    found = {}
    for name, members in groups.items():
        arrays = _arrays(root[name], limit)
        if members[0].path == (name,):                         # a layer of the model itself
            found[members[0]] = arrays
            continue
        trainable = [(kl, i) for kl in members for i in range(len(kl.layer.params) if kl.layer.trainable else 0)]
        others = [(kl, i) for kl in members
                  for i in range(len(kl.layer.params) if kl.layer.trainable else 0, len(kl.layer.weight_keys()))]
        if len(arrays) != len(trainable) + len(others):
            continue                                           # (_assign reports them)
        dealt = {kl: [None] * len(kl.layer.weight_keys()) for kl in members}
        for (kl, i), array in zip(trainable + others, arrays):
            dealt[kl][i] = array
        found.update(dealt)
    return found


# ---- weights files ------------------------------------------------------------------------------------
def _read_keras3(h5, limit):
    """{key: [arrays in Keras's order]} from a Keras 3 .weights.h5 (or a .keras's model.weights.h5):
    each layer's group under layers/, and, for a model nested in the model, its layers' groups
    under its own layers/ (keys "sequential/layers/conv2d")."""
    out = {}

    def walk(group, prefix):
        for key, layer in group.items():
            variables = layer.get("vars", {})
            out[prefix + key] = [_values(variables[str(i)], f"layers/{prefix}{key}/vars/{i}", limit)
                                 for i in range(len(variables))]
            if "layers" in layer:
                walk(layer["layers"], f"{prefix}{key}/layers/")
    walk(h5["layers"], "")
    return out


def _read_legacy(h5, limit):
    """[(layer name, [arrays])] in file order from a legacy HDF5 file (tf.keras save_weights / save)."""
    root = h5["model_weights"] if "model_weights" in h5 else h5
    if not _has_names(root, "layer_names"):
        raise ValueError("neither a Keras 3 weights file nor a legacy HDF5 weights file")
    return [(name, _arrays(root[name], limit)) for name in _names(root, "layer_names")]


def read_keras_weights(path):
    """('keras3', {key: arrays}) or ('legacy', [(name, arrays)]) from .weights.h5 / .keras / .h5."""
    h5py, path = _h5py(), os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such Keras weights file: {path}")

    def read():
        limit = _limit(path)
        if zipfile.is_zipfile(path):                       # .keras: a zip holding model.weights.h5
            with zipfile.ZipFile(path) as z:
                if "model.weights.h5" not in z.namelist():
                    raise ValueError("a zip without model.weights.h5; not a .keras file")
                data = _member(z, "model.weights.h5")
            with h5py.File(io.BytesIO(data), "r") as h5:
                return "keras3", _read_keras3(h5, limit)
        with h5py.File(path, "r") as h5:
            if "layers" in h5:
                return "keras3", _read_keras3(h5, limit)
            return "legacy", _read_legacy(h5, limit)
    return _readable(path, read)


def load_keras_weights(model, path):
    """Copy the weights of a Keras file into `model` (same architecture as its Keras twin), with a
    clear error listing every layer whose weights differ. Keras 3 files match layers by key, legacy
    ones by position over the layers with weights (Keras's rules)."""
    if not model.built:
        model.build()
    kind, data = read_keras_weights(path)
    path = os.fspath(path)
    klayers = [kl for kl in KerasTwin(model).layers if kl.layer is not None]
    if kind == "keras3":
        keys = {kl.key for kl in klayers}
        extra = [f"  {key}: in the file, not in the model" for key in data if data[key] and key not in keys]
        _assign([(f"{kl.key} ({kl.class_name})", kl.layer, data.get(kl.key)) for kl in klayers], path, extra)
        return
    with_weights = [kl for kl in klayers if kl.layer.weight_keys()]
    data = [(name, arrays) for name, arrays in data if arrays]
    rows = [] if len(data) == len(with_weights) else [
        f"  the file has {len(data)} layers with weights, the model {len(with_weights)}"]
    _assign([(f"{kl.key} (file layer {name!r})", kl.layer, arrays) for (name, arrays), kl in zip(data, with_weights)],
            path, rows)


def _weights_h5(h5py, twin, optimizer=None):
    """The bytes of a Keras 3 weights file for `twin`'s layers (and the optimizer's variables,
    [(name, array)], for a .keras)."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        layers = h5.create_group("layers")
        for kl in twin.layers:
            if kl.key is None:                         # (a Sequential's InputLayer: no group)
                continue
            variables = layers.create_group(kl.key).create_group("vars")
            variables.attrs["name"] = kl.name
            for i, w in enumerate(kl.weights()):
                variables.create_dataset(str(i), data=np.asarray(w, dtype=np.float32))
        if optimizer is not None:
            variables = h5.create_group("optimizer").create_group("vars")
            variables.attrs["name"] = twin.model.optimizer.name
            for i, (_, value) in enumerate(optimizer):
                variables.create_dataset(str(i), data=value)
        h5.create_group("vars").attrs["name"] = twin.model.name
    return buf.getvalue()


def save_keras_weights(model, path):
    """Write a Keras 3 .weights.h5 that keras_model.load_weights(path) accepts for the same
    architecture: the layers' weights and, as Keras's save_weights, the optimizer's variables
    (when the model is compiled with an optimizer Keras has)."""
    h5py = _h5py()
    if not str(path).endswith(".weights.h5"):
        raise ValueError(f"Keras requires a weights file name ending in .weights.h5, got {path!r}")
    saving._require_built(model, "save the weights of")
    twin = KerasTwin(model)
    with_optimizer = model.compiled and optimizer_config_error(model.optimizer) is None
    data = _weights_h5(h5py, twin, _optimizer_arrays(model, twin.layers) if with_optimizer else None)
    atomic_write(path, lambda f: f.write(data))


# ---- the optimizer's variables ------------------------------------------------------------------------
# Keras 3's optimizer variables, in its order: iteration, learning_rate (none with a schedule), the
# weight averages (use_ema), then each group of slots: for every trainable variable, each slot of
# the group (Keras's add_optimizer_variables interleaves them); Nadam's u_product last.
_SLOT_GROUPS = {O.SGD: lambda o: [["momentum"]] if o.momentum else [],
                O.RMSprop: lambda o: [["velocity"]] + ([["momentum"]] if o.momentum else [])
                + ([["average_gradient"]] if o.centered else []),
                O.Adam: lambda o: [["m", "v"]] + ([["vhat"]] if o.amsgrad else []),
                O.Adadelta: lambda o: [["accumulated_grad", "accumulated_delta_var"]],
                O.Adagrad: lambda o: [["accumulator"]],
                O.Nadam: lambda o: [["m", "v"]]}
_KERAS_SLOT = {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"}


def _optimizer_layout(model, klayers):
    """[(Keras's variable name, what minicnn keeps there)] for the optimizer of compiled `model`, in
    Keras's order; what: 'iterations', 'learning_rate', 'u_product' or (variable path, slot). Only
    the first two while the optimizer is not built (as Keras writes an unbuilt one)."""
    opt = model.optimizer
    layout = [("iteration", "iterations")]
    if not isinstance(opt.learning_rate, O.LearningRateSchedule):
        layout.append(("learning_rate", "learning_rate"))
    if not opt.built:
        return layout
    paths = {(id(layer), k): path for path, layer, k in model.variables()}
    variables = [(f"{kl.name}_{_KERAS_WEIGHT.get(k, k)}", paths[id(kl.layer), k])
                 for kl in klayers if kl.layer is not None for k in kl.layer.params if (id(kl.layer), k) in paths]
    for group in ([["average"]] if opt.use_ema else []) + _SLOT_GROUPS[type(opt)](opt):
        layout += [(f"{name}_{_KERAS_SLOT.get(slot, slot)}", (path, slot))
                   for name, path in variables for slot in group]
    if isinstance(opt, O.Nadam):
        layout.append(("variable", "u_product"))
    return layout


def _optimizer_arrays(model, klayers):
    """[(Keras's variable name, array)] of the optimizer of compiled `model`."""
    opt = model.optimizer

    def value(what):
        if what == "iterations":
            return np.asarray(opt.iterations, dtype=np.int64)
        if what == "learning_rate":
            return np.asarray(opt.learning_rate, dtype=np.float32)
        if what == "u_product":              # Keras's running product mu(1)...mu(t) after t updates
            return np.asarray(opt.u_product(opt.iterations - 1) if opt.iterations else 1.0, dtype=np.float32)
        path, slot = what
        return np.asarray(backend.to_host(opt.slots[path][slot]), dtype=np.float32)
    return [(f"{opt.name}/{name}", value(what)) for name, what in _optimizer_layout(model, klayers)]


def _restore_optimizer(model, klayers, arrays, path):
    """Set the optimizer of just-compiled `model` from Keras's variables (the step count and the
    slots; the learning rate comes from the config, u_product from the step count). When they do
    not match, a warning, as Keras gives, and the optimizer starts afresh."""
    opt = model.optimizer
    if len(arrays) > len(_optimizer_layout(model, klayers)):       # the file's optimizer was built
        opt.build([(p, layer.params[k]) for p, layer, k in model.variables()])
    layout = _optimizer_layout(model, klayers)
    slots = [(what, a) for (_, what), a in zip(layout, arrays) if isinstance(what, tuple)]
    if len(layout) != len(arrays) or any(opt.slots[p][s].shape != np.shape(a) for (p, s), a in slots):
        warnings.warn(f"{path}: the optimizer's saved variables do not match its {len(layout)} variables "
                      f"(the file has {len(arrays)}); it starts afresh", stacklevel=3)
        return
    opt.iterations = int(arrays[0])
    for (p, s), a in slots:
        opt.slots[p][s][...] = backend.xp.asarray(a)


def _compile(model, klayers, settings, arrays, path):
    """Compile a model read from a Keras file as its compile settings say, and restore its optimizer;
    a warning (the model stays uncompiled) for settings minicnn lacks."""
    if not settings:
        return
    try:
        model.compile(**compile_arguments(settings))
    except ValueError as e:
        warnings.warn(f"{path}: the model is loaded uncompiled ({e}); compile it again", stacklevel=3)
        return
    if arrays:
        _restore_optimizer(model, klayers, arrays, path)


def _compile_settings(model, path):
    """Keras's compile_config of `model`: {} when it is not compiled, or, with a warning, when its
    optimizer or loss has no Keras twin (the file then holds an uncompiled model)."""
    try:
        return compile_config(model)
    except ValueError as e:
        warnings.warn(f"{path}: saved uncompiled ({e})", stacklevel=4)
        return {}


# ---- model files ---------------------------------------------------------------------------------------
def _keras_zip(spec, weights):
    """The bytes of a .keras file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": KERAS_VERSION,
                                                "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}))
        z.writestr("config.json", json.dumps(spec))
        z.writestr("model.weights.h5", weights)
    return buf.getvalue()


def _training_config(settings):
    """A .keras compile_config as legacy HDF5 files hold it (the optimizer under optimizer_config)."""
    optimizer = settings["optimizer"]
    return {**{k: v for k, v in settings.items() if k != "optimizer"},
            "optimizer_config": {"class_name": optimizer["class_name"], "config": optimizer["config"]}}


def _legacy_h5(h5py, twin, spec, optimizer=None):
    """The bytes of a legacy HDF5 model file (Keras's save_model_to_hdf5 layout)."""
    buf = io.BytesIO()
    prefix = "" if twin.functional else f"{twin.model.name}/"     # Keras's variable paths
    layers = [kl for kl in twin.layers if kl.key is not None]
    with h5py.File(buf, "w") as h5:
        h5.attrs.update(backend="tensorflow", keras_version=KERAS_VERSION, model_config=json.dumps(legacy_config(spec)))
        if spec["compile_config"]:
            h5.attrs["training_config"] = json.dumps(_training_config(spec["compile_config"]))
        root = h5.create_group("model_weights")
        _write_names(root, "layer_names", [kl.name for kl in layers])
        root.attrs.update(backend="tensorflow", keras_version=KERAS_VERSION)
        for kl in sorted(layers, key=lambda kl: kl.name):
            keys = kl.layer.weight_keys() if kl.layer is not None else []
            names = [f"{prefix}{kl.name}/{_KERAS_WEIGHT.get(k, k)}" for k in keys]
            group = root.create_group(kl.name)
            _write_names(group, "weight_names", names)
            for name, w in zip(names, kl.weights()):
                group.create_dataset(name, data=np.asarray(w, dtype=np.float32))
        _write_names(root.create_group("top_level_model_weights"), "weight_names", [])
        if optimizer is not None:
            group = h5.create_group("optimizer_weights")
            _write_names(group, "weight_names", [name for name, _ in optimizer])
            for name, value in optimizer:
                group.create_dataset(name, data=value)
    return buf.getvalue()


def save_keras_model(model, path):
    """model.save('m.keras' | 'm.h5' | 'm.hdf5'): the model as Keras would save its twin (layers,
    weights, compile settings, optimizer variables), a .keras zip or a legacy HDF5 file by the
    name; Keras's load_model reads it. Written atomically."""
    h5py, path = _h5py(), os.fspath(path)
    saving._require_built(model, "save")
    twin = KerasTwin(model)
    settings = _compile_settings(model, path)
    spec = twin.config(settings)
    optimizer = _optimizer_arrays(model, twin.layers) if settings else None
    if path.lower().endswith(".keras"):
        data = _keras_zip(spec, _weights_h5(h5py, twin, optimizer))
    else:
        data = _legacy_h5(h5py, twin, spec, optimizer)
    atomic_write(path, lambda f: f.write(data))


def _load_keras_zip(h5py, path):
    with zipfile.ZipFile(path) as z:
        missing = [n for n in ("config.json", "model.weights.h5") if n not in z.namelist()]
        if missing:
            raise ValueError(f"a zip without {' or '.join(missing)}; not a .keras model file")
        spec, weights = json.loads(_member(z, "config.json")), _member(z, "model.weights.h5")
    limit = _limit(path)
    with weight_cap(limit // 4, path, held="a file of this size can hold"):      # (float32 values at most)
        model, klayers = model_from_config(spec)
    with h5py.File(io.BytesIO(weights), "r") as h5:
        data = _read_keras3(h5, limit)
        _assign([(f"{kl.key} ({kl.class_name})", kl.layer, data.get(kl.key)) for kl in klayers
                 if kl.layer is not None], path)
        variables = h5["optimizer/vars"] if "optimizer/vars" in h5 else {}
        arrays = [_values(variables[str(i)], f"optimizer/vars/{i}", limit) for i in range(len(variables))]
    _compile(model, klayers, spec.get("compile_config"), arrays, path)
    return model


def _load_legacy(h5py, path):
    with h5py.File(path, "r") as h5:
        if "model_config" not in h5.attrs:
            raise ValueError("a weights file without a model; build the model and call model.load_weights() on it")
        config = h5.attrs["model_config"]
        limit = _limit(path)
        with weight_cap(limit // 4, path, held="a file of this size can hold"):
            model, klayers = model_from_config(json.loads(config.decode() if isinstance(config, bytes) else config))
        found = _legacy_weights(h5["model_weights"], klayers, limit)
        _assign([("/".join(kl.path), kl.layer, found.get(kl)) for kl in klayers if kl.layer is not None], path)
        settings = h5.attrs.get("training_config")
        settings = json.loads(settings.decode() if isinstance(settings, bytes) else settings) if settings else None
        arrays = _arrays(h5["optimizer_weights"], limit) if "optimizer_weights" in h5 else []
    _compile(model, klayers, settings, arrays, path)
    return model


def load_keras_model(path):
    """load_model of a Keras file (.keras or legacy .h5, by its content; Keras need not be
    installed): the model from its config, its weights, and, when the file says how it was
    compiled, compiled so with the optimizer's state restored."""
    h5py, path = _h5py(), os.fspath(path)
    if zipfile.is_zipfile(path):
        return _readable(path, lambda: _load_keras_zip(h5py, path))
    return _readable(path, lambda: _load_legacy(h5py, path))


# ---- live Keras models (Keras installed) ---------------------------------------------------------------
def to_keras(model, compile=True, copy_weights=True):
    """The Keras twin of minicnn `model`: Keras builds it from the config a .keras file would hold
    (a Sequential for a plain stack; a functional model for a functional Model, or when the stack
    holds Residual blocks, each an Add of its branch and its shortcut), with the same weights
    (copy_weights) and, with compile, compiled with the same optimizer, loss and metrics."""
    keras = _keras()
    twin = KerasTwin(model)
    kmodel = keras.saving.deserialize_keras_object(twin.config())
    for kl in twin.layers:
        if copy_weights and kl.layer is not None and kl.layer.weight_keys():
            kmodel.get_layer(kl.name).set_weights(kl.weights())
    if compile and model.compiled:
        settings = compile_config(model)
        loss = settings["loss"]
        kmodel.compile(optimizer=keras.optimizers.deserialize(settings["optimizer"]), metrics=settings["metrics"],
                       loss=keras.losses.deserialize(loss) if isinstance(loss, dict) else loss)
    return kmodel


def from_keras(kmodel):
    """A minicnn model with the same layers, configuration and weights as Keras model `kmodel`: a
    Sequential for a keras.Sequential, a functional Model for a functional one (read from the
    config Keras serializes it to, as a file would be)."""
    keras = _keras()
    model, klayers = model_from_config(keras.saving.serialize_keras_object(kmodel))
    for kl in klayers:
        if kl.layer is not None and kl.layer.weight_keys():
            klayer = kmodel
            for name in kl.path:                   # (a layer of a nested Sequential: through it)
                klayer = klayer.get_layer(name)
            kl.layer.set_weights([np.asarray(w) for w in klayer.get_weights()])
    return model


saving.keras_files.update(save_weights=save_keras_weights, load_weights=load_keras_weights,
                          save_model=save_keras_model, load_model=load_keras_model)
