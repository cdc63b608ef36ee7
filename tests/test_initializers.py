"""Initializers: Keras's fans and limits, and the statistics of the draws."""
import numpy as np
import pytest

from minicnn import initializers


def test_compute_fans():
    assert initializers.compute_fans((3, 3, 16, 32)) == (144, 288)
    assert initializers.compute_fans((512, 256)) == (512, 256)


def test_glorot_uniform_limit():
    rng = np.random.default_rng(0)
    w = initializers.get("glorot_uniform")((3, 3, 64, 128), rng)
    limit = np.sqrt(6 / (9 * 64 + 9 * 128))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert abs(w.std() - limit / np.sqrt(3)) < 0.01 * limit


@pytest.mark.parametrize("name,std", [("he_normal", lambda fi, fo: np.sqrt(2 / fi)),
                                      ("glorot_normal", lambda fi, fo: np.sqrt(2 / (fi + fo))),
                                      ("lecun_normal", lambda fi, fo: np.sqrt(1 / fi))])
def test_truncated_normal_std(name, std):
    w = initializers.get(name)((400, 300), np.random.default_rng(1))
    expected = std(400, 300)
    assert abs(w.std() - expected) < 0.02 * expected
    assert np.abs(w).max() <= 2 * expected / 0.87962566 + 1e-12


def test_constants_and_unknown():
    rng = np.random.default_rng(0)
    assert (initializers.get("zeros")((3,), rng) == 0).all() and (initializers.get("ones")((3,), rng) == 1).all()
    assert (initializers.Constant(0.5)((2,), rng) == 0.5).all()
    with pytest.raises(ValueError, match="unknown initializer"):
        initializers.get("orthogonal_ish")


def test_serialize_round_trip():
    for init in (initializers.get("he_normal"), initializers.RandomNormal(0.1, 0.2), initializers.Constant(3)):
        again = initializers.deserialize(initializers.serialize(init))
        assert type(again) is type(init) and again.get_config() == init.get_config()


def test_patch_whitening_gives_unit_covariance(rng):
    from minicnn.initializers import patch_whitening
    from minicnn.layers import Conv2D
    base = rng.standard_normal((40, 9, 9, 3))
    images = base + 0.5 * np.roll(base, 1, axis=2)             # correlated neighbours and channels
    kernel = patch_whitening(images, size=2, eps=1e-9)
    assert kernel.shape == (2, 2, 3, 24)
    conv = Conv2D(24, 2, use_bias=False, trainable=False)
    conv.build(images.shape[1:])
    conv.set_weights([kernel])
    out = np.asarray(conv.forward(images.astype(np.float32))).reshape(-1, 24).astype(np.float64)
    cov = np.cov(out[:, :12], rowvar=False)
    np.testing.assert_allclose(cov, np.eye(12), atol=1e-3)
    np.testing.assert_allclose(out[:, 12:], -out[:, :12], atol=1e-5)


def test_dirac_filters_copy_their_channel(rng):
    """The first min(C_in, F) filters pass their input channel through unchanged (a 'same' conv
    with them is the identity on those channels); the others come from the base initializer."""
    from minicnn.layers import Conv2D
    init = initializers.Dirac(initializers.VarianceScaling(1 / 3, "fan_in", "uniform"))
    kernel = init((3, 3, 4, 6), np.random.default_rng(0))
    layer = Conv2D(6, 3, padding="same", use_bias=False, kernel_initializer=init, input_shape=(5, 5, 4))
    layer.build((5, 5, 4))
    x = rng.standard_normal((2, 5, 5, 4)).astype(np.float32)
    y = layer.forward(x)
    np.testing.assert_allclose(y[..., :4], x, atol=1e-6)
    assert np.abs(kernel[..., 4:]).max() > 0 and np.abs(kernel[..., 4:]).max() <= np.sqrt(1 / 36) + 1e-12
    assert np.count_nonzero(kernel[..., :4]) == 4
    again = initializers.deserialize(initializers.serialize(init))
    np.testing.assert_array_equal(again((3, 3, 4, 6), np.random.default_rng(0)), kernel)
    with pytest.raises(ValueError, match="Conv2D kernels"):
        init((4, 6), np.random.default_rng(0))
