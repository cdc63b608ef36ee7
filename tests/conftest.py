"""Shared fixtures: a seeded RNG, float64 mode, and a `backend` fixture over cpu and gpu.

The gpu case skips (visibly, with the reason) when CuPy or a CUDA device is missing.
"""
import numpy as np
import pytest

from minicnn import backend as _backend


def _gpu_ok():
    return _backend._gpu_available()


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def backend(request):
    """Run the test once per backend; restores the CPU backend afterwards."""
    if request.param == "gpu" and not _gpu_ok():
        pytest.skip("gpu backend: CuPy or a CUDA device is not available on this machine")
    _backend.set_backend(request.param)
    yield _backend
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
