"""The CUDA C sources of minicnn.kernels.gpu compile, on any machine.

NVRTC (NVIDIA's runtime compiler, the one CuPy's RawModule uses) ships as a pip wheel that needs
no GPU: the dev extra installs it, so syntax and type errors in the kernels are caught by CI on a
CPU-only machine, before a GPU session. What the kernels compute is tested by test_gpu.py.
"""
import ctypes
import glob
import os

import numpy as np
import pytest

from minicnn.kernels import gpu


def _nvrtc():
    try:
        import nvidia.cuda_nvrtc as package
    except ImportError:
        pytest.skip("NVRTC is not installed: pip install -e '.[dev]' (nvidia-cuda-nvrtc-cu12)")
    found = sorted(glob.glob(os.path.join(list(package.__path__)[0], "lib", "libnvrtc.so*")))
    found = [f for f in found if "builtins" not in f and ".alt." not in f]
    if not found:
        pytest.skip(f"the NVRTC wheel holds no libnvrtc.so under {list(package.__path__)[0]}")
    return ctypes.CDLL(found[0])


def compile_source(code):
    """(status, log) of compiling `code` for an H100 (compute_90) with gpu.py's options."""
    lib = _nvrtc()
    program = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), code.encode(), b"minicnn.cu", 0, None, None) == 0
    options = (ctypes.c_char_p * 2)(b"--std=c++14", b"--gpu-architecture=compute_90")
    status = lib.nvrtcCompileProgram(program, 2, options)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log)
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    return status, log.value.decode(errors="replace")


@pytest.mark.parametrize("source", ["math", "data"])
@pytest.mark.parametrize("T", [np.float32, np.float64])
@pytest.mark.parametrize("A", [np.int32, np.uint8])
def test_kernels_compile(source, T, A):
    status, log = compile_source(gpu.module_source(source == "data", T, A, A))
    assert status == 0, log


def test_a_broken_kernel_is_reported():
    status, log = compile_source(gpu.module_source(False, np.float32, np.int32, np.float32)
                                 + "\n__global__ void broken(float* x) { x[0] = undefined_name; }\n")
    assert status != 0 and "undefined_name" in log
