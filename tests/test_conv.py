"""Conv2D: shapes (TF 'same' rule), gradient checks, and the naive-loop reference."""
import itertools

import numpy as np
import pytest

import reference as ref
from minicnn import backend as B
from minicnn import gradcheck
from minicnn.layers import Conv2D

GRID = list(itertools.product([1, 2, 3, 5], [1, 2], ["same", "valid"], [(7, 6), (8, 5)]))


@pytest.mark.parametrize("size,k,s,out,top,bottom", [
    (32, 2, 1, 32, 0, 1), (32, 5, 2, 16, 1, 2), (32, 3, 2, 16, 0, 1),
    (32, 4, 2, 16, 1, 1), (31, 3, 2, 16, 1, 1), (32, 3, 1, 32, 1, 1)])
def test_same_padding_follows_tensorflow(size, k, s, out, top, bottom):
    layer = Conv2D(1, k, strides=s, padding="same")
    layer.build((size, size, 1))
    OH, OW, pt, pl = layer.geometry
    assert (OH, pt) == (out, top)
    assert (OH - 1) * s + k - size - pt == bottom


@pytest.mark.parametrize("shape,kwargs,expected", [
    ((32, 32, 3), dict(filters=16, kernel_size=3, padding="same"), (32, 32, 16)),
    ((32, 32, 3), dict(filters=32, kernel_size=(5, 5), strides=(2, 2), padding="same"), (16, 16, 32)),
    ((16, 16, 32), dict(filters=32, kernel_size=(5, 5), strides=(2, 2)), (6, 6, 32)),
    ((13, 9, 2), dict(filters=4, kernel_size=(3, 2), strides=(2, 3)), (6, 3, 4)),
    ((28, 28, 1), dict(filters=6, kernel_size=3, padding="same"), (28, 28, 6)),
])
def test_output_shape(shape, kwargs, expected):
    layer = Conv2D(**kwargs)
    layer.build(shape)
    assert layer.output_shape == expected
    y = layer.forward(np.zeros((2,) + shape, dtype=np.float32))
    assert y.shape == (2,) + expected and y.dtype == np.float32


@pytest.mark.parametrize("k,s,padding,hw", GRID)
def test_gradcheck(f64, k, s, padding, hw, rng):
    layer = Conv2D(3, k, strides=s, padding=padding, activation="tanh")
    x = rng.standard_normal((2,) + hw + (2,))
    errors = gradcheck.check_layer(layer, x, training=True, seed=k * 10 + s)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("k,s,padding,hw", GRID[::3])
def test_against_naive_loops(k, s, padding, hw, rng, f64):
    layer = Conv2D(4, k, strides=s, padding=padding)
    x = rng.standard_normal((2,) + hw + (3,))
    layer.build(x.shape[1:])
    W, b = rng.standard_normal(layer.params["W"].shape), rng.standard_normal(4)
    layer.set_weights([W, b])
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, ref.conv2d_forward(x, W, b, (s, s), padding), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    rdx, rdW, rdb = ref.conv2d_backward(x, W, dy, (s, s), padding)
    np.testing.assert_allclose(dx, rdx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.grads["W"], rdW, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.grads["b"], rdb, rtol=1e-10, atol=1e-10)


def test_against_torch_when_installed(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the extra cross-check is skipped")
    layer = Conv2D(5, 3, strides=2, padding="valid")
    x = rng.standard_normal((2, 9, 9, 3)).astype(np.float32)
    layer.build(x.shape[1:])
    y = layer.forward(x)
    W = torch.tensor(layer.get_weights()[0]).permute(3, 2, 0, 1)
    yt = torch.nn.functional.conv2d(torch.tensor(x).permute(0, 3, 1, 2), W, torch.tensor(layer.get_weights()[1]),
                                    stride=2).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(y, yt, atol=1e-5)


def test_backend_parity(backend, rng):
    layer = Conv2D(4, 3, strides=2, padding="same", activation="relu")
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    layer.build(x.shape[1:])
    y = B.to_host(layer.forward(B.to_device(x), training=True))
    W, b = layer.get_weights()
    expected = np.maximum(ref.conv2d_forward(x.astype(float), W.astype(float), b.astype(float), (2, 2), "same"), 0)
    np.testing.assert_allclose(y, expected, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(filters=0, kernel_size=3), "filters"), (dict(filters=4, kernel_size=3, strides=0), "strides"),
    (dict(filters=4, kernel_size=3, padding="full"), "padding"), (dict(filters=4, kernel_size=(3, 3, 3)), "kernel_size"),
    (dict(filters=4, kernel_size=3, activation="swishy"), "activation"),
    (dict(filters=4, kernel_size=3, kernel_initializer="nope"), "initializer"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2D(**kwargs)


def test_kernel_larger_than_input():
    with pytest.raises(ValueError, match="larger than"):
        Conv2D(2, 5).build((4, 4, 1))


@pytest.mark.parametrize("activation", [None, "gelu"])
def test_gradcheck_without_bias(f64, activation, rng):
    """use_bias=False (the fast recipe's convs): a linear one passes its gradient straight through."""
    layer = Conv2D(4, 3, padding="same", use_bias=False, activation=activation)
    errors = gradcheck.check_layer(layer, rng.standard_normal((2, 5, 5, 3)), training=True)
    assert set(errors) == {"x", "W"} and max(errors.values()) < 1e-6, errors
