"""Weight regularizers: a penalty on a layer's weight, added to the loss (Keras's kernel_regularizer
and bias_regularizer), each with its derivative right beside it.

    L1(l1=0.01)           r(w) = l1 * sum |w|                     dr/dw = l1 * sign(w)   (0 at w = 0)
    L2(l2=0.01)           r(w) = l2 * sum w^2                     dr/dw = 2 * l2 * w
    L1L2(l1=0, l2=0)      r(w) = l1 * sum |w| + l2 * sum w^2      both

As Keras does, the penalties of every trainable weight that has one are added to each batch's loss,
in training and in evaluation (so `loss` and `val_loss` include them), and in training each dr/dw
is added to that weight's gradient before the optimizer's step: training.steps.regularize.
L2 with SGD is the classic "weight decay" (w <- w - lr * 2 * l2 * w on top of the loss's step);
with Adam it is not the same thing as AdamW's decoupled weight decay (optimizers' weight_decay=).
"""
import numbers

from minicnn import backend


class Regularizer:
    def __call__(self, w):
        """The penalty r(w): a scalar (of w's backend)."""
        raise NotImplementedError

    def add_gradient(self, w, g):
        """g += dr/dw, in place."""
        raise NotImplementedError

    def get_config(self):
        return {}


def _factor(name, value):
    if isinstance(value, (bool, str)) or not isinstance(value, numbers.Real) or not 0 <= value < float("inf"):
        raise ValueError(f"regularization factor {name} must be a number >= 0, got {value!r}")
    return float(value)


class L1L2(Regularizer):
    """r(w) = l1 * sum |w| + l2 * sum w^2."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor("l1", l1), _factor("l2", l2)

    def __call__(self, w):
        xp = backend.xp
        penalty = xp.zeros((), dtype=w.dtype)
        if self.l1:
            penalty = penalty + w.dtype.type(self.l1) * xp.abs(w).sum()
        if self.l2:
            penalty = penalty + w.dtype.type(self.l2) * (w * w).sum()
        return penalty

    def add_gradient(self, w, g):
        if self.l1:
            g += w.dtype.type(self.l1) * backend.xp.sign(w)
        if self.l2:
            g += w.dtype.type(2 * self.l2) * w

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """r(w) = l1 * sum |w|."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """r(w) = l2 * sum w^2."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2           # Keras's function-style names: regularizers.l2(1e-4)
_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def get(identifier):
    """None | a Regularizer | 'l1' | 'l2' | 'l1_l2' | a serialized one ({"class_name": "L2",
    "config": {...}}) -> a Regularizer or None."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _NAMES:
        return _NAMES[identifier.lower()]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"unknown regularizer {identifier!r}; expected 'l1', 'l2', 'l1_l2', a regularizer "
                     "(minicnn.regularizers.L2(1e-4)) or None")


def serialize(r):
    return None if r is None else {"class_name": type(r).__name__, "config": r.get_config()}


def deserialize(spec):
    """The regularizer of a saved config (minicnn's or Keras's: {"class_name", "config"})."""
    if spec is None:
        return None
    name = spec.get("class_name") if isinstance(spec, dict) else None
    config = spec.get("config") if isinstance(spec, dict) else None
    if name not in _CLASSES or not isinstance(config, dict) or not set(config) <= {"l1", "l2"}:
        raise ValueError(f"unknown regularizer in config: {spec!r}; expected class L1, L2 or L1L2 with "
                         "factors l1, l2")
    if name == "L1L2":
        return L1L2(**config)
    return _CLASSES[name](**{k: v for k, v in config.items() if k == name.lower()})
