"""A small direct cuBLAS wrapper (ctypes) whose GEMMs can be captured into a CUDA graph.

Why not ``cupy.matmul``: CuPy refuses every cuBLAS call while a stream is capturing
(``NotImplementedError: calling cuBLAS API during stream capture is currently unsupported``),
although cuBLAS itself supports capture. So minicnn keeps its own cuBLAS handle, with
  - its own workspace (``cublasSetWorkspace``): cuBLAS then never allocates while capturing;
  - one handle (and workspace) per CUDA stream, bound to it once: GEMMs on the side stream of
    ``kernels.overlap`` run concurrently with the main stream's without sharing a workspace;
  - a precision for float32 GEMMs (``set_precision``): "fp32" (plain SGEMM, the default), "tf32"
    (TF32 tensor cores, Keras-JAX's default on Ampere/Hopper GPUs; ``set_tf32(True)``), "bf16" or
    "fp16" (cublasGemmEx with compute type 32F_FAST_16BF / 32F_FAST_16F: the float32 operands are
    rounded to bfloat16 / half inside cuBLAS, products accumulate in float32, the result is
    float32). Weights, gradients, optimizer slots and BN statistics stay float32 either way:
    mixed precision for the GEMMs only. bf16 keeps float32's range (8-bit exponent, 8-bit
    mantissa); fp16 has 11 mantissa bits but underflows below ~6e-8, so small gradients may flush
    to zero (no loss scaling here). float64 always runs as plain DGEMM.

cuBLAS is column-major; our arrays are row-major. A row-major (M, N) matrix is the column-major
(N, M) matrix of its transpose, so row-major C = op(A) @ op(B) is computed as the column-major
C^T = op(B)^T @ op(A)^T: swap the operands and the sizes, keep the transpose flags.
"""
import ctypes

from minicnn import backend

_OP_N, _OP_T = 0, 1
_DEFAULT_MATH, _TF32_MATH = 0, 3          # cublasMath_t: CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH
_CUDA_R_32F = 0                           # cudaDataType_t
_COMPUTE = {"bf16": 75, "fp16": 74}       # cublasComputeType_t: CUBLAS_COMPUTE_32F_FAST_16BF / _16F
_GEMM_DEFAULT = -1                        # cublasGemmAlgo_t
PRECISIONS = backend.GEMM_PRECISIONS
_WORKSPACE_BYTES = 32 << 20

_lib = None
_handles = {}           # stream pointer -> [handle, workspace, math mode set]: one per stream, since
                        # GEMMs running at once on two streams must not share a workspace


def _find_library():
    """The libcublas CuPy has loaded (read from /proc/self/maps), else the loader's search."""
    import importlib
    importlib.import_module("cupy_backends.cuda.libs.cublas")      # makes CuPy load libcublas
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "libcublas.so" in path and "libcublasLt" not in path:
                    return path
    except OSError:
        pass
    import ctypes.util
    found = ctypes.util.find_library("cublas")
    if found:
        return found
    raise RuntimeError("could not locate libcublas (CuPy is installed but its cuBLAS library was not found)")


def _check(status, what):
    if status != 0:
        raise RuntimeError(f"cuBLAS {what} failed with status {status}")


def _load():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(_find_library())
        for name in ("cublasCreate_v2", "cublasSetStream_v2", "cublasSetWorkspace_v2", "cublasSetMathMode",
                     "cublasSgemm_v2", "cublasDgemm_v2", "cublasGemmEx"):
            getattr(lib, name).restype = ctypes.c_int
        _lib = lib
    return _lib


def _handle_for(stream):
    """This stream's handle: created once (outside any capture), with its own workspace."""
    import cupy
    entry = _handles.get(stream)
    if entry is None:
        lib = _load()
        handle = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate")
        workspace = cupy.empty(_WORKSPACE_BYTES, dtype=cupy.uint8)      # lives as long as the handle
        _check(lib.cublasSetWorkspace_v2(handle, ctypes.c_void_p(workspace.data.ptr),
                                         ctypes.c_size_t(_WORKSPACE_BYTES)), "cublasSetWorkspace")
        _check(lib.cublasSetStream_v2(handle, ctypes.c_void_p(stream)), "cublasSetStream")
        entry = _handles[stream] = [handle, workspace, None]
    return entry


# The setting itself lives in backend.py (backend.set_gemm_precision / set_tf32); these read it.
set_precision = backend.set_gemm_precision


def precision():
    return backend.gemm_precision()


def set_tf32(enabled):
    """Let float32 GEMMs use TF32 tensor cores (10-bit mantissa products, float32 accumulation)."""
    backend.set_tf32(enabled)


def tf32_enabled():
    return backend.gemm_precision() == "tf32"


def _prepare(stream=None):
    """(library, handle) for CuPy's current stream (or `stream`), math mode as asked."""
    import cupy
    entry = _handle_for(cupy.cuda.get_current_stream().ptr if stream is None else stream.ptr)
    tf32 = backend.gemm_precision() == "tf32"
    if entry[2] != tf32:
        _check(_lib.cublasSetMathMode(entry[0], _TF32_MATH if tf32 else _DEFAULT_MATH), "cublasSetMathMode")
        entry[2] = tf32
    return _lib, entry[0]


def _as_operand(a):
    """(array, transposed?, leading dimension) for a 2-D row-major operand; copies only when
    neither a nor a.T is C-contiguous."""
    import cupy
    if a.flags.c_contiguous:
        return a, False, a.shape[1]
    if a.T.flags.c_contiguous:
        return a, True, a.shape[0]
    a = cupy.ascontiguousarray(a)
    return a, False, a.shape[1]


def gemm(a, b, out=None, accumulate=False):
    """out = a @ b (or out += a @ b) for 2-D float32/float64 CuPy arrays; returns out."""
    import cupy
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm needs (M, K) @ (K, N) matrices, got {a.shape} @ {b.shape}")
    if a.dtype != b.dtype or a.dtype not in (cupy.float32, cupy.float64):
        raise TypeError(f"gemm needs two float32 or two float64 arrays, got {a.dtype} and {b.dtype}")
    M, K = a.shape
    N = b.shape[1]
    if out is None:
        out = cupy.empty((M, N), dtype=a.dtype)
    elif out.shape != (M, N) or out.dtype != a.dtype or not out.flags.c_contiguous:
        raise ValueError(f"gemm out must be a C-contiguous {a.dtype} array of shape {(M, N)}, got "
                         f"{out.dtype} {out.shape}")
    if M == 0 or N == 0:
        return out
    if K == 0:
        if not accumulate:
            out.fill(0)
        return out
    a, ta, lda = _as_operand(a)
    b, tb, ldb = _as_operand(b)
    lib, handle = _prepare()
    ctype = ctypes.c_float if a.dtype == cupy.float32 else ctypes.c_double
    alpha, beta = ctype(1.0), ctype(1.0 if accumulate else 0.0)
    # column-major: C^T (N x M) = op(B)^T (N x K) @ op(A)^T (K x M)
    ops = (_OP_T if tb else _OP_N, _OP_T if ta else _OP_N, N, M, K, ctypes.byref(alpha))
    B_, A_, C_ = (ctypes.c_void_p(m.data.ptr) for m in (b, a, out))
    mode = backend.gemm_precision()
    if a.dtype == cupy.float32 and mode in _COMPUTE:       # bf16 / fp16 tensor cores, float32 in and out
        status = lib.cublasGemmEx(handle, *ops, B_, _CUDA_R_32F, ldb, A_, _CUDA_R_32F, lda, ctypes.byref(beta),
                                  C_, _CUDA_R_32F, N, _COMPUTE[mode], _GEMM_DEFAULT)
    else:
        fn = lib.cublasSgemm_v2 if a.dtype == cupy.float32 else lib.cublasDgemm_v2
        status = fn(handle, *ops, B_, ldb, A_, lda, ctypes.byref(beta), C_, N)
    _check(status, "gemm")
    return out

