"""minicnn: a convolutional-network engine written from scratch on NumPy/Numba (CPU) and CuPy (GPU),
with Keras's API shape. A Keras tutorial ports by changing its imports:

    from minicnn import Sequential
    from minicnn.layers import Conv2D, MaxPooling2D, Flatten, Dense, Dropout
"""
from minicnn import _keras_names
from minicnn._version import __version__
from minicnn import (activations, backend, callbacks, constraints, gradcheck, initializers, keras_io, layers,
                     losses, models, optimizers, regularizers, utils)
from minicnn.backend import set_backend
from minicnn.kernels import set_kernels
from minicnn.layers import Input
from minicnn.models import Model, Residual, Sequential, load_model

__all__ = ["__version__", "Sequential", "Model", "Residual", "Input", "load_model", "set_backend", "set_kernels",
           "activations", "backend", "callbacks", "constraints", "models", "gradcheck", "initializers", "keras_io",
           "layers",
           "losses", "optimizers", "regularizers", "utils", "datasets"]


def __getattr__(name):
    # minicnn.datasets / zoo / plot load on first use (they pull in optional, heavier modules)
    if name in ("datasets", "zoo", "plot"):
        import importlib
        return importlib.import_module(f"minicnn.{name}")
    if name in _keras_names.KERAS_ONLY["models"]:             # keras.Model and friends
        raise _keras_names.missing("models", name, models.__all__)
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")
