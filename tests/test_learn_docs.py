"""docs/learn/ cannot go stale: its numbers, links, figures and snippets are checked against the code.

- every block between <!-- numbers:NAME --> and <!-- /numbers --> equals what docs/learn/build.py
  prints now by running minicnn's functions (after a change to the math: python docs/learn/build.py);
- every link to a Python file names a function or class defined in that file;
- every figure a chapter shows exists, and minicnn.plot redraws it from the kernels' arrays;
- every chapter's last ```python block runs, from the repository root, in a fresh interpreter.
"""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LEARN = ROOT / "docs" / "learn"


def _build():
    spec = importlib.util.spec_from_file_location("learn_build", LEARN / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _build()
CHAPTERS = build.CHAPTERS
LINK = re.compile(r"\[`([\w.]+)`\]\(([^)#]+\.py)\)")


@pytest.fixture(scope="module")
def computed():
    return build.numbers()


def test_the_index_lists_every_chapter_in_order():
    index = (LEARN / "README.md").read_text()
    linked = list(dict.fromkeys(re.findall(r"\]\((\d\d-[\w-]+\.md)\)", index)))     # first mentions, in order
    assert linked == CHAPTERS
    for chapter in CHAPTERS:
        assert (LEARN / chapter).exists()
    assert "docs/learn/" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_number_block_is_what_the_code_prints_now(chapter, computed):
    text = (LEARN / chapter).read_text()
    blocks = {m.group(2): m.group(3) for m in build.MARKED.finditer(text)}
    assert blocks, f"{chapter} has no numbers block"
    stale = [name for name, printed in blocks.items() if printed != computed[name]]
    assert not stale, f"{chapter}: blocks {stale} differ from the code's numbers; run python docs/learn/build.py"
    assert build.render(text, computed) == text


def test_every_block_function_is_used_once(computed):
    used = [m.group(2) for chapter in CHAPTERS for m in build.MARKED.finditer((LEARN / chapter).read_text())]
    assert sorted(used) == sorted(computed)


def test_a_changed_number_is_caught(computed, tmp_path):
    text = (LEARN / "01-im2col.md").read_text()
    broken = text.replace("window_geometry(4, 2, 1, 'valid') = (OH, pt) = (3, 0)",
                          "window_geometry(4, 2, 1, 'valid') = (OH, pt) = (4, 0)")
    assert broken != text
    assert build.render(broken, computed) == text


def _defined(name, path):
    source = path.read_text()
    return re.search(rf"^\s*(def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*=", source, re.M) is not None


@pytest.mark.parametrize("chapter", ["README.md"] + CHAPTERS)
def test_every_link_names_a_function_defined_in_its_file(chapter):
    text = (LEARN / chapter).read_text()
    links = LINK.findall(text)
    for name, target in links:
        path = (LEARN / target).resolve()
        assert path.is_file(), f"{chapter}: link to {target}, which does not exist"
        parts = name.split(".")
        if parts[-1] == "py" or name.endswith(".py"):
            continue                                   # a link to the file itself
        if len(parts) > 1 and parts[0] in ("plot", "cpu_conv", "cpu_gemm"):
            parts = parts[1:]                          # module.function
        for part in parts:
            assert _defined(part, path), f"{chapter}: `{name}` links to {target}, which defines no {part!r}"
    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (LEARN / target).resolve().exists(), f"{chapter}: broken link {target}"
    if chapter != "README.md":
        assert any("minicnn/" in target for _, target in links), f"{chapter} links to no minicnn function"


def test_the_figures_exist_and_are_drawn_from_the_kernels():
    shown = {name for chapter in CHAPTERS
             for name in re.findall(r"\(figures/([\w.-]+)\)", (LEARN / chapter).read_text())}
    figures = build.figures()
    assert shown == set(figures)
    for name in shown:
        assert (LEARN / "figures" / name).stat().st_size > 1000
    # the im2col figure's right panel writes cols, row by row: the numbers im2col returns
    x = build.image()
    from minicnn.kernels import reference
    cols = reference.im2col(x, 2, 2, 1, 1, 0, 0, 3, 3)
    texts = [t.get_text() for t in figures["im2col.png"].axes[1].texts]
    assert texts == [f"{v:.0f}" for v in cols.ravel()]
    y, _ = reference.maxpool_forward(x, 2, 2, 2, 2, 0, 0, 2, 2)
    assert [t.get_text() for t in figures["maxpool.png"].axes[1].texts] == [f"{v:.0f}" for v in y.ravel()]


def _snippet(chapter):
    blocks = re.findall(r"```python\n(.*?)```", (LEARN / chapter).read_text(), re.S)
    assert blocks, f"{chapter} ends with no python snippet"
    return blocks[-1]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_chapter_snippet_runs(chapter):
    code = _snippet(chapter)
    assert "assert" in code, f"{chapter}'s snippet checks nothing"
    env = {**os.environ, "MINICNN_BACKEND": "cpu", "PYTHONPATH": str(ROOT)}
    env.pop("MINICNN_KERNELS", None)
    done = subprocess.run([sys.executable, "-"], input=code, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"{chapter}'s snippet failed:\n{done.stdout}\n{done.stderr}"


def test_the_numbers_come_from_float64_and_the_readable_kernels():
    import minicnn
    from minicnn import backend, kernels
    minicnn.set_kernels("fast")
    with build.readable():
        assert kernels.reference_forced() and backend.floatx() == "float64"
    assert not kernels.reference_forced() and backend.floatx() == "float32"
