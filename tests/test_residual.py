"""Residual: y = f(x) + s(x), gradient-checked in float64, built, trained, saved and reloaded."""
import numpy as np
import pytest

from minicnn import backend, gradcheck, load_model
from minicnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D
from minicnn.model import Residual, Sequential


def _block(filters=3, shortcut=None, strides=1):
    return Residual([Conv2D(filters, 3, strides=strides, padding="same", activation="relu"),
                     BatchNormalization(), Conv2D(filters, 3, padding="same", activation="tanh")], shortcut=shortcut)


@pytest.mark.parametrize("make, shape", [
    (lambda: _block(3), (2, 6, 6, 3)),                                                   # identity shortcut
    (lambda: _block(4, shortcut=[Conv2D(4, 1, strides=2)], strides=2), (2, 6, 6, 3)),   # projection shortcut
    (lambda: Residual([Dense(3, activation="gelu"), Dropout(0.3, seed=2)]), (4, 3)),     # a random layer inside
])
def test_residual_gradients(make, shape, f64, rng):
    errors = gradcheck.check_layer(make(), rng.standard_normal(shape))
    assert max(errors.values()) < 1e-7, errors


def test_residual_forward_is_branch_plus_shortcut(rng):
    block = _block(4, shortcut=[Conv2D(4, 1, strides=2)], strides=2)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    y = block(x)
    branch = x
    for layer in block.layers:
        branch = layer.forward(branch)
    np.testing.assert_allclose(y, branch + block.shortcut.forward(x), rtol=1e-6)
    identity = _block(3)
    np.testing.assert_allclose(identity(x[..., :3]) - x[..., :3],
                               Sequential(identity.layers).forward(x[..., :3]), rtol=1e-5, atol=1e-6)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="the two must match.*shortcut="):
        Sequential([Residual([Conv2D(5, 3, padding="same")])]).build((6, 6, 3))


def test_model_with_residual_blocks_trains_saves_and_reloads(tmp_path, rng):
    model = Sequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 2)),
                        _block(4), _block(6, shortcut=[Conv2D(6, 1, strides=2)], strides=2),
                        GlobalAveragePooling2D(), Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    labels = rng.integers(0, 3, 90)
    x = rng.random((90, 8, 8, 2)).astype(np.float32)
    x[..., 0] += labels[:, None, None] * 0.5
    y = np.eye(3, dtype=np.float32)[labels]
    paths = [p for p, _, _ in model.variables()]
    assert "residual_1/shortcut/conv2d/W" in paths and "residual/batch_normalization/gamma" in paths
    assert model.count_params() == sum(w.size for w in model.get_weights())
    history = model.fit(x, y, batch_size=15, epochs=12, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    model.save(tmp_path / "res.minicnn")
    again = load_model(tmp_path / "res.minicnn")
    assert isinstance(again.layers[2], Residual) and again.layers[2].shortcut is not None
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert again.weight_keys() == model.weight_keys()
    texts = []
    model.summary(print_fn=texts.append)
    assert "Residual" in texts[0]


def test_residual_first_in_the_model_skips_the_input_gradient(f64, rng):
    model = Sequential([_block(3), Flatten(), Dense(2, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    x = rng.standard_normal((3, 5, 5, 3))
    y = np.eye(2)[[0, 1, 0]]
    errors = gradcheck.check_model(model, x, y)
    assert max(errors.values()) < 1e-6, errors
    model.forward(backend.to_device(x), training=True)
    assert model.layers[0].backward(np.ones((3, 5, 5, 3))) is None
