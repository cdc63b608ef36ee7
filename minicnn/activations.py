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
Keras's other built-in activations, for the programs that name them:
    elu      y = z (z > 0), e^z - 1     dz = dy * [y > 0] + dy * (y + 1) [y <= 0]
    selu     y = s elu_a(z)             dz = dy * s [y > 0] + dy * (y + s a) [y <= 0]
             (elu_a(z) = a (e^z - 1) below 0; a = 1.67326324, s = 1.05070098: Keras's constants)
    softplus y = log(1 + e^z)           dz = dy * sigmoid(z) = dy * (1 - e^-y)
    softsign y = z / (1 + |z|)          dz = dy / (1 + |z|)^2 = dy * (1 - |y|)^2
    silu     y = z sigmoid(z)           dz = dy * (s + z s (1 - s)), s = sigmoid(z)   (in terms of z;
             'swish' is its other name)
    exponential  y = e^z                dz = dy * y
    hard_sigmoid y = clip(z/6 + 1/2, 0, 1)   dz = dy / 6 where 0 < y < 1
    relu6    y = min(max(z, 0), 6)      dz = dy where 0 < y < 6
    leaky_relu   y = z (z > 0), 0.2 z   dz = dy * [y > 0] + 0.2 dy [y <= 0]
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


class ELU(Activation):
    name = "elu"

    def forward(self, z):
        xp = backend.xp
        return xp.where(z > 0, z, xp.expm1(xp.minimum(z, 0)))

    def backward(self, dy, y):
        return dy * backend.xp.where(y > 0, 1, y + 1)


class SELU(Activation):
    name = "selu"
    alpha, scale = 1.6732632423543772, 1.0507009873554805

    def forward(self, z):
        xp = backend.xp
        return self.scale * xp.where(z > 0, z, self.alpha * xp.expm1(xp.minimum(z, 0)))

    def backward(self, dy, y):
        return dy * backend.xp.where(y > 0, self.scale, y + self.scale * self.alpha)


class Softplus(Activation):
    name = "softplus"

    def forward(self, z):               # max(z, 0) + log(1 + e^-|z|): no overflow for large |z|
        xp = backend.xp
        return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, dy, y):
        return dy * -backend.xp.expm1(-y)


class Softsign(Activation):
    name = "softsign"

    def forward(self, z):
        return z / (1 + backend.xp.abs(z))

    def backward(self, dy, y):
        return dy * (1 - backend.xp.abs(y)) ** 2


class SiLU(Activation):
    """Keras's silu, also called swish."""
    name = "silu"
    needs_input = True

    def forward(self, z):
        return z * Sigmoid().forward(z)

    def backward(self, dy, z):
        s = Sigmoid().forward(z)
        return dy * (s + z * s * (1 - s))


class Exponential(Activation):
    name = "exponential"

    def forward(self, z):
        return backend.xp.exp(z)

    def backward(self, dy, y):
        return dy * y


class HardSigmoid(Activation):
    name = "hard_sigmoid"

    def forward(self, z):
        return backend.xp.clip(z / 6 + 0.5, 0, 1)

    def backward(self, dy, y):
        return dy * ((y > 0) & (y < 1)) / 6


class ReLU6(Activation):
    name = "relu6"

    def forward(self, z):
        return backend.xp.clip(z, 0, 6)

    def backward(self, dy, y):
        return dy * ((y > 0) & (y < 6))


class LeakyReLU(Activation):
    """Keras's leaky_relu activation (negative_slope 0.2); the LeakyReLU layer takes any slope."""
    name = "leaky_relu"

    def forward(self, z):
        return backend.xp.where(z > 0, z, 0.2 * z)

    def backward(self, dy, y):
        return dy * backend.xp.where(y > 0, 1, 0.2)


_ACTIVATIONS = {cls.name: cls for cls in (Linear, ReLU, Tanh, Sigmoid, Softmax, GELU, ELU, SELU, Softplus, Softsign,
                                          SiLU, Exponential, HardSigmoid, ReLU6, LeakyReLU)}
_ALIASES = {"swish": "silu"}


def serialize(activation):
    """The name an activation is saved and exported under ('softmax' for SoftmaxInTheLoss)."""
    return getattr(activation, "declared", activation.name)


def get(identifier):
    """'relu' | 'tanh' | 'sigmoid' | 'softmax' | 'gelu' | 'linear' | Keras's others ('elu', 'selu',
    'softplus', 'softsign', 'silu' or 'swish', 'exponential', 'hard_sigmoid', 'relu6', 'leaky_relu')
    | None | an Activation -> an Activation."""
    if identifier is None:
        return Linear()
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str) and _ALIASES.get(identifier.lower(), identifier.lower()) in _ACTIVATIONS:
        return _ACTIVATIONS[_ALIASES.get(identifier.lower(), identifier.lower())]()
    raise ValueError(f"unknown activation {identifier!r}; expected one of {sorted(_ACTIVATIONS)} or None")
