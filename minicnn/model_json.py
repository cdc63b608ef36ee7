"""A model's architecture as JSON, as Keras 3 writes and reads it:

    json_string = model.to_json()                    Keras's serialized model (serialize_keras_object)
    model = minicnn.models.model_from_json(json_string)     ... and back, unbuilt weights initialized

to_json writes the JSON keras.models.model_from_json reads (keras_config.KerasTwin: the config a
.keras file's config.json holds, with the compile settings), so a JSON file minicnn writes loads
in Keras and the reverse. A model holding a layer Keras lacks (a user's Layer subclass) has no
Keras twin: to_json then writes minicnn's own config, {"module": "minicnn", ...} (the architecture
only), with a warning, and model_from_json reads it (custom_objects names such classes).

model_from_json takes the JSON as a file's config: it is parsed under a depth limit, every layer's
arguments are checked (file_checks) before a layer is made, and the weights the layers create are
capped at MAX_WEIGHTS values, so hostile text is a ValueError, not a huge allocation.
"""
import json
import warnings

from minicnn import file_checks, saving
from minicnn.keras_config import KerasTwin, compile_arguments, compile_config, model_from_config, twinless_layers
from minicnn.layers.base import weight_cap
from minicnn.model import CONTAINERS

MAX_WEIGHTS = 2**30             # the most weight values a model read from JSON may create (4 GiB of float32)
SOURCE = "model_from_json"      # how errors name the JSON


def to_json(model, **kwargs):
    """model.to_json(**kwargs): json.dumps(Keras's serialized model, **kwargs), or minicnn's own
    config (with a warning) for a model Keras has no twin of."""
    lacking = twinless_layers(model)
    if lacking:
        names = ", ".join(f"{layer.name!r} ({type(layer).__name__})" for layer in lacking)
        warnings.warn(f"to_json: Keras has no twin of layer {names}; the JSON is minicnn's own config, which "
                      "minicnn.models.model_from_json reads and Keras does not", stacklevel=3)
        return json.dumps({"module": "minicnn", "class_name": type(model).__name__, "config": model.get_config()},
                          **kwargs)
    if not model.built and model._declared_input_shape() is None:
        raise ValueError(f"to_json: model {model.name!r} has no input shape yet: build it (model.build((H, W, C))), "
                         "give its first layer input_shape=..., or train it first")
    try:
        settings = compile_config(model)
    except ValueError as e:              # (an optimizer Keras lacks: the architecture alone, as model.save does)
        warnings.warn(f"to_json: the compile settings are left out ({e})", stacklevel=3)
        settings = {}
    return json.dumps(KerasTwin(model).config(settings), **kwargs)


def model_from_json(json_string, custom_objects=None):
    """The model a to_json string describes (Keras's, written by Keras or by minicnn; or minicnn's
    own): a new model, its weights initialized, compiled when the JSON holds compile settings
    minicnn has (a warning otherwise). A ValueError for text that is not such a model."""
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"model_from_json takes the JSON text (a str), got {type(json_string).__name__}")
    spec = file_checks.json_document(json_string, SOURCE)
    file_checks.expect(isinstance(spec, dict), SOURCE, "the JSON", "a serialized model {'class_name', 'config'}",
                       spec)
    minicnn_own = spec.get("module") == "minicnn"
    if minicnn_own:
        file_checks.check_architecture(spec.get("config"), SOURCE)
    else:
        file_checks.check_keras_model(spec, SOURCE)
    try:
        with weight_cap(MAX_WEIGHTS, SOURCE, held="model_from_json allows", why=""):
            if minicnn_own:
                file_checks.expect(spec.get("class_name") in CONTAINERS, SOURCE, "the model's class_name",
                                   f"one of {sorted(CONTAINERS)}", spec.get("class_name"))
                return CONTAINERS[spec["class_name"]].from_config(spec["config"], custom_objects)
            model = model_from_config(spec)[0]
    except saving.REBUILD_ERRORS as e:
        if isinstance(e, ValueError):          # (keras_config's and the layers' errors name what is wrong)
            raise (e if str(e).startswith(SOURCE) else ValueError(f"{SOURCE}: {e}")) from None
        raise ValueError(f"{SOURCE}: cannot build the model the JSON describes: {type(e).__name__}: {e}") from e
    settings = spec.get("compile_config")
    if settings:
        try:
            model.compile(**compile_arguments(settings))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            warnings.warn(f"model_from_json: the model is left uncompiled ({type(e).__name__}: {e}); compile it",
                          stacklevel=2)
    return model


saving.keras_files["to_json"] = to_json          # (model.to_json: saving.FileMethods)
