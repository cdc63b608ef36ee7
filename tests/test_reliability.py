"""Reliability: bad input fails early with a clear message, NaN and Ctrl-C keep the last good
checkpoint, resumed runs equal uninterrupted ones, and the same seed repeats bit for bit."""
import warnings

import numpy as np
import pytest

import minicnn
from minicnn import optimizers
from minicnn.callbacks import Callback, ModelCheckpoint, TerminateOnNaN
from minicnn.layers import (AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input,
                            MaxPooling2D)
from minicnn.utils import to_categorical

from test_model import small_model, toy_data


def dropout_model(seed=0, optimizer="adam"):
    minicnn.utils.set_random_seed(seed)
    model = minicnn.Sequential([Input(shape=(8, 8, 3)), Conv2D(6, 3, padding="same", activation="relu"),
                                MaxPooling2D(2), Dropout(0.3), Flatten(), Dense(16, activation="relu"), Dropout(0.2),
                                Dense(4, activation="softmax")])
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


X, Y, LABELS = toy_data(48)


def _fit(**kw):
    return lambda m: m.fit(**{"x": X, "y": Y, "epochs": 1, "verbose": 0, **kw})


def _sparse(model):
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    return model


def _nan_x():
    x = X.copy()
    x[7, 1, 2, 0] = np.inf
    return x


BAD_INPUT = [  # (case, call on a compiled small model, error type, message pattern)
    ("rank", _fit(x=X[:, :, :, 0]), ValueError, r"expects x of shape \(N, 8, 8, 3\), got \(48, 8, 8\)"),
    ("size", _fit(x=np.zeros((48, 9, 8, 3), np.float32)), ValueError, r"expects x of shape \(N, 8, 8, 3\), got \(48, 9, 8, 3\)"),
    ("channels", _fit(x=X[..., :1]), ValueError, r"got \(48, 8, 8, 1\)"),
    ("predict shape", lambda m: m.predict(X[:, :4]), ValueError, r"expects x of shape \(N, 8, 8, 3\)"),
    ("nan/inf", _fit(x=_nan_x()), ValueError, r"NaN or infinite values \(first at sample 7\)"),
    ("bool images", _fit(x=X > 0.5), TypeError, r"real numbers .* got dtype bool"),
    ("string images", lambda m: m.predict(np.array([["a"]])), TypeError, r"real numbers"),
    ("empty", _fit(x=X[:0], y=Y[:0]), ValueError, r"empty"),
    ("labels out of range", lambda m: _sparse(m).fit(X, LABELS + 1, verbose=0), ValueError,
     r"class ids in \[0, 3\] .* got values in \[1, 4\]"),
    ("one-hot width", _fit(y=to_categorical(LABELS, 5)), ValueError, r"labels of shape \(N, 4\) .* got \(48, 5\)"),
    ("sparse to categorical", _fit(y=LABELS), ValueError, r"integer class labels .*to_categorical"),
    ("label count", _fit(y=Y[:40]), ValueError, r"y has 40 samples but x has 48"),
    ("missing labels", _fit(y=None), ValueError, r"y is None"),
    ("batch_size 0", _fit(batch_size=0), ValueError, r"batch_size must be a positive int, got 0"),
    ("batch_size float", _fit(batch_size=2.5), ValueError, r"batch_size must be a positive int"),
    ("epochs < 0", _fit(epochs=-1), ValueError, r"epochs must be an int >= 0, got -1"),
    ("validation_split 1", _fit(validation_split=1.0), ValueError, r"validation_split must be in \[0, 1\)"),
    ("validation_split < 0", _fit(validation_split=-0.1), ValueError, r"validation_split must be in \[0, 1\)"),
    ("validation_data form", _fit(validation_data=X), ValueError, r"validation_data must be a tuple"),
    ("unknown optimizer", lambda m: m.compile("adamw9", "categorical_crossentropy"), ValueError, r"unknown optimizer 'adamw9'"),
    ("unknown loss", lambda m: m.compile("adam", "hinge9"), ValueError, r"unknown loss 'hinge9'"),
    ("unknown metric", lambda m: m.compile("adam", "categorical_crossentropy", ["f1"]), ValueError, r"unknown metric 'f1'"),
    ("metrics string", lambda m: m.compile("adam", "categorical_crossentropy", metrics="accuracy"), ValueError,
     r"Expected `metrics` argument to be a list, tuple, or dict. Received instead: metrics=accuracy of type "
     r"<class 'str'>"),
    ("metrics dict", lambda m: m.compile("adam", "categorical_crossentropy", metrics={"out": "accuracy"}), ValueError,
     r"a minicnn model has one output: pass a list, e.g. metrics=\['accuracy'\]"),
    ("validation_data 1-tuple", _fit(validation_data=(X,)), ValueError,
     r"validation_data must be a tuple \(x_val, y_val\).*got a tuple of 1 item$"),
    ("validation sample weights", _fit(validation_data=(X, Y, np.ones(48))), ValueError,
     r"validation_data \(x_val, y_val, sample_weight\) has sample weights: minicnn weighs every sample the same"),
    ("validation_batch_size", _fit(validation_split=0.25, validation_batch_size=-1), ValueError,
     r"^validation_batch_size must be a positive int, got -1"),
    ("evaluate verbose", lambda m: m.evaluate(X, Y, verbose=5), ValueError, r"verbose must be 'auto', 0, 1 or 2, got 5"),
    ("predict verbose", lambda m: m.predict(X, verbose="x"), ValueError, r"verbose must be 'auto', 0, 1 or 2, got 'x'"),
]


@pytest.mark.parametrize("case,call,error,pattern", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_fails_before_any_computation(case, call, error, pattern):
    model = small_model()
    before = model.get_weights()
    with pytest.raises(error, match=pattern):
        call(model)
    assert model.optimizer.iterations == 0                 # no step was taken
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make,error,pattern", [
    (lambda: Conv2D(4, 3, activation="swish9"), ValueError, r"unknown activation 'swish9'"),
    (lambda: Dense(4, kernel_initializer="glorot9"), ValueError, r"unknown initializer 'glorot9'"),
    (lambda: Conv2D(4, 3, strides=0), ValueError, r"strides must be >= 1, got \(0, 0\)"),
    (lambda: MaxPooling2D(2, padding="valid").build((1, 5, 3)), ValueError, r"pool \(2, 2\) is larger than its valid-padded input \(1, 5\)"),
    (lambda: Conv2D(4, 5).build((4, 9, 3)), ValueError, r"kernel \(5, 5\) is larger than its valid-padded input \(4, 9\)"),
    (lambda: minicnn.layers.get_class("Conv3D"), ValueError, r"unknown layer class 'Conv3D'"),
    (lambda: minicnn.Sequential([Dense(3)]).add("conv"), TypeError, r"expects a minicnn layer, got str"),
    (lambda: minicnn.Sequential([Dense(10, input_shape=784)]), ValueError,
     r"input_shape must be a tuple of positive ints without the batch axis, got 784 \(for a flat input write \(784,\)\)"),
    (lambda: Conv2D(4, 3, input_shape=(32.0, 32.0, 3.0)), ValueError,
     r"input_shape must be a tuple of positive ints without the batch axis, got \(32.0, 32.0, 3.0\)"),
    (lambda: Conv2D(4, 3, input_shape="32,32,3"), ValueError, r"without the batch axis, got '32,32,3'"),
    (lambda: Conv2D(4, 3, input_shape=(32, -32, 3)), ValueError, r"positive ints .*, got \(32, -32, 3\)"),
    (lambda: minicnn.Sequential([Conv2D(4, 3, input_shape=(None, None, 3))]), ValueError,
     r"minicnn needs a fixed height and width: input_shape \(None, None, 3\) has unknown \(None\) dimensions"),
    (lambda: minicnn.Sequential([Conv2D(4, 3)]).build((None, None, None, 3)), ValueError,
     r"fixed height and width: input_shape \(None, None, 3\)"),
    (lambda: Input(shape=(None, 8, 8, 3)), ValueError, r"Input shape \(None, 8, 8, 3\) .*leave the batch axis out"),
])
def test_bad_layer_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_input_shape_takes_numpy_ints_and_a_keras_batch_axis():
    assert Dense(3, input_shape=(np.int64(4),)).input_shape == (4,)
    model = minicnn.Sequential([Conv2D(4, 3)])
    model.build((None, 8, 8, 3))
    assert model.input_shape == (8, 8, 3) and model.output_shape == (6, 6, 4)


def test_numpy_scalars_are_numbers():
    """Values from np.linspace grids or configs read with NumPy are numbers like Python's (Keras
    takes them); bools are still refused."""
    assert Dropout(np.float32(0.5)).rate == 0.5
    assert minicnn.layers.Rescaling(np.float32(0.5)).scale == 0.5
    assert minicnn.layers.LeakyReLU(np.float32(0.25)).negative_slope == 0.25
    conv = Conv2D(np.int64(4), np.int64(3), strides=(np.int32(1), np.int64(2)))
    assert (conv.filters, conv.kernel_size, conv.strides) == (4, (3, 3), (1, 2))
    assert type(conv.filters) is int and all(type(k) is int for k in conv.kernel_size)
    assert MaxPooling2D(np.int64(2)).pool_size == (2, 2)
    assert minicnn.layers.Concatenate(axis=np.int64(-1)).axis == -1
    assert optimizers.Adam(learning_rate=np.float32(1e-3)).learning_rate == pytest.approx(1e-3)
    assert optimizers.SGD(np.float32(0.1), weight_decay=np.float32(1e-4)).weight_decay == pytest.approx(1e-4)
    model = small_model()
    history = model.fit(X, Y, epochs=np.int64(1), batch_size=np.int64(16), validation_split=np.float32(0.25),
                        verbose=0)
    assert len(history.history["val_loss"]) == 1
    for make, pattern in [(lambda: Dropout(True), r"Dropout rate must be a number in \[0, 1\), got True"),
                          (lambda: Conv2D(True, 3), r"filters must be a positive int, got True"),
                          (lambda: Conv2D(4, np.float32(3)), r"kernel_size must be an int or a tuple of 2 ints"),
                          (lambda: optimizers.Adam(learning_rate=True), r"learning_rate must be a positive number")]:
        with pytest.raises(ValueError, match=pattern):
            make()


def test_a_tuple_or_a_ragged_list_as_x_says_what_it_is():
    model = small_model()
    x, y, _ = toy_data(4)
    with pytest.raises(TypeError, match=r"tuple of 2 arrays of shapes .*: for \(x, y\) pass them as two arguments"):
        model.fit((x, y), epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"its 2 arrays have different shapes .*: give every example the same shape"):
        model.predict([x[0], x[1][:-1]], verbose=0)


def test_a_layer_dtype_other_than_floatx_is_refused_not_ignored():
    """Keras's per-layer dtype: minicnn computes everything in backend.floatx(), so dtype='float64'
    or a policy is an error saying so (it was ignored, silently; dtype='bogus' was accepted);
    float32 in any spelling is fine, and Input's dtype describes the data, which is cast."""
    for dtype in ("float64", "mixed_float16", "bogus"):
        with pytest.raises(ValueError, match=rf"got dtype='{dtype}'; minicnn computes every layer in backend.floatx"):
            Dense(3, dtype=dtype)
    assert Dense(3, dtype=np.float32).name and Conv2D(2, 3, dtype="float32").name
    model = minicnn.Sequential([Input(shape=(4,), dtype="uint8"), Dense(2)])
    assert model.predict(np.ones((2, 4), np.uint8), verbose=0).dtype == np.float32


def test_dtype_policy_floats_cast_integers_warn():
    """Any real dtype is accepted and cast to float32 batch by batch (as Keras does); an integer
    array with values above 1 warns that it looks unscaled."""
    model = small_model()
    p32 = model.predict(X)
    np.testing.assert_array_equal(model.predict(X.astype(np.float64)), p32)
    raw = (X * 255).astype(np.uint8)
    with pytest.warns(UserWarning, match="uint8 with values up to 25[0-9]; .* unscaled"):
        out = model.predict(raw)
    np.testing.assert_allclose(out, model.predict(raw.astype(np.float32)), rtol=1e-6)
    scaled = minicnn.Sequential([Input(shape=X.shape[1:]), minicnn.layers.Rescaling(1 / 255), *small_model().layers])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # a model that scales its raw input: no warning
        scaled.predict(raw)
        scaled(raw)


def _built(layer, shape):
    """`layer` built by a call on a batch of 2 zero examples of `shape`."""
    layer(np.zeros((2,) + shape, np.float32))
    return layer


BAD_CALLS = [  # (case, call, error, message pattern): model(x) and layer(x) check x as predict does
    ("other height and width", lambda: small_model()(X[:2, :4, :4]), ValueError,
     r"Sequential '\w+' was built for inputs \(8, 8, 3\); got \(4, 4, 3\) \(x of shape \(2, 4, 4, 3\)\)"),
    ("functional model", lambda: _functional()(X[:2, :6, :6]), ValueError,
     r"Model '\w+' was built for inputs \(8, 8, 3\); got \(6, 6, 3\)"),
    ("conv geometry", lambda: _built(Conv2D(4, 3), (8, 8, 3))(np.ones((2, 6, 6, 3), np.float32)), ValueError,
     r"Conv2D '\w+' was built for inputs \(8, 8, 3\); got \(6, 6, 3\)"),
    ("pooling geometry", lambda: _built(MaxPooling2D(2), (8, 8, 3))(np.ones((2, 4, 4, 3), np.float32)), ValueError,
     r"MaxPooling2D '\w+' was built for inputs \(8, 8, 3\); got \(4, 4, 3\)"),
    ("average pooling", lambda: _built(AveragePooling2D(2), (8, 8, 3))(np.ones((2, 6, 8, 3), np.float32)),
     ValueError, r"AveragePooling2D '\w+' was built for inputs \(8, 8, 3\); got \(6, 8, 3\)"),
    ("dense width", lambda: _built(Dense(3), (4,))(np.zeros((2, 5), np.float32)), ValueError,
     r"Dense '\w+' was built for inputs \(4,\); got \(5,\)"),
    ("batchnorm channels", lambda: _built(BatchNormalization(), (4, 4, 3))(np.ones((2, 4, 4, 5), np.float32)),
     ValueError, r"BatchNormalization '\w+' was built for inputs \(4, 4, 3\); got \(4, 4, 5\)"),
    ("one image", lambda: small_model()(X[0]), ValueError,
     r"a layer call takes a batch: Sequential '\w+' got x of shape \(8, 8, 3\), one example; use x\[None\]"),
    ("1-D into Dense", lambda: Dense(3)(np.zeros(4, np.float32)), ValueError,
     r"Dense '\w+' got x of shape \(4,\), one example"),
    ("channels-first", lambda: small_model()(X[:2].transpose(0, 3, 1, 2)), ValueError,
     r"got \(3, 8, 8\) .*channels-last \(NHWC\): use x.transpose\(0, 2, 3, 1\)"),
    ("wrong channels", lambda: small_model()(np.zeros((2, 8, 8, 5), np.float32)), ValueError,
     r"built for inputs \(8, 8, 3\); got \(8, 8, 5\)"),
    ("empty batch", lambda: small_model()(X[:0]), ValueError,
     r"Sequential '\w+' was called on an empty batch \(x of shape \(0, 8, 8, 3\)\)"),
    ("None", lambda: small_model()(None), ValueError, r"x is None"),
    ("strings", lambda: small_model()([["a"]]), TypeError, r"x must hold real numbers .* got dtype <U1"),
    ("merge count", lambda: _built_add()([np.ones((2, 3), np.float32)] * 3), ValueError,
     r"Add '\w+' was built for 2 inputs, got 3"),
    ("merge shapes", lambda: _built_add()([np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)]), ValueError,
     r"Add '\w+' was built for inputs \(3,\); got \(4,\) \(input 1 of shape \(2, 4\)\)"),
]


def _functional():
    inputs = Input(shape=(8, 8, 3))
    return minicnn.Model(inputs, Dense(4)(Flatten()(MaxPooling2D(2)(Conv2D(4, 3)(inputs)))))


def _built_add():
    add = minicnn.layers.Add()
    add([np.ones((2, 3), np.float32)] * 2)
    return add


@pytest.mark.parametrize("case,call,error,pattern", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_to_a_direct_call_is_a_clear_error(case, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_a_direct_call_casts_as_predict_does():
    """model(x) and layer(x) take what predict takes: integer (with predict's warning), float16 and
    float64 arrays cast to float32, and lists; the output is what predict gives."""
    model = small_model()
    p32 = model.predict(X[:4])
    np.testing.assert_allclose(model(X[:4]), p32, rtol=1e-6, atol=1e-7)
    out = model(X[:4].astype(np.float64))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, p32, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model(X[:4].tolist()), p32, rtol=1e-6, atol=1e-7)
    half = X[:4].astype(np.float16)
    np.testing.assert_allclose(model(half), model.predict(half), rtol=1e-6, atol=1e-7)
    raw = (X[:4] * 255).astype(np.uint8)
    with pytest.warns(UserWarning, match="uint8 with values up to 25[0-9]; .* unscaled"):
        out = model(raw)
    np.testing.assert_allclose(out, model(raw.astype(np.float32)), rtol=1e-6, atol=1e-7)
    conv = Conv2D(2, 3)
    y = conv(np.arange(2 * 5 * 5, dtype=np.int64).reshape(2, 5, 5, 1) % 2)    # 0/1 integers: no warning
    assert y.dtype == np.float32 and y.shape == (2, 3, 3, 2)


class ArrayLike:
    """Data as a TensorFlow or PyTorch tensor or a pandas Series is to NumPy (Keras takes all of them):
    a shape, a dtype of its own library's, which NumPy cannot interpret (tf.float32), a get method
    that is not CuPy's (pandas'), and __array__, through which NumPy reads it."""
    class DType:
        def __init__(self, name):
            self.name = name

    def __init__(self, a):
        self.a, self.shape, self.dtype = a, a.shape, self.DType(a.dtype.name)

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)

    def __len__(self):
        return len(self.a)

    def get(self, key, default=None):
        return default


def _results(wrap):
    """What fit, evaluate, predict, train_on_batch, model(x), layer(x) and a sparse-label evaluate
    give on wrap(each array)."""
    minicnn.utils.set_random_seed(0)
    model = small_model()
    history = model.fit(wrap(X), wrap(Y), batch_size=16, epochs=1, shuffle=False, verbose=0,
                        validation_data=(wrap(X[:8]), wrap(Y[:8]))).history
    out = [history, model.evaluate(wrap(X), wrap(Y), verbose=0), model.predict(wrap(X)),
           model.train_on_batch(wrap(X[:16]), wrap(Y[:16])), model(wrap(X[:4])), model.layers[0](wrap(X[:4]))]
    return out + [_sparse(model).evaluate(wrap(X), wrap(LABELS), verbose=0)]


def _assert_same(a, b):
    for x, y in zip(a, b):
        if isinstance(x, dict):
            assert x == y
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_anything_numpy_reads_through_array_is_data_as_in_keras():
    """x and y with __array__ go through np.asarray where the data come in (their dtype was handed to
    NumPy: "Cannot interpret ... as a data type"; a y's get() was taken for CuPy's)."""
    _assert_same(_results(ArrayLike), _results(lambda a: a))


def test_tensorflow_tensors_are_data_as_in_keras():
    """tf.constant data (fit, evaluate, predict, train_on_batch, model(x), layer(x)) give what the
    NumPy arrays give; it was "Cannot interpret 'tf.float32' as a data type" from inside NumPy."""
    tf = pytest.importorskip("tensorflow")
    _assert_same(_results(tf.constant), _results(lambda a: a))


def test_a_tf_dataset_is_a_clear_error():
    tf = pytest.importorskip("tensorflow")
    model = small_model()
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(16)
    message = r"a tf.data.Dataset is not supported: pass NumPy arrays, or a generator \(dataset.as_numpy_iterator"
    for call in (lambda: model.fit(dataset, epochs=1, verbose=0), lambda: model.evaluate(dataset, verbose=0),
                 lambda: model.predict(dataset), lambda: model(dataset),
                 lambda: model.fit(X, Y, validation_data=dataset, verbose=0)):
        with pytest.raises(TypeError, match=message):
            call()
    history = model.fit(dataset.as_numpy_iterator(), steps_per_epoch=3, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()


def test_an_iterable_that_is_no_array_nor_a_generator_is_a_clear_error():
    class Batches:
        def __iter__(self):
            return iter([(X, Y)])
    model = small_model()
    with pytest.raises(TypeError, match="x is a Batches, an iterable that is neither an array nor a generator"):
        model.predict(Batches())


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    class Explode(optimizers.LearningRateSchedule):          # sane for epoch 1 (6 steps), then a fault
        def __call__(self, step):
            return 1e-3 if step < 6 else float("nan")

    model = dropout_model(optimizer=optimizers.SGD(Explode(), momentum=0.9))
    snapshots = []

    class Snapshot(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    path = tmp_path / "ckpt.minicnn"
    with np.errstate(all="ignore"):
        history = model.fit(X, Y, batch_size=8, epochs=5, verbose=0,
                            callbacks=[TerminateOnNaN(), Snapshot(), ModelCheckpoint(str(path))])
    out = capsys.readouterr().out
    assert model.stop_training and "Epoch 2, batch" in out and "invalid loss" in out
    assert model.stop_reason.startswith("loss became") and "at epoch 2, batch" in model.stop_reason
    assert f"Epoch 2: not saving to {path}" in out
    assert history.epoch == [0, 1]
    loaded = minicnn.load_model(path, custom_objects={"Explode": Explode})   # the epoch-1 checkpoint, intact
    for a, b in zip(loaded.get_weights(), snapshots[0]):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(w).all() for w in loaded.get_weights())


def test_resume_equals_uninterrupted(tmp_path):
    straight = dropout_model(seed=3)
    h4 = straight.fit(X, Y, batch_size=8, epochs=4, verbose=0, validation_split=0.25)
    first = dropout_model(seed=3)
    h2 = first.fit(X, Y, batch_size=8, epochs=2, verbose=0, validation_split=0.25)
    first.save(tmp_path / "half.minicnn")
    resumed = minicnn.load_model(tmp_path / "half.minicnn")
    h_rest = resumed.fit(X, Y, batch_size=8, epochs=4, initial_epoch=2, verbose=0, validation_split=0.25)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h_rest.epoch == [2, 3]
    for key in h4.history:
        assert h2.history[key] + h_rest.history[key] == h4.history[key]


def test_ctrl_c_returns_history_and_keeps_checkpoint(tmp_path, capsys):
    class CtrlC(Callback):                                   # what Ctrl-C raises, at epoch 2, step 3
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, step, logs=None):
            if self.epoch == 1 and step == 2:
                raise KeyboardInterrupt

    model = dropout_model()
    path = tmp_path / "w.weights.npz"
    history = model.fit(X, Y, batch_size=8, epochs=3, verbose=0,
                        callbacks=[ModelCheckpoint(str(path), save_weights_only=True), CtrlC()])
    assert history.epoch == [0] and "interrupted in epoch 2, step 3" in capsys.readouterr().out
    fresh = dropout_model()
    fresh.load_weights(path)                                 # epoch 1's weights, loadable
    assert model.stop_reason == "interrupted in epoch 2, step 3"


@pytest.mark.parametrize("filepath,error,pattern", [
    ("w-{epoch:02d}-{val_loss:.2f}.weights.npz", KeyError,
     r"Failed to format this callback filepath: \".*/w-\{epoch:02d\}-\{val_loss:.2f\}.weights.npz\". Reason: it uses "
     r"\{val_loss\}, which the epoch logs of this fit will lack \(they hold accuracy, loss\); pass validation_data or "
     r"validation_split, or remove it from the filepath"),
    ("w-{epoch:.2q}.weights.npz", ValueError, r"Failed to format .* Reason: Unknown format code 'q' for object of type "
                                              r"'int' \(its fields are \{epoch\}, an int, and the keys of the logs"),
    ("w-{loss:d}.weights.npz", ValueError, r"Reason: Unknown format code 'd' for object of type 'float'"),
])
def test_a_checkpoint_filepath_that_cannot_be_formatted_fails_before_training(tmp_path, filepath, error, pattern):
    """Keras raises after the first epoch (a bare KeyError: 'val_loss' here before); the fields
    fit's own logs fill are checked before any step."""
    model = small_model()
    with pytest.raises(error, match=pattern):
        model.fit(X, Y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / filepath))])
    assert model.optimizer.iterations == 0


def test_a_checkpoint_filepath_key_a_callback_adds_is_checked_at_the_first_save(tmp_path):
    """{learning_rate} is in the logs when ReduceLROnPlateau runs before the checkpoint; a key no
    one adds is named at the first save, with the keys the logs have."""
    class NaNRate(optimizers.LearningRateSchedule):
        def __call__(self, step):
            return float("nan")

    model = small_model(optimizer=optimizers.SGD(NaNRate()))
    with np.errstate(all="ignore"):          # an epoch stopped within is not validated: no val_loss, no save
        model.fit(X, Y, epochs=2, verbose=0, validation_split=0.25,
                  callbacks=[TerminateOnNaN(), ModelCheckpoint(str(tmp_path / "{val_loss:.2f}.npz"))])
    assert model.stop_reason and not list(tmp_path.iterdir())
    model = small_model()
    path = str(tmp_path / "w-{epoch}-{learning_rate:.4f}.weights.npz")
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[minicnn.callbacks.ReduceLROnPlateau(monitor="loss"),
                                                    ModelCheckpoint(path, save_weights_only=True)])
    assert [p.name for p in tmp_path.iterdir()] == ["w-1-0.0010.weights.npz"]
    with pytest.raises(KeyError, match=r"it uses \{lr\}, which the logs of epoch 1 lack \(they hold accuracy, loss, "
                                       r"val_accuracy, val_loss\); remove it from the filepath"):
        model.fit(X, Y, verbose=0, validation_split=0.25, callbacks=[ModelCheckpoint(str(tmp_path / "{lr}.npz"))])


def test_same_seed_gives_bit_identical_weights():
    runs = []
    for _ in range(2):
        model = dropout_model(seed=11)
        model.fit(X, Y, batch_size=8, epochs=2, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    other = dropout_model(seed=12)
    other.fit(X, Y, batch_size=8, epochs=2, verbose=0)
    assert not np.array_equal(other.get_weights()[0], runs[0][0])


def test_real_sigint_during_fit(tmp_path):
    """Ctrl-C (SIGINT) in a training process: fit returns the completed epochs and the checkpoint loads."""
    import os
    import pathlib
    import signal
    import subprocess
    import sys
    import time
    root = pathlib.Path(__file__).resolve().parents[1]
    ckpt = tmp_path / "ckpt.weights.npz"
    script = f"""
import sys; sys.path.insert(0, {str(root / 'tests')!r})
import numpy as np, minicnn
from test_model import small_model, toy_data
x, y, _ = toy_data(64)
model = small_model()
h = model.fit(x, y, batch_size=4, epochs=100000, verbose=0,
              callbacks=[minicnn.callbacks.ModelCheckpoint({str(ckpt)!r}, save_weights_only=True)])
print("EPOCHS", len(h.epoch), flush=True)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(root)})
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err[-2000:]
    assert "Training interrupted in epoch" in out and "EPOCHS" in out
    assert int(out.split("EPOCHS")[1].split()[0]) >= 1
    model = small_model()
    model.load_weights(ckpt)
    assert all(np.isfinite(w).all() for w in model.get_weights())
