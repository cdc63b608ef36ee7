"""What only the GPU has: the fused loss kernel's device-resident statistics, the device batch
cursor, minicnn's cuBLAS wrapper (accumulation, precision modes, stream capture), CUDA-graph training
against eager steps, the side stream for weight gradients, device-resident data.

Every check the GPU shares with the other backends runs from the `backend` fixture (tests/conftest.py)
in the test file of its family: kernels against the naive loops (test_kernels.py), float64 gradient
checks (test_conv, test_pooling, test_core_layers, test_batchnorm, test_losses), optimizer updates
(test_optimizers), training against the fast CPU (test_backend_training), saving (test_saving), the
zoo (test_zoo).

Every test here needs CuPy and a CUDA device; without them the whole module is skipped, and
pytest prints the reason ("SKIPPED ... CuPy or a CUDA device is not available").
"""
import numpy as np
import pytest

from conftest import GPU_MISSING
from minicnn import backend as B
from minicnn import kernels
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from minicnn.model import Sequential
from test_backend_training import small_model, toy_data

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not B._gpu_available(), reason=GPU_MISSING)]


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


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("Bn", [37, 1024, 1500])
def test_softmax_cross_entropy(sparse, smoothing, Bn, rng):
    """The fused loss kernel writes the loss's gradient (the NumPy loss's) and adds the batch's loss
    sum, correct count and last loss into running statistics that stay on the device; also at the
    fast recipe's batch of 1024 and past it (a 1024-thread block once failed to launch there)."""
    import cupy
    from minicnn import losses
    from minicnn.kernels import gpu
    K = 10
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


def test_gather_rows(rng):
    """A batch gathered (and scaled) from the rows a device cursor points at; the cursor advances on
    the device."""
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
    """minicnn's cuBLAS wrapper: transposed views, a NaN-filled output fully written, accumulation."""
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
    """Mismatched shapes and mixed dtypes are refused with messages that say what is needed."""
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


# ---- training: eager vs CUDA graph vs CPU ------------------------------------------------------
def test_eager_and_graph_steps_give_the_same_parameters():
    """20 steps replayed from a captured CUDA graph land where 20 eager steps do."""
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


def test_graph_training_with_lookahead_state_matches_the_cpu():
    """lookahead_state=True on the GPU: the trainer's one-launch sync covers BatchNormalization's
    moving statistics too (they end on their slow copies, as on the CPU), with graphed steps.
    (Not in the shared harness: on this fast-diverging configuration the readable twins, whose float32
    sums run in another order, drift from the fast CPU's parameters beyond this tolerance.)"""
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


def test_graphed_run_reaches_the_eager_accuracy():
    """4 epochs with Dropout and validation: the graphed run learns, to the eager run's accuracy."""
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


def test_nan_in_device_data_is_a_clear_error():
    """Training data already on the device is checked there: a NaN is named with its sample."""
    x, y, _ = toy_data(64)
    x[5, 1, 2, 0] = np.nan
    model = small_model()
    with pytest.raises(ValueError, match="NaN or infinite values \\(first at sample 5\\)"):
        model.fit(B.to_device(x), y, epochs=1, verbose=0)
