"""The functional API: Input, layer calls, Add, Concatenate, Model(inputs, outputs). Forward against
the same calls made by hand, float64 gradient checks (forks, merges, a shared layer on both conv
paths), training, summary, config and files, nesting, and the clear errors."""
import numpy as np
import pytest

import minicnn
from minicnn import Input, Model, Sequential, backend, gradcheck, kernels, load_model
from minicnn.layers import (Activation, Add, BatchNormalization, Concatenate, Conv2D, Dense, Dropout, Flatten,
                            GlobalAveragePooling2D, MaxPooling2D)
from minicnn.layers.base import KerasTensor


def _two_branch(shared_conv=False, head="softmax"):
    """A fork into two convolution branches, merged by Add and by Concatenate; a shared Dense
    (and optionally a shared Conv2D) called on two different tensors."""
    inputs = Input(shape=(6, 6, 3))
    a = Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = BatchNormalization()(Conv2D(4, 1, activation="tanh")(inputs))
    if shared_conv:
        conv = Conv2D(4, 3, padding="same")
        a, b = conv(a), conv(b)
    x = MaxPooling2D()(Concatenate()([Add()([a, b]), b]))
    dense = Dense(5, activation="tanh")
    left = dense(Flatten()(x))
    right = dense(Flatten()(Conv2D(8, 1)(x)))
    outputs = Dense(3, activation=head)(Add()([left, Dropout(0.3, seed=4)(right)]))
    return Model(inputs, outputs)


def test_input_is_a_keras_tensor_and_starts_a_sequential():
    inputs = Input(shape=(32, 32, 3))
    assert isinstance(inputs, KerasTensor) and inputs.shape == (None, 32, 32, 3)
    assert inputs.layer.input_shape == (32, 32, 3)
    model = Sequential([inputs, Conv2D(2, 3)])
    assert model.built and model.input_shape == (32, 32, 3)
    x = Conv2D(2, 3)(inputs)
    assert x.shape == (None, 30, 30, 2) and x.inputs == (inputs,)


def test_forward_is_the_same_calls_made_by_hand(rng):
    inputs = Input(shape=(5, 5, 2))
    c1, c2, dense = Conv2D(3, 3, padding="same", activation="relu"), Conv2D(3, 1), Dense(4)
    a = c1(inputs)
    merged = Concatenate(axis=-1)([Add()([a, c2(inputs)]), a])
    model = Model(inputs, dense(Flatten()(merged)))
    x = rng.standard_normal((3, 5, 5, 2)).astype(np.float32)
    ya = c1.forward(x)
    by_hand = dense.forward(np.concatenate([ya + c2.forward(x), ya], axis=-1).reshape(3, -1))
    np.testing.assert_allclose(model.predict(x), by_hand, rtol=1e-5, atol=1e-6)
    assert model.output_shape == (4,) and model.count_params() == (3 * 3 * 2 * 3 + 3) + (2 * 3 + 3) + (150 * 4 + 4)


@pytest.mark.parametrize("path", ["whole", "blocked"])
def test_gradients_of_forks_merges_and_shared_layers(path, f64, rng):
    """dL/dx and every weight: the fork's gradients add up, the shared layers' too."""
    kernels.set_conv_path(path)
    try:
        model = _two_branch(shared_conv=True, head="linear")
        errors = gradcheck.check_layer(model, rng.standard_normal((4, 6, 6, 3)))
    finally:
        kernels.set_conv_path("auto")
    assert max(errors.values()) < 1e-6, errors
    assert len(errors) == 1 + len(model.variables())


def test_gradients_through_the_fused_softmax_loss(f64, rng):
    model = _two_branch()
    model.compile("sgd", "categorical_crossentropy")
    y = np.eye(3)[rng.integers(0, 3, 5)]
    errors = gradcheck.check_model(model, rng.standard_normal((5, 6, 6, 3)), y)
    assert model._fused and max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("axis", [1, 2, -1, -2])
def test_concatenate_along_any_axis(axis, f64, rng):
    inputs = Input(shape=(4, 3, 2))
    x = Concatenate(axis=axis)([inputs, Conv2D(2, 1, activation="tanh")(inputs), inputs])
    model = Model(inputs, x)
    assert model.output_shape[(axis - 1) if axis > 0 else axis] == 3 * (4, 3, 2)[(axis - 1) if axis > 0 else axis]
    errors = gradcheck.check_layer(model, rng.standard_normal((2, 4, 3, 2)))
    assert max(errors.values()) < 1e-7, errors


def test_a_shared_layer_has_one_set_of_weights_and_sums_its_gradients(f64, rng):
    inputs = Input(shape=(4,))
    dense = Dense(4, activation="tanh")
    model = Model(inputs, Add()([dense(inputs), dense(dense(inputs))]))
    assert model.count_params() == 20 and [l.name for l in model.layers].count(dense.name) == 1
    errors = gradcheck.check_layer(model, rng.standard_normal((3, 4)))
    assert max(errors.values()) < 1e-7, errors


def test_layer_order_weights_and_keys_follow_keras(rng):
    inputs = Input(shape=(4, 4, 1))
    x = Conv2D(2, 1, name="first")(inputs)
    y = Conv2D(2, 1, name="second")(inputs)
    model = Model(inputs, Dense(2, name="head")(Flatten()(Add()([x, y]))))
    assert [l.name for l in model.layers] == [inputs.layer.name, "first", "second", model.layers[3].name,
                                              model.layers[4].name, "head"]
    assert model.weight_keys() == ["conv2d/W", "conv2d/b", "conv2d_1/W", "conv2d_1/b", "dense/W", "dense/b"]


def test_fit_evaluate_predict_save_and_reload(tmp_path, rng):
    backend.set_seed(3)
    model = _two_branch(shared_conv=True)
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    x = rng.random((40, 6, 6, 3), dtype=np.float32)
    y = np.eye(3)[(x[:, :3, :, 0].mean(axis=(1, 2)) * 3).astype(int).clip(0, 2)]
    history = model.fit(x, y, epochs=4, batch_size=8, validation_split=0.25, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.npz")
    again = load_model(tmp_path / "m.npz")
    assert type(again) is Model and [l.name for l in again.layers] == [l.name for l in model.layers]
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert again.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)   # same optimizer state, same step
    again.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for w, w2 in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_allclose(w, w2, rtol=1e-6, atol=1e-7)
    model.save_weights(tmp_path / "w.npz")
    fresh = Model.from_config(model.get_config())
    fresh.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


def test_summary_shows_connections_as_keras_does():
    lines = []
    _two_branch(shared_conv=True).summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "input_layer" in text
    rows = text.splitlines()
    at = next(i for i, line in enumerate(rows) if "(Concatenate)" in line)
    assert rows[at].rstrip("│ ").endswith("[0][0],") and rows[at + 1].split("│")[1].strip() == ""
    shared = next(i for i, line in enumerate(rows) if "(Dense)" in line)      # called twice
    assert "flatten" in rows[shared] and "flatten" in rows[shared + 1]
    chain = []
    inputs = Input(shape=(4,))
    Model(inputs, Dense(2)(Dense(3)(inputs))).summary(print_fn=chain.append)
    assert "Connected to" not in chain[0]                     # a plain chain: Sequential's columns


def test_models_nest_both_ways(tmp_path, f64, rng):
    inputs = Input(shape=(5, 5, 2))
    block = Sequential([Conv2D(3, 3, padding="same", activation="relu"), Conv2D(2, 1)])
    inner = Model(inputs, Add()([block(inputs), inputs]))
    outer = Sequential([Input(shape=(5, 5, 2)), inner, GlobalAveragePooling2D(), Dense(3)])
    errors = gradcheck.check_layer(outer, rng.standard_normal((2, 5, 5, 2)))
    assert max(errors.values()) < 1e-7, errors
    outer.compile("sgd", "mse")
    outer.save(tmp_path / "nested.npz")
    x = rng.standard_normal((2, 5, 5, 2))
    np.testing.assert_allclose(load_model(tmp_path / "nested.npz").predict(x), outer.predict(x), rtol=1e-12)


def test_the_first_layers_skip_dL_dx_unless_asked(rng):
    inputs = Input(shape=(4,))
    first = Dense(3)
    model = Model(inputs, Dense(2)(first(inputs)))
    assert first.input_grad is False
    model.forward(rng.standard_normal((2, 4)).astype(np.float32), training=True)
    assert model.backward(np.ones((2, 2), np.float32)) is None
    model.input_grad = True
    assert first.input_grad is True


@pytest.mark.parametrize("build, error, pattern", [
    (lambda: Model(), TypeError, "subclassing"),
    (lambda: Model([Input(shape=(3,)), Input(shape=(3,))], Dense(2)(Input(shape=(3,)))), TypeError, "one input"),
    (lambda: Model(Input(shape=(3,)), Dense(2)(Input(shape=(3,)))), ValueError, "not the model's input"),
    (lambda: Add()([Input(shape=(3,)), Input(shape=(4,))]), ValueError, "same shape"),
    (lambda: Concatenate()([Input(shape=(3, 3, 1)), Input(shape=(4, 3, 1))]), ValueError, "except on axis"),
    (lambda: Concatenate(axis=0), ValueError, "batch"),
    (lambda: Add()(Input(shape=(3,))), TypeError, "list of inputs"),
    (lambda: Sequential([Input(shape=(3,)), Add()]), ValueError, "merges a list"),
    (lambda: Add()([Input(shape=(3,))]), ValueError, "at least 2"),
    (lambda: Dense(2)([Input(shape=(3,)), np.zeros((1, 3))]), TypeError, "not a mix"),
])
def test_clear_errors(build, error, pattern):
    with pytest.raises(error, match=pattern):
        build()


def test_a_shared_layer_takes_one_input_shape_and_models_are_not_shared():
    dense = Dense(2)
    dense(Input(shape=(3,)))
    with pytest.raises(ValueError, match="shared"):
        dense(Input(shape=(4,)))
    inputs = Input(shape=(3,))
    block = Sequential([Dense(3)])
    with pytest.raises(ValueError, match="called 2 times"):
        Model(inputs, block(block(inputs)))
    with pytest.raises(TypeError, match="fixed by Model"):
        Model(inputs, Dense(2)(inputs)).add(Dense(2))


def test_model_is_exported_where_keras_has_it():
    assert minicnn.models.Model is Model is minicnn.Model
    assert minicnn.layers.Add is Add and minicnn.layers.Concatenate is Concatenate
    with pytest.raises(ImportError, match="Add"):
        from minicnn.layers import Multiply  # noqa: F401


def test_eager_calls_of_merge_layers(rng):
    a, b = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(Add()([a, b]), a + b)
    np.testing.assert_array_equal(Concatenate()([a, b]), np.concatenate([a, b], axis=-1))
    Activation("relu")(a)                                       # single-array calls unchanged


def test_a_feature_model_from_layer_outputs(rng):
    """Keras's feature-extraction idiom: Model(model.input, model.layers[i].output) shares the
    layers (and weights) of the model it is cut from."""
    inputs = Input(shape=(6, 6, 2))
    conv = Conv2D(3, 3, padding="same", activation="relu")
    model = Model(inputs, Dense(2)(Flatten()(conv(inputs))))
    assert model.input is inputs and model.inputs == [inputs] and model.outputs == [model.output]
    features = Model(model.input, model.layers[1].output)
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(features.predict(x), conv.forward(x))
    assert features.layers[1] is conv and features.count_params() == conv.count_params()
    shared, first_input = Dense(2), Input(shape=(2,))
    first = shared(first_input)
    shared(first)
    assert shared.output is first and shared.input is first_input        # Keras 3: the first call's
    with pytest.raises(AttributeError, match="never been called on KerasTensors"):
        Dense(2).output


def test_a_built_sequential_has_keras_tensors_for_feature_models(rng):
    """Keras's feature-extraction idiom on a Sequential: model.inputs / outputs (and Keras 2's
    model.input / output) and each layer's .input / .output exist once the model is built, so
    Model(model.inputs, model.layers[i].output) computes the first layers' features with the same
    weights; a layer added later extends the graph."""
    model = Sequential([Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)), MaxPooling2D(2),
                        Flatten(), Dense(4, activation="softmax")])
    assert model.inputs == [model.input] and model.outputs == [model.output] and model.output.shape == (None, 4)
    assert model.layers[0].input is model.input and model.layers[-1].output is model.output
    x = rng.standard_normal((3, 6, 6, 2)).astype(np.float32)
    features = Model(inputs=model.inputs, outputs=model.layers[1].output)
    np.testing.assert_array_equal(features.predict(x, verbose=0), model.layers[1](model.layers[0](x)))
    assert features.layers[1] is model.layers[0] and features.count_params() == model.layers[0].count_params()
    model.add(Dense(2))
    assert model.output.shape == (None, 2) and model.output is model.layers[-1].output
    with_input = Sequential([Input(shape=(5,)), Dense(3)])
    assert with_input.input.layer is with_input._layers[0]           # its own InputLayer starts the graph
    with pytest.raises(AttributeError, match="has no input yet: it is not built"):
        Sequential([Dense(3)]).input


def test_a_model_cut_from_a_compiled_one_keeps_the_heads_softmax(rng):
    """compile with cross-entropy gives the head's softmax to the loss for training only: a Model
    built from the same tensors, sharing the head, still puts out probabilities, as in Keras."""
    inputs = Input(shape=(5, 5, 2))
    hidden = Flatten()(Conv2D(3, 3, activation="relu")(inputs))
    model = Model(inputs, Dense(4, activation="softmax")(hidden))
    model.compile("adam", "categorical_crossentropy")
    assert model._fused
    x = rng.standard_normal((3, 5, 5, 2)).astype(np.float32)
    model.fit(x, np.eye(4, dtype=np.float32)[[0, 1, 2]], epochs=1, verbose=0)
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(Model(model.input, model.layers[-1].output).predict(x, verbose=0), p, rtol=1e-6)
    np.testing.assert_allclose(model.layers[-1](Model(inputs, hidden).predict(x, verbose=0)), p, rtol=1e-6)


def test_feature_maps_follow_the_graph(rng):
    """model.layer_outputs runs the calls (a graph's layers in Keras's order are not a chain), so
    plot.feature_maps draws a branching model too."""
    from minicnn import plot
    inputs = Input(shape=(6, 6, 3))
    a = Conv2D(2, 3, padding="same")(inputs)
    b = Conv2D(4, 1)(inputs)
    model = Model(inputs, Dense(2)(Flatten()(Concatenate()([a, MaxPooling2D(1)(b)]))))
    x = rng.random((1, 6, 6, 3), dtype=np.float32)
    outputs = model.layer_outputs(x)
    assert [layer for _, layer, _ in outputs] == [node.layer for node in model._nodes]
    np.testing.assert_array_equal(outputs[-1][2], model.predict(x))
    assert plot.feature_maps(model, x[0]) is not None
