"""Sequential and Residual: containers of layers, themselves layers (functional.py adds Model).

A container holds its layers and runs them: build (shapes), forward and backward, the weights in
Keras's order, config and summary. Keras's training methods (compile, fit, evaluate, predict,
train_on_batch) come from training/methods.py, mixed in as Keras 3's Model inherits its Trainer
(and save, save_weights, load_weights, to_json from saving.FileMethods);
they hand the work to ``model.trainer`` (training/trainer.py), where the training step, batching
and callbacks live.
"""
from minicnn import backend, kernels, layers, saving
from minicnn.activations import SoftmaxInTheLoss
from minicnn.layers.base import (KerasTensor, Layer, entry_count, fusion_plan, is_int, structural_keys,
                                 without_batch_axis)
from minicnn.layers.core import InputLayer, StackTensors
from minicnn.summary import summary_text
from minicnn.training.methods import TrainingMethods

def _layers_from_config(config, custom_objects=None):
    """The layers listed in a Sequential's (or Residual's) config, rebuilt."""
    custom = dict(custom_objects or {})
    out = []
    for spec in config["layers"]:
        name = spec["class_name"]
        if name in CONTAINERS:
            out.append(CONTAINERS[name].from_config(spec["config"], custom_objects))
            continue
        klass = custom[name] if name in custom else layers.get_class(name)
        out.append(klass.from_config(spec["config"]))
    return out


class Sequential(StackTensors, Layer, TrainingMethods, saving.FileMethods):
    """A linear stack of layers: Sequential([Conv2D(...), ...]) or model.add(layer)."""
    ends_in_last_layer = True       # the output is the last layer's (a softmax head there is the model's)

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._layers = []
        self._input_grad = False
        self.optimizer = self.loss = None
        self.metric_names = []
        self.compiled = False
        self._fused = False         # compile: the loss owns the head's softmax (see Trainer.configure_head)
        self._absorbed = set()      # forward: positions of layers run inside the layer before
        self.stop_training, self.stop_reason = False, None
        self.seed = None
        self._constructed = False
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            for layer in layers:
                self.add(layer)
        self._constructed = True
        self._build_if_shape_known()

    def _build_if_shape_known(self):
        """Build as soon as the input shape is known (the first layer's input_shape, or an Input),
        as Keras does: the weights exist right after construction, for count_params, get_weights
        or set_weights."""
        if not self.built and self._constructed and self.layers and self._declared_input_shape() is not None:
            self.build()

    # ---- structure --------------------------------------------------------------------------
    @property
    def layers(self):
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    @property
    def input_grad(self):
        return self._input_grad

    @input_grad.setter
    def input_grad(self, value):
        self._input_grad = value
        for layer in self.entry_layers():
            layer.input_grad = value

    def entry_layers(self):
        """The layers that receive this container's input, through any augmentation (base.entry_count)."""
        return self.layers[:entry_count(self.layers)]

    def add(self, layer):
        if isinstance(layer, KerasTensor) and isinstance(layer.layer, InputLayer):
            layer = layer.layer                 # Sequential([Input(shape), ...]), as Keras 3 takes it
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a minicnn layer, got {type(layer).__name__}: {layer!r}")
        if isinstance(layer, InputLayer) and self._layers:
            raise ValueError("an Input layer can only be the first layer of a Sequential")
        if any(layer is other for other in self._layers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        self._layers.append(layer)
        if self.built:
            previous = self.layers[-2].output_shape if len(self.layers) > 1 else self.input_shape
            self._build_layer(layer, previous, len(self.layers) - 1)
            self.output_shape = layer.output_shape
            if "_stack_input" in self.__dict__:
                self.record_stack(layer)
        else:
            self._build_if_shape_known()

    def pop(self):
        """Keras's Sequential.pop: remove the last layer (and give the head's softmax back to the loss
        or the layer as compile would); returns it."""
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        if not self.layers:
            self.built = False
            self.__dict__.pop("_stack_input", None)
        elif self.built:
            self.output_shape = self.layers[-1].output_shape
            if "_stack_input" in self.__dict__ and self._stack_output.layer is layer:
                self._stack_output = self._stack_output.inputs[0]         # the graph's output, one call back
        if self.compiled:
            self.trainer.configure_head()
        return layer

    def get_layer(self, name=None, index=None):
        """Keras's model.get_layer: the layer called `name`, or the one at `index` in model.layers."""
        if index is not None:
            if not is_int(index) or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index!r} but model only has "
                                 f"{len(self.layers)} layers.")
            return self.layers[index]
        found = [layer for layer in self.layers if layer.name == name]
        if not found:
            raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self.layers]}.")
        return found[0]

    def _declared_input_shape(self):
        return self._layers[0].input_shape if self._layers else None

    def structural_keys(self):
        """Keras 3's weight-file keys: snake_case class name, made unique by position."""
        return structural_keys(type(layer).__name__ for layer in self.layers)

    def _build_layer(self, layer, shape, index):
        layer.input_grad = index >= entry_count(self.layers) or self._input_grad
        if layer.built:
            if tuple(layer.input_shape) != tuple(shape):
                raise ValueError(f"layer {layer.name!r} was built for input {layer.input_shape}, "
                                 f"but the layer before it gives {tuple(shape)}")
        else:
            layer.build(tuple(shape))

    def build(self, input_shape=None):
        if input_shape is None:
            input_shape = self._declared_input_shape()
        if input_shape is None:
            raise ValueError("cannot build the model: give the first layer input_shape=..., start with "
                             "Input(shape=...), or call model.build(input_shape)")
        input_shape = without_batch_axis(input_shape)       # Keras style (None, H, W, C) taken too
        if not self.layers:
            raise ValueError("cannot build an empty Sequential: add layers first")
        if self.seed is None:
            self.seed = int(backend.new_rng().integers(2**31))
        self.input_shape = input_shape
        shape = input_shape
        for i, layer in enumerate(self.layers):
            self._build_layer(layer, shape, i)
            shape = layer.output_shape
        self.output_shape = tuple(shape)
        self.built = True
        if self.ends_in_last_layer is True and "_stack_input" not in self.__dict__:    # (not a Residual's sum)
            self.record_stack()

    def compute_output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    # ---- computing ----------------------------------------------------------------------------
    def forward(self, x, training=False, keep_caches=True, activation=None):
        """The layers in turn. keep_caches=False (predict, evaluate: no backward follows) drops each
        layer's cache as soon as it has run, so a chunk's activations do not all stay alive.
        `activation` replaces the head's own: where the loss owns its softmax (compile), the head
        runs as SoftmaxInTheLoss (its logits out; a nested head is told so by its container)."""
        plan, self._absorbed = fusion_plan(self.layers)     # relu (and pooling) layers run inside
        if self._fused or activation is not None:             # the layer before them
            plan.setdefault(len(self.layers) - 1, {})["activation"] = activation or SoftmaxInTheLoss()
        for i, layer in enumerate(self.layers):
            if i in self._absorbed:
                continue
            x = layer.forward(x, training=training, **plan.get(i, {}))
            if not keep_caches:
                layer.cache = None
        if self._fused:             # the softmax the loss owns (see compile): logits kept, probabilities out
            self.logits = x
            x = kernels.activation_forward(x, "softmax")
        return x

    def backward(self, dout):
        """dL/dx from dout = dL/d(output): with the softmax in the loss, dout is dL/dlogits."""
        for i in reversed(range(len(self.layers))):
            if i in self._absorbed:
                continue
            dout = self.layers[i].backward(dout)
            if dout is None:
                break
        return dout

    def layer_outputs(self, x):
        """[(name, layer, output)] for the batch x in inference mode, each layer run on its own in
        turn (a Conv2D and the ReLU after it give two outputs): what feature maps show. The head
        gives its own softmax's probabilities here (the logits the loss reads: model.logits)."""
        out = []
        for layer in self.layers:
            x = layer.forward(x, training=False)
            out.append((layer.name, layer, x))
        return out

    def members(self):
        """(key, layer) for every layer holding weights or state, in Keras order: here the stack's
        layers; a Residual adds its shortcut."""
        return list(zip(self.structural_keys(), self.layers))

    def variables(self, prefix=""):
        """(path, layer, key) for every trainable parameter, in Keras order."""
        out = []
        for key, layer in self.members():
            if not layer.trainable:
                continue
            if isinstance(layer, Sequential):
                out += layer.variables(prefix + key + "/")
            else:
                out += [(f"{prefix}{key}/{k}", layer, k) for k in layer.params]
        return out

    def sublayers(self):
        """Every non-container layer inside, depth first."""
        for _, layer in self.members():
            yield from layer.sublayers() if isinstance(layer, Sequential) else (layer,)

    # ---- weights ------------------------------------------------------------------------------
    def weight_keys(self):
        return [f"{key}/{k}" for key, layer in self.members() for k in layer.weight_keys()]

    def get_weights(self):
        return [w for _, layer in self.members() for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = self.weight_list(weights)
        expected = sum(len(layer.weight_keys()) for _, layer in self.members())
        if len(weights) != expected:
            raise ValueError(f"model {self.name!r} expects {expected} weight arrays, got {len(weights)}")
        for _, layer in self.members():
            n = len(layer.weight_keys())
            layer.set_weights(weights[:n])
            weights = weights[n:]

    def _new_weight_dicts(self):
        pass        # a Sequential's weights live in its layers

    @property
    def params(self):
        """{path: array} of every layer's trainable weights (read-only: use set_weights)."""
        return {f"{key}/{k}": v for key, layer in self.members() for k, v in layer.params.items()}

    @property
    def state(self):
        """{path: array} of every layer's non-trainable weights (read-only: use set_weights)."""
        return {f"{key}/{k}": v for key, layer in self.members() for k, v in layer.state.items()}

    def count_params(self, trainable=None):
        self.require_built("count_params")
        return sum(layer.count_params(trainable) for _, layer in self.members())

    def extra_state(self):
        return {key: state for key, layer in self.members() if (state := layer.extra_state())}

    def set_extra_state(self, state):
        for key, layer in self.members():
            layer.set_extra_state(state.get(key, {}))

    def _head(self):
        """The layer that produces the output: the last one, inside trailing Sequentials."""
        head = self.layers[-1] if self.layers else None
        while isinstance(head, Sequential) and head.ends_in_last_layer and head.layers:
            head = head.layers[-1]
        return head

    # ---- summary ------------------------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Keras 3's table: layer (type), output shape, params; totals with sizes. (Keras's layout
        arguments are taken; minicnn's table has one layout.)"""
        if not self.built:
            self.build()
        (print_fn or print)(summary_text(self))

    # ---- config and files ---------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "seed": self.seed,
                "input_shape": None if self.input_shape is None else list(self.input_shape),
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}

    @classmethod
    def _constructor_config(cls, config, custom_objects=None):
        """Constructor arguments beyond the layers and the name, from get_config's dict (none here)."""
        return {}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(_layers_from_config(config, custom_objects), name=config.get("name"),
                    **cls._constructor_config(config, custom_objects))
        model.seed = config.get("seed")
        if config.get("input_shape") is not None:
            model.build(tuple(config["input_shape"]))
        return model


class Residual(Sequential):
    """A skip connection around a stack of layers:  y = f(x) + s(x).

    f, the branch, is the stack of the layers given; s, the shortcut, is the identity (default) or
    the stack given as shortcut=[...] (e.g. a 1x1 Conv2D with strides=2 when f halves the size or
    changes the channels). f(x) and s(x) must have the same shape. Use it like any layer:

        Sequential([Conv2D(64, 3, padding="same", activation="relu", input_shape=(32, 32, 3)),
                    Residual([Conv2D(64, 3, padding="same", activation="relu"), Conv2D(64, 3, padding="same")]),
                    ...])

    Backward: the upstream gradient g reaches x along both paths and the two are added,
        dL/dx = f'(x)^T g + s'(x)^T g        (identity shortcut: + g itself)
    so even when f's gradient fades, g passes down unchanged: why deep residual stacks train.
    Weights: the branch's layers as in a Sequential, then the shortcut's under "shortcut/".
    """
    ends_in_last_layer = False

    def __init__(self, layers=None, shortcut=None, name=None, trainable=True):
        super().__init__(layers, name=name, trainable=trainable)
        if shortcut is not None and not isinstance(shortcut, Sequential):
            shortcut = Sequential(shortcut, name=f"{self.name}_shortcut")
        if shortcut is not None and not shortcut.layers:
            shortcut = None
        self.shortcut = shortcut
        self._build_if_shape_known()

    def _build_if_shape_known(self):
        if hasattr(self, "shortcut"):                    # (not while Sequential.__init__ adds the branch)
            super()._build_if_shape_known()

    def entry_layers(self):
        shortcut = getattr(self, "shortcut", None)          # (not yet set while __init__ adds layers)
        return self.layers[:1] + ([shortcut] if shortcut is not None else [])

    def members(self):
        return super().members() + ([("shortcut", self.shortcut)] if self.shortcut is not None else [])

    def build(self, input_shape=None):
        super().build(input_shape)
        side = tuple(self.input_shape)
        if self.shortcut is not None:
            self.shortcut.input_grad = self._input_grad
            self.shortcut.build(self.input_shape)
            side = tuple(self.shortcut.output_shape)
        if side != tuple(self.output_shape):
            what = "the shortcut gives" if self.shortcut is not None else "the identity shortcut gives the input"
            raise ValueError(f"Residual {self.name!r}: the branch maps {tuple(self.input_shape)} to "
                             f"{tuple(self.output_shape)} but {what} {side}; the two must match (give "
                             "shortcut=[Conv2D(filters, 1, strides=...)] to change the shape)")

    def forward(self, x, training=False, keep_caches=True, activation=None):
        side = x if self.shortcut is None else self.shortcut.forward(x, training, keep_caches)
        return super().forward(x, training, keep_caches) + side

    def backward(self, dout):
        through_branch = super().backward(dout)
        through_side = dout if self.shortcut is None else self.shortcut.backward(dout)
        if not self._input_grad:
            return None
        return through_branch + through_side

    def get_config(self):
        config = super().get_config()
        if self.shortcut is not None:
            config["shortcut"] = self.shortcut.get_config()
        return config

    @classmethod
    def _constructor_config(cls, config, custom_objects=None):
        shortcut = config.get("shortcut")
        return {"shortcut": None if shortcut is None else Sequential.from_config(shortcut, custom_objects)}


CONTAINERS = {"Sequential": Sequential, "Residual": Residual}     # functional.py adds Model
