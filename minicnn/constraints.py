"""Weight constraints, applied by the optimizer after every update (never at initialization).

MaxNorm(max_value=2, axis=0):  norms = sqrt(sum_axis w^2),  w <- w * clip(norms, 0, max) / (1e-7 + norms)
For a Dense kernel (D_in, D_out) axis=0 caps each output unit's incoming weights; for a Conv2D
kernel pass axis=[0, 1, 2] to cap each filter (Keras's rule). The 1e-7 makes weights already
inside the limit shrink very slightly, exactly as in Keras.
"""
from minicnn import backend, kernels


class Constraint:
    def __call__(self, w):
        """Update w in place."""
        raise NotImplementedError

    def get_config(self):
        return {}


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        if max_value <= 0:
            raise ValueError(f"max_value must be > 0, got {max_value}")
        self.max_value = float(max_value)
        self.axis = tuple(axis) if isinstance(axis, (list, tuple)) else int(axis)

    def __call__(self, w):
        axes = tuple(a % w.ndim for a in (self.axis if isinstance(self.axis, tuple) else (self.axis,)))
        if axes == tuple(range(w.ndim - 1)):
            kernels.max_norm(w, self.max_value)    # norms over every axis but the last (Keras's use)
            return
        xp = backend.xp
        norms = xp.sqrt((w * w).sum(axis=self.axis, keepdims=True))
        w *= xp.clip(norms, 0, self.max_value) / (1e-7 + norms)

    def get_config(self):
        return {"max_value": self.max_value, "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


max_norm = MaxNorm
maxnorm = MaxNorm     # the Keras 2 spelling used by tutorial 004


def get(identifier):
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in ("max_norm", "maxnorm"):
        return MaxNorm()
    raise ValueError(f"unknown constraint {identifier!r}; expected 'max_norm', a Constraint or None")


def serialize(c):
    return None if c is None else {"class_name": type(c).__name__, "config": c.get_config()}


def deserialize(spec):
    if spec is None:
        return None
    if spec.get("class_name") != "MaxNorm":
        raise ValueError(f"unknown constraint in config: {spec!r}")
    return MaxNorm(**spec["config"])
