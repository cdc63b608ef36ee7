"""Keras 2's module path `keras.layers.convolutional` (tutorial 004 imports Conv2D and
MaxPooling2D from it; Keras 2 kept ZeroPadding2D there too): the same classes as minicnn.layers."""
from minicnn.layers.conv import Conv2D, Convolution2D
from minicnn.layers.pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D
from minicnn.layers.reshaping import ZeroPadding2D

__all__ = ["Conv2D", "Convolution2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D", "ZeroPadding2D"]
