"""Activation functions, each with its derivative right beside it.

Every derivative here is written in terms of the OUTPUT y, so a layer only caches y (GELU, whose
derivative needs its input, says so with ``needs_input = True``: layers then cache z instead):
    linear   y = z                      dz = dy
    relu     y = max(0, z)              dz = dy * [y > 0]      (0 at z = 0, as in TF/JAX)
    tanh     y = tanh(z)                dz = dy * (1 - y^2)
    sigmoid  y = 1 / (1 + e^-z)         dz = dy * y * (1 - y)
    softmax  y_k = e^z_k / sum_j e^z_j  dz = y * (dy - sum_k dy_k y_k)   (over the last axis)
    gelu     y = z Phi(z)               dz = dy * (Phi(z) + z phi(z))          (in terms of z)
             Phi = the standard normal CDF = (1 + erf(z / sqrt 2)) / 2, phi = its density
A softmax output followed by cross-entropy never uses softmax.backward: compile hands the softmax
to the loss (the model runs its head as SoftmaxInTheLoss, below), which takes the gradient
straight from the logits:
dL/dz = (p - y) / N (see losses.py).
"""
import math

import numpy as np

from minicnn import backend


class Activation:
    name = "base"
    needs_input = False         # True: backward(dy, z) takes the INPUT z, and layers cache z, not y

    def forward(self, z):
        raise NotImplementedError

    def backward(self, dy, y):
        raise NotImplementedError

    def __repr__(self):
        return self.name


class Linear(Activation):
    name = "linear"

    def forward(self, z):
        return z

    def backward(self, dy, y):
        return dy


class ReLU(Activation):
    name = "relu"

    def forward(self, z):
        return backend.xp.maximum(z, 0)

    def backward(self, dy, y):
        return dy * (y > 0)


class Tanh(Activation):
    name = "tanh"

    def forward(self, z):
        return backend.xp.tanh(z)

    def backward(self, dy, y):
        return dy * (1 - y * y)


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, z):
        xp = backend.xp
        # split by sign so exp never overflows
        e = xp.exp(-xp.abs(z))
        return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))

    def backward(self, dy, y):
        return dy * y * (1 - y)


class Softmax(Activation):
    name = "softmax"

    def forward(self, z):
        xp = backend.xp
        e = xp.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def backward(self, dy, y):
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


class GELU(Activation):
    """Gaussian error linear unit, exact (erf) form: Keras's gelu(approximate=False), PyTorch's GELU()."""
    name = "gelu"
    needs_input = True

    def forward(self, z):              # y = z Phi(z) = 0.5 z (1 + erf(z / sqrt 2))
        return 0.5 * z * (1 + erf(z * 0.7071067811865476))

    def backward(self, dy, z):         # dz = dy (Phi(z) + z phi(z)), phi(z) = exp(-z^2 / 2) / sqrt(2 pi)
        cdf = 0.5 * (1 + erf(z * 0.7071067811865476))
        pdf = backend.xp.exp(-0.5 * z * z) * 0.3989422804014327
        return dy * (cdf + z * pdf)


def erf(x):
    """The error function, elementwise: math.erf per element on the host (the slow, exact
    specification; NumPy has no erf; the kernels compute it in one pass: kernels.gelu)."""
    return backend.xp.asarray(np.frompyfunc(math.erf, 1, 1)(backend.to_host(x)).astype(x.dtype))


class SoftmaxInTheLoss(Linear):
    """How a model runs its softmax head when the loss owns the softmax (compile decides so when the
    loss is cross-entropy, as deep-learning-from-scratch's SoftmaxWithLoss): the model's forward
    hands the head this activation in place of its own, the head computes its logits z (linear),
    the model applies the softmax to its output, and the loss differentiates softmax +
    cross-entropy in one step from z. The layer keeps its softmax: called on its own, or inside
    another model, it gives probabilities, as in Keras."""
    declared = "softmax"

    def __repr__(self):
        return "softmax (in the loss)"


_ACTIVATIONS = {cls.name: cls for cls in (Linear, ReLU, Tanh, Sigmoid, Softmax, GELU)}


def serialize(activation):
    """The name an activation is saved and exported under ('softmax' for SoftmaxInTheLoss)."""
    return getattr(activation, "declared", activation.name)


def get(identifier):
    """'relu' | 'tanh' | 'sigmoid' | 'softmax' | 'gelu' | 'linear' | None | an Activation -> an Activation."""
    if identifier is None:
        return Linear()
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _ACTIVATIONS:
        return _ACTIVATIONS[identifier.lower()]()
    raise ValueError(f"unknown activation {identifier!r}; expected one of {sorted(_ACTIVATIONS)} or None")
