"""What a minicnn file may hold: the checks saving.py runs on a file from elsewhere before it uses
anything in it. Each raises a ValueError that names the file, the member or argument, what was
expected and what came.

    json_member          a JSON member (__minicnn__, __config__): UTF-8, valid, nested at most
                         MAX_JSON_DEPTH deep (Python's parser would recurse past its limit)
    check_table          the __minicnn__ table against the arrays: every weight it lists stored, of
                         the listed shape, as floats; nothing stored that it does not list
    check_model_config   the architecture, before a layer is made: every argument of every layer
                         (nested containers too) of the right type and range (ARG_RULES), every
                         number finite, a functional Model's calls; the extra state; the compile
                         settings
    stored_array         one optimizer array, present with the expected shape and dtype

(The arrays themselves were checked by npz.read_npz; the sizes the architecture implies are capped
by layers.base.weight_cap while load_model builds it.)
"""
import json
import math

import numpy as np

MAX_DIM = 2**24                 # the largest size a config may give: filters, units, a kernel or image side
MAX_INPUT = 2**40               # the largest number of values in one example (input_shape)
MAX_JSON_DEPTH = 100            # lists and objects inside each other in a JSON member


def json_member(array, name, filepath):
    """The JSON document stored as member `name` (UTF-8 bytes as a uint8 vector)."""
    expect(array.dtype == np.uint8 and array.ndim == 1, filepath, f"member {name!r}",
           "a uint8 vector (JSON text)", f"{array.dtype} {array.shape}", show=str)
    return json_document(array.tobytes(), f"{filepath}: member {name!r}")


def json_document(text, where):
    """The JSON document in `text` (str, or UTF-8 bytes), nested at most MAX_JSON_DEPTH deep; a
    ValueError starting with `where` otherwise."""
    try:
        document = json.loads(text.decode("utf-8") if isinstance(text, (bytes, bytearray)) else text)
    except (ValueError, RecursionError) as e:          # (bad UTF-8 or JSON, an int of over 4300 digits)
        raise ValueError(f"{where} is not valid JSON: {type(e).__name__}: {e}") from None
    if _json_depth(document) > MAX_JSON_DEPTH:
        raise ValueError(f"{where} nests JSON more than {MAX_JSON_DEPTH} levels deep")
    return document


def _json_depth(document):
    """How deeply lists and objects nest in a JSON document (counted without recursion)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def expect(ok, filepath, where, expected, got, show=repr):
    """ValueError("<file>: <where> must be <expected>, got <show(got)>") unless ok."""
    if not ok:
        got = show(got)
        raise ValueError(f"{filepath}: {where} must be {expected}, got {got[:120]}{'...' if len(got) > 120 else ''}")


def _is_int(value, low, high):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_shape(value):
    """An example's shape: 1 to 3 sizes, at most MAX_INPUT values."""
    return (isinstance(value, list) and 1 <= len(value) <= 3 and all(_is_int(d, 1, MAX_DIM) for d in value)
            and math.prod(value) <= MAX_INPUT)


def weight_names(arrays):
    return [name for name in arrays if name != "__config__" and not name.startswith("optimizer/")]


def check_table(meta, arrays, filepath):
    """The __minicnn__ table against the arrays: the input shape is a shape, every weight it lists is
    stored as a float array of the listed shape, and no stored weight is missing from it."""
    expect(_is_shape(meta.get("input_shape")), filepath, "the header's input_shape",
           f"a list of 1 to 3 ints in [1, {MAX_DIM}]", meta.get("input_shape"))
    expect(isinstance(meta.get("layers"), list), filepath, "the header's layers", "a list", meta.get("layers"))
    listed = {}
    for row in meta["layers"]:
        expect(isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("class"), str)
               and isinstance(row.get("weights"), dict), filepath, "each row of the header's layers",
               "{'key': str, 'class': str, 'weights': {name: shape}}", row)
        for k, shape in row["weights"].items():
            expect(isinstance(shape, list) and all(_is_int(d, 0, MAX_INPUT) for d in shape), filepath,
                   f"the shape of {row['key']}/{k}", "a list of ints >= 0", shape)
            listed[f"{row['key']}/{k}"] = tuple(shape)
    stored = weight_names(arrays)
    for name in [n for n in listed if n not in arrays] + [n for n in stored if n not in listed]:
        where = "listed in the header but not stored" if name in listed else "stored but not listed in the header"
        raise ValueError(f"{filepath}: weight {name!r} is {where}")
    for name in stored:
        expect(arrays[name].shape == listed[name] and arrays[name].dtype.kind == "f", filepath, f"member {name!r}",
               f"a float array of shape {listed[name]} (the header's)", f"{arrays[name].dtype} {arrays[name].shape}",
               show=str)


# What each argument of a layer's config may be (any layer class: the names mean the same in all of
# them). The layers' constructors check the rest (the padding word, activation, initializer names)
# and raise for an argument they do not know; every number must be finite.
def _sizes(value):
    return _is_int(value, 1, MAX_DIM) or (isinstance(value, list) and len(value) == 2
                                          and all(_is_int(v, 1, MAX_DIM) for v in value))


def _paddings(value):
    """Conv2D's and pooling's 'valid' / 'same' (their constructors check the word), or ZeroPadding2D's
    sizes: an int, or 2 entries each an int or a pair of ints, in [0, MAX_DIM]."""
    def pad(v):
        return _is_int(v, 0, MAX_DIM)
    def axis(v):
        return pad(v) or (isinstance(v, list) and len(v) == 2 and all(map(pad, v)))
    return isinstance(value, str) or pad(value) or (isinstance(value, list) and len(value) == 2
                                                     and all(map(axis, value)))


ARG_RULES = {
    "name": (lambda v: isinstance(v, str) and len(v) <= 256, "a string"),
    "trainable": (lambda v: isinstance(v, bool), "true or false"),
    "use_bias": (lambda v: isinstance(v, bool), "true or false"),
    "keepdims": (lambda v: isinstance(v, bool), "true or false"),
    "filters": (lambda v: _is_int(v, 1, MAX_DIM), f"an int in [1, {MAX_DIM}]"),
    "units": (lambda v: _is_int(v, 1, MAX_DIM), f"an int in [1, {MAX_DIM}]"),
    "height": (lambda v: _is_int(v, 1, MAX_DIM), f"an int in [1, {MAX_DIM}]"),      # (RandomCrop)
    "width": (lambda v: _is_int(v, 1, MAX_DIM), f"an int in [1, {MAX_DIM}]"),
    "kernel_size": (_sizes, f"an int or 2 ints in [1, {MAX_DIM}]"),
    "pool_size": (_sizes, f"an int or 2 ints in [1, {MAX_DIM}]"),
    "dilation_rate": (_sizes, f"an int or 2 ints in [1, {MAX_DIM}]"),
    "strides": (lambda v: v is None or _sizes(v), f"null, an int or 2 ints in [1, {MAX_DIM}]"),
    "padding": (_paddings, f"'valid' or 'same', or (ZeroPadding2D) an int, 2 ints or 2 pairs of ints "
                           f"in [0, {MAX_DIM}]"),
    "input_shape": (lambda v: v is None or _is_shape(v) or (isinstance(v, list) and v and all(map(_is_shape, v))),
                    f"a list of 1 to 3 ints in [1, {MAX_DIM}] (a list of them for Add, Concatenate)"),
    "shape": (_is_shape, f"a list of 1 to 3 ints in [1, {MAX_DIM}]"),
    "noise_shape": (lambda v: v is None or (isinstance(v, list) and len(v) <= 4 and all(
        d is None or _is_int(d, 1, MAX_DIM) for d in v)), f"null or a list of nulls and ints in [1, {MAX_DIM}]"),
    "rate": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1, "a number in [0, 1)"),
    "seed": (lambda v: v is None or _is_int(v, 0, 2**32 - 1), "null or an int in [0, 2**32)"),
    "draws": (lambda v: _is_int(v, 0, 2**63 - 1), "an int in [0, 2**63)"),   # (extra_state: Dropout's counter)
}


def _check_args(args, filepath, where):
    expect(isinstance(args, dict), filepath, where, "a JSON object", args)
    for key, value in args.items():
        if key in ARG_RULES:
            ok, expected = ARG_RULES[key]
            expect(ok(value), filepath, f"{where}: {key}", expected, value)
        expect(_finite(value), filepath, f"{where}: {key}", "finite numbers", value)


def _finite(value):
    if isinstance(value, float):
        return np.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return all(_finite(v) for v in value) if isinstance(value, list) else True


CONTAINERS = ("Sequential", "Residual", "Model")     # the classes whose config lists layers


def _check_container(config, filepath, where):
    """A container's config (Sequential, Residual, functional Model): its own arguments, then every
    layer's, nested containers too, and a Model's calls."""
    expect(isinstance(config, dict), filepath, where, "a JSON object", config)
    _check_args({k: v for k, v in config.items() if k not in ("layers", "shortcut", "nodes")}, filepath, where)
    expect(isinstance(config.get("layers"), list), filepath, f"{where}: layers", "a list", config.get("layers"))
    for i, spec in enumerate(config["layers"]):
        inner = f"{where}, layer {i}"
        expect(isinstance(spec, dict) and isinstance(spec.get("class_name"), str)
               and isinstance(spec.get("config"), dict), filepath, inner, "{'class_name': str, 'config': {...}}", spec)
        inner += f" ({spec['class_name']})"
        if spec["class_name"] in CONTAINERS:
            _check_container(spec["config"], filepath, inner)
        else:
            _check_args(spec["config"], filepath, inner)
    if config.get("shortcut") is not None:
        _check_container(config["shortcut"], filepath, f"{where}, shortcut")
    if "nodes" in config:
        _check_nodes(config["nodes"], len(config["layers"]), filepath, where)


def _check_nodes(nodes, n_layers, filepath, where):
    """A functional Model's calls: [layer index, [positions of the nodes read, -1 the input], took a
    list], each reading only the input and nodes before it."""
    expect(isinstance(nodes, list) and nodes, filepath, f"{where}: nodes", "a list of calls", nodes)
    for i, node in enumerate(nodes):
        expect(isinstance(node, list) and len(node) == 3 and _is_int(node[0], 0, n_layers - 1)
               and isinstance(node[1], list) and node[1] and all(_is_int(p, -1, i - 1) for p in node[1])
               and isinstance(node[2], bool), filepath, f"{where}, node {i}",
               f"[a layer index < {n_layers}, [positions before {i}, -1 for the input], true or false]", node)


def check_architecture(config, source):
    """A container's config (minicnn's get_config), checked before any layer is made from it."""
    _check_container(config, source, "the model")


def check_keras_model(spec, source, where="the model"):
    """Keras's serialized model (to_json, a .keras config.json), checked before any layer is made
    from it: the structure keras_config reads, and every layer's arguments as ARG_RULES says
    (Keras's names are minicnn's), nested Sequentials too."""
    expect(isinstance(spec, dict) and isinstance(spec.get("class_name"), str)
           and isinstance(spec.get("config"), (dict, list)), source, where,
           "Keras's serialized model {'class_name': str, 'config': {...}}", spec)
    config = spec["config"]
    entries = config if isinstance(config, list) else config.get("layers")     # (Keras 2.2: the layers alone)
    expect(isinstance(entries, list), source, f"{where}: layers", "a list", entries)
    if isinstance(config, dict):
        _check_args({k: v for k, v in config.items() if k not in ("layers", "input_layers", "output_layers")},
                    source, where)
    for i, entry in enumerate(entries):
        inner = f"{where}, layer {i}"
        expect(isinstance(entry, dict) and isinstance(entry.get("class_name"), str)
               and isinstance(entry.get("config"), (dict, list)), source, inner,
               "{'class_name': str, 'config': {...}}", entry)
        if entry["class_name"] == "Sequential":
            check_keras_model(entry, source, f"{inner} (Sequential)")
        else:
            expect(isinstance(entry["config"], dict), source, inner, "a JSON object", entry["config"])
            _check_args(entry["config"], source, f"{inner} ({entry['class_name']})")


def check_model_config(config, filepath):
    """A model file's __config__, checked before any layer is made from it."""
    expect(isinstance(config, dict) and isinstance(config.get("model"), dict), filepath, "the __config__ member",
           "{'model': {...}, 'extra_state': {...}, 'compile': ...}", config)
    _check_container(config["model"], filepath, "the model")
    extra = config.get("extra_state")
    expect(isinstance(extra, dict), filepath, "extra_state", "a JSON object", extra)
    for key, state in extra.items():
        _check_args(state, filepath, f"the extra state of {key}")
    compiled = config.get("compile")
    expect(compiled is None or (isinstance(compiled, dict) and isinstance(compiled.get("metrics"), list)
                                and isinstance(compiled.get("optimizer_built"), bool)), filepath, "compile",
           "null or {'optimizer', 'loss', 'metrics': [...], 'optimizer_built': bool}", compiled)


def stored_array(arrays, name, shape, kinds, filepath):
    """The array stored as member `name`, which must exist with that shape and a dtype of those kinds."""
    if name not in arrays:
        raise ValueError(f"{filepath}: the optimizer state has no member {name!r}")
    array = arrays[name]
    expect(array.shape == tuple(shape) and array.dtype.kind in kinds, filepath, f"member {name!r}",
           f"of shape {tuple(shape)} and dtype kind {kinds!r}", f"{array.dtype} {array.shape}", show=str)
    return array
