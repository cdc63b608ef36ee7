"""Augmentation (flips, reflect-padded shifts, keyed randomness) and test-time augmentation."""
import numpy as np

from minicnn import augment
from minicnn.kernels import reference
from minicnn.layers import Conv2D, Dense, Flatten
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
