#!/usr/bin/env python
"""Check every layer's and loss's hand-written derivatives against finite differences, and print
the relative errors (float64, central differences, random upstream gradient).

    python examples/gradcheck_all.py

A relative error near 1e-9 or below means backward is the derivative of forward; anything above
1e-6 would be a bug. To check a layer of your own: minicnn.gradcheck.check_layer(MyLayer(), x).
"""
import itertools

import numpy as np

from minicnn import Input, Model, Sequential, backend, gradcheck, losses, regularizers
from minicnn.activations import Softmax
from minicnn.layers import (Activation, Add, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense,
                            Dropout, Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D, RandomCrop,
                            RandomFlip, RandomRotation, RandomTranslation, RandomZoom, Rescaling, ZeroPadding2D)
from minicnn.model import Residual


def distinct(rng, shape):
    """No ties (max pooling) and no values near ReLU's kink."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 + 0.005) * rng.choice([-1, 1], shape)


def main():
    rng = np.random.default_rng(0)
    rows = []
    with backend.float64_mode():
        for k, s, padding, hw in itertools.product([1, 2, 3, 5], [1, 2], ["same", "valid"], [(7, 6), (8, 5)]):
            err = gradcheck.check_layer(Conv2D(3, k, strides=s, padding=padding, activation="tanh"),
                                        rng.standard_normal((2,) + hw + (2,)))
            rows.append((f"Conv2D k{k} s{s} {padding} {hw}", max(err.values())))
        for cls, pool, stride, padding in itertools.product([MaxPooling2D, AveragePooling2D], [2, 3], [None, 1],
                                                            ["valid", "same"]):
            err = gradcheck.check_layer(cls(pool, strides=stride, padding=padding), distinct(rng, (2, 7, 6, 2)))
            rows.append((f"{cls.__name__} {pool} stride {stride or pool} {padding}", max(err.values())))
        for act in ["linear", "relu", "tanh", "sigmoid", "softmax", "gelu"]:
            x = distinct(rng, (4, 7))
            rows.append((f"Dense {act}", max(gradcheck.check_layer(Dense(5, activation=act), x).values())))
            rows.append((f"Activation {act}", max(gradcheck.check_layer(Activation(act), x).values())))
        for act in ["elu", "selu", "softplus", "softsign", "silu", "exponential", "hard_sigmoid", "relu6",
                    "leaky_relu"]:                          # Keras's others, both signs, inside their kinks
            x = distinct(rng, (4, 7)) * 10
            rows.append((f"Activation {act}", max(gradcheck.check_layer(Activation(act), x).values())))
        rows.append(("ZeroPadding2D ((1, 0), (2, 1))", max(gradcheck.check_layer(
            ZeroPadding2D(((1, 0), (2, 1))), rng.standard_normal((2, 4, 3, 2))).values())))
        rows.append(("Flatten", max(gradcheck.check_layer(Flatten(), rng.standard_normal((2, 3, 4, 5))).values())))
        rows.append(("Dropout 0.3 (fixed mask)",
                     max(gradcheck.check_layer(Dropout(0.3, seed=1), rng.standard_normal((3, 4, 4, 2))).values())))
        for training in (True, False):
            bn = BatchNormalization()
            bn.build((3,))
            bn.set_weights([rng.uniform(0.5, 1.5, 3), rng.standard_normal(3), rng.standard_normal(3),
                            rng.uniform(0.5, 2, 3)])
            err = gradcheck.check_layer(bn, rng.standard_normal((6, 5, 4, 3)), training=training)
            rows.append((f"BatchNormalization ({'training' if training else 'inference'})", max(err.values())))
        bn = BatchNormalization(scale=False)                       # the fast recipe's: gamma fixed at 1
        rows.append(("BatchNormalization scale=False (training)",
                     max(gradcheck.check_layer(bn, rng.standard_normal((6, 5, 4, 3)), training=True).values())))
        for cls in (GlobalMaxPooling2D, GlobalAveragePooling2D):
            rows.append((cls.__name__, max(gradcheck.check_layer(cls(), distinct(rng, (2, 5, 4, 3))).values())))
        rows.append(("Rescaling", max(gradcheck.check_layer(Rescaling(1 / 9), rng.standard_normal((3, 5))).values())))
        rows.append(("Conv2D without bias", max(gradcheck.check_layer(
            Conv2D(4, 3, padding="same", use_bias=False), rng.standard_normal((2, 5, 5, 3))).values())))
        block = Residual([Conv2D(3, 3, padding="same", activation="gelu"), BatchNormalization(),
                          Conv2D(3, 3, padding="same")])
        rows.append(("Residual (identity shortcut)",
                     max(gradcheck.check_layer(block, rng.standard_normal((2, 5, 5, 3))).values())))
        block = Residual([Conv2D(4, 3, strides=2, padding="same", activation="relu"), Conv2D(4, 3, padding="same")],
                         shortcut=[Conv2D(4, 1, strides=2)])
        rows.append(("Residual (projection shortcut)",
                     max(gradcheck.check_layer(block, rng.standard_normal((2, 6, 6, 3)) + 0.1).values())))
        stack = Sequential([Conv2D(4, 3, padding="same", activation="relu"), MaxPooling2D(2),   # fused: each conv
                            Conv2D(5, 3, padding="same"), Activation("relu"), MaxPooling2D(2)])  # pools its relu
        rows.append(("Sequential: relu Conv2D + MaxPooling2D, fused (base.fusion_plan)",
                     max(gradcheck.check_layer(stack, distinct(rng, (2, 12, 12, 3))).values())))
        inputs = Input(shape=(5, 5, 3))                     # functional: a fork, Add, Concatenate, a shared Conv2D
        shared = Conv2D(3, 3, padding="same", activation="tanh")
        a, b = shared(inputs), shared(Conv2D(3, 1)(inputs))
        graph = Model(inputs, Dense(4)(Flatten()(Concatenate()([Add()([a, b]), a]))))
        rows.append(("functional Model (fork, Add, Concatenate, shared layer)",
                     max(gradcheck.check_layer(graph, rng.standard_normal((2, 5, 5, 3))).values())))
        penalised = Sequential([Input(shape=(5, 5, 2)), Conv2D(3, 3, activation="tanh",
                                                               kernel_regularizer=regularizers.L1L2(0.01, 0.02)),
                                Flatten(), Dense(3, activation="softmax", kernel_regularizer="l2")])
        penalised.compile("sgd", "categorical_crossentropy")
        rows.append(("model with L1L2 / L2 weight regularizers (loss + penalties)", max(gradcheck.check_model(
            penalised, rng.standard_normal((4, 5, 5, 2)), np.eye(3)[[0, 1, 2, 0]]).values())))
        # the augmentation layers: the transform their seed fixes for the step (training mode)
        augmentations = [(f"RandomTranslation {mode}", RandomTranslation(0.5, 0.5, fill_mode=mode, seed=1))
                         for mode in ("reflect", "wrap", "nearest", "constant")]
        augmentations += [("RandomRotation (nearest)", RandomRotation(0.3, interpolation="nearest", seed=2)),
                          ("RandomZoom", RandomZoom(0.4, seed=3)), ("RandomFlip", RandomFlip(seed=4)),
                          ("RandomCrop", RandomCrop(4, 3, seed=5)), ("RandomCrop (resizing)", RandomCrop(7, 7))]
        for name, layer in augmentations:
            rows.append((name, max(gradcheck.check_layer(layer, rng.standard_normal((2, 6, 5, 2))).values())))
        z, labels = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
        onehot = np.eye(5)[labels]
        rows.append(("softmax + categorical cross-entropy (fused)",
                     gradcheck.check_loss(losses.CategoricalCrossentropy(), onehot, z, from_logits_of_softmax=True)))
        rows.append(("... with label smoothing 0.2 (fused)",
                     gradcheck.check_loss(losses.CategoricalCrossentropy(label_smoothing=0.2), onehot, z,
                                          from_logits_of_softmax=True)))
        rows.append(("sparse categorical cross-entropy (fused)",
                     gradcheck.check_loss(losses.SparseCategoricalCrossentropy(), labels, z,
                                          from_logits_of_softmax=True)))
        rows.append(("categorical cross-entropy on probabilities (clipped)",
                     gradcheck.check_loss(losses.CategoricalCrossentropy(fuse_softmax=False), onehot,
                                          Softmax().forward(z))))
        rows.append(("mean squared error", gradcheck.check_loss(losses.MeanSquaredError(), onehot, z)))
    width = max(len(name) for name, _ in rows)
    for name, err in rows:
        print(f"{name:{width}s}  {err:.2e}")
    worst = max(rows, key=lambda r: r[1])
    print(f"\n{len(rows)} checks; largest relative error {worst[1]:.2e} ({worst[0]})")
    return 0 if worst[1] < 1e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
