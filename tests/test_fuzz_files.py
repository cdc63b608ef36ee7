"""Fuzzing minicnn's model and weights files: a file from elsewhere is read or refused, nothing else.

One small saved model (Conv2D, BatchNormalization, MaxPooling2D, Dropout, Dense, an Adam with its
slots) and its weights file are mutated the ways a damaged or crafted file differs: flipped bytes,
truncations, edits to the JSON members, edits to the .npy headers inside the zip, members renamed,
removed, duplicated, added or deflated into zip bombs (1000 cases). A Keras .weights.h5 of the same
model gets flipped bytes and truncations (200 cases). Each case must load (and then predict) or
raise ValueError / OSError, quickly; anything else fails the test with the case's number and how
it was made. Seeded: FUZZ_SEED=<n> pytest tests/test_fuzz_files.py runs another set of cases, and
a failure message names the seed and case to rerun (_mutate(data, members, seed, case)).
"""
import io
import json
import os
import time
import traceback
import warnings
import zipfile

import numpy as np
import pytest

import minicnn
from minicnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D

SEED = int(os.environ.get("FUZZ_SEED", "20"))
CASES = 1000                    # model and weights files together
SLOWEST_CASE_S = 2.0
HUGE = [10**12, 2**63, 2**64 + 1, -1, 0, -(10**12), 10**400]
ODD = [1.5, float("nan"), float("inf"), "garbage", "", None, True, [], {}, [[[]]], {"a": 1}, [3, 3, 3], 2**31]


def _model():
    """The model every case starts from, the same bytes in any test order (names and seeds fixed)."""
    minicnn.utils.set_random_seed(0)
    model = minicnn.Sequential([Input(shape=(6, 6, 2)), Conv2D(3, 3, activation="relu", name="conv"),
                                BatchNormalization(name="bn"), MaxPooling2D(2, name="pool"),
                                Dropout(0.25, seed=1, name="drop"), Flatten(name="flat"),
                                Dense(4, activation="softmax", name="out")], name="fuzzed")
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    x = np.random.default_rng(0).random((8, 6, 6, 2), dtype=np.float32)
    model.fit(x, minicnn.utils.to_categorical(np.arange(8) % 4, 4), batch_size=4, epochs=1, verbose=0)
    return model


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(info.filename, z.read(info)) for info in z.infolist()]


def _zip(members, compression=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", compression) as z:
        warnings.simplefilter("ignore")                     # (zipfile warns of the duplicated names we write)
        for name, raw in members:
            z.writestr(str(name), raw)
    return out.getvalue()


# ---- the mutations: each returns (new bytes, a description) -------------------------------------------
def _flip_bytes(rng, data, members):
    out = bytearray(data)
    offsets = rng.integers(0, len(out), rng.integers(1, 9))
    for i in offsets:
        out[i] ^= int(rng.integers(1, 256))
    return bytes(out), f"flipped bytes at {sorted(offsets.tolist())}"


def _truncate(rng, data, members):
    cut = int(rng.integers(0, len(data)))
    return data[:cut], f"truncated to {cut} of {len(data)} bytes"


def _npy_header(rng, raw):
    """A .npy member with its header text, length field, magic or version changed."""
    length = int.from_bytes(raw[8:10], "little")
    header, body = raw[10:10 + length].decode("latin-1"), raw[10 + length:]
    descr = header.split("'descr': '")[1].split("'")[0]
    shape = header.split("'shape': ")[1].split(")")[0] + ")"
    choice = int(rng.integers(7))
    if choice == 0:
        new = rng.choice(["|O", "<c8", "<U3", "V8", "<f4", ">f4", "<f8", "|u1", "<i8", "|b1", "garbage", "", "<f16"])
        header = header.replace(f"'descr': '{descr}'", f"'descr': '{new}'")
    elif choice == 1:
        new = rng.choice(["(10000000000, 10000000000)", "(-1,)", "(0,)", "()", "(3, ", "(2, 2, 2, 2, 2, 2, 2)",
                          "(1" + "0" * 30 + ",)", "(a, b)", "(3, 3, 2, 3)", "(18,)", "(1, 1, 1)", "((3,),)"])
        header = header.replace(f"'shape': {shape}", f"'shape': {new}")
    elif choice == 2:
        header = header.replace("False", str(rng.choice(["True", "None", "1", "Fals"])))
    elif choice == 3:                                       # garbage text: numpy's tokenizer chokes on it
        header = rng.choice(["{'descr': '<f4', 'shape': (", "{", "(((", "{'descr': '<f4'}", "}\n" * 10,
                             "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': __import__('os')}"])
    elif choice == 4:
        return raw[:8] + int(rng.integers(0, 65536)).to_bytes(2, "little") + raw[10:], "length field"
    elif choice == 5:
        return raw[:6] + bytes([int(rng.integers(0, 5)), 0]) + raw[8:], "version"
    else:
        return b"\x93NUMPX" + raw[6:], "magic"
    encoded = header.encode("latin-1")
    return raw[:8] + len(encoded).to_bytes(2, "little") + encoded + body, f"header {header.strip()!r}"


def _edit_header(rng, data, members):
    i = int(rng.integers(len(members)))
    name, raw = members[i]
    raw, how = _npy_header(rng, raw)
    return _zip(members[:i] + [(name, raw)] + members[i + 1:]), f"member {name}: {how}"


def _json_paths(value, path=()):
    yield path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _json_paths(child, path + (key,))


def _edit_json(rng, data, members):
    """Change, delete or garble one value somewhere in the __config__ or __minicnn__ JSON."""
    names = [n for n, _ in members if n in ("__config__.npy", "__minicnn__.npy")]
    name = names[int(rng.integers(len(names)))]
    i = [n for n, _ in members].index(name)
    document = json.loads(np.load(io.BytesIO(members[i][1])).tobytes())
    paths = list(_json_paths(document))
    path = paths[int(rng.integers(1, len(paths)))]
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    choice = int(rng.integers(4))
    if choice == 0 and isinstance(parent, dict):
        del parent[path[-1]]
        how = f"deleted {path}"
    else:
        pool = HUGE if choice == 1 else ODD
        parent[path[-1]] = pool[int(rng.integers(len(pool)))]
        how = f"{path} = {parent[path[-1]]!r}"
    text = json.dumps(document)
    if choice == 3 and rng.random() < 0.3:
        text, how = text[:int(rng.integers(len(text)))], "JSON cut short"
    raw = io.BytesIO()
    np.save(raw, np.frombuffer(text.encode(), np.uint8))
    return _zip(members[:i] + [(name, raw.getvalue())] + members[i + 1:]), f"{name}: {how}"


def _edit_members(rng, data, members):
    """Members renamed, removed, duplicated, added, or the whole archive deflated / a zip bomb."""
    members = list(members)
    i = int(rng.integers(len(members)))
    name = members[i][0]
    choice = int(rng.integers(6))
    if choice == 0:
        members[i] = (rng.choice(["x.npy", "conv2d/W", "../evil.npy", "optimizer/extra.npy", "dense/W.npy"]), members[i][1])
        how = f"renamed {name} to {members[i][0]}"
    elif choice == 1:
        del members[i]
        how = f"removed {name}"
    elif choice == 2:
        members.append(members[i])
        how = f"duplicated {name}"
    elif choice == 3:
        members.append((f"extra{i}.npy", members[i][1]))
        how = f"added a copy of {name}"
    elif choice == 4:
        return _zip(members, zipfile.ZIP_DEFLATED), "deflated"
    else:
        bomb = io.BytesIO()
        np.save(bomb, np.zeros(2**24, np.float32))          # 64 MB of zeros, 65 kB deflated
        members[i] = (name, bomb.getvalue())
        return _zip(members, zipfile.ZIP_DEFLATED), f"{name}: a 64 MB zip bomb"
    return _zip(members), how


MUTATIONS = [_flip_bytes, _truncate, _edit_header, _edit_json, _edit_members]


def _mutate(data, members, seed, case):
    rng = np.random.default_rng([seed, case])
    mutation = MUTATIONS[case % len(MUTATIONS)]
    out, how = mutation(rng, data, members)
    return out, f"{mutation.__name__[1:]}: {how}"


def _load(kind, path, model_factory):
    if kind == "model":
        model = minicnn.load_model(path)
    else:
        model = model_factory()
        model.load_weights(path)
    model.predict(np.zeros((2,) + tuple(model.input_shape), np.float32))      # a loaded model runs


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    model = _model()
    model.save(folder / "m.minicnn")
    model.save_weights(folder / "w.weights.npz")
    return {"model": (folder / "m.minicnn").read_bytes(), "weights": (folder / "w.weights.npz").read_bytes()}


def test_mutated_files_load_or_raise_clear_errors(saved, tmp_path):
    members = {kind: _members(data) for kind, data in saved.items()}
    factories = [lambda: _model_unbuilt(), lambda: _model_built()]
    failures, slowest, outcomes = [], (0.0, None), {"loaded": 0, "ValueError": 0, "OSError": 0}
    start = time.perf_counter()
    for case in range(CASES):
        kind = "model" if case % 2 == 0 else "weights"
        data, how = _mutate(saved[kind], members[kind], SEED, case)
        path = tmp_path / f"case{case}.{'minicnn' if kind == 'model' else 'weights.npz'}"
        path.write_bytes(data)
        t0 = time.perf_counter()
        try:
            _load(kind, path, factories[case // 2 % 2])
            outcomes["loaded"] += 1
        except (ValueError, OSError) as e:
            outcomes["OSError" if isinstance(e, OSError) else "ValueError"] += 1
            if str(path) not in str(e):
                failures.append(f"case {case} ({kind}, {how}): the error does not name the file: {e}")
        except BaseException as e:                              # noqa: B036 (the point of the test)
            failures.append(f"case {case} ({kind}, {how}): {type(e).__name__}: {e}\n"
                            + "".join(traceback.format_exception(e)[-3:]))
        elapsed = time.perf_counter() - t0
        slowest = max(slowest, (elapsed, f"case {case} ({kind}, {how})"))
        path.unlink()
    total = time.perf_counter() - start
    print(f"\n{CASES} cases, seed {SEED}, {total:.1f} s: {outcomes}; slowest {slowest[0]:.3f} s, {slowest[1]}")
    assert not failures, f"seed {SEED}: {len(failures)} of {CASES} cases failed:\n" + "\n".join(failures[:20])
    assert slowest[0] < SLOWEST_CASE_S, f"seed {SEED}: {slowest[1]} took {slowest[0]:.2f} s"
    assert outcomes["ValueError"] > CASES // 2 and outcomes["loaded"] > 0, outcomes


KERAS_CASES = 200


def test_mutated_keras_weights_files_load_or_raise_clear_errors(tmp_path):
    """A Keras 3 .weights.h5 (read through h5py, keras_io) with bytes flipped or cut short: fewer
    cases, the same rule."""
    pytest.importorskip("h5py", reason="h5py (the keras extra) reads Keras weight files")
    model = _model_built()
    model.save_weights(tmp_path / "w.weights.h5")
    data, failures = (tmp_path / "w.weights.h5").read_bytes(), []
    for case in range(KERAS_CASES):
        rng = np.random.default_rng([SEED, 10**6 + case])
        mutated, how = (_flip_bytes if case % 2 else _truncate)(rng, data, None)
        path = tmp_path / f"case{case}.weights.h5"
        path.write_bytes(mutated)
        try:
            _model_built().load_weights(path)
        except (ValueError, OSError) as e:
            if str(path) not in str(e):
                failures.append(f"case {case} ({how}): the error does not name the file: {e}")
        except BaseException as e:                              # noqa: B036 (the point of the test)
            failures.append(f"case {case} ({how}): {type(e).__name__}: {e}")
        path.unlink()
    assert not failures, f"seed {SEED}: {len(failures)} of {KERAS_CASES} cases failed:\n" + "\n".join(failures[:20])


def _model_built():
    return minicnn.Sequential([Input(shape=(6, 6, 2)), Conv2D(3, 3, activation="relu"), BatchNormalization(),
                               MaxPooling2D(2), Dropout(0.25), Flatten(), Dense(4, activation="softmax")])


def _model_unbuilt():
    return minicnn.Sequential([Conv2D(3, 3, activation="relu"), BatchNormalization(), MaxPooling2D(2), Dropout(0.25),
                               Flatten(), Dense(4, activation="softmax")])
