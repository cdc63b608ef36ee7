"""ReduceLROnPlateau, LearningRateScheduler and CSVLogger: Keras 3's behaviour (keras/src/callbacks/
reduce_lr_on_plateau.py, learning_rate_scheduler.py, csv_logger.py), the learning rate reaching the
step on every backend, and the CSV log never half-written. The Keras parity tests at the end drive
Keras's callbacks and ours with the same logs (skipped when Keras is not installed)."""
import contextlib
import csv
import io
import os

import numpy as np
import pytest

import minicnn
from minicnn import backend as B
from minicnn import optimizers
from minicnn.callbacks import (Callback, CSVLogger, LambdaCallback, LearningRateScheduler, ReduceLROnPlateau)
from minicnn.layers import Dense, Input
from test_model import small_model, toy_data


def f32(x):
    """A learning rate as Keras reads its float32 variable (what the callbacks log and print)."""
    return float(np.float32(x))


class FakeModel:
    """What the callbacks (ours and Keras's) touch when driven directly: the optimizer."""

    def __init__(self, optimizer):
        self.optimizer = optimizer


def drive_plateau(callback, values, monitor="val_loss", optimizer=None):
    """Run callback.on_epoch_end over a monitored sequence; returns the logged learning rates and
    what it printed."""
    callback.set_model(FakeModel(optimizer or optimizers.SGD(0.1)))
    callback.on_train_begin()
    rates, out = [], io.StringIO()
    with contextlib.redirect_stdout(out):
        for epoch, value in enumerate(values):
            logs = {"loss": 1.0, monitor: value}
            callback.on_epoch_end(epoch, logs)
            rates.append(logs["learning_rate"])
    return rates, out.getvalue()


class Score(Callback):
    """Puts a monitored value we control into each epoch's logs (placed before the callbacks reading it)."""

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.values[epoch]


def dense_model(lr=0.1):
    """One softmax Dense layer: its gradient is written by hand below."""
    B.set_seed(0)
    model = minicnn.Sequential([Input(shape=(4,)), Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(lr), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def dense_gradient(model, x, y):
    """d(mean cross-entropy)/d(W, b) of softmax(x W + b), in float64: x^T (p - y) / N and sum(p - y) / N."""
    W, b = (w.astype(np.float64) for w in model.get_weights())
    z = x.astype(np.float64) @ W + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d = (p - y) / len(x)
    return x.T.astype(np.float64) @ d, d.sum(axis=0)


def dense_data(n=16):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


# ---- ReduceLROnPlateau ---------------------------------------------------------------------------
# ---- the hooks, as Keras 3 calls them ---------------------------------------------------------------
class Record(Callback):
    """Records the hooks fit calls and what they get."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", logs))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", logs))

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", logs["loss"] == logs.get("loss") > 0, sorted(logs), dict(logs) == logs))

    def on_test_begin(self, logs=None):
        self.calls.append(("test_begin", logs))

    def on_test_end(self, logs=None):
        self.calls.append(("test_end", sorted(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", sorted(logs)))


def test_fit_calls_keras_3s_hooks_with_dict_logs():
    """What Keras 3's fit calls, in its order, with a logs dict everywhere ({} where it has none):
    on_train_batch_begin, the test hooks around validation, Keras 2's on_batch_end (which the
    default on_train_batch_end calls), and batch logs that read as a dict (they were a function)."""
    x, y, _ = toy_data(48)
    record, seen = Record(), []
    alias = LambdaCallback(on_batch_end=lambda batch, logs: seen.append(logs.get("accuracy")),
                           on_train_begin=lambda logs: seen.append(logs))
    small_model().fit(x, y, batch_size=16, verbose=0, validation_split=0.25, callbacks=[record, alias])
    batch_end = ("batch_end", True, ["accuracy", "loss"], True)
    assert record.calls == [("train_begin", {}), ("epoch_begin", {}), ("batch_begin", 0), batch_end,
                            ("batch_begin", 1), batch_end, ("batch_begin", 2), batch_end, ("test_begin", {}),
                            ("test_end", ["accuracy", "loss"]),
                            ("train_end", ["accuracy", "loss", "val_accuracy", "val_loss"])]
    assert seen[0] == {} and len(seen) == 4 and all(0 <= a <= 1 for a in seen[1:])


def test_batch_hooks_cost_nothing_unless_overridden_and_batch_logs_are_read_lazily():
    """Only the callbacks overriding a hook are called (History never is per batch), and the batch
    logs are computed once, when first read (on the GPU the read waits for the device)."""
    from minicnn.callbacks import BatchLogs, CallbackList, History
    cbs = CallbackList([History(), Record()], model=None)
    assert [type(cb) for cb in cbs.listeners["on_train_batch_end"]] == [Record]
    assert [type(cb) for cb in cbs.listeners["on_epoch_end"]] == [History]
    reads = []
    logs = BatchLogs(lambda: reads.append(1) or {"loss": 0.5})
    assert not reads and logs["loss"] == 0.5 and dict(logs) == {"loss": 0.5} and reads == [1]


def test_a_hook_minicnn_never_calls_is_warned_about():
    class Predicting(Callback):
        def on_predict_batch_end(self, batch, logs=None):
            pass

    x, y, _ = toy_data(16)
    with pytest.warns(UserWarning, match="Predicting overrides on_predict_batch_end, which minicnn never calls: fit "
                                         "calls on_train_begin/end"):
        small_model().fit(x, y, verbose=0, callbacks=[Predicting()])


def test_reduce_lr_on_plateau_min_mode_patience_cooldown_and_min_lr():
    """Keras's rule step by step: reduce after `patience` epochs without improvement; a cooldown
    epoch resets the wait and then counts as a waiting epoch itself (Keras decrements the cooldown
    first); never below min_lr, and no reduction once at min_lr. The logged rate is the one the
    epoch trained with (logged before the reduction)."""
    cb = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.02, min_delta=0.0, verbose=1)
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6]
    rates, printed = drive_plateau(cb, values)
    # reductions at the ends of epochs 2 (0.1 -> 0.05), 4 (-> 0.025), 7 (-> 0.0125, clipped to 0.02)
    lr1 = f32(0.1) * 0.5
    lr2 = f32(lr1) * 0.5
    assert rates == [f32(0.1)] * 3 + [f32(lr1)] * 2 + [f32(lr2)] * 3 + [f32(0.02)] * 3
    assert printed == ("\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.05000000074505806.\n"
                       f"\nEpoch 5: ReduceLROnPlateau reducing learning rate to {lr2}.\n"
                       "\nEpoch 8: ReduceLROnPlateau reducing learning rate to 0.02.\n")
    assert cb.model.optimizer.learning_rate == 0.02 and cb.best == 0.5
    assert cb.wait == 3 and cb.cooldown_counter == 0        # at min_lr: waits on, reduces no more


def test_reduce_lr_on_plateau_max_mode_and_min_delta():
    """mode='max' (and 'auto' for an accuracy): an improvement must exceed best + min_delta."""
    values = [0.5, 0.505, 0.52, 0.525, 0.529, 0.6, 0.6]
    for mode in ("max", "auto"):
        cb = ReduceLROnPlateau(monitor="val_accuracy", mode=mode, factor=0.1, patience=2, min_delta=0.01)
        rates, printed = drive_plateau(cb, values, monitor="val_accuracy")
        # 0.505 waits (1), 0.52 improves, 0.525 waits (1), 0.529 waits (2): reduce after epoch 4
        assert rates == [f32(0.1)] * 5 + [f32(f32(0.1) * 0.1)] * 2, mode
        assert printed == "" and cb.best == 0.6


def test_reduce_lr_on_plateau_in_min_mode_ignores_improvements_within_min_delta():
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.1)
    rates, _ = drive_plateau(cb, [1.0, 0.95, 0.85, 0.84], monitor="loss")
    # 0.95: not better by 0.1 -> reduce; 0.85: better than 1.0 by more than 0.1; 0.84: reduce
    assert rates == [f32(0.1), f32(0.1), f32(0.05000000074505806), f32(0.05000000074505806)]
    assert cb.model.optimizer.learning_rate == f32(0.05000000074505806) * 0.5


def test_reduce_lr_on_plateau_skips_an_epoch_without_the_metric_with_a_warning():
    cb = ReduceLROnPlateau(patience=1)
    cb.set_model(FakeModel(optimizers.SGD(0.1)))
    cb.on_train_begin()
    logs = {"loss": 1.0}
    with pytest.warns(UserWarning, match="val_loss"):
        cb.on_epoch_end(0, logs)
    assert logs == {"loss": 1.0, "learning_rate": f32(0.1)} and cb.wait == 0


def test_reduce_lr_on_plateau_arguments():
    with pytest.raises(ValueError, match=r"does not support a factor >= 1.0. Received factor=1.0"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="factor in"):
        ReduceLROnPlateau(factor=-0.5)
    with pytest.raises(TypeError, match="unexpected"):
        ReduceLROnPlateau(patiance=3)
    with pytest.warns(UserWarning, match="min_delta"):
        assert ReduceLROnPlateau(epsilon=0.5).min_delta == 0.5          # Keras 2's name
    cb = ReduceLROnPlateau()
    assert (cb.monitor, cb.factor, cb.patience, cb.verbose, cb.mode, cb.min_delta, cb.cooldown, cb.min_lr) == \
        ("val_loss", 0.1, 10, 0, "min", 1e-4, 0, 0.0)


def test_reduce_lr_on_plateau_in_fit_changes_the_steps_as_a_scheduler_with_the_same_rates_would(tmp_path):
    """A real fit: the rate reduced at the end of an epoch trains the next one (the weights equal those
    of a LearningRateScheduler run given the same per-epoch rates); 'learning_rate' reaches the
    callbacks placed after ReduceLROnPlateau (here a CSVLogger)."""
    x, y, _ = toy_data(32)
    used = []
    record = LambdaCallback(on_epoch_begin=lambda epoch, logs=None: used.append(model.optimizer.learning_rate))
    B.set_seed(0)
    model = small_model(optimizer=optimizers.SGD(0.05))
    start = model.get_weights()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[
            record, Score([1.0, 1.1, 0.9, 0.95, 0.97]),
            ReduceLROnPlateau(monitor="score", factor=0.5, patience=1, verbose=1), CSVLogger(tmp_path / "log.csv")])
    lr1 = f32(0.05) * 0.5
    lr2 = f32(lr1) * 0.5
    assert used == [0.05, 0.05, lr1, lr1, lr2]
    assert out.getvalue() == (f"\nEpoch 2: ReduceLROnPlateau reducing learning rate to {lr1}.\n"
                              f"\nEpoch 4: ReduceLROnPlateau reducing learning rate to {lr2}.\n"
                              f"\nEpoch 5: ReduceLROnPlateau reducing learning rate to {f32(lr2) * 0.5}.\n")
    with open(tmp_path / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["learning_rate"]) for r in rows] == [f32(r) for r in used]
    assert [r["score"] for r in rows] == ["1.0", "1.1", "0.9", "0.95", "0.97"]

    B.set_seed(0)
    twin = small_model(optimizer=optimizers.SGD(0.05))
    for a, b in zip(start, twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    twin.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: used[epoch])])
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    B.set_seed(0)
    constant = small_model(optimizer=optimizers.SGD(0.05))
    constant.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert not np.array_equal(constant.get_weights()[0], model.get_weights()[0])


# ---- LearningRateScheduler -----------------------------------------------------------------------
@pytest.mark.parametrize("signature", ["epoch", "epoch, lr"])
def test_learning_rate_scheduler_sets_the_rate_the_step_uses(signature):
    """SGD without momentum on one softmax Dense layer, one batch per epoch: each epoch moves the
    weights by exactly -lr * gradient, with lr the schedule's value for that epoch."""
    x, y = dense_data()
    if signature == "epoch":
        wanted = [0.3, 0.02, 0.5]
        schedule = lambda epoch: wanted[epoch]          # noqa: E731
    else:
        wanted = [f32(0.1) * 0.5]
        for _ in range(2):
            wanted.append(f32(wanted[-1]) * 0.5)
        def schedule(epoch, lr):
            return lr * 0.5
    model = dense_model(0.1)
    steps, logged = [], []

    def before(epoch, logs=None):
        steps.append([model.get_weights(), dense_gradient(model, x, y), model.optimizer.learning_rate])

    def after(epoch, logs):
        steps[-1].append(model.get_weights())
        logged.append(logs["learning_rate"])
    model.fit(x, y, batch_size=len(x), epochs=3, verbose=0,
              callbacks=[LearningRateScheduler(schedule), LambdaCallback(on_epoch_begin=before, on_epoch_end=after)])
    assert [lr for _, _, lr, _ in steps] == wanted
    assert logged == [f32(lr) for lr in wanted]
    for (w0, b0), (gw, gb), lr, (w1, b1) in steps:
        np.testing.assert_allclose(w1 - w0, -lr * gw, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b1 - b0, -lr * gb, rtol=1e-4, atol=1e-6)
        assert np.abs(w1 - w0).max() > 1e-3


def test_learning_rate_scheduler_messages_and_logs():
    model = FakeModel(optimizers.SGD(0.1))
    cb = LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else np.float32(0.05), verbose=1)
    cb.set_model(model)
    out = io.StringIO()
    logs = {}
    with contextlib.redirect_stdout(out):
        cb.on_epoch_begin(0)
        cb.on_epoch_end(0, logs)
        cb.on_epoch_begin(1)
    assert out.getvalue() == ("\nEpoch 1: LearningRateScheduler setting learning rate to 0.10000000149011612.\n"
                              # an f-string formats np.float32(0.05) as the float it is, as in Keras
                              "\nEpoch 2: LearningRateScheduler setting learning rate to 0.05000000074505806.\n")
    assert logs == {"learning_rate": f32(0.1)} and model.optimizer.learning_rate == f32(0.05)


def test_learning_rate_scheduler_wants_a_float():
    cb = LearningRateScheduler(lambda epoch: 1)
    cb.set_model(FakeModel(optimizers.SGD(0.1)))
    with pytest.raises(ValueError, match=r"The output of the `schedule` function should be a float. Got: 1"):
        cb.on_epoch_begin(0)
    cb = LearningRateScheduler(lambda epoch: -0.1)
    cb.set_model(FakeModel(optimizers.SGD(0.1)))
    with pytest.raises(ValueError, match="finite number >= 0"):
        cb.on_epoch_begin(0)
    with pytest.raises(TypeError, match="schedule"):
        LearningRateScheduler(0.1)


def test_a_type_error_inside_a_two_argument_schedule_is_not_hidden():
    """Keras retries schedule(epoch) after any TypeError, hiding the real one; here it surfaces."""
    def schedule(epoch, lr):
        return lr + "x"
    cb = LearningRateScheduler(schedule)
    cb.set_model(FakeModel(optimizers.SGD(0.1)))
    with pytest.raises(TypeError, match="float"):
        cb.on_epoch_begin(0)


@pytest.mark.parametrize("make", [lambda: optimizers.SGD(optimizers.ExponentialDecay(0.1, 10, 0.5)),
                                  lambda: optimizers.RMSprop(optimizers.InverseTimeDecay(1e-3, 1, 1e-6))],
                         ids=["exponential", "inverse_time"])
def test_a_schedule_learning_rate_is_not_settable(make):
    """Keras 3's TypeError, raised when fit starts (ReduceLROnPlateau) or at the first epoch (scheduler)."""
    x, y = dense_data()
    for cb in (ReduceLROnPlateau(monitor="loss"), LearningRateScheduler(lambda epoch: 0.1)):
        model = dense_model()
        model.compile(optimizer=make(), loss="categorical_crossentropy")
        with pytest.raises(TypeError, match="hence its learning rate is not settable") as err:
            model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
        assert type(cb).__name__ in str(err.value) and model.optimizer.iterations == 0


def test_keras2_decay_keeps_the_learning_rate_settable():
    """Keras 2's RMSprop(lr, decay=d) with a LearningRateScheduler or ReduceLROnPlateau (Keras's own
    cifar10 examples): the callbacks read and set lr itself, and every step uses lr / (1 + d * t),
    as Keras 2's optimizers did; the GPU's table of planned rates is recomputed in place."""
    x, y = dense_data()
    model = dense_model()
    model.compile(optimizer=optimizers.RMSprop(lr=1e-3, decay=0.5), loss="categorical_crossentropy")
    seen = []
    model.fit(x, y, batch_size=len(x) // 2, epochs=3, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch, lr: seen.append(lr) or 1e-3 * 0.5 ** epoch)])
    opt = model.optimizer
    assert seen == pytest.approx([1e-3, 1e-3, 5e-4]) and opt.iterations == 6
    assert opt.current_learning_rate() == pytest.approx(2.5e-4 / (1 + 0.5 * 6))
    opt.prepare_device(3)
    table = opt._dev["lr_table"]
    opt.learning_rate = 1e-4
    assert opt._dev["lr_table"] is table
    np.testing.assert_allclose(table, [1e-4 / (1 + 0.5 * t) for t in (6, 7, 8)])
    model = dense_model()
    model.compile(optimizer=optimizers.SGD(lr=0.1, decay=0.1), loss="categorical_crossentropy")
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[ReduceLROnPlateau(monitor="loss", patience=0,
                                                                               min_delta=10.0, factor=0.5)])
    assert model.optimizer.learning_rate.initial_learning_rate == pytest.approx(0.1 * 0.5 ** 2)   # epochs 2, 3
    assert len(history.history["loss"]) == 3


def test_the_device_learning_rate_table_is_rewritten_in_place():
    """The GPU's update kernels and a captured CUDA graph read the learning rate from the array
    Optimizer.prepare_device uploaded; setting the rate writes into that same array (here the table
    made on the CPU, whose arrays are NumPy's: the same code path as the GPU's)."""
    opt = optimizers.SGD(0.1)
    opt.prepare_device(50)
    table = opt._dev["lr_table"]
    cb = LearningRateScheduler(lambda epoch: 0.025)
    cb.set_model(FakeModel(opt))
    cb.on_epoch_begin(0)
    assert opt._dev["lr_table"] is table and table.tolist() == [0.025] and opt.learning_rate == 0.025
    reduce = ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5)
    rates, _ = drive_plateau(reduce, [1.0, 1.0], monitor="loss", optimizer=opt)
    assert opt._dev["lr_table"] is table and table.tolist() == [f32(0.025) * 0.5]


@pytest.mark.backends("reference", "gpu")
def test_learning_rate_callbacks_train_as_on_the_fast_cpu(backend):
    """LearningRateScheduler and ReduceLROnPlateau during a fit on the readable twins and on the GPU
    (graphed steps reading the device learning-rate table) land on the fast CPU's parameters, and
    the rates really changed the training (a constant rate lands elsewhere)."""
    from test_backend_training import _assert_same_parameters, small_model as conv_model, toy_data as conv_data
    x, y, _ = conv_data(320)

    def train(callbacks=True):
        model = conv_model(optimizer=optimizers.SGD(0.05, momentum=0.9))
        cbs = [LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch == 1 else lr), Score([1.0, 1.0, 1.0, 1.0]),
               ReduceLROnPlateau(monitor="score", factor=0.1, patience=1)] if callbacks else []
        model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=cbs)
        assert model.optimizer._on_device() == (B.name == "gpu")
        return model
    model = train()
    # epoch 1 halves the rate (scheduler); the flat score reduces it by 10 after epochs 1, 2 and 3
    assert model.optimizer.learning_rate == f32(f32(f32(f32(0.05) * 0.5) * 0.1) * 0.1) * 0.1
    with backend.fast_cpu():
        oracle, constant = train(), train(callbacks=False)
    _assert_same_parameters(model, oracle)
    assert not np.allclose(constant.get_weights()[-2], oracle.get_weights()[-2], rtol=1e-3, atol=1e-4)


# ---- CSVLogger -----------------------------------------------------------------------------------
def drive_csv(logger, epochs_logs, start=0):
    logger.on_train_begin()
    for epoch, logs in enumerate(epochs_logs, start):
        logger.on_epoch_end(epoch, dict(logs))
    logger.on_train_end()


def test_csv_logger_header_rows_and_values(tmp_path):
    path = tmp_path / "log.csv"
    drive_csv(CSVLogger(path), [{"loss": 0.5, "accuracy": 0.25, "val_loss": 0.75, "val_accuracy": 0.125},
                                {"loss": 0.1 + 0.2, "accuracy": np.float32(0.3), "val_loss": float("nan"),
                                 "val_accuracy": 1.0, "extra": 3.0}])
    assert path.read_bytes() == (b"epoch,accuracy,loss,val_accuracy,val_loss\r\n"
                                 b"0,0.25,0.5,0.125,0.75\r\n"
                                 b"1,0.3,0.30000000000000004,1.0,nan\r\n")


def test_csv_logger_without_validation_adds_val_columns_and_na(tmp_path):
    path = tmp_path / "log.csv"
    drive_csv(CSVLogger(path, separator=";"), [{"loss": 1.5, "learning_rate": 0.01}, {"loss": 1.25},
                                               {"loss": 1.0, "note": "x;y", "sizes": [1, 2]}])
    assert path.read_bytes().decode() == ("epoch;learning_rate;loss;val_learning_rate;val_loss\r\n"
                                          "0;0.01;1.5;NA;NA\r\n"
                                          "1;NA;1.25;NA;NA\r\n"
                                          "2;NA;1.0;NA;NA\r\n")


def test_csv_logger_quotes_like_keras(tmp_path):
    path = tmp_path / "log.csv"
    drive_csv(CSVLogger(path), [{"note": "a,b", "sizes": np.array([1, 2]), "zero_d": np.array(2.5)}])
    assert path.read_bytes() == (b'epoch,note,sizes,zero_d,val_note,val_sizes,val_zero_d\r\n'
                                 b'0,"a,b","""[1, 2]""",2.5,NA,NA,NA\r\n')


def test_csv_logger_truncates_or_appends_without_a_second_header(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("old contents\n")
    logger = CSVLogger(path)
    logger.on_train_begin()
    assert path.read_bytes() == b""                          # fit starts: emptied, as Keras's "w"
    logger.on_epoch_end(0, {"loss": 2.0})
    logger.on_train_end()
    drive_csv(CSVLogger(path, append=True), [{"loss": 1.0}, {"loss": 0.5}], start=1)
    assert path.read_bytes() == (b"epoch,loss,val_loss\r\n0,2.0,NA\r\n1,1.0,NA\r\n2,0.5,NA\r\n")
    # the same logger again in a second fit: appends again, no header; without append it starts over
    drive_csv(CSVLogger(path, append=True), [{"loss": 0.25}], start=3)
    assert path.read_bytes().count(b"epoch") == 1 and path.read_bytes().endswith(b"3,0.25,NA\r\n")
    fresh = tmp_path / "new.csv"                             # append to a file that does not exist: header
    drive_csv(CSVLogger(fresh, append=True), [{"loss": 1.0}])
    assert fresh.read_bytes() == b"epoch,loss,val_loss\r\n0,1.0,NA\r\n"
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    drive_csv(CSVLogger(empty, append=True), [{"loss": 1.0}])
    assert empty.read_bytes() == b"epoch,loss,val_loss\r\n0,1.0,NA\r\n"


def test_csv_logger_append_starts_a_new_line_after_a_cut_one(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"epoch,loss,val_loss\r\n0,2.0,NA\r\n1,1.")
    drive_csv(CSVLogger(path, append=True), [{"loss": 0.5}], start=2)
    assert path.read_bytes() == b"epoch,loss,val_loss\r\n0,2.0,NA\r\n1,1.\r\n2,0.5,NA\r\n"


def test_csv_logger_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    """Each epoch replaces the file with a complete copy (atomic_write): a write that fails (here
    fsync, as on a full disk) leaves the previous complete log and no temporary file."""
    path = tmp_path / "log.csv"
    logger = CSVLogger(path)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    before = path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", full_disk)
        with pytest.raises(OSError, match="No space"):
            logger.on_epoch_end(1, {"loss": 0.5, "val_loss": 1.5})
    assert path.read_bytes() == before == b"epoch,loss,val_loss\r\n0,1.0,2.0\r\n"
    assert sorted(os.listdir(tmp_path)) == ["log.csv"]
    logger.on_epoch_end(2, {"loss": 0.25, "val_loss": 1.25})    # the disk has room again
    assert path.read_bytes() == before + b"1,0.5,1.5\r\n2,0.25,1.25\r\n"


def test_csv_logger_follows_a_symbolic_link(tmp_path):
    target = tmp_path / "real.csv"
    link = tmp_path / "link.csv"
    target.write_bytes(b"")
    link.symlink_to(target)
    drive_csv(CSVLogger(link, append=True), [{"loss": 1.0}])
    assert link.is_symlink() and target.read_bytes() == b"epoch,loss,val_loss\r\n0,1.0,NA\r\n"


def test_csv_logger_in_fit(tmp_path):
    """A real fit with validation: one row per epoch, the epoch index first, History's values exactly."""
    x, y, _ = toy_data(48)
    model = small_model()
    path = tmp_path / "sub" / "log.csv"
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25, callbacks=[CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    for i, key in enumerate(rows[0][1:], 1):
        assert [float(r[i]) for r in rows[1:]] == history.history[key]


def test_csv_logger_refuses_a_bad_separator_at_once():
    with pytest.raises(TypeError):
        CSVLogger("log.csv", separator=", ")


# ---- parity with Keras: the same logs through Keras's callbacks and ours ------------------------
# (Keras's TensorFlow backend reads its variables with np.array(x, copy=False): NumPy 2 warns each time)
keras_warnings = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]'): parity skipped")


def _run(callback, model, epochs_logs, begin=False):
    """Drive a callback (Keras's or ours) over fake epochs; returns the logs after it and its output."""
    callback.set_model(model)
    out, seen = io.StringIO(), []
    with contextlib.redirect_stdout(out):
        callback.on_train_begin()
        for epoch, logs in enumerate(epochs_logs):
            logs = dict(logs)
            if begin:
                callback.on_epoch_begin(epoch)
            callback.on_epoch_end(epoch, logs)
            seen.append(logs)
        callback.on_train_end()
    return seen, out.getvalue()


def _walk(seed, n=40):
    """A monitored sequence with plateaus, ties and improvements below min_delta."""
    rng = np.random.default_rng(seed)
    values = [1.0]
    for _ in range(n - 1):
        step = rng.choice([0.0, 0.0, -1e-5, -0.02, 0.01, -0.1])
        values.append(float(values[-1] + step))
    return values


PLATEAU_CASES = [
    dict(factor=0.5, patience=2, cooldown=1, min_lr=1e-3, verbose=1),
    dict(factor=0.2, patience=1, cooldown=2, min_delta=0.01, verbose=1),
    dict(factor=0.1, patience=3, min_delta=0.0, min_lr=1e-5, verbose=1),
    dict(verbose=1),
    dict(factor=0.3, patience=0, min_lr=0.0005, verbose=1),
]


@keras_warnings
@pytest.mark.parametrize("case", range(len(PLATEAU_CASES)))
@pytest.mark.parametrize("mode", ["min", "max"])
def test_reduce_lr_on_plateau_matches_keras(keras, case, mode):
    kwargs = dict(PLATEAU_CASES[case], monitor="val_loss", mode=mode)
    sign = 1 if mode == "min" else -1
    values = [sign * v for v in _walk(case)]
    if case == 2:                       # better in float64, equal in float32, where Keras compares
        values[5:9] = [sign * v for v in (0.4, 0.399999999, 0.3999999995, 0.4)]
    epochs_logs = [{"loss": 0.0, "val_loss": v} for v in values]
    ours, our_text = _run(ReduceLROnPlateau(**kwargs), FakeModel(optimizers.SGD(0.01)), epochs_logs)
    theirs, their_text = _run(keras.callbacks.ReduceLROnPlateau(**kwargs),
                              FakeModel(keras.optimizers.SGD(0.01)), epochs_logs)
    assert [logs["learning_rate"] for logs in ours] == [logs["learning_rate"] for logs in theirs]
    assert our_text == their_text
    assert our_text.count("reducing") >= 2 or case == 3


SCHEDULES = {
    "epoch": lambda epoch: 0.1 / (epoch + 1),
    "epoch, lr": lambda epoch, lr: lr * 0.9 if epoch else lr,
    "numpy float32": lambda epoch, lr: np.float32(lr / 3),
    "numpy float64": lambda epoch: np.float64(0.05 * epoch + 0.01),
}


@keras_warnings
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_learning_rate_scheduler_matches_keras(keras, name):
    schedule = SCHEDULES[name]
    epochs_logs = [{"loss": 1.0}] * 4
    mine = FakeModel(optimizers.Adam(0.003))
    ours, our_text = _run(LearningRateScheduler(schedule, verbose=1), mine, epochs_logs, begin=True)
    kopt = keras.optimizers.Adam(0.003)
    theirs, their_text = _run(keras.callbacks.LearningRateScheduler(schedule, verbose=1), FakeModel(kopt),
                              epochs_logs, begin=True)
    assert ours == theirs and our_text == their_text and our_text.count("setting learning rate") == 4
    assert f32(mine.optimizer.learning_rate) == float(keras.ops.convert_to_numpy(kopt.learning_rate))


@keras_warnings
def test_learning_rate_errors_match_keras(keras):
    for make in (lambda: LearningRateScheduler(lambda epoch: 1), lambda: keras.callbacks.LearningRateScheduler(
            lambda epoch: 1)):
        cb = make()
        cb.set_model(FakeModel(optimizers.SGD(0.1) if isinstance(cb, Callback) else keras.optimizers.SGD(0.1)))
        with pytest.raises(ValueError, match=r"^The output of the `schedule` function should be a float. Got: 1$"):
            cb.on_epoch_begin(0)
    kcb = keras.callbacks.LearningRateScheduler(lambda epoch: 0.1)
    kcb.set_model(FakeModel(keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))))
    with pytest.raises(TypeError) as keras_error:
        kcb.on_epoch_begin(0)
    cb = LearningRateScheduler(lambda epoch: 0.1)
    cb.set_model(FakeModel(optimizers.SGD(optimizers.ExponentialDecay(0.1, 10, 0.5))))
    with pytest.raises(TypeError) as our_error:
        cb.on_epoch_begin(0)
    tail = "hence its learning rate is not settable. If you need the learning rate to be settable, you should " \
           "instantiate the optimizer with a float `learning_rate` argument."
    assert str(keras_error.value).endswith(tail) and str(our_error.value).endswith(tail)


CSV_RUNS = [
    [{"loss": 0.5, "accuracy": 0.25, "val_loss": 0.75, "val_accuracy": 0.125, "learning_rate": f32(0.001)},
     {"loss": 0.1 + 0.2, "accuracy": 1 / 3, "val_loss": float("nan"), "val_accuracy": 1.0},
     {"loss": float("inf"), "accuracy": np.float32(0.3), "val_loss": 1e-12, "val_accuracy": 0.5, "new": 2.0}],
    [{"loss": 1.5, "note": "a,b;c\"d", "sizes": [1, 2.5], "arr": np.array([0.5, 1.0]), "zero_d": np.array(2.5)},
     {"loss": 1.25}],
    [{}],
]


@keras_warnings
@pytest.mark.parametrize("separator", [",", ";", "\t"])
@pytest.mark.parametrize("run", range(len(CSV_RUNS)))
def test_csv_logger_writes_the_file_keras_writes(keras, tmp_path, run, separator):
    """Byte for byte: a first fit, then a second one with append=True (no second header)."""
    files = {}
    for who, make in (("ours", CSVLogger), ("keras", keras.callbacks.CSVLogger)):
        path = tmp_path / f"{who}.csv"
        files[who] = path
        for append in (False, True):
            logger = make(str(path), separator=separator, append=append)
            logger.set_model(FakeModel(None))
            logger.on_train_begin()
            for epoch, logs in enumerate(CSV_RUNS[run]):
                logger.on_epoch_end(epoch, dict(logs))
            logger.on_train_end()
    assert files["ours"].read_bytes() == files["keras"].read_bytes()
    assert files["ours"].read_bytes().count(b"epoch") == 1
