"""minicnn.models, Keras's module path for models: `from keras.models import Sequential` ports
as `from minicnn.models import Sequential`; load_model, which rebuilds any of them from a file, and
model_from_json, which rebuilds one from model.to_json()'s text (model_json.py)."""
from minicnn import _keras_names, saving
from minicnn.functional import Model
from minicnn.model import Residual, Sequential
from minicnn.model_json import model_from_json

__all__ = ["Sequential", "Model", "Residual", "load_model", "model_from_json"]


def load_model(filepath, custom_objects=None):
    """Rebuild a model saved with model.save(): architecture, weights, compile settings, optimizer state.
    A Keras model file (.keras, .h5: recognised by its content, written by Keras or by minicnn) is
    read by keras_io with h5py alone (Keras need not be installed).

    custom_objects: {class name: class} for user-defined layers, optimizers or schedules."""
    if saving.keras_content(filepath):
        return saving.keras_files["load_model"](filepath)
    return saving.load_model(filepath, _rebuild, custom_objects)


def _rebuild(config, custom_objects=None):
    """The model a file's config describes: a functional Model (its config lists the calls, "nodes")
    or a Sequential."""
    return (Model if "nodes" in config else Sequential).from_config(config, custom_objects)


def __getattr__(name):
    raise _keras_names.missing("models", name, __all__)
