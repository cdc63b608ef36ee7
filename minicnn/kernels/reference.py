"""Plain-xp twins of the fast kernels: the specification and the test oracle.

They run on NumPy or CuPy alike (``xp = backend.xp``), loop only over the KH*KW window offsets,
and are written to be read. Geometry, shared by every kernel (NHWC):

    x: (N, H, W, C); window KH x KW; strides sh, sw; pt, pl = zero rows/cols added at top/left;
    output OH x OW; window (oh, ow) covers rows oh*sh - pt + [0, KH) and cols ow*sw - pl + [0, KW).
    Cells outside the input are padding: 0 for convolution, ignored for pooling.
"""
import math

from minicnn import activations, backend


def _pad(x, KH, KW, sh, sw, pt, pl, OH, OW, value):
    """Pad x so that every window lies inside; returns the padded array."""
    xp = backend.xp
    N, H, W, C = x.shape
    pb = max(0, (OH - 1) * sh + KH - H - pt)
    pr = max(0, (OW - 1) * sw + KW - W - pl)
    return xp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def _window(a, i, j, sh, sw, OH, OW):
    """The (N, OH, OW, C) view of padded array a seen at window offset (i, j)."""
    return a[:, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw, :]


def im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, out=None):
    """Unfold patches: cols[(n*OH + oh)*OW + ow, (i*KW + j)*C + c] = xpad[n, oh*sh + i, ow*sw + j, c].

    x (N, H, W, C) -> cols (N*OH*OW, KH*KW*C). Patch order (kh, kw, c) matches a Keras kernel
    (KH, KW, C, F) reshaped to (KH*KW*C, F), so the convolution is one GEMM.
    """
    xp = backend.xp
    N, C = x.shape[0], x.shape[3]
    xpad = _pad(x, KH, KW, sh, sw, pt, pl, OH, OW, 0)
    cols = xp.empty((N, OH, OW, KH, KW, C), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            cols[:, :, :, i, j, :] = _window(xpad, i, j, sh, sw, OH, OW)
    cols = cols.reshape(N * OH * OW, KH * KW * C)
    if out is not None:
        out[...] = cols
        return out
    return cols


def col2im(dcols, x_shape, KH, KW, sh, sw, pt, pl, OH, OW):
    """Adjoint of im2col: add every patch gradient back where it came from.

    dcols (N*OH*OW, KH*KW*C) -> dx (N, H, W, C); overlapping windows sum, padding is dropped.
    """
    xp = backend.xp
    N, H, W, C = x_shape
    dxpad = _pad(xp.zeros(x_shape, dtype=dcols.dtype), KH, KW, sh, sw, pt, pl, OH, OW, 0)
    d = dcols.reshape(N, OH, OW, KH, KW, C)
    for i in range(KH):
        for j in range(KW):
            _window(dxpad, i, j, sh, sw, OH, OW)[...] += d[:, :, :, i, j, :]
    return dxpad[:, pt:pt + H, pl:pl + W, :].copy()


def argmax_dtype(PH, PW):
    """Smallest integer type that holds a window index i*PW + j."""
    import numpy
    return numpy.int8 if PH * PW <= 127 else numpy.int32


def maxpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW):
    """y[n,oh,ow,c] = max over the window (padding ignored); arg = i*PW + j of the FIRST maximum
    in row-major window order (Keras/TF tie rule).  x (N,H,W,C) -> y, arg (N,OH,OW,C)."""
    xp = backend.xp
    xpad = _pad(x, PH, PW, sh, sw, pt, pl, OH, OW, -xp.inf)
    y = xp.full((x.shape[0], OH, OW, x.shape[3]), -xp.inf, dtype=x.dtype)
    arg = xp.zeros(y.shape, dtype=argmax_dtype(PH, PW))
    for i in range(PH):
        for j in range(PW):
            v = _window(xpad, i, j, sh, sw, OH, OW)
            better = v > y                       # strict: ties keep the earlier cell
            y = xp.where(better, v, y)
            arg = xp.where(better, i * PW + j, arg).astype(arg.dtype)
    return y, arg


def conv2d_relu_maxpool(x, W, b, KH, KW, sh, sw, pt, pl, OH, OW, PH, PW):
    """The fused kernel's specification: relu(conv(x) + b), then max-pooling over PH x PW windows
    (stride = window, valid). -> (pooled, arg) as maxpool_forward."""
    y = conv2d_forward(x, W, b, "relu", KH, KW, sh, sw, pt, pl, OH, OW)
    return maxpool_forward(y, PH, PW, PH, PW, 0, 0, OH // PH, OW // PW)


def conv2d_maxpool_backward(dout, arg, pooled, PH, PW, x, W, KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out,
                            input_grad):
    """The fused backward's specification: relu'(y) at each window's winner is (pooled > 0), and the
    other cells get nothing, so dz = maxpool_backward(dout * (pooled > 0), arg); then the conv's
    backward with no derivative left to apply."""
    dz = maxpool_backward(dout * (pooled > 0), arg, (x.shape[0], OH, OW, W.shape[3]), PH, PW, PH, PW, 0, 0)
    return conv2d_backward(dz, x, dz, W, "linear", KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out, input_grad)


def maxpool_backward(dout, arg, x_shape, PH, PW, sh, sw, pt, pl):
    """dx = dout routed to the one cell that won each window.  dout, arg (N,OH,OW,C) -> dx (N,H,W,C)."""
    xp = backend.xp
    N, H, W, C = x_shape
    OH, OW = dout.shape[1:3]
    dxpad = _pad(xp.zeros(x_shape, dtype=dout.dtype), PH, PW, sh, sw, pt, pl, OH, OW, 0)
    for i in range(PH):
        for j in range(PW):
            _window(dxpad, i, j, sh, sw, OH, OW)[...] += dout * (arg == i * PW + j)
    return dxpad[:, pt:pt + H, pl:pl + W, :].copy()


def pool_counts(x_shape, PH, PW, sh, sw, pt, pl, OH, OW, dtype):
    """Number of real (non-padding) cells in each window: (1, OH, OW, 1)."""
    xp = backend.xp
    ones = _pad(xp.ones((1, x_shape[1], x_shape[2], 1), dtype=dtype), PH, PW, sh, sw, pt, pl, OH, OW, 0)
    count = xp.zeros((1, OH, OW, 1), dtype=dtype)
    for i in range(PH):
        for j in range(PW):
            count += _window(ones, i, j, sh, sw, OH, OW)
    return count


def avgpool_forward(x, PH, PW, sh, sw, pt, pl, OH, OW):
    """y = mean of the real cells of each window (padding left out of the divisor, as in Keras)."""
    xp = backend.xp
    xpad = _pad(x, PH, PW, sh, sw, pt, pl, OH, OW, 0)
    total = xp.zeros((x.shape[0], OH, OW, x.shape[3]), dtype=x.dtype)
    for i in range(PH):
        for j in range(PW):
            total += _window(xpad, i, j, sh, sw, OH, OW)
    return total / pool_counts(x.shape, PH, PW, sh, sw, pt, pl, OH, OW, x.dtype)


def avgpool_backward(dout, x_shape, PH, PW, sh, sw, pt, pl):
    """dx[cell] = sum over the windows holding the cell of dout / count(window)."""
    xp = backend.xp
    OH, OW = dout.shape[1:3]
    share = dout / pool_counts(x_shape, PH, PW, sh, sw, pt, pl, OH, OW, dout.dtype)
    dxpad = _pad(xp.zeros(x_shape, dtype=dout.dtype), PH, PW, sh, sw, pt, pl, OH, OW, 0)
    for i in range(PH):
        for j in range(PW):
            _window(dxpad, i, j, sh, sw, OH, OW)[...] += share
    H, W = x_shape[1:3]
    return dxpad[:, pt:pt + H, pl:pl + W, :].copy()


# ---- fused elementwise: activations by name, the math in activations.py ----------------------------
def bias_activation(z, b, name):
    """y = act(z + b): z (R, F) the GEMM output, b (F,) or None, act named ('relu', 'gelu', ...).
    For an activation whose derivative needs its input (GELU), z + b is left in z, for the layer
    to cache."""
    activation = activations.get(name)
    if activation.needs_input:
        if b is not None:
            z += b
        return activation.forward(z)
    return activation.forward(z if b is None else z + b)


def activation_forward(x, name):
    """y = act(x) for the activation called `name` (activations.py holds the math)."""
    return activations.get(name).forward(x)


def activation_backward(dy, y, name):
    """dx = act'(x) applied to dy, from y = act(x) (from x itself for GELU)."""
    return activations.get(name).backward(dy, y)


def gelu(z):
    """y = z Phi(z), Phi(z) = (1 + erf(z / sqrt 2)) / 2  (activations.GELU)."""
    return activations.GELU().forward(z)


def gelu_backward(dy, z):
    """dz = dy (Phi(z) + z phi(z)), phi(z) = exp(-z^2 / 2) / sqrt(2 pi)  (activations.GELU)."""
    return activations.GELU().backward(dy, z)


def bias_activation_backward(dout, y, name, out, db_out=None):
    """out = dz = dL/dz from dout = dL/dy and y = act(z) (z itself for an activation that needs its
    input); returns db = sum over rows of dz (written into db_out when given).  dout, y, out (R, F)."""
    out[...] = activations.get(name).backward(dout, y)
    if db_out is None:
        return out.sum(axis=0)
    db_out[...] = out.sum(axis=0)
    return db_out


# ---- batch normalization in training mode, over the rows of x (M, C): one column per channel ------
def batchnorm_forward(x, gamma, beta, eps):
    """y = gamma (x - mean) / sqrt(var + eps) + beta with the batch's mean and biased variance per
    column; returns (y, mean, var). gamma / beta None: 1 / 0."""
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    y = (x - mean) / backend.xp.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    return (y + beta if beta is not None else y), mean, var


def batchnorm_backward(dout, x, mean, var, gamma, eps):
    """From dout = dL/dy: (dx, dgamma, dbeta) with xhat = (x - mean) inv, inv = 1 / sqrt(var + eps):
        dbeta = sum(dout),  dgamma = sum(dout xhat)        (column sums)
        dx = gamma inv / M (M dout - dbeta - xhat dgamma)"""
    inv = 1 / backend.xp.sqrt(var + eps)
    xhat = (x - mean) * inv
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    M = x.shape[0]
    scale = inv / M if gamma is None else gamma * inv / M
    return scale * (M * dout - dbeta - xhat * dgamma), dgamma, dbeta


# ---- data augmentation ---------------------------------------------------------------------------
def flip_crop(x, which, dy, dx, pad):
    """Image n of x (N, H, W, C), mirrored left-right where which[n] (which None: nowhere), then cut
    at offset (dy[n], dx[n]) in {0, ..., 2 pad} out of its reflect-padded copy (numpy's 'reflect':
    the border pixel is not repeated). A new array; pad < min(H, W)."""
    xp = backend.xp
    out = x if which is None else xp.where(which[:, None, None, None], x[:, :, ::-1, :], x)
    padded = xp.pad(out, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    result = xp.empty_like(x)
    H, W = x.shape[1:3]
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            rows = xp.nonzero((dy == oy) & (dx == ox))[0]      # the images sharing this offset
            result[rows] = padded[rows, oy:oy + H, ox:ox + W]
    return result


# ---- resampling: images read at per-pixel positions (the augmentation layers, ImageDataGenerator) --
# A geometric transform is written as an inverse map: output pixel (i, j) of image n reads the input
# at the position (rows[n, i, j], cols[n, i, j]), in pixels, usually between pixels. Bilinear
# interpolation mixes the (up to) four pixels around it; a pixel outside the image is read
# through a fill mode, one pixel at a time (Keras 3's rules):
#     reflect   d c b a | a b c d | d c b a      mirrored about the edge (the edge pixel repeated)
#     wrap      a b c d | a b c d | a b c d      the image repeated
#     nearest   a a a a | a b c d | d d d d      the edge pixel
#     constant  k k k k | a b c d | k k k k      k = fill_value
FILL_MODES = ("reflect", "wrap", "nearest", "constant")


def affine_positions(matrices, OH, OW):
    """Where each output pixel reads under per-image affine maps: (r, c, 1) = M_n (i, j, 1).
    matrices (N, 3, 3) in (row, column) order, last row (0, 0, 1) -> rows, cols (N, OH, OW) float64."""
    xp = backend.xp
    M = xp.asarray(matrices, dtype=xp.float64)[:, :, :, None, None]        # (N, 3, 3, 1, 1)
    i = xp.arange(OH, dtype=xp.float64)[:, None]
    j = xp.arange(OW, dtype=xp.float64)[None, :]
    return M[:, 0, 0] * i + M[:, 0, 1] * j + M[:, 0, 2], M[:, 1, 0] * i + M[:, 1, 1] * j + M[:, 1, 2]


def fold(index, size, fill_mode):
    """Integer pixel positions mapped into [0, size) by the fill mode (constant: clipped; the
    caller puts fill_value where the position was outside)."""
    xp = backend.xp
    if fill_mode == "reflect":                        # period 2 size: 0..size-1, then size-1..0
        period = xp.mod(index, 2 * size)
        return xp.where(period >= size, 2 * size - 1 - period, period)
    if fill_mode == "wrap":
        return xp.mod(index, size)
    return xp.clip(index, 0, size - 1)


def resample_taps(rows, cols, interpolation):
    """The pixels each output pixel reads and their weights, [(r, c, w), ...], arrays like rows.
    nearest: one tap, the closest pixel floor(position + 1/2), weight 1. bilinear: four taps around
    (r0, c0) = floor(position), with fr = rows - r0, fc = cols - c0 in [0, 1):
        (r0, c0): (1-fr)(1-fc)   (r0, c0+1): (1-fr) fc   (r0+1, c0): fr (1-fc)   (r0+1, c0+1): fr fc"""
    xp = backend.xp
    if interpolation == "nearest":
        return [(xp.floor(rows + 0.5).astype(xp.int64), xp.floor(cols + 0.5).astype(xp.int64), xp.ones_like(rows))]
    r0, c0 = xp.floor(rows), xp.floor(cols)
    fr, fc = rows - r0, cols - c0
    r0, c0 = r0.astype(xp.int64), c0.astype(xp.int64)
    return [(r0, c0, (1 - fr) * (1 - fc)), (r0, c0 + 1, (1 - fr) * fc),
            (r0 + 1, c0, fr * (1 - fc)), (r0 + 1, c0 + 1, fr * fc)]


def _inside(r, c, H, W):
    return (r >= 0) & (r < H) & (c >= 0) & (c < W)


def resample(x, rows, cols, fill_mode, fill_value, interpolation):
    """out[n, i, j, :] = sum over the taps (r, c, w) of w * x[n, fold(r), fold(c), :] (constant
    mode: w * fill_value for a tap outside the image).  x (N, H, W, C), rows and cols (N, OH, OW)
    -> out (N, OH, OW, C), x's dtype, summed in float64."""
    xp = backend.xp
    N, H, W, C = x.shape
    n = xp.arange(N)[:, None, None]
    out = xp.zeros(rows.shape + (C,), dtype=xp.float64)
    for r, c, w in resample_taps(rows, cols, interpolation):
        value = x[n, fold(r, H, fill_mode), fold(c, W, fill_mode)]
        if fill_mode == "constant":
            value = xp.where(_inside(r, c, H, W)[..., None], value, fill_value)
        out += w[..., None] * value
    return out.astype(x.dtype)


def resample_backward(dy, rows, cols, x_shape, fill_mode, interpolation):
    """dx of resample: each tap hands w * dy[n, i, j, :] back to the pixel it read (a tap that read
    fill_value hands nothing back).  dy (N, OH, OW, C) -> dx x_shape, dy's dtype, summed in float64."""
    xp = backend.xp
    N, H, W, C = x_shape
    n = xp.arange(N)[:, None, None]
    dx = xp.zeros(N * H * W * C, dtype=xp.float64)
    channel = xp.arange(C)
    for r, c, w in resample_taps(rows, cols, interpolation):
        if fill_mode == "constant":
            w = w * _inside(r, c, H, W)
        pixel = (n * H + fold(r, H, fill_mode)) * W + fold(c, W, fill_mode)          # (N, OH, OW)
        index = (pixel[..., None] * C + channel).ravel()                             # one per value of dy
        dx += xp.bincount(index, weights=(w[..., None] * dy).ravel(), minlength=dx.size)
    return dx.reshape(x_shape).astype(dy.dtype)


# ---- dropout mask from a counter-based stream ----------------------------------------------------
def _mix64(z):
    """SplitMix64's finalizer on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    return z ^ (z >> 31)


def uniforms(n, seed, counter):
    """n numbers uniform in [0, 1) (24 bits): the first n of the SplitMix64 stream keyed by
    (seed, counter): key = mix64(seed * 2^32 XOR counter), u_i = mix64(key + (i + 1) * golden) / 2^64.
    Counter-based, so any element can be computed on its own: the same numbers on CPU and GPU."""
    import numpy as np
    xp = backend.xp
    with np.errstate(over="ignore"):
        key = _mix64(np.uint64((int(seed) << 32) ^ int(counter)))
        i = xp.arange(1, int(n) + 1, dtype=xp.uint64)
        return (_mix64(xp.uint64(key) + i * xp.uint64(0x9E3779B97F4A7C15)) >> xp.uint64(40)).astype(xp.float64) \
            / 16777216.0


def dropout_mask(shape, seed, counter, rate, dtype):
    """mask = keep / (1 - rate), keep = [u >= rate], u = uniforms(size, seed, counter) in C order."""
    import numpy as np
    keep = (uniforms(int(np.prod(shape)), seed, counter) >= rate).reshape(shape)
    return keep.astype(dtype) * np.dtype(dtype).type(1.0 / (1.0 - rate))


def dropout_apply(x, seed, counter, rate):
    """x * dropout_mask(x.shape, seed, counter, rate): the forward (x) and, with the same counter,
    the backward (x = dout): the mask is recomputed from its key instead of being kept."""
    return x * dropout_mask(x.shape, seed, counter, rate, x.dtype)


def dropout_train(x, seed, counter, rate, mask_shape, apply=None, mask_of=None):
    """Dropout's training forward keyed by (seed, k), k = counter[0], then counter[0] += 1.
    counter: an integer array of one element (on the device where x is: a CUDA graph advances it
    there). Returns (y, saved) for dropout_backward: k itself when the mask has x's shape (the mask
    is recomputed from its key in backward, never stored), else the small mask of mask_shape
    (noise_shape), broadcast over x. apply/mask_of: the backend's dropout_apply/dropout_mask."""
    apply, mask_of = apply or dropout_apply, mask_of or dropout_mask
    k = int(counter[0])
    counter[0] += 1
    if tuple(mask_shape) == tuple(x.shape):
        return apply(x, seed, k, rate), k
    mask = mask_of(mask_shape, seed, k, rate, x.dtype)
    return x * mask, mask


# ---- optimizer rules: one update of one variable, in place (the notation of optimizers.py) ---------
# Every rule starts with the decoupled weight decay, w -= decay * w (decay = lr * weight_decay, 0
# for a variable excluded from it), then applies its own formula with this variable's lr.
def sgd_update(w, g, m, lr, momentum, nesterov, decay):
    """SGD. Without momentum (m None): w -= lr g. With it: m = mu m - lr g; w += m
    (nesterov: w += mu m - lr g, with the new m)."""
    if decay:
        w -= w * decay
    if m is None:
        w -= lr * g
        return
    m *= momentum
    m -= lr * g
    if nesterov:
        w += momentum * m - lr * g
    else:
        w += m


def rmsprop_update(w, g, v, lr, rho, epsilon, decay, momentum=0.0, mom=None, average=None):
    """RMSprop. v = rho v + (1 - rho) g^2;  w -= lr g / sqrt(v + eps)  (eps inside the sqrt).
    centered (average given): a = rho a + (1 - rho) g, denominator sqrt(v - a^2 + eps);
    momentum (mom given): mom = mu mom + lr g / sqrt(...);  w -= mom."""
    xp = backend.xp
    if decay:
        w -= w * decay
    v *= rho
    v += (1 - rho) * g * g
    denominator = v
    if average is not None:
        average *= rho
        average += (1 - rho) * g
        denominator = v - average * average
    step = lr * g / xp.sqrt(denominator + epsilon)
    if mom is None:
        w -= step
        return
    mom *= momentum
    mom += step
    w -= mom


def adam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, vhat=None):
    """Adam at step t (updates done before this one: 0 first).
    m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);
    alpha = lr sqrt(1 - b2^(t+1)) / (1 - b1^(t+1));  w -= alpha m / (sqrt(v) + eps)
    (amsgrad, vhat given: vhat = max(vhat, v) in the denominator)."""
    xp = backend.xp
    if decay:
        w -= w * decay
    alpha = adam_step_size(lr, t, beta_1, beta_2)
    m += (g - m) * (1 - beta_1)
    v += (g * g - v) * (1 - beta_2)
    if vhat is not None:
        xp.maximum(vhat, v, out=vhat)
        v = vhat
    w -= alpha * m / (xp.sqrt(v) + epsilon)


def adam_step_size(lr, t, beta_1, beta_2):
    """Adam's bias-corrected step size at step t: lr sqrt(1 - b2^(t+1)) / (1 - b1^(t+1)) (a host number)."""
    return lr * math.sqrt(1 - beta_2 ** (t + 1)) / (1 - beta_1 ** (t + 1))


def adadelta_update(w, g, accumulated_grad, accumulated_delta, lr, rho, epsilon, decay):
    """Adadelta (Keras 3: eps inside both square roots, the step scaled by lr).
    a = rho a + (1 - rho) g^2;  delta = -g sqrt(d + eps) / sqrt(a + eps);
    d = rho d + (1 - rho) delta^2;  w += lr delta        (a: accumulated_grad, d: accumulated_delta)"""
    xp = backend.xp
    if decay:
        w -= w * decay
    accumulated_grad *= rho
    accumulated_grad += (1 - rho) * g * g
    delta = -(xp.sqrt(accumulated_delta + epsilon) * g) / xp.sqrt(accumulated_grad + epsilon)
    accumulated_delta *= rho
    accumulated_delta += (1 - rho) * delta * delta
    w += lr * delta


def adagrad_update(w, g, accumulator, lr, epsilon, decay):
    """Adagrad. a += g^2 (a starts at initial_accumulator_value);  w -= lr g / sqrt(a + eps)."""
    xp = backend.xp
    if decay:
        w -= w * decay
    accumulator += g * g
    w -= lr * g / xp.sqrt(accumulator + epsilon)


def nadam_update(w, g, m, v, lr, t, beta_1, beta_2, epsilon, decay, u_product):
    """Nadam at step t (updates done before this one: 0 first), Keras 3's form, with the momentum
    schedule mu(k) = b1 (1 - 0.5 * 0.96^k) (nadam_momentum) and u_product = mu(1) mu(2) ... mu(t+1)
    (a host number: Keras's u_product after its update at this step).
    m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);
    m_hat = mu(t+2) m / (1 - u_product mu(t+2)) + (1 - mu(t+1)) g / (1 - u_product);
    v_hat = v / (1 - b2^(t+1));  w -= lr m_hat / (sqrt(v_hat) + eps)"""
    xp = backend.xp
    if decay:
        w -= w * decay
    u_t, u_next = nadam_momentum(t + 1, beta_1), nadam_momentum(t + 2, beta_1)
    m += (g - m) * (1 - beta_1)
    v += (g * g - v) * (1 - beta_2)
    m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * g / (1 - u_product)
    v_hat = v / (1 - beta_2 ** (t + 1))
    w -= lr * m_hat / (xp.sqrt(v_hat) + epsilon)


def nadam_momentum(k, beta_1):
    """Nadam's momentum schedule at step k (1-based): mu(k) = b1 (1 - 0.5 * 0.96^k) (a host number)."""
    return beta_1 * (1.0 - 0.5 * 0.96 ** k)


# ---- convolution as im2col + GEMM, the whole batch at once (kernels/cpu_conv.py: on row blocks) ------
def conv2d_forward(x, W, b, activation, KH, KW, sh, sw, pt, pl, OH, OW):
    """y = act(im2col(x) @ Wm + b), Wm = W.reshape(KH*KW*C, F); act 'relu' or 'linear'.
    x (N, H, W, C), W (KH, KW, C, F), b (F,) or None -> y (N, OH, OW, F)."""
    F = W.shape[3]
    z = im2col(x, KH, KW, sh, sw, pt, pl, OH, OW) @ W.reshape(-1, F)
    if b is not None:
        z = z + b
    y = backend.xp.maximum(z, 0) if activation == "relu" else z
    return y.reshape(x.shape[0], OH, OW, F)


def conv2d_backward(dy, x, y, W, activation, KH, KW, sh, sw, pt, pl, OH, OW, dW_out, db_out, input_grad):
    """dz = dy * [y > 0] (relu) or dy (linear);  dWm = cols^T @ dz -> dW_out;  db = sum_rows dz -> db_out
    (when given);  returns dx = col2im(dz @ Wm^T) (None when not input_grad)."""
    F = W.shape[3]
    dz = dy.reshape(-1, F)
    if activation == "relu":
        dz = dz * (y.reshape(-1, F) > 0)
    cols = im2col(x, KH, KW, sh, sw, pt, pl, OH, OW)
    dW_out.reshape(-1, F)[...] = cols.T @ dz
    if db_out is not None:
        db_out[...] = dz.sum(axis=0)
    if not input_grad:
        return None
    return col2im(dz @ W.reshape(-1, F).T, x.shape, KH, KW, sh, sw, pt, pl, OH, OW)


# ---- the max-norm constraint ----------------------------------------------------------------------
def max_norm(w, max_value):
    """In place: every column of w seen as (R, F) (F = last axis, the norm taken over all the others)
    is scaled to norm <= max_value:  w *= clip(norm, 0, max) / (1e-7 + norm)  (Keras's formula)."""
    xp = backend.xp
    axes = tuple(range(w.ndim - 1))
    norms = xp.sqrt((w * w).sum(axis=axes, keepdims=True))
    w *= xp.clip(norms, 0, max_value) / (1e-7 + norms)
