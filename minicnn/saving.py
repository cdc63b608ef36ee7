"""Weight and model files, written atomically.

Both are NumPy .npz (zip) archives:
    __minicnn__            JSON: format name and version, the model's input shape, and for each layer
                           its structural key (conv2d, conv2d_1, ...), name, class and weight shapes
    <key>/<weight>         one array per weight, e.g. conv2d/W, conv2d/b, batch_normalization/moving_mean
A model file (save / load_model) adds
    __config__             JSON: architecture, compile settings, per-layer extra state
    optimizer/iterations   and optimizer/<key>/<weight>/<slot> for every optimizer slot
Weights are matched by structural key, as Keras 3 does, so layer auto-names do not matter.
Every write goes to a temporary file in the same folder, is fsynced, then renamed over the
target: a save interrupted at any point leaves the previous file intact.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from minicnn import backend, losses, optimizers

FORMAT_WEIGHTS, FORMAT_MODEL, VERSION = "minicnn-weights", "minicnn-model", 1


def atomic_write(path, write):
    """Call write(fileobj) on a temporary file, then atomically rename it to `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:                                    # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _json_array(obj):
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def _layer_table(model):
    return [{"key": key, "name": layer.name, "class": type(layer).__name__,
             "weights": {k: list(layer._weight(k).shape) for k in layer.weight_keys()}}
            for key, layer in model.members()]


def _weight_arrays(model):
    return {f"{key}/{k}": backend.to_host(layer._weight(k))
            for key, layer in model.members() for k in layer.weight_keys()}


def _require_built(model, what):
    if not model.built:
        raise ValueError(f"cannot {what} an unbuilt model: build it (or train it) first")


# ---- Keras's file names: the file is Keras's format, written and read by keras_io ----------------------
# A name ending in .keras, .h5 or .hdf5 means a Keras file, as in Keras: model.save writes a real
# Keras model file, save_weights a Keras 3 .weights.h5; load_weights and load_model recognise a
# file by its content (HDF5 or a .keras zip), whatever its name. keras_io registers its readers and
# writers here when it is imported (minicnn/__init__ imports it; keras_io imports this module).
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
keras_files = {}            # "save_weights" | "load_weights" | "save_model" | "load_model" -> function


def keras_named(filepath):
    return os.fspath(filepath).lower().endswith(KERAS_SUFFIXES)


def keras_content(filepath):
    """True for an HDF5 file or a .keras zip (Keras's formats), by the first bytes."""
    filepath = os.fspath(filepath)
    if not os.path.isfile(filepath):
        return False
    with open(filepath, "rb") as f:
        head = f.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        return True
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(filepath) as z:
                return "model.weights.h5" in z.namelist()
        except zipfile.BadZipFile:
            return False                              # (a broken zip: the reader below says what is wrong)
    return False


def save_weights(model, filepath):
    if keras_named(filepath):
        if not os.fspath(filepath).lower().endswith(".weights.h5"):
            raise ValueError(f"{filepath}: a Keras weights file name ends in .weights.h5 (Keras 3's rule); use "
                             "model.save(...) for a whole .keras/.h5 model, or a .npz name for minicnn's format")
        return keras_files["save_weights"](model, filepath)
    _require_built(model, "save the weights of")
    meta = {"format": FORMAT_WEIGHTS, "version": VERSION, "input_shape": list(model.input_shape),
            "layers": _layer_table(model)}
    arrays = {"__minicnn__": _json_array(meta), **_weight_arrays(model)}
    atomic_write(filepath, lambda f: np.savez(f, **arrays))


def save_model(model, filepath):
    if keras_named(filepath):
        return keras_files["save_model"](model, filepath)
    _require_built(model, "save")
    meta = {"format": FORMAT_MODEL, "version": VERSION, "input_shape": list(model.input_shape),
            "layers": _layer_table(model)}
    config = {"model": model.get_config(),
              "extra_state": {key: layer.extra_state() for key, layer in model.members()},
              "compile": None}
    arrays = {**_weight_arrays(model)}
    if model.compiled:
        opt = model.optimizer
        config["compile"] = {"optimizer": optimizers.serialize(opt), "loss": losses.serialize(model.loss),
                             "metrics": list(model.metric_names), "optimizer_built": bool(opt.built)}
        arrays["optimizer/iterations"] = np.asarray(opt.iterations, dtype=np.int64)
        for path, slots in opt.slots.items():
            for slot, value in slots.items():
                arrays[f"optimizer/{path}/{slot}"] = backend.to_host(value)
    arrays["__minicnn__"] = _json_array(meta)
    arrays["__config__"] = _json_array(config)
    atomic_write(filepath, lambda f: np.savez(f, **arrays))


def _read(filepath):
    """Load every array of a minicnn file into memory, with clear errors for anything else."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"no such weights/model file: {filepath}")
    try:
        with np.load(filepath, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise ValueError(f"{filepath} is not a readable minicnn weights/model file (truncated, corrupted, "
                         f"or another format): {type(e).__name__}: {e}") from None
    if "__minicnn__" not in arrays:
        raise ValueError(f"{filepath} is a NumPy archive but not a minicnn weights/model file "
                         "(it has no __minicnn__ header)")
    try:
        meta = json.loads(arrays.pop("__minicnn__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{filepath}: corrupted minicnn header: {e}") from None
    if meta.get("format") not in (FORMAT_WEIGHTS, FORMAT_MODEL) or meta.get("version") != VERSION:
        raise ValueError(f"{filepath}: unsupported minicnn file format {meta.get('format')!r} "
                         f"version {meta.get('version')!r}")
    return meta, arrays


def _check_structure(model, meta, filepath):
    """Raise a ValueError listing every layer whose weights differ between the file and the model."""
    want = {row["key"]: (row["class"], {k: tuple(v) for k, v in row["weights"].items()}) for row in _layer_table(model)}
    have = {row["key"]: (row["class"], {k: tuple(v) for k, v in row["weights"].items()}) for row in meta["layers"]}
    problems = []
    for key in list(want) + [k for k in have if k not in want]:
        if key not in have:
            if want[key][1]:
                problems.append(f"  {key} ({want[key][0]}): in the model, not in the file")
        elif key not in want:
            if have[key][1]:
                problems.append(f"  {key} ({have[key][0]}): in the file, not in the model")
        elif want[key] != have[key]:
            problems.append(f"  {key}: file {have[key][0]} {have[key][1]} vs model {want[key][0]} {want[key][1]}")
    if problems:
        raise ValueError(f"{filepath} holds weights for a different architecture; the layers that differ:\n"
                         + "\n".join(problems))


def _assign_weights(model, arrays):
    for key, layer in model.members():
        if layer.weight_keys():
            layer.set_weights([arrays[f"{key}/{k}"] for k in layer.weight_keys()])


def load_weights(model, filepath):
    if keras_content(filepath):
        return keras_files["load_weights"](model, filepath)
    meta, arrays = _read(filepath)
    if not model.built:
        model.build(tuple(meta["input_shape"]))
    _check_structure(model, meta, filepath)
    _assign_weights(model, arrays)


def read_model(filepath):
    """(config, meta, arrays) of a file written by save_model: what models.load_model rebuilds from."""
    meta, arrays = _read(filepath)
    if meta["format"] != FORMAT_MODEL or "__config__" not in arrays:
        raise ValueError(f"{filepath} holds only weights; build the model and call model.load_weights() on it")
    config = json.loads(arrays.pop("__config__").tobytes().decode("utf-8"))
    return config, meta, arrays


def restore_model(model, config, meta, arrays, filepath, custom_objects=None):
    """Fill a model rebuilt from config["model"] with the file's weights, extra state, compile
    settings and optimizer state; returns it."""
    if not model.built:
        model.build(tuple(meta["input_shape"]))
    _check_structure(model, meta, filepath)
    _assign_weights(model, arrays)
    for key, layer in model.members():
        layer.set_extra_state(config["extra_state"].get(key, {}))
    compile_config = config.get("compile")
    if compile_config:
        model.compile(optimizer=optimizers.deserialize(compile_config["optimizer"], custom_objects),
                      loss=losses.deserialize(compile_config["loss"]), metrics=compile_config["metrics"])
        opt = model.optimizer
        opt.iterations = int(arrays["optimizer/iterations"])
        if compile_config.get("optimizer_built"):
            model.trainer.track_optimizer_state()            # lookahead_state: the statistics' slow copies are slots
            opt.build([(path, layer.params[k]) for path, layer, k in model.variables()])
            for path, slots in opt.slots.items():
                for slot, value in slots.items():
                    value[...] = backend.xp.asarray(arrays[f"optimizer/{path}/{slot}"])
    return model
