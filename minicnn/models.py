"""minicnn.models, Keras's module path for models: `from keras.models import Sequential` ports
as `from minicnn.models import Sequential`."""
from minicnn import _keras_names
from minicnn.model import Residual, Sequential, load_model

__all__ = ["Sequential", "Residual", "load_model"]


def __getattr__(name):
    raise _keras_names.missing("models", name, __all__)
