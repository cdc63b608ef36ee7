"""Adadelta, Adagrad and Nadam: the rules (kernels.adadelta_update, adagrad_update, nadam_update) on
every backend against their formulas worked element by element in float64; the optimizers against
Keras 3 (skipped, visibly, without Keras); training, saving and loading; argument checks."""
import math
import os

import numpy as np
import pytest

import minicnn
from minicnn import optimizers

from test_model import small_model, toy_data


# ---- the formulas, one element at a time (Python floats: float64) -----------------------------------
def _mu(k, b1):
    """Nadam's momentum schedule (Keras 3: u_t = beta_1 (1 - 0.5 * 0.96^(iterations + 1)))."""
    return b1 * (1.0 - 0.5 * 0.96 ** k)


def _u_product(t, b1):
    """Keras's u_product as its update at step t leaves it: 1.0, times mu(k) at each step k = 1 .. t+1
    (below 1e-300, where 1 - u is 1 long since, minicnn takes it as 0)."""
    u = 1.0
    for k in range(1, t + 2):
        u = u * _mu(k, b1)
        u = 0.0 if u < 1e-300 else u
    return u


def _adadelta_element(w, g, a, d, lr, rho, eps, decay):
    w = w - w * decay
    a = rho * a + (1 - rho) * g * g
    delta = -math.sqrt(d + eps) * g / math.sqrt(a + eps)
    d = rho * d + (1 - rho) * delta * delta
    return w + lr * delta, a, d


def _adagrad_element(w, g, a, lr, eps, decay):
    w = w - w * decay
    a = a + g * g
    return w - lr * g / math.sqrt(a + eps), a


def _nadam_element(w, g, m, v, lr, t, b1, b2, eps, decay):
    w = w - w * decay
    u_t, u_t_1 = _mu(t + 1, b1), _mu(t + 2, b1)
    u_product_t = _u_product(t, b1)
    u_product_t_1 = u_product_t * u_t_1
    m = m + (g - m) * (1 - b1)
    v = v + (g * g - v) * (1 - b2)
    m_hat = u_t_1 * m / (1 - u_product_t_1) + (1 - u_t) * g / (1 - u_product_t)
    v_hat = v / (1 - b2 ** (t + 1))
    return w - lr * m_hat / (math.sqrt(v_hat) + eps), m, v


# name: (slot names in the rule's order, hyper-parameters)
RULES = {
    "adadelta": (("accumulated_grad", "accumulated_delta_var"), dict(lr=1.0, rho=0.95, epsilon=1e-7)),
    "adadelta_rho": (("accumulated_grad", "accumulated_delta_var"), dict(lr=0.5, rho=0.6, epsilon=1e-3)),
    "adagrad": (("accumulator",), dict(lr=0.1, epsilon=1e-7)),
    "adagrad_eps": (("accumulator",), dict(lr=0.05, epsilon=0.3)),
    "nadam": (("m", "v"), dict(lr=1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    "nadam_betas": (("m", "v"), dict(lr=3e-2, beta_1=0.5, beta_2=0.8, epsilon=1e-3)),
}


def _by_hand(name, w, g, slots, t, decay, h):
    """One step of rule `name` on flat float64 arrays, element by element; returns (w, slots)."""
    w, slots = w.copy(), {k: v.copy() for k, v in slots.items()}
    for i in range(w.size):
        if name.startswith("adadelta"):
            w[i], slots["accumulated_grad"][i], slots["accumulated_delta_var"][i] = _adadelta_element(
                w[i], g[i], slots["accumulated_grad"][i], slots["accumulated_delta_var"][i], h["lr"], h["rho"],
                h["epsilon"], decay)
        elif name.startswith("adagrad"):
            w[i], slots["accumulator"][i] = _adagrad_element(w[i], g[i], slots["accumulator"][i], h["lr"],
                                                             h["epsilon"], decay)
        else:
            w[i], slots["m"][i], slots["v"][i] = _nadam_element(w[i], g[i], slots["m"][i], slots["v"][i], h["lr"], t,
                                                                h["beta_1"], h["beta_2"], h["epsilon"], decay)
    return w, slots


def _call_rule(impl, name, w, g, slots, t, decay, h):
    if name.startswith("adadelta"):
        impl.adadelta_update(w, g, slots["accumulated_grad"], slots["accumulated_delta_var"], h["lr"], h["rho"],
                             h["epsilon"], decay)
    elif name.startswith("adagrad"):
        impl.adagrad_update(w, g, slots["accumulator"], h["lr"], h["epsilon"], decay)
    else:
        impl.nadam_update(w, g, slots["m"], slots["v"], h["lr"], t, h["beta_1"], h["beta_2"], h["epsilon"], decay,
                          _u_product(t, h["beta_1"]))


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("decay", [0.0, 1e-3])
@pytest.mark.parametrize("dtype,rtol,atol", [(np.float32, 2e-5, 2e-6), (np.float64, 1e-12, 1e-14)])
def test_rules_follow_their_formulas(backend, name, decay, dtype, rtol, atol, rng):
    """Each rule (one signature on every backend, decoupled weight decay first) equals its formula
    worked element by element in float64, over three steps (t = 0, 1, 2), weights and slots, from
    non-zero slots (Nadam's m of both signs); float64 arrays to rounding, float32 to its precision."""
    slot_names, h = RULES[name]
    w, g = rng.standard_normal((5, 7)), rng.standard_normal((3, 5, 7))
    slots = {k: (rng.standard_normal((5, 7)) if k == "m" else np.abs(rng.standard_normal((5, 7))) * 0.5)
             for k in slot_names}
    mine_w = backend.to_device(w.astype(dtype))
    mine = {k: backend.to_device(v.astype(dtype)) for k, v in slots.items()}
    want_w, want = w.astype(dtype).astype(np.float64).ravel(), {k: v.astype(dtype).astype(np.float64).ravel()
                                                                 for k, v in slots.items()}
    for t in range(3):
        gt = g[t].astype(dtype)
        _call_rule(backend.impl, name, mine_w, backend.to_device(gt), mine, t, decay, h)
        want_w, want = _by_hand(name, want_w, gt.astype(np.float64).ravel(), want, t, decay, h)
    assert mine_w.dtype == dtype
    np.testing.assert_allclose(backend.to_host(mine_w).ravel(), want_w, rtol=rtol, atol=atol)
    for k in slots:
        np.testing.assert_allclose(backend.to_host(mine[k]).ravel(), want[k], rtol=rtol, atol=atol)
    assert np.abs(want_w - w.ravel()).min() > 1e-5                  # every element moved: nothing trivial


def test_nadam_u_product_is_kerass_running_product():
    """u_product(t) = mu(1) ... mu(t+1), the same float64 number reached step by step, from scratch,
    or after the step count is set back; it underflows to 0 and stays there."""
    opt = optimizers.Nadam(beta_1=0.9)
    steps = [opt.u_product(t) for t in range(50)]
    assert steps[0] == pytest.approx(0.9 * (1 - 0.5 * 0.96)) and steps[2] == _u_product(2, 0.9)
    assert steps == [_u_product(t, 0.9) for t in range(50)]          # bit for bit: the same multiplications
    assert optimizers.Nadam(beta_1=0.9).u_product(49) == steps[49]
    assert opt.u_product(3) == steps[3]                                # set back: recomputed
    assert opt.u_product(20_000) == 0.0 and opt.u_product(20_001) == 0.0      # underflow: 0, not subnormals
    assert 0 < optimizers.Nadam(beta_1=0.9).u_product(5000) == _u_product(5000, 0.9) < 1e-200
    assert optimizers.Nadam(beta_1=0.0).u_product(5) == 0.0


# ---- the optimizers: several variables, every backend (eager on the GPU: no multi-tensor kernel) -----
OPTIMIZER_CASES = {
    "adadelta": (lambda: optimizers.Adadelta(1.0, rho=0.9, weight_decay=0.05), "adadelta",
                 dict(lr=1.0, rho=0.9, epsilon=1e-7), 0.05),
    "adagrad": (lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.2), "adagrad",
                dict(lr=0.1, epsilon=1e-7, initial=0.2), 0.0),
    "nadam": (lambda: optimizers.Nadam(1e-2, weight_decay=0.1), "nadam",
              dict(lr=1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-7), 0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CASES))
def test_optimizer_updates_several_variables(backend, name, rng):
    """Three float32 variables updated together four times by the optimizer land on the formulas
    worked in float64 (slots starting where Keras starts them: Adagrad's at its initial value, the
    others at 0; weight decay w -= lr wd w first)."""
    make, rule, h, wd = OPTIMIZER_CASES[name]
    shapes = [(5, 7), (30,), (3, 3, 2, 4)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    steps = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    opt, ws = make(), [backend.to_device(w.copy()) for w in w0]
    for grads in steps:
        opt.apply([(f"w{i}", w, backend.to_device(g), None) for i, (w, g) in enumerate(zip(ws, grads))])
    assert not opt.supports_device_step() and not opt._on_device() and opt.iterations == 4
    for i, w in enumerate(w0):
        want_w = w.astype(np.float64).ravel()
        want = {k: np.full(w.size, h.get("initial", 0.0)) for k in RULES[rule][0]}
        for t, grads in enumerate(steps):
            want_w, want = _by_hand(rule, want_w, grads[i].astype(np.float64).ravel(), want, t, h["lr"] * wd, h)
        np.testing.assert_allclose(backend.to_host(ws[i]).ravel(), want_w, rtol=1e-5, atol=1e-6)
        for k in want:
            np.testing.assert_allclose(backend.to_host(opt.slots[f"w{i}"][k]).ravel(), want[k], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("make", [lambda: optimizers.Adadelta(0.1, weight_decay=0.2),
                                  lambda: optimizers.Adagrad(0.1, weight_decay=0.2),
                                  lambda: optimizers.Nadam(0.1, weight_decay=0.2)])
def test_decoupled_weight_decay_alone(make):
    """With a zero gradient (and zero momentum) only the decay acts: w <- w (1 - lr wd) per step."""
    opt = make()
    w = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    for _ in range(3):
        opt.apply([("w", w, np.zeros_like(w), None)])
    np.testing.assert_allclose(w, np.array([1.0, -2.0, 0.5]) * (1 - 0.1 * 0.2) ** 3, rtol=1e-6)


def test_names_defaults_aliases_and_configs():
    """Keras 3's defaults; the string names and Keras 2 lowercase aliases; serialize/deserialize."""
    d, a, n = optimizers.get("adadelta"), optimizers.get("Adagrad"), optimizers.get("nadam")
    assert (type(d), d.learning_rate, d.rho, d.epsilon) == (optimizers.Adadelta, 0.001, 0.95, 1e-7)
    assert (type(a), a.learning_rate, a.initial_accumulator_value, a.epsilon) == (optimizers.Adagrad, 0.001, 0.1, 1e-7)
    assert (type(n), n.learning_rate, n.beta_1, n.beta_2, n.epsilon) == (optimizers.Nadam, 0.001, 0.9, 0.999, 1e-7)
    assert (optimizers.adadelta, optimizers.adagrad, optimizers.nadam) == (optimizers.Adadelta, optimizers.Adagrad,
                                                                           optimizers.Nadam)
    for opt in (optimizers.Adadelta(lr=0.5, decay=0.01, rho=0.8, epsilon=1e-6, weight_decay=0.1),
                optimizers.Adagrad(0.2, initial_accumulator_value=0.0, epsilon=1e-5, use_ema=True),
                optimizers.Nadam(optimizers.ExponentialDecay(0.01, 10, 0.5), beta_1=0.8, beta_2=0.99, epsilon=1e-8)):
        again = optimizers.deserialize(optimizers.serialize(opt))
        assert type(again) is type(opt) and again.get_config() == opt.get_config()
    assert optimizers.Adagrad().count_params() == 0                    # not built: nothing yet


BAD_ARGUMENTS = [
    (optimizers.Adadelta, dict(rho=1.0), "rho must be a number in \\[0, 1\\)"),
    (optimizers.Adadelta, dict(rho=-0.1), "rho"),
    (optimizers.Adadelta, dict(rho="0.9"), "rho"),
    (optimizers.Adadelta, dict(epsilon=0.0), "epsilon must be a finite number > 0"),
    (optimizers.Adadelta, dict(epsilon=float("nan")), "epsilon"),
    (optimizers.Adadelta, dict(learning_rate=0), "learning_rate"),
    (optimizers.Adagrad, dict(initial_accumulator_value=-0.1),
     "initial_accumulator_value must be a finite number >= 0"),
    (optimizers.Adagrad, dict(initial_accumulator_value=True), "initial_accumulator_value"),
    (optimizers.Adagrad, dict(epsilon=-1e-7), "epsilon"),
    (optimizers.Adagrad, dict(initial_accumulator_value=0.0, epsilon=0.0), "initial_accumulator_value > 0 or epsilon"),
    (optimizers.Adagrad, dict(weight_decay=-1), "weight_decay"),
    (optimizers.Nadam, dict(beta_1=1.0), "beta_1 must be a number in \\[0, 1\\)"),
    (optimizers.Nadam, dict(beta_2=-0.5), "beta_2"),
    (optimizers.Nadam, dict(beta_2=None), "beta_2"),
    (optimizers.Nadam, dict(epsilon=float("inf")), "epsilon"),
    (optimizers.Nadam, dict(learning_rate=-1e-3), "learning_rate"),
    (optimizers.SGD, dict(momentum="0.9"), "momentum must be a number in \\[0, 1\\], got '0.9'"),
    (optimizers.SGD, dict(momentum=None), "momentum must be a number in \\[0, 1\\], got None"),
    (optimizers.SGD, dict(decay="x"), "decay must be a finite number >= 0, got 'x'"),
    (optimizers.RMSprop, dict(momentum=2), "momentum must be a number in \\[0, 1\\], got 2"),
    (optimizers.RMSprop, dict(epsilon=-1.0), "epsilon must be a finite number >= 0"),
    (optimizers.RMSprop, dict(rho="0.9"), "rho must be a number in \\[0, 1\\)"),
    (optimizers.Adam, dict(beta_1="0.9"), "beta_1 must be a number in \\[0, 1\\), got '0.9'"),
    (optimizers.Adam, dict(epsilon="x"), "epsilon must be a finite number >= 0, got 'x'"),
    (lambda **k: optimizers.ExponentialDecay(**k), dict(initial_learning_rate=0.01, decay_steps=10, decay_rate=-0.5),
     "decay_rate must be a finite number > 0"),
    (lambda **k: optimizers.ExponentialDecay(**k), dict(initial_learning_rate=-0.01, decay_steps=10, decay_rate=0.5),
     "initial_learning_rate must be a finite number > 0, got -0.01"),
    (lambda **k: optimizers.InverseTimeDecay(**k), dict(initial_learning_rate=0.01, decay_steps=1, decay_rate=-2),
     "decay_rate must be a finite number >= 0 \\(lr never grows\\), got -2"),
    (lambda **k: optimizers.ExponentialDecay(**k), dict(initial_learning_rate=0.1, decay_steps="10", decay_rate=0.9),
     "decay_steps must be a finite number > 0, got '10'"),
]


@pytest.mark.parametrize("cls,kwargs,match", BAD_ARGUMENTS)
def test_bad_arguments_raise_clear_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_unknown_argument_is_a_type_error():
    with pytest.raises(TypeError, match="schedule_decay"):
        optimizers.Nadam(schedule_decay=0.004)           # Keras 2's argument, gone in Keras 3


# ---- training, saving, loading ---------------------------------------------------------------------
TRAINED = {"adadelta": lambda: optimizers.Adadelta(1.0),
           "adagrad": lambda: optimizers.Adagrad(0.05),
           "nadam": lambda: optimizers.Nadam(3e-3, weight_decay=0.01)}


@pytest.mark.parametrize("name", sorted(TRAINED))
def test_trains_and_resumes_identically_after_save_and_load(name, tmp_path):
    """A small CNN learns with each optimizer (the loss falls); saved and loaded after one epoch, it
    holds the same weights, slots and step count (and Nadam the same u_product, recomputed from the
    step count) and trains on exactly as the original does."""
    x, y, _ = toy_data(64)
    model = small_model(optimizer=TRAINED[name]())
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / f"{name}.minicnn"
    model.save(path)
    loaded = minicnn.load_model(path)
    opt, again = model.optimizer, loaded.optimizer
    assert type(again) is type(opt) and again.get_config() == opt.get_config() and again.iterations == 4
    assert again.count_params() == opt.count_params()
    for p in opt.slots:
        for k in opt.slots[p]:
            np.testing.assert_array_equal(again.slots[p][k], opt.slots[p][k])
    if name == "nadam":
        assert again._u_product == (0, 1.0)                        # nothing stored: recomputed when needed
        assert again.u_product(4) == opt.u_product(4) == _u_product(4, 0.9)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    more = model.fit(x, y, batch_size=16, epochs=6, initial_epoch=1, verbose=0)
    loaded.fit(x, y, batch_size=16, epochs=6, initial_epoch=1, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert more.history["loss"][-1] < history.history["loss"][0]


def test_adagrad_accumulators_start_at_their_initial_value():
    model = small_model(optimizer=optimizers.Adagrad(initial_accumulator_value=0.25))
    x, y, _ = toy_data(8)
    model.train_on_batch(x, y)
    for path, layer, k in model.variables():
        g = layer.grads[k]
        np.testing.assert_allclose(model.optimizer.slots[path]["accumulator"], 0.25 + g * g, rtol=1e-6)


# ---- Keras 3 parity ----------------------------------------------------------------------------------
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]'): "
                                                "Keras parity of Adadelta/Adagrad/Nadam skipped")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("parity tests compare with Keras's TensorFlow backend")
    if int(keras.__version__.split(".")[0]) < 3:
        pytest.skip("these optimizers follow Keras 3; installed Keras is " + keras.__version__)
    return keras


def _parity_model():
    from minicnn.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
    return minicnn.Sequential([Input(shape=(9, 9, 3)), Conv2D(4, 2, strides=2, padding="same", activation="relu"),
                               Conv2D(6, 3, padding="same", activation="tanh"), MaxPooling2D(2, padding="same"),
                               Flatten(), Dense(12, activation="relu"), Dense(10, activation="softmax")])


# name: (minicnn optimizer, Keras optimizer (keras -> instance))
PARITY = {
    "adadelta": (lambda: optimizers.Adadelta(1.0),
                 lambda k: k.optimizers.Adadelta(learning_rate=1.0)),
    "adadelta_rho_wd": (lambda: optimizers.Adadelta(0.5, rho=0.8, epsilon=1e-5, weight_decay=0.1),
                        lambda k: k.optimizers.Adadelta(learning_rate=0.5, rho=0.8, epsilon=1e-5, weight_decay=0.1)),
    "adagrad": (lambda: optimizers.Adagrad(0.05),
                lambda k: k.optimizers.Adagrad(learning_rate=0.05)),
    "adagrad_init_wd_decay": (lambda: optimizers.Adagrad(lr=0.05, decay=0.2, initial_accumulator_value=0.01,
                                                         weight_decay=0.2),
                              lambda k: k.optimizers.Adagrad(
                                  learning_rate=k.optimizers.schedules.InverseTimeDecay(0.05, 1, 0.2),
                                  initial_accumulator_value=0.01, weight_decay=0.2)),
    "nadam": (lambda: optimizers.Nadam(0.01),
              lambda k: k.optimizers.Nadam(learning_rate=0.01)),
    "nadam_betas_wd": (lambda: optimizers.Nadam(0.01, beta_1=0.7, beta_2=0.95, epsilon=1e-5, weight_decay=0.1),
                       lambda k: k.optimizers.Nadam(learning_rate=0.01, beta_1=0.7, beta_2=0.95, epsilon=1e-5,
                                                    weight_decay=0.1)),
}


@pytest.mark.parametrize("name", sorted(PARITY))
def test_three_steps_match_keras(name):
    """The same model, weights and batches: after three train_on_batch steps (the bias corrections,
    Nadam's momentum schedule, the schedule of legacy decay, weight decay), every weight, every slot
    and Nadam's u_product agree with Keras 3's; the optimizer's parameter count is Keras's."""
    keras = _keras()
    from minicnn import keras_io
    mine, theirs = PARITY[name]
    model = _parity_model()
    model.compile(optimizer=mine(), loss="categorical_crossentropy", metrics=["accuracy"])
    kmodel = keras_io.to_keras(model, compile=False)
    kopt = theirs(keras)
    kmodel.compile(optimizer=kopt, loss="categorical_crossentropy", metrics=["accuracy"])
    w0 = model.get_weights()
    rng = np.random.default_rng(3)
    x = rng.random((16, 9, 9, 3), dtype=np.float32)
    y = minicnn.utils.to_categorical(rng.integers(0, 10, 16), 10)
    for step in range(3):
        xb, yb = x[step * 5:step * 5 + 6], y[step * 5:step * 5 + 6]
        kmodel.train_on_batch(xb, yb)
        model.train_on_batch(xb, yb)
    moved = 0.0
    for w, kw, start in zip(model.get_weights(), kmodel.get_weights(), w0):
        np.testing.assert_allclose(w, kw, rtol=1e-5, atol=2e-6)
        moved = max(moved, float(np.abs(kw - start).max()))
    assert moved > 1e-3                                            # the steps are far above the tolerance
    opt = model.optimizer
    assert int(kopt.iterations.numpy()) == opt.iterations == 3
    kvars = {v.path: v.numpy() for v in kopt.variables}
    if not isinstance(opt.learning_rate, optimizers.LearningRateSchedule):     # (Keras: no lr variable then)
        assert opt.count_params() == sum(int(v.size) for v in kvars.values())
    keras_slot = {"accumulated_grad": "accumulated_grad", "accumulated_delta_var": "accumulated_delta_var",
                  "accumulator": "accumulator", "m": "momentum", "v": "velocity"}
    for (path, _, _), kvar in zip(model.variables(), kmodel.trainable_weights):
        for slot, value in opt.slots[path].items():
            kname = kvar.path.replace("/", "_") + "_" + keras_slot[slot]
            match = [v for p, v in kvars.items() if p.endswith("/" + kname)]
            assert len(match) == 1, (kname, sorted(kvars))
            np.testing.assert_allclose(value, match[0], rtol=1e-4, atol=1e-7)
    if name.startswith("nadam"):
        assert opt.u_product(opt.iterations - 1) == pytest.approx(float(kopt._u_product.numpy()), rel=1e-6)
