"""Optimizers: several steps against Keras's update rules worked out by hand in float64."""
import math

import numpy as np
import pytest

from minicnn import optimizers
from minicnn.constraints import MaxNorm


def _run(opt, w0, grads):
    w = w0.copy()
    for g in grads:
        opt.apply([("layer/W", w, g, None)])
    return w


@pytest.fixture
def data(rng):
    return rng.standard_normal((3, 4)), [rng.standard_normal((3, 4)) for _ in range(5)]


def lr_at(lr, decay, t):
    return lr / (1 + decay * t)


@pytest.mark.parametrize("momentum,nesterov,decay", [(0, False, 0), (0.9, False, 0), (0.9, True, 0), (0.9, False, 0.1)])
def test_sgd(data, momentum, nesterov, decay):
    w0, grads = data
    w, m = w0.copy(), np.zeros_like(w0)
    for t, g in enumerate(grads):
        lr = lr_at(0.1, decay, t)
        if momentum:
            m = momentum * m - lr * g
            w = w + (momentum * m - lr * g if nesterov else m)
        else:
            w = w - lr * g
    got = _run(optimizers.SGD(lr=0.1, momentum=momentum, nesterov=nesterov, decay=decay), w0, grads)
    np.testing.assert_allclose(got, w, rtol=1e-12)


@pytest.mark.parametrize("momentum,centered,decay", [(0, False, 0), (0.5, False, 0), (0, True, 0), (0, False, 1e-2)])
def test_rmsprop(data, momentum, centered, decay):
    w0, grads = data
    w, v, a, mom = w0.copy(), np.zeros_like(w0), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads):
        lr = lr_at(5e-3, decay, t)
        v = 0.9 * v + 0.1 * g * g
        denom = v
        if centered:
            a = 0.9 * a + 0.1 * g
            denom = v - a * a
        step = lr * g / np.sqrt(denom + 1e-7)                     # eps inside the sqrt (Keras 3)
        if momentum:
            mom = momentum * mom + step
            w = w - mom
        else:
            w = w - step
    got = _run(optimizers.RMSprop(learning_rate=5e-3, momentum=momentum, centered=centered, decay=decay), w0, grads)
    np.testing.assert_allclose(got, w, rtol=1e-12)


@pytest.mark.parametrize("amsgrad,decay", [(False, 0), (True, 0), (False, 0.05)])
def test_adam(data, amsgrad, decay):
    w0, grads = data
    w, m, v, vhat = w0.copy(), np.zeros_like(w0), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads):
        lr = lr_at(1e-2, decay, t)
        m = m + (g - m) * 0.1
        v = v + (g * g - v) * 0.001
        vhat = np.maximum(vhat, v)
        alpha = lr * math.sqrt(1 - 0.999 ** (t + 1)) / (1 - 0.9 ** (t + 1))
        w = w - alpha * m / (np.sqrt(vhat if amsgrad else v) + 1e-7)   # eps-hat, not the paper's eps
    got = _run(optimizers.Adam(learning_rate=1e-2, amsgrad=amsgrad, decay=decay), w0, grads)
    np.testing.assert_allclose(got, w, rtol=1e-12)


def test_defaults_and_string_names():
    assert optimizers.get("sgd").learning_rate == 0.01
    assert optimizers.get("rmsprop").learning_rate == 0.001 and optimizers.get("rmsprop").rho == 0.9
    adam = optimizers.get("adam")
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get("adamw2")


def test_legacy_decay_is_inverse_time_per_batch():
    opt = optimizers.SGD(lr=0.1, decay=0.5)
    sizes = []
    for _ in range(3):
        sizes.append(opt.current_learning_rate())
        opt.iterations += 1
    np.testing.assert_allclose(sizes, [0.1, 0.1 / 1.5, 0.05])


def test_max_norm_applied_after_update(rng):
    w = rng.standard_normal((20, 4)) * 5
    opt = optimizers.SGD(0.0001)
    opt.apply([("d/W", w, np.zeros_like(w), MaxNorm(3))])
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), 3 * np.ones(4) * (1 - 1e-7 / 3), rtol=1e-6)


def test_updates_are_in_place(rng):
    w = rng.standard_normal(5)
    before = w.ctypes.data
    opt = optimizers.Adam()
    opt.apply([("x/W", w, np.ones(5), None)])
    slot = opt.slots["x/W"]["m"].ctypes.data
    opt.apply([("x/W", w, np.ones(5), None)])
    assert w.ctypes.data == before and opt.iterations == 2
    assert opt.slots["x/W"]["m"].ctypes.data == slot


def test_bad_learning_rate():
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate=-1)


@pytest.mark.parametrize("make", [lambda: optimizers.SGD(0.1, weight_decay=0.2),
                                  lambda: optimizers.Adam(0.1, weight_decay=0.2),
                                  lambda: optimizers.RMSprop(0.1, weight_decay=0.2)])
def test_decoupled_weight_decay_shrinks_weights_by_lr_times_wd(make):
    """With a zero gradient only the decay acts: w <- w (1 - lr wd) per step, for every optimizer."""
    opt = make()
    w = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    g = np.zeros_like(w)
    for _ in range(3):
        opt.apply([("w", w, g, None)])
    np.testing.assert_allclose(w, np.array([1.0, -2.0, 0.5]) * (1 - 0.1 * 0.2) ** 3, rtol=1e-6)
    assert optimizers.deserialize(optimizers.serialize(opt)).weight_decay == pytest.approx(0.2)


def test_weight_decay_must_be_non_negative():
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.SGD(0.1, weight_decay=-1)


def test_piecewise_linear_schedule():
    lr = optimizers.PiecewiseLinear([0, 10, 30], [0.0, 1.0, 0.5])
    assert [lr(t) for t in (-5, 0, 5, 10, 20, 30, 99)] == pytest.approx([0, 0, 0.5, 1.0, 0.75, 0.5, 0.5])
    opt = optimizers.SGD(lr)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert again.learning_rate(20) == pytest.approx(0.75)
    for bad in (([0, 10], [1.0]), ([5, 5], [1.0, 2.0]), ([0, 1], [1.0, -1.0])):
        with pytest.raises(ValueError):
            optimizers.PiecewiseLinear(*bad)
    w, g = np.ones(2, np.float32), np.ones(2, np.float32)
    opt = optimizers.SGD(optimizers.PiecewiseLinear([0, 2], [0.0, 1.0]))
    for _ in range(3):                                   # lr 0, 0.5, 1.0 at steps 0, 1, 2
        opt.apply([("w", w, g, None)])
    np.testing.assert_allclose(w, 1 - 1.5)


def test_weight_moving_average_formula():
    """a = w after the first step, then a = m a + (1 - m) w; finalize writes a into w."""
    opt = optimizers.SGD(1.0, use_ema=True, ema_momentum=0.5)
    w, g = np.zeros(1, np.float32), np.ones(1, np.float32)
    seen = []
    for _ in range(3):
        opt.apply([("w", w, g, None)])
        seen.append(float(w[0]))
    assert seen == [-1, -2, -3]
    avg = seen[0]
    for v in seen[1:]:
        avg = 0.5 * avg + 0.5 * v
    assert float(opt.slots["w"]["average"][0]) == pytest.approx(avg)
    opt.finalize_variable_values([w], ["w"])
    assert float(w[0]) == pytest.approx(avg)
    assert optimizers.deserialize(optimizers.serialize(opt)).use_ema
    with pytest.raises(ValueError, match="ema_momentum"):
        optimizers.Adam(use_ema=True, ema_momentum=2)


def test_lr_multipliers_per_variable():
    opt = optimizers.SGD(0.1, lr_multipliers={"*/b": 10.0, "dense/*": 0.0})
    w, b, d = (np.zeros(2, np.float32) for _ in range(3))
    g = np.ones(2, np.float32)
    opt.apply([("conv2d/W", w, g, None), ("conv2d/b", b, g, None), ("dense/W", d, g, None)])
    np.testing.assert_allclose(w, -0.1)
    np.testing.assert_allclose(b, -1.0)
    np.testing.assert_allclose(d, 0.0)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert again.lr_multiplier("dense_1/b") == 10.0 and again.lr_multiplier("x/W") == 1.0
    with pytest.raises(ValueError, match="lr_multipliers"):
        optimizers.SGD(lr_multipliers={"*": -1})


def test_lookahead_formula_and_final_weights():
    """Every k-th update: s += r (w - s), w = s (r from a schedule of the update count); fit's
    end writes the slow weights into the model."""
    rate = optimizers.PiecewiseLinear([0, 4], [1.0, 0.5])        # r(2) = 0.75, r(4) = 0.5
    opt = optimizers.SGD(1.0, lookahead_steps=2, lookahead_rate=rate)
    w, g = np.zeros(1), np.ones(1)
    seen = []
    for step in range(1, 6):
        opt.apply([("w", w, g, None)])
        seen.append(float(w[0]))
    # w: -1, then -2 synced with r=0.75 -> s = -1.5 = w, -2.5, -3.5 synced r=0.5 -> s = -2.5 = w, -3.5
    assert seen == pytest.approx([-1.0, -1.5, -2.5, -2.5, -3.5])
    assert float(opt.slots["w"]["slow"][0]) == pytest.approx(-2.5)
    opt.finalize_variable_values([w], ["w"])
    assert float(w[0]) == pytest.approx(-2.5)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert again.lookahead_steps == 2 and again.lookahead_rate(4) == pytest.approx(0.5)
    for bad in ({"lookahead_steps": 0}, {"lookahead_steps": 2, "lookahead_rate": 1.5},
                {"lookahead_steps": 2, "use_ema": True}):
        with pytest.raises(ValueError, match="lookahead|use_ema"):
            optimizers.SGD(**bad)


def test_lookahead_in_fit_ends_on_the_slow_weights():
    """After fit, the weights are the slow copies, and training with Lookahead still learns."""
    from minicnn.layers import Dense
    from minicnn.model import Sequential
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(x[:, 0] > 0).astype(int)]
    model = Sequential([Dense(2, activation="softmax", input_shape=(4,))])
    model.compile(optimizers.SGD(0.5, lookahead_steps=3, lookahead_rate=0.5), "categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0)      # 20 updates: not a multiple of 3
    slots = model.optimizer.slots
    for path, layer, key in model.variables():
        np.testing.assert_array_equal(layer.params[key], slots[path]["slow"])
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0)[1] > 0.9


def test_lookahead_state_syncs_the_tracked_statistics():
    """lookahead_state=True: a tracked state array gets the weights' sync (slow copy taken when it
    is tracked) and ends on its slow copy; without the flag, tracking is a no-op."""
    opt = optimizers.SGD(1.0, lookahead_steps=2, lookahead_rate=0.5, lookahead_state=True)
    m, w, g = np.zeros(1), np.zeros(1), np.zeros(1)
    opt.track_state([("batch_normalization/moving_mean", m)])
    seen = []
    for step in range(1, 6):
        m += 1                                   # what a training forward pass does to the statistics
        opt.apply([("w", w, g, None)])
        seen.append(float(m[0]))
    # m: 1, 2 -> s = 0 + 0.5 (2 - 0) = 1 = m, 2, 3 -> s = 1 + 0.5 (3 - 1) = 2 = m, 3
    assert seen == pytest.approx([1.0, 1.0, 2.0, 2.0, 3.0])
    opt.finalize_variable_values([w], ["w"])
    assert float(m[0]) == pytest.approx(2.0)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert again.lookahead_state and not optimizers.SGD(lookahead_steps=2).lookahead_state
    plain = optimizers.SGD(1.0, lookahead_steps=2, lookahead_rate=0.5)
    plain.track_state([("batch_normalization/moving_mean", m)])
    for _ in range(2):
        m += 1
        plain.apply([("w", w, g, None)])
    assert float(m[0]) == pytest.approx(4.0) and "batch_normalization/moving_mean" not in plain.slots
    with pytest.raises(ValueError, match="lookahead_state=True needs lookahead_steps"):
        optimizers.SGD(lookahead_state=True)


def test_lookahead_state_in_fit_and_saved_models(tmp_path):
    """In fit, BatchNormalization's moving statistics end on their slow copies (saved with the model
    and restored by load_model); without lookahead_state they end where the last batches put them."""
    from minicnn import load_model
    from minicnn.layers import BatchNormalization, Dense
    from minicnn.model import Sequential
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 4)) * 3 + 1).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(x[:, 0] > 1).astype(int)]
    state = {}
    for flag in (True, False):
        model = Sequential([Dense(8, input_shape=(4,)), BatchNormalization(momentum=0.5), Dense(2, activation="softmax")])
        model.compile(optimizers.SGD(0.1, lookahead_steps=3, lookahead_rate=0.5, lookahead_state=flag),
                      "categorical_crossentropy")
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False)      # 12 updates
        state[flag] = {k: np.array(v) for k, v in model.state.items()}
        if flag:
            slots = model.optimizer.slots
            for path, value in model.state.items():
                np.testing.assert_array_equal(value, slots[path]["slow"])
            model.forward(x * 2, training=True)                    # the statistics move on; their slow copies stay
            model.save(tmp_path / "m.npz")
            again = load_model(tmp_path / "m.npz")
            for path, value in model.state.items():
                np.testing.assert_array_equal(again.optimizer.slots[path]["slow"], slots[path]["slow"])
                assert not np.allclose(again.optimizer.slots[path]["slow"], value)
    for path in state[True]:
        assert not np.allclose(state[True][path], state[False][path])


def test_exclude_from_weight_decay():
    """Keras's method: matched variables (regex on the path, or the arrays given) get no decay."""
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    w, b, beta = (np.ones(2) for _ in range(3))
    opt.exclude_from_weight_decay(var_list=[b], var_names=["normalization.*/beta"])
    zero = np.zeros(2)
    opt.apply([("conv2d/W", w, zero, None), ("conv2d/b", b, zero, None), ("batch_normalization/beta", beta, zero, None)])
    np.testing.assert_allclose(w, 1 - 0.1 * 0.5)
    np.testing.assert_allclose(b, 1.0)
    np.testing.assert_allclose(beta, 1.0)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert not again.decays("batch_normalization_3/beta", np.ones(1)) and again.decays("dense/W", np.ones(1))
    with pytest.raises(RuntimeError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["b"])


def test_lr_multipliers_do_not_scale_the_weight_decay():
    """w -= base_lr * wd * w for every variable, whatever its multiplier; the update uses lr * factor."""
    opt = optimizers.SGD(0.1, weight_decay=0.5, lr_multipliers={"fast": 10.0})
    slow, fast = np.ones(1), np.ones(1)
    g = np.ones(1)
    opt.apply([("slow", slow, g, None), ("fast", fast, g, None)])
    np.testing.assert_allclose(slow, 1 - 0.1 * 0.5 - 0.1)
    np.testing.assert_allclose(fast, 1 - 0.1 * 0.5 - 1.0)


def test_freeze_stops_updates_and_decay_from_the_next_step():
    opt = optimizers.SGD(0.1, momentum=0.9, weight_decay=0.5)
    a, b = np.ones(1), np.ones(1)
    g = np.ones(1)
    opt.apply([("conv2d/b", a, g, None), ("conv2d/W", b, g, None)])
    frozen_at = a.copy()
    opt.freeze("conv2d/b")
    for _ in range(3):
        opt.apply([("conv2d/b", a, g, None), ("conv2d/W", b, g, None)])
    np.testing.assert_array_equal(a, frozen_at)             # momentum update is lr * ... = 0 too
    assert b[0] < frozen_at[0] - 0.3
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert again.frozen == ["conv2d/b"] and again.lr_multiplier("conv2d/b") == 0 and not again.decays("conv2d/b", g)
    with pytest.raises(ValueError, match="variable-path pattern"):
        opt.freeze(3)


# ---- every backend: the optimizer's update of several variables at once (one launch on the GPU) ----
def _excluding(opt, names):
    opt.exclude_from_weight_decay(var_names=names)
    return opt


# name: (the optimizer, the rule worked by hand: lr(t), multipliers, weight decay and its exclusions)
UPDATE_CASES = {
    "adam": (lambda: optimizers.Adam(1e-2), dict(rule="adam")),
    "rmsprop": (lambda: optimizers.RMSprop(1e-2, decay=0.1), dict(rule="rmsprop", lr=lambda t: 1e-2 / (1 + 0.1 * t))),
    "sgd": (lambda: optimizers.SGD(0.1, momentum=0.9), dict(rule="sgd", momentum=0.9)),
    "sgd_nesterov": (lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                     dict(rule="sgd", momentum=0.9, nesterov=True)),
    "sgd_plain": (lambda: optimizers.SGD(optimizers.ExponentialDecay(0.1, 2, 0.5)),
                  dict(rule="sgd", lr=lambda t: 0.1 * 0.5 ** (t / 2))),
    "adam_wd": (lambda: optimizers.Adam(1e-2, weight_decay=0.1), dict(rule="adam", wd=0.1)),
    "sgd_wd": (lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
               dict(rule="sgd", momentum=0.9, nesterov=True, wd=0.05)),
    "sgd_mult": (lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.05,
                                        lr_multipliers={"w1": 64.0, "w2": 0.0}),
                 dict(rule="sgd", momentum=0.9, nesterov=True, wd=0.05, mult={"w1": 64.0, "w2": 0.0})),
    "adam_mult": (lambda: optimizers.Adam(1e-2, lr_multipliers={"w0": 3.0}), dict(rule="adam", mult={"w0": 3.0})),
    "rmsprop_mult": (lambda: optimizers.RMSprop(1e-2, lr_multipliers={"w2": 0.5}),
                     dict(rule="rmsprop", mult={"w2": 0.5})),
    "sgd_no_decay": (lambda: _excluding(optimizers.SGD(0.1, momentum=0.9, weight_decay=0.1, lr_multipliers={"w0": 4.0}),
                                        ["w0", "w2"]),
                     dict(rule="sgd", momentum=0.9, wd=0.1, mult={"w0": 4.0}, no_decay=("w0", "w2"))),
}


def _by_hand(case, w0, steps):
    """The module docstring's rules in float64: decoupled decay w -= lr(t) wd w (not for the excluded
    variables), then the rule's update with lr(t) times the variable's multiplier."""
    rule, lr = case["rule"], case.get("lr", lambda t: 0.1 if case["rule"] == "sgd" else 1e-2)
    mu, nesterov = case.get("momentum", 0.0), case.get("nesterov", False)
    ws = [w.astype(np.float64) for w in w0]
    m, v = [np.zeros_like(w) for w in ws], [np.zeros_like(w) for w in ws]
    for t, grads in enumerate(steps):
        for i, (w, g) in enumerate(zip(ws, grads)):
            path, g = f"w{i}", g.astype(np.float64)
            base = lr(t)
            step_lr = base * case.get("mult", {}).get(path, 1.0)
            if case.get("wd") and path not in case.get("no_decay", ()):
                w -= base * case["wd"] * w
            if rule == "sgd" and mu:
                m[i] = mu * m[i] - step_lr * g
                w += mu * m[i] - step_lr * g if nesterov else m[i]
            elif rule == "sgd":
                w -= step_lr * g
            elif rule == "rmsprop":
                v[i] = 0.9 * v[i] + 0.1 * g * g
                w -= step_lr * g / np.sqrt(v[i] + 1e-7)
            else:
                m[i] += (g - m[i]) * 0.1
                v[i] += (g * g - v[i]) * 0.001
                alpha = step_lr * math.sqrt(1 - 0.999 ** (t + 1)) / (1 - 0.9 ** (t + 1))
                w -= alpha * m[i] / (np.sqrt(v[i]) + 1e-7)
    return ws


@pytest.mark.parametrize("name", sorted(UPDATE_CASES))
def test_updates_of_several_variables_follow_the_rules(backend, name, rng):
    """Three variables updated together four times (float32; gradients written in place, as layers
    do) land on the hand-worked float64 values: schedules, multipliers, weight decay and its
    exclusions included. On the GPU one launch updates them all, reading t and lr on the device."""
    make, case = UPDATE_CASES[name]
    shapes = [(5, 7), (300,), (3, 3, 2, 4)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    steps = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    opt, ws = make(), [backend.to_device(w.copy()) for w in w0]
    gs = [backend.to_device(np.zeros(s, np.float32)) for s in shapes]
    for grads in steps:
        for g, value in zip(gs, grads):
            g[...] = backend.to_device(value)
        opt.apply([(f"w{i}", w, g, None) for i, (w, g) in enumerate(zip(ws, gs))])
    assert opt._on_device() == (backend.kind == "gpu")          # the GPU ran the one-launch kernel
    assert opt.iterations == 4
    for got, want in zip(ws, _by_hand(case, w0, steps)):
        np.testing.assert_allclose(backend.to_host(got), want, rtol=1e-5, atol=1e-6)


def test_lookahead_sync_of_several_variables_follows_the_formula(backend, rng):
    """SGD with momentum and Lookahead (k = 2, r = 0.3) over three variables: after updates 2 and 4
    the slow copies move s += r (w - s) and the weights jump to them (one launch on the GPU)."""
    shapes = [(5, 7), (300,), (3, 3, 2, 4)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    opt = optimizers.SGD(0.1, momentum=0.9, lookahead_steps=2, lookahead_rate=0.3)
    ws, gs = [backend.to_device(w.copy()) for w in w0], [backend.to_device(g) for g in grads]
    for _ in range(5):
        opt.apply([(f"w{i}", w, g, None) for i, (w, g) in enumerate(zip(ws, gs))])
    for i, (w, g) in enumerate(zip(w0, grads)):
        w, g = w.astype(np.float64), g.astype(np.float64)
        slow, m = w.copy(), np.zeros_like(w)
        for n in range(1, 6):
            m = 0.9 * m - 0.1 * g
            w = w + m
            if n % 2 == 0:
                slow += 0.3 * (w - slow)
                w = slow.copy()
        np.testing.assert_allclose(backend.to_host(ws[i]), w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(backend.to_host(opt.slots[f"w{i}"]["slow"]), slow, rtol=1e-5, atol=1e-6)


def test_setting_the_learning_rate_reaches_the_device_table_and_a_schedule_stays():
    """optimizer.learning_rate = x takes effect at the next update everywhere: the device table the
    GPU's kernels read (made here on the CPU by prepare_device) is rewritten in place. An optimizer
    made with a schedule refuses, as Keras 3's does; bad values are refused."""
    from minicnn import optimizers
    opt = optimizers.SGD(0.1)
    opt.prepare_device(4)
    table = opt._dev["lr_table"]
    opt.learning_rate = 0.025
    assert opt._dev["lr_table"] is table and np.all(table == 0.025) and opt.current_learning_rate() == 0.025
    with pytest.raises(ValueError, match="finite number"):
        opt.learning_rate = float("nan")
    scheduled = optimizers.SGD(optimizers.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="not settable"):
        scheduled.learning_rate = 0.01
