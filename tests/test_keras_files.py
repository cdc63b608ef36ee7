"""Keras model files (.keras, legacy .h5) written and read by keras_io with h5py alone.

Without Keras (a subprocess where `import keras` fails): minicnn's own round trips, every layer
with a Keras twin, Sequential, functional Model and Residual blocks, compiled with their optimizer
state. With Keras (skipped, visibly, when it is not installed): Keras loads what minicnn writes and
minicnn loads what Keras writes, with the same predictions and, for .keras files, the same next
training step. Then: files recognised by their content, not their name; clear errors.
"""
import json
import os
import pathlib
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

pytest.importorskip("h5py", reason="h5py is not installed (pip install h5py): Keras-file tests skipped")

import minicnn  # noqa: E402
from minicnn import optimizers  # noqa: E402
from minicnn.constraints import MaxNorm  # noqa: E402
from minicnn.layers import (Activation, Add, AveragePooling2D, BatchNormalization, Concatenate, Conv2D,  # noqa: E402
                            Dense, Dropout, Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, Input,
                            LeakyReLU, MaxPooling2D, ReLU, Rescaling, Softmax, ZeroPadding2D)

SUFFIXES = (".keras", ".h5")


# ---- the models: every layer minicnn shares with Keras -------------------------------------------------
def _sequential():
    return minicnn.Sequential([
        Input(shape=(8, 8, 3)), Rescaling(0.5, offset=0.1), ZeroPadding2D(((1, 0), (0, 2))),
        Conv2D(4, 3, padding="same", activation="relu", kernel_initializer="he_normal",
               kernel_constraint=MaxNorm(2.0, axis=[0, 1, 2])),
        BatchNormalization(momentum=0.9), MaxPooling2D(), ReLU(max_value=3.0, negative_slope=0.1), LeakyReLU(0.2),
        AveragePooling2D(2, strides=1, padding="same"), Activation("tanh"), GlobalMaxPooling2D(keepdims=True),
        Flatten(), Dropout(0.25), Dense(5, kernel_constraint=MaxNorm(1.5)), Softmax()], name="every_layer")


def _functional():
    """Two branches joined by Add and Concatenate, and a Dense shared by two calls."""
    inputs = Input(shape=(6, 6, 3))
    a = Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = Conv2D(4, 1, activation="tanh", use_bias=False)(inputs)
    x = MaxPooling2D()(Concatenate()([Add()([a, b]), b]))
    shared = Dense(6, activation="relu")
    left, right = shared(Flatten()(x)), shared(Flatten()(Conv2D(8, 1)(x)))
    outputs = Dense(10, activation="softmax")(Concatenate()([left, right]))
    return minicnn.Model(inputs, outputs, name="graph")


def _residual():
    """Residual blocks in a Sequential: Keras holds them as a functional model with Add layers."""
    return minicnn.Sequential([
        Input(shape=(8, 8, 3)), Conv2D(4, 3, padding="same", activation="relu"),
        minicnn.Residual([Conv2D(4, 3, padding="same", activation="relu"), BatchNormalization(),
                          Conv2D(4, 3, padding="same")]),
        Activation("relu"),
        minicnn.Residual([Conv2D(6, 3, strides=2, padding="same"), Conv2D(6, 3, padding="same")],
                         shortcut=[Conv2D(6, 1, strides=2)]),
        GlobalAveragePooling2D(), Dense(10, activation="softmax")], name="blocks")


MODELS = {"sequential": _sequential, "functional": _functional, "residual": _residual}
OPTIMIZERS = {"sequential": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
              "functional": lambda: optimizers.Adam(1e-3, amsgrad=True, weight_decay=1e-3),
              "residual": lambda: optimizers.Nadam(optimizers.InverseTimeDecay(1e-3, 2, 0.5), use_ema=True)}


def _data(input_shape, classes, n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(input_shape), dtype=np.float32)
    return x, np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]


def _trained(name):
    """A compiled model of MODELS[name], after one epoch (its optimizer holds state), and its data."""
    minicnn.backend.set_seed(3)
    model = MODELS[name]()
    model.compile(optimizer=OPTIMIZERS[name](), loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(model.input_shape, model.output_shape[-1])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return model, x, y


def _next_steps_match(model, other, x, y, rtol=1e-6, atol=1e-7):
    """One train_on_batch on each of two models (minicnn or Keras) with the same weights: the same
    weights after it, so their optimizer states matched. (Dropout is switched off on both: the
    files keep its seed, not how many masks it drew.)"""
    for layer in list(model.layers) + list(other.layers):
        if type(layer).__name__ == "Dropout":
            layer.rate = 0.0
    other.train_on_batch(x[:8], y[:8])
    model.train_on_batch(x[:8], y[:8])
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _config(model):
    """minicnn's config, less the model's seed (a Keras file has none)."""
    return {k: v for k, v in model.get_config().items() if k != "seed"}


def check_round_trip(name, suffix, folder):
    """model.save then load_model: the same predictions, the same config (Sequential and Model; a
    Residual stack comes back as the functional Model Keras holds), compiled as before with the same
    optimizer state: the next training step is the same."""
    model, x, y = _trained(name)
    path = pathlib.Path(folder) / f"{name}{suffix}"
    model.save(path)
    back = minicnn.load_model(path)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6, atol=1e-7)
    if name != "residual":
        assert _config(back) == _config(model)
    assert type(back.optimizer) is type(model.optimizer) and back.metric_names == ["accuracy"]
    assert back.optimizer.iterations == model.optimizer.iterations == 2
    _next_steps_match(model, back, x, y)


def check_all_round_trips(folder):
    for name in MODELS:
        for suffix in SUFFIXES:
            check_round_trip(name, suffix, folder)


# ---- without Keras ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip(name, suffix, tmp_path):
    check_round_trip(name, suffix, tmp_path)


def test_round_trips_run_where_keras_cannot_be_imported(tmp_path):
    """The same round trips in a fresh interpreter in which `import keras` (and TensorFlow) fails."""
    script = (f"import sys; sys.modules['keras'] = sys.modules['tensorflow'] = None; "
              f"sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r}); "
              f"import test_keras_files as t; t.check_all_round_trips({str(tmp_path)!r}); "
              f"assert sys.modules['keras'] is None; print('round trips ok')")
    root = pathlib.Path(minicnn.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "round trips ok" in done.stdout, done.stderr[-3000:]


def test_a_keras_file_is_what_keras_writes(tmp_path):
    """The .keras zip: metadata.json, config.json (a Functional with Keras's node records) and
    model.weights.h5 keyed as Keras keys it; the legacy .h5: model_config and model_weights."""
    import h5py
    model, _, _ = _trained("functional")
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert z.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert json.loads(z.read("metadata.json"))["keras_version"].startswith("3.")
        spec = json.loads(z.read("config.json"))
        (tmp_path / "w.h5").write_bytes(z.read("model.weights.h5"))
    assert (spec["class_name"], spec["registered_name"]) == ("Functional", "Functional")
    layers = spec["config"]["layers"]
    assert [e["class_name"] for e in layers] == [type(l).__name__ for l in model.layers]
    assert [e["class_name"] for e in layers if len(e["inbound_nodes"]) == 2] == ["Dense"]    # the shared one
    assert spec["compile_config"]["optimizer"]["class_name"] == "Adam"
    with h5py.File(tmp_path / "w.h5", "r") as h5:
        assert sorted(h5["layers"]) == sorted(model.structural_keys())
        assert len(h5["optimizer/vars"]) == 2 + 3 * len(model.variables())      # iteration, lr; m, v, vhat
        np.testing.assert_array_equal(h5["layers/dense_1/vars/0"], model.layers[-1].get_weights()[0])
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as h5:
        assert json.loads(h5.attrs["model_config"])["class_name"] == "Functional"
        names = [n.decode() for n in h5["model_weights"].attrs["layer_names"]]
        assert names == [layer.name for layer in model.layers]


def test_residual_blocks_are_written_as_keras_add_layers(tmp_path):
    model, x, _ = _trained("residual")
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        layers = json.loads(z.read("config.json"))["config"]["layers"]
    assert sum(e["class_name"] == "Add" for e in layers) == 2
    back = minicnn.load_model(tmp_path / "m.keras")
    assert type(back) is minicnn.Model and back.count_params() == model.count_params()


def test_an_optimizer_keras_lacks_saves_an_uncompiled_model(tmp_path):
    model = _sequential()
    model.compile(optimizer=optimizers.Adam(lookahead_steps=5), loss="categorical_crossentropy")
    with pytest.warns(UserWarning, match="saved uncompiled.*Lookahead"):
        model.save(tmp_path / "m.keras")
    assert not minicnn.load_model(tmp_path / "m.keras").compiled


# ---- with Keras ----------------------------------------------------------------------------------------
@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]'): skipped")


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_loads_what_minicnn_writes(name, suffix, tmp_path, keras):
    model, x, y = _trained(name)
    model.save(tmp_path / f"m{suffix}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kmodel = keras.saving.load_model(tmp_path / f"m{suffix}")
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    np.testing.assert_allclose(kmodel.predict(x, verbose=0), model.predict(x), atol=1e-6)
    assert type(kmodel.optimizer).__name__ == type(model.optimizer).__name__
    if suffix == ".keras":            # (Keras's legacy .h5 loader builds its optimizer without the variables)
        _next_steps_match(model, kmodel, x, y, rtol=1e-4, atol=1e-5)


def _keras_models(keras):
    """Keras-built models: a Sequential with BatchNormalization and MaxNorm; a functional one with a
    shared Conv2D, Add and Concatenate."""
    K = keras.layers
    sequential = keras.Sequential([
        keras.Input((8, 8, 3)), K.Conv2D(4, 3, padding="same", activation="relu",
                                         kernel_constraint=keras.constraints.MaxNorm(2.0, axis=[0, 1, 2])),
        K.BatchNormalization(), K.MaxPooling2D(), K.Flatten(), K.Dense(5, activation="softmax")], name="kseq")
    inputs = keras.Input((8, 8, 3))
    shared = K.Conv2D(3, 3, padding="same")
    a = shared(inputs)
    x = K.Concatenate()([K.Add()([a, shared(a)]), inputs])
    x = K.GlobalAveragePooling2D()(K.BatchNormalization()(x))
    outputs = K.Dense(4, activation="softmax", kernel_constraint=keras.constraints.MaxNorm(1.5))(x)
    functional = keras.Model(inputs, outputs)
    return {"sequential": sequential, "functional": functional}


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_minicnn_loads_what_keras_writes(kind, suffix, tmp_path, keras):
    keras.utils.set_random_seed(0)
    kmodel = _keras_models(keras)[kind]
    kmodel.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="categorical_crossentropy",
                   metrics=["accuracy"])
    x, y = _data((8, 8, 3), kmodel.output_shape[-1])
    kmodel.fit(x, y, batch_size=8, epochs=1, verbose=0)
    kmodel.save(tmp_path / f"k{suffix}")
    model = minicnn.load_model(tmp_path / f"k{suffix}")
    assert type(model) is (minicnn.Sequential if kind == "sequential" else minicnn.Model)
    np.testing.assert_allclose(model.predict(x), kmodel.predict(x, verbose=0), atol=1e-6)
    assert type(model.optimizer) is optimizers.SGD and model.optimizer.iterations == 2
    if suffix == ".keras":
        _next_steps_match(model, keras.saving.load_model(tmp_path / f"k{suffix}"), x, y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_sequentials_nested_in_a_keras_model_load(suffix, tmp_path, keras):
    """keras.io's pattern: Sequentials (augmentation layers; a block with weights) called in a
    functional model. Their layers' weights sit under the nested model (.keras: its own layers/
    group; legacy .h5: its trainable weights first, then the others)."""
    K = keras.layers
    keras.utils.set_random_seed(0)
    augment = keras.Sequential([K.RandomFlip("horizontal"), K.RandomRotation(0.1)], name="augment")
    block = keras.Sequential([K.BatchNormalization(), K.Conv2D(3, 3, padding="same")], name="block")
    inputs = keras.Input((8, 8, 3))
    kmodel = keras.Model(inputs, K.Dense(2, activation="softmax")(K.Flatten()(block(augment(inputs)))))
    kmodel.compile(optimizer="adam", loss="categorical_crossentropy")
    x, y = _data((8, 8, 3), 2)
    kmodel.fit(x, y, batch_size=8, epochs=1, verbose=0)
    kmodel.save(tmp_path / f"k{suffix}")
    model = minicnn.load_model(tmp_path / f"k{suffix}")
    assert [type(layer).__name__ for layer in model.layers[1].layers] == ["RandomFlip", "RandomRotation"]
    for mine, theirs in zip(model.get_weights(), kmodel.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_allclose(model.predict(x), kmodel.predict(x, verbose=0), atol=1e-6)
    assert model.optimizer.iterations == 2


def test_a_keras_layer_minicnn_lacks_is_named(tmp_path, keras):
    kmodel = keras.Sequential([keras.Input((8, 3)), keras.layers.Conv1D(2, 3), keras.layers.Flatten()])
    kmodel.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match=r"k\.keras: Keras layer 'conv1d' \(Conv1D\) has no minicnn equivalent"):
        minicnn.load_model(tmp_path / "k.keras")


def _as_keras_2(spec):
    """A legacy model_config as tf.keras 2 wrote it: Input shapes as batch_input_shape (a
    Sequential's on its first layer, without an InputLayer), dtypes as names, initializers without
    module, LeakyReLU's alpha, BatchNormalization's axis as a list, nodes as [name, node, tensor,
    kwargs] lists, the functional class named Model."""
    config = spec["config"]
    for entry in config["layers"]:
        c = entry["config"]
        c["dtype"] = "float32"
        if "batch_shape" in c:
            c["batch_input_shape"] = c.pop("batch_shape")
        if entry["class_name"] == "LeakyReLU":
            c["alpha"] = c.pop("negative_slope")
        if entry["class_name"] == "BatchNormalization":
            c["axis"] = [3]
        for key in [k for k in c if k.endswith("_initializer")]:
            c[key] = {"class_name": c[key]["class_name"], "config": c[key]["config"]}
        for i, node in enumerate(entry.get("inbound_nodes", [])):
            args = node["args"][0] if isinstance(node["args"][0], list) else [node["args"][0]]
            entry["inbound_nodes"][i] = [[*t["config"]["keras_history"], {}] for t in args]
    if spec["class_name"] == "Sequential":
        first = config["layers"].pop(0)
        config["layers"][0]["config"]["batch_input_shape"] = first["config"]["batch_input_shape"]
        config.pop("build_input_shape")
    else:
        spec["class_name"] = "Model"
        config["input_layers"], config["output_layers"] = [config["input_layers"]], [config["output_layers"]]
    return spec


@pytest.mark.parametrize("name", ["sequential", "functional"])
def test_legacy_files_of_tf_keras_2_load(name, tmp_path):
    """Keras 2's spellings in a legacy .h5 (config, compile settings): the same model, compiled."""
    import h5py
    model, x, _ = _trained(name)
    path = tmp_path / "m.h5"
    model.save(path)
    with h5py.File(path, "a") as h5:
        h5.attrs["model_config"] = json.dumps(_as_keras_2(json.loads(h5.attrs["model_config"])))
        h5.attrs["training_config"] = json.dumps({
            "loss": "categorical_crossentropy", "metrics": [[{"class_name": "MeanMetricWrapper",
                                                              "config": {"name": "accuracy", "dtype": "float32"}}]],
            "optimizer_config": {"class_name": "SGD", "config": {"name": "SGD", "learning_rate": 0.05, "decay": 0.0,
                                                                 "momentum": 0.9, "nesterov": False}}})
        del h5["optimizer_weights"]                    # (Keras 2 kept no learning-rate variable: another layout)
    back = minicnn.load_model(path)
    assert type(back) is type(model) and back.count_params() == model.count_params()
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6, atol=1e-7)
    assert type(back.optimizer) is optimizers.SGD and back.optimizer.momentum == 0.9
    assert back.metric_names == ["accuracy"]


# ---- the format by content, not by name ------------------------------------------------------------------
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_keras_file_under_another_name_still_loads(suffix, tmp_path):
    model, x, _ = _trained("sequential")
    model.save(tmp_path / f"m{suffix}")
    (tmp_path / f"m{suffix}").rename(tmp_path / "m.bin")
    np.testing.assert_allclose(minicnn.load_model(tmp_path / "m.bin").predict(x), model.predict(x), rtol=1e-6)
    other = _sequential()
    other.load_weights(tmp_path / "m.bin")
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_npz_named_keras_loads_as_npz(tmp_path):
    model, x, _ = _trained("functional")
    model.save(tmp_path / "m.npz")
    (tmp_path / "m.npz").rename(tmp_path / "m.keras")
    assert not minicnn.saving.keras_content(tmp_path / "m.keras")
    np.testing.assert_array_equal(minicnn.load_model(tmp_path / "m.keras").predict(x), model.predict(x))
    model.save_weights(tmp_path / "w.npz")
    (tmp_path / "w.npz").rename(tmp_path / "w.h5")
    other = _functional()
    other.load_weights(tmp_path / "w.h5")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


# ---- errors ------------------------------------------------------------------------------------------------
def test_without_h5py_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    model, _, _ = _trained("sequential")
    model.save(tmp_path / "m.keras")
    monkeypatch.setitem(sys.modules, "h5py", None)
    for call in (lambda: model.save(tmp_path / "n.keras"), lambda: model.save(tmp_path / "n.h5"),
                 lambda: model.save_weights(tmp_path / "n.weights.h5"),
                 lambda: minicnn.load_model(tmp_path / "m.keras")):
        with pytest.raises(ImportError, match="pip install h5py"):
            call()
    model.save(tmp_path / "m.npz")                                        # minicnn's own format needs neither
    assert not (tmp_path / "n.keras").exists()


def _rewrite(path, member, data):
    """A copy of .keras file `path` with one member replaced."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members[member] = data
    with zipfile.ZipFile(path, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)


def _damage_config(path, change):
    with zipfile.ZipFile(path) as z:
        spec = json.loads(z.read("config.json"))
    change(spec)
    _rewrite(path, "config.json", json.dumps(spec))


DAMAGE = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]), "not a Keras file|readable"),
    "not json": (lambda p: _rewrite(p, "config.json", b"{not json"), "Expecting property name"),
    "no weights": (lambda p: _rewrite(p, "model.weights.h5", b"garbage"), "not a Keras file minicnn can read"),
    "no layers": (lambda p: _damage_config(p, lambda s: s["config"].pop("layers")), "KeyError: 'layers'"),
    "odd layer": (lambda p: _damage_config(p, lambda s: s["config"]["layers"][1]["config"].update(filters="x")),
                  r"Keras layer 'conv2d\w*' \(Conv2D\): Conv2D filters must be a positive int"),
    "dilated": (lambda p: _damage_config(p, lambda s: s["config"]["layers"][1]["config"].update(dilation_rate=[2, 2])),
                r"dilation_rate=\[2, 2\] has no minicnn equivalent"),
    "unknown model": (lambda p: _damage_config(p, lambda s: s.update(class_name="Subclassed")),
                      "reads Sequential and functional models"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_keras_file_is_a_clear_error(damage, tmp_path):
    minicnn.backend.set_seed(0)
    model = minicnn.Sequential([Input(shape=(6, 6, 2)), Conv2D(3, 3), Flatten(), Dense(4)])
    path = tmp_path / "m.keras"
    model.save(path)
    change, message = DAMAGE[damage]
    change(path)
    with pytest.raises(ValueError, match=message) as info:
        minicnn.load_model(path)
    assert str(info.value).startswith(str(path))


def test_a_cycle_in_a_functional_config_is_a_clear_error(tmp_path):
    model, _, _ = _trained("functional")
    path = tmp_path / "m.keras"
    model.save(path)

    def loop(spec):                         # the first Conv2D reads the output of the last Dense
        layers = spec["config"]["layers"]
        history = layers[1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
        history[:] = [layers[-1]["name"], 0, 0]
    _damage_config(path, loop)
    with pytest.raises(ValueError, match="cycle|does not depend"):
        minicnn.load_model(path)


def test_a_legacy_file_with_a_damaged_config_is_a_clear_error(tmp_path):
    import h5py
    model, _, _ = _trained("sequential")
    path = tmp_path / "m.h5"
    model.save(path)
    with h5py.File(path, "a") as h5:
        h5.attrs["model_config"] = '{"class_name": "Sequential", "config": {"layers": 3}}'
    with pytest.raises(ValueError, match=r"m\.h5 is not a Keras file minicnn can read \(TypeError"):
        minicnn.load_model(path)
    with h5py.File(path, "a") as h5:
        del h5.attrs["model_config"]
    with pytest.raises(ValueError, match="without a model; build the model and call model.load_weights"):
        minicnn.load_model(path)


def test_optimizer_variables_that_do_not_match_warn_and_start_afresh(tmp_path):
    import h5py
    import io
    model, x, _ = _trained("sequential")
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        weights = io.BytesIO(z.read("model.weights.h5"))
    with h5py.File(weights, "a") as h5:
        del h5[f"optimizer/vars/{len(h5['optimizer/vars']) - 1}"]       # one slot fewer
    _rewrite(path, "model.weights.h5", weights.getvalue())
    with pytest.warns(UserWarning, match="optimizer's saved variables do not match.*starts afresh"):
        back = minicnn.load_model(path)
    assert back.compiled and back.optimizer.iterations == 0
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_keras_config_asking_for_more_weights_than_the_file_holds_allocates_nothing(tmp_path, suffix, monkeypatch):
    """A .keras or legacy .h5 file whose config asks for a Dense of 10**7 units on 10**4 inputs (745
    GiB) is refused before any weight is allocated, as load_model refuses a minicnn file's: the
    architecture is built under a cap of the values a file of that size can hold."""
    import h5py
    from minicnn import initializers
    model = minicnn.Sequential([Input(shape=(8,)), Dense(4)])
    model.save(tmp_path / f"m{suffix}")

    def bigger(config):
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Dense":
                layer["config"]["units"] = 10**7
            if layer["class_name"] == "InputLayer":
                layer["config"]["batch_shape"] = [None, 10**4]
        return json.dumps(config)
    path = tmp_path / f"bad{suffix}"
    if suffix == ".keras":
        with zipfile.ZipFile(tmp_path / "m.keras") as z:
            members = {name: z.read(name) for name in z.namelist()}
        members["config.json"] = bigger(json.loads(members["config.json"])).encode()
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    else:
        path.write_bytes((tmp_path / "m.h5").read_bytes())
        with h5py.File(path, "r+") as h5:
            h5.attrs["model_config"] = bigger(json.loads(h5.attrs["model_config"]))
    made = []
    monkeypatch.setattr(initializers, "make", lambda *args: made.append(args) or pytest.fail("allocated"))
    with pytest.raises(ValueError, match=rf"bad\{suffix}: layer '\w+' would create weight 'W' of shape "
                                         r"\(10000, 10000000\), more values than a file of this size can hold"):
        minicnn.load_model(path)
    assert made == []
    monkeypatch.undo()
    assert minicnn.load_model(tmp_path / f"m{suffix}").count_params() == 36
