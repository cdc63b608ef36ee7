"""The package's structure, checked by reading its sources (docs/ARCHITECTURE.md, "Structure"):

- imports run one way: the graph of minicnn's imports (module level and inside functions) has no
  cycle, and an import inside a function appears only where it keeps Numba off the import of
  `minicnn` (the CPU kernels); every module imports on its own in a fresh interpreter;
- the backend is known in one place: outside backend.py, kernels/ and the GPU training strategy
  (training/graphed.py) no code branches on the backend or touches CuPy, cuBLAS or the CUDA kernels;
- model.py holds the containers only (the training loop lives in training/).
"""
import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest

import minicnn

ROOT = pathlib.Path(minicnn.__file__).parent
ALLOWED_BACKEND_FILES = ("backend.py", "kernels/", "training/graphed.py")
# function-level imports kept on purpose: the CPU kernels load Numba (~0.4 s), not needed on the GPU
LAZY_OK = {"minicnn.kernels.cpu", "minicnn.kernels.cpu_gemm", "minicnn.kernels.cpu_conv"}
BACKEND_PATTERNS = {
    "a branch on backend.name": re.compile(r"backend\.name\s*(==|!=|in\b|not in\b)|if\s+backend\.name"),
    "CuPy": re.compile(r"\bimport cupy\b|\bcupy\."),
    "the CUDA kernels or cuBLAS": re.compile(r"kernels\.(gpu|cublas)\b|from minicnn\.kernels import .*\b(gpu|cublas)\b"),
    "a device-kernel test": re.compile(r"device_kernels\(|reference_forced\("),
}


def _modules():
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


MODULES = _modules()


def _imports(name, path):
    """[(target module, inside a function?)] for every minicnn import of one module."""
    is_package = path.name == "__init__.py"
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((a.name, inner) for a in child.names if a.name.startswith("minicnn"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = name.split(".")[:len(name.split(".")) - child.level + (1 if is_package else 0)]
                    base = ".".join(parts + ([base] if base else []))
                if base.startswith("minicnn"):
                    for a in child.names:
                        full = f"{base}.{a.name}"
                        found.append((full if full in MODULES else base, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


def test_the_import_graph_has_no_cycle():
    graph = {name: {t for t, _ in _imports(name, path) if t in MODULES and t != name} for name, path in MODULES.items()}
    state, stack = {}, []

    def walk(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name)


def test_imports_inside_functions_only_keep_numba_off_the_package_import():
    lazy = sorted(f"{name} -> {t}" for name, path in MODULES.items() for t, inner in _imports(name, path)
                  if inner and t not in LAZY_OK)
    assert lazy == [], "minicnn imports inside functions (move them to the top of the module):\n" + "\n".join(lazy)


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    names = sorted(MODULES)
    procs = []
    failures = []
    for start in range(0, len(names), 12):           # a few interpreters at a time, each importing one module
        batch = [(n, subprocess.Popen([sys.executable, "-c", f"import {n}"], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)) for n in names[start:start + 12]]
        procs += batch
        for n, p in batch:
            _, err = p.communicate(timeout=120)
            if p.returncode:
                failures.append(f"{n}: {err.strip().splitlines()[-1] if err.strip() else p.returncode}")
    assert len(procs) == len(names) and failures == []


def test_no_backend_branch_outside_backend_kernels_and_the_gpu_strategy():
    offences = []
    for name, path in MODULES.items():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(ALLOWED_BACKEND_FILES):
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            for what, pattern in BACKEND_PATTERNS.items():
                if pattern.search(code):
                    offences.append(f"minicnn/{rel}:{lineno}: {what}: {line.strip()}")
    assert offences == [], "backend-specific code outside the allowed files:\n" + "\n".join(offences)


def test_the_checks_above_catch_what_they_look_for(tmp_path):
    """The patterns and the cycle walk are not vacuous: each finds a planted offence."""
    assert BACKEND_PATTERNS["a branch on backend.name"].search('if backend.name == "gpu":')
    assert BACKEND_PATTERNS["CuPy"].search("    import cupy")
    assert BACKEND_PATTERNS["the CUDA kernels or cuBLAS"].search("from minicnn.kernels import gpu")
    assert BACKEND_PATTERNS["a device-kernel test"].search("if kernels.device_kernels():")
    planted = tmp_path / "m.py"
    planted.write_text("def f():\n    from minicnn import saving\n")
    assert _imports("minicnn.m", planted) == [("minicnn.saving", True)]


def test_model_py_holds_the_containers_only():
    source = (ROOT / "model.py").read_text()
    assert len(source.splitlines()) <= 390          # Sequential ~285 lines, Residual ~95
    tree = ast.parse(source)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    assert set(classes) == {"Sequential", "Residual"}
    methods = {f.name for f in classes["Sequential"].body if isinstance(f, ast.FunctionDef)}
    assert not methods & {"_train_epoch", "_batches", "_check_x", "_epoch_order", "_device_train_step"}


def test_layers_carry_no_logits_plumbing():
    """The loss owns a softmax head's softmax (Trainer.configure_head): no layer keeps logits
    or has a second backward for them."""
    found = [f"{path.relative_to(ROOT)}:{n}" for path in (ROOT / "layers").glob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"keep_logits|backward_logits|\.logits\b", line)]
    assert found == []
