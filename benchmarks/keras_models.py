"""Build the Keras twin of a minicnn zoo model (same layers, arguments and optimizer settings).

Used by the benchmarks only; needs `pip install -e ".[keras]"`. Keras 3 ignores the Keras 2
`decay=` argument, so legacy decay becomes InverseTimeDecay(lr, 1, decay), which is what it meant.
"""


def _layer(keras, layer):
    from minicnn import layers as L
    c = layer.get_config()
    name = type(layer).__name__
    if isinstance(layer, L.Conv2D):
        return keras.layers.Conv2D(c["filters"], tuple(c["kernel_size"]), strides=tuple(c["strides"]),
                                   padding=c["padding"], activation=c["activation"], use_bias=c["use_bias"])
    if isinstance(layer, L.Dense):
        constraint = layer.kernel_constraint
        return keras.layers.Dense(c["units"], activation=c["activation"], use_bias=c["use_bias"],
                                  kernel_constraint=None if constraint is None else
                                  keras.constraints.MaxNorm(constraint.max_value, axis=constraint.axis))
    if isinstance(layer, L.MaxPooling2D):
        return keras.layers.MaxPooling2D(tuple(c["pool_size"]), strides=tuple(c["strides"]), padding=c["padding"])
    if isinstance(layer, L.AveragePooling2D):
        return keras.layers.AveragePooling2D(tuple(c["pool_size"]), strides=tuple(c["strides"]), padding=c["padding"])
    if isinstance(layer, L.Dropout):
        return keras.layers.Dropout(c["rate"])
    if isinstance(layer, L.Flatten):
        return keras.layers.Flatten()
    if isinstance(layer, L.Activation):
        return keras.layers.Activation(c["activation"])
    if isinstance(layer, L.BatchNormalization):
        return keras.layers.BatchNormalization(momentum=c["momentum"], epsilon=c["epsilon"])
    raise ValueError(f"no Keras twin for layer class {name}")


def _optimizer(keras, opt):
    from minicnn import optimizers as O
    lr = opt.learning_rate
    if isinstance(lr, O.InverseTimeDecay):
        lr = keras.optimizers.schedules.InverseTimeDecay(lr.initial_learning_rate, lr.decay_steps, lr.decay_rate)
    if isinstance(opt, O.Adam):
        return keras.optimizers.Adam(learning_rate=lr, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon)
    if isinstance(opt, O.RMSprop):
        return keras.optimizers.RMSprop(learning_rate=lr, rho=opt.rho, momentum=opt.momentum, epsilon=opt.epsilon,
                                        centered=opt.centered)
    if isinstance(opt, O.SGD):
        return keras.optimizers.SGD(learning_rate=lr, momentum=opt.momentum, nesterov=opt.nesterov)
    raise ValueError(f"no Keras twin for optimizer {type(opt).__name__}")


def build_keras(entry):
    """The compiled Keras Sequential equivalent to zoo entry `entry`."""
    import keras
    model = entry.build()
    kmodel = keras.Sequential([keras.Input(shape=entry.input_shape)] + [_layer(keras, l) for l in model.layers])
    kmodel.compile(optimizer=_optimizer(keras, model.optimizer), loss="categorical_crossentropy", metrics=["accuracy"])
    return kmodel
