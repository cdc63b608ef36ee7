"""Model and weights files from elsewhere: what a damaged or crafted file holds is refused, before it
is used or allocated, with a ValueError naming the file, the member or argument, what was expected
and what came (tests/test_fuzz_files.py throws a thousand random mutations at the same checks)."""
import io
import json
import re
import zipfile

import numpy as np
import pytest

import minicnn
from minicnn import initializers, npz

from test_fuzz_files import _members, _zip
from test_model import small_model


@pytest.fixture
def files(tmp_path):
    model = small_model()
    model.train_on_batch(np.zeros((2, 8, 8, 3), np.float32), np.eye(4, dtype=np.float32)[:2])   # optimizer slots
    model.save(tmp_path / "m.minicnn")
    model.save_weights(tmp_path / "w.weights.npz")
    return tmp_path / "m.minicnn", tmp_path / "w.weights.npz"


def _npy(array):
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def _rewrite(path, member, change):
    """Write `path` again with member (name without .npy) replaced by change(its raw .npy bytes)."""
    members = [(name, change(raw) if name == member + ".npy" else raw) for name, raw in _members(path.read_bytes())]
    path.write_bytes(_zip(members))


def _edit_json(path, member, edit):
    def change(raw):
        document = json.loads(np.load(io.BytesIO(raw)).tobytes())
        edit(document)
        return _npy(np.frombuffer(json.dumps(document).encode(), np.uint8))
    _rewrite(path, member, change)


def _header(raw, old, new):
    """A .npy member with `old` replaced by `new` in its header text (the length field kept right)."""
    length = int.from_bytes(raw[8:10], "little")
    text = raw[10:10 + length].decode("latin-1").replace(old, new)
    return raw[:8] + len(text).to_bytes(2, "little") + text.encode("latin-1") + raw[10 + length:]


def _load_weights(path):
    small_model().load_weights(path)


# ---- the zip and its .npy headers ---------------------------------------------------------------------
@pytest.mark.parametrize("old,new,message", [
    ("(3, 3, 3, 8)", "(100000, 100000)", r"member 'conv2d/W.npy': its header says <f4 \(100000, 100000\) "
                                         r"\(40000000000 bytes of data\), but the member holds 864 bytes"),
    ("(3, 3, 3, 8)", "(3, 3, 3, 4)", r"its header says <f4 \(3, 3, 3, 4\) \(432 bytes of data\), but the member holds 864"),
    ("'fortran_order': False, 'shape': (3, 3, 3, 8), }", "'shape': (",      # numpy's parser: TokenError
     r"member 'conv2d/W.npy': unreadable .npy header \"\{'descr': '<f4', 'shape': \(\""),
    ("'<f4'", "'|O'", r"member 'conv2d/W.npy': dtype '\|O' is not one minicnn reads"),
    ("'<f4'", "'<U1'", r"dtype '<U1' is not one minicnn reads"),
    ("(3, 3, 3, 8)", "(-1,)", r"unreadable .npy header"),
])
def test_npy_headers_are_checked_before_reading(files, old, new, message):
    path = files[1]
    _rewrite(path, "conv2d/W", lambda raw: _header(raw, old, new))
    with pytest.raises(ValueError, match=message) as info:
        _load_weights(path)
    assert str(info.value).startswith(f"{path} is not a readable minicnn weights/model file: ")


def test_a_zip_bomb_is_refused_by_its_declared_size(files, monkeypatch):
    path = files[1]
    members = dict(_members(path.read_bytes()))
    members["dense/W.npy"] = _npy(np.zeros(2**24, np.float32))         # 64 MB of zeros: 65 kB deflated
    path.write_bytes(_zip(list(members.items()), zipfile.ZIP_DEFLATED))
    monkeypatch.setattr(np, "frombuffer", None)                         # nothing may be read, let alone allocated
    with pytest.raises(ValueError, match=r"member 'dense/W.npy' declares 67108992 bytes from \d+ compressed "
                                         r"\(more than \d+: a zip bomb, or a damaged size\)"):
        _load_weights(path)


def test_deflated_files_within_the_ratio_are_read(files):
    path = files[1]
    path.write_bytes(_zip(_members(path.read_bytes()), zipfile.ZIP_DEFLATED))
    model = small_model()
    model.load_weights(path)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m + [("extra.bin", b"x")], r"member 'extra.bin' is not a .npy array"),
    (lambda m: m + [x for x in m if x[0] == "conv2d/W.npy"], r"member 'conv2d/W.npy' appears 2 times"),
    (lambda m: [x for x in m if x[0] != "dense/b.npy"], r"weight 'dense/b' is listed in the header but not stored"),
    (lambda m: m + [("dense_9/W.npy", m[-1][1])], r"weight 'dense_9/W' is stored but not listed in the header"),
    (lambda m: [(n, _npy(np.zeros((3, 3, 3, 8), np.int32)) if n == "conv2d/W.npy" else r) for n, r in m],
     r"member 'conv2d/W' must be a float array of shape \(3, 3, 3, 8\) \(the header's\), got int32 \(3, 3, 3, 8\)"),
])
def test_members_must_match_the_header(files, edit, message):
    path = files[1]
    path.write_bytes(_zip(edit(_members(path.read_bytes()))))
    with pytest.raises(ValueError, match=message) as info:
        _load_weights(path)
    assert str(path) in str(info.value)


def test_npz_reader_alone(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(6.0).reshape(2, 3), b=np.array([True]), s=np.int64(7))
    arrays = npz.read_npz(tmp_path / "a.npz")
    assert arrays["x"].shape == (2, 3) and arrays["b"].dtype == bool and arrays["s"] == 7
    with pytest.raises(FileNotFoundError):
        npz.read_npz(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="not a regular file"):
        npz.read_npz("/dev/null")


# ---- the JSON members: the header's table and the model's config ----------------------------------------
@pytest.mark.parametrize("member,edit,message", [
    ("__minicnn__", lambda d: d.update(input_shape=[8, -8, 3]), r"the header's input_shape must be a list of 1 to 3 "
                                                                 r"ints in \[1, 16777216\], got \[8, -8, 3\]"),
    ("__minicnn__", lambda d: d["layers"][0].pop("weights"), r"each row of the header's layers must be"),
    ("__minicnn__", lambda d: d["layers"][0]["weights"].update(W=[3, 3, "3", 8]), r"the shape of conv2d/W must be"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"].update(filters=10**12),
     r"the model, layer 0 \(Conv2D\): filters must be an int in \[1, 16777216\], got 1000000000000"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"].update(filters=True), r"filters must be an int"),
    ("__config__", lambda d: d["model"]["layers"][1]["config"].update(pool_size=[-2, 2]),
     r"layer 1 \(MaxPooling2D\): pool_size must be an int or 2 ints in \[1, 16777216\], got \[-2, 2\]"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"].update(kernel_size="3x3"), r"kernel_size must be"),
    ("__config__", lambda d: d["model"]["layers"][4]["config"].update(units=-4), r"layer 4 \(Dense\): units must be"),
    ("__config__", lambda d: d["model"].update(input_shape=[8, 8, 3, 1, 1]), r"the model: input_shape must be"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"].update(activation="swish9"), r"unknown activation 'swish9'"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"].update(padding=7), r"padding must be 'valid' or 'same'"),
    ("__config__", lambda d: d["model"]["layers"][0].update(class_name="Conv3D"), r"unknown layer class 'Conv3D'"),
    ("__config__", lambda d: d["model"]["layers"].insert(0, {"class_name": "ZeroPadding2D", "config": {
        "padding": [[1, 1], [2, 10**9]]}}), r"layer 0 \(ZeroPadding2D\): padding must be 'valid' or 'same', or "
                                            r"\(ZeroPadding2D\) an int, 2 ints or 2 pairs of ints in \[0, 16777216\], "
                                            r"got \[\[1, 1\], \[2, 1000000000\]\]"),
    ("__config__", lambda d: d["model"]["layers"].insert(0, {"class_name": "ZeroPadding2D", "config": {
        "padding": [[1, True], -1]}}), r"layer 0 \(ZeroPadding2D\): padding must be"),
    ("__config__", lambda d: d["model"]["layers"].insert(0, {"class_name": "ZeroPadding2D", "config": {
        "padding": "same"}}), r"ZeroPadding2D padding must be an int, .* got 'same'"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"].update(groups=2),
     r"TypeError: Conv2D got unexpected argument\(s\): \['groups'\]"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"]["kernel_initializer"].update(class_name="Evil"),
     r"unknown initializer in config"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"].update(
        kernel_regularizer={"class_name": "L2", "config": {"l2": "x"}}), r"l2 must be a number >= 0, got 'x'"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"].update(
        kernel_regularizer={"class_name": "Evil", "config": {}}), r"unknown regularizer in config"),
    ("__config__", lambda d: d["model"]["layers"].append({"class_name": "Dropout", "config": {"rate": 1.5}}),
     r"layer 6 \(Dropout\): rate must be a number in \[0, 1\), got 1.5"),
    ("__config__", lambda d: d["model"].update(seed=-1), r"the model: seed must be null or an int in \[0, 2\*\*32\)"),
    ("__config__", lambda d: d["model"]["layers"][4]["config"].update(trainable="no"), r"trainable must be true or false"),
    ("__config__", lambda d: d["extra_state"].update(dense={"draws": -3}), r"the extra state of dense: draws must be"),
    ("__config__", lambda d: d["model"]["layers"][0]["config"]["kernel_initializer"]["config"].update(scale=float("nan")),
     r"kernel_initializer must be finite numbers"),
    ("__config__", lambda d: d["compile"]["optimizer"].update(class_name="Adam9"), r"unknown optimizer in config"),
    ("__config__", lambda d: d["compile"]["optimizer"]["config"].update(beta_1="high"),
     r"beta_1 must be a number in \[0, 1\), got 'high'"),
    ("__config__", lambda d: d.pop("extra_state"), r"extra_state must be a JSON object, got None"),
])
def test_configs_are_checked_before_anything_is_built(files, member, edit, message):
    path = files[0]
    _edit_json(path, member, edit)
    with pytest.raises(ValueError, match=message) as info:
        minicnn.load_model(path)
    assert str(path) in str(info.value)


def test_an_error_inside_a_constructor_names_the_file_and_keeps_the_original(files):
    path = files[0]
    _edit_json(path, "__config__", lambda d: d["model"]["layers"][0]["config"].update(groups=2))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: cannot rebuild the model it describes: TypeError") as info:
        minicnn.load_model(path)
    assert isinstance(info.value.__cause__, TypeError)


def test_a_config_asking_for_more_weights_than_the_file_holds_allocates_nothing(files, monkeypatch):
    """filters=5000 passes the per-argument bounds, but its kernel (3, 3, 3, 5000) is more than the
    whole file holds: refused before the initializer runs."""
    path = files[0]
    _edit_json(path, "__config__", lambda d: d["model"]["layers"][0]["config"].update(filters=5000))
    made = []
    real_make = initializers.make
    monkeypatch.setattr(initializers, "make", lambda init, shape, rng: made.append(shape) or real_make(init, shape, rng))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: layer 'conv2d\w*' would create weight 'W' of shape \(3, 3, 3, 5000\), "
                                         r"more values than the file holds \(3604 left for it\)"):
        minicnn.load_model(path)
    assert made == []


def test_a_weights_file_cannot_size_an_unbuilt_model(files):
    """load_weights builds an unbuilt model for the file's input shape: a huge one is refused
    before the Dense kernel it would imply is allocated."""
    path = files[1]
    _edit_json(path, "__minicnn__", lambda d: d.update(input_shape=[8000, 8000, 3]))
    model = minicnn.Sequential([minicnn.layers.Conv2D(8, 3, padding="same"), minicnn.layers.Flatten(),
                                minicnn.layers.Dense(4)])
    with pytest.raises(ValueError, match=r"layer 'dense\w*' would create weight 'W' of shape \(512000000, 4\)"):
        model.load_weights(path)


def test_a_missing_optimizer_slot_is_named(files):
    path = files[0]
    path.write_bytes(_zip([m for m in _members(path.read_bytes()) if m[0] != "optimizer/dense/W/m.npy"]))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: the optimizer state has no member 'optimizer/dense/W/m'"):
        minicnn.load_model(path)


@pytest.mark.parametrize("text,message", [
    (b"[" * 500 + b"]" * 500, r"member '__config__' nests JSON more than 100 levels deep"),
    (b"[" * 100000 + b"]" * 100000, r"member '__config__' is not valid JSON: RecursionError"),
    (b'{"model": ' + b"7" * 5000 + b"}", r"member '__config__' is not valid JSON: ValueError: Exceeds the limit"),
    (b'{"model": \xff}', r"member '__config__' is not valid JSON: UnicodeDecodeError"),
])
def test_json_python_should_not_hold_is_refused(files, text, message):
    path = files[0]
    _rewrite(path, "__config__", lambda raw: _npy(np.frombuffer(text, np.uint8)))
    with pytest.raises(ValueError, match=message):
        minicnn.load_model(path)


def test_unchanged_files_still_load(files):
    model = minicnn.load_model(files[0])
    assert model.optimizer.iterations == 1
    _load_weights(files[1])


# ---- a functional Model's file: the same rules, and its calls checked ----------------------------------------
@pytest.fixture
def functional_file(tmp_path):
    from test_functional import _two_branch
    model = _two_branch()
    model.compile("adam", "categorical_crossentropy")
    model.save(tmp_path / "f.minicnn")
    return tmp_path / "f.minicnn"


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["model"]["nodes"][2].__setitem__(1, [5]), r"the model, node 2 must be \[a layer index < \d+, "
                                                            r"\[positions before 2, -1 for the input\], true or false\]"),
    (lambda d: d["model"]["nodes"][0].__setitem__(0, 99), r"the model, node 0 must be \[a layer index"),
    (lambda d: d["model"].update(nodes=[]), r"the model: nodes must be a list of calls"),
    (lambda d: d["model"]["layers"][1]["config"].update(filters=-4), r"the model, layer 1 \(Conv2D\): filters must be"),
    (lambda d: d["model"]["layers"][0]["config"].update(shape=[6, 6, 3, 1]), r"layer 0 \(InputLayer\): shape must be"),
])
def test_functional_model_files_are_checked(functional_file, edit, message):
    _edit_json(functional_file, "__config__", edit)
    with pytest.raises(ValueError, match=message):
        minicnn.load_model(functional_file)


def test_functional_model_files_still_load(functional_file):
    assert isinstance(minicnn.load_model(functional_file), minicnn.Model)
