"""Conv2D by im2col + one GEMM (NHWC, Keras kernel layout (KH, KW, C, F))."""
from minicnn import activations, backend, constraints, initializers, kernels
from minicnn.layers.base import (Layer, activate, activation_backward, as_pair, check_padding, is_int,
                                 kernel_bias_config, kernel_bias_from_config, set_regularizers, window_geometry)


class Conv2D(Layer):
    """2-D cross-correlation (the kernel is not flipped), then bias, then activation.

    z[n,oh,ow,f] = b[f] + sum_{i,j,c} xpad[n, oh*sh + i, ow*sw + j, c] * W[i,j,c,f];  y = act(z)
    As matrices: cols = im2col(x) (N*OH*OW, KH*KW*C);  Z = cols @ Wm + b, Wm = W.reshape(KH*KW*C, F)
    Backward:    dWm = cols^T @ dZ;  db = sum_rows dZ;  dx = col2im(dZ @ Wm^T)
    Shapes: x (N, H, W, C) -> y (N, OH, OW, F).
      valid: OH = floor((H - KH) / sh) + 1;   same: OH = ceil(H / sh), padding split as TensorFlow.

    Two ways to compute the same equations. The whole-batch one below (_forward_whole,
    _backward_whole) is the readable version: one cols matrix for the batch, one GEMM per product.
    On the CPU, layers run them on row blocks instead (kernels/cpu_conv.py: im2col of a band of
    output rows into a buffer that stays in the cache, its GEMM, bias and activation there; the
    backward recomputes the band's columns): the same numbers, without a cols matrix of 100 MB
    crossing memory three times per step. kernels.conv_blocked decides, layer by layer (the rule
    is cpu_conv.blocked_pays: a layer with a very large weight gradient trains faster whole). At
    stride 1 the blocked forward does not even copy columns: kernel row i's columns are a strided
    view of the input, so Z = sum_i view_i @ Wm_i (cpu_conv's "implicit GEMM", same equations);
    for inputs of few channels the backward does the same: dWm_i = view_i^T @ dZ, and dx, the
    gradient of a convolution, is itself a convolution: of dZ zero-padded, with the kernel turned
    by 180 degrees and C and F swapped.
    """
    takes_activation = True     # Sequential may run a following Activation('relu') inside it (base.fused_pairs)
    takes_pool = True           # ... and a MaxPooling2D after its relu (base.fusion_plan)

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, data_format=None, dilation_rate=(1, 1),
                 **kwargs):
        super().__init__(**kwargs)
        if not is_int(filters) or filters < 1:
            raise ValueError(f"Conv2D filters must be a positive int, got {filters!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"minicnn is NHWC only: data_format must be 'channels_last', got {data_format!r}")
        if as_pair(dilation_rate, "dilation_rate") != (1, 1):
            raise ValueError(f"dilation_rate other than 1 is not supported, got {dilation_rate!r}")
        self.filters = int(filters)
        self.kernel_size = as_pair(kernel_size, "Conv2D kernel_size")
        self.strides = as_pair(strides, "Conv2D strides")
        self.padding = check_padding(padding)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        set_regularizers(self, kernel_regularizer, bias_regularizer, activity_regularizer)

    def _geometry(self, input_shape):
        (KH, KW), (sh, sw) = self.kernel_size, self.strides
        OH, pt = window_geometry(input_shape[0], KH, sh, self.padding)
        OW, pl = window_geometry(input_shape[1], KW, sw, self.padding)
        return OH, OW, pt, pl

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Conv2D {self.name!r} expects input of shape (H, W, C), got {tuple(input_shape)}")
        OH, OW, _, _ = self._geometry(input_shape)
        if OH < 1 or OW < 1:
            raise ValueError(f"Conv2D {self.name!r}: kernel {self.kernel_size} is larger than its "
                             f"{self.padding}-padded input {tuple(input_shape[:2])}")
        return OH, OW, self.filters

    def build(self, input_shape, rng=None):
        super().build(input_shape)
        rng = rng or backend.new_rng()
        KH, KW = self.kernel_size
        self.add_weight("W", (KH, KW, input_shape[-1], self.filters), self.kernel_initializer, rng,
                        constraint=self.kernel_constraint, regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.add_weight("b", (self.filters,), self.bias_initializer, rng, constraint=self.bias_constraint,
                            regularizer=self.bias_regularizer)
        self.geometry = self._geometry(input_shape)

    def forward(self, x, training=False, activation=None, pool=None):
        """y = act(conv(x) + b); `activation` (an activations object) replaces the layer's own linear
        one when Sequential fuses the Activation layer that follows (base.fused_pairs). `pool`: the
        MaxPooling2D layer after a relu conv (base.fusion_plan), whose output is returned instead:
        pooled inside the kernel where one takes the geometry, else that layer run on y."""
        (KH, KW), F = self.kernel_size, self.filters
        OH, OW, _, _ = self.geometry
        act = self.activation if activation is None else activation
        blocked = kernels.conv_blocked(x.shape, (KH, KW, x.shape[3], F), OH, OW, training)
        if pool is not None and act.name == "relu" and blocked:
            # y pooled in the kernel's tiles where it can, else by the pooling kernel: what the
            # backward reads is each window's winner and value (kernels.conv2d_maxpool_backward)
            pooled = kernels.conv2d_relu_maxpool(x, self.params["W"], self.params.get("b"), *self._window(),
                                                 *pool.pool_size)
            if pooled is None:          # no fused kernel for this geometry: the conv, then the pooling
                pooled = kernels.maxpool_forward(self._forward_blocked(x, act), *pool._args(), *pool.output_shape[:2])
            self.cache = {"x": x, "cols": None, "pooled": pooled[0], "arg": pooled[1], "act": act, "pool": pool}
            return pooled[0]
        y = self._forward_blocked(x, act) if blocked else self._forward_whole(x, act)
        self.cache.update(act=act, pool=pool)
        return y if pool is None else pool.forward(y, training=training)

    def _forward_whole(self, x, act):
        (KH, KW), (sh, sw), F = self.kernel_size, self.strides, self.filters
        OH, OW, pt, pl = self.geometry
        cols = self.workspace("cols", (x.shape[0] * OH * OW, KH * KW * x.shape[3]), x.dtype)
        kernels.im2col(x, KH, KW, sh, sw, pt, pl, OH, OW, out=cols)
        z = kernels.matmul(cols, self.params["W"].reshape(-1, F))
        y = activate(self, z, act)                                 # act(z + b), fused: y may be z itself
        # what backward reads: the columns, and y (or z + b when the derivative needs the input)
        self.cache = {"x_shape": x.shape, "cols": cols, **({"z": z} if act.needs_input else {"y": y})}
        return y.reshape(x.shape[0], OH, OW, F)

    def _window(self):
        """(KH, KW, sh, sw, pt, pl, OH, OW): the geometry every convolution kernel takes."""
        OH, OW, pt, pl = self.geometry
        return (*self.kernel_size, *self.strides, pt, pl, OH, OW)

    @staticmethod
    def _inside(act):
        """The activation the blocked kernels apply themselves ('relu' or 'linear'); any other is
        applied by the layer on top of their linear output."""
        return act.name if act.name in ("relu", "linear") else "linear"

    def _forward_blocked(self, x, act):
        """act(im2col(x) @ Wm + b) band by band; relu and linear are applied inside the kernel."""
        inside = self._inside(act)
        out = kernels.conv2d_forward(x, self.params["W"], self.params.get("b"), inside, *self._window())
        if inside == act.name:
            y = out
        else:                                                   # out is z + b: the activation on top
            y = kernels.activation_forward(out, act.name)
        # no cols: the backward recomputes them band by band from x
        self.cache = {"x": x, "cols": None, **({"z": out} if act.needs_input else {"y": y})}
        return y

    def backward(self, dout):
        act, pool = self.cache["act"], self.cache["pool"]
        if "pooled" in self.cache:      # relu'(y) at a window's winner is (pooled > 0); others get 0
            return kernels.conv2d_maxpool_backward(dout, self.cache["arg"], self.cache["pooled"], *pool.pool_size,
                                                   self.cache["x"], self.params["W"], *self._window(),
                                                   self.grads["W"], self.grads.get("b"), self.input_grad)
        if pool is not None:
            dout = pool.backward(dout)
        saved = self.cache["z"] if act.needs_input else self.cache["y"]
        if self.cache["cols"] is None:
            return self._backward_blocked(dout, saved, act)
        return self._backward_whole(activation_backward(self, dout.reshape(saved.shape), saved, act))

    def _backward_blocked(self, dout, saved, act):
        """dz = dout * act'(y), then dWm, db and dx = col2im(dz @ Wm^T), band by band."""
        inside = self._inside(act)
        if inside != act.name:
            dout = kernels.activation_backward(dout, saved, act.name)   # dz; the kernel adds db up
        return kernels.conv2d_backward(dout, self.cache["x"], saved, self.params["W"], inside, *self._window(),
                                       self.grads["W"], self.grads.get("b"), self.input_grad)

    def _backward_whole(self, dZ):
        """dWm = cols^T @ dZ;  dx = col2im(dZ @ Wm^T).  dZ (N*OH*OW, F); db is already done."""
        x_shape, cols = self.cache["x_shape"], self.cache["cols"]
        (KH, KW), (sh, sw), F = self.kernel_size, self.strides, self.filters
        OH, OW, pt, pl = self.geometry
        Wm = self.params["W"].reshape(-1, F)
        with kernels.side_stream(cols, dZ):                 # GPU: overlaps with dx below
            kernels.matmul(cols.T, dZ, out=self.grads["W"].reshape(-1, F))
        if not self.input_grad:
            return None
        dcols = kernels.matmul(dZ, Wm.T, out=self.workspace("dcols", cols.shape, cols.dtype))
        return kernels.col2im(dcols, x_shape, KH, KW, sh, sw, pt, pl, OH, OW)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, **kernel_bias_config(self)}

    @classmethod
    def from_config(cls, config):
        return cls(**kernel_bias_from_config(config))


Convolution2D = Conv2D
