"""The speed benchmark runs in --quick mode on synthetic data (minicnn side only) and writes a valid result."""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_bench_speed_quick_minicnn_only(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_speed.py"), "--quick", "--no-keras", "--profile",
         "--models", "tutorial003_small,tutorial001_model_1", "--epochs", "2", "--steps", "4", "--out", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 1 and files[0].with_suffix(".md").exists()
    record = json.loads(files[0].read_text())
    assert [r["model"] for r in record["results"]] == ["tutorial003_small", "tutorial001_model_1"]
    for r in record["results"]:
        m = r["minicnn"]
        assert len(m["epoch_seconds"]) == 2 and m["steady_epoch_s"] > 0 and m["images_per_s"] > 0
        assert m["peak_rss_mb"] > 0 and m["predict_10k_s"] > 0 and "keras" not in r
        assert m["settings"]["framework"] == "minicnn" and "numpy" in m["settings"]
        layers = m["profile_ms"]["layers"]
        assert len(layers) == 5 if r["model"] == "tutorial003_small" else len(layers) == 12
        assert m["profile_ms"]["step"] > 0
    assert "| tutorial003_small |" in result.stdout and "Per-layer time" in result.stdout


def test_profile_kernels_times_the_kernels_of_a_real_fit():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "profile_kernels.py"), "--model",
                             "tutorial003_small", "--steps", "3"],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ms per step" in result.stdout and "matmul" in result.stdout
    assert "conv2d_relu_maxpool" in result.stdout        # its conv + relu + pooling: one fused kernel
    assert "conv2d_maxpool_backward" in result.stdout          # ... and its backward


def test_airbench_anchor_says_what_it_needs_without_a_cuda_pytorch():
    """The anchor runs only where PyTorch sees a CUDA GPU; elsewhere it exits 2 with the reason."""
    import importlib.util
    if importlib.util.find_spec("torch") is not None:
        import torch
        if torch.cuda.is_available():
            import pytest
            pytest.skip("a CUDA PyTorch is here: the anchor would really train (see benchmarks/gpu_checks.sh fast)")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "airbench_anchor.py"), "--runs", "1"],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 2 and "error: airbench" in result.stderr


def test_airbench_anchor_refuses_bad_counts_before_anything_runs():
    for args in (["--runs", "0"], ["--limit", "100"]):
        result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "airbench_anchor.py"), *args],
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
        assert result.returncode == 2 and "--runs must be >= 1 and --limit >= 1024" in result.stderr, result.stderr


def test_prepare_gpu_carry_names_the_missing_dataset_files(tmp_path):
    """Without the dataset folder it stops with the reason, before downloading or creating anything."""
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "prepare_gpu_carry.sh"), str(tmp_path / "nowhere")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "expected cifar10-jpeg.npz and install_cifar10.py" in result.stderr
    assert "nowhere" in result.stderr


def test_conv_paths_times_both_forwards_and_refuses_unknown_layers():
    script = [sys.executable, str(ROOT / "benchmarks" / "conv_paths.py")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(script + ["--layers", "t0c3,m2c4", "--rounds", "1"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| tutorial")]
    assert len(rows) == 2 and rows[0].split(" | ")[3] == "no" and rows[1].split(" | ")[3] == "yes"
    bad = subprocess.run(script + ["--layers", "nope"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "--layers takes names" in bad.stderr
