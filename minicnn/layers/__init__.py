"""minicnn.layers: the Keras layer names, NHWC, Keras weight layouts.

Merge layers (Add, Concatenate) join the branches of a functional model (minicnn.Model).
Keras 2's module paths work too: minicnn.layers.convolutional (Conv2D, the pooling layers and
ZeroPadding2D, as old tutorials import them), minicnn.layers.core, minicnn.layers.pooling.
"""
from minicnn import _keras_names
from minicnn.layers.activations import LeakyReLU, ReLU, Softmax
from minicnn.layers.augmentation import RandomCrop, RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from minicnn.layers.base import Layer
from minicnn.layers.conv import Conv2D, Convolution2D
from minicnn.layers.core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Rescaling
from minicnn.layers.merging import Add, Concatenate, add, concatenate
from minicnn.layers.normalization import BatchNormalization
from minicnn.layers.pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D,
                                    GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)
from minicnn.layers.reshaping import ZeroPadding2D

__all__ = ["Layer", "Conv2D", "Convolution2D", "Activation", "Dense", "Dropout", "Flatten", "Input",
           "InputLayer", "BatchNormalization", "AveragePooling2D", "AvgPool2D", "MaxPool2D", "MaxPooling2D",
           "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D", "Rescaling",
           "ReLU", "LeakyReLU", "Softmax", "Add", "Concatenate", "add", "concatenate", "RandomFlip",
           "RandomTranslation", "RandomRotation", "RandomZoom", "RandomCrop", "ZeroPadding2D"]


def get_class(class_name):
    """Layer class by name (for load_model); a clear error for an unknown one."""
    classes = {name: globals()[name] for name in __all__ if name not in ("Input", "add", "concatenate")}
    if class_name not in classes:
        raise ValueError(f"unknown layer class {class_name!r}; expected one of {sorted(classes)}")
    return classes[class_name]


def __getattr__(name):
    raise _keras_names.missing("layers", name, __all__)
