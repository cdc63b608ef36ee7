"""Parity with Keras (TensorFlow backend, CPU): same weights give the same predictions, loss,
gradients and optimizer steps. Skipped, visibly, when Keras is not installed."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]'): parity tests skipped")
pytest.importorskip("h5py", reason="h5py is not installed: parity tests skipped")

import minicnn  # noqa: E402
from minicnn import keras_io, optimizers, zoo  # noqa: E402
from minicnn.constraints import MaxNorm  # noqa: E402
from minicnn.layers import (AveragePooling2D, BatchNormalization, Conv2D, Dense, Flatten, Input,  # noqa: E402
                            MaxPooling2D)
from minicnn.utils import to_categorical  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="parity tests compare with Keras's TensorFlow backend")


def _batch(shape, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + tuple(shape), dtype=np.float32), to_categorical(rng.integers(0, 10, n), 10)


def _keras_twin_with_its_own_weights(entry, tmp_path):
    """Keras builds and initialises the model; minicnn imports Keras's saved weights file."""
    kmodel = keras_io.to_keras(entry.build(), compile=entry.keras_twin, copy_weights=False)
    path = tmp_path / "k.weights.h5"
    kmodel.save_weights(str(path))
    model = entry.build()
    keras_io.load_keras_weights(model, path)
    return kmodel, model


@pytest.mark.parametrize("name", sorted(zoo.MODELS))
def test_predictions_and_param_counts(name, tmp_path):
    entry = zoo.get(name)
    kmodel, model = _keras_twin_with_its_own_weights(entry, tmp_path)
    assert kmodel.count_params() == model.count_params() == entry.params
    x, _ = _batch(entry.input_shape)
    np.testing.assert_allclose(model.predict(x), kmodel.predict(x, verbose=0), atol=1e-5)


def _keras_loss_and_grads(kmodel, x, y):
    import tensorflow as tf
    with tf.GradientTape() as tape:
        loss = keras.losses.categorical_crossentropy(y, kmodel(x, training=False))
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, kmodel.trainable_weights)
    return float(loss), [g.numpy() for g in grads]


@pytest.mark.parametrize("name", ["tutorial000", "tutorial001_model_1", "tutorial002", "tutorial003_small",
                                  "tutorial003_lenet5", "tutorial003_lenet5_bn"])
def test_loss_and_gradients_of_one_batch(name, tmp_path):
    entry = zoo.get(name)
    kmodel, model = _keras_twin_with_its_own_weights(entry, tmp_path)
    x, y = _batch(entry.input_shape, n=16)
    k_loss, k_grads = _keras_loss_and_grads(kmodel, x, y)
    model._prepare_training()
    out = model.forward(x, training=False)
    loss = float(model._loss_and_grad(out, y))
    assert loss == pytest.approx(k_loss, rel=1e-5)
    mine = [layer.grads[k] for _, layer, k in model.variables()]
    assert len(mine) == len(k_grads)
    for g, kg in zip(mine, k_grads):
        np.testing.assert_allclose(g, kg, rtol=1e-3, atol=2e-6 * max(1.0, np.abs(kg).max()))


def _small_model(constraint=None, bn=False):
    layers = [Input(shape=(9, 9, 3)), Conv2D(4, 2, strides=2, padding="same", activation="relu")]
    layers += [BatchNormalization()] if bn else []
    layers += [Conv2D(6, 3, padding="same", activation="tanh"), MaxPooling2D(2, padding="same"), Flatten(),
               Dense(12, activation="relu", kernel_constraint=constraint), Dense(10, activation="softmax")]
    return minicnn.Sequential(layers)


OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.1),
    "sgd_momentum": lambda: optimizers.SGD(0.1, momentum=0.9),
    "sgd_nesterov": lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "sgd_decay": lambda: optimizers.SGD(lr=0.1, momentum=0.9, decay=0.1),
    "rmsprop": lambda: optimizers.RMSprop(0.01),
    "rmsprop_momentum_centered": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "rmsprop_decay": lambda: optimizers.RMSprop(lr=0.01, decay=0.2),
    "adam": lambda: optimizers.Adam(0.01),
    "adam_decay": lambda: optimizers.Adam(lr=0.01, decay=0.3),
    "sgd_nesterov_weight_decay": lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
    "adam_weight_decay": lambda: optimizers.Adam(0.01, weight_decay=0.1),
    "rmsprop_weight_decay_decay": lambda: optimizers.RMSprop(lr=0.01, decay=0.2, weight_decay=0.3),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("variant", ["plain", "max_norm"])
def test_optimizer_steps_match(opt, variant):
    model = _small_model(constraint=MaxNorm(0.5) if variant == "max_norm" else None)
    model.compile(optimizer=OPTIMIZERS[opt](), loss="categorical_crossentropy", metrics=["accuracy"])
    kmodel = keras_io.to_keras(model)
    x, y = _batch((9, 9, 3), n=16, seed=3)
    for step in range(3):                                    # three steps: Adam's bias correction, decay
        xb, yb = x[step * 5:step * 5 + 6], y[step * 5:step * 5 + 6]
        kmodel.train_on_batch(xb, yb)
        model.train_on_batch(xb, yb)
    for w, kw in zip(model.get_weights(), kmodel.get_weights()):
        np.testing.assert_allclose(w, kw, atol=1e-5, rtol=1e-4)
    if variant == "max_norm":
        dense = model.layers[-2].get_weights()[0]
        assert np.linalg.norm(dense, axis=0).max() <= 0.5 + 1e-6


def test_batchnorm_training_and_inference():
    model = _small_model(bn=True)
    model.compile(optimizer=optimizers.SGD(0.05), loss="categorical_crossentropy", metrics=["accuracy"])
    kmodel = keras_io.to_keras(model)
    x, y = _batch((9, 9, 3), n=16, seed=5)
    for _ in range(2):
        kmodel.train_on_batch(x, y)
        model.train_on_batch(x, y)
    for w, kw in zip(model.get_weights(), kmodel.get_weights()):    # gamma, beta, moving mean/variance too
        np.testing.assert_allclose(w, kw, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(model.predict(x), kmodel.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("k,s,size", [(2, 1, 8), (2, 2, 7), (4, 2, 9), (4, 2, 8), (3, 2, 8), (5, 2, 8)])
def test_same_padding_even_kernels_and_stride(k, s, size):
    model = minicnn.Sequential([Input(shape=(size, size, 2)), Conv2D(3, k, strides=s, padding="same"),
                                AveragePooling2D(3, strides=2, padding="same"), MaxPooling2D(2, padding="same"),
                                Flatten(), Dense(10, activation="softmax")])
    kmodel = keras_io.to_keras(model)
    x = np.random.default_rng(k * 10 + s).random((4, size, size, 2), dtype=np.float32)
    assert kmodel.output_shape[1:] == model.output_shape
    np.testing.assert_allclose(model.predict(x), kmodel.predict(x, verbose=0), atol=1e-5)


def test_export_to_keras_and_build_from_keras(tmp_path):
    model = zoo.get("tutorial000").build()
    path = tmp_path / "m.weights.h5"
    keras_io.save_keras_weights(model, path)
    kmodel = keras_io.to_keras(model, copy_weights=False)
    kmodel.load_weights(str(path))
    x, _ = _batch((32, 32, 3))
    np.testing.assert_allclose(kmodel.predict(x, verbose=0), model.predict(x), atol=1e-5)
    again = keras_io.from_keras(kmodel)
    np.testing.assert_allclose(again.predict(x), model.predict(x), atol=1e-6)
    assert [type(l).__name__ for l in again.layers] == [type(l).__name__ for l in model.layers]


def test_keras_file_formats(tmp_path):
    model = zoo.get("tutorial003_small").build()
    kmodel = keras_io.to_keras(model, copy_weights=False)
    x, _ = _batch((32, 32, 3))
    expected = kmodel.predict(x, verbose=0)
    kmodel.save(str(tmp_path / "m.keras"))
    kmodel.save_weights(str(tmp_path / "m.weights.h5"))
    for name in ("m.keras", "m.weights.h5"):
        fresh = zoo.get("tutorial003_small").build()
        keras_io.load_keras_weights(fresh, tmp_path / name)
        np.testing.assert_allclose(fresh.predict(x), expected, atol=1e-5)


def test_mismatched_architecture_lists_layers(tmp_path):
    kmodel = keras_io.to_keras(zoo.get("tutorial003_small").build(), copy_weights=False)
    kmodel.save_weights(str(tmp_path / "small.weights.h5"))
    other = zoo.get("tutorial003_larger").build()
    with pytest.raises(ValueError, match="does not match the model") as info:
        keras_io.load_keras_weights(other, tmp_path / "small.weights.h5")
    text = str(info.value)
    assert "conv2d_1 (Conv2D): in the model, not in the file" in text and "dense (Dense): file" in text


def _assert_same_as_keras(model, x, y):
    """Compile `model`, build its Keras twin with the same weights, and check predictions, the loss
    and every gradient of one batch; returns the Keras model."""
    model.compile("adam", "categorical_crossentropy")
    kmodel = keras_io.to_keras(model)
    np.testing.assert_allclose(model.predict(x), kmodel.predict(x, verbose=0), atol=1e-6)
    k_loss, k_grads = _keras_loss_and_grads(kmodel, x, y)
    model._prepare_training()
    loss = float(model._loss_and_grad(model.forward(x, training=False), y))
    assert loss == pytest.approx(k_loss, rel=1e-5)
    for (_, layer, k), kg in zip(model.variables(), k_grads):
        np.testing.assert_allclose(layer.grads[k], kg, rtol=1e-4, atol=1e-6)
    return kmodel


@pytest.mark.parametrize("pool", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
def test_global_pooling_head_matches_keras(pool, tmp_path):
    """An all-convolutional head (conv -> global pooling -> softmax): predictions, loss, gradients."""
    from minicnn import layers as L
    from minicnn.model import Sequential
    model = Sequential([Input(shape=(9, 9, 3)), Conv2D(6, 3, padding="same", activation="relu"),
                        getattr(L, pool)(), Dense(10, activation="softmax")])
    x, y = _batch((9, 9, 3), n=6)
    kmodel = _assert_same_as_keras(model, x, y)
    again = keras_io.from_keras(kmodel)
    assert [type(l).__name__ for l in again.layers] == ["Conv2D", pool, "Dense"]


def test_scaled_logits_head_matches_keras():
    """Rescaling the logits by a constant before the softmax (a fast-recipe head)."""
    from minicnn.layers import Activation, Rescaling
    from minicnn.model import Sequential
    model = Sequential([Input(shape=(6, 6, 2)), Rescaling(2.0, offset=-1.0), Conv2D(4, 3, activation="relu"),
                        Flatten(), Dense(10, use_bias=False), Rescaling(1 / 9), Activation("softmax")])
    x, y = _batch((6, 6, 2), n=5)
    kmodel = _assert_same_as_keras(model, x, y)
    assert type(keras_io.from_keras(kmodel).layers[-2]).__name__ == "Rescaling"


def test_gelu_matches_keras(tmp_path):
    """Keras's 'gelu' is the exact erf form: same predictions, loss and gradients."""
    from minicnn.layers import Activation
    from minicnn.model import Sequential
    model = Sequential([Input(shape=(8, 8, 3)), Conv2D(4, 3, padding="same", activation="gelu"), MaxPooling2D(2),
                        Activation("gelu"), Flatten(), Dense(10, activation="softmax")])
    x, y = _batch((8, 8, 3), n=6)
    _assert_same_as_keras(model, x * 4 - 2, y)               # both signs, where GELU bends



@pytest.mark.parametrize("overwrite", [None, 2])
def test_weight_moving_average_matches_keras(overwrite):
    """use_ema: the averages, the overwrite every N steps and at the end of fit, as Keras 3."""
    model = _small_model()
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9, use_ema=True, ema_momentum=0.6,
                                           ema_overwrite_frequency=overwrite),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    kmodel = keras_io.to_keras(model)
    x, y = _batch((9, 9, 3), n=20, seed=4)
    kmodel.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)        # 5 steps
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for w, kw in zip(model.get_weights(), kmodel.get_weights()):
        np.testing.assert_allclose(w, kw, atol=1e-5, rtol=1e-4)


def test_residual_blocks_match_a_keras_functional_model():
    """Residual (identity and projection shortcuts) exports as Keras Add blocks: same predictions,
    loss and gradients."""
    from minicnn.layers import Activation, GlobalAveragePooling2D
    from minicnn.model import Residual, Sequential
    model = Sequential([Input(shape=(8, 8, 3)), Conv2D(4, 3, padding="same", activation="relu"),
                        Residual([Conv2D(4, 3, padding="same", activation="relu"), BatchNormalization(),
                                  Conv2D(4, 3, padding="same")]),
                        Activation("relu"),
                        Residual([Conv2D(6, 3, strides=2, padding="same", activation="gelu"), Conv2D(6, 3, padding="same")],
                                 shortcut=[Conv2D(6, 1, strides=2)]),
                        GlobalAveragePooling2D(), Dense(10, activation="softmax")])
    x, y = _batch((8, 8, 3), n=6)
    kmodel = _assert_same_as_keras(model, x, y)
    assert sum(type(layer).__name__ == "Add" for layer in kmodel.layers) == 2


def _functional(seed=0):
    """Two branches from the input, joined by Add and Concatenate, and a Dense shared by two calls."""
    from minicnn.layers import Add, Concatenate
    minicnn.backend.set_seed(seed)
    inputs = Input(shape=(6, 6, 3))
    a = Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = Conv2D(4, 1, activation="tanh")(inputs)
    x = MaxPooling2D()(Concatenate()([Add()([a, b]), b]))
    shared = Dense(6, activation="relu")
    left, right = shared(Flatten()(x)), shared(Flatten()(Conv2D(8, 1)(x)))
    return minicnn.Model(inputs, Dense(10, activation="softmax")(Concatenate()([left, right])))


def test_functional_model_matches_keras(tmp_path):
    """Predictions, loss and every gradient (the shared Dense's summed over its two calls)."""
    model = _functional()
    x, y = _batch((6, 6, 3), n=6)
    kmodel = _assert_same_as_keras(model, x, y)
    assert [type(l).__name__ for l in kmodel.layers] == [type(l).__name__ for l in model.layers]
    back = keras_io.from_keras(kmodel)
    assert type(back) is minicnn.Model and back.count_params() == model.count_params()
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_functional_model_three_sgd_steps_match_keras():
    model = _functional(seed=1)
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="categorical_crossentropy")
    kmodel = keras_io.to_keras(model)
    x, y = _batch((6, 6, 3), n=18, seed=2)
    for step in range(3):
        kmodel.train_on_batch(x[step * 6:step * 6 + 6], y[step * 6:step * 6 + 6])
        model.train_on_batch(x[step * 6:step * 6 + 6], y[step * 6:step * 6 + 6])
    for w, kw in zip(model.get_weights(), kmodel.get_weights()):
        np.testing.assert_allclose(w, kw, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_functional_model_files_both_ways(suffix, tmp_path):
    """minicnn writes a Keras file Keras loads; Keras writes one minicnn loads: same predictions."""
    model = _functional(seed=2)
    x, _ = _batch((6, 6, 3), n=4)
    model.save(tmp_path / f"mine{suffix}")
    theirs = keras.saving.load_model(str(tmp_path / f"mine{suffix}"), compile=False)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x), atol=1e-6)
    kmodel = keras_io.to_keras(_functional(seed=3), compile=False)
    kmodel.save(str(tmp_path / f"keras{suffix}"))
    loaded = minicnn.load_model(tmp_path / f"keras{suffix}")
    assert type(loaded) is minicnn.Model
    np.testing.assert_allclose(loaded.predict(x), kmodel.predict(x, verbose=0), atol=1e-6)
