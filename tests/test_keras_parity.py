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
        loss = tf.reduce_mean(loss) + sum(kmodel.losses)        # (the weights' regularization penalties)
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


def test_zero_padding_matches_keras():
    """ZeroPadding2D before valid convolutions (Keras's three ways to write padding): predictions,
    loss and gradients as Keras's, and from_keras gives the same paddings back."""
    from minicnn.layers import ZeroPadding2D
    from minicnn.model import Sequential
    model = Sequential([Input(shape=(7, 6, 2)), ZeroPadding2D(((1, 0), (2, 1))), Conv2D(4, 3, activation="relu"),
                        ZeroPadding2D((2, 0)), Conv2D(5, 3, activation="tanh"), ZeroPadding2D(1), MaxPooling2D(),
                        Flatten(), Dense(10, activation="softmax")])
    x, y = _batch((7, 6, 2), n=5)
    kmodel = _assert_same_as_keras(model, x, y)
    assert [layer.get_config()["padding"] for layer in kmodel.layers if type(layer).__name__ == "ZeroPadding2D"] \
        == [((1, 0), (2, 1)), ((2, 2), (0, 0)), ((1, 1), (1, 1))]
    again = keras_io.from_keras(kmodel)
    assert [layer.padding for layer in again.layers if type(layer).__name__ == "ZeroPadding2D"] \
        == [((1, 0), (2, 1)), ((2, 2), (0, 0)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_keras_file_with_zero_padding_loads(suffix, tmp_path):
    """A model Keras builds and saves with ZeroPadding2D (an int, (height, width), ((top, bottom),
    (left, right))) loads into minicnn with the same predictions."""
    K = keras.layers
    keras.utils.set_random_seed(0)
    kmodel = keras.Sequential([keras.Input((8, 7, 3)), K.ZeroPadding2D(), K.Conv2D(4, 3, activation="relu"),
                               K.ZeroPadding2D((0, 2)), K.Conv2D(4, 3), K.ZeroPadding2D(((2, 0), (1, 3))),
                               K.GlobalAveragePooling2D(), K.Dense(3, activation="softmax")])
    kmodel.save(tmp_path / f"k{suffix}")
    model = minicnn.load_model(tmp_path / f"k{suffix}")
    assert [layer.padding for layer in model.layers if type(layer).__name__ == "ZeroPadding2D"] \
        == [((1, 1), (1, 1)), ((0, 0), (2, 2)), ((2, 0), (1, 3))]
    x, _ = _batch((8, 7, 3), n=4)
    np.testing.assert_allclose(model.predict(x), kmodel.predict(x, verbose=0), atol=1e-6)


def test_gelu_matches_keras(tmp_path):
    """Keras's 'gelu' is the exact erf form: same predictions, loss and gradients."""
    from minicnn.layers import Activation
    from minicnn.model import Sequential
    model = Sequential([Input(shape=(8, 8, 3)), Conv2D(4, 3, padding="same", activation="gelu"), MaxPooling2D(2),
                        Activation("gelu"), Flatten(), Dense(10, activation="softmax")])
    x, y = _batch((8, 8, 3), n=6)
    _assert_same_as_keras(model, x * 4 - 2, y)               # both signs, where GELU bends



@pytest.mark.parametrize("name", ["elu", "selu", "softplus", "softsign", "silu", "swish", "exponential",
                                  "hard_sigmoid", "relu6", "leaky_relu"])
def test_kerass_other_activations_match_keras(name):
    """Each of Keras's other built-in activations: the same values as keras.activations over both
    signs and the kinks, and in a model the same predictions, loss and gradients; Keras files name
    it as Keras does."""
    from minicnn import activations
    from minicnn.layers import Activation
    z = np.linspace(-8, 8, 161, dtype=np.float32)
    np.testing.assert_allclose(activations.get(name).forward(z), keras.activations.get(name)(z), rtol=2e-6, atol=2e-7)
    model = minicnn.Sequential([Input(shape=(6, 6, 3)), Conv2D(4, 3, padding="same", activation=name),
                                Flatten(), Dense(8), Activation("tanh" if name == "exponential" else name),
                                Dense(10, activation="softmax")])    # (e^e^z: float32's rounding grows past 1e-6)
    x, y = _batch((6, 6, 3), n=6)
    kmodel = _assert_same_as_keras(model, x * 2 - 1, y)
    assert keras.activations.serialize(kmodel.layers[0].activation) == activations.serialize(model.layers[0].activation)


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


# ---- the augmentation layers: the same transform gives Keras's images ------------------------------------
# The random streams differ (Keras draws from TensorFlow's), so each test hands both sides the same
# parameters: Keras's own transformation (its matrices built by its code) through transform_images.
from minicnn.layers import RandomCrop, RandomFlip, RandomRotation, RandomTranslation, RandomZoom  # noqa: E402

AUG_X = np.random.default_rng(5).random((6, 13, 17, 3), dtype=np.float32)
AUG_TOL = 2e-6                  # float32: TensorFlow computes the positions in float32, minicnn in float64


def _keras_rotation(klayer, angle):
    n = len(angle)
    zeros, ones = keras.ops.zeros([n]), keras.ops.ones([n])
    matrix = klayer._compute_affine_matrix(center_x=0.5, center_y=0.5, angle=keras.ops.convert_to_tensor(angle),
                                           translate_x=zeros, translate_y=zeros, scale=ones, shear_x=zeros,
                                           shear_y=zeros, height=AUG_X.shape[1], width=AUG_X.shape[2])
    return {"rotation_matrix": matrix}


def _affine_cases(rng):
    """(minicnn layer class, Keras layer class, constructor args, minicnn params, Keras transformation) for
    random parameters: rotations up to 110 degrees, shifts up to 6 pixels, zooms 0.6 to 1.5."""
    n, shape = len(AUG_X), AUG_X.shape
    angle = rng.uniform(-110, 110, n).astype(np.float32)
    shift = rng.uniform(-6, 6, (n, 2)).astype(np.float32)                   # Keras's order: width, height
    zoom = rng.uniform(0.6, 1.5, (n, 2)).astype(np.float32)                 # height, width
    return [(RandomRotation, keras.layers.RandomRotation, (0.4,), {"angle": angle.astype(np.float64)},
             lambda k: _keras_rotation(k, angle)),
            (RandomTranslation, keras.layers.RandomTranslation, (0.5, 0.5),
             {"height_translate": shift[:, 1].astype(np.float64), "width_translate": shift[:, 0].astype(np.float64)},
             lambda k: {"translations": shift, "input_shape": shape}),
            (RandomZoom, keras.layers.RandomZoom, (0.5, 0.5),
             {"height_zoom": zoom[:, 0].astype(np.float64), "width_zoom": zoom[:, 1].astype(np.float64)},
             lambda k: {"height_zoom": zoom[:, :1], "width_zoom": zoom[:, 1:], "input_shape": shape})]


@pytest.mark.parametrize("fill_mode", ["reflect", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_augmentation_matches_keras(fill_mode, interpolation):
    kwargs = dict(fill_mode=fill_mode, interpolation=interpolation, fill_value=0.25)
    for mine, theirs, args, params, transformation in _affine_cases(np.random.default_rng(6)):
        layer, klayer = mine(*args, **kwargs), theirs(*args, **kwargs)
        layer.build(AUG_X.shape[1:])
        expected = np.asarray(klayer.transform_images(AUG_X, transformation(klayer), training=True))
        np.testing.assert_allclose(layer.transform(AUG_X, params), expected, rtol=0, atol=AUG_TOL,
                                   err_msg=mine.__name__)
        np.testing.assert_array_equal(layer(AUG_X, training=False), np.asarray(klayer(AUG_X, training=False)))


def _numpy_backend_sampling(x, rows, cols, fill_mode, fill_value, order):
    """Keras's NumPy backend's map_coordinates, written out (its module imports JAX): pad each image
    with np.pad's mode for the fill mode, then scipy.ndimage.map_coordinates inside the padding."""
    ndimage = pytest.importorskip("scipy.ndimage")
    pad_mode = {"nearest": "edge", "reflect": "symmetric"}.get(fill_mode, fill_mode)
    out = np.empty(rows.shape + x.shape[3:], dtype=np.float64)
    for n in range(len(x)):
        pads = [(max(-int(np.floor(c.min())) + 1, 0), max(int(np.ceil(c.max())) + 1 - size, 0))
                for c, size in ((rows[n], x.shape[1]), (cols[n], x.shape[2]))]
        extra = {"constant_values": fill_value} if fill_mode == "constant" else {}
        padded = np.pad(x[n].astype(np.float64), pads + [(0, 0)], mode=pad_mode, **extra)
        for ch in range(x.shape[3]):
            out[n, ..., ch] = ndimage.map_coordinates(padded[..., ch], [rows[n] + pads[0][0], cols[n] + pads[1][0]],
                                                      order=order, mode=fill_mode, cval=fill_value)
    return out


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
def test_fill_modes_are_keras_numpy_backend_rules(fill_mode):
    """Every fill mode, wrap included, as Keras's NumPy (and JAX) backend computes it: the outside
    pixels found one at a time (wrap: a b c d | a b c d), then interpolated."""
    layer = RandomRotation(0.4, fill_mode=fill_mode, fill_value=0.25, seed=3)
    layer.build(AUG_X.shape[1:])
    y = layer(AUG_X, training=True)
    rows, cols, _ = layer.cache
    np.testing.assert_allclose(y, _numpy_backend_sampling(AUG_X, rows, cols, fill_mode, 0.25, 1), atol=AUG_TOL)


def test_wrap_matches_tensorflow_on_whole_pixel_shifts():
    """TensorFlow's wrap (the backend this Keras runs) agrees with a b c d | a b c d on whole-pixel
    shifts of up to size - 2 pixels. Elsewhere it differs: its ImageProjectiveTransform wraps the
    position (modulo size, counting periods of size - 1), not the pixels, so it never blends the last
    pixel with the first and sends positions from 2 (size - 1) on to the edge; minicnn follows the
    documented rule, as Keras's NumPy and JAX backends do (test above)."""
    shift = np.array([[-15, 5], [9, -11], [3, 4], [-7, 0], [15, 11], [1, -1]], dtype=np.float32)  # width, height
    klayer = keras.layers.RandomTranslation(0.99, 0.99, fill_mode="wrap")
    expected = np.asarray(klayer.transform_images(AUG_X, {"translations": shift, "input_shape": AUG_X.shape}))
    layer = RandomTranslation(0.99, 0.99, fill_mode="wrap")
    layer.build(AUG_X.shape[1:])
    mine = layer.transform(AUG_X, {"height_translate": shift[:, 1].astype(float),
                                   "width_translate": shift[:, 0].astype(float)})
    np.testing.assert_array_equal(mine, expected)
    np.testing.assert_array_equal(mine[0], np.roll(AUG_X[0], (5, -15), axis=(0, 1)))


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_random_flip_matches_keras(mode):
    flips = np.array([True, False, True, True, False, False])
    klayer = keras.layers.RandomFlip(mode)
    expected = klayer.transform_images(AUG_X, {"flips": flips[:, None, None, None], "input_shape": AUG_X.shape})
    layer = RandomFlip(mode)
    layer.build(AUG_X.shape[1:])
    np.testing.assert_array_equal(layer.transform(AUG_X, {"flips": flips}), np.asarray(expected))
    np.testing.assert_array_equal(layer(AUG_X, training=False), np.asarray(klayer(AUG_X, training=False)))


@pytest.mark.parametrize("shape,size", [((13, 17), (9, 11)), ((16, 16), (12, 12)), ((13, 17), (13, 9)),
                                        ((5, 17), (8, 8)), ((20, 10), (7, 9))])
def test_random_crop_matches_keras(shape, size):
    """Training on larger images: Keras's window at the offsets drawn. Elsewhere Keras's documented
    behaviour, keras.ops.image.resize(crop_to_aspect_ratio=True), which minicnn computes at
    inference; Keras 3.15's layer itself returns the input uncropped there (keras-team/keras#21868)."""
    x = np.random.default_rng(7).random((4,) + shape + (2,), dtype=np.float32)
    layer, klayer = RandomCrop(*size, seed=1), keras.layers.RandomCrop(*size)
    layer.build(x.shape[1:])
    if shape[0] > size[0] and shape[1] > size[1]:
        for _ in range(5):
            y = layer(x, training=True)
            top, left = layer.cache[1:3]
            np.testing.assert_array_equal(y, np.asarray(klayer.transform_images(x, (top, left), training=True)))
    expected = np.asarray(keras.ops.image.resize(x, size, crop_to_aspect_ratio=True))
    np.testing.assert_allclose(layer(x, training=False), expected, rtol=0, atol=AUG_TOL)
    assert np.asarray(klayer(x, training=False)).shape == x.shape             # Keras 3.15: not cropped


def test_augmentation_parameters_lie_in_keras_ranges():
    """Many draws of each layer's parameters, minicnn's and Keras's: both fill the same range."""
    x = np.zeros((4000, 10, 20, 1), np.float32)
    cases = [((RandomTranslation, keras.layers.RandomTranslation), ((-0.2, 0.3), 0.1),
              lambda p: np.stack([p["width_translate"], p["height_translate"]], 1),
              lambda t: np.asarray(t["translations"])),
             ((RandomRotation, keras.layers.RandomRotation), ((-0.1, 0.25),), lambda p: p["angle"][:, None],
              lambda t: np.asarray(t["angle"])[:, None]),
             ((RandomZoom, keras.layers.RandomZoom), ((-0.4, 0.2), (0.1, 0.5)),
              lambda p: np.stack([p["height_zoom"], p["width_zoom"]], 1),
              lambda t: np.concatenate([np.asarray(t["height_zoom"]), np.asarray(t["width_zoom"])], 1))]
    for (mine, theirs), args, ours_of, keras_of in cases:
        ours = ours_of(mine(*args, seed=1).random_parameters(len(x), 10, 20))
        keras_draws = keras_of(theirs(*args, seed=1).get_random_transformation(x, training=True))
        low, high = keras_draws.min(axis=0), keras_draws.max(axis=0)
        span = high - low
        assert (ours.min(axis=0) >= low - 1e-3 * span).all() and (ours.max(axis=0) <= high + 1e-3 * span).all()
        np.testing.assert_allclose(ours.min(axis=0), low, atol=2e-3 * span.max())
        np.testing.assert_allclose(ours.max(axis=0), high, atol=2e-3 * span.max())
    flips = np.asarray(keras.layers.RandomFlip(seed=1).get_random_transformation(x)["flips"]).mean()
    assert abs(flips - 0.5) < 0.03 and abs(RandomFlip(seed=1).random_parameters(4000, 1, 1)["flips"].mean() - 0.5) < 0.03


def test_augmentation_layers_go_to_keras_and_back(tmp_path):
    from minicnn.model import Sequential
    model = Sequential([Input((13, 17, 3)), RandomFlip("horizontal", seed=1),
                        RandomTranslation((-0.1, 0.2), 0.1, fill_mode="constant", fill_value=0.5, seed=2),
                        RandomRotation(0.1, interpolation="nearest", seed=3), RandomZoom(0.2, (-0.1, 0.1), seed=4),
                        Conv2D(4, 3, activation="relu"), Flatten(), Dense(5, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    kmodel = keras_io.to_keras(model)
    np.testing.assert_allclose(kmodel.predict(AUG_X, verbose=0), model.predict(AUG_X), atol=1e-6)
    again = keras_io.from_keras(kmodel)
    def configs(m):                         # (names aside)
        return [{k: v for k, v in layer.get_config().items() if k != "name"} for layer in m.layers]
    assert configs(again) == configs(model)
    crop = Sequential([Input((13, 17, 3)), RandomCrop(9, 11, seed=5)])
    assert configs(keras_io.from_keras(keras_io.to_keras(crop))) == configs(crop)
    model.save(tmp_path / "aug.keras")                          # a Keras model file (h5py alone)
    back = minicnn.load_model(tmp_path / "aug.keras")
    assert [type(layer).__name__ for layer in back.layers] == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_allclose(back.predict(AUG_X), model.predict(AUG_X), atol=1e-6)


def test_augmentation_in_a_functional_model_goes_to_keras_and_back():
    """keras-io's pattern, a Sequential of augmentation layers called on the Input of a Model."""
    inputs = Input((13, 17, 3))
    augment = minicnn.Sequential([RandomFlip("horizontal", seed=1), RandomRotation(0.1, fill_mode="nearest", seed=2)])
    model = minicnn.Model(inputs, Dense(3, activation="softmax")(Flatten()(Conv2D(4, 3)(augment(inputs)))))
    model.compile("adam", "categorical_crossentropy")
    kmodel = keras_io.to_keras(model)
    assert [type(layer).__name__ for layer in kmodel.layers][1:3] == ["RandomFlip", "RandomRotation"]
    np.testing.assert_allclose(kmodel.predict(AUG_X, verbose=0), model.predict(AUG_X), atol=1e-6)
    np.testing.assert_array_equal(keras_io.from_keras(kmodel).predict(AUG_X), model.predict(AUG_X))


def test_weight_regularizers_match_keras(tmp_path):
    """kernel_regularizer / bias_regularizer (L1, L2, L1L2): the same loss (penalties included), the
    same gradients, the same three SGD steps and the same evaluate loss as Keras, and a .keras file
    carries them both ways."""
    from minicnn import regularizers as R
    layers = [Input(shape=(9, 9, 3)), Conv2D(4, 3, activation="relu", kernel_regularizer=R.l2(0.01)),
              MaxPooling2D(2), Flatten(), Dense(12, activation="relu", kernel_regularizer=R.L1(0.005),
                                                bias_regularizer=R.L1L2(0.01, 0.02)),
              Dense(10, activation="softmax", kernel_regularizer="l2")]
    model = minicnn.Sequential(layers)
    x, y = _batch((9, 9, 3), n=12, seed=4)
    model.layers[3].set_weights([w + 0.1 for w in model.layers[3].get_weights()])   # biases away from 0
    kmodel = _assert_same_as_keras(model, x, y)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(kmodel.evaluate(x, y, verbose=0), rel=1e-5)
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="categorical_crossentropy")
    kmodel.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="categorical_crossentropy")
    for step in range(3):
        k_loss = kmodel.train_on_batch(x[step * 4:step * 4 + 4], y[step * 4:step * 4 + 4])
        loss = model.train_on_batch(x[step * 4:step * 4 + 4], y[step * 4:step * 4 + 4])
        assert loss == pytest.approx(k_loss, rel=1e-5)
    for w, kw in zip(model.get_weights(), kmodel.get_weights()):
        np.testing.assert_allclose(w, kw, atol=1e-5, rtol=1e-4)
    kmodel.save(tmp_path / "k.keras")
    back = minicnn.load_model(tmp_path / "k.keras")
    assert [type(back.layers[i].kernel_regularizer).__name__ for i in (0, 3, 4)] == ["L2", "L1", "L2"]
    assert back.layers[3].kernel_regularizer.l1 == pytest.approx(0.005)           # (Keras keeps float32)
    assert back.layers[3].bias_regularizer.get_config() == pytest.approx({"l1": 0.01, "l2": 0.02})
    np.testing.assert_allclose(back.evaluate(x, y, verbose=0), kmodel.evaluate(x, y, verbose=0), rtol=1e-5)
