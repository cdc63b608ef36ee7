"""Losses: values against formulas, fused softmax gradient (on every backend, through a whole model
too), clipped path, label checks."""
import numpy as np
import pytest

from minicnn import backend, gradcheck, losses
from minicnn.activations import Softmax
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from minicnn.model import Sequential
from minicnn.utils import to_categorical


def _onehot(labels, K):
    return np.eye(K)[labels]


@pytest.mark.parametrize("sparse", [False, True])
def test_fused_value_is_exact_logsumexp(backend, sparse, rng, f64):
    """The fused loss is mean(logsumexp(z) - z_label) and its gradient (softmax(z) - y) / B, from
    one-hot or integer labels."""
    z = rng.standard_normal((5, 4)) * 3
    labels = rng.integers(0, 4, 5)
    y = _onehot(labels, 4)
    loss_fn = losses.SparseCategoricalCrossentropy() if sparse else losses.CategoricalCrossentropy()
    loss, dz = loss_fn.from_logits_of_softmax(backend.to_device(labels if sparse else y), backend.to_device(z))
    lse = np.log(np.exp(z).sum(1))
    np.testing.assert_allclose(float(loss), np.mean(lse - (y * z).sum(1)), rtol=1e-12)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(backend.to_host(dz), (p - y) / 5, rtol=1e-12)


def test_fused_no_clipping_like_tensorflow():
    loss, _ = losses.CategoricalCrossentropy().from_logits_of_softmax(np.array([[0., 1, 0]]), np.array([[100., 0, 0]]))
    assert abs(float(loss) - 100.0) < 1e-4


def test_clipped_probability_path_like_jax():
    p = Softmax().forward(np.array([[100., 0, 0]]))
    loss, _ = losses.CategoricalCrossentropy(fuse_softmax=False)(np.array([[0., 1, 0]]), p)
    assert abs(float(loss) + np.log(1e-7)) < 1e-4            # capped at -log(1e-7) = 16.118


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("sparse", [True, False])
def test_gradcheck(backend, f64, rng, fused, sparse):
    """float64 finite differences of the loss gradient, fused (from logits) or from probabilities."""
    z = rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, 6)
    loss = losses.SparseCategoricalCrossentropy() if sparse else losses.CategoricalCrossentropy()
    y = labels if sparse else _onehot(labels, 5)
    pred = z if fused else Softmax().forward(backend.to_device(z))
    assert gradcheck.check_loss(loss, y, pred, from_logits_of_softmax=fused) < 1e-6


def test_label_smoothing_and_mse_gradcheck(backend, f64, rng):
    z, y = rng.standard_normal((4, 3)), _onehot([0, 2, 1, 1], 3)
    assert gradcheck.check_loss(losses.CategoricalCrossentropy(label_smoothing=0.1), y, z,
                                from_logits_of_softmax=True) < 1e-6
    assert gradcheck.check_loss(losses.MeanSquaredError(), rng.standard_normal((4, 3)), z) < 1e-6


def test_model_gradcheck_through_the_fused_softmax_head(backend, f64, rng):
    """float64 finite differences of every parameter of a small compiled model, the loss's gradient
    taken from the logits of its softmax head (the fused path fit uses)."""
    model = Sequential([Conv2D(2, 3, padding="same", activation="relu", input_shape=(6, 6, 2)),
                        MaxPooling2D(2), Flatten(), Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    x = rng.standard_normal((4, 6, 6, 2))
    y = np.eye(3)[rng.integers(0, 3, 4)]
    errors = gradcheck.check_model(model, x, y)
    assert len(errors) == 4 and max(errors.values()) < 1e-6, errors


def test_sparse_equals_categorical(rng):
    z = rng.standard_normal((7, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 7)
    a = losses.SparseCategoricalCrossentropy().from_logits_of_softmax(labels.reshape(-1, 1), z)
    b = losses.CategoricalCrossentropy().from_logits_of_softmax(_onehot(labels, 4).astype(np.float32), z)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


def test_label_checks():
    cce, scce = losses.CategoricalCrossentropy(), losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match="to_categorical"):
        cce.check_labels(np.array([1, 2, 3]), 10)
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        cce.check_labels(np.zeros((3, 5)), 10)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        scce.check_labels(np.array([[1], [10]]), 10)
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        scce.check_labels(np.zeros((3, 10)), 10)
    assert scce.check_labels(np.array([[1], [9]], dtype=np.uint8), 10).tolist() == [1, 9]
    mse = losses.MeanSquaredError()
    with pytest.raises(ValueError, match=r"targets must be finite numbers: target 2 holds NaN or inf"):
        mse.check_labels(np.array([[0.0], [1.0], [np.nan]]), 1)          # (trained to NaN weights before)
    with pytest.raises(ValueError, match=r"targets of shape \(N, 10\), got \(64,\)"):   # the shape given
        mse.check_labels(np.zeros(64), 10)
    with pytest.raises(TypeError, match="numeric targets, got dtype <U1"):
        mse.check_labels(np.array(["a", "b"]), 1)
    assert mse.check_labels(np.array([True, False]), 1).tolist() == [[1.0], [0.0]]


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge_of_doom")


@pytest.mark.parametrize("make,pattern", [
    (lambda: losses.CategoricalCrossentropy(label_smoothing="0.1"), r"label_smoothing must be a number in \[0, 1\), got '0.1'"),
    (lambda: losses.CategoricalCrossentropy(label_smoothing=1.0), r"label_smoothing must be a number in \[0, 1\), got 1.0"),
    (lambda: to_categorical([1, 2], "10"), r"num_classes must be a positive int, got '10'"),
    (lambda: to_categorical([1, 2], 0), r"num_classes must be a positive int, got 0"),
    (lambda: backend.set_floatx("bogus"), r"floatx must be 'float32' or 'float64', got 'bogus'"),
])
def test_arguments_of_the_wrong_kind_are_named(make, pattern):
    """Strings and out-of-range values are refused with what was expected and what came, not a
    comparison or dtype error from deep inside; NumPy scalars are numbers like any other."""
    with pytest.raises(ValueError, match=pattern):
        make()
    assert losses.CategoricalCrossentropy(label_smoothing=np.float32(0.25)).label_smoothing == 0.25
    assert to_categorical([1, 2], np.int64(4)).shape == (2, 4)
