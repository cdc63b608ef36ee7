"""Saves that fail midway (a full disk, a read-only folder) and saves that race: the file on disk is
always one complete version, no temporary file is left, and ModelCheckpoint reports a failed save
and lets training go on. (tests/test_atomic_saves.py kills the saving process itself.)"""
import errno
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import minicnn
from minicnn import saving
from minicnn.callbacks import ModelCheckpoint

from test_model import small_model, toy_data

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _half_written(f, **arrays):
    """A write (np.savez's, or atomic_write's write function) that gets 4 kB out, then finds the disk full."""
    f.write(b"PK\x03\x04" + b"\0" * 4096)
    _disk_full()


@pytest.mark.parametrize("where", ["write", "fsync", "rename"])
@pytest.mark.parametrize("save", ["save_weights", "save"])
def test_a_save_failing_midway_leaves_the_previous_file(tmp_path, monkeypatch, where, save):
    """ENOSPC raised while the archive is written, when it is flushed to disk, or at the rename."""
    model = small_model()
    path = tmp_path / ("w.weights.npz" if save == "save_weights" else "m.minicnn")
    getattr(model, save)(path)
    before = path.read_bytes()
    model.set_weights([w + 1 for w in model.get_weights()])
    if where == "write":
        monkeypatch.setattr(np, "savez", _half_written)
    else:
        monkeypatch.setattr(saving.os, {"fsync": "fsync", "rename": "replace"}[where], _disk_full)
    with pytest.raises(OSError) as info:
        getattr(model, save)(path)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before                                  # byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]    # no temporary file left
    if save == "save":
        minicnn.load_model(path)


def test_a_read_only_folder_leaves_the_previous_file(tmp_path, monkeypatch):
    """The folder refuses new files. Running as root (CI containers), chmod 0o555 does not stop
    writes, so the refusal is simulated there: tempfile.mkstemp raises the PermissionError the
    kernel would. As another user the folder is really made read-only. Either way the test runs."""
    model = small_model()
    path = tmp_path / "w.weights.npz"
    model.save_weights(path)
    before = path.read_bytes()
    if os.geteuid() == 0:
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path))
        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            model.save_weights(path)
    finally:
        tmp_path.chmod(0o755)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_model_checkpoint_reports_a_failed_save_and_training_goes_on(tmp_path, monkeypatch):
    """The disk is full at epoch 2 only: a warning names the epoch, the file and the error; epoch 3
    is trained and saved."""
    x, y, _ = toy_data(32)
    model = small_model()
    path = tmp_path / "ckpt.weights.npz"
    real_atomic_write, calls = saving.atomic_write, []

    def full_on_the_second_save(target, write):
        calls.append(target)
        return real_atomic_write(target, _half_written if len(calls) == 2 else write)

    monkeypatch.setattr(saving, "atomic_write", full_on_the_second_save)
    with pytest.warns(UserWarning, match=rf"ModelCheckpoint could not save epoch 2 to {path}: OSError: "
                                         r"\[Errno 28\] No space left on device; training goes on"):
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0,
                            callbacks=[ModelCheckpoint(path, save_weights_only=True)])
    assert history.epoch == [0, 1, 2]
    saved = small_model()
    saved.load_weights(path)                                             # epoch 3's weights
    for a, b in zip(saved.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_model_checkpoint_best_only_retries_after_a_failed_save(tmp_path, monkeypatch):
    """A best-only save that failed does not count as the best: the next improvement on the file's
    value is saved."""
    model = small_model()
    ckpt = ModelCheckpoint(tmp_path / "best.weights.npz", monitor="loss", save_best_only=True, save_weights_only=True)
    ckpt.set_model(model)
    ckpt.on_epoch_end(0, {"loss": 1.0})
    monkeypatch.setattr(saving.os, "fsync", _disk_full)
    with pytest.warns(UserWarning, match="could not save epoch 2"):
        ckpt.on_epoch_end(1, {"loss": 0.5})
    monkeypatch.undo()
    assert ckpt.best == 1.0
    ckpt.on_epoch_end(2, {"loss": 0.8})                                 # worse than 0.5, better than the file's
    assert ckpt.best == 0.8


# Two processes save different models to one path, again and again; each model's weights are all
# one value (0.25 or 0.75), so a mix of the two files would show both values.
WRITER = r"""
import sys, numpy as np, minicnn
from minicnn.layers import Conv2D, Dense, Flatten, Input
value, path, rounds = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
model = minicnn.Sequential([Input(shape=(16, 16, 8)), Conv2D(64, 3), Flatten(), Dense(64), Dense(10)], name="m")
model.compile("adam", "categorical_crossentropy")
model.set_weights([np.full(w.shape, value, np.float32) for w in model.get_weights()])
for _ in range(rounds):
    model.save(path)
"""


def _one_model(path):
    values = {float(v) for w in minicnn.load_model(path).get_weights() for v in np.unique(w)}
    assert values in ({0.25}, {0.75}), f"a mix of the two saves: {values}"


def test_two_processes_saving_to_one_path_each_leave_a_complete_file(tmp_path):
    path = tmp_path / "shared.minicnn"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, value, str(path), "40"], env=env, stderr=subprocess.PIPE)
               for value in ("0.25", "0.75")]
    loads = 0
    while any(w.poll() is None for w in writers):                       # read while both write
        if path.exists():
            _one_model(path)
            loads += 1
        time.sleep(0.01)
    for w in writers:
        assert w.wait() == 0, w.stderr.read().decode()[-2000:]
    _one_model(path)
    assert loads > 0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
