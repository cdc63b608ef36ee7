"""CUDA kernels (CuPy RawKernels) for the GPU backend: the same functions as ``cpu.py``.

Each kernel is written once in CUDA C, with T standing for the float type (float or double,
chosen when the kernel is compiled); the geometry is the one documented in ``reference.py``,
which is also every kernel's test oracle (the shared `backend` fixture of tests/conftest.py runs
the same kernel tests on cpu, reference and gpu: tests/test_kernels.py and the layer tests).
Design rules:
  - gather, never scatter: col2im and the pooling backwards give each INPUT cell one thread that
    sums the windows covering it, so no atomics are needed and results are deterministic;
  - one launch per kernel family call; no host synchronisation anywhere (a training step built
    from these functions can be captured into a CUDA graph);
  - values that change from step to step (the optimizer's step count and learning rate, the
    dropout stream's counter) are read from device memory, never passed as host numbers.

One module per kernel family, each holding its kernels' CUDA C beside the Python that launches them:
  _compile.py      the source's assembly (module_source), compiling and caching (_kernel),
                   launching, the shared CUDA header and window walks, the done counters
  conv.py          im2col / col2im (and the whole-batch convolution built on them)
  pooling.py       max / average pooling, forward and backward
  activations.py   bias + activation and its one-launch backward with the bias gradient,
                   column_sum, GELU
  batchnorm.py     batch normalization in training mode
  regularizers.py  the max-norm constraint, dropout
  losses.py        the fused softmax cross-entropy (loss, gradient, accuracy)
  optimizers.py    the multi-tensor Adam / RMSprop / SGD updates, Lookahead's sync, param_table
  data.py          batch gathering, the device cursor, flip_crop, the running loss statistics
  (resample / resample_backward: reference.py's plain-CuPy twins, no CUDA kernel yet)
The math families compile together into one RawModule per type; data.py's kernels into another.
Importing this package does not import CuPy (the launchers do).
"""
from minicnn.kernels.gpu._compile import _done_counters, module_source
from minicnn.kernels.gpu.activations import (activation_backward, activation_forward, bias_activation,
                                             bias_activation_backward, column_sum, gelu, gelu_backward)
from minicnn.kernels.gpu.batchnorm import batchnorm_backward, batchnorm_forward
from minicnn.kernels.gpu.conv import col2im, conv2d_backward, conv2d_forward, im2col
from minicnn.kernels.gpu.data import accumulate_stats, advance_cursor, flip_crop, gather_rows
from minicnn.kernels.gpu.losses import softmax_cross_entropy
from minicnn.kernels.gpu.optimizers import (adadelta_update, adagrad_update, adam_device, adam_update, lookahead,
                                            nadam_update, param_table, rmsprop_device, rmsprop_update, sgd_device,
                                            sgd_update)
from minicnn.kernels.gpu.pooling import avgpool_backward, avgpool_forward, maxpool_backward, maxpool_forward
from minicnn.kernels.gpu.regularizers import dropout_apply, dropout_forward, dropout_mask, dropout_train, max_norm
# no CUDA twin yet: image resampling (the augmentation layers) runs its plain-CuPy reference on the
# device (bincount in the backward reads a size from the device: eager steps only, never in a graph)
from minicnn.kernels.reference import resample, resample_backward

__all__ = [
    "_done_counters", "module_source",
    "activation_backward", "activation_forward", "bias_activation", "bias_activation_backward", "column_sum",
    "gelu", "gelu_backward",
    "batchnorm_backward", "batchnorm_forward",
    "col2im", "conv2d_backward", "conv2d_forward", "im2col",
    "accumulate_stats", "advance_cursor", "flip_crop", "gather_rows",
    "softmax_cross_entropy",
    "adadelta_update", "adagrad_update", "adam_device", "adam_update", "lookahead", "nadam_update", "param_table",
    "rmsprop_device", "rmsprop_update", "sgd_device", "sgd_update",
    "avgpool_backward", "avgpool_forward", "maxpool_backward", "maxpool_forward",
    "dropout_apply", "dropout_forward", "dropout_mask", "dropout_train", "max_norm",
    "resample", "resample_backward",
]
