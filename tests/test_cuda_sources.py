"""The CUDA C sources of minicnn.kernels.gpu compile, on any machine.

NVRTC (NVIDIA's runtime compiler, the one CuPy's RawModule uses) ships as a pip wheel that needs
no GPU: the dev extra installs it, so syntax and type errors in the kernels are caught by CI on a
CPU-only machine, before a GPU session. The family modules' CUDA texts are checked to make up the
compiled modules, and their launchers to name their own kernels. What the kernels compute is
tested by test_gpu.py.
"""
import ctypes
import glob
import importlib
import inspect
import os
import re

import numpy as np
import pytest

from minicnn.kernels import gpu
from minicnn.kernels.gpu import _compile, data as data_family

# the kernel family modules of minicnn.kernels.gpu, in the order of their text in the sources
FAMILIES = ("conv", "pooling", "activations", "regularizers", "losses", "batchnorm", "optimizers", "data")


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
    """(status, log, ptx) of compiling `code` for an H100 (compute_90) with _compile._kernel's options."""
    lib = _nvrtc()
    program = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), code.encode(), b"minicnn.cu", 0, None, None) == 0
    options = (ctypes.c_char_p * 2)(b"--std=c++14", b"--gpu-architecture=compute_90")
    status = lib.nvrtcCompileProgram(program, 2, options)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log)
    ptx = b""
    if status == 0:
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(program, buffer)
        ptx = buffer.value
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    return status, log.value.decode(errors="replace"), ptx.decode()


@pytest.mark.parametrize("source", ["math", "data"])
@pytest.mark.parametrize("T", [np.float32, np.float64])
@pytest.mark.parametrize("A", [np.int32, np.uint8])
def test_kernels_compile(source, T, A):
    status, log, _ = compile_source(gpu.module_source(source == "data", T, A, A))
    assert status == 0, log


def test_a_broken_kernel_is_reported():
    status, log, _ = compile_source(gpu.module_source(False, np.float32, np.int32, np.float32)
                                 + "\n__global__ void broken(float* x) { x[0] = undefined_name; }\n")
    assert status != 0 and "undefined_name" in log


def _family(name):
    return importlib.import_module(f"minicnn.kernels.gpu.{name}")


def _sources(module):
    """A family module's CUDA texts: its string constants SOURCE and *_SOURCE."""
    return [v for k, v in vars(module).items() if (k == "SOURCE" or k.endswith("_SOURCE")) and isinstance(v, str)]


def _kernels(module):
    return {name for text in _sources(module) for name in _compile.kernel_names(text)}


_LAUNCH = re.compile(r'\b(?:_launch|_kernel|_multi)\(f?"(\w+)(\{vec\})?"')


def _launched(module):
    """The kernel names the module's Python launches (f"im2col{vec}": im2col1 and im2col4)."""
    names = set()
    for name, packed in _LAUNCH.findall(inspect.getsource(module)):
        names |= {name + "1", name + "4"} if packed else {name}
    return names


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_in_its_module(family):
    """A family's CUDA texts are all in the source its kernels compile into (data.py's: the data
    module), and its Python launches exactly its own kernels: a misspelt kernel name, or a kernel
    left without its launcher, fails here rather than on a GPU."""
    module = _family(family)
    data = family == "data"
    assembled = gpu.module_source(data, np.float32, np.int32, np.float32)
    texts = _sources(module)
    assert texts and all(text in assembled for text in texts)
    kernels = _kernels(module)
    assert kernels and kernels <= set(_compile.kernel_names(assembled))
    assert all((name in data_family.KERNELS) == data for name in kernels)
    assert _launched(module) == kernels


def test_the_families_make_up_the_modules():
    """Each kernel belongs to one family, and the families' kernels are every entry point NVRTC
    finds in the two compiled modules (which also checks kernel_names against the compiler)."""
    per_family = [_kernels(_family(name)) for name in FAMILIES]
    every = set().union(*per_family)
    assert sum(map(len, per_family)) == len(every)
    entries = set()
    for data in (False, True):
        status, log, ptx = compile_source(gpu.module_source(data, np.float32, np.int32, np.float32))
        assert status == 0, log
        entries |= set(re.findall(r"\.entry (\w+)\(", ptx))
    assert entries == every
