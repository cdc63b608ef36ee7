"""Dense, Flatten, Activation, Dropout, Input, Rescaling, ZeroPadding2D: shapes, gradient checks (on
every backend), behaviour."""
import numpy as np
import pytest

import reference as ref

import minicnn
from minicnn import backend as B
from minicnn import gradcheck
from minicnn.layers import Activation, Conv2D, Dense, Dropout, Flatten, Input, Rescaling, ZeroPadding2D

ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid", "softmax", "gelu"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_gradcheck(backend, f64, activation, rng):
    """float64 finite differences of dx, dW and db through each fused activation."""
    x = rng.standard_normal((4, 7))
    if activation == "relu":
        x = x + np.sign(x) * 0.1          # stay away from the kink at 0
    errors = gradcheck.check_layer(Dense(5, activation=activation), x)
    assert max(errors.values()) < 1e-6, errors


def test_dense_matches_formula(rng):
    layer = Dense(3, activation="relu")
    x = rng.standard_normal((4, 5)).astype(np.float32)
    layer.build((5,))
    W, b = layer.get_weights()
    np.testing.assert_allclose(layer.forward(x), np.maximum(x @ W + b, 0), rtol=1e-6)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_gradcheck(backend, f64, activation, rng):
    """float64 finite differences of an Activation layer's dx."""
    x = rng.standard_normal((3, 4, 5))
    if activation == "relu":
        x = x + np.sign(x) * 0.1
    errors = gradcheck.check_layer(Activation(activation), x)
    assert errors["x"] < 1e-6, errors


KERAS_OTHERS = ["elu", "selu", "softplus", "softsign", "silu", "exponential", "hard_sigmoid", "relu6", "leaky_relu"]


@pytest.mark.parametrize("activation", KERAS_OTHERS)
def test_kerass_other_activations_gradcheck(backend, f64, activation, rng):
    """float64 finite differences of dx through an Activation layer and a Dense layer, for Keras's
    other built-in activations (values against Keras: tests/test_keras_parity.py)."""
    x = rng.standard_normal((3, 4, 5)) * 2
    for kink in (-3.0, 0.0, 3.0, 6.0):                           # hard_sigmoid, relu6, elu/selu/leaky_relu
        near = np.abs(x - kink) < 0.1
        x[near] += 0.2 * np.sign(x[near] - kink + 1e-12)
    errors = gradcheck.check_layer(Activation(activation), x)
    assert errors["x"] < 1e-6, errors
    if activation in ("elu", "softplus", "softsign", "silu", "exponential"):       # smooth: through Dense too
        errors = gradcheck.check_layer(Dense(5, activation=activation), x.reshape(12, 5) * 0.5)
        assert max(errors.values()) < 1e-6, errors


def test_activation_values():
    x = np.array([[-2.0, 0.0, 3.0]], dtype=np.float32)
    act = {a: Activation(a) for a in ACTIVATIONS}
    np.testing.assert_allclose(act["relu"].forward(x), [[0, 0, 3]])
    np.testing.assert_allclose(act["tanh"].forward(x), np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(act["sigmoid"].forward(x), 1 / (1 + np.exp(-x)), rtol=1e-6)
    e = np.exp(x - 3)
    np.testing.assert_allclose(act["softmax"].forward(x), e / e.sum(), rtol=1e-6)
    big = np.array([[1000.0, 0.0]], dtype=np.float32)
    assert np.isfinite(act["softmax"].forward(big)).all() and np.isfinite(act["sigmoid"].forward(-big)).all()
    # ReLU's gradient at exactly 0 is 0 (TF/JAX convention)
    act["relu"].forward(x)
    np.testing.assert_array_equal(act["relu"].backward(np.ones_like(x)), [[0, 0, 1]])


def test_flatten_is_nhwc_c_order(rng, f64):
    x = rng.standard_normal((2, 3, 4, 5))
    layer = Flatten()
    layer.build(x.shape[1:])
    y = layer.forward(x)
    assert layer.output_shape == (60,)
    assert y[1, (2 * 4 + 3) * 5 + 4] == x[1, 2, 3, 4]       # flat index (h*W + w)*C + c
    assert gradcheck.check_layer(Flatten(), x)["x"] < 1e-9


def test_dropout_inverted_and_inference_identity(rng):
    layer = Dropout(0.4)
    x = np.ones((200, 50), dtype=np.float32)
    layer.build(x.shape[1:])
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.6)}
    assert abs((y == 0).mean() - 0.4) < 0.02
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx, y)                     # same mask, same scale
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


def test_dropout_seeded_masks(backend, rng):
    """The k-th training call's mask is the stream keyed by (seed, k): a new mask every call, the same
    sequence for the same seed, on every backend (the counter `draws` counts the calls)."""
    x = backend.to_device(rng.standard_normal((16, 50)).astype(np.float32) + 3)      # no zero inputs
    a, b = Dropout(0.5, seed=5), Dropout(0.5, seed=5)
    a.build((50,)), b.build((50,))
    ya = [backend.to_host(a.forward(x, training=True)) for _ in range(3)]
    yb = [backend.to_host(b.forward(x, training=True)) for _ in range(3)]
    assert not np.array_equal(ya[0] != 0, ya[1] != 0) and not np.array_equal(ya[1] != 0, ya[2] != 0)
    for k, (y1, y2) in enumerate(zip(ya, yb)):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(y1 != 0, ref.dropout_keep((16, 50), 5, k, 0.5))
        np.testing.assert_array_equal(y1, np.where(y1 != 0, backend.to_host(x) * np.float32(2), 0))
    assert a.draws == b.draws == 3


@pytest.mark.parametrize("rate,shape", [(0.3, (3, 4, 4, 2)), (0.4, (4, 9))])
def test_dropout_gradcheck_fixed_mask(backend, f64, rate, shape, rng):
    """float64 finite differences of dx with the mask replayed (the draws counter reset)."""
    errors = gradcheck.check_layer(Dropout(rate, seed=3), rng.standard_normal(shape))
    assert max(errors.values()) < 1e-9, errors


def test_dropout_noise_shape(rng):
    layer = Dropout(0.5, noise_shape=(None, 1, 1, 3), seed=1)
    x = np.ones((2, 4, 4, 3), dtype=np.float32)
    layer.build(x.shape[1:])
    y = layer.forward(x, True)
    assert (y == y[:, :1, :1, :]).all()                      # one draw per (sample, channel)
    shared = Dropout(0.5, noise_shape=(1, None, None, 1), seed=2)  # Keras: a 1 on the batch axis shares it too
    shared.build(x.shape[1:])
    y = shared.forward(np.ones((5, 4, 4, 3), dtype=np.float32), True)
    assert (y == y[:1, :, :, :1]).all() and 0 < (y == 0).mean() < 1


@pytest.mark.parametrize("noise_shape,pattern", [
    ((None, 5, 5, 5), r"noise_shape \(None, 5, 5, 5\) does not fit inputs of shape \(batch, 4, 4, 3\)"),
    ((None, 1), r"noise_shape \(None, 1\) does not fit"),            # (it masked along the wrong axis)
    (3, r"noise_shape must be a tuple of positive ints and Nones"),
    ((None, 0, 1, 3), r"noise_shape must be a tuple of positive ints and Nones"),
])
def test_dropout_noise_shape_must_fit_the_input(noise_shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        Dropout(0.5, noise_shape=noise_shape).build((4, 4, 3))
    layer = Dropout(0.5, noise_shape=(2, None, None, None))
    layer.build((4, 4, 3))
    with pytest.raises(ValueError, match="gives the batch axis 2, but the batch has 3 examples"):
        layer.forward(np.ones((3, 4, 4, 3), np.float32), True)


def test_input_layer():
    inp = Input(shape=(32, 32, 3))                            # a KerasTensor, as in Keras 3
    assert inp.shape == (None, 32, 32, 3) and inp.layer.input_shape == (32, 32, 3)
    with pytest.raises(ValueError, match="shape"):
        Input(shape=(0, 3))


@pytest.mark.parametrize("make,match", [
    (lambda: Dense(0), "units"), (lambda: Dense(3, activation="gelu2"), "activation"),
    (lambda: Dropout(1.0), "rate"), (lambda: Dropout(-0.1), "rate"), (lambda: Activation("nope"), "activation"),
    (lambda: Dense(3, bogus=1), "unexpected"),
])
def test_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_dense_needs_flat_input():
    with pytest.raises(ValueError, match="Flatten"):
        Dense(4).build((3, 3, 2))


def test_dense_backend_parity(backend, rng):
    """float32 Dense + tanh equals tanh(x W + b)."""
    layer = Dense(4, activation="tanh")
    x = rng.standard_normal((3, 6)).astype(np.float32)
    layer.build((6,))
    W, b = layer.get_weights()
    y = B.to_host(layer.forward(B.to_device(x)))
    np.testing.assert_allclose(y, np.tanh(x @ W + b), atol=1e-6)


def test_gelu_values_and_conv_gradcheck(rng):
    """GELU is the exact (erf) form: y = z * Phi(z); a Conv2D with it passes the float64 check."""
    import math
    z = np.array([-3.0, -1.0, -0.1, 0.0, 0.5, 2.0], dtype=np.float32)
    expected = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z.astype(float)]
    np.testing.assert_allclose(Activation("gelu").forward(z), expected, rtol=1e-6, atol=1e-7)
    with B.float64_mode():
        errors = gradcheck.check_layer(Conv2D(3, 3, padding="same", activation="gelu"), rng.standard_normal((2, 5, 4, 2)))
    assert max(errors.values()) < 1e-7, errors


def test_rescaling(rng):
    layer = Rescaling(1 / 255, offset=-0.5)
    x = rng.integers(0, 256, (2, 3, 3, 1)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x), x / 255 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), np.full_like(x, 1 / 255), rtol=1e-6)
    with B.float64_mode():
        errors = gradcheck.check_layer(Rescaling(-3.0, 2.0), rng.standard_normal((2, 5)))
    assert max(errors.values()) < 1e-9
    assert Rescaling.from_config(layer.get_config()).scale == pytest.approx(1 / 255)
    with pytest.raises(ValueError, match="scale"):
        Rescaling("big")


def test_dense_without_bias_gradcheck(backend, f64, rng):
    errors = gradcheck.check_layer(Dense(5, use_bias=False), rng.standard_normal((4, 6)))
    assert set(errors) == {"x", "W"} and max(errors.values()) < 1e-6, errors


# ---- ZeroPadding2D ---------------------------------------------------------------------------------
@pytest.mark.parametrize("padding,pads", [
    (1, (1, 1, 1, 1)), ((2, 0), (2, 2, 0, 0)), (((0, 1), (3, 2)), (0, 1, 3, 2)),
    ((np.int64(1), (0, np.int32(2))), (1, 1, 0, 2)), ([[1, 0], [0, 0]], (1, 0, 0, 0)), (0, (0, 0, 0, 0))])
def test_zero_padding_against_loops(backend, padding, pads, rng):
    """Keras's three ways to write padding (ints, (height, width), ((top, bottom), (left, right));
    NumPy ints, lists): forward and backward equal the naive loops."""
    top, bottom, left, right = pads
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    layer = ZeroPadding2D(padding)
    layer.build(x.shape[1:])
    assert layer.output_shape == (3 + top + bottom, 4 + left + right, 5)
    y = B.to_host(layer.forward(B.to_device(x)))
    np.testing.assert_array_equal(y, ref.zero_pad(x, top, bottom, left, right))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dout = B.to_device(dy)
    dx = layer.backward(dout)
    assert dx is not dout and dx.flags.c_contiguous
    np.testing.assert_array_equal(B.to_host(dx), ref.zero_pad_backward(dy, x.shape, top, left))


def test_zero_padding_gradcheck(backend, f64, rng):
    errors = gradcheck.check_layer(ZeroPadding2D(((1, 2), (0, 3))), rng.standard_normal((2, 3, 4, 2)))
    assert errors["x"] < 1e-9, errors


@pytest.mark.parametrize("padding,match", [
    (-1, ">= 0 on every side, got -1"), (((0, 1), (2, -3)), ">= 0 on every side"),
    (True, "an int, a tuple of 2 ints .* got True"), ((1, False), "got \\(1, False\\)"),
    (1.5, "got 1.5"), ((1, 2, 3), "got \\(1, 2, 3\\)"), (((1, 2), (3,)), "tuple of 2 tuples"),
    ("same", "got 'same' \\(Conv2D's padding='same' is another argument\\)"), (None, "got None")])
def test_zero_padding_bad_arguments(padding, match):
    with pytest.raises(ValueError, match=match):
        ZeroPadding2D(padding)


def test_zero_padding_other_arguments():
    with pytest.raises(ValueError, match="channels_last"):
        ZeroPadding2D(1, data_format="channels_first")
    with pytest.raises(ValueError, match=r"\(H, W, C\), got \(5,\)"):
        ZeroPadding2D(1).build((5,))
    config = ZeroPadding2D((1, 2), name="pad").get_config()
    assert config == {"name": "pad", "trainable": True, "padding": [[1, 1], [2, 2]], "data_format": "channels_last"}
    assert ZeroPadding2D.from_config(config).padding == ((1, 1), (2, 2))


def _padded_model():
    model = minicnn.Sequential([Input(shape=(6, 6, 2)), ZeroPadding2D(((1, 0), (2, 1))),
                                Conv2D(4, 3, activation="relu"), ZeroPadding2D(1), Conv2D(3, 3), Flatten(),
                                Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    return model


def test_a_model_with_zero_padding_trains_and_saves(tmp_path):
    """ZeroPadding2D -> Conv2D: shapes through the model, two epochs whose loss goes down, and the
    minicnn file round trip (same predictions, same config)."""
    model = _padded_model()
    assert [layer.output_shape for layer in model.layers[:4]] == [(7, 9, 2), (5, 7, 4), (7, 9, 4), (5, 7, 3)]
    rng = np.random.default_rng(1)
    x = rng.random((32, 6, 6, 2), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
    before = model.evaluate(x, y, verbose=0)
    losses = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"]
    after = model.evaluate(x, y, verbose=0)
    assert np.all(np.isfinite(losses)) and losses[1] < losses[0] and after < before
    model.save(tmp_path / "pad.minicnn")
    back = minicnn.load_model(tmp_path / "pad.minicnn")
    assert [type(layer).__name__ for layer in back.layers][:2] == ["ZeroPadding2D", "Conv2D"]
    assert back.layers[0].padding == ((1, 0), (2, 1)) and back.get_config() == model.get_config()
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6, atol=1e-7)
