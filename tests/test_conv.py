"""Conv2D: shapes (TF 'same' rule), gradient checks and the naive-loop reference on every backend,
and the CPU's row-block path."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
def test_gradcheck(backend, f64, k, s, padding, hw, rng):
    """float64 finite differences: dx, dW and db of a tanh Conv2D, every kernel size, stride and padding."""
    layer = Conv2D(3, k, strides=s, padding=padding, activation="tanh")
    x = rng.standard_normal((2,) + hw + (2,))
    errors = gradcheck.check_layer(layer, x, training=True, seed=k * 10 + s)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("make,shape", [
    (lambda: Conv2D(3, 3, strides=2, padding="same", activation="relu"), (2, 7, 6, 2)),
    (lambda: Conv2D(2, (2, 3), padding="valid", activation="tanh"), (2, 5, 6, 3)),
])
def test_gradcheck_fused_relu_and_rectangular_kernel(backend, f64, make, shape, rng):
    """float64 finite differences through the fused bias + ReLU epilogue and a non-square kernel."""
    errors = gradcheck.check_layer(make(), rng.standard_normal(shape))
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("k,s,padding,hw", GRID[::3])
def test_against_naive_loops(backend, k, s, padding, hw, rng, f64):
    """Forward, dx, dW and db in float64 equal the naive loops' to 1e-10."""
    layer = Conv2D(4, k, strides=s, padding=padding)
    x = rng.standard_normal((2,) + hw + (3,))
    layer.build(x.shape[1:])
    W, b = rng.standard_normal(layer.params["W"].shape), rng.standard_normal(4)
    layer.set_weights([W, b])
    host, dev = backend.to_host, backend.to_device
    y = layer.forward(dev(x), training=True)
    np.testing.assert_allclose(host(y), ref.conv2d_forward(x, W, b, (s, s), padding), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dev(dy))
    rdx, rdW, rdb = ref.conv2d_backward(x, W, dy, (s, s), padding)
    np.testing.assert_allclose(host(dx), rdx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(layer.grads["W"]), rdW, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(layer.grads["b"]), rdb, rtol=1e-10, atol=1e-10)


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
    """float32 forward with the fused ReLU, stride 2 and 'same' padding, against the naive loops."""
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
def test_gradcheck_without_bias(backend, f64, activation, rng):
    """use_bias=False (the fast recipe's convs): a linear one passes its gradient straight through."""
    layer = Conv2D(4, 3, padding="same", use_bias=False, activation=activation)
    errors = gradcheck.check_layer(layer, rng.standard_normal((2, 5, 5, 3)), training=True)
    assert set(errors) == {"x", "W"} and max(errors.values()) < 1e-6, errors


# ---- the CPU's blocked path (kernels/cpu_conv.py): the same equations on row blocks ---------------------
@st.composite
def conv_cases(draw):
    """Kernel 1-5, stride 1-2, same/valid, odd sizes, channels below and at whole vectors, and a
    tile size that cuts images into bands (or takes several images per tile) and does not divide
    the batch."""
    k, s = draw(st.integers(1, 5)), draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["same", "valid"]))
    H, W = draw(st.integers(k, 11)), draw(st.integers(k, 11))
    # C a multiple of the vector width (16, 32) takes the backward that adds dx in place (no dcols)
    N, C, F = draw(st.integers(1, 5)), draw(st.sampled_from([1, 2, 3, 5, 6, 16, 32])), draw(st.integers(1, 40))
    return dict(N=N, H=H, W=W, C=C, F=F, k=k, s=s, padding=padding,
                tile=draw(st.sampled_from([4096, 20_000, 1 << 20])), seed=draw(st.integers(0, 2**31)))


def _geometry(case):
    OH, pt = ref.geometry(case["H"], case["k"], case["s"], case["padding"])
    OW, pl = ref.geometry(case["W"], case["k"], case["s"], case["padding"])
    return (case["k"], case["k"], case["s"], case["s"], pt, pl, OH, OW)


@settings(max_examples=80, deadline=None)
@given(conv_cases(), st.sampled_from(["relu", "linear"]), st.sampled_from([np.float32, np.float64]),
       st.sampled_from(["always", "never"]))
def test_blocked_kernels_match_whole_batch_and_naive_loops(case, activation, dtype, implicit):
    """cpu_conv's tiles (and, at stride 1, its forward without a column matrix) against
    reference.conv2d_* (whole-batch im2col) and the naive loops, for the forward and every gradient."""
    from minicnn.kernels import cpu_conv, reference as twin
    cpu_conv.set_implicit(implicit)
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["N"], case["H"], case["W"], case["C"])).astype(dtype)
    Wt = rng.standard_normal((case["k"], case["k"], case["C"], case["F"])).astype(dtype)
    b = rng.standard_normal(case["F"]).astype(dtype)
    g = _geometry(case)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    cpu_conv.set_tile_bytes(case["tile"])
    try:
        y = cpu_conv.conv2d_forward(x, Wt, b, activation, *g)
        z = ref.conv2d_forward(x.astype(float), Wt.astype(float), b.astype(float), (case["s"],) * 2, case["padding"])
        expected = np.maximum(z, 0) if activation == "relu" else z
        np.testing.assert_allclose(y, expected, **tol)
        np.testing.assert_allclose(twin.conv2d_forward(x, Wt, b, activation, *g), expected, **tol)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dW, db = np.full_like(Wt, np.nan), np.full_like(b, np.nan)            # poisoned: all must be written
        dx = cpu_conv.conv2d_backward(dy, x, y, Wt, activation, *g, dW, db, True)
        dz = dy * (expected > 0) if activation == "relu" else dy
        rdx, rdW, rdb = ref.conv2d_backward(x.astype(float), Wt.astype(float), dz.astype(float),
                                            (case["s"],) * 2, case["padding"])
        for got, want in ((dx, rdx), (dW, rdW), (db, rdb)):
            np.testing.assert_allclose(got, want, **tol)
        assert cpu_conv.conv2d_backward(dy, x, y, Wt, activation, *g, dW, None, False) is None
        np.testing.assert_allclose(dW, rdW, **tol)
    finally:
        cpu_conv.set_tile_bytes(None)
        cpu_conv.set_implicit("auto")


@pytest.mark.parametrize("shape,k,padding,F", [((2, 9, 11, 3), 3, "same", 17), ((3, 12, 10, 5), 5, "valid", 8),
                                               ((1, 6, 7, 4), 1, "same", 40), ((2, 8, 8, 2), 4, "same", 3)])
def test_implicit_forward_reads_the_input_in_place(shape, k, padding, F, rng):
    """The stride-1 forward without a column matrix equals the naive loops in float64 (exactly
    enough to tell a misplaced window), with one band per output row and with whole images."""
    from minicnn.kernels import cpu_conv
    x, Wt, b = rng.standard_normal(shape), rng.standard_normal((k, k, shape[3], F)), rng.standard_normal(F)
    g = _geometry(dict(H=shape[1], W=shape[2], k=k, s=1, padding=padding))
    want = ref.conv2d_forward(x, Wt, b, (1, 1), padding)
    cpu_conv.set_implicit("always")
    try:
        for tile in (4096, 1 << 20):
            cpu_conv.set_tile_bytes(tile)
            np.testing.assert_allclose(cpu_conv.conv2d_forward(x, Wt, b, "linear", *g), want, rtol=1e-12, atol=1e-12)
    finally:
        cpu_conv.set_implicit("auto")
        cpu_conv.set_tile_bytes(None)


@pytest.mark.parametrize("shape,k,padding,F", [((2, 9, 11, 3), 3, "same", 17), ((3, 12, 10, 5), 5, "valid", 8),
                                               ((2, 9, 9, 20), 5, "same", 24), ((1, 6, 7, 4), 1, "same", 40),
                                               ((2, 8, 8, 2), 4, "same", 3), ((2, 7, 6, 16), 2, "valid", 16)])
def test_implicit_backward_reads_the_views_in_place(shape, k, padding, F, rng):
    """The stride-1 backward without a column matrix (dW from views of the padded input, dx as the
    implicit forward of the padded dz with the turned kernel) equals the naive loops in float64, for
    products shallower than KC (one pass of the micro-kernel over the kernel rows) and deeper
    (5x5x20 = 500), with and without dx, and with the relu mask."""
    from minicnn.kernels import cpu_conv
    x, Wt = rng.standard_normal(shape), rng.standard_normal((k, k, shape[3], F))
    g = _geometry(dict(H=shape[1], W=shape[2], k=k, s=1, padding=padding))
    assert cpu_conv.implicit_backward_fits(1, 1, k, k, g[4], g[5], shape[1], shape[2], g[6], g[7])
    cpu_conv.set_implicit("always")
    try:
        y = cpu_conv.conv2d_forward(x, Wt, None, "relu", *g)
        dy = rng.standard_normal(y.shape)
        want_dx, want_dW, want_db = ref.conv2d_backward(x, Wt, dy * (y > 0), (1, 1), padding)
        dW, db = np.full_like(Wt, np.nan), np.full(F, np.nan)
        dx = cpu_conv.conv2d_backward(dy, x, y, Wt, "relu", *g, dW, db, True)
        for got, want in ((dx, want_dx), (dW, want_dW), (db, want_db)):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
        dW2 = np.full_like(Wt, np.nan)
        assert cpu_conv.conv2d_backward(dy, x, y, Wt, "relu", *g, dW2, None, False) is None
        np.testing.assert_array_equal(dW2, dW)
    finally:
        cpu_conv.set_implicit("auto")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(4, 14), st.integers(4, 14), st.sampled_from([1, 3, 16]), st.integers(1, 40),
       st.integers(1, 4), st.sampled_from(["same", "valid"]), st.sampled_from([(2, 2), (3, 3), (2, 3)]),
       st.sampled_from([4096, 1 << 20]), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
def test_conv_relu_maxpool_in_one_pass_equals_the_two_kernels(N, H, W, C, F, k, padding, pool, tile, dtype, seed):
    """cpu_conv.conv2d_relu_maxpool (the conv's output pooled in the tile that computed it) gives the
    bits of conv2d_forward('relu') then maxpool_forward, windows tiling the output (odd sizes leave
    rows and columns out), bands cut to whole windows; and the reference composition to rounding."""
    from minicnn.kernels import cpu, cpu_conv, reference as twin
    k = min(k, H, W)
    g = _geometry(dict(H=H, W=W, k=k, s=1, padding=padding))
    PH, PW = pool
    if g[6] < PH or g[7] < PW:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    Wt, b = rng.standard_normal((k, k, C, F)).astype(dtype), rng.standard_normal(F).astype(dtype)
    cpu_conv.set_implicit("always")
    cpu_conv.set_tile_bytes(tile)
    try:
        pooled, arg = cpu_conv.conv2d_relu_maxpool(x, Wt, b, *g, PH, PW)
        y = cpu_conv.conv2d_forward(x, Wt, b, "relu", *g)
        want, want_arg = cpu.maxpool_forward(y, PH, PW, PH, PW, 0, 0, g[6] // PH, g[7] // PW)
    finally:
        cpu_conv.set_implicit("auto")
        cpu_conv.set_tile_bytes(None)
    np.testing.assert_array_equal(pooled, want)
    np.testing.assert_array_equal(arg, want_arg)
    spec, _ = twin.conv2d_relu_maxpool(x, Wt, b, *g, PH, PW)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(pooled, spec, rtol=tol, atol=tol)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(4, 13), st.integers(4, 13), st.sampled_from([1, 3, 16, 32]), st.integers(1, 40),
       st.integers(1, 4), st.integers(1, 2), st.sampled_from(["same", "valid"]), st.sampled_from([(2, 2), (3, 3), (2, 3)]),
       st.sampled_from(["always", "never"]), st.sampled_from([np.float32, np.float64]), st.booleans(),
       st.integers(0, 2**31))
def test_conv_maxpool_backward_builds_dz_from_the_pooling(N, H, W, C, F, k, s, padding, pool, implicit, dtype,
                                                          input_grad, seed):
    """cpu_conv.conv2d_maxpool_backward (dz made tile by tile from the pooling's dout, arg and
    output) gives the bits of maxpool_backward(dout * (pooled > 0)) then conv2d_backward 'linear' on
    both backward paths, and the reference's numbers to rounding; cells outside every window (odd
    sizes) get nothing."""
    from minicnn.kernels import cpu, cpu_conv, reference as twin
    k = min(k, H, W)
    g = _geometry(dict(H=H, W=W, k=k, s=s, padding=padding))
    PH, PW = pool
    OH, OW = g[6], g[7]
    if OH < PH or OW < PW:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    Wt, b = rng.standard_normal((k, k, C, F)).astype(dtype), rng.standard_normal(F).astype(dtype)
    cpu_conv.set_implicit(implicit)
    try:
        y = cpu_conv.conv2d_forward(x, Wt, b, "relu", *g)
        pooled, arg = cpu.maxpool_forward(y, PH, PW, PH, PW, 0, 0, OH // PH, OW // PW)
        dout = rng.standard_normal(pooled.shape).astype(dtype)
        dW, db = np.full_like(Wt, np.nan), np.full_like(b, np.nan)
        dx = cpu_conv.conv2d_maxpool_backward(dout, arg, pooled, PH, PW, x, Wt, *g, dW, db, input_grad)
        dz = cpu.maxpool_backward(dout * (pooled > 0), arg, y.shape, PH, PW, PH, PW, 0, 0)
        dW2, db2 = np.full_like(Wt, np.nan), np.full_like(b, np.nan)
        dx2 = cpu_conv.conv2d_backward(dz, x, dz, Wt, "linear", *g, dW2, db2, input_grad)
    finally:
        cpu_conv.set_implicit("auto")
    for got, want in ((dW, dW2), (db, db2)) + (((dx, dx2),) if input_grad else ()):
        np.testing.assert_array_equal(got, want)
    assert (dx is None) == (not input_grad)
    dW3, db3 = np.empty_like(Wt), np.empty_like(b)
    dx3 = twin.conv2d_maxpool_backward(dout, arg, pooled, PH, PW, x, Wt, *g, dW3, db3, input_grad)
    tol = 1e-3 if dtype == np.float32 else 1e-10
    for got, want in ((dW, dW3), (db, db3)) + (((dx, dx3),) if input_grad else ()):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_conv_relu_maxpool_is_left_to_the_two_kernels_off_the_implicit_path(rng):
    """Where the stride-1 forward without columns does not run (stride 2, 4x4 outputs in 'auto'),
    there is no fused kernel: None, and the layer runs the two."""
    from minicnn.kernels import cpu_conv
    x, Wt = rng.standard_normal((2, 8, 8, 3)), rng.standard_normal((3, 3, 3, 4))
    assert cpu_conv.conv2d_relu_maxpool(x, Wt, None, 3, 3, 2, 2, 0, 0, 3, 3, 2, 2) is None
    assert cpu_conv.conv2d_relu_maxpool(x[:, :4, :4], Wt, None, 3, 3, 1, 1, 1, 1, 4, 4, 2, 2) is None


def test_implicit_backward_rule():
    """'auto': the stride-1 backward without columns where the forward's rule holds, for inputs of at
    most 16 channels into at most 32 filters, dx only over whole vectors of channels (tutorial000's
    first two layers, the first layers of tutorial001_model_2, 003 and 004); the row blocks otherwise,
    at stride 2, and for padding wider than 'same'."""
    from minicnn.kernels import cpu_conv
    from minicnn.kernels.cpu_gemm import VW
    pays = cpu_conv.implicit_backward_pays
    assert pays(1, 1, 3, 3, 1, 1, 32, 32, 32, 32, 3, 16, False) and pays(1, 1, 5, 5, 2, 2, 32, 32, 32, 32, 3, 32, False)
    assert pays(1, 1, 3, 3, 1, 1, 16, 16, 16, 16, 16, 32, True) == (16 % VW == 0)
    assert pays(1, 1, 3, 3, 0, 0, 32, 32, 30, 30, 3, 8, False)                  # tutorial003_larger's first
    assert not pays(1, 1, 3, 3, 0, 0, 15, 15, 13, 13, 8, 512, True)             # ... and second: 512 filters
    assert not pays(1, 1, 3, 3, 1, 1, 16, 16, 16, 16, 16, 64, True)             # 64 filters
    assert not pays(1, 1, 3, 3, 1, 1, 16, 16, 16, 16, 8, 32, True)              # dx over half a vector
    assert not pays(1, 1, 3, 3, 1, 1, 16, 16, 16, 16, 32, 32, True)             # 32 channels: dx in place
    assert not pays(1, 1, 3, 3, 1, 1, 4, 4, 4, 4, 3, 16, False)                 # 4x4: a third of the grid junk
    assert not pays(2, 2, 3, 3, 1, 1, 32, 32, 16, 16, 3, 16, False)
    assert not cpu_conv.implicit_backward_fits(1, 1, 3, 3, 3, 3, 8, 8, 12, 12)  # padding 3 > k - 1
    try:
        cpu_conv.set_implicit("always")
        assert pays(1, 1, 3, 3, 1, 1, 16, 16, 16, 16, 64, 512, True) and pays(1, 1, 3, 3, 1, 1, 4, 4, 4, 4, 3, 16, False)
        cpu_conv.set_implicit("never")
        assert not pays(1, 1, 3, 3, 1, 1, 32, 32, 32, 32, 3, 16, False)
    finally:
        cpu_conv.set_implicit("auto")


@pytest.mark.parametrize("hw,C,F,k,s,padding", [((12, 13), 16, 8, 3, 1, "same"), ((14, 16), 32, 33, 5, 1, "valid"),
                                                  ((21, 22), 16, 5, 3, 2, "same"), ((23, 24), 32, 17, 4, 2, "valid"),
                                                  ((10, 11), 48, 3, 1, 1, "same")])
def test_backward_adding_dx_in_place_equals_the_naive_loops(hw, C, F, k, s, padding, rng):
    """Channels in whole vectors and output rows of 10+ pixels: the row-block backward adds each
    kernel cell's share of dx in place (no dcols, no col2im); float64 against the naive loops, with
    small tiles and with whole images, and against the dcols path."""
    from minicnn.kernels import cpu_conv
    x, Wt = rng.standard_normal((2,) + hw + (C,)), rng.standard_normal((k, k, C, F))
    g = _geometry(dict(H=hw[0], W=hw[1], k=k, s=s, padding=padding))
    assert cpu_conv.dx_in_place(C, g[-1])
    y = cpu_conv.conv2d_forward(x, Wt, None, "linear", *g)
    dy = rng.standard_normal(y.shape)
    want, _, _ = ref.conv2d_backward(x, Wt, dy, (s, s), padding)
    results = []
    try:
        for tile, in_place in ((4096, True), (1 << 20, True), (4096, False)):
            cpu_conv.set_tile_bytes(tile)
            cpu_conv._DX_IN_PLACE["on"] = in_place
            dW = np.empty_like(Wt)
            results.append(cpu_conv.conv2d_backward(dy, x, y, Wt, "linear", *g, dW, None, True))
    finally:
        cpu_conv.set_tile_bytes(None)
        cpu_conv._DX_IN_PLACE["on"] = True
    for dx in results:
        np.testing.assert_allclose(dx, want, rtol=1e-11, atol=1e-11)


def test_implicit_rule_and_setting():
    """'auto' takes the implicit forward at stride 1 where at most 1/6 of its virtual pixels are
    junk; 'always' / 'never' force it; anything else is refused."""
    from minicnn.kernels import cpu_conv
    assert cpu_conv.implicit_pays(1, 1, 3, 10) and cpu_conv.implicit_pays(1, 1, 5, 28)
    assert not cpu_conv.implicit_pays(1, 1, 3, 8) and not cpu_conv.implicit_pays(2, 2, 3, 32)
    assert cpu_conv.implicit_pays(1, 1, 1, 1)                       # 1x1: no junk at all
    try:
        cpu_conv.set_implicit("always")
        assert cpu_conv.implicit_pays(1, 1, 3, 4) and not cpu_conv.implicit_pays(1, 2, 3, 4)
        cpu_conv.set_implicit("never")
        assert not cpu_conv.implicit_pays(1, 1, 3, 32)
        with pytest.raises(ValueError, match="implicit mode"):
            cpu_conv.set_implicit("sometimes")
    finally:
        cpu_conv.set_implicit("auto")


@pytest.fixture
def conv_path():
    """Run a test with Conv2D forced onto one path ('blocked' or 'whole'); back to 'auto' after."""
    from minicnn import kernels
    yield kernels.set_conv_path
    kernels.set_conv_path("auto")


@pytest.mark.parametrize("k,s,padding,hw", GRID[::2])
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", None])
def test_gradcheck_through_the_blocked_path(f64, conv_path, k, s, padding, hw, activation, rng):
    """float64 finite differences through the row-block kernels (activations fused or on top)."""
    conv_path("blocked")
    from minicnn.kernels import cpu_conv
    cpu_conv.set_tile_bytes(4096)                     # several tiles per image
    try:
        layer = Conv2D(3, k, strides=s, padding=padding, activation=activation)
        x = rng.standard_normal((3,) + hw + (2,))
        if activation == "relu":
            x += np.sign(x) * 0.05                     # away from the kink
        errors = gradcheck.check_layer(layer, x, training=True, seed=k * 10 + s)
        assert layer.cache["cols"] is None              # the blocked path ran (no cols matrix)
        assert max(errors.values()) < 1e-6, errors
    finally:
        cpu_conv.set_tile_bytes(None)


@pytest.mark.parametrize("k,padding,hw", [(3, "same", (6, 7)), (5, "valid", (8, 9)), (2, "same", (5, 6))])
@pytest.mark.parametrize("activation", ["relu", None])
def test_gradcheck_through_the_implicit_paths(f64, conv_path, k, padding, hw, activation, rng):
    """float64 finite differences through a layer whose forward and backward run without a column
    matrix."""
    conv_path("blocked")
    from minicnn.kernels import cpu_conv
    cpu_conv.set_implicit("always")
    try:
        layer = Conv2D(3, k, padding=padding, activation=activation)
        x = rng.standard_normal((2,) + hw + (2,))
        if activation == "relu":
            x += np.sign(x) * 0.05
        errors = gradcheck.check_layer(layer, x, training=True, seed=k)
        assert layer.cache["cols"] is None
        assert max(errors.values()) < 1e-6, errors
    finally:
        cpu_conv.set_implicit("auto")


@pytest.mark.parametrize("use_bias", [True, False])
def test_layer_paths_agree(conv_path, use_bias, rng):
    """One Conv2D run whole-batch and blocked: same output, dx, dW and db to float32 rounding."""
    x = rng.standard_normal((5, 17, 19, 6)).astype(np.float32)
    dy = None
    results = {}
    for path in ("whole", "blocked"):
        conv_path(path)
        layer = Conv2D(8, 3, padding="same", activation="relu", use_bias=use_bias, name=f"c_{path}")
        layer.build(x.shape[1:], rng=np.random.default_rng(0))
        y = layer.forward(x, training=True)
        dy = rng.standard_normal(y.shape).astype(np.float32) if dy is None else dy
        dx = layer.backward(dy)
        results[path] = [y, dx] + [layer.grads[k] for k in sorted(layer.grads)]
        assert (layer.cache["cols"] is None) == (path == "blocked")
    for a, b in zip(results["whole"], results["blocked"]):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def test_blocked_backward_is_deterministic_and_thread_count_only_rounds(rng):
    """Same thread count: the same bits. One thread against all: equal to float32 rounding (the
    threads' weight-gradient sums are added in a fixed order)."""
    import numba
    from minicnn.kernels import cpu_conv
    x = rng.standard_normal((7, 20, 20, 16)).astype(np.float32)
    Wt = rng.standard_normal((3, 3, 16, 24)).astype(np.float32)
    g = (3, 3, 1, 1, 1, 1, 20, 20)
    y = cpu_conv.conv2d_forward(x, Wt, None, "relu", *g)
    dy = rng.standard_normal(y.shape).astype(np.float32)

    def grads():
        dW, db = np.empty_like(Wt), np.empty(24, np.float32)
        dx = cpu_conv.conv2d_backward(dy, x, y, Wt, "relu", *g, dW, db, True)
        return dx, dW, db
    first, again = grads(), grads()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        single = grads()
    finally:
        numba.set_num_threads(threads)
    for a, b in zip(first, single):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_tile_bytes_setting(rng):
    from minicnn.kernels import cpu_conv
    with pytest.raises(ValueError, match="tile bytes"):
        cpu_conv.set_tile_bytes(100)
    cpu_conv.set_tile_bytes(8192)
    assert cpu_conv.TILE_BYTES == 8192
    cpu_conv.set_tile_bytes(None)
    assert cpu_conv.TILE_BYTES == cpu_conv._l2_bytes() // 2
