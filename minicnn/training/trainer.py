"""The Trainer: what ``model.fit``, ``evaluate``, ``predict`` and ``train_on_batch`` run.

The model (model.py) is a container of layers: forward, backward, weights. Everything about
running it over a dataset lives here, as Keras 3 keeps ``trainers/`` apart from ``models/``:

    compile(...)       the optimizer, the loss, the metrics; who owns a softmax head's softmax
    fit(x, y, ...)     checks (data.py) -> callbacks -> for each epoch: a strategy's train_epoch,
                       then the validation pass -> the optimizer's final values (EMA, Lookahead)
    evaluate / predict inference-mode passes, cut into memory-bounded chunks
    train_on_batch     one eager step (steps.train_step)

The epoch loop itself is a *strategy*, chosen by what the backend offers:
    steps.HostLoop       every backend: batches from the host arrays, one eager step each
    graphed.DeviceLoop   the GPU with minicnn's CUDA kernels: data uploaded once, batches
                         gathered on the device, each step replayed as a CUDA graph
Both expose train_epoch(epoch, shuffle, callbacks) -> logs, last_batch_loss(), context(), close().
"""
import math
import time
import warnings

from minicnn import activations, backend, losses, optimizers
from minicnn import callbacks as callbacks_module
from minicnn.training import data, graphed
from minicnn.training import steps as loop_steps


ACCURACY_NAMES = ("accuracy", "acc")


class Metrics:
    """Running, sample-weighted means of the training-mode loss and accuracy, as Keras reports
    them during an epoch. Sums stay where the step computed them (no device sync per step)."""

    def __init__(self, names):
        self.names = names
        self.reset()

    def reset(self):
        self.loss_sum = self.correct = 0.0
        self.seen = 0

    def add(self, loss, correct, count):
        self.loss_sum = self.loss_sum + loss * count
        self.correct = self.correct + correct
        self.seen += count

    def logs(self):
        """The means so far (reads the device: call only when displaying)."""
        return result(self.names, float(self.loss_sum) / max(self.seen, 1),
                      float(self.correct) / max(self.seen, 1), return_dict=True)


def result(metric_names, loss, accuracy, return_dict=False):
    """Keras's return value: {'accuracy': a, 'loss': l} or [loss, accuracy] (loss alone without metrics)."""
    if return_dict:
        return {**({metric_names[0]: accuracy} if metric_names else {}), "loss": loss}
    return [loss, accuracy] if metric_names else loss


def check_metrics(metrics):
    """compile's metrics as a list, refusing what Keras refuses (a bare string: Keras does not
    iterate its letters) and a dict (Keras's metrics per output; a minicnn model has one output)."""
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        raise ValueError(f"metrics as a dict gives each output of a model its metrics, but a minicnn model has one "
                         f"output: pass a list, e.g. metrics=['accuracy']. Received instead: metrics={metrics!r}")
    if not isinstance(metrics, (list, tuple)):
        raise ValueError(f"Expected `metrics` argument to be a list, tuple, or dict. Received instead: "
                         f"metrics={metrics} of type {type(metrics)} (write metrics=['accuracy'])")
    for m in metrics:
        if m not in ACCURACY_NAMES:
            raise ValueError(f"unknown metric {m!r}; minicnn computes 'accuracy' (or 'acc')")
    return list(metrics)


class Trainer:
    """Runs one model over data. ``model.trainer`` holds it; ``model.fit(...)`` delegates here."""

    def __init__(self, model):
        self.model = model
        self.metrics = Metrics(model.metric_names)
        self.strategy = None         # the epoch loop while fit runs
        self.variables = []          # (path, layer, key) of every trainable weight
        self.params = {}             # what callbacks read as self.params (epochs, steps, verbose, ...)
        self.where = "before the first epoch"   # for the message of an interrupted fit
        self.log_keys = None         # the keys of fit's epoch logs (loss, accuracy, val_...), set by fit

    # ---- compile --------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """model.compile: the optimizer, the loss and the metrics (accuracy or none), recorded on the
        model as Keras does; then who owns a softmax head's softmax (configure_head)."""
        model = self.model
        for key in kwargs:
            if key not in ("loss_weights", "weighted_metrics", "run_eagerly", "jit_compile", "steps_per_execution"):
                raise TypeError(f"compile() got an unexpected argument {key!r}")
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='categorical_crossentropy'")
        metrics = check_metrics(metrics)
        model.optimizer = optimizers.get(optimizer)
        model.loss = losses.get(loss)
        model.metric_names = metrics[:1]          # 'accuracy' or 'acc': the history key, as in Keras
        model.compiled = True
        if not model.built and model._declared_input_shape() is not None:
            model.build()
        self.configure_head()

    def configure_head(self):
        """Decide once who owns a softmax head's softmax. With a cross-entropy loss the loss does,
        as deep-learning-from-scratch's SoftmaxWithLoss: the model's forward runs the head as
        activations.SoftmaxInTheLoss (its logits z out) and applies the softmax after the stack
        (outputs stay probabilities, as in Keras), and training differentiates softmax +
        cross-entropy in one step, dL/dz = (p - y) / N, exact even where p underflows. Any other
        loss: the head's own softmax. The head layer itself is left as it is: called on its own,
        or by another model sharing it, it gives probabilities."""
        model = self.model
        activation = getattr(model._head(), "activation", None)
        declared = activation if activation is None else activations.serialize(activation)
        model._fused = bool(model.loss.fuses_softmax and declared == "softmax" and model.ends_in_last_layer)
        if getattr(model.loss, "from_logits", False) and declared == "softmax" and model.ends_in_last_layer:
            warnings.warn(f"`{model.loss.name}` received `from_logits=True`, but the `output` argument was produced "
                          f"by a Softmax activation (of the last layer, {model._head().name!r}) and thus does not "
                          "represent logits. Was this intended? (Give the last layer no activation, or use "
                          "from_logits=False.)", stacklevel=4)

    # ---- before training ------------------------------------------------------------------------
    def require_compiled(self, what):
        if not self.model.compiled:
            raise RuntimeError(f"call model.compile(optimizer, loss, metrics) before {what}()")

    def prepare(self):
        """The variables the optimizer updates, and the float state Lookahead may track."""
        model = self.model
        self.require_compiled("fit")
        self.metrics.names = model.metric_names
        self.variables = model.variables()
        self.track_optimizer_state()

    def track_optimizer_state(self):
        """Hand the optimizer the float state it averages too (Lookahead with lookahead_state=True)."""
        model = self.model
        if getattr(model.optimizer, "lookahead_state", False):
            model.optimizer.track_state([(path, a) for path, a in model.state.items() if a.dtype.kind == "f"])

    # ---- fit ------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0, validation_batch_size=None, cuda_graph=None,
            augment=None, steps_per_epoch=None, validation_steps=None):
        model = self.model
        data.check_augment(augment)
        self.require_compiled("fit")
        batch_size = data.check_batch_size(batch_size)
        if validation_batch_size is not None:
            validation_batch_size = data.check_batch_size(validation_batch_size, "validation_batch_size")
        verbose = data.check_fit_numbers(epochs, initial_epoch, validation_split, verbose)
        if data.is_batch_source(x):
            source, val = self._fit_source(x, y, validation_data, validation_split, augment)
            n_steps = source.steps(steps_per_epoch)
        else:
            if steps_per_epoch is not None:
                raise ValueError("steps_per_epoch counts the batches of a generator or Sequence; with arrays "
                                 "batch_size sets the steps (ceil(len(x) / batch_size))")
            source = None
            val_source = data.is_batch_source(validation_data)
            x, y, val = data.fit_data(model, x, y, None if val_source else validation_data, validation_split)
            if val_source:
                val = (data.BatchSource(validation_data, "validation_data"), None)
            n_steps = math.ceil(len(x) / batch_size)
        if val is not None and isinstance(val[0], data.BatchSource):
            val[0].steps(validation_steps)                     # a generator without validation_steps: say so now
        self.prepare()
        history = callbacks_module.History()
        # Keras 3's order: the user's callbacks, then the progress bar, then History (which so
        # records what they add to the logs, e.g. ReduceLROnPlateau's learning_rate)
        progbar = [callbacks_module.ProgbarLogger(verbose, n_steps, epochs)] if verbose else []
        cbs = callbacks_module.CallbackList(callbacks_module.as_list(callbacks) + progbar + [history], model)
        self.params = {"epochs": epochs, "steps": n_steps, "verbose": verbose, "batch_size": batch_size}
        self.log_keys = model.metric_names + ["loss"]           # what each epoch's logs will hold
        self.log_keys += [] if val is None else [f"val_{k}" for k in self.log_keys]
        model.history = history
        model.stop_training, model.stop_reason = False, None
        if source is not None:
            self.strategy = loop_steps.SourceLoop(self, source, n_steps)
        elif graphed.usable() and epochs > initial_epoch:
            self.strategy = graphed.DeviceLoop(self, x, y, batch_size, epochs - initial_epoch,
                                               cuda_graph=True if cuda_graph is None else cuda_graph, augment=augment)
        else:
            self.strategy = loop_steps.HostLoop(self, x, y, batch_size, augment=augment)
        if val is not None and not isinstance(val[0], data.BatchSource):
            val = self.strategy.place(val)
        self.where = "before the first epoch"
        last_logs = None
        try:
            cbs.on_train_begin()
            with self.strategy.context():
                for epoch in range(initial_epoch, epochs):
                    cbs.on_epoch_begin(epoch)
                    logs = self.strategy.train_epoch(epoch, shuffle, cbs)
                    if logs is None:          # a generator ran dry before this epoch's first batch
                        break
                    if val is not None and not model.stop_training:
                        cbs.on_test_begin()
                        val_logs = self.evaluate(val[0], val[1], batch_size=validation_batch_size or batch_size,
                                                 verbose=0, return_dict=True, steps=validation_steps, _checked=True)
                        cbs.on_test_end(dict(val_logs))
                        logs.update({f"val_{k}": v for k, v in val_logs.items()})
                    cbs.on_epoch_end(epoch, logs)
                    last_logs = logs
                    if model.stop_training or self.strategy.ran_dry:
                        break
        except KeyboardInterrupt:
            print(f"\nTraining interrupted {self.where}; returning the history of the completed epochs.", flush=True)
            model.stop_reason = f"interrupted {self.where}"
        finally:
            self.strategy.close()
            self.strategy = None
        model.optimizer.finalize_variable_values([layer.params[k] for _, layer, k in self.variables],
                                                 [path for path, _, _ in self.variables])   # use_ema: w = average
        cbs.on_train_end(last_logs)             # (Keras passes the last epoch's logs)
        return history

    def _fit_source(self, x, y, validation_data, validation_split, augment):
        """fit on a generator or Sequence: the checks, the model built from the first batch, and the
        validation pair (arrays, checked; or another source)."""
        if y is not None:
            raise ValueError("y must be None when x is a generator or Sequence: its batches carry the labels")
        if validation_split:
            raise ValueError("validation_split needs arrays; with a generator give validation_data")
        if augment is not None:
            raise ValueError("fit(augment=...) augments arrays; augment a generator's batches in the generator "
                             "(e.g. minicnn.preprocessing.image.ImageDataGenerator)")
        source = data.BatchSource(x)
        first = source.first()          # read now, kept for the first step: an empty generator
        if first is None:               # fails before any callback has run (a CSVLogger truncated its file)
            raise source.empty("train on")
        if not self.model.built:
            data.check_x(self.model, data.split_batch(first)[0], "a batch's x")
        val = None
        if validation_data is not None:
            if data.is_batch_source(validation_data):
                val = (data.BatchSource(validation_data, "validation_data"), None)
            else:
                val = data.validation_arrays(self.model, validation_data)
        return source, val

    def last_batch_loss(self):
        """The loss of the last training batch (TerminateOnNaN reads it; on the GPU it syncs)."""
        return self.strategy.last_batch_loss() if self.strategy is not None else float("nan")

    # ---- one batch ------------------------------------------------------------------------------
    def train_on_batch(self, x, y, return_dict=False):
        self.require_compiled("train_on_batch")
        x = data.check_x(self.model, x)
        y = data.check_y(self.model, y, len(x))
        self.prepare()
        loss, correct = loop_steps.train_step(self.model, backend.to_device(x, backend.floatx()), backend.to_device(y),
                                         self.variables)
        return result(self.model.metric_names, float(loss), float(correct) / len(x), return_dict)

    # ---- evaluate / predict -------------------------------------------------------------------
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False, steps=None,
                 _checked=False):
        """Loss and accuracy over (x, y) (or a generator's or Sequence's batches, `steps` of them) in
        inference mode; returns [loss, accuracy] like Keras."""
        model = self.model
        self.require_compiled("evaluate")
        batch_size = data.check_batch_size(batch_size)
        verbose = data.check_verbose(verbose)
        start = time.perf_counter()
        if isinstance(x, data.BatchSource) or data.is_batch_source(x):
            source = x if isinstance(x, data.BatchSource) else data.BatchSource(x)
            if y is not None:
                raise ValueError("y must be None when x is a generator or Sequence: its batches carry the labels")
            n_steps = source.steps(steps)
            loss_sum, correct, n = loop_steps.evaluate_source(model, source, n_steps)
        else:
            if not _checked:
                x = data.check_x(model, x)
                y = data.check_y(model, y, len(x))
            sums = graphed.evaluate_sums if graphed.usable() else loop_steps.evaluate_sums
            (loss_sum, correct), n = sums(model, x, y, batch_size), len(x)
            n_steps = math.ceil(n / batch_size)
        loss = loss_sum / n + float(loop_steps.regularize(model.variables()))    # (Keras adds the penalties)
        logs = result(model.metric_names, loss, correct / n, return_dict=True)
        if verbose:                            # Keras 3: the full bar at verbose 1, the short line at 2
            elapsed = time.perf_counter() - start
            seconds, per_step = f"{elapsed:.0f}s", f"{elapsed / n_steps * 1e3:.0f}ms/step"
            timing = f" - {seconds} - {per_step}" if verbose == 2 else f" {'━' * 20} {seconds} {per_step}"
            print(f"{n_steps}/{n_steps}{timing} - {callbacks_module.format_logs(logs)}", flush=True)
        if return_dict:
            return logs
        return [logs["loss"], logs[model.metric_names[0]]] if model.metric_names else logs["loss"]

    def predict(self, x, batch_size=None, verbose=0, steps=None):
        """Outputs for x (or a generator's or Sequence's batches, `steps` of them), computed batch by
        batch in inference mode; a NumPy array (N, ...)."""
        batch_size = data.check_batch_size(batch_size)
        data.check_verbose(verbose)
        if data.is_batch_source(x):
            source = data.BatchSource(x)
            return loop_steps.predict_source(self.model, source, source.steps(steps))
        x = data.check_x(self.model, x)
        run = graphed.predict if graphed.usable() else loop_steps.predict_host
        return run(self.model, x, batch_size)

