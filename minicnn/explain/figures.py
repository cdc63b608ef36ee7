"""The explainer's pictures: matplotlib figures (object API, headless-safe) as inline PNG data URIs.
The tutorials' pictures come from minicnn.plot; the ones here are the explainer's own."""
import base64
import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from minicnn import plot


def data_uri(fig, dpi=None):
    """The figure as `data:image/png;base64,...` (what an <img src> takes: no file, no network)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image(img, title=None, box=None):
    """One image, with an optional (top, left, height, width) rectangle drawn on it."""
    fig = Figure(figsize=(2.2, 2.2), dpi=80)
    ax = fig.add_subplot(1, 1, 1)
    plot._show_image(ax, img)
    if box is not None:
        top, left, h, w = box
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.5))
    if title:
        ax.set_title(title, fontsize=8)
    return fig


def channels(fmap, max_channels=16, cols=8):
    """The first channels of one (H, W, C) output, each as a small gray image."""
    C = min(max_channels, fmap.shape[-1])
    rows = int(np.ceil(C / cols))
    fig = Figure(figsize=(min(C, cols) * 1.2, rows * 1.3), dpi=60)
    for c in range(C):
        ax = fig.add_subplot(rows, min(C, cols), c + 1)
        plot._show_image(ax, fmap[..., c])
        ax.set_title(str(c), fontsize=6)
    return fig


def vector(v, names=None):
    """A 1-D output as bars (at most 256 shown)."""
    v = np.asarray(v)[:256]
    fig = Figure(figsize=(7, 1.6), dpi=60)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(np.arange(len(v)), v, color="#4477aa")
    if names is not None and len(names) == len(v):
        ax.set_xticks(range(len(v)), names, rotation=30, fontsize=7)
    ax.tick_params(labelsize=7)
    return fig


def dynamics(record, max_lines=6):
    """Five panels with the layers along x (input side left) and one line per epoch: activation
    mean, std, fraction of zeros (every layer); gradient norm and update/weight ratio (the layers
    with weights, log scale). At most max_lines epochs are drawn, evenly spread, the last included."""
    panels = [("activation_mean", "activation mean", False), ("activation_std", "activation std", False),
              ("zero_fraction", "fraction of zeros", False), ("grad_norm", "gradient norm ||dL/dW||", True),
              ("update_ratio", "update/weight ratio ||ΔW|| / ||W|| (per epoch)", True)]
    epochs, names = record.get("epochs", []), list(record.get("layers", {}))
    shown = sorted({int(round(k)) for k in np.linspace(0, len(epochs) - 1, min(max_lines, len(epochs)))})
    fig = Figure(figsize=(13, 7.5), dpi=60)
    fig.subplots_adjust(hspace=0.9, wspace=0.25, bottom=0.2)
    for k, (key, title, log) in enumerate(panels):
        ax = fig.add_subplot(2, 3, k + 1)
        xs = [i for i, n in enumerate(names) if record["layers"][n].get(key)]
        for e in shown:
            ys = [record["layers"][names[i]][key][e] for i in xs]
            ax.plot(xs, ys, "o-", markersize=3, label=f"epoch {epochs[e]}",
                    color=(0.2, 0.3 + 0.5 * e / max(len(epochs) - 1, 1), 0.8 - 0.6 * e / max(len(epochs) - 1, 1)))
        if log and ax.lines:
            ax.set_yscale("log")
        ax.set_xticks(xs, [names[i] for i in xs], rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center", fontsize=9, bbox_to_anchor=(0.83, 0.3))
    return fig


def mistakes(x, probs, y_true, idx, class_names, cols=6):
    """The images of idx titled "predicted p (true)"."""
    rows = max(1, int(np.ceil(len(idx) / cols)))
    fig = Figure(figsize=(cols * 1.7, rows * 1.9), dpi=70)
    for k, i in enumerate(idx):
        ax = fig.add_subplot(rows, cols, k + 1)
        plot._show_image(ax, x[i])
        p = int(probs[i].argmax())
        ax.set_title(f"{class_names[p]} {probs[i, p]:.2f}\n({class_names[int(y_true[i])]})", fontsize=8, color="red")
    return fig
