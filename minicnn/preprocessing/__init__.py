"""Keras's preprocessing module path: minicnn.preprocessing.image.ImageDataGenerator."""
from minicnn import _keras_names
from minicnn.preprocessing import image

__all__ = ["image"]


def __getattr__(name):
    raise _keras_names.missing("preprocessing", name, __all__)
