"""MaxPooling2D / AveragePooling2D: shapes, tie rule, 'same' semantics, naive loops, and gradient
checks on every backend."""
import itertools

import numpy as np
import pytest

import reference as ref
from minicnn import backend as B
from minicnn import gradcheck
from minicnn.layers import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D

CASES = list(itertools.product([(2, 2), (3, 3), (2, 3)], [None, (1, 1), (2, 1)], ["valid", "same"], [(7, 7), (6, 5)]))


def _distinct(rng, shape):
    """Random values without ties, far enough apart for finite differences (max-pool kinks)."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.01 + rng.uniform(0, 1e-3, shape)


@pytest.mark.parametrize("layer_cls", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize("pool,strides,padding,hw", CASES)
def test_against_naive_loops(layer_cls, pool, strides, padding, hw, rng):
    layer = layer_cls(pool, strides=strides, padding=padding)
    x = rng.standard_normal((2,) + hw + (3,)).astype(np.float32)
    layer.build(x.shape[1:])
    y = layer.forward(x, training=True)
    s = strides or pool
    fwd = ref.maxpool_forward if layer_cls is MaxPooling2D else ref.avgpool_forward
    bwd = ref.maxpool_backward if layer_cls is MaxPooling2D else ref.avgpool_backward
    assert y.shape == ref.pool_output_shape(x.shape, pool, s, padding) == (2,) + layer.output_shape
    np.testing.assert_allclose(y, fwd(x, pool, s, padding), atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dy), bwd(x, dy, pool, s, padding), atol=1e-5)


@pytest.mark.parametrize("layer_cls", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize("pool,strides,padding,hw", CASES[::4] + [((2, 2), None, "same", (5, 5))])
def test_gradcheck(backend, f64, layer_cls, pool, strides, padding, hw, rng):
    """float64 finite differences of dx, on inputs without ties (max pooling's kinks)."""
    x = _distinct(rng, (2,) + hw + (2,))
    errors = gradcheck.check_layer(layer_cls(pool, strides=strides, padding=padding), x)
    assert max(errors.values()) < 1e-6, errors


def test_max_tie_goes_to_first_maximum():
    layer = MaxPooling2D(2)
    x = np.array([[1, 2], [2, 2]], dtype=np.float32).reshape(1, 2, 2, 1)
    layer.build(x.shape[1:])
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 1, 1), np.float32))
    np.testing.assert_array_equal(dx.reshape(2, 2), [[0, 1], [0, 0]])


def test_same_padding_is_ignored_not_zero():
    x = -np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)     # all negative: a zero pad would win
    mp, ap = MaxPooling2D(2, padding="same"), AveragePooling2D(2, padding="same")
    mp.build(x.shape[1:]), ap.build(x.shape[1:])
    assert mp.forward(x)[0, 1, 1, 0] == -9          # corner window holds only the real cell -9
    assert ap.forward(x)[0, 1, 1, 0] == -9
    assert ap.forward(x)[0, 0, 1, 0] == (-3 - 6) / 2


def test_valid_drops_trailing_rows():
    layer = MaxPooling2D(2)
    layer.build((13, 13, 4))
    assert layer.output_shape == (6, 6, 4)


def test_backend_parity(backend, rng):
    """Max and average pooling layers, stride 2 and 'same' padding, against the naive loops."""
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    for layer, fwd in ((MaxPooling2D(3, strides=2, padding="same"), ref.maxpool_forward),
                       (AveragePooling2D(3, strides=2, padding="same"), ref.avgpool_forward)):
        layer.build(x.shape[1:])
        y = B.to_host(layer.forward(B.to_device(x)))
        np.testing.assert_allclose(y, fwd(x, (3, 3), (2, 2), "same"), atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [(dict(pool_size=0), "pool_size"), (dict(strides=(0, 1)), "strides"),
                                          (dict(padding="zero"), "padding")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaxPooling2D(**kwargs)


def test_pool_larger_than_input():
    with pytest.raises(ValueError, match="larger than"):
        AveragePooling2D(5).build((4, 4, 1))


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_against_loops(keepdims, rng):
    x = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    x[1, 0, 0, 2] = x[1, 4, 3, 2] = 9.0                        # a tie: the first position must win
    dy = rng.standard_normal((3, 6)).astype(np.float32)
    for cls in (GlobalAveragePooling2D, GlobalMaxPooling2D):
        layer = cls(keepdims=keepdims)
        layer.build(x.shape[1:])
        y = layer.forward(x)
        assert y.shape == (3,) + layer.output_shape == ((3, 1, 1, 6) if keepdims else (3, 6))
        expected_y, expected_dx = np.zeros((3, 6)), np.zeros_like(x)
        for n, c in itertools.product(range(3), range(6)):
            cells = [(h, w) for h in range(5) for w in range(4)]
            if cls is GlobalAveragePooling2D:
                expected_y[n, c] = np.mean([x[n, h, w, c] for h, w in cells])
                for h, w in cells:
                    expected_dx[n, h, w, c] = dy[n, c] / 20
            else:
                best = max(cells, key=lambda hw: (x[n, hw[0], hw[1], c], -cells.index(hw)))
                expected_y[n, c] = x[n, best[0], best[1], c]
                expected_dx[n, best[0], best[1], c] = dy[n, c]
        np.testing.assert_allclose(y.reshape(3, 6), expected_y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.backward(dy.reshape(y.shape)), expected_dx, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [GlobalAveragePooling2D, GlobalMaxPooling2D])
def test_global_pooling_gradcheck(backend, f64, cls, rng):
    errors = gradcheck.check_layer(cls(), _distinct(rng, (2, 5, 4, 3)))
    assert max(errors.values()) < 1e-8, errors


def test_global_pooling_backend_parity(backend, rng):
    """Global average and max pooling equal numpy's mean and max over the image."""
    x = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    for cls, fn in ((GlobalAveragePooling2D, np.mean), (GlobalMaxPooling2D, np.max)):
        layer = cls()
        layer.build(x.shape[1:])
        y = backend.to_host(layer.forward(backend.to_device(x)))
        np.testing.assert_allclose(y, fn(x, axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_global_pooling_config_round_trip():
    for cls in (GlobalAveragePooling2D, GlobalMaxPooling2D):
        layer = cls(keepdims=True, name="g")
        again = cls.from_config(layer.get_config())
        assert (again.keepdims, again.name) == (True, "g")


def test_compute_output_shape_does_not_change_the_layer(rng):
    """Asking a built pooling layer about another input shape leaves its own geometry alone."""
    layer = MaxPooling2D(3, 2, "same")
    layer.build((8, 8, 1))
    x = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    before = layer.forward(x)
    assert layer.compute_output_shape((9, 9, 1)) == (5, 5, 1)
    np.testing.assert_array_equal(layer.forward(x), before)
    np.testing.assert_allclose(before, ref.maxpool_forward(x.astype(float), (3, 3), (2, 2), "same"), atol=1e-6)


def test_global_max_pooling_is_not_an_average_pooling():
    from minicnn.layers import GlobalAveragePooling2D, GlobalMaxPooling2D
    assert not isinstance(GlobalMaxPooling2D(), GlobalAveragePooling2D)
    assert GlobalMaxPooling2D(keepdims=True).compute_output_shape((4, 4, 3)) == (1, 1, 3)
