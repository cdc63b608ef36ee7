"""Model(inputs, outputs): Keras's functional API, for graphs with one input and one output.

    inputs = Input(shape=(32, 32, 3))
    x = Conv2D(32, 3, padding="same", activation="relu")(inputs)
    y = Conv2D(32, 3, padding="same")(x)
    x = Add()([x, y])                        # a skip connection: branches meet
    outputs = Dense(10, activation="softmax")(Flatten()(x))
    model = Model(inputs, outputs)

Each layer call on a KerasTensor was recorded (layers/base.py); Model walks back from `outputs` to
`inputs` and keeps the calls, the graph's nodes, in an order where every node comes after the nodes
it reads (a topological order). Then

    forward:   run the nodes in that order; a node reads the outputs of the nodes it was called on.
    backward:  run them in reverse order. A tensor read by several nodes (a fork) receives one
               gradient from each reader, and its dL/d(tensor) is their sum (the multivariable
               chain rule: y = f(x) and z = g(x) both depend on x, so dL/dx = f'^T dL/dy + g'^T dL/dz).

A layer called twice (shared) has one set of weights: both calls read them, and its gradient is
the sum of the two calls' gradients. Each call keeps its own backward cache and scratch buffers.

Model is a Sequential over the graph's layers (Keras's order: by depth from the input), so the
weights, their keys and files, summary, compile/fit/evaluate/predict work as for a Sequential;
what differs is the data flow (build, forward, backward) and the config, which lists the calls.
"""
from minicnn import backend, kernels
from minicnn.activations import SoftmaxInTheLoss
from minicnn.layers.base import KerasTensor, unique_name, without_batch_axis
from minicnn.model import CONTAINERS, Sequential, _layers_from_config


class Node:
    """One layer call of the graph: layer(inputs) -> output. `inputs` are the positions, in the
    model's node list, of the nodes whose outputs the call reads; `context` holds the call's own
    backward cache and scratch buffers when the layer is shared."""

    def __init__(self, layer, inputs, many):
        self.layer, self.inputs, self.many = layer, inputs, many
        self.context = {}


def _single(tensors, what):
    if isinstance(tensors, (list, tuple)) and len(tensors) == 1:
        tensors = tensors[0]
    if not isinstance(tensors, KerasTensor):
        raise TypeError(f"Model({what}=...) takes one KerasTensor (from Input(...) or a layer call); got "
                        f"{type(tensors).__name__}. minicnn's functional models have one input and one output")
    return tensors


def trace(inputs, outputs):
    """The graph between the KerasTensors `inputs` and `outputs`: its calls in a topological order
    (input first, output last), as (tensor, positions of the tensors it reads), found by a
    depth-first walk back from the output, as Keras's map_graph does."""
    order, position, walking = [], {}, set()

    def visit(t):
        if id(t) in position:
            return
        if id(t) in walking:
            raise ValueError(f"the graph has a cycle through layer {t.layer.name!r}")
        if not t.inputs and t is not inputs:
            raise ValueError(f"the output depends on {t.layer.name!r}, an Input that is not the model's "
                             "input; minicnn's functional models have one input")
        walking.add(id(t))
        for parent in t.inputs:
            visit(parent)
        walking.discard(id(t))
        position[id(t)] = len(order)
        order.append(t)

    visit(outputs)
    if id(inputs) not in position:
        raise ValueError("the outputs do not depend on the inputs given to Model(inputs, outputs)")
    if inputs.inputs:
        raise ValueError("Model's inputs must come from Input(shape=...), not from a layer call")
    return [(t, [position[id(p)] for p in t.inputs]) for t in order]


def keras_layer_order(graph):
    """The graph's layers in Keras's order: by depth (the longest path to the output), deepest
    first, ties in the order the walk first met them. It fixes the weights' order and keys."""
    depth, first_seen = {}, {}
    for t, _ in graph:
        first_seen.setdefault(t.layer, len(first_seen))
    node_depth = {}
    for i in reversed(range(len(graph))):
        t, parents = graph[i]
        d = max(node_depth.get(i, 0), depth.get(t.layer, 0))
        node_depth[i] = depth[t.layer] = d
        for p in parents:
            node_depth[p] = max(node_depth.get(p, 0), d + 1)
    return sorted(depth, key=lambda layer: (-depth[layer], first_seen[layer]))


class Model(Sequential):
    """A graph of layers from one input to one output: Model(inputs, outputs) (see the module's
    docstring). Layers: the InputLayer first, then the others in Keras's order."""
    ends_in_last_layer = property(lambda self: self._uses[self._nodes[-1].layer] == 1)

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True):
        if inputs is None or outputs is None:
            raise TypeError("Model(inputs, outputs) builds a functional model from Input(...) and layer calls; "
                            "minicnn does not support subclassing Model (write a Layer subclass with forward "
                            "and backward, or use Sequential)")
        inputs, outputs = _single(inputs, "inputs"), _single(outputs, "outputs")
        super().__init__(name=name or unique_name("functional"), trainable=trainable)
        graph = trace(inputs, outputs)
        self._input, self._output = inputs, outputs
        self._nodes = [Node(t.layer, parents, t.many) for t, parents in graph[1:]]
        for node in self._nodes:
            node.inputs = [p - 1 for p in node.inputs]            # position -1: the model's input
        self._layers = keras_layer_order(graph)
        self._last_reader = {p: j for j, node in enumerate(self._nodes) for p in node.inputs}
        self._uses = {layer: 0 for layer in self._layers}
        for node in self._nodes:
            self._uses[node.layer] += 1
        for layer, n in self._uses.items():
            if n > 1 and isinstance(layer, Sequential):
                raise ValueError(f"{type(layer).__name__} {layer.name!r} is called {n} times; minicnn shares "
                                 "single layers between calls, not whole models")
        self.input_shape = tuple(inputs.shape[1:])
        self.output_shape = tuple(outputs.shape[1:])
        for layer in self._layers:
            layer.input_grad = True
        self.input_grad = False                     # (entry layers: no dL/dx unless asked)
        self.build()

    @property
    def layers(self):
        return list(self._layers)

    @property
    def input(self):
        """The KerasTensor the model was built from (Keras's model.input; also model.inputs)."""
        return self._input

    @property
    def output(self):
        """The output's KerasTensor (Keras's model.output; also model.outputs)."""
        return self._output

    inputs = property(lambda self: [self._input])
    outputs = property(lambda self: [self._output])

    def add(self, layer):
        raise TypeError("a functional Model's layers are fixed by Model(inputs, outputs); add() is Sequential's")

    def pop(self):
        raise TypeError("a functional Model's layers are fixed by Model(inputs, outputs); pop() is Sequential's")

    def entry_layers(self):
        """The layers called on the model's input only (their dL/dx is the model's)."""
        reads_input = {node.layer for node in self._nodes if -1 in node.inputs}
        reads_other = {node.layer for node in self._nodes if any(p >= 0 for p in node.inputs)}
        return [layer for layer in self._layers if layer in reads_input - reads_other]

    def build(self, input_shape=None):
        if input_shape is not None:
            input_shape = without_batch_axis(input_shape)
            if input_shape != self.input_shape:
                raise ValueError(f"model {self.name!r} takes inputs of shape {self.input_shape} (fixed by its "
                                 f"Input), not {input_shape}")
        if self.seed is None:                       # (the layers were built when called on KerasTensors)
            self.seed = int(backend.new_rng().integers(2**31))
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.output_shape

    # ---- computing ----------------------------------------------------------------------------
    def _switch(self, node):
        """Hand a shared layer the backward cache and scratch buffers of this call (True if shared)."""
        if self._uses[node.layer] == 1:
            return False
        node.layer.cache = node.context.get("cache")
        node.layer.__dict__["_workspaces"] = node.context.setdefault("workspaces", {})
        return True

    def forward(self, x, training=False, keep_caches=True, activation=None):
        """The nodes in order. keep_caches=False (predict, evaluate) drops each call's cache once it
        has run, and each output once its last reader has; `activation` replaces the head's own
        (see Sequential.forward)."""
        outputs = []                                # outputs[i]: node i's output
        if self._fused or activation is not None:
            activation = activation or SoftmaxInTheLoss()
        for j, node in enumerate(self._nodes):
            args = [x if p < 0 else outputs[p] for p in node.inputs]
            shared = self._switch(node)
            head = {"activation": activation} if activation is not None and j == len(self._nodes) - 1 else {}
            outputs.append(node.layer.forward(args if node.many else args[0], training=training, **head))
            if shared:
                node.context["cache"] = node.layer.cache
            if not keep_caches:
                node.layer.cache = node.context["cache"] = None
                for p in node.inputs:
                    if p >= 0 and self._last_reader[p] == j:
                        outputs[p] = None
        y = outputs[-1]
        if self._fused:             # the softmax the loss owns (see Sequential.forward)
            self.logits = y
            y = kernels.activation_forward(y, "softmax")
        return y

    def backward(self, dout):
        """dL/dx from dout = dL/d(output), node by node in reverse order; where a tensor feeds
        several nodes, their gradients add up; a shared layer's weight gradients add up too."""
        grads = {len(self._nodes) - 1: dout}        # dL/d(node i's output), summed over its readers
        shared_sums = {}
        for i in reversed(range(len(self._nodes))):
            node = self._nodes[i]
            shared = self._switch(node)
            dx = node.layer.backward(grads.pop(i))
            if shared:
                node.context.pop("cache", None)
                self._sum_shared(node.layer, shared_sums)
            for p, g in zip(node.inputs, dx if node.many else [dx]):
                if g is not None:
                    grads[p] = g if p not in grads else grads[p] + g
        for layer, sums in shared_sums.items():
            for k, total in sums.items():
                layer.grads[k][...] = total
        return grads.get(-1) if self.input_grad else None

    def layer_outputs(self, x):
        """[(name, layer, output)] for the batch x in inference mode, one per layer call in the
        graph's order (a shared layer's later calls named 'name (call k)'): what feature maps show."""
        values, out, calls = [], [], {}
        for node in self._nodes:
            args = [x if p < 0 else values[p] for p in node.inputs]
            values.append(node.layer.forward(args if node.many else args[0], training=False))
            calls[node.layer] = calls.get(node.layer, 0) + 1
            name = node.layer.name + (f" (call {calls[node.layer]})" if calls[node.layer] > 1 else "")
            out.append((name, node.layer, values[-1]))
        return out

    @staticmethod
    def _sum_shared(layer, sums):
        """Add this call's weight gradients of a shared layer to the running sums."""
        if layer not in sums:
            sums[layer] = {k: g.copy() for k, g in layer.grads.items()}
        else:
            for k, g in layer.grads.items():
                sums[layer][k] += g

    def _head(self):
        """The layer producing the output (inside a trailing Sequential, its last layer)."""
        head = self._nodes[-1].layer
        return head._head() if isinstance(head, Sequential) and head.ends_in_last_layer else head

    # ---- summary, config ----------------------------------------------------------------------
    def connections(self):
        """{layer: 'Connected to' text} as Keras's summary shows a graph (None for a plain chain:
        every call reads one tensor and no layer is called twice)."""
        if all(len(n.inputs) == 1 and not n.many for n in self._nodes) and max(self._uses.values()) == 1:
            return None
        input_layer = self._layers[0]
        call_index, names = {}, []                  # names[i]: node i's output as Keras writes it
        for node in self._nodes:
            call_index[node.layer] = call_index.get(node.layer, -1) + 1
            names.append(f"{node.layer.name}[{call_index[node.layer]}][0]")
        text = {input_layer: "-"}
        for node in self._nodes:
            reads = ", ".join(f"{input_layer.name}[0][0]" if p < 0 else names[p] for p in node.inputs)
            text[node.layer] = reads if node.layer not in text else f"{text[node.layer]}, {reads}"
        return text

    def get_config(self):
        """The layers (the InputLayer first) and the calls, each as (layer index, [node positions
        read; -1 is the input], took a list)."""
        index = {layer: i for i, layer in enumerate(self._layers)}
        return {"name": self.name, "seed": self.seed,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self._layers],
                "nodes": [[index[n.layer], list(n.inputs), n.many] for n in self._nodes]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        layers = _layers_from_config(config, custom_objects)
        layers[0].build(layers[0].input_shape)
        inputs = KerasTensor(layers[0].input_shape, layers[0])
        outputs = []
        for layer_index, reads, many in config["nodes"]:
            args = [inputs if p < 0 else outputs[p] for p in reads]
            outputs.append(layers[layer_index](args if many else args[0]))
        model = cls(inputs, outputs[-1], name=config.get("name"))
        model.seed = config.get("seed")
        return model


CONTAINERS["Model"] = Model
