"""The numbers the explainer shows, computed from the model itself (host NumPy, float64 arithmetic).

    architecture(model)          each layer's class, output shape, parameter count and formula
    dot_product(layer, x, y)     one output pixel of a Conv2D: its receptive field, its im2col row,
                                 the kernel column, the products, z = sum + b and act(z)
    softmax_numbers(z)           z_i, z_i - max, exp, their sum, p_i
    confident_mistakes(p, y)     the test images the model got wrong with the highest confidence
"""
import numpy as np

from minicnn import activations, backend, kernels
from minicnn.kernels import reference
from minicnn.layers import Conv2D

FORMULAS = {
    "Conv2D": "z = im2col(x) · W + b  (W: KH·KW·C × F, one row of im2col per output pixel);  y = act(z)",
    "Dense": "y = act(x · W + b)  (W: D_in × D_out)",
    "MaxPooling2D": "y = max of each pool window",
    "AveragePooling2D": "y = mean of each pool window",
    "GlobalMaxPooling2D": "y[c] = max over all pixels of channel c",
    "GlobalAveragePooling2D": "y[c] = mean over all pixels of channel c",
    "Flatten": "y = x reshaped to one vector (H·W·C, C order)",
    "ZeroPadding2D": "y = x with rows and columns of zeros around it (top, bottom, left, right)",
    "Dropout": "y = x at inference (training: x · mask / (1 − rate))",
    "Activation": "y = act(x)",
    "ReLU": "y = max(0, x)",
    "LeakyReLU": "y = x if x > 0 else α·x",
    "Softmax": "y_i = exp(x_i) / Σ_j exp(x_j)",
    "Rescaling": "y = scale · x + offset",
    "BatchNormalization": "y = γ (x − μ) / √(σ² + ε) + β  (μ, σ²: the moving statistics)",
    "Add": "y = x₁ + x₂ + …",
    "Concatenate": "y = [x₁, x₂, …] along the channels",
    "Residual": "y = f(x) + shortcut(x)",
    "Sequential": "y = its layers in turn",
}
AUGMENTATION = "y = x at inference (training: a random geometric change)"


def formula(layer):
    name = type(layer).__name__
    text = FORMULAS.get(name, AUGMENTATION if name.startswith("Random") else "")
    act = getattr(layer, "activation", None)
    if act is not None and name in ("Conv2D", "Dense", "Activation"):
        text += f";  act = {activations.serialize(act)}"
    return text


def architecture(model, outputs):
    """[(name, class, output shape, params, formula)] for each layer output of model.layer_outputs."""
    return [(name, type(layer).__name__, "×".join(str(d) for d in out.shape[1:]), layer.count_params(),
             formula(layer)) for name, layer, out in outputs]


def first_conv(model, outputs, x):
    """(name, layer, its input, its output) for the first Conv2D among outputs (model.layer_outputs
    of model on the image x), or None. In a Sequential its input is the output before it; in a
    functional Model, the output of the call it reads."""
    for k, (name, layer, out) in enumerate(outputs):
        if isinstance(layer, Conv2D):
            if hasattr(model, "_nodes"):
                p = model._nodes[k].inputs[0]
                return name, layer, x if p < 0 else outputs[p][2], out
            return name, layer, x if k == 0 else outputs[k - 1][2], out
    return None


def _act(name, z):
    """act(z) of a Python float by the kernels' own activation (float32, as the layer computes)."""
    a = backend.to_device(np.array([[z]], dtype=backend.floatx()))
    return float(backend.to_host(kernels.activation_forward(a, name))[0, 0])


def dot_product(layer, x_in, y, channel=None):
    """One output pixel of a Conv2D: the pixel with the largest value in `channel` of y (None: the
    channel holding the largest value of all, so never a channel the relu silenced).
    x_in (1, H, W, C) is the layer's input, y (1, OH, OW, F) its output (from its real forward)."""
    x_in, y = backend.to_host(x_in).astype(np.float64), backend.to_host(y)
    if channel is None:
        channel = int(np.argmax(y[0].reshape(-1, y.shape[-1]).max(axis=0)))
    (KH, KW), (sh, sw) = layer.kernel_size, layer.strides
    OH, OW, pt, pl = layer.geometry
    oh, ow = np.unravel_index(int(np.argmax(y[0, :, :, channel])), (OH, OW))
    cols = reference.im2col(backend.to_device(x_in), KH, KW, sh, sw, pt, pl, OH, OW)
    row = backend.to_host(cols)[oh * OW + ow]
    W = backend.to_host(layer.params["W"]).astype(np.float64)
    w = W.reshape(-1, W.shape[-1])[:, channel]
    b = float(backend.to_host(layer.params["b"])[channel]) if "b" in layer.params else 0.0
    products = row * w
    z = float(products.sum()) + b
    act = activations.serialize(layer.activation)
    C = x_in.shape[-1]
    return {"oh": int(oh), "ow": int(ow), "channel": channel, "row_index": int(oh * OW + ow),
            "top": int(oh * sh - pt), "left": int(ow * sw - pl), "KH": KH, "KW": KW, "C": C,
            "patch": row.reshape(KH, KW, C), "row": row, "kernel": w, "products": products, "bias": b,
            "z": z, "activation": act, "value": _act(act, z), "fmap": float(y[0, oh, ow, channel]),
            "fmap_channel": y[0, :, :, channel]}


def logits_and_probs(model, outputs, x):
    """(z, p, how) for one image x (1, H, W, C): the logits and probabilities of its prediction.
    With the softmax in the loss the model's forward keeps z (model.logits); a head with its own
    softmax gives p, and z = log p (softmax ignores a constant added to every z_i)."""
    name, layer, out = outputs[-1]
    out = backend.to_host(out)[0].astype(np.float64)
    act = getattr(model._head(), "activation", None)
    if model._fused:
        model.forward(x, training=False, keep_caches=False)
        z = backend.to_host(model.__dict__.pop("logits"))[0].astype(np.float64)
        how = f"the logits are {name}'s output before its softmax, which the loss owns in training"
    elif act is not None and activations.serialize(act) == "softmax" or type(layer).__name__ == "Softmax":
        z, how = np.log(np.maximum(out, 1e-300)), f"{name} outputs probabilities: z = log p here"
    else:
        return None
    return z, softmax_numbers(z), how


def softmax_numbers(z):
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max()
    e = np.exp(shifted)
    return {"z": z, "max": float(z.max()), "shifted": shifted, "exp": e, "sum": float(e.sum()), "p": e / e.sum()}


def labels(y):
    y = np.asarray(y)
    return y.argmax(axis=-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1).astype(np.int64)


def confident_mistakes(probs, y, n=12):
    """Indices of the wrong predictions, most confident first (at most n)."""
    pred, true = probs.argmax(axis=-1), labels(y)
    wrong = np.flatnonzero(pred != true)
    return wrong[np.argsort(-probs[wrong].max(axis=-1), kind="stable")][:n]
