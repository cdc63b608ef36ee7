"""BatchNormalization: Keras 3 statistics, gradient checks in training and inference mode, on every backend."""
import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.layers import BatchNormalization


def _randomized(layer, rng, C):
    layer.set_weights([rng.uniform(0.5, 1.5, C), rng.standard_normal(C), rng.standard_normal(C),
                       rng.uniform(0.5, 2, C)])
    return layer


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (8, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(backend, f64, shape, training, rng):
    """float64 finite differences of dx, dgamma and dbeta (training: through the batch statistics)."""
    layer = BatchNormalization()
    layer.build(shape[1:])
    _randomized(layer, rng, shape[-1])
    errors = gradcheck.check_layer(layer, rng.standard_normal(shape) * 2 + 1, training=training)
    assert max(errors.values()) < 1e-6, errors


def test_training_statistics_and_moving_update(backend, rng):
    """Training mode normalizes with the batch's mean and biased variance and moves the moving
    statistics by 1 - momentum towards them."""
    x = (rng.standard_normal((16, 4, 4, 3)) * 3 + 2).astype(np.float32)
    layer = BatchNormalization(momentum=0.9)
    layer.build(x.shape[1:])
    y = backend.to_host(layer.forward(backend.to_device(x), training=True))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))          # biased variance
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), atol=1e-5)
    np.testing.assert_allclose(backend.to_host(layer.state["moving_mean"]), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(backend.to_host(layer.state["moving_variance"]), 0.9 + 0.1 * var, rtol=1e-5)


def test_inference_uses_moving_statistics(rng):
    layer = BatchNormalization()
    layer.build((3,))
    gamma, beta, mm, mv = np.array([1., 2, 3]), np.array([0., 1, -1]), np.array([.5, 0, 1]), np.array([1., 4, 9])
    layer.set_weights([gamma, beta, mm, mv])
    x = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x, training=False), gamma * (x - mm) / np.sqrt(mv + 1e-3) + beta,
                               rtol=1e-5)


def test_param_counts():
    layer = BatchNormalization()
    layer.build((8, 8, 6))
    assert layer.count_params(True) == 12 and layer.count_params(False) == 12
    assert [w.shape for w in layer.get_weights()] == [(6,)] * 4


@pytest.mark.parametrize("center, scale", [(True, False), (False, True), (False, False)])
def test_gradcheck_without_beta_or_gamma(backend, f64, center, scale, rng):
    """BN with a fixed gamma (the fast recipe's scale=False) or no beta: float64 gradient check."""
    layer = BatchNormalization(center=center, scale=scale)
    layer.build((4, 3, 5))
    errors = gradcheck.check_layer(layer, rng.standard_normal((6, 4, 3, 5)) * 2 + 1, training=True)
    assert max(errors.values()) < 1e-6, errors
