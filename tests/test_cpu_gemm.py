"""cpu_gemm: the register-blocked GEMM and the parallel matmul built on it, against numpy.matmul.

The micro-kernel is LLVM vector code; these tests pin its meaning, C (+)= A @ B, on every path
the kernels take: strided and transposed operands, ragged edges in M and N, accumulation, the
packed A (transposed) and packed B (big, or transposed) paths, float32 and float64.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from minicnn.kernels import cpu_gemm
from minicnn.kernels.cpu_gemm import KC, MR, NR, VW, gemm, matmul

TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _close(got, expected, dtype):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL[dtype] * scale * 10)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3 * MR + 1), st.integers(1, 4), st.integers(1, KC + 50), st.booleans(), st.booleans(),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
def test_gemm_against_matmul(M, n_vectors, K, transposed_a, accumulate, dtype, seed):
    """C (+)= A @ B with A read row-major or transposed (packed), M any, N a multiple of VW, K across
    the KC blocking, padding around every operand that must stay untouched."""
    rng = np.random.default_rng(seed)
    N = n_vectors * VW
    A = rng.standard_normal((M, K)).astype(dtype)
    store = np.ascontiguousarray(A.T) if transposed_a else A          # the array gemm reads A from
    sam, sak = (1, M) if transposed_a else (K, 1)
    B = np.zeros((K, N + 5), dtype)                                   # rows of B: stride N + 5
    B[:, :N] = rng.standard_normal((K, N))
    C = np.full((M, N + 3), 7.0, dtype)                               # column N..N+2 must stay 7
    C[:, :N] = rng.standard_normal((M, N))
    before = C.copy()
    gemm(store, 0, sam, sak, B, 0, N + 5, C, 0, N + 3, M, N, K, accumulate)
    expected = A.astype(np.float64) @ B[:, :N] + (before[:, :N] if accumulate else 0)
    _close(C[:, :N], expected, dtype)
    np.testing.assert_array_equal(C[:, N:], before[:, N:])


def test_gemm_offsets_address_inside_bigger_arrays(rng):
    """a_off, b_off, c_off select a block inside larger arrays, as the conv kernels use them."""
    big_a = rng.standard_normal((40, 30)).astype(np.float32)
    big_b = rng.standard_normal((30, 4 * VW)).astype(np.float32)
    big_c = np.zeros((50, 4 * VW), np.float32)
    gemm(big_a, 5 * 30 + 2, 30, 1, big_b, 2 * 4 * VW + VW, 4 * VW, big_c, 3 * 4 * VW + VW, 4 * VW, 13, 2 * VW, 20, False)
    expected = big_a[5:18, 2:22] @ big_b[2:22, VW:3 * VW]
    _close(big_c[3:16, VW:3 * VW], expected, np.float32)
    assert not big_c[:3].any() and not big_c[16:].any()


def _layouts(x, which):
    return {"C": x, "F": np.asfortranarray(x), "strided": np.repeat(x, 2, axis=1)[:, ::2]}[which]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.integers(1, 70), st.sampled_from(["C", "F", "strided"]),
       st.sampled_from(["C", "F", "strided"]), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
def test_matmul_any_layout(M, K, N, layout_a, layout_b, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
    expected = a.astype(np.float64) @ b
    _close(matmul(_layouts(a, layout_a), _layouts(b, layout_b)), expected, dtype)
    out = np.empty((N, M), dtype).T                                   # an output with column stride
    assert matmul(a, _layouts(b, layout_b), out=out) is out
    _close(out, expected, dtype)


@pytest.mark.parametrize("shape", [(32, 2048, 1024), (2048, 32, 1024), (300, 800, 37), (5, 3000, 700)])
@pytest.mark.parametrize("transposed_b", [False, True])
def test_matmul_big_operands(shape, transposed_b, rng):
    """Sizes above SMALL run gemm on every thread (not numpy.matmul), with B packed when it is big
    or transposed, and the transposed product out^T = b^T @ a^T for a big transposed b."""
    M, K, N = shape
    assert M * K * N >= cpu_gemm.SMALL
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32).T if transposed_b else rng.standard_normal((K, N)).astype(np.float32)
    _close(matmul(a, b), a.astype(np.float64) @ b, np.float32)


def test_matmul_leaves_what_it_cannot_take_to_numpy(rng):
    """Integer or mixed dtypes, and 1-D operands, keep numpy.matmul's meaning (and its errors)."""
    a, b = rng.integers(0, 5, (3, 4)), rng.integers(0, 5, (4, 2))
    np.testing.assert_array_equal(matmul(a, b), a @ b)
    v = rng.standard_normal(4).astype(np.float32)
    np.testing.assert_allclose(matmul(a.astype(np.float32), v), a.astype(np.float32) @ v, rtol=1e-6)
    with pytest.raises(ValueError):
        matmul(np.ones((3, 4), np.float32), np.ones((5, 2), np.float32))


def test_matmul_is_repeatable(rng):
    """The same product twice gives the same bits (fixed blocking, fixed thread split)."""
    a, b = rng.standard_normal((500, 700)).astype(np.float32), rng.standard_normal((700, 90)).astype(np.float32)
    np.testing.assert_array_equal(matmul(a, b), matmul(a, b))


def test_register_block_fits_the_vector_width():
    """MR rows x NR columns of accumulators: 2*MR vector registers (24 of AVX-512's 32, 12 of AVX2's 16)."""
    assert NR == 2 * VW and VW in (8, 16) and MR == (12 if VW == 16 else 6)


def test_matmul_shape_errors_are_numpys():
    with pytest.raises(ValueError):
        matmul(np.ones((300, 400), np.float32), np.ones((500, 300), np.float32))
    with pytest.raises(ValueError):
        matmul(np.ones((300, 400), np.float32), np.ones((400, 300), np.float32), out=np.empty((300, 299), np.float32))


@pytest.mark.parametrize("N", [VW, NR, 3 * VW, 5 * NR])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_with_b_packed_in_strips(N, dtype, rng):
    """pack_strips + gemm_packed (a layer's weights packed once, then used by every tile)."""
    M, K = 29, KC + 7
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    C = np.zeros((M, N), dtype)
    strips = cpu_gemm.pack_strips(B)
    assert strips.shape == (-(-N // NR), K, NR)

    @njit
    def run(A, strips, C):
        cpu_gemm.gemm_packed(A, 0, A.shape[1], 1, strips, C, 0, C.shape[1], C.shape[0], C.shape[1], A.shape[1], False)
    run(A, strips, C)
    _close(C, A.astype(np.float64) @ B, dtype)


@njit(cache=True)
def _strips_ki(flat, B, C, M, N, K, KI, sam, sai):
    size = flat.itemsize
    for s0 in range(0, N, NR):
        cpu_gemm._strip(flat.dtype, size, M, s0 + NR <= N, flat.ctypes.data, MR * sam * size, sam, 1,
                        B.ctypes.data + s0 * size, N, C.ctypes.data + s0 * size, N, K, False, KI, sai)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2 * MR + 3), st.integers(1, 2), st.integers(1, 12), st.integers(1, 5), st.integers(0, 9),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
def test_strip_sums_ki_shifted_products(M, n_vectors, K, KI, gap, dtype, seed):
    """_strip with ki > 1 (the micro-kernel's KI): C = sum_i A_i @ B[i*K:(i+1)*K], A_i the same
    strided view moved on by sai elements each time, as the stride-1 convolution reads its kernel
    rows (here views of one flat array whose rows overlap, like an image's windows)."""
    rng = np.random.default_rng(seed)
    N, sam = n_vectors * VW, 3                                         # rows 3 apart, K long: they overlap
    sai = sam * M + gap
    flat = rng.standard_normal(sai * KI + sam * M + K).astype(dtype)
    B = rng.standard_normal((KI * K, N)).astype(dtype)
    C = np.full((M, N), np.nan, dtype)
    _strips_ki(flat, B, C, M, N, K, KI, sam, sai)
    expected = np.zeros((M, N))
    for i in range(KI):
        view = np.lib.stride_tricks.as_strided(flat[i * sai:], (M, K), (sam * flat.itemsize, flat.itemsize))
        expected += view.astype(np.float64) @ B[i * K:(i + 1) * K]
    _close(C, expected, dtype)
