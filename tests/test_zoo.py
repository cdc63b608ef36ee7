"""The tutorial zoo: parameter counts, compile settings and protocols, one training step each."""
import numpy as np
import pytest

from minicnn import optimizers, zoo
from minicnn.constraints import MaxNorm
from minicnn.layers import Conv2D
from minicnn.utils import to_categorical

EXPECTED = {  # name: (params, optimizer class, lr, legacy decay, batch size, epochs, validation, checkpoint)
    "tutorial000": (231_338, optimizers.Adam, 1e-3, 0, 32, 15, "first5000", True),
    "tutorial001_model_1": (181_162, optimizers.RMSprop, 5e-4, 1e-6, 32, 15, "test", False),
    "tutorial001_model_2": (252_378, optimizers.RMSprop, 1e-4, 1e-6, 32, 5, "test", False),
    "tutorial002": (528_054, optimizers.RMSprop, 1e-3, 0, 32, 100, "first5000", True),
    "tutorial003_small": (181_334, optimizers.Adam, 1e-3, 0, 32, 10, "test", False),
    "tutorial003_larger": (1_628_214, optimizers.Adam, 1e-3, 0, 32, 10, "test", False),
    "tutorial003_lenet5": (61_610, optimizers.SGD, 1e-2, 0, 128, 10, "test", False),
    "tutorial003_lenet5_bn": (61_730, optimizers.SGD, 1e-2, 0, 128, 10, "test", False),
    "tutorial004": (2_915_114, optimizers.SGD, 1e-2, 0.01 / 25, 32, 3, "test", False),
}


def test_every_model_is_listed():
    assert set(zoo.MODELS) == set(EXPECTED) | {"fast_cifar10"}


def test_fast_recipe_settings():
    """fast_cifar10: the airbench-style network and its training recipe (zoo.py explains each number)."""
    entry = zoo.get("fast_cifar10")
    model = entry.build()
    assert model.count_params() == entry.params == 1_973_944
    assert (entry.batch_size, entry.epochs, entry.tta) == (1024, 10, True)
    assert model.loss.label_smoothing == 0.2 and model._fused
    opt = model.optimizer
    assert type(opt) is optimizers.SGD and opt.nesterov and opt.momentum == 0.85 and opt.lookahead_steps == 5 and opt.lookahead_state
    steps = 10 * 49
    assert opt.learning_rate(0) == pytest.approx(0.3) and opt.learning_rate(round(0.23 * steps)) == pytest.approx(1.5)
    assert opt.learning_rate(steps) == pytest.approx(0.105)
    assert opt.lr_multiplier("batch_normalization_3/beta") == 64 and opt.lr_multiplier("conv2d/W") == 0
    assert opt.lr_multiplier("conv2d_1/W") == 1
    assert not opt.decays("conv2d/W", None) and opt.decays("conv2d_4/W", None) and opt.decays("conv2d/b", None)
    assert [type(layer).__name__ for layer in model.layers[-4:]] == ["GlobalMaxPooling2D", "Dense", "Rescaling",
                                                                     "Activation"]
    freeze, = entry.callbacks()
    assert (freeze.pattern, freeze.epochs) == ("conv2d/b", 3)
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(norms) == 6 and all(not n.scale and n.momentum == 0.6 for n in norms)


def test_fast_recipe_whitening_layer(rng):
    """prepare_fast: the first layer whitens 2x2 patches of the training images and centres them."""
    entry = zoo.get("fast_cifar10")
    model = entry.build()
    x = rng.random((300, 32, 32, 3)).astype(np.float32)
    x[..., 1] = 0.7 * x[..., 0] + 0.3 * x[..., 1]              # correlated channels
    entry.prepare(model, x)
    linear = Conv2D(24, 2, activation=None)                       # the first layer before its GELU
    linear.build((32, 32, 3))
    linear.set_weights(model.layers[0].get_weights())
    out = linear.forward(x)
    flat = out.reshape(-1, out.shape[-1])
    assert np.abs(flat.mean(axis=0)).max() < 0.05                 # centred by the bias
    cov = np.cov(flat[:, :12].T)
    np.testing.assert_allclose(cov, np.eye(12), atol=0.1)         # whitened (the 12 positive filters)
    np.testing.assert_allclose(flat[:, 12:], -flat[:, :12], atol=1e-5)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_params_and_compile_settings(name):
    params, opt_cls, lr, decay, batch, epochs, validation, checkpoint = EXPECTED[name]
    entry = zoo.get(name)
    model = entry.build()
    assert model.count_params() == params == entry.params
    opt = model.optimizer
    assert type(opt) is opt_cls
    if decay:
        assert isinstance(opt.learning_rate, optimizers.InverseTimeDecay)
        assert (opt.learning_rate.initial_learning_rate, opt.learning_rate.decay_rate) == (lr, decay)
    else:
        assert opt.learning_rate == lr
    assert (entry.batch_size, entry.epochs, entry.validation, entry.checkpoint) == (batch, epochs, validation, checkpoint)
    assert model.loss.name == "categorical_crossentropy" and model.metric_names == ["accuracy"]


def test_tutorial004_settings():
    model = zoo.get("tutorial004").build()
    assert model.optimizer.momentum == 0.9 and not model.optimizer.nesterov
    capped = [layer for layer in model.layers if isinstance(layer.__dict__.get("kernel_constraint"), MaxNorm)]
    assert len(capped) == 2 and all(layer.kernel_constraint.max_value == 3 for layer in capped)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_backward_step(name):
    entry = zoo.get(name)
    model = entry.build()
    rng = np.random.default_rng(0)
    x = rng.random((3,) + entry.input_shape).astype(np.float32)
    y = to_categorical([1, 4, 9], 10)
    before = [w.copy() for w in model.get_weights()]
    loss, acc = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0 <= acc <= 1
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert sum(changed) >= len(model.variables()) - 1          # (an all-zero-gradient bias may stay put)
    assert model.predict(x).shape == (3, 10)


def test_fit_steps_on_every_backend(backend):
    """tutorial000 trains two epochs where the backend computes (graphed steps on the GPU) to finite losses."""
    from test_backend_training import toy_data
    model = zoo.get("tutorial000").build()
    x, _, labels = toy_data(96)
    x32 = np.zeros((96, 32, 32, 3), np.float32)
    x32[:, :16, :16] = x
    history = model.fit(x32, to_categorical(labels, 10), batch_size=32, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.get("resnet152")
