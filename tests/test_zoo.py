"""The tutorial zoo: parameter counts, compile settings and protocols, one training step each."""
import numpy as np
import pytest

from minicnn import optimizers, zoo
from minicnn.constraints import MaxNorm
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
    assert set(zoo.MODELS) == set(EXPECTED)


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


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.get("resnet152")
