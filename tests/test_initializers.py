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


def test_patch_whitening_standardize_measures_eps_on_standardized_channels(rng):
    """standardize=True: the kernel on the raw images equals the plain kernel computed on images whose
    channels are divided by their deviation (rescaled back), so the outputs do not depend on the
    images' scale; without it a tiny image scale makes eps dominate."""
    from minicnn.initializers import patch_whitening
    base = rng.standard_normal((30, 8, 8, 3)) * np.array([0.2, 1.0, 3.0])
    images = base + 0.7 * np.roll(base, 1, axis=1)
    kernel, bias = patch_whitening(images, 2, eps=1e-2, center=True, standardize=True)
    s = np.sqrt(np.diag(np.cov(_patches(images), rowvar=False)).reshape(4, 3).mean(axis=0))
    plain, plain_bias = patch_whitening(images / s, 2, eps=1e-2, center=True)
    np.testing.assert_allclose(kernel, plain / s[None, None, :, None], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bias, plain_bias, rtol=1e-4, atol=1e-5)
    small, small_bias = patch_whitening(images / 100, 2, eps=1e-2, center=True, standardize=True)
    np.testing.assert_allclose(small / 100, kernel, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(small_bias, bias, rtol=1e-4, atol=1e-5)
    unscaled = patch_whitening(images / 100, 2, eps=1e-2)     # eps now swamps every direction
    assert np.abs(unscaled / 100).max() < 0.1 * np.abs(kernel).max()
    with pytest.raises(ValueError, match="every channel to vary"):
        patch_whitening(np.concatenate([images[..., :2], np.ones_like(images[..., :1])], axis=-1), standardize=True)


def _patches(images, size=2):
    """Every size x size window of images (N, H, W, C) as a row in (kh, kw, c) order, by loops."""
    N, H, W, C = images.shape
    return np.array([images[n, i:i + size, j:j + size, :].reshape(-1)
                     for n in range(N) for i in range(H - size + 1) for j in range(W - size + 1)])


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
