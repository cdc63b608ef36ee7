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
target: a save interrupted at any point leaves the previous file intact (atomic_write).
Reading trusts nothing in a file: every member, header, table entry and config argument is checked
before it is used, and every problem is a ValueError naming the file (see "reading" below).
"""
import errno
import json
import os
import stat
import tempfile
import zipfile

import numpy as np

from minicnn import backend, file_checks, losses, npz, optimizers
from minicnn.layers.base import weight_cap

FORMAT_WEIGHTS, FORMAT_MODEL, VERSION = "minicnn-weights", "minicnn-model", 1


def atomic_write(path, write):
    """Call write(fileobj) on a temporary file in the target's folder, then rename it over `path`.

    The temporary file is fsynced before the rename, so `path` is at every moment the old file or
    the new one, whole: after a crash, a full disk, a read-only folder (the old file stays and no
    temporary file is left), or another process saving to the same path (each rename puts one
    complete file in place). The file gets the permissions open(path, "w") gives: those of the file
    it replaces, or for a new file 0666 less the umask (-rw-r--r-- under the usual umask 022), not
    the -rw------- of a bare temporary file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"cannot save to {path!r}: it is a folder (give a file name, "
                                f"e.g. {os.path.join(path, 'model.keras')!r})")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    except OSError as error:
        raise _target_error(path, folder, error) from error
    mode = _file_mode(path)
    try:
        with os.fdopen(fd, "wb") as f:
            _chmod(tmp, mode)
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


def _check_overwrite(filepath, overwrite):
    """Keras's overwrite=False: keep an existing file (Keras asks at the terminal; minicnn refuses)."""
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(errno.EEXIST, f"{os.fspath(filepath)!r} exists and overwrite=False: nothing was "
                              "written (pass overwrite=True to replace it)")


def _target_error(path, folder, error):
    """The OSError of a save, saying which target could not be written and why, not naming the
    temporary file: the folder is a file, is missing, or refuses writes."""
    blocker = folder
    while blocker and not os.path.exists(blocker):
        blocker = os.path.dirname(blocker)
    if blocker and not os.path.isdir(blocker):
        return NotADirectoryError(errno.ENOTDIR, f"cannot save to {path!r}: {blocker!r} is a file, not a folder")
    why = error.strerror or str(error)
    return type(error)(error.errno, f"cannot save to {path!r}: {why} (in the folder {folder!r})")


def _file_mode(path):
    """The permission bits open(path, "w") would leave: the existing file's (read, write, execute; no
    set-id bits), or 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except OSError:
        return 0o666 & ~_umask()


def _chmod(path, mode):
    try:
        os.chmod(path, mode)
    except OSError:                         # a filesystem without Unix permissions (vfat, some network
        pass                                # mounts) refuses chmod: its own rule applies, the save goes on


def _umask():
    """The process's umask, read without changing it where Linux shows it (/proc/self/status); elsewhere
    set and restored at once (the only portable way, racy if another thread creates a file meanwhile)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


# ---- Keras's file names: the file is Keras's format, written and read by keras_io with h5py alone --------
# A name ending in .keras, .h5 or .hdf5 means a Keras file, as in Keras: model.save writes a real
# Keras model file, save_weights a Keras 3 .weights.h5; load_weights and load_model recognise a
# file by its content (HDF5 or a .keras zip), whatever its name. keras_io registers its readers and
# writers here when it is imported (minicnn/__init__ imports it; keras_io imports this module).
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
keras_files = {}            # "save_weights" | "load_weights" | "save_model" | "load_model" -> function
                            # (and "to_json", which model_json registers: models imports it)


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
        except npz.ZIP_ERRORS:
            return False                              # (a broken zip: the reader below says what is wrong)
    return False


class FileMethods:
    """A model's file methods (mixed into Sequential): save, save_weights, load_weights, to_json."""

    def save_weights(self, filepath, overwrite=True):
        save_weights(self, filepath, overwrite)

    def load_weights(self, filepath):
        load_weights(self, filepath)

    def save(self, filepath, overwrite=True):
        save_model(self, filepath, overwrite)

    def to_json(self, **kwargs):
        """The model's architecture (and compile settings) as Keras's JSON, which
        keras.models.model_from_json and minicnn.models.model_from_json read; kwargs go to
        json.dumps (model_json.to_json, registered in keras_files)."""
        return keras_files["to_json"](self, **kwargs)


def save_weights(model, filepath, overwrite=True):
    _check_overwrite(filepath, overwrite)
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


def save_model(model, filepath, overwrite=True):
    _check_overwrite(filepath, overwrite)
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


# ---- reading: nothing from a file is used before it is checked -------------------------------------
# npz.read_npz checks every member's .npy header before reading it; file_checks.check_table checks
# the __minicnn__ table against the arrays, file_checks.check_model_config a model file's
# architecture (types and ranges of every argument) before any layer is made; load_model builds it
# under a cap of the weight values the file holds. Every failure is a ValueError naming the file.
def _read(filepath):
    """(meta, arrays) of a minicnn file: the __minicnn__ table and {name: array} of the rest."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"no such weights/model file: {filepath}")
    arrays = npz.read_npz(filepath, "minicnn weights/model file")
    if "__minicnn__" not in arrays:
        raise ValueError(f"{filepath} is a NumPy archive but not a minicnn weights/model file "
                         "(it has no __minicnn__ header)")
    meta = file_checks.json_member(arrays.pop("__minicnn__"), "__minicnn__", filepath)
    file_checks.expect(isinstance(meta, dict), filepath, "the __minicnn__ header", "a JSON object", meta)
    if meta.get("format") not in (FORMAT_WEIGHTS, FORMAT_MODEL) or meta.get("version") != VERSION:
        raise ValueError(f"{filepath}: unsupported minicnn file format {meta.get('format')!r} "
                         f"version {meta.get('version')!r}")
    file_checks.check_table(meta, arrays, filepath)
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


def _held_values(arrays):
    """How many weight values the file holds: the most a model built from it may create."""
    return sum(int(arrays[name].size) for name in file_checks.weight_names(arrays))


def load_weights(model, filepath):
    if keras_content(filepath):
        return keras_files["load_weights"](model, filepath)
    meta, arrays = _read(filepath)
    if not model.built:
        with weight_cap(_held_values(arrays), filepath):      # (the file's input shape sizes the weights)
            model.build(tuple(meta["input_shape"]))
    _check_structure(model, meta, filepath)
    _assign_weights(model, arrays)


def read_model(filepath):
    """(config, meta, arrays) of a file written by save_model, the config checked
    (file_checks.check_model_config): what models.load_model rebuilds from."""
    meta, arrays = _read(filepath)
    if meta["format"] != FORMAT_MODEL or "__config__" not in arrays:
        raise ValueError(f"{filepath} holds only weights; build the model and call model.load_weights() on it")
    config = file_checks.json_member(arrays.pop("__config__"), "__config__", filepath)
    file_checks.check_model_config(config, filepath)
    return config, meta, arrays


# what a layer, optimizer or loss made from a checked config may still raise on a bad value
REBUILD_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


def load_model(filepath, rebuild, custom_objects=None):
    """A model from a file written by save_model: read and checked (read_model), rebuilt by
    rebuild(config, custom_objects) (models._rebuild: a Sequential's or functional Model's
    from_config) creating at most the weight values the file holds (layers.base.weight_cap), then
    filled (restore_model). An error raised while rebuilding from the file's config becomes a
    ValueError naming the file, the original chained."""
    filepath = os.fspath(filepath)
    config, meta, arrays = read_model(filepath)
    try:
        with weight_cap(_held_values(arrays), filepath):
            model = rebuild(config["model"], custom_objects)
            return restore_model(model, config, meta, arrays, filepath, custom_objects)
    except REBUILD_ERRORS as e:
        if isinstance(e, ValueError) and filepath in str(e):
            raise
        raise ValueError(f"{filepath}: cannot rebuild the model it describes: {type(e).__name__}: {e}") from e


def restore_model(model, config, meta, arrays, filepath, custom_objects=None):
    """Fill a model rebuilt from config["model"] with the file's weights, extra state, compile
    settings and optimizer state; returns it."""
    if not model.built:
        model.build(tuple(meta["input_shape"]))
    _check_structure(model, meta, filepath)
    _assign_weights(model, arrays)
    for key, layer in model.members():
        layer.set_extra_state(config["extra_state"].get(key, {}))
    if config.get("compile"):
        _restore_optimizer(model, config["compile"], arrays, filepath, custom_objects)
    return model


def _restore_optimizer(model, compile_config, arrays, filepath, custom_objects):
    """Compile the model as it was saved and give the optimizer its step count and slots."""
    model.compile(optimizer=optimizers.deserialize(compile_config["optimizer"], custom_objects),
                  loss=losses.deserialize(compile_config["loss"]), metrics=compile_config["metrics"])
    opt = model.optimizer
    opt.iterations = int(file_checks.stored_array(arrays, "optimizer/iterations", (), "iu", filepath))
    file_checks.expect(0 <= opt.iterations < 2**63, filepath, "optimizer/iterations", "an int in [0, 2**63)",
                       opt.iterations)
    if compile_config["optimizer_built"]:
        model.trainer.track_optimizer_state()            # lookahead_state: the statistics' slow copies are slots
        opt.build([(path, layer.params[k]) for path, layer, k in model.variables()])
        for path, slots in opt.slots.items():
            for slot, value in slots.items():
                stored = file_checks.stored_array(arrays, f"optimizer/{path}/{slot}", value.shape, "f", filepath)
                value[...] = backend.xp.asarray(stored)
