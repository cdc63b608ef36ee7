"""The tutorials' pictures, drawn with matplotlib's object API (no pyplot, no display: headless-safe).

Every function returns the matplotlib Figure and, given `path`, also writes it as a PNG
(atomically). In a notebook, just display the returned figure.
    image_grid          first images of a dataset with their class names
    history_curves      accuracy and loss, training vs validation, per epoch
    prediction_grid     test images titled "predicted (true)", green when right, red when wrong
    confusion_matrix    counts of true class (rows) vs predicted class (columns)
    first_layer_filters the first Conv2D layer's kernels as small images
    feature_maps        what each Conv2D/pooling layer outputs for one image
    training_report     all of the last five for a trained model, as PNGs in one folder
"""
import io

import numpy as np
from matplotlib.figure import Figure

from minicnn import backend
from minicnn.layers import AveragePooling2D, Conv2D, MaxPooling2D
from minicnn.saving import atomic_write


def _finish(fig, path):
    if path is not None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
        atomic_write(path, lambda f: f.write(buf.getvalue()))
    return fig


def _show_image(ax, img):
    img = np.asarray(img)
    if img.dtype != np.uint8:
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img, dtype=float)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax.set_xticks([])
    ax.set_yticks([])


def _labels(y):
    y = np.asarray(y)
    return y.argmax(axis=-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)


def image_grid(x, y=None, class_names=None, n=36, cols=12, path=None, title=None):
    """The first n images in a grid (3 x 12 as in the tutorials), each titled with its class."""
    n = min(n, len(x))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(cols * 1.3, rows * 1.5))
    labels = None if y is None else _labels(y)
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        _show_image(ax, x[i])
        if labels is not None:
            ax.set_title(class_names[labels[i]] if class_names else str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def history_curves(history, path=None):
    """Two panels, 'model accuracy' and 'model loss': training vs validation per epoch."""
    h = history.history if hasattr(history, "history") else history
    fig = Figure(figsize=(11, 4))
    for k, metric in enumerate(("accuracy", "loss")):
        ax = fig.add_subplot(1, 2, k + 1)
        epochs = np.arange(1, len(h.get(metric, [])) + 1)
        if metric in h:
            ax.plot(epochs, h[metric], "o-", label="training")
        if f"val_{metric}" in h:
            ax.plot(epochs, h[f"val_{metric}"], "o-", label="validation")
        ax.set_title(f"model {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    return _finish(fig, path)


def prediction_grid(x, y_true, y_pred, class_names, n=32, cols=8, path=None, seed=0):
    """A random sample of images titled "predicted (true)", green if right, red if wrong."""
    t, p = _labels(y_true), _labels(y_pred)
    idx = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    rows = int(np.ceil(len(idx) / cols))
    fig = Figure(figsize=(cols * 2, rows * 2.2))
    for k, i in enumerate(idx):
        ax = fig.add_subplot(rows, cols, k + 1)
        _show_image(ax, x[i])
        ax.set_title(f"{class_names[p[i]]} ({class_names[t[i]]})", fontsize=8,
                     color="green" if p[i] == t[i] else "red")
    return _finish(fig, path)


def confusion_counts(y_true, y_pred, num_classes):
    """counts[i, j] = number of samples of true class i predicted as class j."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (_labels(y_true), _labels(y_pred)), 1)
    return counts


def confusion_matrix(y_true, y_pred, class_names, path=None):
    counts = confusion_counts(y_true, y_pred, len(class_names))
    fig = Figure(figsize=(8, 7))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(counts, cmap="Blues")
    fig.colorbar(im, ax=ax)
    K = len(class_names)
    ax.set_xticks(range(K), class_names, rotation=45, ha="right")
    ax.set_yticks(range(K), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(K):
        for j in range(K):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_title(f"confusion matrix (accuracy {np.trace(counts) / max(counts.sum(), 1):.3f})")
    return _finish(fig, path)


def _conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, Conv2D)]


def first_layer_filters(model, path=None, cols=8):
    """The first Conv2D's kernels (KH, KW, C) as images, one per filter (RGB when C = 3)."""
    convs = _conv_layers(model)
    if not convs:
        raise ValueError("the model has no Conv2D layer to show filters of")
    W = backend.to_host(convs[0].params["W"])
    F = W.shape[-1]
    rows = int(np.ceil(F / cols))
    fig = Figure(figsize=(cols * 1.2, rows * 1.3))
    for f in range(F):
        ax = fig.add_subplot(rows, cols, f + 1)
        k = W[..., f]
        _show_image(ax, k if k.shape[-1] in (1, 3) else k.mean(axis=-1))
        ax.set_title(str(f), fontsize=7)
    fig.suptitle(f"{convs[0].name}: {F} filters {W.shape[0]}x{W.shape[1]}")
    return _finish(fig, path)


def feature_maps(model, image, path=None, max_channels=8):
    """One row per Conv2D/pooling layer: the first channels of its output for one image."""
    x = backend.to_device(np.asarray(image, dtype=backend.floatx())[None])
    rows = []
    for layer in model.layers:
        x = layer.forward(x, training=False)
        if isinstance(layer, (Conv2D, MaxPooling2D, AveragePooling2D)):
            rows.append((layer.name, backend.to_host(x[0])))
    fig = Figure(figsize=((max_channels + 1) * 1.3, len(rows) * 1.4))
    for r, (name, fmap) in enumerate(rows):
        ax = fig.add_subplot(len(rows), max_channels + 1, r * (max_channels + 1) + 1)
        if r == 0:
            _show_image(ax, image)
        else:
            ax.axis("off")
        ax.set_title(name if r else f"input / {name}", fontsize=7)
        for c in range(min(max_channels, fmap.shape[-1])):
            ax = fig.add_subplot(len(rows), max_channels + 1, r * (max_channels + 1) + 2 + c)
            _show_image(ax, fmap[..., c])
    return _finish(fig, path)


def training_report(model, history, x_test, y_test, class_names, folder, batch_size=256):
    """history.png, predictions.png, confusion_matrix.png, filters.png, feature_maps.png in folder."""
    import pathlib
    folder = pathlib.Path(folder)
    probs = model.predict(x_test, batch_size=batch_size)
    history_curves(history, path=folder / "history.png")
    prediction_grid(x_test, y_test, probs, class_names, path=folder / "predictions.png")
    confusion_matrix(y_test, probs, class_names, path=folder / "confusion_matrix.png")
    first_layer_filters(model, path=folder / "filters.png")
    feature_maps(model, x_test[0], path=folder / "feature_maps.png")
    return probs
