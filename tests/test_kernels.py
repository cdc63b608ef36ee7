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


@pytest.mark.parametrize("activation", ["relu", "linear", "tanh"])
@pytest.mark.parametrize("rows", [1, 7, 513])
def test_bias_activation(activation, rows, rng):
    from minicnn import activations
    act = activations.get(activation)
    z = rng.standard_normal((rows, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    expected = reference.bias_activation(z.copy(), b, act)
    y = cpu.bias_activation(z.copy(), b, act)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    dout = rng.standard_normal(y.shape).astype(np.float32)
    dz, rdz = np.empty_like(dout), np.empty_like(dout)
    db = cpu.bias_activation_backward(dout, y, act, dz)
    rdb = reference.bias_activation_backward(dout, expected, act, rdz)
    np.testing.assert_allclose(dz, rdz, atol=1e-6)
    np.testing.assert_allclose(db, rdb, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,args", [("adam_update", (1e-2, 0.9, 0.999, 1e-7)),
                                       ("sgd_momentum_update", (0.1, 0.9, False)),
                                       ("sgd_momentum_update", (0.1, 0.9, True)),
                                       ("rmsprop_update", (1e-3, 0.9, 1e-7))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_kernels(name, args, dtype, rng):
    n_slots = 2 if name == "adam_update" else 1
    arrays = [rng.standard_normal((5, 7)).astype(dtype) for _ in range(2 + n_slots)]
    arrays[2:] = [np.abs(a) for a in arrays[2:]]
    mine = [a.copy() for a in arrays]
    for _ in range(3):
        getattr(cpu, name)(*mine, *args)
        getattr(reference, name)(*arrays, *args)
    for a, b in zip(mine, arrays):
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5])
def test_dropout_mask_twins_agree_and_are_uniform(rate):
    a = cpu.dropout_mask((64, 33), 7, 3, rate, np.float32)
    b = reference.dropout_mask((64, 33), 7, 3, rate, np.float32)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, np.float32(1 / (1 - rate))}
    big = cpu.dropout_mask((200_000,), 1, 0, rate, np.float32)
    assert abs((big == 0).mean() - rate) < 0.005
    assert not np.array_equal(cpu.dropout_mask((64, 33), 7, 4, 0.5, np.float32),
                              cpu.dropout_mask((64, 33), 7, 3, 0.5, np.float32))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(2, 7), st.integers(2, 7), st.integers(1, 3), st.integers(0, 3),
       st.sampled_from([np.uint8, np.float32, np.float64]), st.booleans(), st.integers(0, 2**31))
def test_flip_crop(N, H, W, C, pad, dtype, flips, seed):
    """Epoch augmentation: Numba kernel and plain twin against naive loops."""
    import reference as naive
    pad = min(pad, H - 1, W - 1)
    rng = np.random.default_rng(seed)
    x = (rng.random((N, H, W, C)) * 255).astype(dtype)
    which = rng.random(N) < 0.5 if flips else None
    dy, dx = rng.integers(0, 2 * pad + 1, N), rng.integers(0, 2 * pad + 1, N)
    expected = naive.flip_crop(x, which if flips else np.zeros(N, bool), dy, dx, pad)
    for impl in (cpu, reference):
        out = impl.flip_crop(x, which, dy, dx, pad)
        assert out.dtype == x.dtype
        np.testing.assert_array_equal(out, expected)


def test_gemm_precision_setting():
    """The GPU GEMM precision switch validates its value (no GPU needed to set it)."""
    from minicnn.kernels import cublas
    before = cublas.precision()
    try:
        B.set_gemm_precision("bf16")
        assert cublas.precision() == "bf16" and not cublas.tf32_enabled()
        B.set_tf32(True)
        assert cublas.precision() == "tf32" and cublas.tf32_enabled()
        with pytest.raises(ValueError, match="fp32.*bf16"):
            B.set_gemm_precision("int8")
    finally:
        cublas.set_precision(before)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_gelu_kernels(dtype, rtol, rng):
    """GELU's one-pass Numba kernels against the plain twins (which use math.erf element by element)."""
    z = (rng.standard_normal((7, 5, 3)) * 3).astype(dtype)
    dy = rng.standard_normal(z.shape).astype(dtype)
    y = cpu.gelu(z)
    assert y.dtype == dtype and y.shape == z.shape
    np.testing.assert_allclose(y, reference.gelu(z), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(cpu.gelu_backward(dy, z), reference.gelu_backward(dy, z), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(cpu.gelu(z.T), reference.gelu(z.T), rtol=rtol, atol=rtol)     # strided input


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-11)])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_kernels(dtype, tol, affine, rng):
    """The fused batch-normalization kernels (float64 column sums) against the plain twins."""
    M, C = 1000, 7
    x = (rng.standard_normal((M, C)) * 3 + 5).astype(dtype)
    dout = rng.standard_normal((M, C)).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype) if affine else None
    beta = rng.standard_normal(C).astype(dtype) if affine else None
    y, mean, var = cpu.batchnorm_forward(x, gamma, beta, 1e-3)
    ry, rmean, rvar = reference.batchnorm_forward(x, gamma, beta, 1e-3)
    assert y.dtype == mean.dtype == var.dtype == dtype
    for a, b in ((y, ry), (mean, rmean), (var, rvar)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    for a, b in zip(cpu.batchnorm_backward(dout, x, mean, var, gamma, 1e-3),
                    reference.batchnorm_backward(dout, x, rmean, rvar, gamma, 1e-3)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("shape", [(20, 4), (3, 3, 8, 16), (2048, 7), (1, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_norm_kernel(shape, dtype, rng):
    """max_norm over every axis but the last: the Numba kernels against the formula; columns
    inside the limit barely move (the 1e-7 of Keras's formula), columns outside land on it."""
    w = (rng.standard_normal(shape) * rng.uniform(0.1, 3, shape[-1])).astype(dtype)
    expected = w.copy()
    reference.max_norm(expected, 1.5)
    cpu.max_norm(w, 1.5)
    np.testing.assert_allclose(w, expected, rtol=1e-6 if dtype == np.float32 else 1e-13)
    norms = np.sqrt((w.astype(np.float64) ** 2).reshape(-1, shape[-1]).sum(axis=0))
    assert np.all(norms <= 1.5 * (1 + 1e-6))
    strided = np.asfortranarray(rng.standard_normal(shape).astype(dtype))
    expected = strided.copy()
    reference.max_norm(expected, 0.5)
    cpu.max_norm(strided, 0.5)                      # not C-contiguous: the plain twin
    np.testing.assert_allclose(strided, expected, rtol=1e-6)


@pytest.mark.parametrize("rate", [0.2, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_apply_is_x_times_the_mask(rate, dtype, rng):
    """dropout_apply (mask made and applied in one pass, never stored) equals x * dropout_mask for the
    same key, on both twins: the backward recomputes exactly the forward's mask."""
    x = rng.standard_normal((4, 7, 5, 3)).astype(dtype)
    expected = x * reference.dropout_mask(x.shape, 11, 6, rate, dtype)
    for impl in (cpu, reference):
        y = impl.dropout_apply(x, 11, 6, rate)
        assert y.dtype == dtype and y.shape == x.shape
        np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("name", ["relu", "tanh", "linear", "softmax"])
def test_activation_kernels(name, rng):
    """An Activation layer's elementwise kernels against activations.py's formulas."""
    from minicnn import activations
    act = activations.get(name)
    x = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    x[0, 0, 0, :2] = 0.0                                  # relu's kink: derivative 0 at 0, as in TF
    y = cpu.activation_forward(x, name)
    np.testing.assert_allclose(y, act.forward(x), rtol=1e-6)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(cpu.activation_backward(dy, y, name), act.backward(dy, y), rtol=1e-6)
    np.testing.assert_array_equal(cpu.activation_forward(x[:, ::2], name), act.forward(x[:, ::2]))
