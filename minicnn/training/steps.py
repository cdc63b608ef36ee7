"""One batch: the loss, its gradient through the model, the optimizer's update, the accuracy.

    out = model.forward(xb, training=True)
    loss, d = loss(yb, out)              the mean batch loss and dL/dout
                                         (a softmax head with cross-entropy: the loss owns the
                                          softmax, d = dL/dlogits = (p - y)/N, see losses.py)
    model.backward(d)                    every layer fills its grads
    optimizer.apply(variables)           w updated in place, then the constraints

The same functions run on every backend (the kernels underneath choose); the GPU's graphed
strategy (graphed.py) records this step into a CUDA graph.
"""
import contextlib

import numpy as np

from minicnn import backend
from minicnn.training import data


def batch_loss(model, out, yb):
    """(mean loss, dL/d(what the loss reads)) of one batch: the logits the model kept when the loss
    owns the head's softmax (compile), else the model's output."""
    if model._fused:
        return model.loss.from_logits_of_softmax(yb, model.logits)
    return model.loss(yb, out)


def loss_and_backward(model, out, yb):
    """The batch's mean loss, after backward through the whole model (every grads filled)."""
    loss, d = batch_loss(model, out, yb)
    model.backward(d)
    return loss


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
    loss = loss_and_backward(model, out, yb)
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

    def train_epoch(self, epoch, shuffle, cbs):
        """One pass over the data; returns the epoch's running training metrics."""
        trainer, metrics = self.trainer, self.trainer.metrics
        metrics.reset()
        x = data.augmented(self.augment, self.x, epoch)
        order = data.epoch_order(self.model.seed, epoch, len(x), shuffle)
        for step, (xb, yb) in enumerate(data.batches(x, self.y, order, self.batch_size)):
            trainer.where = f"in epoch {epoch + 1}, step {step + 1}"
            loss, correct = train_step(self.model, xb, yb, trainer.variables)
            metrics.add(loss, correct, len(xb))
            self.batch_loss = loss
            cbs.on_train_batch_end(step, metrics.logs)
            if self.model.stop_training:
                break
        return metrics.logs()

    def place(self, pair):
        """The validation pair where evaluate reads it (here: as it is)."""
        return pair

    def context(self):
        return contextlib.nullcontext()

    def last_batch_loss(self):
        return float(self.batch_loss)

    def close(self):
        pass


def evaluate_sums(model, x, y, batch_size):
    """(loss sum, correct count) over (x, y) in inference mode, chunk by chunk."""
    loss_sum = correct = 0.0
    for xb, yb in data.inference_batches(model, x, y, batch_size):
        out = model.forward(xb, training=False)
        loss, _ = batch_loss(model, out, yb)
        loss_sum = loss_sum + loss * len(xb)
        correct = correct + count_correct(out, yb)
    release_caches(model)
    return float(loss_sum), float(correct)


def predict_host(model, x, batch_size):
    """Outputs for x, chunk by chunk in inference mode, into one host array (N, ...)."""
    out = np.empty((len(x),) + tuple(model.output_shape), dtype=backend.floatx())
    start = 0
    for xb, _ in data.inference_batches(model, x, None, batch_size):
        out[start:start + len(xb)] = backend.to_host(model.forward(xb, training=False))
        start += len(xb)
    release_caches(model)
    return out
