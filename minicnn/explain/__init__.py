"""minicnn.explain: one self-contained HTML page (no network, images inline) about a trained model.

    python -m minicnn.explain runs/tutorial000            # a train_cifar.py run folder
    python -m minicnn.explain model.keras --image 7       # a model file, on the CIFAR-10 test set

    html = explain.page(model, x_test, y_test, history=..., dynamics=..., image=0, class_names=...)

The page shows, from the model's own numbers: the architecture (each layer's output shape,
parameter count and formula); one test image and every layer's outputs; for one pixel of the
first convolution, its receptive field, its im2col row and the dot product with the kernel that
gives its value; the first layer's filters; the softmax arithmetic of the prediction; training
dynamics per layer and epoch (callbacks.TrainingDynamics); the history curves; the confusion
matrix and the most confident mistakes.
"""
import numpy as np

from minicnn import backend, plot
from minicnn.explain import figures, numbers
from minicnn.explain.html import document, esc, img, num, section, table
from minicnn.saving import atomic_write


CONTENTS = [("architecture", "architecture"), ("feature-maps", "one image through the layers"),
            ("dot-product", "one convolution by hand"), ("filters", "filters"), ("softmax", "softmax"),
            ("dynamics", "training dynamics"), ("history", "history"), ("confusion", "confusion and mistakes")]


def page(model, x_test, y_test, history=None, dynamics=None, image=0, class_names=None, probs=None, title=None):
    """The HTML text. x_test: float images as the model takes them (N, H, W, C); y_test: labels
    (ids or one-hot); history: {metric: [per epoch]}; dynamics: TrainingDynamics.record; probs:
    model.predict(x_test) when already computed."""
    x_test, y_true = np.asarray(x_test), numbers.labels(y_test)
    if not 0 <= image < len(x_test):
        raise ValueError(f"image must be the index of a test image, in [0, {len(x_test)}), got {image}")
    if probs is None:
        probs = model.predict(x_test, batch_size=256)
    K = probs.shape[-1]
    class_names = list(class_names) if class_names is not None else [str(k) for k in range(K)]
    x = backend.to_device(x_test[image:image + 1], backend.floatx())
    outputs = model.layer_outputs(x)
    sections = [_architecture(model, outputs), _feature_maps(x_test[image], outputs, class_names),
                _dot_product(model, outputs, x), _filters(model), _softmax(model, outputs, x, class_names,
                                                                               y_true[image], probs[image]),
                _dynamics(dynamics), _history(history), _mistakes(x_test, y_true, probs, class_names)]
    return document(title or f"What {model.name} computes", sections, CONTENTS)


def write_page(path, model, x_test, y_test, **kwargs):
    """page(...) written to path (atomically); returns the path."""
    text = page(model, x_test, y_test, **kwargs)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def _architecture(model, outputs):
    rows = [[esc(name), esc(cls), shape, f"{params:,}", f'<span class="formula">{esc(f)}</span>']
            for name, cls, shape, params, f in numbers.architecture(model, outputs)]
    note = (f"{model.count_params():,} parameters. Output shapes for one image (height×width×channels); "
            "each layer runs on its own here, so a Conv2D and the ReLU after it are two rows.")
    if hasattr(model, "_nodes"):
        note += " A functional model: one row per layer call, in the graph's order."
    return section("architecture", "Architecture", table(["layer", "class", "output", "params", "formula"],
                                                         rows, left=(0, 1, 4)), note)


def _feature_maps(image, outputs, class_names):
    parts = [f'<div class="fmap"><h3>input</h3>{img(figures.data_uri(figures.image(image)), "input image")}</div>']
    for k, (name, layer, out) in enumerate(outputs):
        out = backend.to_host(out)[0]
        if out.ndim == 3:
            fig, what = figures.channels(out), f"first {min(16, out.shape[-1])} of {out.shape[-1]} channels"
        else:
            names = class_names if out.shape[-1] == len(class_names) and k == len(outputs) - 1 else None
            fig = figures.vector(out, names)
            what = f"{out.size} values" + (", first 256 shown" if out.size > 256 else "")
        parts.append(f'<div class="fmap"><h3>{esc(name)} ({esc(type(layer).__name__)}): {what}</h3>'
                     f'{img(figures.data_uri(fig), name + " output")}</div>')
    return section("feature-maps", "One test image through every layer", "".join(parts),
                   "Each layer's output for this image (gray: low to high within each map).")


def _dot_product(model, outputs, x):
    found = numbers.first_conv(model, outputs, x)
    if found is None:
        return section("dot-product", "One convolution output, by hand",
                       "<p>The model has no Conv2D among its top-level layers.</p>")
    name, layer, x_in, y = found
    d = numbers.dot_product(layer, x_in, y)
    x_host = backend.to_host(x_in)[0]
    H, W = x_host.shape[:2]
    outside = d["top"] < 0 or d["left"] < 0 or d["top"] + d["KH"] > H or d["left"] + d["KW"] > W
    padding = " (the part outside the image is the zero padding of 'same')" if outside else ""
    rows = [[f"({k // (d['KW'] * d['C'])}, {k // d['C'] % d['KW']}, {k % d['C']})", num(d["row"][k]),
             num(d["kernel"][k]), num(d["products"][k], cls="dot-product")] for k in range(len(d["row"]))]
    body = (f'<div id="dot-panel" data-activation="{esc(d["activation"])}">'
            f'<div class="row">{_dot_pictures(name, x_host, d)}</div>'
            f"<p>Output pixel (row {d['oh']}, column {d['ow']}) of channel {d['channel']} of <b>{esc(name)}</b>: the "
            f"{d['KH']}×{d['KW']}×{d['C']} window of its input whose top-left corner is at ({d['top']}, {d['left']})"
            f"{padding}.</p><h3>The receptive field, channel by channel</h3>{_patch_tables(d)}"
            f"<h3>im2col row {d['row_index']} × kernel column {d['channel']}</h3>"
            "<p class=note>im2col lays this window out as one row (order: kernel row i, column j, "
            "channel c); W reshaped to (KH·KW·C, F) gives one column per filter. The convolution "
            "is the product of the two: one dot product per output pixel and filter.</p>"
            f'<div class="scroll">{table(["(i, j, c)", "x (im2col row)", "w (kernel column)", "x·w"], rows)}</div>'
            f"<p class=formula>z = Σ x·w + b = {num(d['products'].sum(), ident='dot-sum')} + "
            f"{num(d['bias'], ident='dot-bias')} = {num(d['z'], ident='dot-z')}<br>"
            f"y = {esc(d['activation'])}(z) = {num(d['value'], ident='dot-act')}<br>"
            f"the layer's own forward gives, at that pixel: {num(d['fmap'], cls='hi', ident='dot-fmap')}</p></div>")
    return section("dot-product", "One convolution output, by hand", body)


def _dot_pictures(name, x_host, d):
    """The input with the receptive field boxed, the feature map with the pixel boxed."""
    shown = x_host if x_host.shape[-1] in (1, 3) else x_host.mean(-1)
    field = figures.image(shown, "input: the receptive field", (d["top"], d["left"], d["KH"], d["KW"]))
    pixel = figures.image(d["fmap_channel"], f"{name} channel {d['channel']}: the pixel", (d["oh"], d["ow"], 1, 1))
    return img(figures.data_uri(field), "receptive field") + img(figures.data_uri(pixel), "feature map")


def _patch_tables(d, max_channels=8):
    """One KH x KW table of input values per channel (the first max_channels)."""
    tables = [table([f"c={c}"] + [f"j={j}" for j in range(d["KW"])],
                    [[f"i={i}"] + [num(d["patch"][i, j, c]) for j in range(d["KW"])] for i in range(d["KH"])])
              for c in range(min(d["C"], max_channels))]
    more = f'<p class="note">and {d["C"] - max_channels} channels more (all in the row below)</p>' \
        if d["C"] > max_channels else ""
    return f'<div class="row">{"".join(tables)}</div>{more}'


def _filters(model):
    if not plot._conv_layers(model):
        return section("filters", "First-layer filters", "<p>The model has no Conv2D among its top-level layers.</p>")
    return section("filters", "First-layer filters", img(figures.data_uri(plot.first_layer_filters(model), 60),
                                                         "first-layer filters"),
                   "The first Conv2D's kernels, one image per filter (RGB when it reads 3 channels).")


def _softmax(model, outputs, x, class_names, true, probs):
    found = numbers.logits_and_probs(model, outputs, x)
    if found is None:
        return section("softmax", "The prediction", "<p>The model does not end in a softmax.</p>")
    z, s, how = found
    pred = int(np.argmax(s["p"]))
    rows = [[esc(class_names[k]) + (" ←" if k == pred else ""), num(z[k]), num(s["shifted"][k]),
             num(s["exp"][k], 6), num(s["p"][k], 6, cls="softmax-p"), num(probs[k], 6)]
            for k in range(len(z))]
    body = (f"<p>Predicted <b>{esc(class_names[pred])}</b>, true class <b>{esc(class_names[true])}</b>. "
            f"{esc(how[0].upper() + how[1:])}.</p>"
            "<p class=formula>p_i = exp(z_i − max z) / Σ_j exp(z_j − max z);  max z = "
            f"{num(s['max'])},  Σ_j exp(z_j − max z) = {num(s['sum'], 6, ident='softmax-sum')}</p>"
            + table(["class", "z_i", "z_i − max", "exp(z_i − max)", "p_i", "model.predict"], rows))
    return section("softmax", "The prediction: softmax, step by step", body,
                   "Subtracting the largest logit first keeps exp from overflowing and changes no p_i.")


def _dynamics(record):
    if not record or not record.get("epochs"):
        return section("dynamics", "Training dynamics", "<p>No training dynamics recorded (train with "
                       "callbacks.TrainingDynamics; train_cifar.py does by default).</p>")
    rows = [[esc(name), esc(r.get("class", ""))] + [num(r[k][-1]) if r.get(k) else "" for k in
                                                     ("activation_mean", "activation_std", "zero_fraction")]
            + [num(r[k][-1], 6) if r.get(k) else "" for k in ("grad_norm", "update_ratio")]
            for name, r in record["layers"].items()]
    body = (img(figures.data_uri(figures.dynamics(record)), "training dynamics")
            + f"<h3>Epoch {record['epochs'][-1]}</h3>"
            + table(["layer", "class", "mean", "std", "zeros", "‖dL/dW‖", "‖ΔW‖/‖W‖"], rows, left=(0, 1)))
    return section("dynamics", "Training dynamics, per layer and epoch", body,
                   f"On a fixed probe batch of {record.get('probe_size', '?')} images, in inference mode: each "
                   "layer's output statistics and its weights' gradient norm; the update ratio is how far the "
                   "weights moved during the whole epoch, relative to their size (for one step, around 1e-3 "
                   "is the usual rule of thumb). Many zeros after a ReLU mean dead units; a vanishing gradient norm, a "
                   "layer that stopped learning.")


def _history(history):
    if not history:
        return section("history", "Training history", "<p>No history given.</p>")
    return section("history", "Training history", img(figures.data_uri(plot.history_curves(history), 60), "history"))


def _mistakes(x_test, y_true, probs, class_names):
    conf = plot.confusion_matrix(y_true, probs, class_names)
    idx = numbers.confident_mistakes(probs, y_true)
    body = img(figures.data_uri(conf, 60), "confusion matrix")
    if len(idx):
        body += "<h3>The most confident mistakes</h3>" + img(figures.data_uri(
            figures.mistakes(x_test, probs, y_true, idx, class_names)), "confident mistakes")
    return section("confusion", f"Confusion matrix on {len(y_true):,} test images", body,
                   "Rows: true class; columns: predicted. Mistakes titled \"predicted probability (true)\".")
