"""Callbacks called by fit(): History, ProgbarLogger, ModelCheckpoint, EarlyStopping, TerminateOnNaN.

Hooks: on_train_begin/end(logs), on_epoch_begin(epoch), on_epoch_end(epoch, logs),
on_train_batch_end(step, logs). `logs` at batch end is a callable returning the running
metrics, so nothing reads the device unless a callback asks (no host sync inside a step).
"""
import math
import sys
import time

import numpy as np


def format_value(v):
    """Keras's progress-bar number format: .4f above 1e-3, .4e below."""
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


def format_logs(logs):
    return " - ".join(f"{k}: {format_value(v)}" for k, v in logs.items())


class Callback:
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

    def on_train_batch_end(self, step, logs=None):
        pass


class CallbackList(Callback):
    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be minicnn.callbacks.Callback instances, got {type(cb).__name__}")
            cb.set_model(model)

    def __getattribute__(self, name):
        if name.startswith("on_"):
            def call_all(*args, **kwargs):
                for cb in object.__getattribute__(self, "callbacks"):
                    getattr(cb, name)(*args, **kwargs)
            return call_all
        return object.__getattribute__(self, name)


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
        print(f"Epoch {epoch + 1}/{self.epochs}", file=self.file, flush=True)
        self.start = self.last = time.perf_counter()
        if self.verbose == 1:
            from tqdm import tqdm
            self.bar = tqdm(total=self.steps, file=self.file, ascii=" ━", mininterval=0, postfix=[""],
                            bar_format="{n_fmt}/{total_fmt} {bar:20} {postfix[0]}", leave=True)

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
        metrics = logs() if callable(logs) else (logs or {})
        self.bar.postfix[0] = f"{head} - {format_logs(metrics)}"
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
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def _get_monitor_value(self, logs):
        """The monitored value, or None (with a warning, as Keras does) when the logs lack it."""
        if self.monitor not in (logs or {}):
            import warnings
            warnings.warn(f"{type(self).__name__} monitors {self.monitor!r}, but this epoch's logs only have "
                          f"{sorted(logs or {})}; skipping (pass validation_data/validation_split, or monitor "
                          "another metric)", stacklevel=3)
            return None
        return logs[self.monitor]


class ModelCheckpoint(_MonitorCallback):
    """Save the model (or only its weights) at the end of each epoch, or only on improvement.

    filepath may hold format fields: 'w.{epoch:02d}-{val_loss:.2f}.weights.npz' (epoch 1-based).
    Saves are atomic: an interrupted save leaves the previous file intact.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        if save_freq != "epoch":
            raise ValueError(f"only save_freq='epoch' is supported, got {save_freq!r}")
        self.filepath, self.verbose = str(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self._init_monitor(monitor, mode)
        self.best = initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad or self.model.stop_reason:
            # a diverged or interrupted epoch never overwrites the last good checkpoint
            print(f"\nEpoch {epoch + 1}: not saving to {path}: "
                  f"{'non-finite ' + ', '.join(bad) if bad else self.model.stop_reason}", flush=True)
            return
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
            self.best = value
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}", flush=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


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
                 on_train_batch_end=None, **kwargs):
        if kwargs:
            raise TypeError(f"LambdaCallback got unexpected argument(s): {sorted(kwargs)}")
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_train_batch_end", on_train_batch_end)):
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback {name} must be callable, got {fn!r}")
                setattr(self, name, fn)


class FreezeAfter(Callback):
    """minicnn's own: from epoch `epochs` on (0-based: after that many epochs), the optimizer stops
    updating the variables matching `pattern` (Optimizer.freeze), e.g. a bias trained only early."""

    def __init__(self, pattern, epochs):
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"FreezeAfter epochs must be an int >= 0, got {epochs!r}")
        self.pattern, self.epochs = pattern, epochs

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
