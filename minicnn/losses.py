"""Losses. Each returns (mean loss over the batch, dL/d(input)), both on the device.

Cross-entropy after a softmax is computed from the logits z, fused (what Keras's TensorFlow
backend does): with p = softmax(z) and one-hot y over K classes, B = batch size,
    L = (1/B) sum_n [logsumexp(z_n) - sum_k y_nk z_nk]          (exact, no clipping)
    dL/dz = (p - y) / B
Without a softmax to fuse (or with fuse_softmax=False) the probabilities are used as Keras's
JAX/torch backends do: q = p / sum(p), q = clip(q, 1e-7, 1 - 1e-7), L = -(1/B) sum y log q.
"""
import numpy as np

from minicnn import _keras_names, backend
from minicnn.layers.base import is_real

EPSILON = 1e-7


def _log_softmax(z):
    xp = backend.xp
    zc = z - z.max(axis=-1, keepdims=True)
    return zc - xp.log(xp.exp(zc).sum(axis=-1, keepdims=True))


class Loss:
    name = "loss"
    fuses_softmax = False       # True: the model hands this loss the logits of a softmax head

    def __call__(self, y_true, y_pred):
        """(mean loss, dL/dy_pred)."""
        raise NotImplementedError

    def from_logits_of_softmax(self, y_true, z):
        raise NotImplementedError

    def check_labels(self, y, num_outputs):
        """Validate host labels against the model's output width; return them in the form
        this loss consumes (float32 one-hot or int32 class ids)."""
        return np.asarray(y, dtype=np.float32)

    def get_config(self):
        return {}


class CategoricalCrossentropy(Loss):
    """Cross-entropy with one-hot (or soft) targets y (B, K)."""
    name = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, fuse_softmax=True):
        if not is_real(label_smoothing) or not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.fuses_softmax = bool(fuse_softmax) and not self.from_logits

    def _targets(self, y, K):
        """The target distribution (B, K): the labels, smoothed toward uniform if asked."""
        if self.label_smoothing:
            return y * (1 - self.label_smoothing) + self.label_smoothing / K
        return y

    def from_logits_of_softmax(self, y_true, z):
        """Fused softmax + cross-entropy: L = mean(logsumexp(z) - y.z), dz = (p * sum(y) - y) / B."""
        y = self._targets(y_true, z.shape[-1])
        B = z.shape[0]
        logp = _log_softmax(z)
        loss = -(y * logp).sum() / B
        p = backend.xp.exp(logp)
        dz = (p * y.sum(axis=-1, keepdims=True) - y) / B
        return loss, dz

    def __call__(self, y_true, y_pred):
        if self.from_logits:
            return self.from_logits_of_softmax(y_true, y_pred)
        xp = backend.xp
        y, B = self._targets(y_true, y_pred.shape[-1]), y_pred.shape[0]
        S = y_pred.sum(axis=-1, keepdims=True)
        q = y_pred / S
        qc = xp.clip(q, EPSILON, 1 - EPSILON)
        loss = -(y * xp.log(qc)).sum() / B
        # d/dp_j of -sum_k y_k log(q_k) where q = p / S; clipped entries pass no gradient
        w = y * ((q > EPSILON) & (q < 1 - EPSILON))
        dp = (-w / qc + w.sum(axis=-1, keepdims=True)) / S / B
        return loss, dp

    def check_labels(self, y, num_outputs):
        y = np.asarray(y)
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and num_outputs != 1):
            raise ValueError(f"categorical_crossentropy expects one-hot labels of shape (N, {num_outputs}), "
                             f"got integer class labels of shape {y.shape}; use "
                             "minicnn.utils.to_categorical(y, num_classes) or loss='sparse_categorical_crossentropy'")
        if y.ndim != 2 or y.shape[1] != num_outputs:
            raise ValueError(f"categorical_crossentropy expects labels of shape (N, {num_outputs}) to match the "
                             f"model's {num_outputs} outputs, got {y.shape}")
        if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
            raise TypeError(f"labels must be numeric, got dtype {y.dtype}")
        if not np.isfinite(y).all() or y.min() < 0:
            raise ValueError("one-hot labels must be finite and >= 0")
        return y.astype(np.float32, copy=False)

    def get_config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "fuse_softmax": self.fuses_softmax or self.from_logits}


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy with integer class ids y (B,) or (B, 1)."""
    name = "sparse_categorical_crossentropy"

    def _targets(self, y, K):
        """Class ids (B,) -> one-hot (B, K), then as the categorical loss."""
        onehot = (y.reshape(-1, 1) == backend.xp.arange(K)).astype(backend.floatx())
        return super()._targets(onehot, K)

    def check_labels(self, y, num_outputs):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"sparse_categorical_crossentropy expects integer labels of shape (N,) or (N, 1), "
                             f"got {y.shape}; for one-hot labels use loss='categorical_crossentropy'")
        if y.size and np.issubdtype(y.dtype, np.floating):
            if not np.isfinite(y).all() or (y != np.round(y)).any():
                raise ValueError("sparse labels must be whole class numbers, got non-integer values")
        elif not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"sparse labels must be integers, got dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= num_outputs):
            raise ValueError(f"labels must be class ids in [0, {num_outputs - 1}] for a model with "
                             f"{num_outputs} outputs, got values in [{y.min()}, {y.max()}]")
        return y.astype(np.int32)


class MeanSquaredError(Loss):
    """L = mean over batch and features of (y_pred - y)^2;  dL/dy_pred = 2 (y_pred - y) / (B * D)."""
    name = "mean_squared_error"

    def __call__(self, y_true, y_pred):
        diff = y_pred - y_true
        return (diff * diff).mean(), 2 * diff / diff.size

    def check_labels(self, y, num_outputs):
        given = np.asarray(y)
        if given.dtype.kind not in "biuf":
            raise TypeError(f"mean_squared_error expects numeric targets, got dtype {given.dtype}")
        y = given.astype(np.float32)
        if y.ndim == 1:
            y = y[:, None]
        if y.shape[1:] != (num_outputs,):
            raise ValueError(f"mean_squared_error expects targets of shape (N, {num_outputs}), got {given.shape}")
        bad = ~np.isfinite(y).all(axis=1)
        if bad.any():
            raise ValueError(f"targets must be finite numbers: target {int(np.argmax(bad))} holds NaN or inf")
        return y


_LOSSES = {"categorical_crossentropy": CategoricalCrossentropy,
           "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
           "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError}


def get(identifier):
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _LOSSES:
        return _LOSSES[identifier.lower()]()
    raise ValueError(f"unknown loss {identifier!r}; expected one of {sorted(_LOSSES)} or a Loss instance")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(spec):
    classes = {c.__name__: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy, MeanSquaredError)}
    if spec.get("class_name") not in classes:
        raise ValueError(f"unknown loss in config: {spec!r}")
    return classes[spec["class_name"]](**spec.get("config", {}))


categorical_crossentropy = "categorical_crossentropy"
sparse_categorical_crossentropy = "sparse_categorical_crossentropy"


def __getattr__(name):
    raise _keras_names.missing("losses", name, globals())
