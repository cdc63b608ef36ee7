"""Callbacks called by fit(): History, ProgbarLogger, ModelCheckpoint, EarlyStopping, TerminateOnNaN,
ReduceLROnPlateau, LearningRateScheduler, CSVLogger, LambdaCallback, and minicnn's FreezeAfter, EpochTimer,
TrainingDynamics (per-layer activation statistics, gradient norms and update ratios, for minicnn.explain).

Hooks (Keras's, see Callback): on_train_begin/end(logs), on_epoch_begin/end(epoch, logs),
on_train_batch_begin/end(batch, logs), on_test_begin/end(logs) around validation. `logs` at batch
end is a BatchLogs, a dict of the running metrics computed only when read, so nothing reads the
device unless a callback asks (no host sync inside a step).
"""
import collections.abc
import csv
import inspect
import io
import json
import math
import os
import re
import string
import sys
import time
import warnings

import numpy as np

from minicnn import _keras_names, backend, optimizers
from minicnn.layers.base import is_int
from minicnn.saving import atomic_write


def format_value(v):
    """Keras's progress-bar number format: .4f above 1e-3, .4e below."""
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


def format_logs(logs):
    return " - ".join(f"{k}: {format_value(v)}" for k, v in logs.items())


class Callback:
    """Keras's Callback: fit calls these hooks (each one a no-op here; override the ones you need).

        on_train_begin(logs)  on_epoch_begin(epoch, logs)  on_train_batch_begin(batch, logs)
        on_train_end(logs)    on_epoch_end(epoch, logs)    on_train_batch_end(batch, logs)
        on_test_begin(logs), on_test_end(logs)     around the validation pass of each epoch

    on_train_batch_begin/end call Keras 2's on_batch_begin/end, as Keras's do. Keras's
    on_test_batch_* and on_predict_* hooks exist, but nothing calls them (evaluate and predict take
    no callbacks): a callback overriding one is warned about when fit starts."""
    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


HOOKS = [name for name in vars(Callback) if name.startswith("on_")]
NEVER_CALLED = ("on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
                "on_predict_batch_begin", "on_predict_batch_end")
KERAS2_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def overrides(callback, hook):
    """True when `callback` does something at `hook`: its method (or a function set on it, as
    LambdaCallback sets them) is not Callback's no-op, or, for the train-batch hooks, the Keras 2
    alias they call is not."""
    names = [hook] + ([KERAS2_ALIASES[hook]] if hook in KERAS2_ALIASES else [])
    return any(name in vars(callback) or getattr(type(callback), name) is not getattr(Callback, name)
               for name in names)


class BatchLogs(collections.abc.Mapping):
    """The logs of on_train_batch_end: the epoch's running loss and accuracy, a read-only dict
    computed when first read (on the GPU reading them waits for the device, so a step whose logs
    nobody reads never waits)."""

    def __init__(self, compute):
        self._compute, self._logs = compute, None

    def _read(self):
        if self._logs is None:
            self._logs = self._compute()
        return self._logs

    def __getitem__(self, key):
        return self._read()[key]

    def __iter__(self):
        return iter(self._read())

    def __len__(self):
        return len(self._read())

    def __repr__(self):
        return repr(self._read())


def as_list(callbacks):
    """fit's callbacks= as a list: None, one Callback (Keras 3 accepts it alone, as it flattens
    the argument), or a list or tuple of them."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of minicnn.callbacks.Callback instances, got "
                        f"{type(callbacks).__name__}")
    return list(callbacks)


class CallbackList:
    """fit's callbacks, called together: cbs.on_epoch_end(epoch, logs) calls on_epoch_end of each
    callback, in order, with the same logs dict ({} when there are none, as Keras passes). Only the
    callbacks that override a hook are called, so a per-batch hook nobody overrides costs nothing."""

    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be minicnn.callbacks.Callback instances, got {type(cb).__name__}")
            cb.set_model(model)
            for hook in NEVER_CALLED:
                if overrides(cb, hook):
                    warnings.warn(f"{type(cb).__name__} overrides {hook}, which minicnn never calls: fit calls "
                                  "on_train_begin/end, on_epoch_begin/end, on_train_batch_begin/end (and Keras 2's "
                                  "on_batch_begin/end), and on_test_begin/end around validation; evaluate and "
                                  "predict take no callbacks", stacklevel=4)
        self.listeners = {hook: [cb for cb in self.callbacks if overrides(cb, hook)] for hook in HOOKS}

    def call(self, hook, *args):
        """Call `hook` on each callback that overrides it, with Keras's arguments: the epoch or the
        batch index where the hook takes one, then the logs."""
        takes_index = "epoch" in hook or "batch" in hook
        index, logs = (args[0], args[1:]) if takes_index else (None, args)
        logs = logs[0] if logs and logs[0] is not None else {}
        for cb in self.listeners[hook]:
            getattr(cb, hook)(*([index] if takes_index else []), logs)

    def __getattr__(self, hook):
        if hook not in HOOKS:
            raise AttributeError(f"CallbackList has no attribute {hook!r}")
        return lambda *args: self.call(hook, *args)


class History(Callback):
    """history.history = {metric: [one value per epoch]}; history.epoch = [epoch indices]."""

    def __init__(self):
        self.history, self.epoch, self.params = {}, [], {}

    def on_train_begin(self, logs=None):
        self.params = dict(self.model.trainer.params)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class ProgbarLogger(Callback):
    """Keras 3's progress line.

    verbose=1: a live bar per epoch, `1407/1407 ━━━━━━━━━━━━━━━━━━━━ 9s 6ms/step - accuracy: ... - loss: ...`
    verbose=2: one line per epoch,    `1407/1407 - 9s - 6ms/step - accuracy: ... - val_loss: ...`
    """

    def __init__(self, verbose=1, steps=None, epochs=None, file=None, refresh_seconds=0.2):
        self.verbose, self.steps, self.epochs = verbose, steps, epochs
        self.file = file or sys.stdout
        self.refresh_seconds = refresh_seconds
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.epochs is None or self.epochs > 1:      # Keras 3 names the epoch only when there are several
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self.file, flush=True)
        self.start = self.last = time.perf_counter()
        if self.verbose == 1:
            from tqdm import tqdm
            # delay: nothing is drawn until the first step ends (no empty 0/N bar, as in Keras)
            self.bar = tqdm(total=self.steps, file=self.file, ascii=" ━", mininterval=0, postfix=[""],
                            bar_format="{n_fmt}/{total_fmt} {bar:20} {postfix[0]}", leave=True, delay=1e-9)

    def _timing(self, done):
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / max(done, 1)
        unit = f"{per_step * 1e3:.0f}ms/step" if per_step >= 1e-3 else f"{per_step * 1e6:.0f}us/step"
        return elapsed, unit

    def on_train_batch_end(self, step, logs=None):
        if self.bar is None:
            return
        now = time.perf_counter()
        if now - self.last < self.refresh_seconds and step + 1 < self.steps:
            return
        self.last = now
        elapsed, unit = self._timing(step + 1)
        if step + 1 < self.steps:
            eta = elapsed / (step + 1) * (self.steps - step - 1)
            head = f"{eta:.0f}s {unit}"
        else:
            head = f"{elapsed:.0f}s {unit}"
        self.bar.postfix[0] = f"{head} - {format_logs(logs or {})}"
        self.bar.n = step + 1
        self.bar.refresh()

    def on_epoch_end(self, epoch, logs=None):
        elapsed, unit = self._timing(self.steps)
        if self.bar is not None:
            self.bar.postfix[0] = f"{elapsed:.0f}s {unit} - {format_logs(logs or {})}"
            self.bar.n = self.steps
            self.bar.close()
            self.bar = None
        else:
            print(f"{self.steps}/{self.steps} - {elapsed:.0f}s - {unit} - {format_logs(logs or {})}",
                  file=self.file, flush=True)


FIT_LOG_KEYS = ("loss", "accuracy", "acc", "val_loss", "val_accuracy", "val_acc")   # what fit itself logs


class _MonitorCallback(Callback):
    """Shared by ModelCheckpoint and EarlyStopping: which way is better for `monitor`."""

    def _init_monitor(self, monitor, mode, min_delta=0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "auc", "precision", "recall")) else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = None

    def _improved(self, value):
        """Keras 3's MonitorCallback._is_improvement, to the rounding: min mode value + min_delta < best,
        max mode value - min_delta > best, compared as floatx numbers (Keras compares with ops.less /
        ops.greater, which turn the Python floats into floatx tensors: float32 by default)."""
        if self.best is None:
            return True
        dtype = backend.floatx()
        if self.mode == "min":
            return bool(np.asarray(value + self.min_delta, dtype) < np.asarray(self.best, dtype))
        return bool(np.asarray(value - self.min_delta, dtype) > np.asarray(self.best, dtype))

    def _get_monitor_value(self, logs):
        """The monitored value, or None (with a warning, as Keras does) when the logs lack it."""
        if self.monitor not in (logs or {}):
            warnings.warn(f"{type(self).__name__} monitors {self.monitor!r}, but this epoch's logs only have "
                          f"{sorted(logs or {})}; skipping (pass validation_data/validation_split, or monitor "
                          "another metric)", stacklevel=3)
            return None
        return logs[self.monitor]


class ModelCheckpoint(_MonitorCallback):
    """Save the model (or only its weights) at the end of each epoch, or only on improvement.

    filepath may hold format fields: 'w.{epoch:02d}-{val_loss:.2f}.weights.npz' (epoch 1-based).
    Saves are atomic: an interrupted save leaves the previous file intact. A save that fails (a full
    disk, a read-only folder: an OSError) is reported with a warning and training goes on.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        if save_freq != "epoch":
            raise ValueError(f"only save_freq='epoch' is supported, got {save_freq!r}")
        self.filepath, self.verbose = str(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self._init_monitor(monitor, mode)
        self.best = initial_value_threshold

    def on_train_begin(self, logs=None):
        """Check the filepath's fields before any training: a bad format spec, or a key that fit's
        own logs will lack this time (e.g. {val_loss} without validation data). A key fit never
        makes (one a callback may add) is checked at the first save."""
        fit_keys = getattr(getattr(self.model, "trainer", None), "log_keys", None)
        if fit_keys is None:
            return
        fields = {re.split(r"[.\[]", name)[0] for _, name, _, _ in string.Formatter().parse(self.filepath) if name}
        others = fields - set(FIT_LOG_KEYS) - {"epoch"}
        self._format(0, dict.fromkeys([*fit_keys, *others], 0.0),
                     whose="the epoch logs of this fit will lack (they hold {keys})")

    def _format(self, epoch, logs, whose="the logs of epoch {epoch} lack (they hold {keys})"):
        """The filepath of this epoch, or Keras's error naming the filepath, and for a missing key
        the keys there are."""
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            whose = whose.format(epoch=epoch + 1, keys=", ".join(sorted(logs)) or "none")
            hint = "pass validation_data or validation_split, or " if str(e.args[0]).startswith("val_") else ""
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: it uses '
                           f"{{{e.args[0]}}}, which {whose}; {hint}remove it from the filepath") from None
        except (ValueError, IndexError, AttributeError, TypeError) as e:
            raise ValueError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e} (its fields '
                             "are {epoch}, an int, and the keys of the logs, floats, e.g. "
                             "'w-{epoch:02d}-{val_loss:.2f}.weights.h5')") from None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad or self.model.stop_reason:
            # a diverged or interrupted epoch never overwrites the last good checkpoint (its logs may
            # lack the val_ keys of the filepath: fit skips validation after a stop within the epoch)
            print(f"\nEpoch {epoch + 1}: not saving to {self.filepath}: "
                  f"{'non-finite ' + ', '.join(bad) if bad else self.model.stop_reason}", flush=True)
            return
        path = self._format(epoch, logs)
        if self.save_best_only:
            value = self._get_monitor_value(logs)
            if value is None:
                return
            best = "None" if self.best is None else f"{self.best:.5f}"
            if not self._improved(value):
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}", flush=True)
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {value:.5f}, "
                      f"saving model to {path}", flush=True)
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}", flush=True)
        if self._save(path, epoch) and self.save_best_only:
            self.best = value           # (after a failed save, the next epoch better than the file's is saved)

    def _save(self, path, epoch):
        """Save; on an OSError (a full disk, a read-only folder) warn and return False: training goes on."""
        try:
            if self.save_weights_only:
                self.model.save_weights(path)
            else:
                self.model.save(path)
            return True
        except OSError as e:
            warnings.warn(f"ModelCheckpoint could not save epoch {epoch + 1} to {path}: {type(e).__name__}: {e}; "
                          "training goes on, and the file there before (if any) is intact", stacklevel=3)
            return False


class EarlyStopping(_MonitorCallback):
    """Stop when `monitor` has not improved (by more than min_delta) for `patience` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        self._init_monitor(monitor, mode, min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0
        self.best = self.baseline

    def on_epoch_end(self, epoch, logs=None):
        value = self._get_monitor_value(logs)
        if value is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)
        if self.stopped_epoch and self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


# ---- the learning rate, as Keras's callbacks read and set it ----------------------------------
def _keras_learning_rate(optimizer):
    """The optimizer's current learning rate as Keras's callbacks read it. Keras keeps it in a
    variable of type floatx (float32 unless float64 mode) and reads float(variable): SGD(0.01)
    reads 0.009999999776482582. Reading it the same way gives Keras's logs, messages and
    ReduceLROnPlateau arithmetic to the last digit (0.01 reduced by 0.1 prints
    0.0009999999776482583, as Keras prints it)."""
    lr = optimizer.learning_rate
    rate = lr.initial_learning_rate if getattr(lr, "settable", False) else optimizer.current_learning_rate()
    return float(np.asarray(rate, dtype=backend.floatx()))      # (Keras 2's decay=: lr itself, as Keras 2 reads it)


def _require_settable_learning_rate(optimizer, who):
    """Keras 3's TypeError (its optimizer's learning_rate setter) when the learning rate is a schedule."""
    lr = optimizer.learning_rate
    if isinstance(lr, optimizers.LearningRateSchedule) and not getattr(lr, "settable", False):
        raise TypeError(
            f"{who} sets the optimizer's learning rate, but this optimizer was created with a "
            f"`LearningRateSchedule` object ({type(lr).__name__}) as its `learning_rate` constructor argument, "
            "hence its learning rate is not settable. If you "
            "need the learning rate to be settable, you should instantiate the optimizer with a float "
            "`learning_rate` argument.")


def _set_learning_rate(optimizer, value, who):
    """optimizer.learning_rate = value, in effect from the next update, on every backend.

    On the CPU the update reads optimizer.learning_rate. On the GPU the one-launch update kernels
    (and the CUDA graph that replays them) read the learning rate from a device table that fit
    filled when it started (Optimizer.prepare_device: optimizer._dev["lr_table"], one entry for a
    constant learning rate): the new value is written into that same array, in place, on the
    stream fit runs on, so the next replay reads it. (Uploading a new table instead would leave
    a captured graph reading the old one, and its step counter too.)"""
    _require_settable_learning_rate(optimizer, who)
    optimizer.learning_rate = float(value)          # (the setter checks it and updates the GPU's device table)


class ReduceLROnPlateau(_MonitorCallback):
    """Keras's ReduceLROnPlateau: multiply the learning rate by `factor` when `monitor` has not
    improved (by more than min_delta) for `patience` epochs, then wait `cooldown` epochs before
    counting again; never below min_lr.

    As Keras 3 does, each epoch's logs get 'learning_rate' (the rate the epoch trained with, read as
    Keras reads its float32 variable: see _keras_learning_rate), so the callbacks placed after this
    one (a CSVLogger) record it. (fit's History and progress bar run before the user's callbacks
    here, after them in Keras 3, so they do not show it yet.) With verbose=1 a reduction prints
    Keras's line "\\nEpoch 5: ReduceLROnPlateau reducing learning rate to 0.00010000000474974513."
    The learning rate must be a number: with a schedule fit raises Keras's TypeError when training
    starts (Keras raises it at the first reduction); with Keras 2's decay= the lr the decay divides
    is reduced, as in Keras 2. Keras 2's `epsilon=` is
    accepted for min_delta. Unlike Keras, a factor < 0 is refused (Keras refuses only >= 1).
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        if "epsilon" in kwargs:                 # Keras 2's name for min_delta
            warnings.warn("`epsilon` argument is deprecated and will be removed, use `min_delta` instead.",
                          stacklevel=2)
            min_delta = kwargs.pop("epsilon")
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected argument(s): {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        if factor < 0:
            raise ValueError(f"ReduceLROnPlateau needs a factor in [0, 1): new_lr = lr * factor. Received "
                             f"factor={factor}")
        self._init_monitor(monitor, mode, min_delta)
        self.factor, self.min_lr, self.patience = factor, min_lr, patience
        self.verbose, self.cooldown = verbose, cooldown
        self.cooldown_counter = 0       # epochs of cooldown left
        self.wait = 0                   # epochs without improvement (outside cooldown)

    def on_train_begin(self, logs=None):
        _require_settable_learning_rate(self.model.optimizer, "ReduceLROnPlateau")
        self.best, self.cooldown_counter, self.wait = None, 0, 0

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        logs["learning_rate"] = _keras_learning_rate(self.model.optimizer)
        current = self._get_monitor_value(logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self, epoch):
        """Keras's _reduce_optimizer_lr: lr * factor (not below min_lr), unless lr is at min_lr already."""
        old_lr = _keras_learning_rate(self.model.optimizer)
        if not old_lr > np.float32(self.min_lr):
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        _set_learning_rate(self.model.optimizer, new_lr, "ReduceLROnPlateau")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.", flush=True)
        return True


def _takes_learning_rate(schedule):
    """True when schedule can be called as schedule(epoch, lr); False for schedule(epoch); None when
    Python cannot tell (no signature: then Keras's way, try (epoch, lr), on TypeError (epoch))."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(0, 0.0)
        return True
    except TypeError:
        return False


class LearningRateScheduler(Callback):
    """Keras's LearningRateScheduler: at the beginning of every epoch the learning rate becomes
    schedule(epoch, lr) (epoch 0-based, lr the current rate read as Keras reads it), or
    schedule(epoch) for a function of the epoch alone. The value must be a float (Python, np.float32
    or np.float64), as Keras requires; it takes effect at the next step on every backend.

    verbose=1 prints Keras's line "\\nEpoch 3: LearningRateScheduler setting learning rate to 0.05.",
    and each epoch's logs get 'learning_rate', as in Keras 3 (seen by the callbacks placed after this
    one, as for ReduceLROnPlateau). With a schedule as the optimizer's learning rate the first epoch
    raises Keras's TypeError; with Keras 2's decay= the schedule sets the lr the decay divides, as in
    Keras 2 (optimizers.Keras2Decay).
    Unlike Keras, the two signatures are told apart by the function's signature, not by catching a
    TypeError, so a TypeError raised inside a schedule(epoch, lr) reaches you as it is.
    """

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler needs a function schedule(epoch[, lr]), got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose
        self._with_lr = _takes_learning_rate(schedule)

    def _new_learning_rate(self, epoch, lr):
        if self._with_lr is None:
            try:
                return self.schedule(epoch, lr)
            except TypeError:
                return self.schedule(epoch)
        return self.schedule(epoch, lr) if self._with_lr else self.schedule(epoch)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        _require_settable_learning_rate(optimizer, "LearningRateScheduler")
        lr = self._new_learning_rate(epoch, _keras_learning_rate(optimizer))
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr}")
        _set_learning_rate(optimizer, lr, "LearningRateScheduler")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _keras_learning_rate(self.model.optimizer)


def _csv_value(value):
    """Keras's CSVLogger.handle_value: strings as they are, iterables (not 0-d arrays) as '"[a, b]"'."""
    if isinstance(value, str):
        return value
    if isinstance(value, collections.abc.Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
        return f'"[{", ".join(map(str, value))}]"'
    return value


class CSVLogger(Callback):
    """Keras's CSVLogger: one row per epoch in a CSV file, written as Keras writes it.

    The file: a header 'epoch,<keys>' then rows 'epoch index (0-based),<values>', keys sorted as
    Keras sorts them (the first epoch's logs, sorted; without any val_ key, the val_ twins of every
    key are added as columns, which then read NA); a key missing from an epoch's logs reads NA;
    floats as Python writes them (repr: 0.30000001192092896); csv's excel dialect (lines end with
    \\r\\n) with `separator` as the delimiter. fit() truncates the file when it starts; append=True
    continues an existing file instead, without a second header (a header is written only into an
    empty file).

    Never half-written: Keras keeps the file open and appends each row (flushed), so a crash or a
    full disk in the middle of a write can leave a cut row. Here each epoch the whole log (the rows
    so far, and with append=True what the file held before) is written to a temporary file, fsynced
    and renamed over the log (saving.atomic_write, as every file minicnn writes): at any moment the
    file is a complete CSV of the finished epochs, and an interrupted write leaves the previous
    version. A log has one row per epoch, so rewriting it costs nothing next to an epoch. Two
    consequences of the rename: the file is a new inode each epoch (follow it with `tail -F`, not
    `tail -f`; a hard link keeps an old version), and a symbolic link to the log is followed (its
    target is replaced). With append=True, a file that does not end with a line ending (cut by
    another writer) gets one before the first new row, so that row starts on its own line.
    """

    def __init__(self, filename, separator=",", append=False):
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        csv.writer(io.StringIO(), delimiter=separator)   # a bad separator fails here, not after an epoch
        self.keys = None
        self._content = None            # the bytes the file holds (rewritten whole each epoch)

    def _write(self):
        content = self._content
        atomic_write(os.path.realpath(self.filename), lambda f: f.write(content))

    def on_train_begin(self, logs=None):
        previous = b""
        if self.append and os.path.exists(self.filename):
            with open(self.filename, "rb") as f:
                previous = f.read()
        self.append_header = not previous
        if previous and not previous.endswith(b"\n"):
            previous += b"\r\n"
        self._content, self.keys = previous, None
        if not previous:                # Keras opens the file here: "w" empties it, "a" creates it
            self._write()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._content is None:
            self.on_train_begin()
        header = self.keys is None and self.append_header
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys.extend([f"val_{k}" for k in self.keys])

        class Dialect(csv.excel):
            delimiter = self.sep

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["epoch"] + self.keys, dialect=Dialect)
        if header:
            writer.writeheader()
        writer.writerow({"epoch": epoch, **{k: _csv_value(logs.get(k, "NA")) for k in self.keys}})
        self._content += out.getvalue().encode("utf-8")
        self._write()                   # (nothing to close when training ends: the file is complete)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite, naming the epoch and step."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, step, logs=None):
        loss = self.model.trainer.last_batch_loss()
        if not np.isfinite(loss):
            print(f"Epoch {self.epoch + 1}, batch {step + 1}: invalid loss {loss}, terminating training",
                  flush=True)
            self.model.stop_training = True
            self.model.stop_reason = f"loss became {loss} at epoch {self.epoch + 1}, batch {step + 1}"


class LambdaCallback(Callback):
    """Keras's LambdaCallback: plain functions called at those moments, e.g.
    LambdaCallback(on_epoch_begin=lambda epoch, logs: ...)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        unknown = set(kwargs) - set(HOOKS)          # Keras takes any hook by name (on_batch_end, ...)
        if unknown:
            raise TypeError(f"LambdaCallback got unexpected argument(s): {sorted(unknown)}")
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_train_batch_begin", on_train_batch_begin), ("on_train_batch_end", on_train_batch_end),
                         *kwargs.items()):
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback {name} must be callable, got {fn!r}")
                setattr(self, name, fn)


class FreezeAfter(Callback):
    """minicnn's own: from epoch `epochs` on (0-based: after that many epochs), the optimizer stops
    updating the variables matching `pattern` (Optimizer.freeze), e.g. a bias trained only early."""

    def __init__(self, pattern, epochs):
        if not is_int(epochs) or epochs < 0:
            raise ValueError(f"FreezeAfter epochs must be an int >= 0, got {epochs!r}")
        self.pattern, self.epochs = pattern, int(epochs)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.epochs and self.pattern not in self.model.optimizer.frozen:
            self.model.optimizer.freeze(self.pattern)


class EpochTimer(Callback):
    """Wall-clock seconds of each epoch (training plus validation): `times`."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def _weights_and_grads(layer):
    """[(w, dw)] of every trainable array in a layer, or in every layer inside a container."""
    inner = layer.sublayers() if hasattr(layer, "sublayers") else [layer]
    return [(sub.params[k], sub.grads[k]) for sub in inner for k in sub.params if k in sub.grads]


def _norm(arrays):
    return math.sqrt(sum(float((a.astype("float64") ** 2).sum()) for a in arrays))


class TrainingDynamics(Callback):
    """minicnn's own, for minicnn.explain: what training does inside the network, per layer and epoch.

        activation_mean, activation_std, zero_fraction   of each layer's output on a fixed probe
                                                         batch (the first `probe_size` of x)
        grad_norm      ||dL/dW|| over the layer's weights, from one backward pass on the probe
                       batch (computed and put back: the optimizer never sees it)
        update_ratio   ||W_end - W_start|| / ||W_start|| over the epoch (how far the weights moved)

    The probe runs in inference mode (no Dropout masks drawn, BatchNormalization's moving
    statistics used and left alone) and each layer's gradient buffers get their values back, so
    training with and without this callback gives the same weights. `record` holds the numbers;
    with `path`, they are also written there as JSON (atomically) after each epoch.
    """

    def __init__(self, x, y, path=None, probe_size=64):
        if len(x) < 1 or len(x) != len(y):
            raise ValueError(f"TrainingDynamics needs a probe batch of images and their labels, got {len(x)} "
                             f"images and {len(y)} labels")
        self.x, self.y = np.asarray(x[:probe_size]), np.asarray(y[:probe_size])
        self.path = path
        self.record = {"probe_size": len(self.x), "epochs": [], "layers": {}}

    def on_epoch_begin(self, epoch, logs=None):
        self._start = [[w.copy() for w, _ in _weights_and_grads(layer)] for layer in self.model.layers]

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        self.record["epochs"].append(epoch + 1)
        x = backend.to_device(self.x, backend.floatx())
        for name, layer, out in model.layer_outputs(x):
            row = self.record["layers"].setdefault(name, {"class": type(layer).__name__})
            out = out.astype("float64")
            for key, value in (("activation_mean", out.mean()), ("activation_std", out.std()),
                               ("zero_fraction", (out == 0).mean())):
                row.setdefault(key, []).append(float(value))
        grad_norms = self._probe_gradients(x)
        for layer, start in zip(model.layers, self._start):
            pairs = _weights_and_grads(layer)
            if not pairs:
                continue
            row = self.record["layers"][layer.name]
            moved = _norm([w - w0 for (w, _), w0 in zip(pairs, start)]) / max(_norm(start), 1e-30)
            row.setdefault("grad_norm", []).append(grad_norms[layer.name])
            row.setdefault("update_ratio", []).append(moved)
        if self.path is not None:
            text = json.dumps(self.record, indent=1) + "\n"
            atomic_write(self.path, lambda f: f.write(text.encode()))

    def _probe_gradients(self, x):
        """{layer name: ||dL/dW||} from one inference-mode forward and backward on the probe batch;
        every gradient buffer (and scratch buffer) gets its values back afterwards."""
        model = self.model
        inner = list(model.sublayers())
        saved = [(g, g.copy()) for layer in inner for g in layer.grads.values()]
        workspaces = [(layer, dict(layer.__dict__.get("_workspaces", {}))) for layer in inner]
        try:
            out = model.forward(x, training=False)
            model._loss_and_grad(out, backend.to_device(self.y))
            return {layer.name: _norm([g for _, g in _weights_and_grads(layer)])
                    for layer in model.layers if _weights_and_grads(layer)}
        finally:
            for g, values in saved:
                g[...] = values
            for layer, ws in workspaces:
                layer.__dict__["_workspaces"] = ws
                layer.cache = None
            model.__dict__.pop("logits", None)

def __getattr__(name):
    raise _keras_names.missing("callbacks", name, globals())
