"""Generators and Sequences in fit/evaluate/predict, and Keras's ImageDataGenerator."""
import numpy as np
import pytest

import minicnn
from minicnn.layers import Conv2D, Dense, Flatten
from minicnn.preprocessing.image import ImageDataGenerator

RNG = np.random.default_rng(0)
X = RNG.random((48, 8, 8, 3)).astype(np.float32)
Y = np.eye(3, dtype=np.float32)[RNG.integers(0, 3, 48)]


def model():
    minicnn.backend.set_seed(0)
    m = minicnn.Sequential([Conv2D(4, 3, activation="relu", input_shape=(8, 8, 3)), Flatten(),
                            Dense(3, activation="softmax")])
    m.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    return m


class Batches:
    """A Keras-style Sequence over (X, Y), counting its epochs."""
    def __init__(self, n=16):
        self.n, self.epochs = n, 0

    def __len__(self):
        return len(X) // self.n

    def __getitem__(self, i):
        return X[i * self.n:(i + 1) * self.n], Y[i * self.n:(i + 1) * self.n]

    def on_epoch_end(self):
        self.epochs += 1


def endless(n=16):
    while True:
        for i in range(len(X) // n):
            yield X[i * n:(i + 1) * n], Y[i * n:(i + 1) * n]


# ---- generators and Sequences -----------------------------------------------------------------------
def test_a_sequence_trains_exactly_like_the_same_arrays_unshuffled():
    """fit(Sequence) runs its batches in order, one step each: the same weights as fit(arrays,
    shuffle=False) with the same batch size; on_epoch_end is heard every epoch."""
    seq, a, b = Batches(), model(), model()
    h = a.fit(seq, epochs=2, verbose=0)
    b.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    assert seq.epochs == 2 and list(h.history) == ["accuracy", "loss"]


def test_a_generator_with_steps_and_validation_and_the_keras2_aliases():
    m = model()
    h = m.fit(endless(), steps_per_epoch=3, epochs=2, validation_data=endless(), validation_steps=3, verbose=0)
    assert list(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert m.evaluate(endless(), steps=3, verbose=0) == pytest.approx(m.evaluate(X, Y, verbose=0), rel=1e-5)
    np.testing.assert_allclose(m.predict((x for x, _ in endless()), steps=2), m.predict(X[:32]), rtol=1e-6)
    h = m.fit_generator(endless(), steps_per_epoch=2, epochs=1, verbose=0, workers=4)
    assert len(h.epoch) == 1
    assert np.isfinite(m.evaluate_generator(endless(), steps=1)[0]) and m.predict_generator(endless(), 1).shape == (16, 3)


def test_generator_errors_are_clear():
    m = model()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        m.fit(endless(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="y must be None"):
        m.fit(Batches(), Y, verbose=0)
    with pytest.raises(ValueError, match="validation_steps"):
        m.fit(Batches(), validation_data=endless(), verbose=0)
    with pytest.raises(ValueError, match=r"must be \(x, y\)"):
        m.fit((x for x, _ in endless()), steps_per_epoch=1, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch counts"):
        m.fit(X, Y, steps_per_epoch=2, verbose=0)
    with pytest.raises(TypeError, match="unexpected"):
        m.fit_generator(endless(), steps_per_epoch=1, pickle_safe=True)


def finite(n, size=16):
    """A generator of n batches only."""
    for i in range(n):
        yield X[i * size:(i + 1) * size], Y[i * size:(i + 1) * size]


def test_a_generator_that_runs_dry_stops_training_as_keras_does(tmp_path):
    """Keras: "Your input ran out of data; interrupting training" and training stops. An epoch
    cut short is recorded over the batches it had; an epoch that got none is not recorded (it
    used to be, as loss 0.0 and accuracy 0.0, and ModelCheckpoint saved it as the best)."""
    m = model()
    with pytest.warns(UserWarning, match=r"Your input ran out of data; interrupting training\. Make sure that your "
                                         r"dataset or generator can generate at least `steps_per_epoch \* epochs` "
                                         r"batches\. \(x gave 1 of the 2 batches of epoch 2\)"):
        h = m.fit(finite(3), steps_per_epoch=2, epochs=4, verbose=0, validation_data=(X, Y))
    assert h.epoch == [0, 1] and m.optimizer.iterations == 3 and min(h.history["loss"]) > 0.1
    assert h.history["val_loss"][1] == pytest.approx(m.evaluate(X, Y, verbose=0)[0], rel=1e-5)
    m, path = model(), tmp_path / "best-{epoch}.weights.h5"
    checkpoint = minicnn.callbacks.ModelCheckpoint(str(path), monitor="loss", save_best_only=True,
                                                   save_weights_only=True)
    with pytest.warns(UserWarning, match=r"x gave 0 of the 2 batches of epoch 2, which is not recorded"):
        h = m.fit(finite(2), steps_per_epoch=2, epochs=3, verbose=2, callbacks=[checkpoint])
    assert h.epoch == [0] and list(h.history) == ["accuracy", "loss"] and h.history["loss"][0] > 0.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-1.weights.h5"]


def test_an_empty_or_used_up_generator_is_an_error_before_any_callback():
    """Keras: "the generator must yield at least one batch. Received an empty generator"; fit
    says so before any callback starts (fit used to record {'loss': [0.0]}), evaluate and predict
    too, and they warn when a generator gives fewer batches than `steps`."""
    started = []
    spy = minicnn.callbacks.LambdaCallback(on_train_begin=lambda logs: started.append(1))
    m, used_up = model(), finite(2)
    m.fit(used_up, steps_per_epoch=2, verbose=0)
    empty = r"x gave no batch to {}: the generator or Sequence must yield at least one batch. Received an empty generator"
    for x in (finite(0), used_up):
        with pytest.raises(ValueError, match=empty.format("train on")):
            m.fit(x, steps_per_epoch=2, verbose=0, callbacks=[spy])
    with pytest.raises(ValueError, match=empty.format("evaluate")):
        m.evaluate(used_up, steps=2, verbose=0)
    with pytest.raises(ValueError, match=empty.format("predict")):
        m.predict(used_up, steps=2)
    with pytest.raises(ValueError, match=r"Received an empty Sequence \(len 0\)"):
        m.fit(Batches(n=100), steps_per_epoch=1, verbose=0)
    assert not started
    with pytest.warns(UserWarning, match=r"Your input ran out of data: x gave 1 of the 3 batches asked for \(steps=3\)"):
        assert m.evaluate(finite(1), steps=3, verbose=0) == pytest.approx(m.evaluate(X[:16], Y[:16], verbose=0))
    with pytest.warns(UserWarning, match=r"x gave 2 of the 3 batches"):
        assert m.predict(finite(2), steps=3).shape == (32, 3)


@pytest.mark.parametrize("validation_data,got", [((X,), r"a tuple of 1 item"), (X, r"an array of shape \(48, 8, 8, 3\)"),
                                                 ((X, Y, np.ones(48)), None)])
def test_a_generators_validation_arrays_are_checked_as_with_arrays(validation_data, got):
    """fit(generator, validation_data=...) makes the array path's check: a pair (x_val, y_val) (or
    (x_val, y_val, None)), not a 1-tuple (an IndexError before), not an array (whose x[0], x[1] were
    read as the pair), and no sample weights (ignored silently before)."""
    m = model()
    pattern = (rf"validation_data must be a tuple \(x_val, y_val\), or a generator or Sequence of such batches; "
               rf"got {got}" if got else "has sample weights: minicnn weighs every sample the same")
    with pytest.raises(ValueError, match=pattern):
        m.fit(endless(), steps_per_epoch=1, validation_data=validation_data, verbose=0)
    assert m.optimizer.iterations == 0
    h = m.fit(endless(), steps_per_epoch=1, validation_data=(X, Y, None), verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(m.evaluate(X, Y, verbose=0)[0], rel=1e-5)


# ---- ImageDataGenerator ---------------------------------------------------------------------------
def _params(n, **values):
    base = dict(theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0)
    base.update(values)
    out = {k: np.full(n, float(v)) for k, v in base.items()}
    out["flip_horizontal"], out["flip_vertical"] = np.zeros(n, bool), np.zeros(n, bool)
    return out


def test_whole_pixel_shifts_and_flips_move_pixels_exactly():
    x = RNG.random((2, 6, 7, 1)).astype(np.float32)
    g = ImageDataGenerator(fill_mode="constant", cval=-1.0)
    # Keras's matrix applies tx along the columns and ty along the rows: (i, j) reads (i + ty, j + tx)
    out = g.apply_transform(x, _params(2, tx=2, ty=-1))
    np.testing.assert_array_equal(out[:, 1:, :5], x[:, :5, 2:])
    assert (out[:, 0] == -1).all() and (out[:, :, 5:] == -1).all()
    p = _params(2)
    p["flip_horizontal"][:] = True
    p["flip_vertical"][1] = True
    out = g.apply_transform(x, p)
    np.testing.assert_array_equal(out[0], x[0, :, ::-1])
    np.testing.assert_array_equal(out[1], x[1, ::-1, ::-1])


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "wrap", "constant"])
@pytest.mark.parametrize("values", [dict(theta=17.0, tx=1.3, ty=-2.2, shear=5.0, zx=0.9, zy=1.15),
                                    dict(theta=-90.0), dict(tx=3, ty=-4), dict(zx=1.3, zy=0.7)])
def test_affine_transforms_equal_keras(fill_mode, values):
    """The same parameters give Keras's images (its ImageDataGenerator.apply_transform, scipy)."""
    pytest.importorskip("keras")
    pytest.importorskip("scipy")
    try:
        from keras.src.legacy.preprocessing.image import ImageDataGenerator as KerasGenerator
    except ImportError:
        pytest.skip("this Keras has no legacy ImageDataGenerator")
    x = RNG.random((3, 9, 11, 2)).astype(np.float32)
    mine = ImageDataGenerator(fill_mode=fill_mode, cval=0.5).apply_transform(x, _params(3, **values))
    keras_gen = KerasGenerator(fill_mode=fill_mode, cval=0.5)
    theirs = np.stack([keras_gen.apply_transform(image, dict(values)) for image in x])
    np.testing.assert_allclose(mine, theirs, atol=1e-6)


def test_random_parameters_follow_the_ranges():
    g = ImageDataGenerator(rotation_range=20, width_shift_range=0.25, height_shift_range=3, shear_range=10,
                           zoom_range=0.2, horizontal_flip=True)
    p = g.random_parameters(4000, (8, 12, 3), np.random.default_rng(1))
    assert np.abs(p["theta"]).max() <= 20 and np.abs(p["theta"]).max() > 19
    assert np.abs(p["ty"]).max() <= 0.25 * 12 and np.abs(p["ty"]).max() > 2.9     # a fraction of the width
    assert set(np.unique(p["tx"])) == {-2, -1, 0, 1, 2}                          # int: whole pixels, as Keras
    assert p["zx"].min() >= 0.8 and p["zy"].max() <= 1.2
    assert abs(p["flip_horizontal"].mean() - 0.5) < 0.05 and not p["flip_vertical"].any()


def test_flow_is_a_keyed_sequence_covering_each_image_once_per_epoch():
    g = ImageDataGenerator(width_shift_range=0.2, horizontal_flip=True)
    labels = np.arange(len(X))
    flow = g.flow(X, labels, batch_size=10, seed=3)
    assert len(flow) == 5
    first = [flow[i] for i in range(len(flow))]
    assert sorted(np.concatenate([y for _, y in first])) == list(labels)
    again = g.flow(X, labels, batch_size=10, seed=3)
    np.testing.assert_array_equal(again[2][0], first[2][0])                    # same seed, same images
    flow.on_epoch_end()
    assert not np.array_equal(flow[0][1], first[0][1])                          # a new order next epoch
    xb, yb = next(iter(g.flow(X, labels, batch_size=8, shuffle=False)))
    np.testing.assert_array_equal(yb, labels[:8])


def test_standardize_and_fit_statistics():
    x = RNG.random((20, 4, 4, 3)).astype(np.float32) * 255
    g = ImageDataGenerator(rescale=1 / 255, featurewise_center=True, featurewise_std_normalization=True)
    with pytest.raises(ValueError, match="gen.fit"):
        g.standardize(x.copy())
    g.fit(x)
    np.testing.assert_allclose(g.mean.ravel(), (x / 255).mean(axis=(0, 1, 2)), rtol=1e-5)
    out = g.standardize(x.copy())
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-4)
    s = ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True).standardize(x.copy())
    np.testing.assert_allclose(s.mean(axis=(1, 2, 3)), 0, atol=1e-4)


def test_validation_split_subsets_and_bad_arguments():
    g = ImageDataGenerator(validation_split=0.25)
    labels = np.arange(len(X))
    val = g.flow(X, labels, batch_size=100, shuffle=False, subset="validation")
    train = g.flow(X, labels, batch_size=100, shuffle=False, subset="training")
    assert list(val[0][1]) == list(range(12)) and list(train[0][1]) == list(range(12, 48))
    for kwargs, match in [(dict(zca_whitening=True), "not implemented"), (dict(fill_mode="mirror"), "fill_mode"),
                          (dict(data_format="channels_first"), "channels_last"), (dict(zoom_range=-1), "zoom_range")]:
        with pytest.raises(ValueError, match=match):
            ImageDataGenerator(**kwargs)


# Keras 2's ImageDataGenerator parameters, in its order (keras.src.legacy.preprocessing.image in Keras 3)
KERAS2_PARAMETERS = ["featurewise_center", "samplewise_center", "featurewise_std_normalization",
                     "samplewise_std_normalization", "zca_whitening", "zca_epsilon", "rotation_range",
                     "width_shift_range", "height_shift_range", "brightness_range", "shear_range", "zoom_range",
                     "channel_shift_range", "fill_mode", "cval", "horizontal_flip", "vertical_flip", "rescale",
                     "preprocessing_function", "data_format", "validation_split", "interpolation_order", "dtype"]


def test_every_keras2_argument_is_accepted_in_keras_order():
    import inspect
    assert list(inspect.signature(ImageDataGenerator).parameters) == KERAS2_PARAMETERS
    legacy = pytest.importorskip("keras.src.legacy.preprocessing.image")
    keras_signature = inspect.signature(legacy.ImageDataGenerator).parameters
    assert list(keras_signature) == KERAS2_PARAMETERS
    assert {k: p.default for k, p in inspect.signature(ImageDataGenerator).parameters.items()} == \
        {k: p.default for k, p in keras_signature.items()}


def test_keras_cifar10_cnn_examples_generator_arguments_work():
    # keras-team/keras examples/cifar10_cnn.py: every argument written out, most at their defaults
    datagen = ImageDataGenerator(
        featurewise_center=False, samplewise_center=False, featurewise_std_normalization=False,
        samplewise_std_normalization=False, zca_whitening=False, zca_epsilon=1e-06, rotation_range=0,
        width_shift_range=0.1, height_shift_range=0.1, shear_range=0., zoom_range=0., channel_shift_range=0.,
        fill_mode='nearest', cval=0., horizontal_flip=True, vertical_flip=False, rescale=None,
        preprocessing_function=None, data_format=None, validation_split=0.0)
    datagen.fit(X)
    m = model()
    h = m.fit(datagen.flow(X, Y, batch_size=16), epochs=1, validation_data=(X, Y), verbose=0)
    assert np.isfinite(h.history["loss"]).all()
    assert ImageDataGenerator(zca_epsilon=0.1, brightness_range=None, dtype="float32",
                              interpolation_order=1).flow(X, batch_size=8)[0].shape == (8, 8, 8, 3)


@pytest.mark.parametrize("name, value", [("zca_whitening", True), ("brightness_range", (0.5, 1.5)),
                                         ("channel_shift_range", 20.0), ("interpolation_order", 3),
                                         ("data_format", "channels_first")])
def test_an_unimplemented_argument_set_to_change_the_images_is_an_error_naming_it(name, value):
    with pytest.raises(ValueError, match=name):
        ImageDataGenerator(**{name: value})


def test_a_model_trains_on_flow_as_tutorial_001_does():
    g = ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True)
    m = model()
    h = m.fit(g.flow(X, Y, batch_size=16, seed=1), steps_per_epoch=len(X) // 16, epochs=2,
              validation_data=(X, Y), verbose=0)
    assert len(h.history["val_loss"]) == 2 and np.isfinite(h.history["loss"]).all()
    assert m.predict(ImageDataGenerator().flow(X, batch_size=16, shuffle=False)).shape == (48, 3)
