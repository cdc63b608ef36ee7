"""Fast kernels (Numba on the CPU, CuPy on the GPU) against their plain-xp twins, on random shapes."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import backend as B
from minicnn.kernels import cpu, reference
from minicnn.layers.base import window_geometry


@st.composite
def geometries(draw):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["valid", "same"]))
    H, W = draw(st.integers(KH, 11)), draw(st.integers(KW, 11))
    OH, pt = window_geometry(H, KH, sh, padding)
    OW, pl = window_geometry(W, KW, sw, padding)
    return (N, H, W, C), (KH, KW, sh, sw, pt, pl, OH, OW), draw(st.integers(0, 2**31))


def _kernel_pairs(name):
    return getattr(cpu, name), getattr(reference, name)


@settings(max_examples=60, deadline=None)
@given(geometries(), st.sampled_from([np.float32, np.float64]))
def test_im2col_col2im(geom, dtype):
    shape, g, seed = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    cols = cpu.im2col(x, *g)
    np.testing.assert_allclose(cols, reference.im2col(x, *g), atol=1e-6)
    dcols = rng.standard_normal(cols.shape).astype(dtype)
    np.testing.assert_allclose(cpu.col2im(dcols, shape, *g), reference.col2im(dcols, shape, *g), atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(geometries())
def test_pooling(geom):
    shape, g, seed = geom
    KH, KW, sh, sw, pt, pl, OH, OW = g
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., 0] = np.round(x[..., 0])                 # channel 0 full of ties
    y, arg = cpu.maxpool_forward(x, *g)
    ry, rarg = reference.maxpool_forward(x, *g)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(arg, rarg)
    dout = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(cpu.maxpool_backward(dout, arg, shape, KH, KW, sh, sw, pt, pl),
                               reference.maxpool_backward(dout, rarg, shape, KH, KW, sh, sw, pt, pl), atol=1e-5)
    np.testing.assert_allclose(cpu.avgpool_forward(x, *g), reference.avgpool_forward(x, *g), atol=1e-5)
    np.testing.assert_allclose(cpu.avgpool_backward(dout, shape, KH, KW, sh, sw, pt, pl),
                               reference.avgpool_backward(dout, shape, KH, KW, sh, sw, pt, pl), atol=1e-5)


def test_dispatch_follows_backend(backend, rng):
    """On every backend, the dispatched kernels agree with the NumPy twins."""
    from minicnn import kernels
    x = rng.standard_normal((2, 9, 7, 3)).astype(np.float32)
    g = (3, 3, 2, 2, 1, 1, 5, 4)
    cols = B.to_host(kernels.im2col(B.to_device(x), *g))
    B.set_backend("cpu")
    np.testing.assert_allclose(cols, reference.im2col(x, *g), atol=1e-6)
