"""Finite-difference gradient checks for any layer (a user's own too) or a whole model.

For a layer f and a fixed random upstream gradient G, the scalar L = sum(G * f(x)) has
dL/dx = backward(G) and dL/dp = grads[p]. Each is compared with central differences
    dL/dv_i ~ (L(v_i + h) - L(v_i - h)) / (2h)
and reported as the relative error  ||analytic - numeric|| / max(||analytic|| + ||numeric||, 1e-30).
Run in float64 (backend.float64_mode()) for errors near 1e-9; float32 only reaches ~1e-3.
Random layers (Dropout) replay the same mask: their `draws` counter is reset before each call.
"""
import numpy as np

from minicnn import backend
from minicnn.training import data, steps


def relative_error(analytic, numeric):
    a, n = backend.to_host(analytic).ravel(), backend.to_host(numeric).ravel()
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-30))


def _numeric_grad(f, v, h):
    """Central differences of the scalar f() with respect to every entry of array v (in place)."""
    grad = backend.xp.zeros_like(v)
    flat, gflat = v.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = float(flat[i])
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def _replay(layers):
    """Snapshot the random-stream counters of layers so every forward sees the same masks."""
    saved = [(layer, layer.draws) for layer in layers if hasattr(layer, "draws")]

    def reset():
        for layer, draws in saved:
            layer.draws = draws
    return reset


def check_layer(layer, x, training=True, h=1e-5, seed=0, dout=None):
    """Check dx and every parameter gradient of `layer` at input x.

    Returns {'x': err, '<param>': err, ...}. The layer is built on x.shape[1:] if needed.
    """
    x = backend.to_device(x)
    if not layer.built:
        layer.build(x.shape[1:])
    layer.input_grad = True
    reset = _replay(list(layer.sublayers()) if hasattr(layer, "sublayers") else [layer])
    y = layer.forward(x, training=training)
    if dout is None:
        dout = backend.to_device(np.random.default_rng(seed).standard_normal(y.shape), x.dtype)

    def L():
        reset()
        return float((dout * layer.forward(x, training=training)).sum())

    reset()
    layer.forward(x, training=training)
    dx = layer.backward(dout)
    analytic = {"x": dx}
    analytic.update({k: g.copy() for k, g in _all_grads(layer).items()})
    errors = {"x": relative_error(dx, _numeric_grad(L, x, h))}
    for k, p in _all_params(layer).items():
        errors[k] = relative_error(analytic[k], _numeric_grad(L, p, h))
    return errors


def _all_params(layer):
    return layer.params if not hasattr(layer, "variables") else {p: l.params[k] for p, l, k in layer.variables()}


def _all_grads(layer):
    return layer.grads if not hasattr(layer, "variables") else {p: l.grads[k] for p, l, k in layer.variables()}


def check_loss(loss, y_true, y_pred, h=1e-5, from_logits_of_softmax=False):
    """Check a loss's gradient with respect to its input (probabilities, or logits when fused)."""
    y_true, y_pred = backend.to_device(y_true), backend.to_device(y_pred)
    fn = loss.from_logits_of_softmax if from_logits_of_softmax else loss
    _, grad = fn(y_true, y_pred)
    numeric = _numeric_grad(lambda: float(fn(y_true, y_pred)[0]), y_pred, h)
    return relative_error(grad, numeric)


def check_model(model, x, y, h=1e-5):
    """Check every trainable parameter of a compiled model on one batch (training mode, loss included).

    Returns {'<layer key>/<param>': err}. Run under backend.float64_mode() with a model built there.
    """
    if not model.built:
        model.build(x.shape[1:])
    x, y = backend.to_device(x), backend.to_device(data.check_y(model, backend.to_host(y), len(x)))
    reset = _replay(list(model.sublayers()))

    def L():
        reset()
        out = model.forward(x, training=True)
        return float(steps.batch_loss(model, out, y)[0] + steps.regularize(model.variables()))

    reset()
    out = model.forward(x, training=True)
    steps.loss_and_backward(model, out, y)
    errors = {}
    for path, layer, k in model.variables():
        analytic = layer.grads[k].copy()
        errors[path] = relative_error(analytic, _numeric_grad(L, layer.params[k], h))
    return errors
