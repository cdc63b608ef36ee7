"""fit on the readable twins and on the GPU (CUDA graphs, kernels on the device) lands on the fast
CPU's parameters: the same initial weights, batches, dropout masks, augmentation, Lookahead syncs
and frozen variables. The fast CPU is the oracle, so these run on the other backends only."""
import numpy as np
import pytest

from minicnn import backend as B
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from minicnn.model import Sequential

# float32 training, 20 steps, different summation orders: the parameters agree to this
CLOSE = dict(rtol=2e-3, atol=2e-4)


def small_model(seed=0, dropout=0.0, optimizer="adam", noise_shape=None):
    B.set_seed(seed)
    layers = [Conv2D(8, 3, padding="same", activation="relu", input_shape=(16, 16, 3)), MaxPooling2D(2),
              Conv2D(16, 3, padding="same", activation="relu"), MaxPooling2D(2)]
    if noise_shape:                                    # one mask value per image and channel, broadcast
        layers.append(Dropout(dropout, noise_shape=noise_shape, seed=5))
    layers.append(Flatten())
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


def _on_both(backend, train):
    """train() on the backend under test, then on the fast CPU: the two models."""
    model = train()
    with backend.fast_cpu():
        oracle = train()
    return model, oracle


def _assert_same_parameters(model, oracle):
    for a, b in zip(model.get_weights(), oracle.get_weights()):
        np.testing.assert_allclose(a, b, **CLOSE)


@pytest.mark.backends("reference", "gpu")
def test_training_matches_the_fast_cpu(backend):
    """Same initial weights, same batches: the parameters after 2 epochs of SGD (graphed steps on
    the GPU) agree with the fast CPU's to float32 rounding."""
    x, y, _ = toy_data(320)

    def train():
        model = small_model(optimizer="sgd")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        return model
    _assert_same_parameters(*_on_both(backend, train))


@pytest.mark.backends("reference", "gpu")
def test_training_with_lookahead_and_lr_multipliers_matches_the_fast_cpu(backend):
    """Lookahead (on the GPU synced by the trainer between graph replays) and per-variable learning
    rates (in the GPU's one-launch kernel) give the fast CPU's parameters; the optimizer runs on the
    device exactly on the GPU."""
    from minicnn import optimizers
    x, y, _ = toy_data(320)

    def train():
        model = small_model(optimizer=optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01,
                                                     lookahead_steps=3, lookahead_rate=0.6,
                                                     lr_multipliers={"*/b": 8.0}))
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)              # 20 updates, 6 syncs
        assert model.optimizer._on_device() == (B.name == "gpu")
        return model
    _assert_same_parameters(*_on_both(backend, train))


@pytest.mark.backends("reference", "gpu")
def test_freezing_a_variable_mid_training_matches_the_fast_cpu(backend):
    """Optimizer.freeze from a callback stops the variable's updates from the next step (on the GPU
    by rewriting the device factor table a captured step reads): the bias trained in epoch 0 stays
    put afterwards, and the parameters equal the fast CPU's."""
    from minicnn.callbacks import FreezeAfter, LambdaCallback
    x, y, _ = toy_data(320)
    snapshots = {}

    def train(label):
        model = small_model(optimizer="sgd")
        keep = LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.__setitem__(
            (label, epoch), B.to_host(model.layers[0].params["b"]).copy()))
        model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[FreezeAfter("conv2d/b", 1), keep])
        assert model.optimizer._on_device() == (B.name == "gpu")
        return model
    model = train("here")
    assert snapshots["here", 0].any()                               # trained in epoch 0 (from zeros)
    np.testing.assert_array_equal(snapshots["here", 0], snapshots["here", 2])
    with backend.fast_cpu():
        oracle = train("oracle")
    _assert_same_parameters(model, oracle)


@pytest.mark.backends("reference", "gpu")
def test_epoch_augmentation_matches_the_fast_cpu(backend):
    """fit(augment=FlipTranslate) (augmented where the data lives, graphed steps on the GPU) lands on
    the fast CPU's parameters: the same flips and crops, keyed by the epoch; the augmentation of a
    device array equals that of the host array."""
    from minicnn import augment
    x, y, _ = toy_data(320)

    def train():
        model = small_model(optimizer="sgd")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, augment=augment.FlipTranslate(2, "alternating"))
        return model
    _assert_same_parameters(*_on_both(backend, train))
    xu = (x * 255).astype(np.uint8)
    aug = augment.FlipTranslate(2, "random", seed=4, chunk=100)
    here = B.to_host(aug(B.to_device(xu), 1))
    with backend.fast_cpu():
        np.testing.assert_array_equal(here, aug(xu, 1))


@pytest.mark.backends("reference", "gpu")
@pytest.mark.parametrize("noise_shape", [None, (None, 1, 1, 16)])
def test_dropout_training_repeats_with_the_seed_and_matches_the_fast_cpu(backend, noise_shape):
    """Training with Dropout draws a new mask every step (the counter reaches 20 after 20 steps, on
    the GPU advanced by the graph replays), repeats bit for bit with the same seed, and uses the
    fast CPU's masks (the same parameters). With noise_shape too: its counter lives where the
    backend computes (it was read with .get() inside the captured GPU step before)."""
    x, y, _ = toy_data(320)

    def train():
        model = small_model(dropout=0.5, optimizer="sgd", noise_shape=noise_shape)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)                  # 20 steps, 18 of them replays
        for dropout in [layer for layer in model.layers if isinstance(layer, Dropout)]:
            assert dropout.draws == 20
        return model
    first, oracle = _on_both(backend, train)
    again = train()
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    _assert_same_parameters(first, oracle)


def test_uint8_data_and_sparse_labels(backend):
    """uint8 images (warned about as unscaled) with integer labels train to a finite loss, and
    predict gives probabilities, on every backend."""
    x, _, labels = toy_data(200)
    xu = (x * 255).astype(np.uint8)
    model = small_model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    with pytest.warns(UserWarning, match="unscaled"):
        history = model.fit(xu, labels, batch_size=50, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    out = model.predict(xu[:7].astype(np.float32), batch_size=3)
    assert out.shape == (7, 10) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


@pytest.mark.backends("reference", "gpu")
def test_functional_model_training_matches_the_fast_cpu(backend):
    """A functional Model (a fork, Add, Concatenate and a Dense called twice) trains to the fast
    CPU's parameters: on the GPU its forward and backward are captured in the CUDA graph."""
    from minicnn import Input, Model
    from minicnn.layers import Add, Concatenate
    x, y, _ = toy_data(192)

    def train():
        B.set_seed(0)
        inputs = Input(shape=(16, 16, 3))
        a = Conv2D(8, 3, padding="same", activation="relu")(inputs)
        b = Conv2D(8, 1, activation="tanh")(inputs)
        h = MaxPooling2D(4)(Concatenate()([Add()([a, b]), b]))
        shared = Dense(16, activation="relu")
        left, right = shared(Flatten()(h)), shared(Flatten()(Conv2D(16, 1)(h)))
        model = Model(inputs, Dense(10, activation="softmax")(Add()([left, right])))
        model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
        model.seed = 3
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        return model
    _assert_same_parameters(*_on_both(backend, train))
