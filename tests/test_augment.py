"""Augmentation (flips, reflect-padded shifts, keyed randomness) and test-time augmentation."""
import numpy as np
import pytest

from minicnn import augment, backend, optimizers
from minicnn.kernels import reference
from minicnn.layers import Activation, Conv2D, Dense, Flatten
from minicnn.model import Sequential


def test_uniforms_are_the_dropout_stream():
    u = augment.uniforms(1000, 7, 3)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.05
    np.testing.assert_array_equal(u >= 0.3, reference.dropout_mask((1000,), 7, 3, 0.3, np.float32) > 0)


def test_shift_mirrors_the_border():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    s = augment.shift(x, 1, 0)[0, :, :, 0]
    np.testing.assert_array_equal(s[1:], x[0, :3, :, 0])          # moved down by one row
    np.testing.assert_array_equal(s[0], x[0, 1, :, 0])             # reflect: the border row is mirrored
    np.testing.assert_array_equal(augment.shift(x, 0, 0), x)


def test_flip_translate_gives_flipped_shifted_copies(rng):
    x = rng.standard_normal((64, 6, 5, 2)).astype(np.float32)
    out = augment.flip_translate(x, pad=2, seed=1, counter=4)
    assert out.shape == x.shape
    found_flips = 0
    for n in range(len(x)):
        matches = [(f, dy, dx) for f in (False, True) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(out[n], augment.shift((augment.flip(x[n:n + 1]) if f else x[n:n + 1]), dy, dx)[0])]
        assert matches, f"image {n} is not a flipped/shifted copy"
        found_flips += matches[0][0]
    assert 16 < found_flips < 48                                    # about half mirrored
    np.testing.assert_array_equal(out, augment.flip_translate(x, pad=2, seed=1, counter=4))
    assert not np.array_equal(out, augment.flip_translate(x, pad=2, seed=1, counter=5))
    np.testing.assert_array_equal(augment.flip_translate(x, pad=0, flips=False), x)


def test_alternating_flips():
    a, b, c = (augment.alternating_flips(100, e, seed=3) for e in (0, 1, 2))
    assert 30 < a.sum() < 70
    np.testing.assert_array_equal(b, ~a)
    np.testing.assert_array_equal(c, a)


def test_predict_tta_is_the_weighted_average(rng):
    model = Sequential([Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)), Flatten(),
                        Dense(4, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    x = rng.random((5, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(augment.predict_tta(model, x, flips=False, translate=False), model.predict(x))
    both = lambda im: (model.predict(im) + model.predict(augment.flip(im))) / 2     # noqa: E731
    expected = 0.5 * both(x) + 0.25 * both(augment.shift(x, -1, -1)) + 0.25 * both(augment.shift(x, 1, 1))
    out = augment.predict_tta(model, x)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.shape == (5, 4) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_predict_tta_averages_logits(rng):
    """average='logits': softmax of the weighted mean of the pre-softmax outputs (computed from the
    model's own logits here: the same layers without the softmax)."""
    def layers():
        return [Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)), Flatten(), Dense(4)]
    model = Sequential(layers() + [Activation("softmax")])
    logits_model = Sequential(layers())
    model.build((6, 6, 2))
    logits_model.build((6, 6, 2))
    logits_model.set_weights(model.get_weights())
    x = rng.random((5, 6, 6, 2)).astype(np.float32)
    z = lambda im: (logits_model.predict(im) + logits_model.predict(augment.flip(im))) / 2     # noqa: E731
    mean = 0.5 * z(x) + 0.25 * z(augment.shift(x, -1, -1)) + 0.25 * z(augment.shift(x, 1, 1))
    expected = np.exp(mean) / np.exp(mean).sum(axis=1, keepdims=True)
    out = augment.predict_tta(model, x, average="logits")
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert not np.allclose(out, augment.predict_tta(model, x), rtol=1e-4)
    with pytest.raises(ValueError, match="softmax probabilities"):
        augment.predict_tta(logits_model, x, average="logits")
    with pytest.raises(ValueError, match="'probabilities' or 'logits'"):
        augment.predict_tta(model, x, average="geometric")


def _is_flipped_shifted_copy(out, x, pad):
    """For each image: (flipped?, dy, dx) of the candidate it equals, or None."""
    found = []
    for n in range(len(x)):
        matches = [(f, dy, dx) for f in (False, True) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
                   if np.array_equal(out[n], augment.shift(augment.flip(x[n:n + 1]) if f else x[n:n + 1], dy, dx)[0])]
        found.append(matches[0] if matches else None)
    return found


def test_flip_translate_epochs(rng):
    """Whole-set augmentation: flipped/shifted copies, keyed by (seed, epoch), independent of the
    chunk size, dtype kept (uint8 stays uint8); alternating flips alternate."""
    x = (rng.random((40, 7, 6, 3)) * 255).astype(np.uint8)
    aug = augment.FlipTranslate(pad=2, flips="random", seed=5, chunk=7)
    out = aug(x, 3)
    assert out.dtype == np.uint8 and out.shape == x.shape
    found = _is_flipped_shifted_copy(out, x, 2)
    assert all(f is not None for f in found)
    assert len({(dy, dx) for _, dy, dx in found}) > 5                       # the offsets vary
    np.testing.assert_array_equal(out, augment.FlipTranslate(pad=2, seed=5, chunk=1000)(x, 3))
    assert not np.array_equal(out, aug(x, 4))
    alt = augment.FlipTranslate(pad=0, flips="alternating", seed=1)
    e0, e1 = alt(x, 0), alt(x, 1)
    flipped0 = np.array([f for f, _, _ in _is_flipped_shifted_copy(e0, x, 0)])
    flipped1 = np.array([f for f, _, _ in _is_flipped_shifted_copy(e1, x, 0)])
    np.testing.assert_array_equal(flipped0, augment.alternating_flips(40, 0, seed=1))
    np.testing.assert_array_equal(flipped1, ~flipped0)
    np.testing.assert_array_equal(augment.FlipTranslate(pad=0, flips=None)(x, 0), x)
    for bad in ({"pad": -1}, {"flips": "sometimes"}, {"chunk": 0}):
        with pytest.raises(ValueError):
            augment.FlipTranslate(**bad)
    with pytest.raises(ValueError, match="larger than the padding"):
        augment.FlipTranslate(pad=7)(x, 0)


def test_fit_applies_the_augmentation_every_epoch(rng):
    x = rng.random((48, 6, 6, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 48)]
    calls = []

    def record(images, epoch):
        calls.append((epoch, images is x))
        return augment.FlipTranslate(pad=1)(images, epoch)

    model = Sequential([Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)), Flatten(),
                        Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=3, initial_epoch=1, verbose=0, augment=record)
    assert calls == [(1, True), (2, True)]                 # once per epoch, on the original data
    with pytest.raises(TypeError, match="augment must be a callable"):
        model.fit(x, y, epochs=1, verbose=0, augment="flip")
    with pytest.raises(ValueError, match="must return an array like its input"):
        model.fit(x, y, epochs=1, verbose=0, augment=lambda images, epoch: images[:, :4])


def test_training_with_augmentation_differs_and_learns(rng):
    """The augmented run sees other images (other weights) and still learns the task."""
    labels = rng.integers(0, 2, 200)
    x = rng.random((200, 8, 8, 1)).astype(np.float32) * 0.3
    x[labels == 1, 2:6, 2:6] += 0.7                        # a bright square: shift- and flip-invariant
    y = np.eye(2, dtype=np.float32)[labels]
    weights = {}
    for aug in (None, augment.FlipTranslate(pad=1)):
        backend.set_seed(3)                                # the same initial weights and batches
        model = Sequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 1)), Flatten(),
                            Dense(2, activation="softmax")])
        model.compile(optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=20, epochs=8, verbose=0, augment=aug)
        weights[aug is None] = model.get_weights()
        assert model.evaluate(x, y, verbose=0)[1] > 0.9
    assert not np.allclose(weights[True][0], weights[False][0])
