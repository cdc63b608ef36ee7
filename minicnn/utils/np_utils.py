"""Keras 2's module path `keras.utils.np_utils` (tutorials 000 and 004 call np_utils.to_categorical)."""
from minicnn.utils import to_categorical

__all__ = ["to_categorical"]
