"""Weight and model files: round trips, optimizer state, mismatches and broken files."""
import numpy as np
import pytest

import minicnn
from minicnn import zoo
from minicnn.layers import BatchNormalization, Conv2D, Dense, Flatten, Input

from test_model import small_model, toy_data


def test_weights_round_trip_identical_predictions(tmp_path):
    x, y, _ = toy_data(32)
    model = small_model()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.weights.npz"
    model.save_weights(path)
    other = small_model()
    assert not np.array_equal(other.predict(x), model.predict(x))
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


def test_model_round_trip_continues_training_identically(tmp_path):
    x, y, _ = toy_data(64)
    model = small_model(optimizer=minicnn.optimizers.RMSprop(lr=1e-3, decay=1e-3, momentum=0.5))
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.minicnn"
    model.save(path)
    loaded = minicnn.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert isinstance(loaded.optimizer, minicnn.optimizers.RMSprop) and loaded.optimizer.momentum == 0.5
    model.fit(x, y, epochs=2, initial_epoch=1, verbose=0)
    loaded.fit(x, y, epochs=2, initial_epoch=1, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_batchnorm_and_dropout_state_round_trip(tmp_path):
    model = zoo.get("tutorial003_lenet5_bn").build()
    x = np.random.default_rng(0).random((16, 32, 32, 1)).astype(np.float32)
    y = minicnn.utils.to_categorical(np.arange(16) % 10, 10)
    model.fit(x, y, epochs=1, verbose=0, batch_size=8)
    model.save(tmp_path / "lenet.minicnn")
    loaded = minicnn.load_model(tmp_path / "lenet.minicnn")
    np.testing.assert_array_equal(loaded.layers[1].state["moving_mean"], model.layers[1].state["moving_mean"])
    assert loaded.layers[-2].draws == model.layers[-2].draws == 2


def test_wrong_architecture_lists_the_differing_layers(tmp_path):
    model = small_model()
    model.save_weights(tmp_path / "a.npz")
    other = minicnn.Sequential([Input(shape=(8, 8, 3)), Conv2D(8, 3, padding="same"), Flatten(), Dense(4)])
    with pytest.raises(ValueError, match="different architecture") as info:
        other.load_weights(tmp_path / "a.npz")
    lines = str(info.value).splitlines()[1:]
    assert lines == ["  dense: file Dense {'W': (64, 32), 'b': (32,)} vs model Dense {'W': (512, 4), 'b': (4,)}",
                     "  conv2d_1 (Conv2D): in the file, not in the model",
                     "  dense_1 (Dense): in the file, not in the model"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_npz", "flip_bytes"])
def test_broken_files_give_clear_errors(tmp_path, damage):
    model = small_model()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"this is not a weights file")
    elif damage == "other_npz":
        np.savez(path.open("wb"), a=np.zeros(3))
    else:
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64]) + data[mid + 64:])
    with pytest.raises(ValueError, match="minicnn"):
        small_model().load_weights(path)


def test_load_model_from_weights_only_file(tmp_path):
    small_model().save_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="only weights"):
        minicnn.load_model(tmp_path / "w.npz")
    with pytest.raises(FileNotFoundError):
        minicnn.load_model(tmp_path / "missing.minicnn")


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    model = small_model()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]       # no temporary left behind


@pytest.mark.parametrize("name", ["m.npz", "m.keras", "m.weights.h5"])
def test_a_save_that_cannot_happen_names_the_target_and_why(tmp_path, name):
    """A folder where the file should be, a file where a folder should be, and Keras's
    overwrite=False on an existing file: each error names the path the user gave (not the
    temporary file of the atomic write), and nothing is written or left behind."""
    model = small_model()
    save = model.save_weights if name.endswith(".weights.h5") else model.save
    (tmp_path / name).mkdir()
    with pytest.raises(IsADirectoryError, match=f"cannot save to '.*{name}': it is a folder"):
        save(tmp_path / name)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile' is a file, not a folder"):
        save(tmp_path / "afile" / "sub" / name)
    (tmp_path / name).rmdir()
    save(tmp_path / name, overwrite=True)
    before = (tmp_path / name).read_bytes()
    with pytest.raises(FileExistsError, match="exists and overwrite=False"):
        save(tmp_path / name, overwrite=False)
    assert (tmp_path / name).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", name]


def test_get_set_weights_keras_order():
    layer = BatchNormalization()
    layer.build((4,))
    assert layer.weight_keys() == ["gamma", "beta", "moving_mean", "moving_variance"]
    model = small_model()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 3, 3, 8), (8,), (3, 3, 8, 16), (16,), (64, 32), (32,), (32, 4), (4,)]
    with pytest.raises(ValueError, match="expected shape"):
        model.layers[0].set_weights([np.zeros((3, 3, 3, 9)), np.zeros(8)])


def test_save_and_resume_on_every_backend(backend, tmp_path):
    """A model trained with Dropout where the backend computes, saved and loaded again: the same
    weights, the optimizer's step count and the dropout stream's counter (read from the device)."""
    from test_backend_training import small_model as dropout_model, toy_data as toy_images
    from minicnn.layers import Dropout
    x, y, _ = toy_images(128)
    model = dropout_model(dropout=0.3)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    model.save(tmp_path / "m.minicnn")
    again = minicnn.load_model(tmp_path / "m.minicnn")
    assert again.optimizer.iterations == 4
    assert [layer for layer in again.layers if isinstance(layer, Dropout)][0].draws == 4
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
