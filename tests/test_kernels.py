"""The kernels of every backend (fast CPU, the readable twins, CUDA) against the naive loops and
formulas of tests/reference.py, on random shapes; the fast CPU's optimizer kernels against the twins."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import reference as ref
from minicnn import backend as B
from minicnn.kernels import cpu, reference
from minicnn.layers.base import window_geometry

# hypothesis runs its examples inside one `backend` case (the fixture is set up once per case)
ON_EVERY_BACKEND = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# fixed cases that always run (they were the GPU's): (N, H, W, C), (KH, KW), (sh, sw), padding, seed
GEOMETRIES = [((2, 9, 7, 3), (3, 3), (1, 1), "same", 0), ((2, 9, 7, 3), (3, 3), (2, 2), "same", 1),
              ((3, 8, 8, 4), (2, 2), (2, 2), "valid", 2), ((1, 7, 9, 2), (5, 5), (2, 1), "same", 3),
              ((2, 6, 5, 3), (3, 2), (1, 2), "valid", 4), ((2, 32, 32, 3), (3, 3), (1, 1), "same", 5)]


@st.composite
def geometries(draw):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["valid", "same"]))
    H, W = draw(st.integers(KH, 11)), draw(st.integers(KW, 11))
    return (N, H, W, C), (KH, KW), (sh, sw), padding, draw(st.integers(0, 2**31))


def _kernel_geometry(shape, kernel, stride, padding):
    """(KH, KW, sh, sw, pt, pl, OH, OW): the kernels' arguments."""
    OH, pt = window_geometry(shape[1], kernel[0], stride[0], padding)
    OW, pl = window_geometry(shape[2], kernel[1], stride[1], padding)
    return kernel + stride + (pt, pl, OH, OW)


def _examples(*extra):
    """@example for each of GEOMETRIES (with `extra` arguments after the geometry)."""
    def decorate(test):
        for geom in GEOMETRIES:
            test = example(geom, *extra)(test)
        return test
    return decorate


@ON_EVERY_BACKEND
@given(geometries(), st.sampled_from([np.float32, np.float64]))
@_examples(np.float32)
@_examples(np.float64)
def test_im2col_col2im(backend, geom, dtype):
    """im2col copies every window cell (0 for padding) exactly; col2im adds every patch gradient back
    to its cell. Output buffers the kernels accept come NaN-filled: each cell must be written."""
    shape, kernel, stride, padding, seed = geom
    g = _kernel_geometry(shape, kernel, stride, padding)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    impl, rows, width = backend.impl, shape[0] * g[6] * g[7], kernel[0] * kernel[1] * shape[3]
    cols = impl.im2col(backend.to_device(x), *g, **backend.out_for(impl.im2col, (rows, width), dtype))
    assert cols.dtype == dtype
    np.testing.assert_array_equal(backend.to_host(cols), ref.im2col(x, kernel, stride, padding))
    dcols = rng.standard_normal((rows, width)).astype(dtype)
    dx = impl.col2im(backend.to_device(dcols), shape, *g, **backend.out_for(impl.col2im, shape, dtype))
    assert dx.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(backend.to_host(dx), ref.col2im(dcols, shape, kernel, stride, padding), atol=tol)


@ON_EVERY_BACKEND
@given(geometries())
@_examples()
def test_pooling(backend, geom):
    """Max pooling (value, and which cell: the first maximum of a tie) and average pooling (padding
    ignored), forward and backward, against the naive loops; NaN-filled outputs where taken."""
    shape, pool, stride, padding, seed = geom
    g = _kernel_geometry(shape, pool, stride, padding)
    PH, PW, sh, sw, pt, pl, OH, OW = g
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., 0] = np.round(x[..., 0])                 # channel 0 full of ties
    x[0, 0, :2, :] = 0.5                            # and two equal neighbours in every channel
    impl, xd, y_shape = backend.impl, backend.to_device(x), (shape[0], OH, OW, shape[3])
    y, arg = impl.maxpool_forward(xd, *g, **backend.out_for(impl.maxpool_forward, y_shape))
    np.testing.assert_array_equal(backend.to_host(y), ref.maxpool_forward(x, pool, stride, padding))
    np.testing.assert_array_equal(backend.to_host(arg), ref.maxpool_argmax(x, pool, stride, padding))
    dout = rng.standard_normal(y_shape).astype(np.float32)
    dx = impl.maxpool_backward(backend.to_device(dout), arg, shape, PH, PW, sh, sw, pt, pl,
                               **backend.out_for(impl.maxpool_backward, shape))
    np.testing.assert_allclose(backend.to_host(dx), ref.maxpool_backward(x, dout, pool, stride, padding),
                               rtol=1e-6, atol=1e-6)
    ya = impl.avgpool_forward(xd, *g, **backend.out_for(impl.avgpool_forward, y_shape))
    np.testing.assert_allclose(backend.to_host(ya), ref.avgpool_forward(x, pool, stride, padding), rtol=1e-5, atol=1e-6)
    dxa = impl.avgpool_backward(backend.to_device(dout), shape, PH, PW, sh, sw, pt, pl,
                                **backend.out_for(impl.avgpool_backward, shape))
    np.testing.assert_allclose(backend.to_host(dxa), ref.avgpool_backward(x, dout, pool, stride, padding),
                               rtol=1e-5, atol=1e-6)


def test_dispatch_follows_backend(backend, rng):
    """kernels.im2col (what the layers call) runs where the backend computes and gives the naive
    loops' numbers."""
    from minicnn import kernels
    x = rng.standard_normal((2, 9, 7, 3)).astype(np.float32)
    g = _kernel_geometry(x.shape, (3, 3), (2, 2), "same")
    cols = kernels.im2col(backend.to_device(x), *g)
    assert isinstance(cols, backend.xp.ndarray)
    np.testing.assert_array_equal(backend.to_host(cols), ref.im2col(x, (3, 3), (2, 2), "same"))


@pytest.mark.parametrize("activation", ["relu", "linear", "tanh", "sigmoid", "softmax", "gelu"])
@pytest.mark.parametrize("rows,cols", [(1, 6), (7, 6), (513, 6), (5, 3), (300, 40), (4096, 33)])
def test_bias_activation(backend, activation, rows, cols, rng):
    """y = act(z + b) against the definitions; dz = act'(z) dout (written into a NaN-filled buffer)
    and db = its column sums; kernels.column_sum. Softmax's backward is the loss's (not here)."""
    from minicnn import kernels
    z = rng.standard_normal((rows, cols)).astype(np.float32) * 3
    b = rng.standard_normal(cols).astype(np.float32)
    y = kernels.bias_activation(backend.to_device(z.copy()), backend.to_device(b), activation)   # in place
    np.testing.assert_allclose(backend.to_host(y), ref.activation(activation, z + b), rtol=1e-5, atol=1e-6)
    if activation == "softmax":
        return
    dout = rng.standard_normal((rows, cols)).astype(np.float32)
    dz = backend.poisoned((rows, cols))
    saved = y if activation != "gelu" else backend.to_device(z + b)       # GELU's backward takes z
    db = kernels.bias_activation_backward(backend.to_device(dout), saved, activation, dz,
                                          db_out=backend.poisoned(cols))
    expected = ref.activation_grad(activation, dout, backend.to_host(saved))
    np.testing.assert_allclose(backend.to_host(dz), expected, rtol=1e-5, atol=1e-6)
    sum_tol = 1e-5 if rows <= 513 else 1e-4                  # float32 sums of 4096 rows
    np.testing.assert_allclose(backend.to_host(db), expected.sum(axis=0), rtol=sum_tol, atol=sum_tol)
    np.testing.assert_allclose(backend.to_host(kernels.column_sum(backend.to_device(dout))), dout.sum(axis=0),
                               rtol=sum_tol, atol=sum_tol)


def _rule_by_hand(name, w, g, slots, t, decay, **h):
    """The optimizer rules from their formulas (optimizers.py), float64, element by element."""
    w, g = w.astype(np.float64).ravel(), g.astype(np.float64).ravel()
    s = {k: v.astype(np.float64).ravel() for k, v in slots.items()}
    for i in range(w.size):
        w[i] -= decay * w[i]
        if name == "sgd":
            if "m" not in s:
                w[i] -= h["lr"] * g[i]
                continue
            s["m"][i] = h["momentum"] * s["m"][i] - h["lr"] * g[i]
            w[i] += h["momentum"] * s["m"][i] - h["lr"] * g[i] if h["nesterov"] else s["m"][i]
        elif name == "rmsprop":
            s["v"][i] = h["rho"] * s["v"][i] + (1 - h["rho"]) * g[i] ** 2
            den = s["v"][i]
            if "a" in s:
                s["a"][i] = h["rho"] * s["a"][i] + (1 - h["rho"]) * g[i]
                den -= s["a"][i] ** 2
            step = h["lr"] * g[i] / np.sqrt(den + h["epsilon"])
            if "mom" in s:
                s["mom"][i] = h["momentum"] * s["mom"][i] + step
                step = s["mom"][i]
            w[i] -= step
        else:
            b1, b2 = h["beta_1"], h["beta_2"]
            s["m"][i] += (g[i] - s["m"][i]) * (1 - b1)
            s["v"][i] += (g[i] ** 2 - s["v"][i]) * (1 - b2)
            v = s["v"][i]
            if "vhat" in s:
                s["vhat"][i] = max(s["vhat"][i], v)
                v = s["vhat"][i]
            alpha = h["lr"] * np.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
            w[i] -= alpha * s["m"][i] / (np.sqrt(v) + h["epsilon"])
    return w, s


def _call_rule(impl, name, w, g, slots, t, decay, h):
    if name == "sgd":
        impl.sgd_update(w, g, slots.get("m"), h["lr"], h.get("momentum", 0.0), h.get("nesterov", False), decay)
    elif name == "rmsprop":
        impl.rmsprop_update(w, g, slots["v"], h["lr"], h["rho"], h["epsilon"], decay, h.get("momentum", 0.0),
                            slots.get("mom"), slots.get("a"))
    else:
        impl.adam_update(w, g, slots["m"], slots["v"], h["lr"], t, h["beta_1"], h["beta_2"], h["epsilon"], decay,
                         slots.get("vhat"))


@pytest.mark.parametrize("name,slot_names,h", [
    ("sgd", (), dict(lr=0.1)),
    ("sgd", ("m",), dict(lr=0.1, momentum=0.9, nesterov=False)),
    ("sgd", ("m",), dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("rmsprop", ("v",), dict(lr=1e-3, rho=0.9, epsilon=1e-7)),
    ("rmsprop", ("v", "a", "mom"), dict(lr=1e-3, rho=0.9, epsilon=1e-7, momentum=0.5)),
    ("adam", ("m", "v"), dict(lr=1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    ("adam", ("m", "v", "vhat"), dict(lr=1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-7))])
@pytest.mark.parametrize("decay", [0.0, 1e-3])
def test_optimizer_rules(backend, name, slot_names, h, decay, rng):
    """Each rule (kernels.sgd_update, rmsprop_update, adam_update: one signature on every backend,
    momentum / Nesterov / centered / amsgrad and decoupled weight decay included) equals its
    formula worked element by element, over three steps (t = 0, 1, 2)."""
    w, g = rng.standard_normal((5, 7)), rng.standard_normal((3, 5, 7))
    slots = {k: np.abs(rng.standard_normal((5, 7))) * (k != "a") for k in slot_names}
    mine_w = backend.to_device(w.astype(np.float32))
    mine = {k: backend.to_device(v.astype(np.float32)) for k, v in slots.items()}
    want_w, want = w.copy(), {k: v.copy() for k, v in slots.items()}
    for t in range(3):
        _call_rule(backend.impl, name, mine_w, backend.to_device(g[t].astype(np.float32)), mine, t, decay, h)
        want_w, want = _rule_by_hand(name, want_w.reshape(5, 7), g[t], {k: v.reshape(5, 7) for k, v in want.items()},
                                     t, decay, **h)
    np.testing.assert_allclose(backend.to_host(mine_w).ravel(), want_w, rtol=2e-5, atol=2e-6)
    for k in slots:
        np.testing.assert_allclose(backend.to_host(mine[k]).ravel(), want[k], rtol=2e-5, atol=2e-6)


@functools.lru_cache(maxsize=None)
def _kept(shape, seed, counter, rate):
    """The naive stream's keep pattern (cached: every backend compares with the same one)."""
    return ref.dropout_keep(shape, seed, counter, rate)


def _mask(shape, seed, counter, rate, dtype):
    return _kept(shape, seed, counter, rate).astype(dtype) * np.dtype(dtype).type(1 / (1 - rate))


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5])
def test_dropout_mask_is_the_stream_and_uniform(backend, rate):
    """The mask keeps where the counter-based stream (Python integers) says, scaled by 1/(1 - rate);
    about `rate` of a big mask is dropped; another counter gives another mask."""
    impl = backend.impl
    a = backend.to_host(impl.dropout_mask((64, 33), 7, 3, rate, np.float32))
    np.testing.assert_array_equal(a, _mask((64, 33), 7, 3, rate, np.float32))
    assert set(np.unique(a)) <= {0.0, np.float32(1 / (1 - rate))}
    big = backend.to_host(impl.dropout_mask((200_000,), 1, 0, rate, np.float32))
    assert abs((big == 0).mean() - rate) < 0.005
    assert not np.array_equal(backend.to_host(impl.dropout_mask((64, 33), 7, 4, 0.5, np.float32)),
                              backend.to_host(impl.dropout_mask((64, 33), 7, 3, 0.5, np.float32)))


@pytest.mark.parametrize("shape,rate", [((7, 13), 0.3), ((64, 8, 8, 16), 0.5), ((1, 1), 0.9)])
def test_dropout_mask_is_the_stream_for_any_shape_and_counter(backend, shape, rate):
    """Masks of several shapes (one element, many blocks) and counters (0, 1, large) are exactly
    the naive stream's: the same numbers on every backend."""
    for counter in (0, 1, 12345):
        mask = backend.impl.dropout_mask(shape, 77, counter, rate, np.float32)
        np.testing.assert_array_equal(backend.to_host(mask), _mask(shape, 77, counter, rate, np.float32))


@pytest.mark.parametrize("rate", [0.2, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_apply_is_x_times_the_mask(backend, rate, dtype, rng):
    """dropout_apply (mask made and applied in one pass, never stored) equals x * the stream's mask
    for the same key: the backward recomputes exactly the forward's mask."""
    x = rng.standard_normal((4, 7, 5, 3)).astype(dtype)
    expected = x * _mask(x.shape, 11, 6, rate, dtype)
    y = backend.impl.dropout_apply(backend.to_device(x), 11, 6, rate)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_array_equal(backend.to_host(y), expected)


@ON_EVERY_BACKEND
@given(st.integers(1, 5), st.integers(2, 7), st.integers(2, 7), st.integers(1, 3), st.integers(0, 3),
       st.sampled_from([np.uint8, np.float32, np.float64]), st.booleans(), st.integers(0, 2**31))
@example(37, 9, 7, 3, 2, np.uint8, False, 0)
@example(37, 9, 7, 3, 2, np.uint8, True, 1)
@example(37, 9, 7, 3, 2, np.float32, False, 2)
@example(37, 9, 7, 3, 2, np.float32, True, 3)
def test_flip_crop(backend, N, H, W, C, pad, dtype, flips, seed):
    """Epoch augmentation (mirror where asked, reflect-pad, crop at per-image offsets) against
    naive loops, dtype kept (uint8 stays uint8)."""
    pad = min(pad, H - 1, W - 1)
    rng = np.random.default_rng(seed)
    x = (rng.random((N, H, W, C)) * 255).astype(dtype)
    which = rng.random(N) < 0.5 if flips else None
    dy, dx = rng.integers(0, 2 * pad + 1, N), rng.integers(0, 2 * pad + 1, N)
    expected = ref.flip_crop(x, which if flips else np.zeros(N, bool), dy, dx, pad)
    dev = backend.to_device
    out = backend.impl.flip_crop(dev(x), None if which is None else dev(which), dev(dy), dev(dx), pad)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(backend.to_host(out), expected)


@ON_EVERY_BACKEND
@given(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.integers(1, 3), st.integers(1, 6),
       st.integers(1, 6), st.sampled_from(reference.FILL_MODES), st.sampled_from(["bilinear", "nearest"]),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
@example(2, 5, 7, 3, 5, 7, "reflect", "bilinear", np.float32, 0)
@example(2, 5, 7, 3, 5, 7, "wrap", "nearest", np.float32, 1)
@example(2, 5, 7, 3, 4, 3, "constant", "bilinear", np.float64, 2)
@example(1, 1, 1, 1, 2, 2, "reflect", "bilinear", np.float64, 3)
def test_resample(backend, N, H, W, C, OH, OW, fill_mode, interpolation, dtype, seed):
    """Images read at per-pixel positions (reference.resample: the augmentation layers' sampling),
    forward and backward (the scatter-add), against the naive loops of tests/reference.py, for every
    fill mode and both interpolations: positions far outside the image (several periods), on whole
    pixels and on exact halves (nearest rounds them up)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    rows = rng.uniform(-2.5 * H, 3.5 * H, (N, OH, OW))
    cols = rng.uniform(-2.5 * W, 3.5 * W, (N, OH, OW))
    rows[:, 0], cols[:, :, 0] = np.round(rows[:, 0]), np.round(cols[:, :, 0]) + 0.5   # whole pixels, halves
    dev, impl = backend.to_device, backend.impl
    out = impl.resample(dev(x), dev(rows), dev(cols), fill_mode, 0.25, interpolation)
    assert out.dtype == dtype and out.shape == (N, OH, OW, C)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(backend.to_host(out), ref.resample(x, rows, cols, fill_mode, 0.25, interpolation),
                               rtol=tol, atol=tol)
    dy = rng.standard_normal((N, OH, OW, C)).astype(dtype)
    dx = impl.resample_backward(dev(dy), dev(rows), dev(cols), x.shape, fill_mode, interpolation)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(backend.to_host(dx), ref.resample_backward(dy, rows, cols, x.shape, fill_mode,
                                                                          interpolation), rtol=tol, atol=10 * tol)


def test_affine_positions_are_the_matrix_applied_to_each_pixel(rng):
    """(r, c, 1) = M_n (i, j, 1) for every output pixel (i, j) of every image n."""
    from minicnn import kernels
    M = np.concatenate([rng.standard_normal((3, 2, 3)), np.tile([[[0.0, 0.0, 1.0]]], (3, 1, 1))], axis=1)
    rows, cols = kernels.affine_positions(M, 4, 5)
    for n, i, j in np.ndindex(3, 4, 5):
        np.testing.assert_allclose([rows[n, i, j], cols[n, i, j], 1.0], M[n] @ [i, j, 1.0], rtol=1e-12)


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
@pytest.mark.parametrize("shape", [(7, 5, 3), (33, 17)])
def test_gelu_kernels(backend, dtype, rtol, shape, rng):
    """GELU's one-pass kernels against math.erf element by element, strided input too."""
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    dy = rng.standard_normal(z.shape).astype(dtype)
    impl, dev, host = backend.impl, backend.to_device, backend.to_host
    y = impl.gelu(dev(z))
    assert y.dtype == dtype and y.shape == z.shape
    np.testing.assert_allclose(host(y), ref.gelu(z), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(host(impl.gelu_backward(dev(dy), dev(z))), ref.gelu_grad(z, dy), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(host(impl.gelu(dev(z).T)), ref.gelu(z.T), rtol=rtol, atol=rtol)     # strided input


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-11)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("M, C", [(1000, 7), (4096, 64)])
def test_batchnorm_kernels(backend, dtype, tol, affine, M, C, rng):
    """Fused batch normalization (float64 column sums, then y / dx) against the chain rule worked
    step by step in float64; outputs keep the input's dtype."""
    x = (rng.standard_normal((M, C)) * 3 + 5).astype(dtype)
    dout = rng.standard_normal((M, C)).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype) if affine else None
    beta = rng.standard_normal(C).astype(dtype) if affine else None
    dev, host = backend.to_device, backend.to_host
    y, mean, var = backend.impl.batchnorm_forward(dev(x), None if gamma is None else dev(gamma),
                                                  None if beta is None else dev(beta), 1e-3)
    assert y.dtype == mean.dtype == var.dtype == dtype
    for a, b in zip((y, mean, var), ref.batchnorm_forward(x, gamma, beta, 1e-3)):
        np.testing.assert_allclose(host(a), b, rtol=tol, atol=tol)
    grads = backend.impl.batchnorm_backward(dev(dout), dev(x), mean, var, None if gamma is None else dev(gamma), 1e-3)
    for a, b in zip(grads, ref.batchnorm_backward(dout, x, gamma, 1e-3)):
        assert a.dtype == dtype
        np.testing.assert_allclose(host(a), b, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("shape", [(20, 4), (3, 3, 8, 16), (2048, 7), (1, 5), (300, 40)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_norm_kernel(backend, shape, dtype, rng):
    """MaxNorm over every axis but the last (Keras's use: kernels.max_norm, in place) against the
    formula; columns inside the limit barely move (the 1e-7 of Keras's formula), columns outside
    land on it."""
    from minicnn.constraints import MaxNorm
    w = (rng.standard_normal(shape) * rng.uniform(0.1, 3, shape[-1])).astype(dtype)
    wd = backend.to_device(w.copy())                       # in place (on the CPU, w itself)
    MaxNorm(1.5, axis=list(range(len(shape) - 1)))(wd)
    got = backend.to_host(wd)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref.max_norm(w, 1.5), rtol=1e-6 if dtype == np.float32 else 1e-13)
    norms = np.sqrt((got.astype(np.float64) ** 2).reshape(-1, shape[-1]).sum(axis=0))
    assert np.all(norms <= 1.5 * (1 + 1e-6))


@pytest.mark.backends("cpu", "reference")
def test_max_norm_kernel_on_a_strided_array(backend, rng):
    """A weight array that is not C-contiguous: the fast CPU kernel falls back to the plain twin and
    the result still follows the formula. (The GPU's kernels take C-contiguous arrays, as
    parameters always are.)"""
    strided = np.asfortranarray(rng.standard_normal((3, 3, 8, 16)).astype(np.float32))
    expected = ref.max_norm(strided, 0.5)
    backend.impl.max_norm(strided, 0.5)
    np.testing.assert_allclose(strided, expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["relu", "tanh", "linear", "sigmoid", "softmax", "gelu"])
def test_activation_kernels(backend, name, rng):
    """An Activation layer's elementwise kernels against the definitions (the derivative in terms of
    y, as activations.py caches it; of z for GELU); a strided input gives the same numbers."""
    x = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    x[0, 0, 0, :2] = 0.0                                  # relu's kink: derivative 0 at 0, as in TF
    impl, xd = backend.impl, backend.to_device(x)
    y = impl.activation_forward(xd, name)
    np.testing.assert_allclose(backend.to_host(y), ref.activation(name, x), rtol=1e-6, atol=1e-7)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    saved = xd if name == "gelu" else y
    np.testing.assert_allclose(backend.to_host(impl.activation_backward(backend.to_device(dy), saved, name)),
                               ref.activation_grad(name, dy, backend.to_host(saved)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(backend.to_host(impl.activation_forward(xd[:, ::2], name)),
                                  backend.to_host(y)[:, ::2])
