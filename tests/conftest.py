"""Shared fixtures: a seeded RNG, float64 mode, and the `backend` fixture, one harness for every backend.

A test that takes `backend` runs once per backend:
  cpu        the CPU with the fast kernels (Numba, cpu_gemm),
  reference  the CPU with the readable twins (``minicnn.set_kernels("reference")``),
  gpu        CuPy and the CUDA kernels (marked ``gpu``; skipped, visibly and with the reason, when
             CuPy or a CUDA device is missing).
``@pytest.mark.backends("reference", "gpu")`` narrows the list for one test (for example when the
fast CPU is the test's oracle). The fixture yields a `Backend`: minicnn.backend's functions
(to_host, to_device, xp, ...) plus `kind` and a few helpers; the CPU backend and the fast kernels
are restored after every test.
"""
import contextlib
import inspect

import numpy as np
import pytest

from minicnn import backend as _backend
from minicnn import kernels as _kernels

BACKENDS = ("cpu", "reference", "gpu")
GPU_MISSING = "gpu backend: CuPy or a CUDA device is not available on this machine"


def _gpu_ok():
    return _backend._gpu_available()


def pytest_configure(config):
    config.addinivalue_line("markers", "backends(*kinds): run a `backend` test on these backends only "
                                       "(default: cpu, reference, gpu)")


def pytest_generate_tests(metafunc):
    """Parametrize every test that takes `backend` over the backends (all, or those of its mark)."""
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    kinds = marker.args if marker else BACKENDS
    unknown = set(kinds) - set(BACKENDS)
    if unknown:
        raise ValueError(f"unknown backends {sorted(unknown)} in @pytest.mark.backends; expected {BACKENDS}")
    metafunc.parametrize("backend", [pytest.param(k, marks=pytest.mark.gpu) if k == "gpu" else k for k in kinds],
                         indirect=True)


class Backend:
    """What the `backend` fixture yields: minicnn.backend's attributes, read when used (backend.xp,
    backend.to_host, backend.name, ...), and:
      kind          "cpu", "reference" or "gpu" (backend.name says "cpu" for the first two);
      impl          the kernel module this case runs (kernels.cpu, kernels.reference, kernels.gpu);
      poisoned      a NaN-filled array on the device: a kernel that misses a cell leaves a NaN;
      out_for(fn, shape, dtype)  {"out": poisoned(...)} when kernel fn takes an output, else {};
      fast_cpu()    a context in which the fast CPU runs (an oracle), this case's backend after."""

    def __init__(self, kind):
        self.kind = kind

    def __getattr__(self, attribute):
        return getattr(_backend, attribute)

    def _activate(self):
        _backend.set_backend("gpu" if self.kind == "gpu" else "cpu")
        _kernels.set_kernels("reference" if self.kind == "reference" else "fast")

    @property
    def impl(self):
        if self.kind == "reference":
            from minicnn.kernels import reference
            return reference
        if self.kind == "cpu":
            from minicnn.kernels import cpu
            return cpu
        from minicnn.kernels import gpu
        return gpu

    def poisoned(self, shape, dtype=np.float32):
        return _backend.xp.full(shape, np.nan, dtype=dtype)

    def out_for(self, fn, shape, dtype=np.float32):
        return {"out": self.poisoned(shape, dtype)} if "out" in inspect.signature(fn).parameters else {}

    @contextlib.contextmanager
    def fast_cpu(self):
        _backend.set_backend("cpu")
        _kernels.set_kernels("fast")
        try:
            yield
        finally:
            self._activate()


@pytest.fixture
def backend(request):
    """Run the test once per backend (see the module docstring); restores the CPU backend and the
    kernel set afterwards."""
    kind = getattr(request, "param", "cpu")
    if kind == "gpu" and not _gpu_ok():
        pytest.skip(GPU_MISSING)
    before = "reference" if _kernels.reference_forced() else "fast"
    case = Backend(kind)
    case._activate()
    try:
        yield case
    finally:
        _kernels.set_kernels(before)
        _backend.set_backend("cpu")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def f64():
    """Build and run layers in float64 (gradient checks)."""
    with _backend.float64_mode():
        yield


@pytest.fixture(autouse=True)
def _seed():
    _backend.set_seed(0)
    yield
