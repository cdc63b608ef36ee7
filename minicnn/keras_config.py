"""Keras 3's configs, the JSON inside .keras and .h5 files, written and read without Keras.

Keras serializes every object as a nested dict,
    {"module": "keras.layers", "class_name": "Conv2D", "config": {...}, "registered_name": None}
(a layer adds "build_config", the shapes it was built for). This module maps minicnn's layers,
initializers, constraints, optimizers, losses and whole models to those dicts and back:

    layer_config(layer)                   -> (Keras class name, config)
    layer_from_config(class_name, config) -> a minicnn layer (files, and from_keras's live layers)
    compile_config(model) / compile_arguments(config)     optimizer, loss, metrics
    KerasTwin(model).config()             a whole model as Keras holds it
    model_from_config(spec)               ... and back: (minicnn model, its KerasLayers)

One table, LAYERS, is the mapping of every layer minicnn shares with Keras, both ways: the keys
both configs have (minicnn's layer configs use Keras's names and meanings) and the Keras-only keys
with the value that matches what minicnn computes. Writing puts that value; reading checks that a
Keras file has it there (a dilated Conv2D, an activity regularizer, channels-first data: a clear
error).

Files are written as Keras 3.15 writes them, except for a few keys that later Keras 3 releases
added (VarianceScaling's input_axes and output_axes, Dense's quantization_config,
BatchNormalization's renorm settings, InputLayer's optional, the optimizers' loss_scale_factor and
gradient_accumulation_steps): they are left out, at their defaults, so that older Keras 3 releases
read the files too. Reading takes Keras 2's spellings as well (legacy .h5 files of tf.keras).
"""
from minicnn import activations, constraints, initializers, losses, regularizers
from minicnn import layers as L
from minicnn import optimizers as O
from minicnn.constraints import MaxNorm
from minicnn.functional import Model, keras_layer_order, trace
from minicnn.layers.base import KerasTensor, snake_case, structural_keys
from minicnn.layers.core import InputLayer
from minicnn.model import Residual, Sequential
from minicnn.training.trainer import ACCURACY_NAMES

KERAS_VERSION = "3.15.1"        # the release whose files these imitate (written in every file)


def keras_object(module, class_name, config):
    """Keras's serialized form of an object."""
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _dtype_policy():
    return keras_object("keras", "DTypePolicy", {"name": "float32"})


# ---- initializers, constraints, activations --------------------------------------------------------
# Keras's named initializers are VarianceScaling with these (scale, mode, distribution)
_SCHEMES = {"GlorotUniform": (1.0, "fan_avg", "uniform"), "GlorotNormal": (1.0, "fan_avg", "truncated_normal"),
            "HeUniform": (2.0, "fan_in", "uniform"), "HeNormal": (2.0, "fan_in", "truncated_normal"),
            "LecunUniform": (1.0, "fan_in", "uniform"), "LecunNormal": (1.0, "fan_in", "truncated_normal")}
_PLAIN_INITIALIZERS = {c.__name__: c for c in (initializers.Zeros, initializers.Ones, initializers.Constant,
                                               initializers.RandomNormal, initializers.RandomUniform)}


def initializer_config(init):
    """Keras's serialized initializer for a minicnn one (an object, a name, or its config dict).
    Dirac, minicnn's own, is written as its base scheme: it only decides fresh weights, and the
    file carries the weights."""
    init = initializers.deserialize(init) if isinstance(init, dict) else initializers.get(init)
    if isinstance(init, initializers.Dirac):
        init = init.base
    if isinstance(init, initializers.VarianceScaling):
        scheme = (init.scale, init.mode, init.distribution)
        for name, known in _SCHEMES.items():
            if known == scheme:
                return keras_object("keras.initializers", name, {"seed": None})
        return keras_object("keras.initializers", "VarianceScaling", {**init.get_config(), "seed": None})
    if type(init) not in _PLAIN_INITIALIZERS.values():
        raise ValueError(f"initializer {type(init).__name__} has no Keras twin")
    seed = {"seed": None} if isinstance(init, (initializers.RandomNormal, initializers.RandomUniform)) else {}
    return keras_object("keras.initializers", type(init).__name__, {**init.get_config(), **seed})


def initializer_from_config(spec):
    """A minicnn initializer from Keras's serialized one (or a name, as Keras 2 wrote some)."""
    if isinstance(spec, str):
        return initializers.get(spec)
    name, config = spec["class_name"], dict(spec.get("config") or {})
    if name in _SCHEMES:
        return initializers.VarianceScaling(*_SCHEMES[name])
    if name == "VarianceScaling":
        distribution = {"normal": "truncated_normal"}.get(config.get("distribution"), config.get("distribution"))
        return initializers.VarianceScaling(config.get("scale", 1.0), config.get("mode", "fan_in"),
                                            distribution or "truncated_normal")
    if name in _PLAIN_INITIALIZERS:
        config.pop("seed", None)
        return _PLAIN_INITIALIZERS[name](**config)
    raise ValueError(f"initializer {name} has no minicnn equivalent")


def constraint_config(constraint):
    """Keras's serialized constraint for a minicnn one (an object, its config dict, or None)."""
    constraint = constraints.deserialize(constraint) if isinstance(constraint, dict) else constraint
    if constraint is None:
        return None
    if type(constraint) is not MaxNorm:
        raise ValueError(f"constraint {type(constraint).__name__} has no Keras twin")
    return keras_object("keras.constraints", "MaxNorm", constraint.get_config())


def constraint_from_config(spec):
    if spec is None:
        return None
    if spec["class_name"] not in ("MaxNorm", "max_norm"):
        raise ValueError(f"constraint {spec['class_name']} has no minicnn equivalent")
    config = spec.get("config") or {}
    return MaxNorm(config.get("max_value", 2), config.get("axis", 0))


def activation_from_config(spec):
    """The activation's name: Keras writes a built-in one as its name (a function it does not know
    as {"class_name": "function", "config": name, ...})."""
    name = spec.get("config") if isinstance(spec, dict) else spec
    if name is None:
        return "linear"
    if not isinstance(name, str):
        raise ValueError(f"activation {spec!r} has no minicnn equivalent")
    activations.get(name)                       # (an activation minicnn lacks: its ValueError)
    return name


# ---- layers --------------------------------------------------------------------------------------
# Each Keras class: its minicnn class, and its config's keys in Keras's order: a key alone is in
# both configs (same name, same meaning); (key, value) is Keras's only, and minicnn computes what
# Keras does with that value.
_CHANNELS_LAST = ("data_format", "channels_last")
_KERNEL_BIAS = ("activation", "use_bias", "kernel_initializer", "bias_initializer")
_AFFINE = ("fill_mode", "interpolation", "seed", "fill_value")            # the geometric augmentation layers


def _none(*keys):
    return tuple((key, None) for key in keys)


LAYERS = {
    "Conv2D": (L.Conv2D, ("filters", "kernel_size", "strides", "padding", _CHANNELS_LAST, ("dilation_rate", [1, 1]),
                          ("groups", 1), *_KERNEL_BIAS,
                          "kernel_regularizer", "bias_regularizer", ("activity_regularizer", None),
                          "kernel_constraint", "bias_constraint")),
    "Dense": (L.Dense, ("units", *_KERNEL_BIAS, "kernel_regularizer", "bias_regularizer",
                        "kernel_constraint", "bias_constraint")),
    "MaxPooling2D": (L.MaxPooling2D, ("pool_size", "padding", "strides", _CHANNELS_LAST)),
    "AveragePooling2D": (L.AveragePooling2D, ("pool_size", "padding", "strides", _CHANNELS_LAST)),
    "GlobalAveragePooling2D": (L.GlobalAveragePooling2D, (_CHANNELS_LAST, "keepdims")),
    "GlobalMaxPooling2D": (L.GlobalMaxPooling2D, (_CHANNELS_LAST, "keepdims")),
    "Rescaling": (L.Rescaling, ("scale", "offset")),
    "ZeroPadding2D": (L.ZeroPadding2D, ("padding", _CHANNELS_LAST)),
    "Dropout": (L.Dropout, ("rate", "seed", "noise_shape")),
    "Flatten": (L.Flatten, (_CHANNELS_LAST,)),
    "Activation": (L.Activation, ("activation",)),
    "ReLU": (L.ReLU, ("max_value", "negative_slope", "threshold")),
    "LeakyReLU": (L.LeakyReLU, ("negative_slope",)),
    "Softmax": (L.Softmax, ("axis",)),
    "BatchNormalization": (L.BatchNormalization, (
        "axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
        "moving_mean_initializer", "moving_variance_initializer",
        *_none("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"),
        ("synchronized", False))),
    "Add": (L.Add, ()),
    "Concatenate": (L.Concatenate, ("axis",)),
    "RandomFlip": (L.RandomFlip, (_CHANNELS_LAST, "seed", "mode")),
    "RandomCrop": (L.RandomCrop, (_CHANNELS_LAST, "height", "width", "seed")),
    "RandomTranslation": (L.RandomTranslation, (_CHANNELS_LAST, "height_factor", "width_factor", *_AFFINE)),
    "RandomRotation": (L.RandomRotation, (_CHANNELS_LAST, "factor", "fill_mode", "fill_value", "interpolation",
                                          "seed")),
    "RandomZoom": (L.RandomZoom, (_CHANNELS_LAST, "height_factor", "width_factor", *_AFFINE)),
}
_LATER_KEYS = {"quantization_config": None, "renorm": False}   # read (must be so), never written
_WITH_BUILD_CONFIG = {"Conv2D", "Dense", "BatchNormalization", "Rescaling", "Flatten", "Add", "Concatenate",
                      "ZeroPadding2D"}
_KERAS_CLASS = {cls: name for name, (cls, _) in LAYERS.items()}
_MODELS = ("Sequential", "Functional", "Model")


def _plain(value):
    """Lists for tuples, all the way down (JSON has no tuples)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _to_keras(key, value):
    """A value of minicnn's layer config as Keras writes it."""
    if key.endswith("_initializer"):
        return initializer_config(value)
    if key.endswith("_constraint"):
        return constraint_config(value)
    if key.endswith("_regularizer"):
        return None if value is None else keras_object("keras.regularizers", value["class_name"], value["config"])
    return _plain(value)


def _from_keras(key, value):
    """A value of Keras's layer config as minicnn's constructor takes it."""
    if key.endswith("_initializer"):
        return initializer_from_config(value)
    if key.endswith("_constraint"):
        return constraint_from_config(value)
    if key.endswith("_regularizer"):
        return regularizers.deserialize(value)
    if key == "activation":
        return activation_from_config(value)
    if key == "axis" and isinstance(value, list) and len(value) == 1:       # Keras 2's BatchNormalization
        return value[0]
    if key == "seed" and value is not None and not isinstance(value, int):
        raise ValueError(f"seed {value!r} is not an int (minicnn keys its random draws by an int)")
    return tuple(value) if isinstance(value, list) else value


def layer_config(layer):
    """(Keras class name, config) of minicnn `layer`, as Keras's get_config writes them."""
    class_name = _KERAS_CLASS.get(type(layer))
    if class_name is None:
        raise ValueError(f"layer {layer.name!r}: minicnn's {type(layer).__name__} has no Keras twin")
    values = {**layer.get_config(),          # (BatchNormalization keeps its initializers in .inits)
              **{f"{k}_initializer": v for k, v in getattr(layer, "inits", {}).items()}}
    config = {"name": layer.name, "trainable": layer.trainable, "dtype": _dtype_policy()}
    for key in LAYERS[class_name][1]:
        key, value = key if isinstance(key, tuple) else (key, _to_keras(key, values[key]))
        config[key] = value
    return class_name, config


def twinless_layers(model):
    """The layers of `model` (nested containers too) whose class Keras lacks, e.g. a user's Layer
    subclass: a model holding one has no Keras twin."""
    return [layer for layer in model.sublayers() if type(layer) not in _KERAS_CLASS and not isinstance(layer, InputLayer)]


def layer_from_config(class_name, config):
    """The minicnn layer for a Keras layer given by its class name and config (Keras 3's or Keras
    2's); a ValueError naming the layer for a class or a setting minicnn lacks."""
    where = f"Keras layer {config.get('name')!r} ({class_name})"
    if class_name in _MODELS:
        raise ValueError(f"{where}: a functional model inside the model; minicnn reads Sequentials there "
                         "(or call the inner model's layers in the outer one)")
    if class_name not in LAYERS:
        raise ValueError(f"{where} has no minicnn equivalent; minicnn has {', '.join(sorted(LAYERS))}")
    if class_name == "LeakyReLU" and "alpha" in config and "negative_slope" not in config:
        config = {**config, "negative_slope": config["alpha"]}                      # Keras 2's name
    cls, keys = LAYERS[class_name]
    kwargs = {"name": config.get("name"), "trainable": config.get("trainable", True)}
    try:
        for key in keys:
            if isinstance(key, tuple):
                _expect(config, *key)
            elif key in config:
                kwargs[key] = _from_keras(key, config[key])
        for key, value in _LATER_KEYS.items():
            _expect(config, key, value)
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


def _expect(config, key, value):
    """A Keras-only setting must be where minicnn computes the same thing."""
    if key in config and _plain(config[key]) != _plain(value):
        raise ValueError(f"{key}={config[key]!r} has no minicnn equivalent (minicnn computes {key}={value!r})")


def _serialized_layer(class_name, config, build_shapes):
    """Keras's entry for one layer in a model's config."""
    entry = keras_object("keras.layers", class_name, config)
    if class_name in _WITH_BUILD_CONFIG:
        entry["build_config"] = {"input_shape": build_shapes}
    return entry


def _input_layer_config(name, shape):
    return {"batch_shape": [None, *shape], "dtype": "float32", "sparse": False, "ragged": False, "name": name}


def _batch_shape(config):
    """An InputLayer's (or a Keras 2 first layer's) input shape, without the batch axis; None if absent."""
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    return None if shape is None else tuple(shape[1:])


# ---- optimizers, losses, compile settings --------------------------------------------------------------
# Keras class: (minicnn class, the keys both configs share besides the learning rate and the EMA)
OPTIMIZERS = {"SGD": (O.SGD, ("momentum", "nesterov")),
              "RMSprop": (O.RMSprop, ("rho", "momentum", "epsilon", "centered")),
              "Adam": (O.Adam, ("beta_1", "beta_2", "epsilon", "amsgrad")),
              "Adadelta": (O.Adadelta, ("rho", "epsilon")),
              "Adagrad": (O.Adagrad, ("initial_accumulator_value", "epsilon")),
              "Nadam": (O.Nadam, ("beta_1", "beta_2", "epsilon"))}
_OPTIMIZER_ALIASES = {"AdamW": "Adam"}        # Keras's AdamW is its Adam with a weight decay (minicnn's takes one)
_SCHEDULES = {"InverseTimeDecay": O.InverseTimeDecay, "ExponentialDecay": O.ExponentialDecay}
_KERAS_ONLY_OPTIONS = ("clipnorm", "global_clipnorm", "clipvalue", "loss_scale_factor", "gradient_accumulation_steps")
_EMA = ("use_ema", "ema_momentum", "ema_overwrite_frequency")
_ACCURACY_ALIASES = ("categorical_accuracy", "sparse_categorical_accuracy")   # what minicnn's accuracy is
# Keras class: (minicnn class, the keys both configs share, Keras-only keys and the value minicnn computes)
_LOSSES = {"CategoricalCrossentropy": (losses.CategoricalCrossentropy, ("from_logits", "label_smoothing"),
                                       {"axis": -1}),
           "SparseCategoricalCrossentropy": (losses.SparseCategoricalCrossentropy, ("from_logits",),
                                             {"ignore_class": None}),
           "MeanSquaredError": (losses.MeanSquaredError, (), {})}


def optimizer_config_error(opt):
    """Why minicnn optimizer `opt` has no exact Keras twin (None when it has one)."""
    if type(opt) not in [cls for cls, _ in OPTIMIZERS.values()]:
        return f"Keras has no {type(opt).__name__} optimizer"
    if opt.lr_multipliers:
        return "Keras optimizers have no per-variable learning rates (lr_multipliers)"
    if opt._no_decay_ids or opt._no_decay_names:
        return "exclude_from_weight_decay matches minicnn variable paths, which Keras names differently"
    if opt.lookahead_steps:
        return "Keras optimizers have no Lookahead (lookahead_steps)"
    if opt.frozen:
        return "Keras optimizers cannot freeze variables (freeze a layer with trainable=False)"
    lr = opt.learning_rate
    if isinstance(lr, O.LearningRateSchedule) and not isinstance(lr, tuple(_SCHEDULES.values())):
        return f"Keras has no {type(lr).__name__} schedule"
    return None


def optimizer_config(opt):
    """Keras's serialized optimizer for minicnn optimizer `opt` (ValueError when it has no twin)."""
    problem = optimizer_config_error(opt)
    if problem:
        raise ValueError(f"no Keras twin for this {type(opt).__name__}: {problem}")
    class_name = next(name for name, (cls, _) in OPTIMIZERS.items() if cls is type(opt))
    lr = opt.learning_rate
    if isinstance(lr, O.LearningRateSchedule):     # (Keras 2's decay=, Keras2Decay: an InverseTimeDecay)
        name = next(name for name, cls in _SCHEDULES.items() if isinstance(lr, cls))
        lr = keras_object("keras.optimizers.schedules", name, {**lr.get_config(), "name": name})
    values = opt.get_config()
    config = {"name": opt.name, "learning_rate": lr, "weight_decay": opt.weight_decay or None,
              "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": opt.use_ema,
              "ema_momentum": opt.ema_momentum, "ema_overwrite_frequency": opt.ema_overwrite_frequency}
    config.update({key: values[key] for key in OPTIMIZERS[class_name][1]})
    return keras_object("keras.optimizers", class_name, config)


def optimizer_from_config(spec):
    """A minicnn optimizer from Keras's serialized one (Keras 3's or Keras 2's, or a name)."""
    if isinstance(spec, str):
        return O.get(spec)
    class_name = _OPTIMIZER_ALIASES.get(spec["class_name"], spec["class_name"])
    if class_name not in OPTIMIZERS:
        raise ValueError(f"optimizer {spec['class_name']} has no minicnn equivalent")
    config = spec.get("config") or {}
    for key in _KERAS_ONLY_OPTIONS:
        if config.get(key) is not None:
            raise ValueError(f"optimizer {class_name}: {key}={config[key]!r} has no minicnn equivalent")
    cls, keys = OPTIMIZERS[class_name]
    kwargs = {key: config[key] for key in ("name", "weight_decay", "decay", *_EMA, *keys) if key in config}
    lr = config.get("learning_rate", config.get("lr"))
    if isinstance(lr, dict):
        if lr.get("class_name") not in _SCHEDULES:
            raise ValueError(f"learning-rate schedule {lr.get('class_name')} has no minicnn equivalent")
        lr = _SCHEDULES[lr["class_name"]](**{k: v for k, v in lr["config"].items() if k != "name"})
    if lr is not None:
        kwargs["learning_rate"] = lr
    return cls(**kwargs)


def loss_config(loss):
    """Keras's loss: its name, as compile(loss='...') records it, or the serialized object when it
    has settings (label smoothing, logits)."""
    class_name = next((name for name, (cls, _, _) in _LOSSES.items() if cls is type(loss)), None)
    if class_name is None:
        raise ValueError(f"Keras has no twin of loss {type(loss).__name__}")
    cls, keys, keras_only = _LOSSES[class_name]
    values, defaults = loss.get_config(), cls().get_config()
    if values == defaults:
        return loss.name
    lacking = [k for k, v in defaults.items()          # (fuse_softmax: how minicnn computes, not what)
               if k not in keys and k != "fuse_softmax" and values.get(k) != v]
    if lacking:
        raise ValueError(f"Keras's {class_name} has no {', '.join(lacking)}")
    config = {"name": loss.name, "reduction": "sum_over_batch_size", **{k: values[k] for k in keys}, **keras_only}
    return keras_object("keras.losses", class_name, config)


def loss_from_config(spec):
    if isinstance(spec, str):
        return losses.get(spec)
    if not isinstance(spec, dict) or spec.get("class_name") not in _LOSSES:
        raise ValueError(f"loss {spec!r} has no minicnn equivalent")
    cls, keys, keras_only = _LOSSES[spec["class_name"]]
    config = spec.get("config") or {}
    for key, value in {"reduction": "sum_over_batch_size", **keras_only}.items():
        _expect(config, key, value)
    return cls(**{key: config[key] for key in keys if key in config})


def compile_config(model):
    """Keras's compile_config of `model` ({} when it is not compiled); a ValueError when its
    optimizer or loss has no Keras twin."""
    if not model.compiled:
        return {}
    return {"optimizer": optimizer_config(model.optimizer), "loss": loss_config(model.loss), "loss_weights": None,
            "metrics": list(model.metric_names) or None, "weighted_metrics": None, "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": "auto"}


def compile_arguments(config):
    """model.compile's arguments from Keras's compile_config (.keras) or training_config (legacy
    .h5, whose optimizer is under optimizer_config); a ValueError for what minicnn lacks."""
    metrics = config.get("metrics") or []
    if metrics and isinstance(metrics[0], list):                # Keras 2: one list per output
        metrics = metrics[0]
    names = [m if isinstance(m, str) else (m.get("config") or {}).get("name") for m in metrics]
    names = ["accuracy" if name in _ACCURACY_ALIASES else name for name in names]
    if any(name not in ACCURACY_NAMES for name in names):
        raise ValueError(f"metrics {metrics!r}: minicnn computes 'accuracy' only")
    optimizer = config.get("optimizer", config.get("optimizer_config")) or "rmsprop"     # (compile's default)
    return {"optimizer": optimizer_from_config(optimizer), "loss": loss_from_config(config.get("loss")),
            "metrics": names}


# ---- whole models ------------------------------------------------------------------------------
class KerasLayer:
    """One layer of a model as Keras holds it: Keras's class name and layer name, the minicnn layer
    holding its weights (None for an InputLayer, or for the Add joining a Residual's two paths),
    `key`, where its weights sit in a Keras 3 file (None: it has no group there; a layer of a
    Sequential nested in the model: "sequential/layers/conv2d"), `path`, its name and those of the
    models holding it, outermost first (reading only), and its calls (writing only: each the
    positions in the twin's graph of the tensors it read, and whether it took a list)."""

    def __init__(self, class_name, name, layer=None):
        self.class_name, self.name, self.layer = class_name, name, layer
        self.key = None
        self.path = (name,)
        self.calls = []

    def weights(self):
        return self.layer.get_weights() if self.layer is not None else []


class KerasTwin:
    """A minicnn model as Keras holds it: a Sequential for a plain stack; otherwise a functional
    graph, where nested Sequentials and Models are unrolled and a Residual is its branch and its
    shortcut joined by an Add.

    layers:  the KerasLayers in Keras's order (the InputLayer first), built like a functional Model:
             the calls are recorded as KerasTensors, traced from the output, ordered by depth
             (functional.trace and keras_layer_order, what minicnn's Model does for itself);
    config(compile_config): Keras's serialized model."""

    def __init__(self, model):
        if not model.built:
            model.build()
        self.model = model
        self.functional = type(model) is not Sequential or any(isinstance(l, Sequential) for l in model.layers)
        self._twins = {}                    # minicnn layer -> its KerasLayer
        first = model._layers[0] if model._layers else None
        self.input = KerasLayer("InputLayer", first.name if isinstance(first, InputLayer) else None)
        x = KerasTensor(model.input_shape, self.input)
        self.graph = trace(x, self._unroll(model, x))
        self.layers = keras_layer_order(self.graph)
        _unique_names(self.layers)
        self._node = {0: 0}                 # graph position -> which call of its layer made it
        for position, (t, parents) in enumerate(self.graph[1:], 1):
            self._node[position] = len(t.layer.calls)
            t.layer.calls.append((parents, t.many))
        keyed = self.layers[0 if self.functional else 1:]          # (a Sequential's InputLayer has no group)
        for kl, key in zip(keyed, structural_keys(kl.class_name for kl in keyed)):
            kl.key = key

    def _twin(self, layer):
        if layer not in self._twins:         # (a class without a Keras twin keeps its name: weight files work)
            self._twins[layer] = KerasLayer(_KERAS_CLASS.get(type(layer), type(layer).__name__), layer.name, layer)
        return self._twins[layer]

    def _unroll(self, layer, x):
        """The KerasTensor of `layer` (a layer or a container) called on KerasTensor x."""
        if isinstance(layer, Model):
            outputs = []
            for node in layer._nodes:
                args = [x if p < 0 else outputs[p] for p in node.inputs]
                outputs.append(self._unroll(node.layer, args if node.many else args[0]))
            return outputs[-1]
        if isinstance(layer, Residual):
            branch = self._chain(layer.layers, x)
            side = x if layer.shortcut is None else self._unroll(layer.shortcut, x)
            return KerasTensor(branch.shape[1:], KerasLayer("Add", None), [branch, side], many=True)
        if isinstance(layer, Sequential):
            return self._chain(layer.layers, x)
        many = isinstance(x, list)
        return KerasTensor(layer.output_shape, self._twin(layer), x if many else [x], many)

    def _chain(self, layers, x):
        for layer in layers:
            x = self._unroll(layer, x)
        return x

    def _tensor(self, position):
        """Keras's __keras_tensor__ for the tensor at `position` of the graph."""
        t, _ = self.graph[position]
        return {"class_name": "__keras_tensor__", "config": {"shape": list(t.shape), "dtype": "float32",
                                                              "keras_history": [t.layer.name, self._node[position], 0]}}

    def _shapes(self, positions, many):
        """The input shape(s) of a call, as build_config records them."""
        shapes = [list(self.graph[p][0].shape) for p in positions]
        return shapes if many else shapes[0]

    def _entry(self, kl):
        """Keras's entry for KerasLayer kl in the model's config."""
        if kl is self.input:
            entry = keras_object("keras.layers", "InputLayer", _input_layer_config(kl.name, self.model.input_shape))
        else:
            config = layer_config(kl.layer)[1] if kl.layer is not None else {
                "name": kl.name, "trainable": True, "dtype": _dtype_policy()}
            config["name"] = kl.name
            entry = _serialized_layer(kl.class_name, config, self._shapes(*kl.calls[0]))
        if self.functional:
            nodes = [{"args": [[self._tensor(p) for p in parents] if many else self._tensor(parents[0])], "kwargs": {}}
                     for parents, many in kl.calls]
            entry.update(name=kl.name, inbound_nodes=nodes)
        return entry

    def config(self, compile_config=None):
        """Keras's serialized model (what a .keras file's config.json holds)."""
        model, layers = self.model, [self._entry(kl) for kl in self.layers]
        if not self.functional:
            shape = [None, *model.input_shape]
            return {"module": "keras", "class_name": "Sequential",
                    "config": {"name": model.name, "trainable": model.trainable, "dtype": _dtype_policy(),
                               "layers": layers, "build_input_shape": shape},
                    "registered_name": None, "build_config": {"input_shape": shape},
                    "compile_config": compile_config or {}}
        output = self._tensor(len(self.graph) - 1)["config"]["keras_history"]
        return {"module": "keras.src.models.functional", "class_name": "Functional",
                "config": {"name": model.name, "trainable": model.trainable, "layers": layers,
                           "input_layers": [self.input.name, 0, 0], "output_layers": output},
                "registered_name": "Functional", "build_config": {"input_shape": None},
                "compile_config": compile_config or {}}


def _unique_names(klayers):
    """Names for the layers the twin adds (input_layer, add, add_1, ...), and unique names
    throughout (Keras requires them within a model): minicnn's names are kept, a repeated one
    gets a suffix."""
    taken, unnamed = set(), []
    for kl in klayers:
        if kl.name is None or kl.name in taken:
            unnamed.append(kl)
        else:
            taken.add(kl.name)
    for kl in unnamed:
        base = kl.name or snake_case(kl.class_name)
        name, n = base, 0
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        kl.name = name
        taken.add(name)


def legacy_config(spec):
    """The model's config as Keras's legacy HDF5 files hold it: class name and config only, for the
    model and each of its layers (inner objects keep their full form)."""
    keep = ("class_name", "config", "name", "inbound_nodes")
    layers = [{k: v for k, v in entry.items() if k in keep} for entry in spec["config"]["layers"]]
    return {"class_name": spec["class_name"], "config": {**spec["config"], "layers": layers}}


def model_from_config(spec):
    """(minicnn model, its KerasLayers in Keras's order, keyed) from Keras's serialized model: a
    .keras file's config.json, a legacy .h5's model_config, or serialize_keras_object(live model).
    Keras 3's and Keras 2's configs; a Sequential or a functional model with one input and one
    output, whose layers may include Sequentials (keras.io's augmentation pipelines, blocks)."""
    class_name, config = spec["class_name"], spec["config"]
    if class_name == "Sequential":
        return _sequential_from_config(spec)
    if class_name in ("Functional", "Model"):
        return _functional_from_config(config)
    raise ValueError(f"a Keras {class_name} model: minicnn reads Sequential and functional models")


def _entry_name(entry):
    return entry.get("name") or entry["config"].get("name")


def _from_entry(entry):
    """The minicnn layer for one entry of a Keras model's layers, and the KerasLayers it holds:
    itself, or, for a Sequential nested in the model, its layers."""
    if entry["class_name"] == "Sequential":
        return _sequential_from_config(entry)
    layer = layer_from_config(entry["class_name"], entry["config"])
    return layer, [KerasLayer(entry["class_name"], _entry_name(entry), layer)]


def _keyed(level):
    """The KerasLayers of one model's layers, given as [(entry, the KerasLayers it holds)] in
    Keras's order, with their keys and paths; a nested Sequential's sit under its key and name."""
    out = []
    for (entry, held), key in zip(level, structural_keys(entry["class_name"] for entry, _ in level)):
        for kl in held:
            if entry["class_name"] == "Sequential":            # a layer of a nested model
                kl.key, kl.path = f"{key}/layers/{kl.key}", (_entry_name(entry), *kl.path)
            else:
                kl.key = key
        out += held
    return out


def _sequential_input_shape(spec, entries):
    """A Keras Sequential's input shape: its InputLayer's, its first layer's (Keras 2), or the one
    it was built for."""
    if entries and _batch_shape(entries[0]["config"]) is not None:
        return _batch_shape(entries[0]["config"])
    built = spec["config"].get("build_input_shape") or (spec.get("build_config") or {}).get("input_shape")
    return tuple(built[1:]) if built else None


def _sequential_from_config(spec):
    if isinstance(spec["config"], list):                # Keras 2.2: the layers alone
        spec = {**spec, "config": {"layers": spec["config"]}}
    config = spec["config"]
    entries = list(config["layers"])
    shape = _sequential_input_shape(spec, entries)
    first = entries.pop(0) if entries and entries[0]["class_name"] == "InputLayer" else None
    if shape is None:
        raise ValueError(f"Keras Sequential {config.get('name')!r} has no input shape (it was never built)")
    made = [_from_entry(e) for e in entries]
    inputs = [L.Input(shape=shape, name=_entry_name(first))] if first else []
    model = Sequential(inputs + [layer for layer, _ in made], name=config.get("name"))
    model.build(shape)
    return model, _keyed([(e, held) for e, (_, held) in zip(entries, made)])


def _refs(value, what):
    """The one (layer name, node index, tensor index) of input_layers / output_layers."""
    refs = [value] if value and isinstance(value[0], str) else value
    if len(refs) != 1:
        raise ValueError(f"the Keras model has {len(refs)} {what}s; minicnn's functional models have one")
    return tuple(refs[0])


def _call_arguments(node):
    """[(layer name, node index, tensor index)] one call read, and whether it took a list."""
    if isinstance(node, dict):                          # Keras 3: {"args": [tensor or [tensors]], "kwargs"}
        args = node.get("args", [])
        if len(args) != 1:
            raise ValueError(f"a layer call with {len(args)} positional arguments")
        many = isinstance(args[0], list)
        tensors = args[0] if many else [args[0]]
        if any(t.get("class_name") != "__keras_tensor__" for t in tensors):
            raise ValueError("a layer call on something other than a tensor")
        return [tuple(t["config"]["keras_history"]) for t in tensors], many
    refs = [tuple(item[:3]) for item in node]          # Keras 2: [[name, node index, tensor index, kwargs], ...]
    return refs, len(refs) > 1


def _functional_from_config(config):
    """A minicnn Model making the calls of a Keras functional config: each tensor is made by
    calling its layer on the tensors its node read, walking back from the output; a layer shared by
    several calls is one minicnn layer."""
    entries = {_entry_name(e): e for e in config["layers"]}
    made, tensors, walking = {}, {}, set()

    def tensor(name, node_index, tensor_index):
        if (name, node_index) in tensors:
            return tensors[name, node_index]
        if name not in entries:
            raise ValueError(f"the graph reads layer {name!r}, which the config does not list")
        if tensor_index != 0 or (name, node_index) in walking:
            raise ValueError(f"layer {name!r}: a call with several outputs, or a cycle")
        entry = entries[name]
        if entry["class_name"] == "InputLayer":
            t = L.Input(shape=_batch_shape(entry["config"]), name=name)
        else:
            walking.add((name, node_index))
            refs, many = _call_arguments(entry["inbound_nodes"][node_index])
            args = [tensor(*ref) for ref in refs]
            if name not in made:
                made[name] = _from_entry(entry)
            t = made[name][0](args if many else args[0])
            walking.discard((name, node_index))
        tensors[name, node_index] = t
        return t

    output = tensor(*_refs(config["output_layers"], "output"))
    inputs = tensors.get(_refs(config["input_layers"], "input")[:2])
    if inputs is None:
        raise ValueError("the Keras model's output does not depend on its input")
    model = Model(inputs, output, name=config.get("name"))
    unused = (None, [])                     # (the InputLayer, and a layer no call reaches)
    level = [(e, made.get(_entry_name(e), unused)[1] or [KerasLayer(e["class_name"], _entry_name(e))])
             for e in config["layers"]]
    return model, _keyed(level)
