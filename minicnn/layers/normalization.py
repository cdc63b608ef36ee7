"""Batch normalization over the last (channel) axis, as Keras 3 computes it."""
from minicnn import backend, kernels
from minicnn.layers.base import Layer, is_int


class BatchNormalization(Layer):
    """Normalize each channel with batch statistics (training) or moving statistics (inference).

    Training, over every axis but the last (M = N*H*W values per channel):
        mu = mean(x),  var = mean((x - mu)^2)  (biased),  inv = 1 / sqrt(var + eps)
        xhat = (x - mu) * inv,   y = gamma * xhat + beta
        moving_mean <- momentum * moving_mean + (1 - momentum) * mu     (same for the variance)
    Backward (training):
        dbeta = sum(dout),  dgamma = sum(dout * xhat),  dxhat = dout * gamma
        dx = inv / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
    Inference: k = gamma / sqrt(moving_var + eps);  y = x * k + (beta - moving_mean * k);  dx = dout * k,
               dgamma = sum(dout * (x - moving_mean) / sqrt(moving_var + eps))
    Shapes: x, y (N, ..., C); gamma, beta, moving_mean, moving_variance (C,).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        if not is_int(axis):
            raise ValueError(f"BatchNormalization axis must be an int, got {axis!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1], got {momentum}")
        if epsilon <= 0:
            raise ValueError(f"BatchNormalization epsilon must be > 0, got {epsilon}")
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.inits = {"gamma": gamma_initializer, "beta": beta_initializer,
                      "moving_mean": moving_mean_initializer, "moving_variance": moving_variance_initializer}

    def build(self, input_shape):
        if self.axis not in (-1, len(input_shape)):
            raise ValueError(f"BatchNormalization {self.name!r}: only the last (channel) axis is supported, "
                             f"got axis={self.axis} for input {tuple(input_shape)}")
        super().build(input_shape)
        C, rng = input_shape[-1], backend.new_rng()
        if self.scale:
            self.add_weight("gamma", (C,), self.inits["gamma"], rng)
        if self.center:
            self.add_weight("beta", (C,), self.inits["beta"], rng)
        self.add_weight("moving_mean", (C,), self.inits["moving_mean"], rng, trainable=False)
        self.add_weight("moving_variance", (C,), self.inits["moving_variance"], rng, trainable=False)

    def _gamma_beta(self, like):
        xp = backend.xp
        gamma = self.params["gamma"] if self.scale else xp.ones(like.shape[-1], like.dtype)
        beta = self.params["beta"] if self.center else xp.zeros(like.shape[-1], like.dtype)
        return gamma, beta

    def forward(self, x, training=False):
        xp = backend.xp
        if not (training and self.trainable):
            gamma, beta = self._gamma_beta(x)
            k = gamma / xp.sqrt(self.state["moving_variance"] + self.epsilon)
            self.cache = ("inference", k, x)
            return x * k + (beta - self.state["moving_mean"] * k)
        # the formulas above, fused (kernels.batchnorm_forward: statistics in one pass, then y)
        x2 = x.reshape(-1, x.shape[-1])
        y, mu, var = kernels.batchnorm_forward(x2, self.params.get("gamma"), self.params.get("beta"), self.epsilon)
        m = self.momentum
        self.state["moving_mean"][...] = self.state["moving_mean"] * m + mu * (1 - m)
        self.state["moving_variance"][...] = self.state["moving_variance"] * m + var * (1 - m)
        self.cache = ("training", x2, mu, var)
        return y.reshape(x.shape)

    def backward(self, dout):
        mode = self.cache[0]
        if mode == "inference":
            _, k, x = self.cache
            xhat = (x - self.state["moving_mean"]) / backend.xp.sqrt(self.state["moving_variance"] + self.epsilon)
            self._param_grads(dout, xhat)
            return dout * k
        _, x2, mu, var = self.cache
        dx, dgamma, dbeta = kernels.batchnorm_backward(dout.reshape(x2.shape), x2, mu, var, self.params.get("gamma"),
                                                       self.epsilon)
        if self.center:
            self.grads["beta"][...] = dbeta
        if self.scale:
            self.grads["gamma"][...] = dgamma
        return dx.reshape(dout.shape)

    def _param_grads(self, dout, xhat):
        axes = tuple(range(dout.ndim - 1))
        if self.center:
            self.grads["beta"][...] = dout.sum(axis=axes)
        if self.scale:
            self.grads["gamma"][...] = (dout * xhat).sum(axis=axes)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}
