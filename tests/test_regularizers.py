"""Weight regularizers (regularizers.py): each penalty's derivative against finite differences in
float64, a whole model's gradients with them, their arguments, and files both ways. Parity with
Keras's loss, gradients and steps: tests/test_keras_parity.py::test_weight_regularizers_match_keras."""
import numpy as np
import pytest

import minicnn
from minicnn import backend as B
from minicnn import gradcheck, regularizers
from minicnn.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
from minicnn.utils import to_categorical

REGULARIZERS = [regularizers.L1(0.03), regularizers.L2(0.05), regularizers.L1L2(0.02, 0.07)]


@pytest.mark.parametrize("r", REGULARIZERS, ids=lambda r: type(r).__name__)
def test_the_penalty_and_its_derivative(f64, r, rng):
    w = rng.standard_normal((3, 4))
    w[np.abs(w) < 0.05] += 0.1                                  # away from |w|'s kink at 0
    l1, l2 = r.get_config().get("l1", 0.0), r.get_config().get("l2", 0.0)
    assert float(r(w)) == pytest.approx(l1 * np.abs(w).sum() + l2 * (w * w).sum(), rel=1e-12)
    g = np.zeros_like(w)
    r.add_gradient(w, g)
    numeric = gradcheck._numeric_grad(lambda: float(r(w)), w, 1e-6)
    assert gradcheck.relative_error(g, numeric) < 1e-8


def test_a_model_with_regularizers_passes_the_gradient_check(rng):
    with B.float64_mode():
        model = minicnn.Sequential([
            Input(shape=(6, 6, 2)), Conv2D(3, 3, activation="tanh", kernel_regularizer="l2",
                                           bias_regularizer=regularizers.L1L2(0.01, 0.02)),
            MaxPooling2D(2), Flatten(), Dense(3, activation="softmax", kernel_regularizer=regularizers.l1(0.02))])
        model.compile("sgd", "categorical_crossentropy")
        model.layers[0].params["b"][...] = 0.1                  # |b| differentiable there
        x = rng.standard_normal((4, 6, 6, 2))
        y = to_categorical(rng.integers(0, 3, 4), 3)
        errors = gradcheck.check_model(model, x, y)
    assert len(errors) == 4 and max(errors.values()) < 1e-7, errors


def test_the_loss_and_the_step_include_the_penalty(rng):
    """loss = data loss + sum of r(w); one SGD step moves W by lr * (dL/dW + 2 * l2 * W)."""
    def model(reg):
        m = minicnn.Sequential([Input(shape=(4,)), Dense(3, activation="softmax", kernel_regularizer=reg)])
        m.build()
        m.set_weights([np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), np.zeros(3, np.float32)])
        m.compile(minicnn.optimizers.SGD(0.5), "categorical_crossentropy")
        return m
    x = rng.random((5, 4), dtype=np.float32)
    y = to_categorical(rng.integers(0, 3, 5), 3)
    plain, l2 = model(None), model(regularizers.L2(0.1))
    W = plain.get_weights()[0].copy()
    assert l2.evaluate(x, y, verbose=0) == pytest.approx(plain.evaluate(x, y, verbose=0) + 0.1 * (W * W).sum(),
                                                           rel=1e-6)
    assert l2.train_on_batch(x, y) == pytest.approx(plain.train_on_batch(x, y) + 0.1 * (W * W).sum(), rel=1e-6)
    np.testing.assert_allclose(l2.get_weights()[0], plain.get_weights()[0] - 0.5 * 2 * 0.1 * W, atol=1e-6)


@pytest.mark.parametrize("make,error,pattern", [
    (lambda: regularizers.L2(-0.1), ValueError, r"l2 must be a number >= 0, got -0.1"),
    (lambda: regularizers.L1("0.1"), ValueError, r"l1 must be a number >= 0, got '0.1'"),
    (lambda: Dense(3, kernel_regularizer="l3"), ValueError, r"unknown regularizer 'l3'; expected 'l1', 'l2'"),
    (lambda: Conv2D(3, 3, activity_regularizer="l2"), ValueError, r"activity_regularizer is not supported"),
    (lambda: regularizers.deserialize({"class_name": "Orthogonal", "config": {}}), ValueError,
     r"unknown regularizer in config"),
])
def test_bad_regularizer_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_keras_names_and_strings():
    assert regularizers.get("l2").get_config() == {"l2": 0.01} and regularizers.get("L1").l1 == 0.01
    assert regularizers.l1_l2(l1=0.1).get_config() == {"l1": 0.1, "l2": 0.0}
    assert regularizers.get({"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 1e-4},
                             "registered_name": None}).l2 == 1e-4
    from minicnn.regularizers import l2             # noqa: F401  (Keras's `from keras.regularizers import l2`)


def test_a_saved_model_keeps_its_regularizers(tmp_path, rng):
    """(A file whose regularizer is damaged: tests/test_file_checks.py.)"""
    model = minicnn.Sequential([Input(shape=(5,)), Dense(3, kernel_regularizer=regularizers.L1L2(0.1, 0.2),
                                                         bias_regularizer="l1"), Dense(2)])
    model.compile("adam", "mse")
    model.save(tmp_path / "m.npz")
    back = minicnn.load_model(tmp_path / "m.npz")
    assert back.layers[0].kernel_regularizer.get_config() == {"l1": 0.1, "l2": 0.2}
    assert back.layers[0].bias_regularizer.get_config() == {"l1": 0.01} and back.layers[1].kernel_regularizer is None
    x, y = rng.random((4, 5), dtype=np.float32), rng.random((4, 2), dtype=np.float32)
    assert back.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
