"""minicnn.explain: the page's content and arithmetic on a tiny model, its CLI on a model file, the
TrainingDynamics callback (training unchanged), and the page rendered in headless Chromium."""
import html
import json
import os
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

import minicnn
from minicnn import explain, layers as L, zoo
from minicnn.callbacks import TrainingDynamics
from minicnn.explain import __main__ as cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTIONS = ("architecture", "feature-maps", "dot-product", "filters", "softmax", "dynamics", "history", "confusion")


def tiny_model(seed=1):
    minicnn.utils.set_random_seed(seed)
    model = minicnn.Sequential([L.Conv2D(4, 3, padding="same", input_shape=(8, 8, 3)), L.Activation("relu"),
                                L.BatchNormalization(), L.MaxPooling2D(2), L.Dropout(0.3), L.Flatten(),
                                L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def tiny_data(n=40):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 3), dtype=np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def trained(callbacks=True):
    model, (x, y) = tiny_model(), tiny_data()
    dynamics = TrainingDynamics(x, y, probe_size=16)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y),
                        callbacks=[dynamics] if callbacks else [])
    return model, x, y, history.history, dynamics.record


@pytest.fixture(scope="module")
def page():
    model, x, y, history, record = trained()
    return explain.page(model, x, y, history=history, dynamics=record, image=3, class_names=["ant", "bee", "cow"])


def values(html, pattern):
    return [float(v) for v in re.findall(pattern, html)]


def dot_numbers(page):
    """b, z, act(z) and the feature-map value of the dot-product panel, exact (data-value)."""
    return [values(page, rf'data-value="([^"]+)"[^>]*id="dot-{k}"')[0] for k in ("bias", "z", "act", "fmap")]


def test_the_page_has_every_section_and_only_inline_images(page):
    for ident in SECTIONS:
        assert f'<section id="{ident}">' in page
    srcs = re.findall(r'<img src="([^"]*)"', page)
    assert len(srcs) >= 12 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"https?://", page) and "<script" not in page and "<link" not in page
    assert "y = max of each pool window" in page and "γ (x − μ)" in page and "im2col(x) · W + b" in page
    assert len(page) < 3_000_000


def test_the_dot_product_gives_the_feature_map_value(page):
    products = values(page, r'data-value="([^"]+)" class="dot-product"')
    assert len(products) == 3 * 3 * 3
    bias, z, act, fmap = dot_numbers(page)
    assert abs(sum(products) + bias - z) < 1e-9
    assert 'data-activation="linear"' in page           # the Conv2D alone; its ReLU is the next layer
    assert abs(z - fmap) < 1e-4 and act == pytest.approx(fmap, abs=1e-4)


def test_the_softmax_arithmetic_matches_predict(page):
    p = values(page, r'data-value="([^"]+)" class="softmax-p"')
    assert len(p) == 3 and sum(p) == pytest.approx(1, abs=1e-9)
    rows = re.findall(r"<tr><td class=\"l\">(?:ant|bee|cow).*?</tr>", page)
    predicted = [float(re.findall(r'data-value="([^"]+)"', r)[-1]) for r in rows]
    assert np.allclose(p, predicted, atol=1e-5)


def test_training_dynamics_do_not_change_training(backend):
    """On every backend (on the GPU, the probe runs between CUDA-graph replays): the same weights
    with and without the callback."""
    with_cb, without = trained(True), trained(False)
    for a, b in zip(with_cb[0].get_weights(), without[0].get_weights()):
        assert np.array_equal(a, b)
    record = with_cb[4]
    assert record["epochs"] == [1, 2] and record["probe_size"] == 16
    conv = record["layers"]["conv2d" if "conv2d" in record["layers"] else next(iter(record["layers"]))]
    assert conv["class"] == "Conv2D" and len(conv["grad_norm"]) == 2 and all(g > 0 for g in conv["grad_norm"])
    assert all(0 < r < 1 for r in conv["update_ratio"])
    relu = next(r for r in record["layers"].values() if r["class"] == "Activation")
    assert all(0 < z < 1 for z in relu["zero_fraction"]) and "grad_norm" not in relu


def test_a_functional_model_and_a_model_without_softmax():
    inputs = minicnn.Input(shape=(8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = L.Conv2D(4, 3, padding="same")(a)
    out = L.Dense(3)(L.Flatten()(L.Add()([a, b])))
    model = minicnn.Model(inputs, out)
    model.compile(optimizer="sgd", loss="mse")
    x, y = tiny_data(12)
    html = explain.page(model, x, y)
    assert "does not end in a softmax" in html and "No training dynamics" in html
    assert 'data-activation="relu"' in html
    dynamics = TrainingDynamics(x, y)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[dynamics])
    assert {name for name, row in dynamics.record["layers"].items() if "grad_norm" in row} == {
        layer.name for layer in model.layers if layer.params}
    assert "Training dynamics, per layer and epoch" in explain.page(model, x, y, dynamics=dynamics.record)


@pytest.mark.parametrize("name", ["tutorial001_model_1", "tutorial003_lenet5", "fast_cifar10"])
def test_zoo_models(name):
    """Strided 5x5 valid convolutions, tanh on one channel, GELU inside nested blocks: the same page."""
    model = zoo.get(name).build()
    x = np.random.default_rng(0).random((4,) + tuple(model.input_shape), dtype=np.float32)
    page = explain.page(model, x, np.arange(4), image=1)
    products = values(page, r'data-value="([^"]+)" class="dot-product"')
    bias, z, act, fmap = dot_numbers(page)
    assert abs(sum(products) + bias - z) < 1e-9 and act == pytest.approx(fmap, abs=1e-4)
    assert len(products) == np.prod(model.layers[0].params["W"].shape[:3])


def test_cli_on_a_model_file(tmp_path, monkeypatch):
    model, x, y, _, _ = trained(False)
    path = tmp_path / "m.minicnn"
    model.save(str(path))
    monkeypatch.setattr(cli.DATASETS["mnist"], "load_data", lambda path=None: (None, (x * 255, y.argmax(-1))))
    out = tmp_path / "page.html"
    assert cli.main([str(path), "--dataset", "mnist", "--image", "2", "--out", str(out)]) == 0
    text = out.read_text()
    assert all(f'<section id="{s}">' in text for s in SECTIONS)


def test_cli_refuses_a_missing_path(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nothing")]) == 2
    assert "neither a run folder nor a model file" in capsys.readouterr().err


# ---- the page in a real browser --------------------------------------------------------------------
CHECKS = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || e.target.src)), true);
const originalError = console.error;
console.error = (...a) => { window.__errors.push('console.error: ' + a.join(' ')); originalError(...a); };
window.addEventListener('load', () => {
  const v = el => parseFloat(el.dataset.value);
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const products = [...document.querySelectorAll('.dot-product')].map(v);
  const z = products.reduce((s, p) => s + p, 0) + v(document.getElementById('dot-bias'));
  const erf = t => {            // Abramowitz and Stegun 7.1.26: |error| < 1.5e-7
    const s = Math.sign(t), a = Math.abs(t), k = 1 / (1 + 0.3275911 * a);
    const poly = k * (0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429))));
    return s * (1 - poly * Math.exp(-a * a));
  };
  const act = {relu: t => Math.max(0, t), linear: t => t, tanh: Math.tanh, sigmoid: t => 1 / (1 + Math.exp(-t)),
               gelu: t => 0.5 * t * (1 + erf(t / Math.SQRT2))};
  const name = document.getElementById('dot-panel').dataset.activation;
  const y = (act[name] || (t => NaN))(z);
  const fmap = v(document.getElementById('dot-fmap'));
  const shown = parseFloat(document.getElementById('dot-fmap').textContent);
  const out = document.createElement('pre');
  out.id = 'browser-checks';
  out.textContent = JSON.stringify({images: imgs.length, broken, errors: window.__errors, products: products.length,
                                    z, y, fmap, shown, activation: name});
  document.body.appendChild(out);
});
</script>"""


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def browser_checks(browser, page, folder):
    """Chromium's verdict on the page: CHECKS runs in it at load and writes its findings into the DOM,
    which --dump-dom prints."""
    path = folder / "page.html"
    path.write_text(page.replace("<head>", "<head>" + CHECKS, 1), encoding="utf-8")
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
             f"--user-data-dir={folder / 'profile'}", "--virtual-time-budget=10000", "--dump-dom"]
    result = subprocess.run([browser, *flags, path.as_uri()], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HOME": str(folder)})
    found = re.search(r'<pre id="browser-checks">(.*?)</pre>', result.stdout, re.S)
    assert found, f"no checks in Chromium's DOM (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_the_page_in_headless_chromium(tmp_path, page):
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it): "
                    "the page was not rendered in a browser")
    checks = browser_checks(browser, page, tmp_path)
    assert checks["errors"] == [] and checks["broken"] == []
    assert checks["images"] >= 12 and checks["products"] == 27
    assert abs(checks["y"] - checks["fmap"]) < 1e-4 and abs(checks["shown"] - checks["fmap"]) < 1e-4


def test_the_browser_checks_catch_what_they_look_for(tmp_path, page):
    """A page with a wrong feature-map value, a broken image and a console error fails each check."""
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed: the browser checks were not exercised")
    planted = re.sub(r'data-value="([^"]+)"( class="hi" id="dot-fmap")', r'data-value="12.5"\2', page)
    planted = planted.replace("</body>", '<img src="data:image/png;base64,AAAA" alt="planted">'
                                         '<script>console.error("planted")</script></body>')
    checks = browser_checks(browser, planted, tmp_path)
    assert checks["broken"] == ["planted"] and any("planted" in e for e in checks["errors"])
    assert abs(checks["y"] - checks["fmap"]) > 1


def test_cli_refuses_an_image_out_of_range(tmp_path, monkeypatch, capsys):
    model, x, y, _, _ = trained(False)
    model.save(str(tmp_path / "m.minicnn"))
    monkeypatch.setattr(cli.DATASETS["mnist"], "load_data", lambda path=None: (None, (x * 255, y.argmax(-1))))
    assert cli.main([str(tmp_path / "m.minicnn"), "--dataset", "mnist", "--image", "40"]) == 2
    assert "image must be the index of a test image, in [0, 40), got 40" in capsys.readouterr().err
