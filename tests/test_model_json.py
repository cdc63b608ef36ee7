"""model.to_json() and minicnn.models.model_from_json: Keras's JSON of a model's architecture, both
ways. minicnn's own round trips run without Keras; with Keras (skipped, visibly, without it): Keras
builds what minicnn writes and minicnn what Keras writes, with the same layers, shapes and
parameter counts. Then a model Keras has no twin of, and hostile text."""
import json
import os
import warnings

import numpy as np
import pytest

import minicnn
from minicnn import optimizers
from minicnn.layers import Conv2D, Dense, Flatten, Layer
from minicnn.models import model_from_json
from test_keras_files import MODELS, OPTIMIZERS, _config, _keras_models


def _compiled(name):
    minicnn.backend.set_seed(3)
    model = MODELS[name]()
    model.compile(optimizer=OPTIMIZERS[name](), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def _weighted_layers(model):
    """(class name, weight shapes) of each layer holding weights, in order (Keras or minicnn)."""
    out = []
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            out.append((type(layer).__name__, [tuple(np.shape(w)) for w in weights]))
    return out


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]'): skipped")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip(name):
    """to_json then model_from_json: the same architecture (a Residual stack comes back as the
    functional Model Keras holds), compiled as before; to_json's kwargs go to json.dumps."""
    model = _compiled(name)
    text = model.to_json(indent=2)
    assert "\n  " in text and json.loads(text)["class_name"] in ("Sequential", "Functional")
    back = model_from_json(text)
    assert back.count_params() == model.count_params() and back.output_shape == model.output_shape
    if name != "residual":
        assert _config(back) == _config(model)
    assert type(back.optimizer) is type(model.optimizer) and back.metric_names == ["accuracy"]
    x = np.random.default_rng(0).random((4,) + model.input_shape, dtype=np.float32)
    back.set_weights(model.get_weights())
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_builds_what_minicnn_writes(name, keras):
    """The JSON program cifar10_90.py writes (model.to_json()) is what keras.models.model_from_json reads."""
    model = _compiled(name)
    kmodel = keras.models.model_from_json(model.to_json())
    assert kmodel.count_params() == model.count_params()
    assert tuple(kmodel.output_shape[1:]) == model.output_shape
    twin = minicnn.keras_io.to_keras(model, compile=False, copy_weights=False)
    assert [(type(l).__name__, l.name) for l in kmodel.layers] == [(type(l).__name__, l.name) for l in twin.layers]
    assert _weighted_layers(kmodel) == _weighted_layers(twin)
    assert kmodel.compiled and type(kmodel.optimizer).__name__ == type(model.optimizer).__name__


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_minicnn_builds_what_keras_writes(kind, keras):
    kmodel = _keras_models(keras)[kind]
    kmodel.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="categorical_crossentropy",
                   metrics=["accuracy"])
    model = model_from_json(kmodel.to_json())
    assert type(model) is (minicnn.Sequential if kind == "sequential" else minicnn.Model)
    assert model.count_params() == kmodel.count_params() and model.output_shape == tuple(kmodel.output_shape[1:])
    assert _weighted_layers(model) == _weighted_layers(kmodel)
    assert type(model.optimizer) is optimizers.SGD and model.metric_names == ["accuracy"]
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    model.set_weights(kmodel.get_weights())
    np.testing.assert_allclose(model.predict(x), kmodel.predict(x, verbose=0), atol=1e-6)


def test_an_optimizer_keras_lacks_leaves_the_compile_settings_out():
    model = _compiled("sequential")
    model.compile(optimizer=optimizers.SGD(0.1, lookahead_steps=5), loss="categorical_crossentropy")
    with pytest.warns(UserWarning, match="compile settings are left out"):
        text = model.to_json()
    back = model_from_json(text)
    assert not back.compiled and _config(back) == _config(model)


class Doubler(Layer):
    """A layer Keras has no twin of (y = 2x)."""
    def forward(self, x, training=False):
        return 2 * x

    def backward(self, dout):
        return 2 * dout


def test_a_layer_keras_lacks_gives_minicnns_own_json_with_a_warning():
    model = minicnn.Sequential([Conv2D(2, 3, input_shape=(6, 6, 1)), Doubler(name="twice"), Flatten(), Dense(3)])
    with pytest.warns(UserWarning, match=r"Keras has no twin of layer 'twice' \(Doubler\).*Keras does not"):
        text = model.to_json()
    assert json.loads(text)["module"] == "minicnn"
    back = model_from_json(text, custom_objects={"Doubler": Doubler})
    assert [type(l) for l in back.layers] == [type(l) for l in model.layers]
    assert back.count_params() == model.count_params()
    with pytest.raises(ValueError, match="Doubler"):
        model_from_json(text)                       # (without custom_objects: the class is unknown)


def test_an_unbuilt_model_without_an_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="to_json: model .* has no input shape yet"):
        minicnn.Sequential([Dense(3)]).to_json()
    assert model_from_json(minicnn.Sequential([Dense(3, input_shape=(4,))]).to_json()).count_params() == 15


def _keras_sequential(*layers, shape=(8, 8, 3)):
    entries = [{"class_name": "InputLayer", "config": {"batch_shape": [None, *shape]}}]
    return json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": entries + list(layers)}})


HOSTILE = [  # (text, error, message pattern)
    ("{bad", ValueError, "model_from_json is not valid JSON"),
    (b"\xff\xfe", ValueError, "model_from_json is not valid JSON"),
    ("[" * 5000 + "]" * 5000, ValueError, "model_from_json is not valid JSON|nests JSON"),
    ("[" * 200 + "]" * 200, ValueError, "nests JSON more than 100 levels"),
    ("[1]", ValueError, "the JSON must be a serialized model"),
    ('{"class_name": "Sequential"}', ValueError, "the model must be Keras's serialized model"),
    ('{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense"}]}}', ValueError,
     "layer 0 must be"),
    (_keras_sequential({"class_name": "Dense", "config": {"units": 10**12}}), ValueError,
     r"layer 1 \(Dense\): units must be an int"),
    (_keras_sequential({"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": -3}}), ValueError,
     "kernel_size must be"),
    (_keras_sequential({"class_name": "Dropout", "config": {"rate": float("nan")}}).replace("NaN", "1e999"),
     ValueError, "rate must be"),
    (_keras_sequential({"class_name": "Flatten", "config": {}}, {"class_name": "Dense", "config": {"units": 2**20}},
                       shape=(4096, 4096, 3)), ValueError, "more values than model_from_json allows"),
    (_keras_sequential({"class_name": "LSTM", "config": {"units": 3}}), ValueError, "LSTM.* has no minicnn equivalent"),
    (_keras_sequential({"class_name": "Dense", "config": {"units": 3, "activation": "nope"}}), ValueError, "nope"),
    ('{"class_name": "Sequential", "config": {"layers": []}}', ValueError, "no input shape"),
    ('{"class_name": "Functional", "config": {"layers": [], "input_layers": [], "output_layers": []}}', ValueError,
     "model_from_json: "),
    ('{"module": "minicnn", "class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", '
     '"config": {"units": -1}}]}}', ValueError, "units must be"),
    ('{"module": "minicnn", "class_name": "os.system", "config": {"layers": []}}', ValueError, "class_name must be"),
    (5, TypeError, "takes the JSON text"),
]


@pytest.mark.parametrize("text, error, pattern", HOSTILE)
def test_hostile_json_is_a_clear_error(text, error, pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # (and no warning on the way)
        with pytest.raises(error, match=pattern):
            model_from_json(text)


def test_the_keras_names_are_there():
    from minicnn.models import model_from_json as imported    # (it was listed as a Keras name minicnn lacked)
    assert imported is model_from_json and callable(minicnn.Sequential.to_json)
