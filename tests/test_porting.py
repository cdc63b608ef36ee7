"""Keras programs port by renaming `keras` to `minicnn`: Keras's module layout, the activation
layers, clear errors for what minicnn lacks, and five Keras programs run after a mechanical rename."""
import pathlib
import re

import numpy as np
import pytest

import minicnn
from minicnn import backend, gradcheck, keras_io
from minicnn.port import port
from minicnn.layers import Conv2D, Dense, Flatten, Input, LeakyReLU, ReLU, Softmax

PROGRAMS = pathlib.Path(__file__).parent / "keras_programs"


def rename(source):
    """The port (python -m minicnn.port): `tensorflow.keras`, `tf.keras` and `keras` become
    `minicnn` in the code, and nothing else changes."""
    ported, notes = port(source)
    assert notes == []                                          # TensorFlow was there for Keras only
    return ported


def run_program(source):
    namespace = {"__name__": "__keras_program__"}
    exec(compile(source, "<keras program>", "exec"), namespace)
    return namespace["RESULT"]


@pytest.mark.parametrize("program", ["keras2_tutorial_style.py", "tf_keras_tutorial_style.py", "keras3_convnet.py",
                                     "keras3_functional_resnet.py", "keras3_augmentation.py"])
def test_a_keras_program_runs_after_renaming_its_imports(program):
    """The renamed program trains, validates and predicts: finite losses, Keras's history keys and
    output shapes."""
    source = (PROGRAMS / program).read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    assert "minicnn" not in code and "keras" in code            # a Keras program, untouched
    result = run_program(rename(source))
    assert set(result["history"]) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert all(len(v) == 2 and np.all(np.isfinite(v)) for v in result["history"].values())
    loss, accuracy = result["scores"]
    assert np.isfinite(loss) and 0 < loss < 10 and 0 <= accuracy <= 1
    assert result["predict_shape"][1:] == (10,)


@pytest.mark.parametrize("program", ["tf_keras_tutorial_style.py", "keras3_convnet.py", "keras3_functional_resnet.py",
                                     "keras3_augmentation.py"])
def test_the_same_programs_run_under_keras(program):
    """The programs are real Keras 3 programs: unrenamed, Keras runs them and reports the same keys
    and shapes (the Keras 2 one needs Keras 2's module paths, which Keras 3 removed)."""
    pytest.importorskip("keras")
    if "tensorflow" in (PROGRAMS / program).read_text():
        pytest.importorskip("tensorflow")
    result = run_program((PROGRAMS / program).read_text())
    mine = run_program(rename((PROGRAMS / program).read_text()))
    assert set(result["history"]) == set(mine["history"]) and result["predict_shape"] == mine["predict_shape"]


def test_the_port_renames_keras_in_the_code_and_nothing_else():
    """Keras's import forms, TensorFlow's names for Keras, and what must stay: strings (a .keras
    file name), comments, names that merely contain 'keras', and TensorFlow used for itself."""
    source = "\n".join([
        "import tensorflow as tf",
        "from tensorflow import keras",
        "from tensorflow.keras import layers",
        "from keras.callbacks import EarlyStopping",
        "import keras.backend as K",
        "keras_model = keras.Sequential([layers.Dense(2)])   # a keras model",
        "loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)",
        "keras_model.save('model.keras')",
        "url = 'https://keras.io'",
        "x = tf.constant([1.0])",
        ""])
    ported, notes = port(source)
    assert ported.splitlines() == [
        "import tensorflow as tf",
        "import minicnn",
        "import minicnn",
        "from minicnn import layers",
        "from minicnn.callbacks import EarlyStopping",
        "import minicnn.backend as K",
        "keras_model = minicnn.Sequential([layers.Dense(2)])   # a keras model",
        "loss = minicnn.losses.SparseCategoricalCrossentropy(from_logits=True)",
        "keras_model.save('model.keras')",
        "url = 'https://keras.io'",
        "x = tf.constant([1.0])"]
    assert notes == ["line 10: still uses TensorFlow: x = tf.constant([1.0])"]      # the original's line
    ported, notes = port("import tensorflow as tf\nm = tf.keras.models.Sequential()\n")
    assert ported == "import minicnn\nm = minicnn.models.Sequential()\n" and notes == []
    with pytest.raises(TypeError, match="the program's text"):
        port(b"import keras")


def test_the_port_runs_from_the_command_line(tmp_path):
    import subprocess
    import sys
    program = tmp_path / "prog.py"
    program.write_text("from tensorflow import keras\nimport tensorflow as tf\nprint(keras.__name__, tf.ones(1))\n")
    out = tmp_path / "ported.py"
    done = subprocess.run([sys.executable, "-m", "minicnn.port", str(program), "-o", str(out)],
                          capture_output=True, text=True, check=True)
    assert "line 3: still uses TensorFlow" in done.stderr
    assert out.read_text() == ("import minicnn\nimport tensorflow as tf\nimport minicnn\n"
                               "print(minicnn.__name__, tf.ones(1))\n")
    program.write_text("def f(:\n")
    failed = subprocess.run([sys.executable, "-m", "minicnn.port", str(program)], capture_output=True, text=True)
    assert failed.returncode != 0 and "not a Python program this port can read" in failed.stderr


def test_keras_module_paths_exist():
    from minicnn import backend as K, callbacks, datasets, layers, losses, models, optimizers, utils  # noqa: F401
    from minicnn.layers.convolutional import Conv2D as C2, MaxPooling2D  # noqa: F401
    from minicnn.layers.core import Dense as D2, Dropout, Flatten as F2  # noqa: F401
    from minicnn.layers.pooling import AveragePooling2D  # noqa: F401
    from minicnn.models import Sequential, load_model  # noqa: F401
    from minicnn.utils import np_utils
    assert C2 is Conv2D and D2 is Dense and Sequential is minicnn.Sequential
    np.testing.assert_array_equal(np_utils.to_categorical([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    assert K.image_data_format() == "channels_last" and K.epsilon() == 1e-7
    with pytest.raises(ValueError, match="channels_last"):
        K.set_image_data_format("channels_first")


def test_clear_session_restarts_the_auto_names():
    backend.clear_session()
    assert Dense(2).name == "dense" and Dense(2).name == "dense_1"
    backend.clear_session()
    assert Dense(2).name == "dense"


@pytest.mark.parametrize("statement,message", [
    ("from minicnn.layers import LSTM", "minicnn does not implement Keras's layers.LSTM"),
    ("from minicnn.layers import SeparableConv2D", "closest thing minicnn has: Conv2D"),
    ("from minicnn.models import clone_model", "Sequential.from_config"),
    ("from minicnn.layers import Multiply", "closest thing minicnn has: Add"),
    ("minicnn.losses.BinaryCrossentropy", "CategoricalCrossentropy"),
    ("minicnn.backend.int_shape", "array.shape"),
])
def test_a_missing_keras_name_says_so_and_names_the_closest(statement, message):
    with pytest.raises(ImportError, match=re.escape(message)):
        exec(statement, {"minicnn": minicnn})


def test_a_typo_is_an_attribute_error_with_a_suggestion():
    with pytest.raises(AttributeError, match="did you mean 'Conv2D'"):
        minicnn.layers.Conv2d
    assert not hasattr(minicnn.layers, "NotAKerasName")


# ---- the activation layers -------------------------------------------------------------------------
RELUS = [dict(), dict(max_value=6.0), dict(negative_slope=0.1), dict(threshold=0.5),
         dict(max_value=1.5, negative_slope=0.2, threshold=0.4), dict(max_value=2.0, threshold=0.5)]


def _relu_by_hand(x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Keras 3's activations.relu, written out: x above the threshold (clipped to [0, max_value]),
    negative_slope * (x - threshold) below it."""
    above = np.where(x > threshold, x, 0.0) if threshold else np.maximum(x, 0.0)
    if max_value is not None:
        above = np.clip(above, 0.0, max_value)
    return above - negative_slope * np.maximum(threshold - x, 0.0)


@pytest.mark.parametrize("kwargs", RELUS)
def test_relu_layer_forward_and_gradient(f64, kwargs, rng):
    x = rng.standard_normal((4, 5, 3)) * 3
    x[np.abs(x - kwargs.get("threshold", 0.0)) < 0.05] += 0.1          # away from the kinks
    if "max_value" in kwargs:
        x[np.abs(x - kwargs["max_value"]) < 0.05] += 0.1
    layer = ReLU(**kwargs)
    np.testing.assert_allclose(layer(x), _relu_by_hand(x, **kwargs), rtol=1e-12)
    assert max(gradcheck.check_layer(ReLU(**kwargs), x, seed=1).values()) < 1e-7


def test_leaky_relu_and_softmax_layers(f64, rng):
    x = rng.standard_normal((6, 7))
    x[np.abs(x) < 0.05] += 0.1
    np.testing.assert_allclose(LeakyReLU(0.2)(x), np.where(x > 0, x, 0.2 * x))
    assert LeakyReLU(alpha=0.1).negative_slope == 0.1 and LeakyReLU().negative_slope == 0.3
    assert max(gradcheck.check_layer(LeakyReLU(0.2), x, seed=2).values()) < 1e-7
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(Softmax()(x), e / e.sum(axis=1, keepdims=True), rtol=1e-12)
    assert max(gradcheck.check_layer(Softmax(), x, seed=3).values()) < 1e-7
    with pytest.raises(ValueError, match="axis=-1"):
        Softmax(axis=1)
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(-1.0)
    with pytest.raises(ValueError, match="threshold"):
        ReLU(threshold=-0.5)


def test_a_softmax_layer_head_is_trained_from_its_logits_and_saves_as_softmax(tmp_path):
    model = minicnn.Sequential([Input(shape=(4,)), Dense(3), Softmax()])
    model.compile("sgd", "categorical_crossentropy")
    config = model.get_config()["layers"][-1]["config"]
    assert model._fused and config["axis"] == -1 and "activation" not in config
    x = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    np.testing.assert_allclose(minicnn.load_model(tmp_path / "m.npz").predict(x), model.predict(x), rtol=1e-6)


def test_activation_layers_match_keras_and_export_both_ways():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 6, 6, 2)).astype(np.float32) * 3
    for mine, theirs in [(ReLU(max_value=1.5, negative_slope=0.2, threshold=0.4),
                          keras.layers.ReLU(max_value=1.5, negative_slope=0.2, threshold=0.4)),
                         (ReLU(negative_slope=0.3), keras.layers.ReLU(negative_slope=0.3)),
                         (LeakyReLU(0.2), keras.layers.LeakyReLU(negative_slope=0.2)),
                         (Softmax(), keras.layers.Softmax())]:
        np.testing.assert_allclose(mine(x), np.asarray(theirs(x)), rtol=1e-6, atol=1e-7)
    model = minicnn.Sequential([Input(shape=(6, 6, 2)), Conv2D(3, 3), LeakyReLU(0.1), ReLU(max_value=4.0),
                                Flatten(), Dense(4), Softmax()])
    model.compile("adam", "categorical_crossentropy")
    kmodel = keras_io.to_keras(model)
    np.testing.assert_allclose(kmodel.predict(x, verbose=0), model.predict(x), rtol=1e-5, atol=1e-6)
    back = keras_io.from_keras(kmodel)
    assert [type(layer).__name__ for layer in back.layers] == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)


# ---- Keras's file names ----------------------------------------------------------------------------
def _tiny():
    model = minicnn.Sequential([Input(shape=(6, 6, 2)), Conv2D(3, 3, activation="relu"), Flatten(),
                                Dense(4, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("name", ["m.keras", "m.h5"])
def test_save_by_a_keras_name_writes_a_keras_model_file(tmp_path, name):
    """model.save('m.keras' | 'm.h5') writes a file Keras loads (same predictions); load_model reads
    it back (by its content) into a minicnn model with the same predictions."""
    keras = pytest.importorskip("keras")
    model, x = _tiny(), np.random.default_rng(0).random((5, 6, 6, 2)).astype(np.float32)
    model.save(tmp_path / name)
    kmodel = keras.saving.load_model(tmp_path / name, compile=False)
    np.testing.assert_allclose(kmodel.predict(x, verbose=0), model.predict(x), rtol=1e-5, atol=1e-6)
    back = minicnn.load_model(tmp_path / name)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [name]                  # no temporary file left


def test_keras_weight_files_by_name_and_by_content(tmp_path):
    pytest.importorskip("h5py")
    model, other = _tiny(), _tiny()
    model.save_weights(tmp_path / "w.weights.h5")
    (tmp_path / "w.weights.h5").rename(tmp_path / "renamed.bin")          # recognised by content
    other.load_weights(tmp_path / "renamed.bin")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"ends in \.weights\.h5"):
        model.save_weights(tmp_path / "w.hdf5")


def test_checkpoints_with_keras_names(tmp_path):
    pytest.importorskip("h5py")
    x = np.random.default_rng(1).random((16, 6, 6, 2)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[np.arange(16) % 4]
    model = _tiny()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[
        minicnn.callbacks.ModelCheckpoint(str(tmp_path / "best.keras")),
        minicnn.callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_weights_only=True)])
    assert minicnn.saving.keras_content(tmp_path / "best.keras") and minicnn.saving.keras_content(tmp_path / "best.weights.h5")
    np.testing.assert_allclose(minicnn.load_model(tmp_path / "best.keras").predict(x), model.predict(x), rtol=1e-5)


def test_a_keras_model_file_needs_h5py_only_and_says_how_to_install_it(tmp_path, monkeypatch):
    import sys
    pytest.importorskip("h5py")
    monkeypatch.setitem(sys.modules, "keras", None)                        # Keras is not needed
    _tiny().save(tmp_path / "m.keras")
    assert minicnn.load_model(tmp_path / "m.keras").count_params() == _tiny().count_params()
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        _tiny().save(tmp_path / "n.keras")
    _tiny().save(tmp_path / "m.npz")                                      # minicnn's own format needs neither
    assert minicnn.load_model(tmp_path / "m.npz").count_params() == _tiny().count_params()
