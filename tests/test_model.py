"""Sequential: building, training, the Keras-compatible loop, summary, gradient check of a whole model."""
import io
import re
import contextlib
import warnings

import numpy as np
import pytest

import minicnn
from minicnn import backend as B
from minicnn import gradcheck, zoo
from minicnn.callbacks import Callback, EarlyStopping, ModelCheckpoint, TerminateOnNaN
from minicnn.layers import (Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input,
                            MaxPooling2D)
from minicnn.utils import to_categorical


def small_model(**compile_kwargs):
    model = minicnn.Sequential([
        Input(shape=(8, 8, 3)), Conv2D(8, 3, padding="same", activation="relu"), MaxPooling2D(2),
        Conv2D(16, 3, activation="relu"), Flatten(), Dense(32, activation="relu"), Dense(4, activation="softmax")])
    model.compile(**{"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["accuracy"],
                     **compile_kwargs})
    return model


def toy_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, 4, n)
    return x, to_categorical(labels, 4), labels


@pytest.mark.parametrize("name", sorted(zoo.MODELS))
def test_zoo_param_counts_equal_keras(name):
    entry = zoo.get(name)
    assert entry.build(compile=False).count_params() == entry.params


def test_overfits_64_images():
    x, y, _ = toy_data(64)
    model = small_model(optimizer=minicnn.optimizers.Adam(3e-3))
    model.fit(x, y, batch_size=16, epochs=60, verbose=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc == 1.0 and loss < 0.05


def test_history_keys_and_running_means():
    """Epoch metrics are sample-weighted running means over batches of 32, 32 and 16."""
    x, y, _ = toy_data(80)
    seen = []

    class Spy(Callback):
        def on_train_batch_end(self, step, logs=None):
            seen.append((self.model.trainer.last_batch_loss(), float(self.model.trainer.metrics.correct)))

    model = small_model()
    h = model.fit(x, y, batch_size=32, epochs=2, validation_split=0.25, verbose=0, callbacks=[Spy()], shuffle=False)
    assert list(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert h.epoch == [0, 1] and len(seen) == 4             # 60 training samples -> 2 batches
    first_epoch = seen[:2]
    assert h.history["accuracy"][0] == pytest.approx(first_epoch[1][1] / 60)
    # validation_split takes the LAST fraction before shuffling
    val = model.evaluate(x[60:], y[60:], verbose=0)
    assert h.history["val_loss"][1] == pytest.approx(val[0], rel=1e-5)


def test_partial_last_batch_is_kept():
    x, y, _ = toy_data(70)
    model = small_model()
    steps = []

    class Count(Callback):
        def on_train_batch_end(self, step, logs=None):
            steps.append(step)

    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[Count()])
    assert steps == [0, 1, 2] and model.optimizer.iterations == 3


def test_sparse_labels_and_predict_batches():
    x, _, labels = toy_data(50)
    model = small_model(loss="sparse_categorical_crossentropy")
    model.fit(x, labels.reshape(-1, 1).astype(np.uint8), batch_size=16, epochs=1, verbose=0)
    p_all = model.predict(x, batch_size=7)
    assert p_all.shape == (50, 4) and p_all.dtype == np.float32
    np.testing.assert_allclose(p_all.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(p_all, model.predict(x, batch_size=50), rtol=1e-5, atol=1e-6)


def test_model_gradcheck_float64():
    with B.float64_mode():
        model = minicnn.Sequential([
            Input(shape=(7, 6, 2)), Conv2D(3, 3, strides=2, padding="same", activation="tanh"), BatchNormalization(),
            AveragePooling2D(2, padding="same"), Conv2D(4, 2, activation="sigmoid"), Dropout(0.3, seed=1), Flatten(),
            Dense(5, activation="tanh"), Dense(3), Activation("softmax")])
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        rng = np.random.default_rng(3)
        x = rng.standard_normal((4, 7, 6, 2))
        y = to_categorical(rng.integers(0, 3, 4), 3)
        errors = gradcheck.check_model(model, x, y)
    assert len(errors) == 10 and max(errors.values()) < 1e-6, errors


def test_nested_sequential_is_a_layer():
    block = minicnn.Sequential([Conv2D(4, 3, padding="same", activation="relu"), MaxPooling2D(2)])
    model = minicnn.Sequential([Input(shape=(8, 8, 3)), block, Flatten(), Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y, _ = toy_data(32)
    model.fit(x, y, epochs=2, verbose=0)
    assert model.count_params() == (3 * 3 * 3 * 4 + 4) + (4 * 4 * 4 * 4 + 4)
    assert [p for p, _, _ in model.variables()] == ["sequential/conv2d/W", "sequential/conv2d/b", "dense/W", "dense/b"]


def test_summary_counts_and_optimizer_line():
    model = small_model()
    out = io.StringIO()
    model.summary(print_fn=lambda s: out.write(s))
    text = out.getvalue()
    n = model.count_params()
    assert f"Total params: {n:,}" in text and "Non-trainable params: 0 (0.00 B)" in text
    assert "conv2d" in text and "(None, 8, 8, 8)" in text
    x, y, _ = toy_data(16)
    model.fit(x, y, epochs=1, verbose=0)
    out = io.StringIO()
    model.summary(print_fn=lambda s: out.write(s))
    assert f"Total params: {3 * n + 2:,}" in out.getvalue()          # Adam: m, v + iterations + lr


def test_summary_bn_non_trainable():
    model = zoo.get("tutorial003_lenet5_bn").build()
    assert model.count_params(True) == 61_718 and model.count_params(False) == 12


def test_progress_output_verbose_1_and_2():
    x, y, _ = toy_data(64)
    for verbose, needle in ((1, "2/2 "), (2, "2/2 - ")):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            small_model().fit(x, y, batch_size=32, epochs=2, verbose=verbose, validation_split=0.25)
        text = buf.getvalue()
        assert "Epoch 2/2" in text and needle in text and "val_accuracy: " in text and "s/step" in text


def test_checkpoint_best_only_and_reload(tmp_path):
    x, y, _ = toy_data(64)
    model = small_model()
    path = tmp_path / "best.weights.npz"
    ckpt = ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True, save_weights_only=True)
    h = model.fit(x, y, epochs=4, verbose=0, validation_split=0.25, callbacks=[ckpt])
    best_epoch = int(np.argmin(h.history["val_loss"]))
    assert ckpt.best == min(h.history["val_loss"])
    fresh = small_model()
    fresh.load_weights(str(path))
    assert fresh.evaluate(x[48:], y[48:], verbose=0)[0] == pytest.approx(h.history["val_loss"][best_epoch], rel=1e-5)


def test_early_stopping_and_restore():
    x, y, _ = toy_data(64)
    model = small_model(optimizer=minicnn.optimizers.SGD(1e-9))       # practically frozen: no improvement
    es = EarlyStopping(monitor="loss", patience=1, min_delta=1.0)
    h = model.fit(x, y, epochs=10, verbose=0, callbacks=[es])
    assert len(h.epoch) == 2 and es.stopped_epoch == 1


def test_terminate_on_nan():
    x, y, _ = toy_data(64)
    model = small_model(optimizer=minicnn.optimizers.SGD(1e6))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), np.errstate(all="ignore"):
        h = model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[TerminateOnNaN()])
    assert model.stop_training and re.fullmatch(r"loss became (nan|inf) at epoch 1, batch \d+", model.stop_reason)
    assert "invalid loss" in buf.getvalue() and h.epoch == [0]


@pytest.mark.parametrize("kwargs,match", [
    (dict(batch_size=0), "batch_size"), (dict(epochs=-1), "epochs"), (dict(validation_split=1.0), "validation_split"),
    (dict(verbose=3), "verbose")])
def test_fit_argument_errors(kwargs, match):
    x, y, _ = toy_data(8)
    with pytest.raises(ValueError, match=match):
        small_model().fit(x, y, **kwargs)


def test_wrong_input_shape_is_a_clear_error():
    x, y, _ = toy_data(8)
    model = small_model()
    with pytest.raises(ValueError, match=r"expects x of shape \(N, 8, 8, 3\), got \(8, 8, 8, 1\)"):
        model.fit(x[..., :1], y)
    with pytest.raises(ValueError, match="NaN"):
        bad = x.copy()
        bad[3, 0, 0, 0] = np.nan
        model.predict(bad)
    with pytest.raises(ValueError, match="to_categorical"):
        model.fit(x, np.arange(8) % 4)
    with pytest.raises(RuntimeError, match="compile"):
        minicnn.Sequential([Input(shape=(8, 8, 3)), Flatten(), Dense(2)]).fit(x, y)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown optimizer"):
        small_model(optimizer="adamax9")
    with pytest.raises(ValueError, match="unknown metric"):
        small_model(metrics=["f1"])


def test_add_and_build_later():
    model = minicnn.Sequential()
    model.add(Conv2D(2, 3))
    model.add(Flatten())
    model.add(Dense(3, activation="softmax"))
    with pytest.raises(ValueError, match="input_shape"):
        model.build()
    model.build((None, 5, 5, 1))
    assert model.output_shape == (3,) and model.count_params() == 20 + 9 * 2 * 3 + 3


def test_metric_name_is_the_history_key():
    x, y, _ = toy_data(32)
    model = small_model(metrics=["acc"])
    h = model.fit(x, y, epochs=1, verbose=0, validation_split=0.25)
    assert list(h.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert len(model.evaluate(x, y, verbose=0)) == 2


def test_lambda_callback_and_freeze_after():
    """LambdaCallback calls plain functions; FreezeAfter stops one variable's updates from an epoch on."""
    from minicnn.callbacks import FreezeAfter, LambdaCallback
    x, y, _ = toy_data(64)
    model = small_model(optimizer=minicnn.optimizers.SGD(0.05, momentum=0.9))
    model.build((8, 8, 3))
    seen, snapshots = [], {}

    def remember(epoch, logs):
        seen.append(epoch)
        snapshots[epoch] = model.layers[0].params["b"].copy()

    model.fit(x, y, batch_size=16, epochs=4, verbose=0,
              callbacks=[FreezeAfter("conv2d/b", 2), LambdaCallback(on_epoch_end=remember)])
    assert seen == [0, 1, 2, 3]
    assert not np.array_equal(snapshots[0], snapshots[1])          # trained in epochs 0 and 1
    np.testing.assert_array_equal(snapshots[1], snapshots[3])       # frozen from epoch 2 on
    assert model.optimizer.frozen == ["conv2d/b"]
    with pytest.raises(TypeError, match="must be callable"):
        LambdaCallback(on_epoch_end=3)
    with pytest.raises(ValueError, match="FreezeAfter epochs"):
        FreezeAfter("x", -1)


def test_inference_memory_stays_small_whatever_the_batch_size():
    """predict and evaluate over 50,000 images with batch_size=1024 allocate a few MB beyond the data
    and the output (the CPU's inference path: chunks of images, row-block convolutions, no cols
    matrix, caches dropped at the end), and give the numbers of small batches."""
    import tracemalloc
    model = minicnn.Sequential([Conv2D(32, 3, padding="same", activation="relu", input_shape=(32, 32, 3)), MaxPooling2D(4),
                        Conv2D(8, 3, padding="same", activation="relu"), Flatten(), Dense(10, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((50_000, 32, 32, 3), dtype=np.float32)            # 614 MB, allocated before tracing
    y = to_categorical(rng.integers(0, 10, 50_000), 10)
    reference = model.predict(x[:300], batch_size=7)
    tracemalloc.start()
    try:
        out = model.predict(x, batch_size=1024)
        _, peak_predict = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        loss, acc = model.evaluate(x, y, batch_size=1024, verbose=0)
        _, peak_evaluate = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one activation of a chunk is INFERENCE_BYTES; a batch of 1024 whole would take 134 MB per layer
    print(f"peak MB: predict {peak_predict / 2**20:.1f} (output {out.nbytes / 2**20:.1f}), evaluate {peak_evaluate / 2**20:.1f}")
    assert peak_predict - out.nbytes < 32 << 20, peak_predict / 2**20
    assert peak_evaluate < 32 << 20, peak_evaluate / 2**20
    np.testing.assert_allclose(out[:300], reference, rtol=1e-5, atol=1e-6)
    assert all(layer.cache is None for layer in model.layers)
    assert np.isfinite(loss) and 0.05 < acc < 0.2       # random labels: about 1 in 10


def test_built_as_soon_as_the_input_shape_is_known():
    """Keras builds a Sequential whose input shape is declared: weights exist before compile."""
    model = minicnn.Sequential([Conv2D(4, 3, input_shape=(8, 8, 3)), Flatten(), Dense(2)])
    assert model.built and model.count_params() == 402
    assert [w.shape for w in model.layers[0].get_weights()] == [(3, 3, 3, 4), (4,)]
    later = minicnn.Sequential()
    later.add(Input(shape=(8, 8, 3)))
    later.add(Conv2D(4, 3))
    assert later.built and later.count_params() == 112
    with pytest.raises(ValueError, match="flat input"):           # a wrong layer fails where it is added
        later.add(Dense(2))


def test_unbuilt_count_params_and_set_weights_are_clear_errors():
    """As in Keras: an unbuilt model has no weights to count or set (it used to report 0)."""
    for unbuilt in (minicnn.Sequential([Conv2D(4, 3), Flatten(), Dense(2)]), Dense(3)):
        with pytest.raises(ValueError, match=r"You tried to call count_params on \w+ '\w+', but it isn't built"):
            unbuilt.count_params()
        with pytest.raises(ValueError, match=r"call set_weights on .* isn't built"):
            unbuilt.set_weights([np.zeros((4, 3))])


def test_set_weights_takes_lists_and_names_what_is_wrong():
    """set_weights converts nested lists and numbers as Keras does; None, a number or a weight of
    the wrong shape is an error naming the layer, the weight and both shapes."""
    model = small_model()
    weights = model.get_weights()
    model.set_weights([w.tolist() for w in weights])
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    dense = Dense(3)
    dense(np.zeros((2, 4), np.float32))
    dense.set_weights([np.ones((4, 3)).tolist(), [1, 2, 3]])
    np.testing.assert_array_equal(dense.get_weights()[1], [1, 2, 3])
    for bad in (None, 3):
        with pytest.raises(TypeError, match=f"set_weights expects a list of arrays .*, got {type(bad).__name__}"):
            model.set_weights(bad)
    with pytest.raises(ValueError, match=r"layer '\w+' weight 'b': expected shape \(3,\), got \(\) \(NoneType\)"):
        dense.set_weights([np.zeros((4, 3)), None])


def test_container_weights_are_read_only():
    """A Sequential's params and state are views of its layers': assigning them is an error, not a no-op."""
    model = small_model()
    with pytest.raises(AttributeError):
        model.params = {}
    with pytest.raises(AttributeError):
        model.state = {}
    assert set(model.params) == {f"{k}/{w}" for k in ("conv2d", "conv2d_1", "dense", "dense_1") for w in "Wb"}


def test_early_stopping_restores_the_best_weights():
    """restore_best_weights: after stopping, the weights are those at the end of the best epoch."""
    x, y, _ = toy_data(64)
    model = small_model(optimizer=minicnn.optimizers.SGD(0.05))
    seen = []
    record = minicnn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()))
    # "max" on a falling loss: epoch 0 stays the best, training stops after `patience` worse epochs
    es = EarlyStopping(monitor="loss", mode="max", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=10, verbose=0, callbacks=[record, es])
    assert len(h.epoch) == 3 and es.best_epoch == 0
    for w, best, last in zip(model.get_weights(), seen[0], seen[-1]):
        np.testing.assert_array_equal(w, best)
    assert any(not np.array_equal(b, l) for b, l in zip(seen[0], seen[-1]))


def test_the_loss_owns_the_softmax_of_a_softmax_head():
    """compile with cross-entropy hands the head's softmax to the loss: the model runs its head for
    the logits, still outputs probabilities, the config still says softmax; the loss is exact
    where a probability underflows; the head layer alone still gives probabilities, as in Keras;
    compiling with another loss gives the softmax back to the head."""
    model = minicnn.Sequential([Dense(3, activation="softmax", input_shape=(2,))])
    model.compile("sgd", "categorical_crossentropy")
    head = model.layers[0]
    assert model._fused and isinstance(head.activation, minicnn.activations.Softmax)
    assert head.get_config()["activation"] == "softmax"
    model.set_weights([np.array([[100.0, 0.0, -100.0], [0.0, 0.0, 0.0]], np.float32), np.zeros(3, np.float32)])
    x = np.array([[1.0, 0.0]], np.float32)
    p = model.predict(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    assert p[0, 2] == 0.0                                   # e^-200 underflows in float32
    loss = model.evaluate(x, np.array([[0.0, 0.0, 1.0]], np.float32), verbose=0)
    assert loss == pytest.approx(200.0, rel=1e-5)          # logsumexp(z) - z_2, not -log(0) = inf
    model.forward(x)
    np.testing.assert_allclose(model.logits, [[100.0, 0.0, -100.0]])       # what the loss reads
    np.testing.assert_array_equal(head(x), p)                                # the layer alone: softmax
    model.compile("sgd", "mse")
    assert not model._fused
    np.testing.assert_allclose(model.predict(x), p, atol=1e-7)


def test_from_logits_with_a_softmax_head_warns_at_compile_as_keras_does():
    """A from_logits loss after a softmax head trains on a double softmax: Keras warns, and so
    does compile (once); a head without an activation gives logits and no warning."""
    loss = minicnn.losses.CategoricalCrossentropy(from_logits=True)
    with pytest.warns(UserWarning, match=r"`categorical_crossentropy` received `from_logits=True`, but the `output` "
                                         r"argument was produced by a Softmax activation .*'dense_\d+'"):
        small_model(loss=loss)
    model = minicnn.Sequential([Input(shape=(8, 8, 3)), Flatten(), Dense(4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile("adam", loss)
        small_model(loss=minicnn.losses.CategoricalCrossentropy())


def test_one_callback_not_in_a_list_is_accepted_as_in_keras_3():
    x, y, _ = toy_data(32)
    model = small_model()
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=EarlyStopping(monitor="loss", patience=0, baseline=0.0))
    assert h.epoch == [0, 1]                   # the baseline is never beaten: stopped after patience + 1 epochs
    with pytest.raises(TypeError, match="callbacks must be a list of minicnn.callbacks.Callback instances, got str"):
        model.fit(x, y, verbose=0, callbacks="early_stopping")


@pytest.mark.parametrize("head", ["dense", "activation", "softmax_layer", "nested"])
def test_a_compiled_models_layers_keep_their_softmax_elsewhere(head, rng):
    """Keras's idioms that reuse a trained model's layers: the layers called one by one, a new
    Sequential over the same layers, the feature maps. Each ends in the probabilities of the
    compiled model, whose loss owns the softmax in training (test_functional: a Model cut from
    a compiled one)."""
    last = {"dense": [Dense(4, activation="softmax")],
            "activation": [Dense(4), Activation("softmax")],
            "softmax_layer": [Dense(4), minicnn.layers.Softmax()],
            "nested": [minicnn.Sequential([Dense(6, activation="relu"), Dense(4, activation="softmax")])]}[head]
    model = minicnn.Sequential([Input(shape=(5, 5, 2)), Conv2D(3, 3, activation="relu"), Flatten(), *last])
    model.compile("adam", "categorical_crossentropy")
    assert model._fused
    x = rng.standard_normal((4, 5, 5, 2)).astype(np.float32)
    y = to_categorical(rng.integers(0, 4, 4), 4)
    model.fit(x, y, epochs=1, verbose=0)
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    h = x
    for layer in model.layers:                                  # each layer called on its own
        h = layer(h)
    np.testing.assert_allclose(h, p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(minicnn.Sequential(model.layers).predict(x, verbose=0), p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.layer_outputs(x)[-1][2], p, rtol=1e-5, atol=1e-7)


def test_progress_output_follows_keras_3(capsys):
    """No 'Epoch 1/1' line for a single epoch, 'Epoch k/n' for several; the bar is not drawn before
    the first step (no empty 0/N bar); evaluate(verbose=1) draws the full bar, verbose=2 the short line."""
    x, y, _ = toy_data(64)
    model = small_model()
    model.fit(x, y, batch_size=32, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch" not in out and "0/2" not in out and "2/2 ━━━━━━━━━━━━━━━━━━━━" in out
    model.fit(x, y, batch_size=32, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch 1/2") == 1 and out.count("Epoch 2/2") == 1 and "2/2 - " in out
    model.evaluate(x, y, batch_size=32, verbose=1)
    assert re.match(r"2/2 ━{20} \d+s \d+ms/step - accuracy: [0-9.]+ - loss: [0-9.]+$", capsys.readouterr().out.strip())
    model.evaluate(x, y, batch_size=32, verbose=2)
    assert re.match(r"2/2 - \d+s - \d+ms/step - accuracy", capsys.readouterr().out.strip())


def test_callbacks_run_before_history_as_in_keras_3():
    """The user's callbacks run before the progress bar and History, so what they add to the
    epoch's logs (ReduceLROnPlateau's learning_rate) is in history.history, as in Keras 3."""
    x, y, _ = toy_data(64)
    model = small_model(optimizer=minicnn.optimizers.SGD(0.01))
    h = model.fit(x, y, epochs=2, verbose=0, callbacks=[minicnn.callbacks.ReduceLROnPlateau(monitor="loss")])
    assert h.history["learning_rate"] == pytest.approx([0.01, 0.01])


def _relu_pairs_model():
    from minicnn.layers import ReLU
    return minicnn.Sequential([
        Input(shape=(9, 8, 2)), Conv2D(4, 3, padding="same"), Activation("relu"), Conv2D(5, 3), ReLU(),
        MaxPooling2D(2), Flatten(), Dense(6), Activation("relu"), Dense(6), Activation("tanh"),
        Dense(6, activation="relu"), Activation("relu"), Dense(3), ReLU(max_value=6.0), Dense(3),
        Activation("softmax")])


def test_fused_pairs_are_linear_kernel_layers_followed_by_a_plain_relu():
    """Conv2D / Dense without an activation of their own take in the plain relu after them; tanh,
    ReLU(max_value=...), softmax and a relu after a relu layer stay layers of their own."""
    from minicnn.layers.base import fused_pairs
    model = _relu_pairs_model()
    assert fused_pairs(model.layers) == [0, 2, 6]


@pytest.mark.parametrize("conv_path", ["blocked", "whole"])
def test_fused_relu_pairs_compute_what_the_layers_compute_one_by_one(conv_path, rng):
    """Through Sequential, a fused pair gives the output and every gradient that running its two
    layers one after the other gives; a layer called alone afterwards is still linear."""
    from minicnn import kernels
    kernels.set_conv_path(conv_path)
    try:
        model = _relu_pairs_model()
        model.build()
        model.input_grad = True                         # dx of the first layer too
        x = rng.standard_normal((3, 9, 8, 2)).astype(np.float32)
        y = model.forward(x, training=True)
        dout = rng.standard_normal(y.shape).astype(np.float32)
        dx = model.backward(dout)
        fused = {k: g.copy() for layer in model.layers for k, g in layer.grads.items() for k in [f"{layer.name}/{k}"]}
        h = x
        for layer in model.layers:                      # the same layers, one by one, unfused
            h = layer.forward(h, training=True)
        np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-6)
        d = dout
        for layer in reversed(model.layers):
            d = layer.backward(d)
        assert dx.shape == x.shape
        np.testing.assert_allclose(dx, d, rtol=1e-5, atol=1e-6)
        for layer in model.layers:
            for k, g in layer.grads.items():
                np.testing.assert_allclose(fused[f"{layer.name}/{k}"], g, rtol=1e-5, atol=1e-6)
        z = model.layers[0].forward(x)                  # alone: the layer's own (linear) activation
        assert (z < 0).any()
    finally:
        kernels.set_conv_path("auto")


def _relu_pool_model():
    return minicnn.Sequential([
        Input(shape=(12, 11, 3)), Conv2D(4, 3, padding="same", activation="relu"), MaxPooling2D(2),
        Conv2D(16, 3, padding="same"), Activation("relu"), MaxPooling2D(2), Conv2D(3, 1, activation="tanh"),
        MaxPooling2D(2, strides=1), Flatten(), Dense(3)])


def test_fusion_plan_hands_a_relu_conv_the_max_pooling_after_it():
    """A relu Conv2D (its own relu or the fused Activation's) takes the MaxPooling2D after it when the
    windows tile its output; a tanh conv, or windows that overlap (strides 1), are left alone."""
    from minicnn.layers.base import fusion_plan
    model = _relu_pool_model()
    plan, absorbed = fusion_plan(model.layers)
    assert plan[0] == {"pool": model.layers[1]}
    assert plan[2] == {"activation": model.layers[3].absorbed_activation, "pool": model.layers[4]}
    assert 5 not in plan and absorbed == {1, 3, 4}


@pytest.mark.parametrize("conv_path", ["blocked", "whole"])
def test_fused_conv_relu_maxpool_computes_what_the_layers_compute_one_by_one(conv_path, rng):
    """Through Sequential, a relu Conv2D pooling its own output (the fused kernel on the CPU's blocked
    path, the two layers' kernels on the whole-batch path) gives the output and every gradient of the
    layers run one after the other; and the fused conv keeps no output of its own."""
    from minicnn import kernels
    from minicnn.kernels import cpu_conv
    kernels.set_conv_path(conv_path)
    cpu_conv.set_implicit("always")
    try:
        model = _relu_pool_model()
        model.build()
        model.input_grad = True
        x = rng.standard_normal((3, 12, 11, 3)).astype(np.float32)
        y = model.forward(x, training=True)
        assert ("y" not in model.layers[0].cache) == (conv_path == "blocked")
        dout = rng.standard_normal(y.shape).astype(np.float32)
        dx = model.backward(dout)
        fused = {f"{layer.name}/{k}": g.copy() for layer in model.layers for k, g in layer.grads.items()}
        h = x
        for layer in model.layers:
            h = layer.forward(h, training=True)
        tol = dict(rtol=1e-5, atol=1e-6)                # (the relu pair sums db in another order)
        np.testing.assert_allclose(y, h, **tol)
        d = dout
        for layer in reversed(model.layers):
            d = layer.backward(d)
        np.testing.assert_allclose(dx, d, **tol)
        for layer in model.layers:
            for k, g in layer.grads.items():
                np.testing.assert_allclose(fused[f"{layer.name}/{k}"], g, **tol)
    finally:
        kernels.set_conv_path("auto")
        cpu_conv.set_implicit("auto")


def test_model_gradcheck_through_fused_conv_relu_maxpool(rng):
    """float64 finite differences through convs that pool their own relu output."""
    from minicnn.kernels import cpu_conv
    cpu_conv.set_implicit("always")
    try:
        with B.float64_mode():
            model = _relu_pool_model()
            model.compile(optimizer="sgd", loss="categorical_crossentropy")
            x = rng.standard_normal((4, 12, 11, 3))
            x += np.sign(x) * 0.05
            y = to_categorical(rng.integers(0, 3, 4), 3)
            errors = gradcheck.check_model(model, x, y)
            assert "y" not in model.layers[0].cache
    finally:
        cpu_conv.set_implicit("auto")
    assert len(errors) == 8 and max(errors.values()) < 1e-6, errors


def test_model_gradcheck_through_fused_relu_pairs(rng):
    """float64 finite differences through a model whose Conv2D/Dense run the relu of the next layer."""
    with B.float64_mode():
        model = _relu_pairs_model()
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        x = rng.standard_normal((4, 9, 8, 2))
        y = to_categorical(rng.integers(0, 3, 4), 3)
        errors = gradcheck.check_model(model, x, y)
    assert len(errors) == 14 and max(errors.values()) < 1e-6, errors


def test_kerass_batch_methods_get_layer_pop_and_input_dim(rng):
    """Keras methods ported programs call: train_on_batch(return_dict=True), test_on_batch,
    predict_on_batch, get_layer by name or index, Sequential.pop (the head's softmax goes back to
    the new last layer's owner, as compile decides), Keras 2's Dense(input_dim=), summary's layout
    arguments."""
    model = minicnn.Sequential([Conv2D(4, 3, activation="relu", input_shape=(6, 6, 2), name="features"), Flatten(),
                                Dense(5, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    x = rng.random((4, 6, 6, 2), dtype=np.float32)
    y = to_categorical([0, 1, 2, 3], 5)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "accuracy"} and np.isfinite(logs["loss"])
    assert model.test_on_batch(x, y) == pytest.approx(model.evaluate(x, y, verbose=0))
    np.testing.assert_array_equal(model.predict_on_batch(x), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="sample_weight and class_weight are not supported"):
        model.train_on_batch(x, y, class_weight={0: 2.0})
    assert model.get_layer("features") is model.layers[0] and model.get_layer(index=-1) is model.layers[2]
    with pytest.raises(ValueError, match=r"No such layer: conv\. Existing layers are: \['features', "):
        model.get_layer("conv")
    head = model.pop()
    assert head.units == 5 and model.output_shape == (64,) and not model._fused and model.output.shape == (None, 64)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.layers[1](model.layers[0](x)))
    model.add(Dense(3, activation="softmax"))
    model.compile("sgd", "categorical_crossentropy")
    assert model._fused and model.fit(x, y[:, :3], epochs=1, verbose=0).history["loss"][0] > 0
    with pytest.raises(TypeError, match="There are no layers in the model"):
        minicnn.Sequential().pop()
    with pytest.raises(TypeError, match="pop\\(\\) is Sequential's"):
        minicnn.Model(model.inputs, model.layers[0].output).pop()
    assert Dense(4, input_dim=7).input_shape == (7,)
    lines = []
    model.summary(line_length=120, print_fn=lines.append, expand_nested=True)
    assert "features (Conv2D)" in lines[0]
