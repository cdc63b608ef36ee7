"""Datasets, in Keras's shapes: cifar10.load_data(), fashion_mnist.load_data().

Files live in $MINICNN_DATA_DIR (default ~/.minicnn/datasets): downloaded once, checked by md5,
and never kept when the check fails.
"""
from minicnn.datasets import cifar10, fashion_mnist
from minicnn.datasets.fetch import data_dir

__all__ = ["cifar10", "fashion_mnist", "data_dir"]
