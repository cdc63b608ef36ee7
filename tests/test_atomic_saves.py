"""SIGKILL in the middle of saving: the file on disk is always the old valid version or the new one."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minicnn

ROOT = pathlib.Path(__file__).resolve().parents[1]
KILLS = 60

# The child alternates two weight sets (all 0.25 / all 0.75) and saves forever, by one of three
# routes; the parent kills it at random moments and checks what is on disk.
CHILD = r"""
import sys, numpy as np, minicnn
from minicnn.layers import Input, Dense, Flatten, Conv2D
from minicnn.callbacks import ModelCheckpoint
route, path = sys.argv[1], sys.argv[2]
model = minicnn.Sequential([Input(shape=(16, 16, 8)), Conv2D(64, 3), Flatten(), Dense(256), Dense(10)])
model.compile("adam", "categorical_crossentropy")
ckpt = ModelCheckpoint(path, save_weights_only=False)
ckpt.set_model(model)
print("ready", flush=True)
k = 0
while True:
    value = 0.25 if k % 2 == 0 else 0.75
    model.set_weights([np.full(w.shape, value, np.float32) for w in model.get_weights()])
    if route == "save_weights":
        model.save_weights(path)
    elif route == "save":
        model.save(path)
    else:
        ckpt.on_epoch_end(k, {"loss": 1.0})
    k += 1
"""


def _check(path, route):
    """The file must load and hold one of the two complete weight sets."""
    if route == "save_weights":
        model = minicnn.Sequential([minicnn.Input(shape=(16, 16, 8)), minicnn.layers.Conv2D(64, 3),
                                    minicnn.layers.Flatten(), minicnn.layers.Dense(256), minicnn.layers.Dense(10)])
        model.build()
        model.load_weights(path)
    else:
        model = minicnn.load_model(path)
    values = {float(v) for w in model.get_weights() for v in np.unique(w)}
    assert values in ({0.25}, {0.75}), values


@pytest.mark.parametrize("route", ["save_weights", "save", "checkpoint"])
def test_sigkill_during_save_never_leaves_a_broken_file(tmp_path, route):
    path = tmp_path / ("w.weights.npz" if route == "save_weights" else "m.minicnn")
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    while kills < KILLS // 3 + 1:
        child = subprocess.Popen([sys.executable, "-c", CHILD, route, str(path)], stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.15))                    # somewhere inside a save (each takes ms)
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
        if path.exists():
            _check(path, route)
    assert path.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != path.name]
    assert all(name.endswith(".tmp") for name in leftovers)  # only abandoned temporaries, never read
