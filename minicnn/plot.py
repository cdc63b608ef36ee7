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
The learner views (docs/learn/), drawn from what minicnn's kernels compute on a small image:
    im2col_layout       an image's patches and the rows of im2col's matrix they become
    pool_argmax         max pooling's windows, the cell that wins each one, and the output
"""
import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from minicnn import backend, kernels
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
    rows = [(name, backend.to_host(y[0])) for name, layer, y in model.layer_outputs(x)
            if isinstance(layer, (Conv2D, MaxPooling2D, AveragePooling2D))]
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


# ---- learner views: numbers in grids, from the kernels' real output ----------------------------------
def _number_grid(ax, a, title, fill=None, digits=0):
    """The values of a 2-D array written in a grid of cells; fill: {(row, col): colour}."""
    a = np.asarray(a, dtype=float)
    R, C = a.shape
    for (r, c), colour in (fill or {}).items():
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, color=colour, alpha=0.35, lw=0, zorder=0))
    for r in range(R):
        for c in range(C):
            ax.text(c, r, f"{a[r, c]:.{digits}f}", ha="center", va="center", fontsize=9)
    ax.set_xlim(-0.5, C - 0.5)
    ax.set_ylim(R - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks(range(C))
    ax.set_yticks(range(R))
    ax.set_xticks(np.arange(-0.5, C, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, R, 1), minor=True)
    ax.grid(which="minor", color="0.6", lw=0.5)
    ax.tick_params(which="both", length=0, labelsize=7)
    ax.set_title(title, fontsize=9)


_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple")


def im2col_layout(image, KH, KW, strides=(1, 1), rows=(0, 4), path=None):
    """A one-channel image (H, W), its im2col matrix (kernels.im2col, 'valid' windows), and, in one
    colour each, the patches that become the given rows: row (oh*OW + ow) holds the window at
    (oh*sh, ow*sw), read in (i, j) order."""
    x = np.asarray(image, dtype=float)
    (H, W), (sh, sw) = x.shape, strides
    OH, OW = (H - KH) // sh + 1, (W - KW) // sw + 1
    cols = backend.to_host(kernels.im2col(backend.to_device(x[None, :, :, None]), KH, KW, sh, sw, 0, 0, OH, OW))
    fig = Figure(figsize=(3 + 0.45 * KH * KW + 0.45 * W, 0.45 * max(H, OH * OW) + 1))
    grid = fig.add_gridspec(1, 2, width_ratios=(W, KH * KW))
    left, right = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    _number_grid(left, x, f"image x ({H}x{W})")
    fill = {}
    for k, r in enumerate(rows):
        colour = _COLOURS[k % len(_COLOURS)]
        oh, ow = divmod(r, OW)
        left.add_patch(Rectangle((ow * sw - 0.5, oh * sh - 0.5), KW, KH, fill=False, ec=colour, lw=2.5))
        fill.update({(r, c): colour for c in range(KH * KW)})
    _number_grid(right, cols, f"cols = im2col(x)  ({OH * OW}x{KH * KW})", fill)
    right.set_xticks(range(KH * KW), [f"({i},{j})" for i in range(KH) for j in range(KW)])
    right.set_yticks(range(OH * OW), [f"{r}: ({r // OW},{r % OW})" for r in range(OH * OW)])
    right.set_xlabel("(i, j) in the window")
    right.set_ylabel("row: (oh, ow)")
    return _finish(fig, path)


def pool_argmax(image, pool=2, path=None):
    """Max pooling of a one-channel image (H, W) with pool x pool windows, stride pool
    (kernels.maxpool_forward): the windows, the cell that wins each (its arg, i*pool + j, is where
    backward sends the window's gradient) and the output."""
    x = np.asarray(image, dtype=float)
    H, W = x.shape
    OH, OW = H // pool, W // pool
    y, arg = kernels.maxpool_forward(backend.to_device(x[None, :, :, None]), pool, pool, pool, pool, 0, 0, OH, OW)
    y, arg = backend.to_host(y)[0, :, :, 0], backend.to_host(arg)[0, :, :, 0]
    fig = Figure(figsize=(1 + 0.45 * (W + OW) + 2, 0.45 * H + 1))
    grid = fig.add_gridspec(1, 2, width_ratios=(W, OW))
    left, right = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    winners = {(oh * pool + arg[oh, ow] // pool, ow * pool + arg[oh, ow] % pool): "tab:red"
               for oh in range(OH) for ow in range(OW)}
    _number_grid(left, x, f"x ({H}x{W}), winners shaded", winners)
    for oh in range(OH):
        for ow in range(OW):
            left.add_patch(Rectangle((ow * pool - 0.5, oh * pool - 0.5), pool, pool, fill=False, ec="k", lw=2))
    _number_grid(right, y, f"y ({OH}x{OW})", {(oh, ow): "tab:red" for oh in range(OH) for ow in range(OW)})
    return _finish(fig, path)
