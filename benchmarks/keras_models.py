"""Build the Keras twin of a minicnn zoo model (same layers, arguments, weights and optimizer settings).

Used by the benchmarks only; needs `pip install -e ".[keras]"`. The conversion itself lives in
minicnn.keras_io.to_keras.
"""


def build_keras(entry):
    """The compiled Keras Sequential equivalent to zoo entry `entry`."""
    from minicnn import keras_io
    return keras_io.to_keras(entry.build())
