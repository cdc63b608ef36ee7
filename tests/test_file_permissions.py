"""Files minicnn writes get the permissions any program's new files get (0666 less the umask), and
a file it replaces keeps its own: the atomic write's temporary file (mkstemp: 0600) does not show."""
import errno
import json
import os
import stat

import numpy as np
import pytest

import minicnn
from minicnn import plot
from minicnn.callbacks import CSVLogger, ModelCheckpoint
from minicnn.utils import write_history, write_json

from test_model import small_model, toy_data


@pytest.fixture
def umask():
    """Set the process's umask for one test; the old one comes back after it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_everything(folder):
    """Every kind of file minicnn writes: weights, a model, a checkpoint, a CSV log, history JSON/CSV,
    run.json, a plot. Returns their paths."""
    x, y, _ = toy_data(16)
    model = small_model()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[
        ModelCheckpoint(folder / "ckpt.minicnn"), CSVLogger(folder / "log.csv")])
    model.save_weights(folder / "w.weights.npz")
    model.save(folder / "m.minicnn")
    write_history(history, folder)
    write_json(folder / "run.json", {"ok": True})
    plot.history_curves(history.history, path=folder / "curves.png")
    return sorted(folder.iterdir())


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_get_0666_less_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    paths = _write_everything(tmp_path)
    assert {p.name for p in paths} >= {"ckpt.minicnn", "log.csv", "w.weights.npz", "m.minicnn", "history.json",
                                       "history.csv", "run.json", "curves.png"}
    assert {p.name: oct(_mode(p)) for p in paths} == {p.name: oct(expected) for p in paths}


def test_a_replaced_file_keeps_its_permissions(tmp_path, umask):
    path = tmp_path / "w.weights.npz"
    model = small_model()
    model.save_weights(path)
    path.chmod(0o600)                        # the owner made it private
    model.save_weights(path)
    assert _mode(path) == 0o600
    path.chmod(0o640)
    write_json(path, {"now": "json"})
    assert _mode(path) == 0o640 and json.loads(path.read_text()) == {"now": "json"}


def test_the_umask_is_read_without_changing_it(umask):
    umask(0o027)
    assert minicnn.saving._umask() == 0o027
    assert os.umask(0o027) == 0o027          # still set
    np.testing.assert_equal(minicnn.saving._file_mode("/nonexistent/file"), 0o640)


def test_a_filesystem_without_permissions_does_not_stop_a_save(tmp_path, monkeypatch):
    """vfat and some network mounts refuse chmod (EPERM): the file is saved all the same."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
    monkeypatch.setattr(minicnn.saving.os, "chmod", refuse)
    model = small_model()
    model.save_weights(tmp_path / "w.weights.npz")
    monkeypatch.undo()
    small_model().load_weights(tmp_path / "w.weights.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["w.weights.npz"]
