"""The GPU backend: every CUDA kernel against its NumPy twin, cuBLAS against NumPy, float64
gradient checks on the device, and eager vs CUDA-graph training.

Every test here needs CuPy and a CUDA device; without them the whole module is skipped, and
pytest prints the reason ("SKIPPED ... CuPy or a CUDA device is not available").
"""
import numpy as np
import pytest

from minicnn import backend as B
from minicnn import gradcheck, kernels, zoo
from minicnn.kernels import reference
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from minicnn.model import Sequential

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not B._gpu_available(),
                                 reason="gpu backend: CuPy or a CUDA device is not available on this machine")]


@pytest.fixture(autouse=True)
def gpu():
    B.set_backend("gpu")
    yield
    B.set_backend("cpu")


def host(a):
    return B.to_host(a)


def dev(a):
    return B.to_device(np.ascontiguousarray(a))


def on_numpy(fn, *args):
    """Run a reference twin on NumPy (host copies of the arguments)."""
    B.set_backend("cpu")
    try:
        out = fn(*[host(a) if hasattr(a, "get") else a for a in args])
    finally:
        B.set_backend("gpu")
    return out


def poisoned(shape, dtype=np.float32):
    """A device buffer full of NaN: a kernel that misses an element leaves a NaN behind."""
    import cupy
    return cupy.full(shape, np.nan, dtype=dtype)


GEOMETRIES = [  # (N, H, W, C, KH, KW, sh, sw, padding)
    (2, 9, 7, 3, 3, 3, 1, 1, "same"), (2, 9, 7, 3, 3, 3, 2, 2, "same"), (3, 8, 8, 4, 2, 2, 2, 2, "valid"),
    (1, 7, 9, 2, 5, 5, 2, 1, "same"), (2, 6, 5, 3, 3, 2, 1, 2, "valid"), (2, 32, 32, 3, 3, 3, 1, 1, "same"),
]


def geometry(N, H, W, C, KH, KW, sh, sw, padding):
    from minicnn.layers.base import window_geometry
    OH, pt = window_geometry(H, KH, sh, padding)
    OW, pl = window_geometry(W, KW, sw, padding)
    return (KH, KW, sh, sw, pt, pl, OH, OW)


# ---- kernels against their NumPy twins ----------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", GEOMETRIES)
def test_im2col_col2im(shape, dtype, rng):
    from minicnn.kernels import gpu
    N, H, W, C = shape[:4]
    g = geometry(*shape)
    KH, KW, sh, sw, pt, pl, OH, OW = g
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    cols = gpu.im2col(dev(x), *g, out=poisoned((N * OH * OW, KH * KW * C), dtype))
    np.testing.assert_array_equal(host(cols), on_numpy(reference.im2col, x, *g))
    dcols = rng.standard_normal((N * OH * OW, KH * KW * C)).astype(dtype)
    dx = gpu.col2im(dev(dcols), x.shape, *g, out=poisoned(x.shape, dtype))
    np.testing.assert_allclose(host(dx), on_numpy(reference.col2im, dcols, x.shape, *g), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", GEOMETRIES)
def test_pooling(shape, rng):
    from minicnn.kernels import gpu
    N, H, W, C = shape[:4]
    g = geometry(*shape)
    PH, PW, sh, sw, pt, pl, OH, OW = g
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    x[0, 0, :2, :] = 0.5                                   # ties: the first maximum must win
    y, arg = gpu.maxpool_forward(dev(x), *g, out=poisoned((N, OH, OW, C)))
    ry, rarg = on_numpy(reference.maxpool_forward, x, *g)
    np.testing.assert_array_equal(host(y), ry)
    np.testing.assert_array_equal(host(arg), rarg)
    dout = rng.standard_normal(ry.shape).astype(np.float32)
    dx = gpu.maxpool_backward(dev(dout), arg, x.shape, PH, PW, sh, sw, pt, pl, out=poisoned(x.shape))
    np.testing.assert_allclose(host(dx), on_numpy(reference.maxpool_backward, dout, rarg, x.shape, PH, PW, sh, sw,
                                                  pt, pl), rtol=1e-6, atol=1e-6)
    ya = gpu.avgpool_forward(dev(x), *g, out=poisoned((N, OH, OW, C)))
    np.testing.assert_allclose(host(ya), on_numpy(reference.avgpool_forward, x, *g), rtol=1e-5, atol=1e-6)
    dxa = gpu.avgpool_backward(dev(dout), x.shape, PH, PW, sh, sw, pt, pl, out=poisoned(x.shape))
    np.testing.assert_allclose(host(dxa), on_numpy(reference.avgpool_backward, dout, x.shape, PH, PW, sh, sw, pt, pl),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "linear", "tanh", "sigmoid", "softmax", "gelu"])
@pytest.mark.parametrize("rows,cols", [(5, 3), (300, 40), (4096, 33)])
def test_bias_activation(activation, rows, cols, rng):
    from minicnn import activations
    act = activations.get(activation)
    z = rng.standard_normal((rows, cols)).astype(np.float32) * 3
    b = rng.standard_normal(cols).astype(np.float32)
    y = kernels.bias_activation(dev(z), dev(b), act)
    expected = on_numpy(reference.bias_activation, z, b, act)
    np.testing.assert_allclose(host(y), expected, rtol=1e-5, atol=1e-6)
    if activation == "softmax":
        return
    dout = rng.standard_normal((rows, cols)).astype(np.float32)
    dz = poisoned((rows, cols))
    db = kernels.bias_activation_backward(dev(dout), dev(expected), act, dz, db_out=poisoned(cols))
    rdz = np.empty_like(dout)
    rdb = on_numpy(reference.bias_activation_backward, dout, expected, act, rdz)
    np.testing.assert_allclose(host(dz), rdz, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(db), rdb, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(host(kernels.column_sum(dev(dout))), dout.sum(axis=0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,rate", [((7, 13), 0.3), ((64, 8, 8, 16), 0.5), ((1, 1), 0.9)])
def test_dropout_mask_matches_cpu_numbers(shape, rate):
    """The device stream gives the reference's exact masks (same seed, same counter)."""
    from minicnn.kernels import gpu
    for counter in (0, 1, 12345):
        mask = gpu.dropout_mask(shape, 77, counter, rate, np.float32)
        np.testing.assert_array_equal(host(mask), on_numpy(reference.dropout_mask, shape, 77, counter, rate,
                                                           np.float32))


def test_dropout_layer_masks_advance_and_repeat(rng):
    x = dev(rng.standard_normal((16, 50)).astype(np.float32) + 3)
    a, b = Dropout(0.5, seed=5), Dropout(0.5, seed=5)
    a.build((50,)), b.build((50,))
    masks_a = [host(a.forward(x, training=True)) != 0 for _ in range(3)]
    masks_b = [host(b.forward(x, training=True)) != 0 for _ in range(3)]
    assert not np.array_equal(masks_a[0], masks_a[1]) and not np.array_equal(masks_a[1], masks_a[2])
    for ma, mb in zip(masks_a, masks_b):
        np.testing.assert_array_equal(ma, mb)
    assert a.draws == 3
    B.set_backend("cpu")
    c = Dropout(0.5, seed=5)
    c.build((50,))
    for ma in masks_a:
        np.testing.assert_array_equal(c.forward(host(x), training=True) != 0, ma)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy(sparse, smoothing, rng):
    import cupy
    from minicnn import losses
    from minicnn.kernels import gpu
    Bn, K = 37, 10
    z = (rng.standard_normal((Bn, K)) * 4).astype(np.float32)
    ids = rng.integers(0, K, Bn)
    y = ids.astype(np.int32) if sparse else np.eye(K, dtype=np.float32)[ids]
    loss = (losses.SparseCategoricalCrossentropy if sparse else losses.CategoricalCrossentropy)(
        label_smoothing=smoothing)
    rl, rdz = on_numpy(loss.from_logits_of_softmax, y, z)
    stats = cupy.asarray(np.array([1.0, 2.0, -1.0]))
    dz = poisoned((Bn, K))
    gpu.softmax_cross_entropy(dev(z), dev(y), smoothing, dz, stats)
    np.testing.assert_allclose(host(dz), rdz, rtol=1e-5, atol=1e-7)
    s = host(stats)
    np.testing.assert_allclose(s[0] - 1.0, float(rl) * Bn, rtol=1e-5)
    assert s[1] - 2.0 == (z.argmax(1) == ids).sum()
    np.testing.assert_allclose(s[2], float(rl), rtol=1e-5)


def test_lookahead_kernel_matches_the_host_formula(rng):
    """Lookahead's one-launch sync equals the host loop (CPU backend) on several arrays."""
    from minicnn import optimizers
    shapes = [(5, 7), (300,), (3, 3, 2, 4)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    results = {}
    for which in ("cpu", "gpu"):
        B.set_backend(which)
        opt = optimizers.SGD(0.1, momentum=0.9, lookahead_steps=2, lookahead_rate=0.3)
        ws, gs = [B.to_device(w.copy()) for w in w0], [B.to_device(g) for g in grads]
        for _ in range(5):                                   # syncs after updates 2 and 4
            opt.apply([(f"w{i}", w, g, None) for i, (w, g) in enumerate(zip(ws, gs))])
        results[which] = [host(w) for w in ws] + [host(opt.slots[f"w{i}"]["slow"]) for i in range(3)]
    for a, b in zip(results["cpu"], results["gpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _excluding(opt, names):
    opt.exclude_from_weight_decay(var_names=names)
    return opt


@pytest.mark.parametrize("name", ["adam", "rmsprop", "sgd", "sgd_nesterov", "sgd_plain", "adam_wd", "sgd_wd",
                                  "sgd_mult", "adam_mult", "rmsprop_mult", "sgd_no_decay"])
def test_optimizer_kernels_match_host_formulas(name, rng):
    """The device update (step count and learning rate read on the device) equals the CPU one."""
    from minicnn import optimizers
    make = {"adam": lambda: optimizers.Adam(1e-2), "rmsprop": lambda: optimizers.RMSprop(1e-2, decay=0.1),
            "sgd": lambda: optimizers.SGD(0.1, momentum=0.9),
            "sgd_nesterov": lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
            "sgd_plain": lambda: optimizers.SGD(optimizers.ExponentialDecay(0.1, 2, 0.5)),
            "adam_wd": lambda: optimizers.Adam(1e-2, weight_decay=0.1),
            "sgd_wd": lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
            "sgd_mult": lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.05,
                                               lr_multipliers={"w1": 64.0, "w2": 0.0}),
            "adam_mult": lambda: optimizers.Adam(1e-2, lr_multipliers={"w0": 3.0}),
            "rmsprop_mult": lambda: optimizers.RMSprop(1e-2, lr_multipliers={"w2": 0.5}),
            "sgd_no_decay": lambda: _excluding(optimizers.SGD(0.1, momentum=0.9, weight_decay=0.1,
                                                              lr_multipliers={"w0": 4.0}), ["w0", "w2"])}[name]
    shapes = [(5, 7), (300,), (3, 3, 2, 4)]                 # one launch updates all three
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    results = {}
    for which in ("cpu", "gpu"):
        B.set_backend(which)
        opt, ws = make(), [B.to_device(w.copy()) for w in w0]
        gs = [B.to_device(np.zeros(s, np.float32)) for s in shapes]
        for step in grads:
            for g, value in zip(gs, step):
                g[...] = B.to_device(value)                   # in place, as layers fill their grads
            opt.apply([(f"w{i}", w, g, None) for i, (w, g) in enumerate(zip(ws, gs))])
        results[which] = ([host(w) for w in ws], opt.iterations)
        if which == "gpu":
            assert opt._on_device()                          # the one-launch kernel ran, not the twins
    for a, b in zip(results["gpu"][0], results["cpu"][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert results["gpu"][1] == results["cpu"][1] == 4


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("flips", [False, True])
def test_flip_crop(dtype, flips, rng):
    """The one-launch augmentation kernel equals the plain twin on the CPU."""
    from minicnn.kernels import gpu
    x = (rng.random((37, 9, 7, 3)) * 255).astype(dtype)
    which = rng.random(37) < 0.5 if flips else None
    dy, dx = rng.integers(0, 5, 37), rng.integers(0, 5, 37)
    expected = reference.flip_crop(x, which, dy, dx, 2)
    import cupy
    out = gpu.flip_crop(cupy.asarray(x), None if which is None else cupy.asarray(which), cupy.asarray(dy),
                        cupy.asarray(dx), 2)
    assert out.dtype == dtype
    np.testing.assert_array_equal(host(out), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_kernels(dtype, rng):
    from minicnn.kernels import gpu
    import cupy
    z = (rng.standard_normal((33, 17)) * 3).astype(dtype)
    dy = rng.standard_normal(z.shape).astype(dtype)
    rtol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(host(gpu.gelu(cupy.asarray(z))), on_numpy(reference.gelu, z), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(host(gpu.gelu_backward(cupy.asarray(dy), cupy.asarray(z))),
                               on_numpy(reference.gelu_backward, dy, z), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("M, C", [(1000, 7), (4096, 64)])
def test_batchnorm_kernels(dtype, affine, M, C, rng):
    """Fused batch normalization (partial column sums, then y / dx) equals the plain twins."""
    from minicnn.kernels import gpu
    x = (rng.standard_normal((M, C)) * 3 + 5).astype(dtype)
    dout = rng.standard_normal((M, C)).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype) if affine else None
    beta = rng.standard_normal(C).astype(dtype) if affine else None
    tol = 2e-5 if dtype == np.float32 else 1e-10
    y, mean, var = gpu.batchnorm_forward(dev(x), None if gamma is None else dev(gamma), None if beta is None else dev(beta),
                                         1e-3)
    expected = on_numpy(reference.batchnorm_forward, x, gamma, beta, 1e-3)
    for a, b in zip((y, mean, var), expected):
        np.testing.assert_allclose(host(a), b, rtol=tol, atol=tol)
    grads = gpu.batchnorm_backward(dev(dout), dev(x), mean, var, None if gamma is None else dev(gamma), 1e-3)
    for a, b in zip(grads, on_numpy(reference.batchnorm_backward, dout, x, expected[1], expected[2], gamma, 1e-3)):
        np.testing.assert_allclose(host(a), b, rtol=10 * tol, atol=10 * tol)


def test_gather_rows(rng):
    import cupy
    from minicnn.kernels import gpu
    x = rng.integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    order = rng.permutation(50).astype(np.int32)
    cursor = cupy.asarray(np.array([7], dtype=np.int64))
    out = poisoned((9, 4, 4, 3))
    gpu.gather_rows(dev(x), dev(order), cursor, out, scale=1 / 255)
    np.testing.assert_allclose(host(out), x[order[7:16]].astype(np.float32) / 255, rtol=1e-6)
    gpu.advance_cursor(cursor, 9)
    assert int(host(cursor)[0]) == 16


# ---- cuBLAS ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_cublas_gemm_against_numpy(ta, tb, dtype, rng):
    from minicnn.kernels import cublas
    M, K, N = 37, 19, 23
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    A, Bm = dev(a), dev(b)
    A, Bm = (A.T if ta else A), (Bm.T if tb else Bm)
    ah, bh = (a.T if ta else a), (b.T if tb else b)
    out = cublas.gemm(A, Bm, out=poisoned((M, N), dtype))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(host(out), ah.astype(np.float64) @ bh, rtol=tol, atol=tol)
    cublas.gemm(A, Bm, out=out, accumulate=True)
    np.testing.assert_allclose(host(out), 2 * (ah.astype(np.float64) @ bh), rtol=tol, atol=tol)


@pytest.mark.parametrize("precision, low, high", [("fp32", 0, 1e-5), ("tf32", 1e-5, 3e-3), ("bf16", 1e-5, 2e-2),
                                                  ("fp16", 1e-5, 3e-3)])
def test_cublas_gemm_precisions(precision, low, high, rng):
    """Reduced-precision GEMMs take float32 in and out, and their error is that of a reduced format
    (cuBLAS may pick TF32 for the 16-bit modes: "fast, allows down-converting inputs")."""
    import cupy
    from minicnn.kernels import cublas
    a = rng.standard_normal((256, 512)).astype(np.float32)
    b = rng.standard_normal((512, 128)).astype(np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    try:
        cublas.set_precision(precision)
        out = cublas.gemm(cupy.asarray(a), cupy.asarray(b))
    finally:
        cublas.set_precision("fp32")
    assert out.dtype == cupy.float32
    error = np.abs(host(out) - exact).max() / np.abs(exact).max()
    assert low <= error < high, error


def test_cublas_bad_input_is_a_clear_error():
    from minicnn.kernels import cublas
    import cupy
    with pytest.raises(ValueError, match="gemm needs"):
        cublas.gemm(cupy.ones((3, 4), np.float32), cupy.ones((5, 2), np.float32))
    with pytest.raises(TypeError, match="float32 or two float64"):
        cublas.gemm(cupy.ones((3, 4), np.float32), cupy.ones((4, 2), np.float64))


def test_cublas_gemm_captures_into_a_graph(rng):
    """The wrapper works inside stream capture, and a replay reads new data from the same buffers."""
    import cupy
    from minicnn.kernels import cublas
    a, b = dev(rng.standard_normal((64, 32)).astype(np.float32)), dev(rng.standard_normal((32, 16)).astype(np.float32))
    out = cupy.empty((64, 16), np.float32)
    stream = cupy.cuda.Stream()
    with stream:
        cublas.gemm(a, b, out=out)                            # warm-up outside capture
        stream.begin_capture()
        cublas.gemm(a, b, out=out)
        graph = stream.end_capture()
        a[...] = dev(rng.standard_normal((64, 32)).astype(np.float32))
        graph.launch(stream)
        stream.synchronize()
    np.testing.assert_allclose(host(out), host(a) @ host(b), rtol=1e-5, atol=1e-5)


# ---- gradient checks on the device, float64 --------------------------------------------------------
@pytest.mark.parametrize("make,shape", [
    (lambda: Conv2D(3, 3, strides=2, padding="same", activation="relu"), (2, 7, 6, 2)),
    (lambda: Conv2D(2, (2, 3), padding="valid", activation="tanh"), (2, 5, 6, 3)),
    (lambda: MaxPooling2D(2, padding="same"), (2, 5, 5, 3)),
    (lambda: Dense(4, activation="sigmoid"), (3, 6)),
    (lambda: Dropout(0.4, seed=3), (4, 9)),
])
def test_gradcheck_on_gpu_float64(make, shape, rng):
    with B.float64_mode():
        layer = make()
        x = B.to_device(rng.standard_normal(shape))
        errors = gradcheck.check_layer(layer, x)
    assert max(errors.values()) < 1e-6, errors


def test_gradcheck_model_on_gpu_float64(rng):
    with B.float64_mode():
        model = Sequential([Conv2D(2, 3, padding="same", activation="relu", input_shape=(6, 6, 2)),
                            MaxPooling2D(2), Flatten(), Dense(3, activation="softmax")])
        model.compile("adam", "categorical_crossentropy")
        x = rng.standard_normal((4, 6, 6, 2))
        y = np.eye(3)[rng.integers(0, 3, 4)]
        errors = gradcheck.check_model(model, x, y)
    assert max(errors.values()) < 1e-6, errors


# ---- training: eager vs CUDA graph vs CPU ------------------------------------------------------
def small_model(seed=0, dropout=0.0, optimizer="adam"):
    B.set_seed(seed)
    layers = [Conv2D(8, 3, padding="same", activation="relu", input_shape=(16, 16, 3)), MaxPooling2D(2),
              Conv2D(16, 3, padding="same", activation="relu"), MaxPooling2D(2), Flatten()]
    if dropout:
        layers.append(Dropout(dropout, seed=11))
    layers += [Dense(32, activation="relu"), Dense(10, activation="softmax")]
    model = Sequential(layers)
    model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    model.seed = 3
    return model


def toy_data(n=640, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    x = rng.random((n, 16, 16, 3)).astype(np.float32) * 0.5
    x[..., 0] += labels[:, None, None] / 10                  # learnable: the red channel encodes the class
    return x, np.eye(10, dtype=np.float32)[labels], labels


def test_eager_and_graph_steps_give_the_same_parameters():
    x, y, _ = toy_data(640)
    weights = {}
    for graph in (False, True):
        model = small_model()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False, cuda_graph=graph)   # 20 steps
        weights[graph] = model.get_weights()
        assert model.optimizer.iterations == 20
    for a, b in zip(weights[False], weights[True]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_side_stream_weight_gradients_change_nothing():
    """Overlapping the weight-gradient GEMMs (a second stream) gives the same parameters as not."""
    x, y, _ = toy_data(320)
    weights = {}
    try:
        for enabled in (False, True):
            kernels.set_overlap(enabled)
            for graph in (False, True):
                model = small_model(dropout=0.3)
                model.fit(x, y, batch_size=32, epochs=2, verbose=0, cuda_graph=graph)
                weights[enabled, graph] = model.get_weights()
    finally:
        kernels.set_overlap(True)
    for key in [(True, False), (False, True), (True, True)]:
        for a, b in zip(weights[False, False], weights[key]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_graph_training_matches_the_cpu():
    """Same initial weights, same batches: GPU (graphed) and CPU parameters agree to float32 rounding."""
    x, y, _ = toy_data(320)
    weights = {}
    for which in ("cpu", "gpu"):
        B.set_backend(which)
        model = small_model(optimizer="sgd")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        weights[which] = model.get_weights()
    for a, b in zip(weights["cpu"], weights["gpu"]):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_graph_training_with_lookahead_and_lr_multipliers_matches_the_cpu():
    """Lookahead (synced by the trainer between graph replays) and per-variable learning rates (in
    the one-launch kernel) give the CPU's parameters; the graph is used (the optimizer runs on the device)."""
    from minicnn import optimizers
    x, y, _ = toy_data(320)
    weights = {}
    for which in ("cpu", "gpu"):
        B.set_backend(which)
        model = small_model(optimizer=optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01,
                                                     lookahead_steps=3, lookahead_rate=0.6,
                                                     lr_multipliers={"*/b": 8.0}))
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)              # 20 updates, 6 syncs
        assert which == "cpu" or model.optimizer._on_device()
        weights[which] = model.get_weights()
    for a, b in zip(weights["cpu"], weights["gpu"]):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_graph_training_with_lookahead_state_matches_the_cpu():
    """lookahead_state=True on the GPU: the trainer's one-launch sync covers BatchNormalization's
    moving statistics too (they end on their slow copies, as on the CPU), with graphed steps."""
    from minicnn import optimizers
    from minicnn.layers import BatchNormalization
    x, y, _ = toy_data(320)
    weights = {}
    for which in ("cpu", "gpu"):
        B.set_backend(which)
        B.set_seed(0)
        model = Sequential([Conv2D(8, 3, padding="same", use_bias=False, input_shape=(16, 16, 3)),
                            BatchNormalization(momentum=0.4, scale=False), MaxPooling2D(2), Flatten(),
                            Dense(10, activation="softmax")])
        model.compile(optimizers.SGD(0.05, momentum=0.9, nesterov=True, lookahead_steps=3, lookahead_rate=0.6,
                                     lookahead_state=True), "categorical_crossentropy")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)              # 20 updates, 6 syncs
        assert which == "cpu" or model.optimizer._on_device()
        for path, value in model.state.items():
            np.testing.assert_array_equal(host(value), host(model.optimizer.slots[path]["slow"]))
        weights[which] = model.get_weights()
    for a, b in zip(weights["cpu"], weights["gpu"]):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_freezing_a_variable_mid_training_reaches_the_graph():
    """Optimizer.freeze rewrites the device factor table in place: the captured step stops
    updating the variable (GPU parameters equal the CPU's, the frozen bias unchanged after)."""
    from minicnn.callbacks import FreezeAfter, LambdaCallback
    x, y, _ = toy_data(320)
    weights, snapshots = {}, {}
    for which in ("cpu", "gpu"):
        B.set_backend(which)
        model = small_model(optimizer="sgd")
        keep = LambdaCallback(on_epoch_end=lambda epoch, logs, m=model, w=which:
                              snapshots.__setitem__((w, epoch), host(m.layers[0].params["b"]).copy()))
        model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[FreezeAfter("conv2d/b", 1), keep])
        assert which == "cpu" or model.optimizer._on_device()
        weights[which] = model.get_weights()
    np.testing.assert_array_equal(snapshots["gpu", 0], snapshots["gpu", 2])
    for a, b in zip(weights["cpu"], weights["gpu"]):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_epoch_augmentation_on_the_device_matches_the_cpu():
    """fit(augment=FlipTranslate) on the GPU (augmented on the device, graphed steps) lands on the
    CPU's parameters: the same flips and crops, keyed by the epoch."""
    from minicnn import augment
    x, y, _ = toy_data(320)
    weights = {}
    for which in ("cpu", "gpu"):
        B.set_backend(which)
        model = small_model(optimizer="sgd")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, augment=augment.FlipTranslate(2, "alternating"))
        weights[which] = model.get_weights()
    for a, b in zip(weights["cpu"], weights["gpu"]):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)
    xu = (x * 255).astype(np.uint8)
    aug = augment.FlipTranslate(2, "random", seed=4, chunk=100)
    on_gpu = host(aug(B.to_device(xu), 1))                       # backend is still "gpu" here
    B.set_backend("cpu")
    np.testing.assert_array_equal(on_gpu, aug(xu, 1))


def test_graph_dropout_draws_new_masks_every_step_and_repeats_with_the_seed():
    x, y, _ = toy_data(320)
    runs = []
    for _ in range(2):
        model = small_model(dropout=0.5, optimizer="sgd")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)                  # 20 steps, 18 of them replays
        dropout = [layer for layer in model.layers if isinstance(layer, Dropout)][0]
        assert dropout.draws == 20                                           # the graph advanced the counter
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    # and the masks were the CPU's: the CPU run from the same weights lands on the same parameters
    B.set_backend("cpu")
    model = small_model(dropout=0.5, optimizer="sgd")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    for a, b in zip(runs[0], model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_graphed_run_reaches_the_eager_accuracy():
    x, y, labels = toy_data(1000, seed=1)
    xt, yt, _ = toy_data(300, seed=2)
    acc = {}
    for graph in (False, True):
        model = small_model(dropout=0.25)
        history = model.fit(x, y, batch_size=32, epochs=4, verbose=0, validation_data=(xt, yt), cuda_graph=graph)
        acc[graph] = model.evaluate(xt, yt, verbose=0)[1]
        assert history.history["val_accuracy"][-1] == pytest.approx(acc[graph])
    assert acc[True] > 0.5
    assert acc[True] == pytest.approx(acc[False], abs=0.02)


def test_uint8_data_and_sparse_labels_on_the_device():
    x, _, labels = toy_data(200)
    xu = (x * 255).astype(np.uint8)
    model = small_model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    with pytest.warns(UserWarning, match="unscaled"):
        history = model.fit(xu, labels, batch_size=50, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    out = model.predict(xu[:7].astype(np.float32), batch_size=3)
    assert out.shape == (7, 10) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_zoo_model_000_steps_on_gpu():
    model = zoo.get("tutorial000").build()
    x, _, labels = toy_data(96)
    x32 = np.zeros((96, 32, 32, 3), np.float32)
    x32[:, :16, :16] = x
    history = model.fit(x32, np.eye(10, dtype=np.float32)[labels], batch_size=32, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_save_and_resume_on_gpu(tmp_path):
    x, y, _ = toy_data(128)
    model = small_model(dropout=0.3)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    model.save(tmp_path / "m.minicnn")
    from minicnn.saving import load_model
    again = load_model(tmp_path / "m.minicnn")
    assert again.optimizer.iterations == 4
    assert [l for l in again.layers if isinstance(l, Dropout)][0].draws == 4
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_nan_in_device_data_is_a_clear_error():
    x, y, _ = toy_data(64)
    x[5, 1, 2, 0] = np.nan
    model = small_model()
    with pytest.raises(ValueError, match="NaN or infinite values \\(first at sample 5\\)"):
        model.fit(B.to_device(x), y, epochs=1, verbose=0)


@pytest.mark.parametrize("shape,axis", [((300, 40), 0), ((3, 3, 8, 16), [0, 1, 2])])
def test_max_norm_kernel_matches_the_formula(shape, axis, rng):
    from minicnn.constraints import MaxNorm
    w = (rng.standard_normal(shape) * 0.5).astype(np.float32)
    wd = dev(w)
    MaxNorm(1.5, axis=axis)(wd)                               # the fused kernels on the device
    B.set_backend("cpu")
    expected = w.copy()
    MaxNorm(1.5, axis=axis)(expected)
    np.testing.assert_allclose(host(wd), expected, rtol=1e-5, atol=1e-6)
