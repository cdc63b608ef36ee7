"""Sequential: a stack of layers that is itself a layer, with Keras's compile/fit/evaluate/predict.

Training step (see DESIGN.md): forward in training mode -> loss (softmax fused with cross-entropy
when the last layer ends in softmax) -> backward through the layers (each fills its grads) ->
optimizer updates the weights in place (then constraints). The epoch's loss and accuracy are
running, sample-weighted means of the training-mode forwards, as Keras reports them.
"""
import contextlib
import math
import warnings

import numpy as np

from minicnn import backend, kernels, losses, optimizers
from minicnn import callbacks as callbacks_module
from minicnn.layers.base import Layer, snake_case
from minicnn.layers.core import InputLayer

_ACCURACY_NAMES = ("accuracy", "acc")
INFERENCE_BYTES = 4 << 20       # evaluate/predict: the largest activation of one chunk of images (CPU)


def _first_non_finite(x):
    """Index of the first sample of x holding NaN or inf, or None. Host arrays are scanned in
    chunks of ~4M values (no full-size temporary); device arrays in one pass."""
    if not isinstance(x, np.ndarray):
        finite = backend.xp.isfinite(x).reshape(len(x), -1).all(axis=1)
        return None if bool(finite.all()) else int(backend.xp.argmin(finite))
    step = max(1, (1 << 22) // max(1, int(np.prod(x.shape[1:]))))
    for start in range(0, len(x), step):
        finite = np.isfinite(x[start:start + step]).reshape(min(step, len(x) - start), -1).all(axis=1)
        if not finite.all():
            return start + int(np.argmin(finite))
    return None


def augmented(augment, x, epoch):
    """fit's per-epoch augmentation of the training array x (or x itself), checked."""
    if augment is None:
        return x
    out = augment(x, epoch)
    if getattr(out, "shape", None) != x.shape or getattr(out, "dtype", None) != x.dtype or type(out) is not type(x):
        raise ValueError(f"augment({augment!r}) must return an array like its input ({type(x).__name__} "
                         f"{x.dtype} {tuple(x.shape)}), got {type(out).__name__} "
                         f"{getattr(out, 'dtype', None)} {tuple(getattr(out, 'shape', ()))}")
    return out


def _layers_from_config(config, custom_objects=None):
    """The layers listed in a Sequential's (or Residual's) config, rebuilt."""
    from minicnn import layers as layers_module
    custom = dict(custom_objects or {})
    out = []
    for spec in config["layers"]:
        name = spec["class_name"]
        if name in ("Sequential", "Residual"):
            out.append(globals()[name].from_config(spec["config"], custom_objects))
            continue
        klass = custom[name] if name in custom else layers_module.get_class(name)
        out.append(klass.from_config(spec["config"]))
    return out


class Sequential(Layer):
    """A linear stack of layers: Sequential([Conv2D(...), ...]) or model.add(layer)."""
    ends_in_last_layer = True       # the output is the last layer's (a softmax head there is the model's)

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._layers = []
        self._input_grad = False
        self.optimizer = self.loss = None
        self.metric_names = []
        self.compiled = False
        self.stop_training = False
        self.stop_reason = None
        self.seed = None
        self._constructed = False
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            for layer in layers:
                self.add(layer)
        self._constructed = True
        self._build_if_shape_known()

    def _build_if_shape_known(self):
        """Build as soon as the input shape is known (the first layer's input_shape, or an Input),
        as Keras does: the weights exist right after construction, for count_params, get_weights
        or set_weights."""
        if not self.built and self._constructed and self.layers and self._declared_input_shape() is not None:
            self.build()

    # ---- structure --------------------------------------------------------------------------
    @property
    def layers(self):
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    @property
    def input_grad(self):
        return self._input_grad

    @input_grad.setter
    def input_grad(self, value):
        self._input_grad = value
        for layer in self.entry_layers():
            layer.input_grad = value

    def entry_layers(self):
        """The layers that receive this container's input (their dL/dx is the container's)."""
        return self.layers[:1]

    def add(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a minicnn layer, got {type(layer).__name__}: {layer!r}")
        if isinstance(layer, InputLayer) and self._layers:
            raise ValueError("an Input layer can only be the first layer of a Sequential")
        if any(layer is other for other in self._layers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        self._layers.append(layer)
        if self.built:
            previous = self.layers[-2].output_shape if len(self.layers) > 1 else self.input_shape
            self._build_layer(layer, previous, len(self.layers) - 1)
            self.output_shape = layer.output_shape
        else:
            self._build_if_shape_known()

    def _declared_input_shape(self):
        if not self._layers:
            return None
        first = self._layers[0]
        return first.input_shape

    def structural_keys(self):
        """Keras 3's weight-file keys: snake_case class name, made unique by position."""
        counts, keys = {}, []
        for layer in self.layers:
            base = snake_case(type(layer).__name__)
            n = counts.get(base, 0)
            counts[base] = n + 1
            keys.append(base if n == 0 else f"{base}_{n}")
        return keys

    def _build_layer(self, layer, shape, index):
        layer.input_grad = index > 0 or self._input_grad
        if layer.built:
            if tuple(layer.input_shape) != tuple(shape):
                raise ValueError(f"layer {layer.name!r} was built for input {layer.input_shape}, "
                                 f"but the layer before it gives {tuple(shape)}")
        else:
            layer.build(tuple(shape))

    def build(self, input_shape=None):
        if input_shape is None:
            input_shape = self._declared_input_shape()
        if input_shape is None:
            raise ValueError("cannot build the model: give the first layer input_shape=..., start with "
                             "Input(shape=...), or call model.build(input_shape)")
        input_shape = tuple(input_shape)
        if input_shape and input_shape[0] is None:           # Keras style (None, H, W, C)
            input_shape = input_shape[1:]
        if not self.layers:
            raise ValueError("cannot build an empty Sequential: add layers first")
        if self.seed is None:
            self.seed = int(backend.new_rng().integers(2**31))
        self.input_shape = input_shape
        shape = input_shape
        for i, layer in enumerate(self.layers):
            self._build_layer(layer, shape, i)
            shape = layer.output_shape
        self.output_shape = tuple(shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    # ---- computing ----------------------------------------------------------------------------
    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dout, layers=None):
        for layer in reversed(self.layers if layers is None else layers):
            dout = layer.backward(dout)
            if dout is None:
                break
        return dout

    def members(self):
        """(key, layer) for every layer holding weights or state, in Keras order: here the stack's
        layers; a Residual adds its shortcut."""
        return list(zip(self.structural_keys(), self.layers))

    def variables(self, prefix=""):
        """(path, layer, key) for every trainable parameter, in Keras order."""
        out = []
        for key, layer in self.members():
            if not layer.trainable:
                continue
            if isinstance(layer, Sequential):
                out += layer.variables(prefix + key + "/")
            else:
                out += [(f"{prefix}{key}/{k}", layer, k) for k in layer.params]
        return out

    def sublayers(self):
        """Every non-container layer inside, depth first."""
        for _, layer in self.members():
            yield from layer.sublayers() if isinstance(layer, Sequential) else (layer,)

    # ---- weights ------------------------------------------------------------------------------
    def weight_keys(self):
        return [f"{key}/{k}" for key, layer in self.members() for k in layer.weight_keys()]

    def get_weights(self):
        return [w for _, layer in self.members() for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer.weight_keys()) for _, layer in self.members())
        if len(weights) != expected:
            raise ValueError(f"model {self.name!r} expects {expected} weight arrays, got {len(weights)}")
        for _, layer in self.members():
            n = len(layer.weight_keys())
            layer.set_weights(weights[:n])
            weights = weights[n:]

    def _new_weight_dicts(self):
        pass        # a Sequential's weights live in its layers

    @property
    def params(self):
        """{path: array} of every layer's trainable weights (read-only: use set_weights)."""
        return {f"{key}/{k}": v for key, layer in self.members() for k, v in layer.params.items()}

    @property
    def state(self):
        """{path: array} of every layer's non-trainable weights (read-only: use set_weights)."""
        return {f"{key}/{k}": v for key, layer in self.members() for k, v in layer.state.items()}

    def count_params(self, trainable=None):
        return sum(layer.count_params(trainable) for _, layer in self.members())

    def extra_state(self):
        return {key: state for key, layer in self.members() if (state := layer.extra_state())}

    def set_extra_state(self, state):
        for key, layer in self.members():
            layer.set_extra_state(state.get(key, {}))

    # ---- compile ------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        for key in kwargs:
            if key not in ("loss_weights", "weighted_metrics", "run_eagerly", "jit_compile", "steps_per_execution"):
                raise TypeError(f"compile() got an unexpected argument {key!r}")
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='categorical_crossentropy'")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        metrics = list(metrics or [])
        for m in metrics:
            if m not in _ACCURACY_NAMES:
                raise ValueError(f"unknown metric {m!r}; minicnn computes 'accuracy' (or 'acc')")
        self.metric_names = metrics[:1]          # 'accuracy' or 'acc': the history key, as in Keras
        self.compiled = True
        if not self.built and self._declared_input_shape() is not None:
            self.build()
        self._configure_head()

    def _head(self):
        head = self.layers[-1] if self.layers else None
        while isinstance(head, Sequential) and head.ends_in_last_layer and head.layers:
            head = head.layers[-1]
        return head

    def _configure_head(self):
        head = self._head()
        activation = getattr(head, "activation", None)
        self._fused = bool(self.loss.fuses_softmax and activation is not None and activation.name == "softmax")
        if head is not None:
            head.keep_logits = self._fused

    # ---- input checks ------------------------------------------------------------------------
    def _check_x(self, x, what="x"):
        """Validate inputs before any computation; returns a NumPy (or device) array."""
        if x is None:
            raise ValueError(f"{what} is None; pass an array of images")
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = np.asarray(x)
        if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise TypeError(f"{what} must hold real numbers (float or integer), got dtype {x.dtype}")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"{what} is empty (shape {tuple(x.shape)}); there is nothing to train or predict on")
        if not self.built:
            self.build(self._declared_input_shape() or x.shape[1:])
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"model {self.name!r} expects {what} of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        if np.issubdtype(x.dtype, np.floating):
            first = _first_non_finite(x)
            if first is not None:
                raise ValueError(f"{what} contains NaN or infinite values (first at sample {first}); "
                                 "clean or re-scale the data")
        elif x.size and int(x.max()) > 1 and not getattr(self, "_warned_integer_input", False):
            self._warned_integer_input = True
            warnings.warn(f"{what} is {x.dtype} with values up to {int(x.max())}; minicnn casts it to "
                          f"{backend.floatx()} unscaled (the tutorials divide by 255 first)", stacklevel=3)
        return x

    def _check_y(self, y, n, what="y"):
        if y is None:
            raise ValueError(f"{what} is None; fit/evaluate need labels")
        y = self.loss.check_labels(backend.to_host(y), self.output_shape[-1])
        if len(y) != n:
            raise ValueError(f"{what} has {len(y)} samples but x has {n}; they must match")
        return y

    @staticmethod
    def _check_batch_size(batch_size, what="batch_size"):
        if batch_size is None:
            return 32
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"{what} must be a positive int, got {batch_size!r}")
        return int(batch_size)

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"call model.compile(optimizer, loss, metrics) before {what}()")

    # ---- batches ------------------------------------------------------------------------------
    def _batches(self, x, y, order, batch_size):
        """Yield (xb, yb) on the device, gathered into one reused float buffer."""
        xp, dtype = backend.xp, np.dtype(backend.floatx())
        buf = xp.empty((min(batch_size, len(order)),) + tuple(x.shape[1:]), dtype=dtype)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            xb = buf[:len(idx)]
            if backend.name == "cpu" and x.dtype == dtype:
                np.take(x, idx, axis=0, out=xb)
            else:
                # host arrays are gathered on the host; device arrays on the device
                xb[...] = backend.to_device(x[idx]) if isinstance(x, np.ndarray) else x[xp.asarray(idx)]
            yield xb, (None if y is None else backend.to_device(y[idx]))

    # ---- one step -----------------------------------------------------------------------------
    def _loss_and_grad(self, out, yb):
        """Loss of the batch and backward through the whole stack."""
        if self._fused:
            loss, dz = self.loss.from_logits_of_softmax(yb, self._head().logits)
            self._backward_from_logits(dz)
        else:
            loss, dout = self.loss(yb, out)
            self.backward(dout)
        return loss

    def _backward_from_logits(self, dz):
        """Backward from dL/dlogits of the softmax head (fused cross-entropy) through the whole stack."""
        dx = self._head().backward_logits(dz)
        if dx is not None:
            self._backward_below_head(dx)

    def _backward_below_head(self, dx):
        """Backward through every layer under the softmax head (nested Sequentials included)."""
        chain, model = [], self
        while isinstance(model, Sequential) and model.ends_in_last_layer:
            chain.append(model)
            model = model.layers[-1]
        for container in reversed(chain):
            dx = container.backward(dx, container.layers[:-1])
            if dx is None:
                return

    def _correct(self, out, yb):
        """Number of correct predictions in the batch (a device scalar)."""
        if out.shape[-1] == 1:
            return ((out[:, 0] > 0.5) == (yb.reshape(-1) > 0.5)).sum()
        truth = yb if yb.ndim == 1 else yb.argmax(axis=-1)
        return (out.argmax(axis=-1) == truth).sum()

    def _device_loss(self, xb, yb, stats, training):
        """GPU: forward, loss and accuracy accumulated into the device array stats (loss sum,
        correct count, last batch loss), and with training=True the backward pass. No host sync."""
        from minicnn.kernels import gpu
        out = self.forward(xb, training=training)
        if self._fused and isinstance(self.loss, losses.CategoricalCrossentropy):
            logits = self._head().logits
            dz = backend.xp.empty_like(logits)
            gpu.softmax_cross_entropy(logits, yb, self.loss.label_smoothing, dz, stats)
            if training:
                self._backward_from_logits(dz)
            return
        loss, dout = self.loss(yb, out)
        gpu.accumulate_stats(stats, backend.xp.asarray(loss, dtype=out.dtype), self._correct(out, yb), len(xb))
        if training:
            self.backward(dout)

    def _device_train_step(self, xb, yb, stats):
        """GPU: one update on one device batch (what a CUDA graph captures)."""
        with kernels.overlap():                  # weight gradients on a side stream, joined here
            self._device_loss(xb, yb, stats, training=True)
        self.optimizer.apply([(path, layer.params[k], layer.grads[k], layer.constraints.get(k))
                              for path, layer, k in self._variables])

    def train_step(self, xb, yb):
        """One update on one batch; returns (batch mean loss, correct count) as device scalars."""
        out = self.forward(xb, training=True)
        loss = self._loss_and_grad(out, yb)
        correct = self._correct(out, yb)
        self.optimizer.apply([(path, layer.params[k], layer.grads[k], layer.constraints.get(k))
                              for path, layer, k in self._variables])
        return loss, correct

    def _prepare_training(self):
        self._require_compiled("fit")
        self._variables = self.variables()
        self._track_optimizer_state()

    def _track_optimizer_state(self):
        """Hand the optimizer the float state it averages too (Lookahead with lookahead_state=True)."""
        if getattr(self.optimizer, "lookahead_state", False):
            self.optimizer.track_state([(path, a) for path, a in self.state.items() if a.dtype.kind == "f"])

    def train_on_batch(self, x, y):
        self._require_compiled("train_on_batch")
        x = self._check_x(x)
        y = self._check_y(y, len(x))
        self._prepare_training()
        loss, correct = self.train_step(backend.to_device(x, backend.floatx()), backend.to_device(y))
        return self._result(float(loss), float(correct) / len(x))

    def _result(self, loss, accuracy, return_dict=False):
        if return_dict:
            return {**({self.metric_names[0]: accuracy} if self.metric_names else {}), "loss": loss}
        return [loss, accuracy] if self.metric_names else loss

    # ---- fit ----------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0, validation_batch_size=None, cuda_graph=None,
            augment=None, **kwargs):
        """Train for `epochs` epochs (counted from initial_epoch); returns the History callback.

        On the GPU the data are uploaded once and every full-size step after the first replays a
        CUDA graph (``cuda_graph=False`` runs every step eagerly; see device_training.py).
        ``augment`` (minicnn's own): a callable f(x, epoch) -> array like x, applied to the whole
        training set at the start of every epoch, where the data live (e.g. augment.FlipTranslate)."""
        if kwargs:
            raise TypeError(f"fit() got unexpected argument(s): {sorted(kwargs)}")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable f(x, epoch) -> x (e.g. minicnn.augment.FlipTranslate()), "
                            f"got {augment!r}")
        self._require_compiled("fit")
        batch_size = self._check_batch_size(batch_size)
        verbose = self._check_fit_numbers(epochs, initial_epoch, validation_split, verbose)
        x, y, val = self._fit_data(x, y, validation_data, validation_split)
        self._prepare_training()
        steps = math.ceil(len(x) / batch_size)
        history = callbacks_module.History()
        cbs = [history] + ([callbacks_module.ProgbarLogger(verbose, steps, epochs)] if verbose else [])
        cbs = callbacks_module.CallbackList(cbs + list(callbacks or []), self)
        self._fit_params = {"epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": batch_size}
        self.history = history
        self.stop_training, self.stop_reason = False, None
        self._trainer = None
        context = contextlib.nullcontext()
        if kernels.device_kernels() and epochs > initial_epoch:
            from minicnn import device_training
            self._trainer = device_training.DeviceTrainer(self, x, y, batch_size, epochs - initial_epoch,
                                                          cuda_graph=True if cuda_graph is None else cuda_graph,
                                                          augment=augment)
            context = self._trainer.stream
            if val is not None:
                with context:
                    val = (device_training.upload(val[0], backend.floatx()), device_training.upload(val[1]))
        cbs.on_train_begin()
        self._where = "before the first epoch"
        try:
            with context:
                for epoch in range(initial_epoch, epochs):
                    cbs.on_epoch_begin(epoch)
                    if self._trainer is not None:
                        logs = self._trainer.train_epoch(epoch, shuffle, cbs)
                    else:
                        logs = self._train_epoch(augmented(augment, x, epoch), y, epoch, batch_size, shuffle, cbs)
                    if val is not None and not self.stop_training:
                        val_logs = self.evaluate(val[0], val[1], batch_size=validation_batch_size or batch_size,
                                                 verbose=0, return_dict=True, _checked=True)
                        logs.update({f"val_{k}": v for k, v in val_logs.items()})
                    cbs.on_epoch_end(epoch, logs)
                    if self.stop_training:
                        break
        except KeyboardInterrupt:
            print(f"\nTraining interrupted {self._where}; returning the history of the completed epochs.", flush=True)
            self.stop_reason = f"interrupted {self._where}"
        finally:
            if self._trainer is not None:
                self._trainer.stream.synchronize()
                self.optimizer._dev_remaining = 0       # the next update re-reads t and the schedule
                self.optimizer.defer_lookahead = False
                self._trainer = None                    # releases the CUDA graph
        self.optimizer.finalize_variable_values([layer.params[k] for _, layer, k in self._variables],
                                                [path for path, _, _ in self._variables])   # use_ema: w = average
        cbs.on_train_end()
        return history

    def _train_epoch(self, x, y, epoch, batch_size, shuffle, cbs):
        """One pass over (x, y); returns the epoch's running training metrics."""
        self._reset_metrics()
        order = self._epoch_order(epoch, len(x), shuffle)
        for step, (xb, yb) in enumerate(self._batches(x, y, order, batch_size)):
            self._where = f"in epoch {epoch + 1}, step {step + 1}"
            loss, correct = self.train_step(xb, yb)
            self._accumulate(loss, correct, len(xb))
            cbs.on_train_batch_end(step, self._running_logs)
            if self.stop_training:
                break
        return self._running_logs()

    @staticmethod
    def _check_fit_numbers(epochs, initial_epoch, validation_split, verbose):
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        if not isinstance(initial_epoch, (int, np.integer)) or initial_epoch < 0:
            raise ValueError(f"initial_epoch must be an int >= 0, got {initial_epoch!r}")
        if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        verbose = 1 if verbose == "auto" else verbose
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        return verbose

    def _fit_data(self, x, y, validation_data, validation_split):
        """Checked training arrays and the validation pair (given, or the LAST fraction, as Keras)."""
        x = self._check_x(x)
        y = self._check_y(y, len(x))
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            xv = self._check_x(validation_data[0], "validation x")
            return x, y, (xv, self._check_y(validation_data[1], len(xv), "validation y"))
        if not validation_split:
            return x, y, None
        split_at = int(math.floor(len(x) * (1 - validation_split)))
        if split_at == 0 or split_at == len(x):
            raise ValueError(f"validation_split={validation_split} leaves an empty training or validation "
                             f"set for {len(x)} samples")
        return x[:split_at], y[:split_at], (x[split_at:], y[split_at:])

    def _epoch_order(self, epoch, n, shuffle):
        """Sample order of one epoch: a permutation keyed by (model seed, epoch), so a run resumed
        with initial_epoch sees the same batches as an uninterrupted one."""
        if shuffle in (False, None):
            return np.arange(n)
        if shuffle == "batch":
            raise ValueError("shuffle='batch' is not supported; use True or False")
        return np.random.default_rng((self.seed, epoch)).permutation(n)

    def _reset_metrics(self):
        self._loss_sum = self._correct_sum = 0.0
        self._seen = 0
        self._batch_loss = 0.0

    def _accumulate(self, loss, correct, count):
        self._loss_sum = self._loss_sum + loss * count
        self._correct_sum = self._correct_sum + correct
        self._seen += count
        self._batch_loss = loss

    def _last_batch_loss(self):
        if getattr(self, "_trainer", None) is not None:
            return self._trainer.last_batch_loss()
        return float(self._batch_loss)

    def _running_logs(self):
        """The epoch's running means so far (reads the device: call only when displaying)."""
        logs = {}
        if self.metric_names:
            logs[self.metric_names[0]] = float(self._correct_sum) / max(self._seen, 1)   # the name given
        logs["loss"] = float(self._loss_sum) / max(self._seen, 1)
        return logs

    # ---- evaluate / predict -------------------------------------------------------------------
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False, _checked=False):
        """Loss and accuracy over (x, y) in inference mode; returns [loss, accuracy] like Keras."""
        import time
        self._require_compiled("evaluate")
        batch_size = self._check_batch_size(batch_size)
        if not _checked:
            x = self._check_x(x)
            y = self._check_y(y, len(x))
        start = time.perf_counter()
        if kernels.device_kernels():
            from minicnn import device_training
            loss_sum, correct = device_training.evaluate(self, x, y, batch_size)
        else:
            loss_sum = correct = 0.0
            for xb, yb in self._inference_batches(x, y, batch_size):
                out = self.forward(xb, training=False)
                if self._fused:
                    loss, _ = self.loss.from_logits_of_softmax(yb, self._head().logits)
                else:
                    loss, _ = self.loss(yb, out)
                loss_sum = loss_sum + loss * len(xb)
                correct = correct + self._correct(out, yb)
            self._release_caches()
        result = self._result(float(loss_sum) / len(x), float(correct) / len(x), return_dict=True)
        if verbose in (1, 2, "auto"):
            steps, elapsed = math.ceil(len(x) / batch_size), time.perf_counter() - start
            print(f"{steps}/{steps} - {elapsed:.0f}s - {elapsed / steps * 1e3:.0f}ms/step - "
                  f"{callbacks_module.format_logs(result)}", flush=True)
        if return_dict:
            return result
        return [result["loss"], result[self.metric_names[0]]] if self.metric_names else result["loss"]

    def predict(self, x, batch_size=None, verbose=0):
        """Outputs for x, computed batch by batch in inference mode; a NumPy array (N, ...)."""
        batch_size = self._check_batch_size(batch_size)
        x = self._check_x(x)
        if kernels.device_kernels():
            from minicnn import device_training
            return device_training.predict(self, x, batch_size)
        out = np.empty((len(x),) + tuple(self.output_shape), dtype=backend.floatx())
        start = 0
        for xb, _ in self._inference_batches(x, None, batch_size):
            out[start:start + len(xb)] = backend.to_host(self.forward(xb, training=False))
            start += len(xb)
        self._release_caches()
        return out

    def _inference_batches(self, x, y, batch_size):
        """evaluate's and predict's batches on the CPU: the user's batch_size, cut into chunks whose
        largest activation stays within INFERENCE_BYTES. In inference every sample is computed on its
        own (Dropout passes through, BatchNormalization uses its moving statistics), so the chunks
        change no number, only how much memory a large batch_size would take."""
        largest = max([int(np.prod(layer.output_shape)) for layer in self.sublayers()] + [int(np.prod(x.shape[1:]))])
        chunk = max(1, INFERENCE_BYTES // (largest * np.dtype(backend.floatx()).itemsize))
        return self._batches(x, y, np.arange(len(x)), min(batch_size, chunk))

    def _release_caches(self):
        """Drop what the last forward kept for a backward pass (inference needs none)."""
        for layer in self.sublayers():
            layer.cache = None
            layer.__dict__.pop("logits", None)

    # ---- summary ------------------------------------------------------------------------------
    def summary(self, print_fn=print):
        """Keras 3's table: layer (type), output shape, params; totals with sizes."""
        from minicnn.summary import summary_text
        if not self.built:
            self.build()
        print_fn(summary_text(self))

    # ---- config and files ---------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "seed": self.seed,
                "input_shape": None if self.input_shape is None else list(self.input_shape),
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}

    @classmethod
    def _constructor_config(cls, config, custom_objects=None):
        """Constructor arguments beyond the layers and the name, from get_config's dict (none here)."""
        return {}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(_layers_from_config(config, custom_objects), name=config.get("name"),
                    **cls._constructor_config(config, custom_objects))
        model.seed = config.get("seed")
        if config.get("input_shape") is not None:
            model.build(tuple(config["input_shape"]))
        return model

    def save_weights(self, filepath):
        from minicnn import saving
        saving.save_weights(self, filepath)

    def load_weights(self, filepath):
        from minicnn import saving
        saving.load_weights(self, filepath)

    def save(self, filepath):
        from minicnn import saving
        saving.save_model(self, filepath)


class Residual(Sequential):
    """A skip connection around a stack of layers:  y = f(x) + s(x).

    f, the branch, is the stack of the layers given; s, the shortcut, is the identity (default) or
    the stack given as shortcut=[...] (e.g. a 1x1 Conv2D with strides=2 when f halves the size or
    changes the channels). f(x) and s(x) must have the same shape. Use it like any layer:

        Sequential([Conv2D(64, 3, padding="same", activation="relu", input_shape=(32, 32, 3)),
                    Residual([Conv2D(64, 3, padding="same", activation="relu"), Conv2D(64, 3, padding="same")]),
                    ...])

    Backward: the upstream gradient g reaches x along both paths and the two are added,
        dL/dx = f'(x)^T g + s'(x)^T g        (identity shortcut: + g itself)
    so even when f's gradient fades, g passes down unchanged: why deep residual stacks train.
    Weights: the branch's layers as in a Sequential, then the shortcut's under "shortcut/".
    """
    ends_in_last_layer = False

    def __init__(self, layers=None, shortcut=None, name=None, trainable=True):
        super().__init__(layers, name=name, trainable=trainable)
        if shortcut is not None and not isinstance(shortcut, Sequential):
            shortcut = Sequential(shortcut, name=f"{self.name}_shortcut")
        if shortcut is not None and not shortcut.layers:
            shortcut = None
        self.shortcut = shortcut
        self._build_if_shape_known()

    def _build_if_shape_known(self):
        if hasattr(self, "shortcut"):                    # (not while Sequential.__init__ adds the branch)
            super()._build_if_shape_known()

    def entry_layers(self):
        shortcut = getattr(self, "shortcut", None)          # (not yet set while __init__ adds layers)
        return self.layers[:1] + ([shortcut] if shortcut is not None else [])

    def members(self):
        return super().members() + ([("shortcut", self.shortcut)] if self.shortcut is not None else [])

    def build(self, input_shape=None):
        super().build(input_shape)
        side = tuple(self.input_shape)
        if self.shortcut is not None:
            self.shortcut.input_grad = self._input_grad
            self.shortcut.build(self.input_shape)
            side = tuple(self.shortcut.output_shape)
        if side != tuple(self.output_shape):
            what = "the shortcut gives" if self.shortcut is not None else "the identity shortcut gives the input"
            raise ValueError(f"Residual {self.name!r}: the branch maps {tuple(self.input_shape)} to "
                             f"{tuple(self.output_shape)} but {what} {side}; the two must match (give "
                             "shortcut=[Conv2D(filters, 1, strides=...)] to change the shape)")

    def forward(self, x, training=False):
        side = x if self.shortcut is None else self.shortcut.forward(x, training=training)
        return super().forward(x, training=training) + side

    def backward(self, dout, layers=None):
        if layers is not None:
            raise ValueError("a Residual has no softmax head to backward from")
        through_branch = super().backward(dout)
        through_side = dout if self.shortcut is None else self.shortcut.backward(dout)
        if not self._input_grad:
            return None
        return through_branch + through_side

    def get_config(self):
        config = super().get_config()
        if self.shortcut is not None:
            config["shortcut"] = self.shortcut.get_config()
        return config

    @classmethod
    def _constructor_config(cls, config, custom_objects=None):
        shortcut = config.get("shortcut")
        return {"shortcut": None if shortcut is None else Sequential.from_config(shortcut, custom_objects)}
