"""Clear errors for Keras names minicnn does not have.

A Keras program ported by renaming `keras` to `minicnn` may use a layer, optimizer or module
minicnn lacks. Each public module's `__getattr__` calls `missing(...)`: a name Keras has (listed
below) raises `MissingKerasName` (an ImportError, so `from minicnn.layers import LSTM` shows this
message instead of Python's bare "cannot import name"), naming the closest minicnn has; any other
name raises the usual AttributeError, with close matches when there are some.
"""
import difflib
import types

_GEOMETRIC = "the geometric augmentation layers RandomFlip, RandomTranslation, RandomRotation, RandomZoom, RandomCrop"

# Keras names minicnn does not implement, by module, with what to use instead when there is something
KERAS_ONLY = {
    "layers": {
        "Conv1D": "Conv2D", "Conv3D": "Conv2D", "SeparableConv2D": "Conv2D", "DepthwiseConv2D": "Conv2D",
        "Conv2DTranspose": None, "UpSampling2D": None,
        "Cropping2D": None, "MaxPooling1D": "MaxPooling2D", "MaxPooling3D": "MaxPooling2D",
        "AveragePooling1D": "AveragePooling2D", "GlobalAveragePooling1D": "GlobalAveragePooling2D",
        "GlobalMaxPooling1D": "GlobalMaxPooling2D", "Reshape": "Flatten", "Permute": None, "RepeatVector": None,
        "Lambda": "a Layer subclass with forward and backward (see minicnn/layers/base.py)",
        "Multiply": "Add", "Subtract": "Add", "Average": "Add", "Maximum": None, "Embedding": None, "LSTM": None, "GRU": None, "SimpleRNN": None,
        "Bidirectional": None, "TimeDistributed": None, "Attention": None, "MultiHeadAttention": None,
        "LayerNormalization": "BatchNormalization", "GroupNormalization": "BatchNormalization",
        "GaussianNoise": "Dropout", "GaussianDropout": "Dropout", "SpatialDropout2D": "Dropout(noise_shape=...)",
        "AlphaDropout": "Dropout", "PReLU": "LeakyReLU", "ELU": "LeakyReLU", "ThresholdedReLU": "ReLU(threshold=...)",
        "Normalization": "Rescaling", "Resizing": None, "CenterCrop": None,
        # Keras 3's other image preprocessing layers: minicnn has the geometric ones only
        **dict.fromkeys(["RandomContrast", "RandomBrightness", "RandomErasing", "RandomGrayscale", "RandomHue",
                         "RandomSaturation", "RandomColorJitter", "RandomColorDegeneration", "RandomSharpness",
                         "RandomPosterization", "RandomInvert", "RandomGaussianBlur", "RandomElasticTransform",
                         "AutoContrast", "Equalization", "Solarization", "MixUp", "CutMix", "AugMix",
                         "RandAugment"], _GEOMETRIC),
        "RandomShear": "ImageDataGenerator(shear_range=...)", "RandomPerspective": _GEOMETRIC,
    },
    "models": {"clone_model": "Sequential.from_config(model.get_config())",
               "save_model": "model.save(path)"},
    "optimizers": {"Adamax": "Adam", "Ftrl": "SGD", "AdamW": "Adam(weight_decay=...)", "Lion": "Adam",
                   "Adafactor": "Adam", "LossScaleOptimizer": None},
    "callbacks": {"TensorBoard": "CSVLogger", "BackupAndRestore": "ModelCheckpoint",
                  "RemoteMonitor": None, "SwapEMAWeights": "optimizers.Adam(use_ema=True)"},
    "losses": {"BinaryCrossentropy": "MeanSquaredError, or a 2-class CategoricalCrossentropy",
               "binary_crossentropy": "'categorical_crossentropy' with 2 classes",
               "BinaryFocalCrossentropy": None, "CategoricalFocalCrossentropy": "CategoricalCrossentropy",
               "Huber": "MeanSquaredError", "MeanAbsoluteError": "MeanSquaredError", "KLDivergence": None,
               "Hinge": None, "CosineSimilarity": None},
    "datasets": {"imdb": None, "reuters": None, "boston_housing": None, "california_housing": None},
    "preprocessing": {"text": None, "sequence": None},
    "utils": {"plot_model": "model.summary()", "image_dataset_from_directory": None, "Sequence": None,
              "PyDataset": None, "get_file": "minicnn.datasets.fetch.download"},
    "backend": {"int_shape": "array.shape", "get_value": "backend.to_host(array)",
                "set_value": "array[...] = value"},
}


class MissingKerasName(ImportError):
    """A Keras name minicnn does not implement (an ImportError: `from minicnn.x import Name` shows it)."""


def missing(module, name, available):
    """The exception for `minicnn.<module>.<name>`, which does not exist (raise it). available: the
    module's names (a list, or its globals())."""
    if name.startswith("__"):
        return AttributeError(f"module 'minicnn.{module}' has no attribute {name!r}")
    if isinstance(available, dict):              # a module's globals: its public names, not the modules it imports
        available = [k for k, v in available.items() if not isinstance(v, types.ModuleType)]
    public = sorted(a for a in available if not a.startswith("_"))
    close = difflib.get_close_matches(name, public, n=3, cutoff=0.6)
    keras_only = KERAS_ONLY.get(module, {})
    if name in keras_only:
        instead = keras_only[name] or (", ".join(close) if close else None)
        hint = f"; the closest thing minicnn has: {instead}" if instead else "; minicnn has nothing like it yet"
        return MissingKerasName(f"minicnn does not implement Keras's {module}.{name}{hint}. "
                                f"minicnn.{module} has: {', '.join(public)}")
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return AttributeError(f"module 'minicnn.{module}' has no attribute {name!r}{hint}")
