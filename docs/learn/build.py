"""Builds docs/learn/ from minicnn's own code: every number in the chapters and every figure.

Each chapter marks the places where numbers go:
    <!-- numbers:conv_forward -->
    ```text
    ... what conv_forward() below printed ...
    ```
    <!-- /numbers -->
The function of the same name in BLOCKS runs the chapter's worked example with minicnn's
functions (float64, the readable kernels unless it says otherwise) and returns that text.

    python docs/learn/build.py           rewrite the numbers in the chapters and draw the figures
    python docs/learn/build.py --check   exit 1, naming the blocks, when a chapter and the code disagree

tests/test_learn_docs.py runs the same check, so the text cannot go stale.
"""
import contextlib
import pathlib
import re
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:                  # run as a script from anywhere: this checkout's minicnn
    sys.path.insert(0, str(ROOT))

from minicnn import backend, kernels, layers, losses, optimizers, plot  # noqa: E402
from minicnn.activations import GELU, ReLU, Tanh  # noqa: E402
from minicnn.kernels import reference  # noqa: E402
from minicnn.layers.base import window_geometry  # noqa: E402

CHAPTERS = ["01-im2col.md", "02-conv-backward.md", "03-pooling.md", "04-activations.md",
            "05-softmax-cross-entropy.md", "06-dense.md", "07-batchnorm.md", "08-optimizers.md",
            "09-training-loop.md", "10-fast-kernels.md"]
MARKED = re.compile(r"(<!-- numbers:(\w+) -->\n)(.*?)(<!-- /numbers -->)", re.S)


# ---- printing ----------------------------------------------------------------------------------
def fmt(a, digits=4):
    """A 1-D or 2-D array as aligned text: integers when every value is whole, else `digits`
    decimals (no -0)."""
    a = np.asarray(backend.to_host(a), dtype=float)
    whole = bool(np.all(a == np.round(a)))
    a = np.round(a, 0 if whole else digits) + 0.0
    cells = [f"{v:.0f}" if whole else f"{v:.{digits}f}" for v in a.ravel()]
    width = max(len(c) for c in cells)
    cells = np.array([c.rjust(width) for c in cells]).reshape(a.shape)
    if a.ndim == 1:
        return "[" + "  ".join(cells) + "]"
    return "[" + "\n ".join("[" + "  ".join(row) + "]" for row in cells) + "]"


def show(name, a, digits=4):
    """'name  (shape)' and the array below it."""
    shape = tuple(np.shape(a))
    return f"{name}  {shape}\n{fmt(a, digits)}"


def block(*parts):
    return "```text\n" + "\n\n".join(parts) + "\n```\n"


@contextlib.contextmanager
def readable(float64=True):
    """The readable kernels (kernels/reference.py), on the CPU, in float64: what the chapters run."""
    before, backend_before = ("reference" if kernels.reference_forced() else "fast"), backend.name
    backend.set_backend("cpu")
    kernels.set_kernels("reference")
    try:
        if float64:
            with backend.float64_mode():
                yield
        else:
            yield
    finally:
        kernels.set_kernels(before)
        backend.set_backend(backend_before)


# ---- the worked examples' inputs: a 4x4 one-channel image, two 2x2 filters ------------------------
def image():
    """x (1, 4, 4, 1): one 4x4 image, one channel."""
    return np.array([[1, 2, 0, 1], [0, 1, 3, 2], [2, 0, 1, 1], [1, 3, 0, 2]], dtype=np.float64)[None, :, :, None]


def conv_layer():
    """Conv2D(2, 2): filter 0 is a diagonal difference, filter 1 a 2x2 mean; b = (0, 0.5)."""
    layer = layers.Conv2D(2, 2)
    layer.build((4, 4, 1))
    W = np.zeros((2, 2, 1, 2))
    W[:, :, 0, 0] = [[1, 0], [0, -1]]
    W[:, :, 0, 1] = [[0.25, 0.25], [0.25, 0.25]]
    layer.params["W"][...] = W
    layer.params["b"][...] = [0.0, 0.5]
    return layer


def conv_dy():
    """The upstream gradient dL/dy (1, 3, 3, 2) of chapter 2."""
    dy = np.zeros((1, 3, 3, 2))
    dy[0, :, :, 0] = [[1, 0, 0], [0, -1, 0], [0, 0, 1]]
    dy[0, :, :, 1] = [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    return dy


# ---- 1. convolution as im2col + one GEMM ---------------------------------------------------------
def conv_setup():
    layer = conv_layer()
    W, b = layer.params["W"], layer.params["b"]
    return block(show("x[0, :, :, 0]", image()[0, :, :, 0]),
                 show("W[:, :, 0, 0]  (filter 0)", W[:, :, 0, 0]), show("W[:, :, 0, 1]  (filter 1)", W[:, :, 0, 1]),
                 show("b", b),
                 "window_geometry(4, 2, 1, 'valid') = (OH, pt) = " + str(window_geometry(4, 2, 1, "valid")) + "\n"
                 "window_geometry(4, 2, 1, 'same')  = (OH, pt) = " + str(window_geometry(4, 2, 1, "same")) + "\n"
                 "window_geometry(4, 2, 2, 'valid') = (OH, pt) = " + str(window_geometry(4, 2, 2, "valid")))


def conv_forward():
    layer, x = conv_layer(), image()
    cols = reference.im2col(x, 2, 2, 1, 1, 0, 0, 3, 3)
    Wm = layer.params["W"].reshape(-1, 2)
    Z = cols @ Wm + layer.params["b"]
    y = layer.forward(x, training=True)
    return block(show("cols = im2col(x)", cols), show("Wm = W.reshape(KH*KW*C, F)", Wm),
                 show("Z = cols @ Wm + b", Z),
                 show("y = Z.reshape(N, OH, OW, F): y[0, :, :, 0]", y[0, :, :, 0]),
                 show("y[0, :, :, 1]", y[0, :, :, 1]),
                 "Conv2D.forward(x) == (cols @ Wm + b).reshape(1, 3, 3, 2): "
                 f"{np.array_equal(y, Z.reshape(1, 3, 3, 2))}",
                 f"shapes: x {x.shape} -> cols {cols.shape};  cols {cols.shape} @ Wm {Wm.shape} -> Z {Z.shape}"
                 f" -> y {y.shape}")


# ---- 2. conv backward ----------------------------------------------------------------------------
def conv_backward():
    layer, x, dy = conv_layer(), image(), conv_dy()
    layer.forward(x, training=True)
    dx = layer.backward(dy)
    cols = reference.im2col(x, 2, 2, 1, 1, 0, 0, 3, 3)
    dZ = dy.reshape(-1, 2)
    Wm = layer.params["W"].reshape(-1, 2)
    dWm, db, dcols = cols.T @ dZ, dZ.sum(axis=0), dZ @ Wm.T
    same = (np.array_equal(layer.grads["W"].reshape(-1, 2), dWm) and np.array_equal(layer.grads["b"], db)
            and np.array_equal(dx, reference.col2im(dcols, x.shape, 2, 2, 1, 1, 0, 0, 3, 3)))
    return block(show("dy[0, :, :, 0]", dy[0, :, :, 0]), show("dy[0, :, :, 1]", dy[0, :, :, 1]),
                 show("dZ = dy.reshape(N*OH*OW, F)", dZ), show("dWm = cols.T @ dZ", dWm),
                 show("db = dZ.sum(axis=0)", db), show("dcols = dZ @ Wm.T", dcols),
                 show("dx = col2im(dcols)[0, :, :, 0]", dx[0, :, :, 0]),
                 f"Conv2D.backward gives the same dW, db and dx: {same}")


# ---- 3. pooling ----------------------------------------------------------------------------------
def pool_max():
    layer, x = layers.MaxPooling2D(2), image()
    layer.build((4, 4, 1))
    y = layer.forward(x, training=True)
    arg = layer.cache[1]
    dout = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    dx = layer.backward(dout)
    return block(show("y = max over each window", y[0, :, :, 0]),
                 show("arg = i*PW + j of the winner", arg[0, :, :, 0]),
                 show("dout", dout[0, :, :, 0]), show("dx", dx[0, :, :, 0]))


def pool_avg():
    layer, x = layers.AveragePooling2D(2), image()
    layer.build((4, 4, 1))
    y = layer.forward(x, training=True)
    dout = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    dx = layer.backward(dout)
    return block(show("y = mean of each window", y[0, :, :, 0]), show("dout", dout[0, :, :, 0]),
                 show("dx = dout / (PH*PW) in every cell of the window", dx[0, :, :, 0]))


# ---- 4. activations ------------------------------------------------------------------------------
def activations_table():
    z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    h = 1e-5

    def row(label, values):
        return label.ljust(10) + "".join(f"{v + 0.0:9.4f}" for v in np.round(values, 4))
    rows = [row("z", z)]
    for act in (ReLU(), Tanh(), GELU()):
        y = act.forward(z)
        saved = z if act.needs_input else y
        d = act.backward(np.ones_like(z), saved)
        numeric = (act.forward(z + h) - act.forward(z - h)) / (2 * h)
        rows += ["", row(f"{act.name}(z)", y), row(f"{act.name}'", d), row("numeric", numeric)]
    return block("\n".join(rows))


# ---- 5. softmax cross-entropy --------------------------------------------------------------------
def logits():
    return np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def softmax_ce():
    z, y = logits()
    loss, dz = losses.CategoricalCrossentropy().from_logits_of_softmax(y, z)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    h = 1e-5
    zp, zm = z.copy(), z.copy()
    zp[0, 0] += h
    zm[0, 0] -= h
    f = losses.CategoricalCrossentropy().from_logits_of_softmax
    numeric = (f(y, zp)[0] - f(y, zm)[0]) / (2 * h)
    return block(show("z (logits)", z), show("y (one-hot)", y), show("p = softmax(z)", p),
                 show("-log p[n, label]", -np.log((p * y).sum(axis=1))),
                 f"L = mean = {loss:.4f}", show("dz = (p - y) / B", dz),
                 f"finite difference (L(z00 + h) - L(z00 - h)) / 2h = {numeric:.4f}")


# ---- 6. Dense -----------------------------------------------------------------------------------
def dense():
    layer = layers.Dense(2)
    layer.build((3,))
    layer.params["W"][...] = [[1.0, -1.0], [0.5, 0.0], [0.0, 2.0]]
    layer.params["b"][...] = [0.1, -0.1]
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    y = layer.forward(x, training=True)
    dout = np.array([[1.0, 0.0], [-1.0, 2.0]])
    dx = layer.backward(dout)
    return block(show("x", x), show("W", layer.params["W"]), show("b", layer.params["b"]),
                 show("z = x @ W + b", y), show("dz (upstream)", dout), show("dW = x.T @ dz", layer.grads["W"]),
                 show("db = dz.sum(axis=0)", layer.grads["b"]), show("dx = dz @ W.T", dx))


# ---- 7. batch normalization ----------------------------------------------------------------------
def batchnorm():
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0], [7.0, 8.0]])
    gamma, beta, eps = np.array([1.0, 0.5]), np.array([0.0, 1.0]), 1e-3
    y, mean, var = reference.batchnorm_forward(x, gamma, beta, eps)
    dout = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 2.0]])
    dx, dgamma, dbeta = reference.batchnorm_backward(dout, x, mean, var, gamma, eps)
    xhat = (x - mean) / np.sqrt(var + eps)
    return block(show("x  (M = 4 rows, C = 2 channels)", x), show("gamma", gamma), show("beta", beta),
                 f"eps = {eps}", show("mean", mean), show("var", var), show("xhat", xhat), show("y", y),
                 show("dout", dout), show("dbeta = dout.sum(axis=0)", dbeta),
                 show("dgamma = (dout * xhat).sum(axis=0)", dgamma), show("dx", dx),
                 show("dx.sum(axis=0)", dx.sum(axis=0)))


# ---- 8. optimizers -------------------------------------------------------------------------------
def bowl_gradient(w):
    """g of L(w) = (w0^2 + 10 w1^2) / 2: a bowl ten times steeper along w1."""
    return w * np.array([1.0, 10.0])


def optimizer_paths():
    runs = {"SGD(0.05)": optimizers.SGD(0.05), "SGD(0.05, 0.9)": optimizers.SGD(0.05, momentum=0.9),
            "RMSprop(0.1)": optimizers.RMSprop(0.1), "Adam(0.1)": optimizers.Adam(0.1)}
    paths = {}
    for label, opt in runs.items():
        w = np.array([1.0, 1.0])
        paths[label] = [w.copy()]
        for t in range(3):
            opt.apply([("w", w, bowl_gradient(w), None)])
            paths[label].append(w.copy())
    rows = ["w at".ljust(7) + "".join(label.rjust(18) for label in runs)]
    for t in range(4):
        rows.append(f"t = {t}".ljust(7) + "".join(
            f"({w[0] + 0.0:.3f}, {w[1] + 0.0:.3f})".rjust(18) for w in (np.round(paths[k][t], 3) for k in runs)))
    return block("\n".join(rows))


def adam_first_step():
    w = np.array([1.0, 1.0])
    g = bowl_gradient(w)
    m, v = np.zeros(2), np.zeros(2)
    reference.adam_update(w, g, m, v, 0.1, 0, 0.9, 0.999, 1e-7, 0.0)
    alpha = reference.adam_step_size(0.1, 0, 0.9, 0.999)
    return block(show("g", g), show("m = 0.1 g", m, 6), show("v = 0.001 g^2", v, 6),
                 f"alpha = lr sqrt(1 - 0.999) / (1 - 0.9) = {alpha:.4f}",
                 show("alpha m / (sqrt(v) + eps)", alpha * m / (np.sqrt(v) + 1e-7)), show("w after step 1", w))


# ---- 9. the training loop ------------------------------------------------------------------------
def tiny_model():
    """Conv2D(2, 2, relu) -> Flatten -> Dense(3, softmax) on 4x4x1 images, SGD(0.5), seeded."""
    from minicnn.models import Sequential
    backend.set_seed(0)
    model = Sequential([layers.Conv2D(2, 2, activation="relu", input_shape=(4, 4, 1), name="conv"),
                        layers.Flatten(name="flatten"), layers.Dense(3, activation="softmax", name="dense")])
    model.compile(optimizer=optimizers.SGD(0.5), loss="categorical_crossentropy", metrics=["accuracy"])
    x = np.concatenate([image(), image()[:, ::-1], image()[:, :, ::-1]])   # the image, upside down, mirrored
    y = np.eye(3)
    return model, x, y


def training_loop():
    model, x, y = tiny_model()
    shapes = [f"{layer.name:<10} {type(layer).__name__:<9} output {(None,) + tuple(layer.output_shape)}"
              for layer in model.layers]
    out = []
    for step in range(6):
        loss, acc = model.train_on_batch(x, y)
        out.append(f"step {step}: loss {loss:.4f}  accuracy {acc:.4f}")
    p = model.predict(x, verbose=0)
    return block("\n".join(shapes), "\n".join(out), show("p after 6 steps", p, 3))


# ---- 10. the fast kernels ------------------------------------------------------------------------
def fast_vs_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    W = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    geometry = (3, 3, 1, 1, 1, 1, 8, 8)              # 3x3, stride 1, 'same'
    lines = []
    before = "reference" if kernels.reference_forced() else "fast"
    try:
        for dtype, bound in ((np.float32, 1e-5), (np.float64, 1e-13)):        # far above rounding, far below a bug
            xs, Ws, bs = x.astype(dtype), W.astype(dtype), b.astype(dtype)
            kernels.set_kernels("reference")
            y_ref = kernels.conv2d_forward(xs, Ws, bs, "relu", *geometry)
            p_ref, a_ref = kernels.maxpool_forward(xs, 2, 2, 2, 2, 0, 0, 4, 4)
            kernels.set_kernels("fast")
            y_fast = kernels.conv2d_forward(xs, Ws, bs, "relu", *geometry)
            p_fast, a_fast = kernels.maxpool_forward(xs, 2, 2, 2, 2, 0, 0, 4, 4)
            rel = float(np.abs(y_fast - y_ref).max() / np.abs(y_ref).max())
            name = np.dtype(dtype).name
            lines += [f"{name}: conv 3x3 same + relu, x {x.shape} -> y {y_ref.shape}",
                      f"  max |fast - reference| / max |y| below {bound:g}: {rel < bound}",
                      f"  max pooling 2x2: y and arg identical: "
                      f"{np.array_equal(p_fast, p_ref) and np.array_equal(a_fast, a_ref)}"]
    finally:
        kernels.set_kernels(before)
    # one output of the float32 convolution: its 27 products added first to last, and last to first
    cols = reference.im2col(x, *geometry)
    Wm = W.reshape(-1, 4)
    first = next(r for r in range(len(cols)) if _sum32(cols[r] * Wm[:, 0]) != _sum32((cols[r] * Wm[:, 0])[::-1]))
    products = cols[first] * Wm[:, 0]
    show32 = np.format_float_positional
    lines += ["", f"float32: output row {first}, filter 0: its {len(products)} products of cols @ Wm "
              "added in two orders",
              f"  first to last: {show32(_sum32(products))}", f"  last to first: {show32(_sum32(products[::-1]))}"]
    a, b_, c = np.float32(0.9), np.float32(0.2), np.float32(0.3)
    left, right = (a + b_) + c, a + (b_ + c)
    lines += ["", "float32: the same three numbers added in two orders",
              f"  (0.9 + 0.2) + 0.3 = {show32(left)}", f"  0.9 + (0.2 + 0.3) = {show32(right)}",
              f"  equal: {left == right}"]
    return block("\n".join(lines))


def _sum32(values):
    """values added one at a time, left to right, in float32."""
    total = np.float32(0)
    for v in values:
        total = np.float32(total + v)
    return total


BLOCKS = {f.__name__: f for f in (conv_setup, conv_forward, conv_backward, pool_max, pool_avg, activations_table,
                                  softmax_ce, dense, batchnorm, optimizer_paths, adam_first_step, training_loop,
                                  fast_vs_reference)}


def figures():
    """{file name in docs/learn/figures/: Figure}, drawn by minicnn.plot from the chapters' image."""
    with readable():
        x = image()[0, :, :, 0]
        return {"im2col.png": plot.im2col_layout(x, 2, 2, rows=(0, 4)), "maxpool.png": plot.pool_argmax(x, 2)}


# ---- filling the chapters ------------------------------------------------------------------------
def numbers():
    """{block name: text} for every block, computed now."""
    out = {}
    for name, f in BLOCKS.items():
        with readable():
            out[name] = f()
    return out


def render(text, computed):
    """The chapter's text with every marked block replaced by the computed one."""
    def fill(m):
        if m.group(2) not in computed:
            raise KeyError(f"no function {m.group(2)!r} in docs/learn/build.py for the block of that name")
        return m.group(1) + computed[m.group(2)] + m.group(4)
    return MARKED.sub(fill, text)


def stale(computed=None):
    """[(chapter, block name)] where the committed text differs from what the code prints now."""
    computed = computed or numbers()
    out = []
    for chapter in CHAPTERS:
        text = (HERE / chapter).read_text()
        for m in MARKED.finditer(text):
            if m.group(3) != computed.get(m.group(2)):
                out.append((chapter, m.group(2)))
    return out


def main(argv):
    computed = numbers()
    if "--check" in argv:
        bad = stale(computed)
        for chapter, name in bad:
            print(f"{chapter}: the numbers of block {name!r} differ from the code's; run python docs/learn/build.py")
        return 1 if bad else 0
    for chapter in CHAPTERS:
        path = HERE / chapter
        text = path.read_text()
        new = render(text, computed)
        if new != text:
            path.write_text(new)
            print("rewrote", chapter)
    (HERE / "figures").mkdir(exist_ok=True)
    for name, fig in figures().items():
        plot._finish(fig, HERE / "figures" / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
