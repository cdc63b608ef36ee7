"""The one place that chooses the array module (NumPy on the CPU, CuPy on the GPU).

Everything else reads ``backend.xp`` *when it runs* (never ``from minicnn.backend import xp``,
which would freeze the binding before ``set_backend`` is called).

    set_backend('cpu' | 'gpu' | 'auto')   or env MINICNN_BACKEND
    set_floatx('float32' | 'float64')     float64 is for gradient checks
    set_seed(seed)                        seeds every random stream minicnn creates afterwards
    set_tf32(True)                        GPU: TF32 tensor-core GEMMs (or env MINICNN_TF32=1)
    set_gemm_precision("bf16")            GPU: fp32 / tf32 / bf16 / fp16 GEMMs (float32 everywhere else)
"""
# Threading policy (CPU): one pool of threads does the arithmetic, Numba's (kernels.matmul is
# minicnn's own GEMM, not OpenBLAS: BLAS threads spin after each call and took the cores from the
# Numba kernels that followed; see kernels/__init__.py). Numba's OpenMP layer keeps libgomp's
# default wait policy: a thread spins a few milliseconds for the next parallel loop, then sleeps.
# Between the loops of one training step that saves a wake-up per loop (measured side by side:
# 1.15x on tutorial000, 1.11x on tutorial001_model_2, against OMP_WAIT_POLICY=PASSIVE). A user's
# own OMP_WAIT_POLICY / GOMP_SPINCOUNT win.
import os

import numpy  # noqa: E402

from minicnn import _keras_names

name_counters = {}  # layer auto-names: prefix -> counter (layers/base.py unique_name; clear_session)
xp = numpy          # the active array module
name = "cpu"        # "cpu" or "gpu"
_floatx = "float32"
_seed_sequence = numpy.random.SeedSequence(0)

_VALID = ("cpu", "gpu", "auto")


def _gpu_available():
    """True when CuPy imports and a CUDA device answers."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def set_backend(which="auto"):
    """Choose the array module: 'cpu' (NumPy + Numba), 'gpu' (CuPy) or 'auto' (GPU if one answers)."""
    global xp, name
    if which not in _VALID:
        raise ValueError(f"backend must be one of {_VALID}, got {which!r}")
    if which == "auto":
        which = "gpu" if _gpu_available() else "cpu"
    if which == "gpu":
        if not _gpu_available():
            raise RuntimeError("backend 'gpu' asked for, but CuPy is not installed or no CUDA device "
                               "answers; install minicnn[gpu] on a machine with an NVIDIA GPU, or use 'cpu'")
        import cupy
        xp, name = cupy, "gpu"
    else:
        xp, name = numpy, "cpu"
    return name


def device_info():
    """{'cupy': version, 'gpu': device name} on the GPU backend; {} on the CPU."""
    if name != "gpu":
        return {}
    return {"cupy": xp.__version__, "gpu": xp.cuda.runtime.getDeviceProperties(0)["name"].decode()}


GEMM_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
_gemm_precision = os.environ.get("MINICNN_GEMM_PRECISION",
                                 "tf32" if os.environ.get("MINICNN_TF32", "0") == "1" else "fp32")
if _gemm_precision not in GEMM_PRECISIONS:
    raise ValueError(f"MINICNN_GEMM_PRECISION must be one of {GEMM_PRECISIONS}, got {_gemm_precision!r}")


def set_gemm_precision(precision):
    """GPU: how float32 GEMMs compute: "fp32" (default), "tf32", "bf16" or "fp16" tensor cores, always
    with float32 inputs, outputs, weights and statistics (kernels/cublas.py). Env MINICNN_GEMM_PRECISION."""
    global _gemm_precision
    if precision not in GEMM_PRECISIONS:
        raise ValueError(f"GEMM precision must be one of {GEMM_PRECISIONS}, got {precision!r}")
    _gemm_precision = precision


def gemm_precision():
    return _gemm_precision


def set_tf32(enabled=True):
    """GPU: let float32 GEMMs use TF32 tensor cores (Keras-JAX's default on Ampere/Hopper GPUs;
    ~3 decimal digits per product, float32 accumulation). Off by default; env MINICNN_TF32=1."""
    set_gemm_precision("tf32" if enabled else "fp32")


def image_data_format():
    """Keras's backend.image_data_format(): minicnn computes in NHWC, 'channels_last', only."""
    return "channels_last"


def set_image_data_format(data_format):
    if data_format != "channels_last":
        raise ValueError(f"minicnn computes in NHWC: image_data_format can only be 'channels_last', got "
                         f"{data_format!r} (transpose channels-first arrays with x.transpose(0, 2, 3, 1))")


def epsilon():
    """Keras's fuzz factor, 1e-7 (the epsilon of its optimizers and losses)."""
    return 1e-7


def clear_session():
    """Keras's clear_session(): start layer auto-names again from conv2d, dense, ... (nothing
    else is global in minicnn)."""
    name_counters.clear()


def floatx():
    """The default float dtype name ('float32' unless a gradient check asked for 'float64')."""
    return _floatx


def set_floatx(dtype):
    global _floatx
    try:
        dtype = numpy.dtype(dtype).name
    except TypeError:
        raise ValueError(f"floatx must be 'float32' or 'float64', got {dtype!r}") from None
    if dtype not in ("float32", "float64"):
        raise ValueError(f"floatx must be 'float32' or 'float64', got {dtype!r}")
    _floatx = dtype


class float64_mode:
    """Context manager: build and run layers in float64 (for finite-difference checks)."""
    def __enter__(self):
        self._old = _floatx
        set_floatx("float64")

    def __exit__(self, *exc):
        set_floatx(self._old)


def set_seed(seed):
    """Seed every random stream created from now on (weights, dropout masks, shuffling)."""
    global _seed_sequence
    if seed is None:
        _seed_sequence = numpy.random.SeedSequence()
        return
    if not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _seed_sequence = numpy.random.SeedSequence(int(seed))


def new_rng():
    """A fresh NumPy Generator from the global seed sequence (host-side; deterministic per seed)."""
    return numpy.random.default_rng(_seed_sequence.spawn(1)[0])


def to_device(a, dtype=None):
    """Move a host array to the active backend (a no-op copy-free view on the CPU)."""
    out = xp.asarray(a)
    return out.astype(dtype, copy=False) if dtype is not None else out


def to_host(a):
    """Return a NumPy array whatever the backend."""
    if hasattr(a, "get"):
        return a.get()
    return numpy.asarray(a)


if os.environ.get("MINICNN_BACKEND"):
    set_backend(os.environ["MINICNN_BACKEND"].strip().lower())


def __getattr__(attr):
    raise _keras_names.missing("backend", attr, globals())
