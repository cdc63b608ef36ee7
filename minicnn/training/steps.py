"""One batch: the loss, its gradient through the model, the optimizer's update, the accuracy.

    out = model.forward(xb, training=True)
    loss, d = loss(yb, out)              the mean batch loss and dL/dout
                                         (a softmax head with cross-entropy: the loss owns the
                                          softmax, d = dL/dlogits = (p - y)/N, see losses.py)
    model.backward(d)                    every layer fills its grads
    loss += sum r(w); g += r'(w)         the weights' regularizers, if any (regularizers.py)
    optimizer.apply(variables)           w updated in place, then the constraints

The same functions run on every backend (the kernels underneath choose); the GPU's graphed
strategy (graphed.py) records this step into a CUDA graph.
"""
import contextlib
import warnings

import numpy as np

from minicnn import backend, callbacks
from minicnn.training import data


def batch_loss(model, out, yb):
    """(mean loss, dL/d(what the loss reads)) of one batch: the logits the model kept when the loss
    owns the head's softmax (compile), else the model's output."""
    if model._fused:
        return model.loss.from_logits_of_softmax(yb, model.logits)
    return model.loss(yb, out)


def regularize(variables, add_gradients=False):
    """Keras's regularization: the sum of the penalties r(w) of the weights in `variables` (path,
    layer, key) that have a regularizer (0.0 where none has), which Keras adds to every batch's
    loss; with add_gradients=True each dr/dw is added to that weight's gradient, in place."""
    penalty = 0.0
    for _, layer, key in variables:
        r = layer.regularizers.get(key)
        if r is not None:
            penalty = penalty + r(layer.params[key])
            if add_gradients:
                r.add_gradient(layer.params[key], layer.grads[key])
    return penalty


def loss_and_backward(model, out, yb, variables=None):
    """The batch's mean loss, regularization included, after backward through the whole model
    (every grads filled, the regularizers' gradients added). variables: model.variables()."""
    loss, d = batch_loss(model, out, yb)
    model.backward(d)
    return loss + regularize(model.variables() if variables is None else variables, add_gradients=True)


def count_correct(out, yb):
    """Number of correct predictions in the batch (a scalar array, on the device where out is):
    argmax against the class (one-hot or id), or p > 0.5 for one sigmoid output."""
    if out.shape[-1] == 1:
        return ((out[:, 0] > 0.5) == (yb.reshape(-1) > 0.5)).sum()
    truth = yb if yb.ndim == 1 else yb.argmax(axis=-1)
    return (out.argmax(axis=-1) == truth).sum()


def update_list(variables):
    """optimizer.apply's argument, (path, w, g, constraint), from model.variables()'s list."""
    return [(path, layer.params[k], layer.grads[k], layer.constraints.get(k)) for path, layer, k in variables]


def train_step(model, xb, yb, variables):
    """One update on one batch; returns (batch mean loss, correct count) as scalars of the backend."""
    out = model.forward(xb, training=True)
    loss = loss_and_backward(model, out, yb, variables)
    correct = count_correct(out, yb)
    model.optimizer.apply(update_list(variables))
    return loss, correct


def release_caches(model):
    """Drop what the last forward kept for a backward pass (inference needs none)."""
    for layer in model.sublayers():
        layer.cache = None
    model.__dict__.pop("logits", None)


class HostLoop:
    """The training strategy for every backend without minicnn's CUDA kernels (the CPU, and the
    readable reference kernels anywhere): batches gathered from the host arrays, one eager step
    each. The GPU's graphed strategy (graphed.DeviceLoop) has the same methods."""

    def __init__(self, trainer, x, y, batch_size, augment=None):
        self.trainer, self.model = trainer, trainer.model
        self.x, self.y, self.batch_size, self.augment = x, y, batch_size, augment
        self.batch_loss = 0.0
        self.ran_dry = False             # a generator ran out of batches (SourceLoop): fit stops after this epoch

    def train_epoch(self, epoch, shuffle, cbs):
        """One pass over the data; returns the epoch's running training metrics."""
        trainer, metrics = self.trainer, self.trainer.metrics
        metrics.reset()
        for step, (xb, yb) in enumerate(self.epoch_batches(epoch, shuffle)):
            trainer.where = f"in epoch {epoch + 1}, step {step + 1}"
            cbs.on_train_batch_begin(step)
            loss, correct = train_step(self.model, xb, yb, trainer.variables)
            metrics.add(loss, correct, len(xb))
            self.batch_loss = loss
            cbs.on_train_batch_end(step, callbacks.BatchLogs(metrics.logs))
            if self.model.stop_training:
                break
        self.epoch_end()
        return metrics.logs()

    def epoch_batches(self, epoch, shuffle):
        """The epoch's (xb, yb), where the backend computes: the (augmented) arrays in the epoch's order."""
        x = data.augmented(self.augment, self.x, epoch)
        order = data.epoch_order(self.model.seed, epoch, len(x), shuffle)
        return data.batches(x, self.y, order, self.batch_size)

    def epoch_end(self):
        pass

    def place(self, pair):
        """The validation pair where evaluate reads it (here: as it is)."""
        return pair

    def context(self):
        return contextlib.nullcontext()

    def last_batch_loss(self):
        return float(self.batch_loss)

    def close(self):
        pass


def _evaluate_batches(model, batches):
    """(loss sum, correct count, samples) over (xb, yb) batches, in inference mode."""
    loss_sum = correct = 0.0
    seen = 0
    for xb, yb in batches:
        out = model.forward(xb, training=False, keep_caches=False)
        loss, _ = batch_loss(model, out, yb)
        loss_sum, correct, seen = loss_sum + loss * len(xb), correct + count_correct(out, yb), seen + len(xb)
    release_caches(model)
    return float(loss_sum), float(correct), seen


def evaluate_sums(model, x, y, batch_size):
    """(loss sum, correct count) over (x, y) in inference mode, chunk by chunk."""
    return _evaluate_batches(model, data.inference_batches(model, x, y, batch_size))[:2]


def predict_host(model, x, batch_size):
    """Outputs for x, chunk by chunk in inference mode, into one host array (N, ...)."""
    out = np.empty((len(x),) + tuple(model.output_shape), dtype=backend.floatx())
    start = 0
    for xb, _ in data.inference_batches(model, x, None, batch_size):
        out[start:start + len(xb)] = backend.to_host(model.forward(xb, training=False, keep_caches=False))
        start += len(xb)
    release_caches(model)
    return out


# ---- generators and Sequences ---------------------------------------------------------------------
def checked_batch(model, batch, labels=True):
    """One batch of a source, checked like fit's arrays and placed where the backend computes."""
    xb, yb = data.split_batch(batch, labels)
    xb = data.check_x(model, xb, "a batch's x")
    yb = None if yb is None else backend.to_device(data.check_y(model, yb, len(xb), "a batch's y"))
    return backend.to_device(xb, backend.floatx()), yb


class SourceLoop(HostLoop):
    """The training strategy for a generator or a Keras Sequence (data.BatchSource): each epoch
    takes steps_per_epoch batches from it, checks each like an array, and runs one eager step."""

    def __init__(self, trainer, source, n_steps):
        super().__init__(trainer, None, None, None)
        self.source, self.n_steps = source, n_steps

    def train_epoch(self, epoch, shuffle, cbs):
        """HostLoop's epoch over the next n_steps batches. A generator that runs out ends training
        as in Keras: a warning, and this epoch's logs over the batches it gave (validated and
        recorded; then fit stops), or None (the epoch is not recorded) when it gave none. (fit has
        checked that it gives a first batch.)"""
        logs = super().train_epoch(epoch, shuffle, cbs)
        given = self.source.given
        if given < self.n_steps and not self.model.stop_training:
            warnings.warn("Your input ran out of data; interrupting training. Make sure that your dataset or "
                          "generator can generate at least `steps_per_epoch * epochs` batches. "
                          f"({self.source.what} gave {given} of the {self.n_steps} batches of epoch {epoch + 1}"
                          f"{'' if given else ', which is not recorded'})", stacklevel=4)
            self.ran_dry = True
        return logs if given else None

    def epoch_batches(self, epoch, shuffle):
        """The next n_steps batches of the source, each checked (shuffling is the source's own)."""
        return (checked_batch(self.model, batch) for batch in self.source.batches(self.n_steps))

    def epoch_end(self):
        self.source.epoch_end()


def evaluate_source(model, source, n_steps):
    """(loss sum, correct count, samples) over n_steps batches of a source, in inference mode."""
    sums = _evaluate_batches(model, (checked_batch(model, batch) for batch in source.batches(n_steps)))
    source.check_given(n_steps, "evaluate")
    return sums


def predict_source(model, source, n_steps):
    """Outputs for n_steps batches of a source (x alone, or (x, y) whose y is ignored), stacked."""
    outs = [backend.to_host(model.forward(checked_batch(model, batch, labels=False)[0], training=False,
                                          keep_caches=False))
            for batch in source.batches(n_steps)]
    release_caches(model)
    source.check_given(n_steps, "predict")
    return np.concatenate(outs)
