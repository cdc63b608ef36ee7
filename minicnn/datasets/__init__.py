"""Datasets, in Keras's shapes: cifar10.load_data(), cifar100.load_data(label_mode), mnist.load_data(),
fashion_mnist.load_data(); `from minicnn.datasets import mnist` then `mnist.load_data()`, as with Keras.

Files live in $MINICNN_DATA_DIR (default ~/.minicnn/datasets): downloaded once, checked by md5,
and never kept when the check fails. Without network access, put the file each loader names there.
"""
from minicnn.datasets import cifar10, cifar100, fashion_mnist, mnist
from minicnn.datasets.fetch import DatasetError, data_dir

__all__ = ["cifar10", "cifar100", "fashion_mnist", "mnist", "data_dir", "DatasetError"]
