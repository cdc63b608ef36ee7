"""The augmentation layers (RandomFlip, RandomTranslation, RandomRotation, RandomZoom, RandomCrop):
what they do to known images, float64 gradient checks of the transform a seed fixes (on every
backend), keyed randomness, the ranges of their parameters, config and saving, and a model that
trains with them. Parity with Keras: tests/test_keras_parity.py."""
import numpy as np
import pytest

import reference as ref

import minicnn
from minicnn import backend as B
from minicnn import gradcheck, kernels
from minicnn.layers import (Conv2D, Dense, Flatten, Input, RandomCrop, RandomFlip, RandomRotation,
                            RandomTranslation, RandomZoom)

FILL_MODES = ["reflect", "wrap", "nearest", "constant"]


def _built(layer, shape=(6, 7, 2)):
    layer.build(shape)
    return layer


def _images(rng, n=3, shape=(6, 7, 2)):
    return rng.standard_normal((n,) + shape).astype(np.float32)


def _every_layer():
    return [RandomFlip(seed=1), RandomTranslation(0.3, 0.2, seed=2), RandomRotation(0.2, seed=3),
            RandomZoom(0.3, seed=4), RandomCrop(4, 5, seed=5)]


# ---- what they do ----------------------------------------------------------------------------------
def _resized(a, h, w):
    """TensorFlow's bilinear resize (half-pixel centres, edges clamped), one axis after the other."""
    for axis, size in ((1, h), (2, w)):
        n = a.shape[axis]
        pos = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
        lo = np.floor(pos).astype(int)
        hi, f = np.minimum(lo + 1, n - 1), pos - lo
        shape = [1] * a.ndim
        shape[axis] = size
        a = np.take(a, lo, axis) * (1 - f).reshape(shape) + np.take(a, hi, axis) * f.reshape(shape)
    return a


def test_inference_is_the_identity_and_random_crop_keeps_the_centre(rng):
    x = _images(rng, shape=(10, 8, 2))
    for layer in _every_layer()[:4]:
        assert _built(layer, x.shape[1:])(x, training=False) is x
        np.testing.assert_array_equal(layer.backward(x[::-1]), x[::-1])
        assert layer.draws == 0
    crop = _built(RandomCrop(5, 4), x.shape[1:])     # the box is the whole image, halved: 2 x 2 averages
    halves = (x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]) / 4
    np.testing.assert_allclose(crop(x), halves, rtol=1e-6, atol=1e-6)
    assert crop.compute_output_shape((10, 8, 2)) == (5, 4, 2) and crop.draws == 0
    tall = _images(rng, shape=(9, 4, 2))
    np.testing.assert_array_equal(_built(RandomCrop(5, 4), (9, 4, 2))(tall), tall[:, 2:7])   # rows 2..6


@pytest.mark.parametrize("mode,expected", [("horizontal", lambda x: x[:, ::-1]), ("vertical", lambda x: x[::-1]),
                                           ("horizontal_and_vertical", lambda x: x[::-1, ::-1])])
def test_random_flip_mirrors_about_half_the_images(mode, expected, rng):
    x = _images(rng, n=400)
    layer = _built(RandomFlip(mode, seed=7))
    y = layer(x, training=True)
    flipped = np.array([np.array_equal(y[n], expected(x[n])) for n in range(len(x))])
    kept = np.array([np.array_equal(y[n], x[n]) for n in range(len(x))])
    assert (flipped | kept).all() and 0.4 < flipped.mean() < 0.6
    dout = _images(rng, n=400)
    dx = layer.backward(dout)
    for n in range(len(x)):                                  # a flip is its own transpose
        np.testing.assert_array_equal(dx[n], expected(dout[n]) if flipped[n] else dout[n])


def test_whole_pixel_translation_moves_pixels_exactly(rng):
    x = _images(rng, n=2)
    layer = _built(RandomTranslation(0.5, 0.5, fill_mode="constant", fill_value=-1.0))
    y = layer.transform(x, {"height_translate": np.array([2.0, -1.0]), "width_translate": np.array([-3.0, 1.0])})
    np.testing.assert_array_equal(y[0, 2:, :4], x[0, :4, 3:])            # down 2, left 3
    np.testing.assert_array_equal(y[1, :5, 1:], x[1, 1:, :6])            # up 1, right 1
    assert (y[0, :2] == -1).all() and (y[0, :, 4:] == -1).all() and (y[1, 5] == -1).all()


def test_quarter_turns_and_unit_zooms(rng):
    x = _images(rng, shape=(5, 5, 2))
    rot = _built(RandomRotation(0.5), (5, 5, 2))
    # +90 degrees turns the image counter-clockwise (Keras's sign), as np.rot90 does
    np.testing.assert_allclose(rot.transform(x, {"angle": np.full(3, 90.0)}), np.rot90(x, 1, axes=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(rot.transform(x, {"angle": np.full(3, 180.0)}), x[:, ::-1, ::-1], atol=1e-6)
    zoom = _built(RandomZoom(0.5), (5, 5, 2))
    np.testing.assert_array_equal(zoom.transform(x, {"height_zoom": np.ones(3), "width_zoom": np.ones(3)}), x)
    # zoom 2 about the centre (2, 2) reads rows 2 + 2 (i - 2): -2 0 2 4 6, mirrored at the edges
    y = _built(RandomZoom(0.5, fill_mode="reflect"), (5, 5, 2)).transform(
        x, {"height_zoom": np.full(3, 2.0), "width_zoom": np.ones(3)})
    np.testing.assert_array_equal(y, x[:, [1, 0, 2, 4, 3]])


def test_random_crop_draws_one_window_per_batch_and_resizes_small_inputs(rng):
    x = _images(rng, n=4, shape=(9, 8, 2))
    layer = _built(RandomCrop(5, 4, seed=3), x.shape[1:])
    tops = set()
    for _ in range(40):
        y = layer(x, training=True)
        top, left = layer.cache[1:3]
        np.testing.assert_array_equal(y, x[:, top:top + 5, left:left + 4])       # the same window for each image
        tops.add(top)
        assert 0 <= top <= 4 and 0 <= left <= 4
    assert tops == {0, 1, 2, 3, 4}
    small = _images(rng, n=2, shape=(3, 8, 1))       # 3 rows < 5: the centre box, 3 x 2, resized
    crop = _built(RandomCrop(5, 4), (3, 8, 1))
    y = crop(small, training=True)
    assert y.shape == (2, 5, 4, 1) and crop.draws == 0
    np.testing.assert_allclose(y, _resized(small[:, :, 3:5], 5, 4), rtol=1e-6, atol=1e-7)


# ---- gradients: the transform a seed fixes, in float64 ---------------------------------------------
@pytest.mark.parametrize("index", range(5))
def test_gradcheck_every_layer(backend, f64, index, rng):
    layer = _every_layer()[index]
    errors = gradcheck.check_layer(layer, rng.standard_normal((3, 6, 7, 2)), seed=2)
    assert errors["x"] < 1e-7, (type(layer).__name__, errors)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_gradcheck_fill_modes_and_interpolations(backend, f64, fill_mode, interpolation, rng):
    """The adjoint of the sampling for every fill mode (the translation reaching past the edges)."""
    for layer in (RandomTranslation((0.6, 0.9), (-0.9, -0.6), fill_mode=fill_mode, interpolation=interpolation,
                                    fill_value=0.5, seed=8),
                  RandomRotation(0.5, fill_mode=fill_mode, interpolation=interpolation, seed=9)):
        errors = gradcheck.check_layer(layer, rng.standard_normal((2, 5, 6, 3)), seed=3)
        assert errors["x"] < 1e-7, errors


def test_small_input_crop_gradcheck(f64, rng):
    errors = gradcheck.check_layer(RandomCrop(5, 7, seed=1), rng.standard_normal((2, 3, 9, 2)), seed=4)
    assert errors["x"] < 1e-7, errors


def test_backward_is_the_transpose_of_the_naive_sampling(rng, f64):
    """dx = S^T dy, S the sampling of tests/reference.py's naive loops, at the positions the layer used."""
    x = rng.standard_normal((2, 6, 7, 2))
    layer = _built(RandomRotation(0.4, fill_mode="wrap", seed=2))
    y = layer(x, training=True)
    rows, cols, _ = layer.cache
    np.testing.assert_allclose(y, ref.resample(x, rows, cols, "wrap", 0.0, "bilinear"), atol=1e-12)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(dy), ref.resample_backward(dy, rows, cols, x.shape, "wrap", "bilinear"),
                               atol=1e-12)


# ---- keyed randomness -------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_images_and_fast_equals_reference(rng):
    x = _images(rng, n=5)
    for a, b in zip(_every_layer(), _every_layer()):
        first = [_built(a)(x, training=True) for _ in range(3)]
        kernels.set_kernels("reference")
        try:
            again = [_built(b)(x, training=True) for _ in range(3)]
        finally:
            kernels.set_kernels("fast")
        for f, g in zip(first, again):
            np.testing.assert_array_equal(f, g)
        if not isinstance(a, RandomCrop):
            assert not np.array_equal(first[0], first[1])               # each call draws anew
        assert a.draws == 3


def test_the_global_seed_seeds_the_layers_and_saving_continues_the_stream(tmp_path, rng):
    B.set_seed(11)
    a = _built(RandomRotation(0.2))
    B.set_seed(11)
    b = _built(RandomRotation(0.2))
    assert a.seed == b.seed
    x = _images(rng, n=4)
    model = minicnn.Sequential([Input((6, 7, 2)), RandomZoom(0.2, seed=5), Flatten(), Dense(3)])
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((4, 3), np.float32), batch_size=2, epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    back = minicnn.load_model(tmp_path / "m.npz")
    assert back.layers[0].draws == model.layers[0].draws == 2
    np.testing.assert_array_equal(back.layers[0](x, training=True), model.layers[0](x, training=True))


def test_parameters_cover_keras_ranges():
    n = 20000
    t = RandomTranslation((-0.2, 0.3), 0.1, seed=1).random_parameters(n, 10, 20)
    assert -2 <= t["height_translate"].min() < -1.99 and 2.99 < t["height_translate"].max() < 3
    assert -2 <= t["width_translate"].min() < -1.99 and 1.99 < t["width_translate"].max() < 2
    r = RandomRotation(0.25, seed=2).random_parameters(n, 8, 8)["angle"]
    assert -90 <= r.min() < -89.9 and 89.9 < r.max() < 90
    z = RandomZoom((-0.5, 0.2), seed=3).random_parameters(n, 8, 8)
    assert z["height_zoom"] is z["width_zoom"] and 0.5 <= z["height_zoom"].min() < 0.51
    z = RandomZoom(0.1, (0.2, 0.4), seed=3).random_parameters(n, 8, 8)
    assert 1.2 <= z["width_zoom"].min() and z["width_zoom"].max() < 1.4 and z["height_zoom"].min() < 0.91
    assert abs(RandomFlip(seed=4).random_parameters(n, 8, 8)["flips"].mean() - 0.5) < 0.02


@pytest.mark.parametrize("make,match", [
    (lambda: RandomRotation(1.5), r"RandomRotation factor must be a number or a pair \(lower, upper\), each in "
                                  r"\[-1, 1\] \(fractions\), got 1.5"),
    (lambda: RandomRotation((0.1, 0.2, 0.3)), "got \\(0.1, 0.2, 0.3\\)"),
    (lambda: RandomTranslation(0.1, "0.2"), "width_factor must be"),
    (lambda: RandomZoom(-1.0), r"height_factor must be a number or a pair \(lower, upper\), each in \(-1, 1\]"),
    (lambda: RandomZoom(0.1, (-1, 0)), "width_factor"),
    (lambda: RandomFlip("diagonal"), "RandomFlip mode must be one of"),
    (lambda: RandomTranslation(0.1, 0.1, fill_mode="mirror"), "fill_mode must be one of"),
    (lambda: RandomZoom(0.1, interpolation="bicubic"), "interpolation must be 'bilinear' or 'nearest'"),
    (lambda: RandomCrop(0, 3), "RandomCrop height must be an int >= 1, got 0"),
    (lambda: RandomFlip(seed=1.5), "seed must be an int"),
    (lambda: RandomFlip(data_format="channels_first"), "channels_last"),
])
def test_bad_arguments_say_what_was_expected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_keras_factor_forms():
    assert RandomRotation(-0.2).factor == (-0.2, 0.2) and RandomRotation([0.3, -0.1]).factor == (-0.1, 0.3)
    assert RandomZoom(0.5).width_range is None and RandomZoom((0.1, 1.0)).height_range == (0.1, 1.0)
    with pytest.raises(ValueError, match="expects images"):
        _built(RandomFlip(), (8, 3))


# ---- in a model -----------------------------------------------------------------------------------------
def test_config_round_trip_gives_the_same_layer(rng):
    x = _images(rng)
    for layer in _every_layer():
        _built(layer)
        twin = type(layer).from_config(layer.get_config())
        assert twin.get_config() == layer.get_config()
        np.testing.assert_array_equal(_built(twin)(x, training=True), layer(x, training=True))


def test_a_model_with_augmentation_trains_and_predicts_unaugmented(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.random((48, 12, 12, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 48)]
    head = [Conv2D(4, 3, activation="relu"), Flatten(), Dense(3, activation="softmax")]
    model = minicnn.Sequential([Input((12, 12, 3)), RandomFlip("horizontal"), RandomTranslation(0.1, 0.1),
                                RandomRotation(0.05), RandomZoom(0.1), RandomCrop(10, 10)] + head)
    # only the layers after the first conv compute dL/dx: nothing before it has weights
    assert [layer.input_grad for layer in model.layers] == [False] * 6 + [True, True]
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and len(history.history["val_loss"]) == 2
    plain = minicnn.Sequential([Input((12, 12, 3)), RandomCrop(10, 10)] + [type(h).from_config(h.get_config())
                                                                           for h in head])
    plain.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x), plain.predict(x))          # augmentation is off in predict
    model.summary()
    assert f"{model.layers[1].name} (RandomTranslation)" in capsys.readouterr().out
    model.save(tmp_path / "aug.npz")
    np.testing.assert_array_equal(minicnn.load_model(tmp_path / "aug.npz").predict(x), model.predict(x))


def test_missing_keras_augmentation_layers_name_the_closest():
    with pytest.raises(ImportError, match="RandomContrast; the closest thing minicnn has: the geometric"):
        from minicnn.layers import RandomContrast  # noqa: F401
    with pytest.raises(ImportError, match="shear_range"):
        from minicnn.layers import RandomShear  # noqa: F401


def test_augmentation_in_a_functional_model_as_keras_io_writes_it(tmp_path):
    """keras-io's pattern: a Sequential of augmentation layers called on the Input of a Model."""
    rng = np.random.default_rng(1)
    x = rng.random((32, 12, 12, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
    data_augmentation = minicnn.Sequential([RandomFlip("horizontal"), RandomRotation(0.1), RandomZoom(0.1)])
    inputs = Input((12, 12, 3))
    conv, dense = Conv2D(4, 3, activation="relu"), Dense(3, activation="softmax")
    model = minicnn.Model(inputs, dense(Flatten()(conv(data_augmentation(inputs)))))
    model.compile("adam", "categorical_crossentropy")
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert [layer.draws for layer in data_augmentation.layers] == [8, 8, 8]
    plain = minicnn.Sequential([Input((12, 12, 3)), type(conv).from_config(conv.get_config()), Flatten(),
                                type(dense).from_config(dense.get_config())])
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x), plain.predict(x), rtol=1e-6)
    model.save(tmp_path / "f.npz")
    np.testing.assert_array_equal(minicnn.load_model(tmp_path / "f.npz").predict(x), model.predict(x))
