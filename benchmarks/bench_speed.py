#!/usr/bin/env python
"""Side-by-side training speed: minicnn vs Keras on the same zoo models, data, batch size and optimizer.

    python benchmarks/bench_speed.py                          # all CIFAR-10 zoo models, 3 epochs each side
    python benchmarks/bench_speed.py --models tutorial000 --epochs 4
    python benchmarks/bench_speed.py --quick --no-keras       # a few steps, minicnn only (CI)
    python benchmarks/bench_speed.py --profile                # + per-layer times of one minicnn step

Each framework runs in its own worker process (so peak memory and threads are its own); the
parent alternates them epoch by epoch: minicnn epoch 1, Keras epoch 1, minicnn epoch 2, ...
Epoch 1 (JIT/graph compilation) is reported apart; steady-state s/epoch is the median of the rest.
The Keras/minicnn ratio is the median of the per-epoch ratios (epoch i of one against epoch i of
the other, run back to back): these shared VMs speed up and slow down by up to 2x over minutes,
and a ratio of neighbours cancels that drift where a ratio of two medians does not.
Work done: each model's FLOPs per training step (2 per multiply-add: forward, and the two
backward products, dW and dx, of every Conv2D and Dense; the first layer has no dx), as GFLOP/s
achieved and as a fraction of the machine's large-SGEMM rate (numpy.matmul of 2048^2 float32
matrices, all cores), measured in the same run.
With --quick an "epoch" is --steps steps on synthetic data, scaled to the full epoch length.
Results: benchmarks/results/<date>-<machine>.json and .md (a markdown table with Keras/minicnn ratios).
"""
import argparse
import datetime
import math
import multiprocessing as mp
import os
import pathlib
import platform
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CIFAR_TRAIN = {"first5000": 45_000, "test": 50_000}


# ---- work -------------------------------------------------------------------------------------
def train_flops_per_image(model):
    """Multiply-adds x 2 of one training step, per image: every Conv2D and Dense forward, dW and dx
    (the first layer's dx is never computed). Elementwise work is left out (it is not GEMM work)."""
    from minicnn.layers import Conv2D, Dense
    total, first = 0, True
    for layer in model.sublayers():
        if isinstance(layer, Conv2D):
            OH, OW, F = layer.output_shape
            forward = 2 * OH * OW * layer.kernel_size[0] * layer.kernel_size[1] * layer.input_shape[-1] * F
        elif isinstance(layer, Dense):
            forward = 2 * layer.input_shape[-1] * layer.units
        else:
            continue
        total += forward * (2 if first else 3)
        first = False
    return total


def sgemm_gflops(n=2048, repeats=5):
    """The machine's large-SGEMM rate: numpy.matmul (its BLAS, all threads) on n x n float32."""
    import numpy as np
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = min(_timed(lambda: np.matmul(a, a, out=out)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---- worker side -------------------------------------------------------------------------------
def _data(entry, spec):
    """Same arrays in every worker: CIFAR-10 (scaled, one-hot) when installed, else seeded noise."""
    import numpy as np
    n_train = spec["n_train"]
    if spec["source"] == "cifar10":
        from minicnn.datasets import cifar10
        (x, y), (xt, yt) = cifar10.load_data(download_if_missing=False)
        x, xt = x[-n_train:].astype("float32") / 255, xt.astype("float32") / 255
        y, yt = y[-n_train:], yt
    else:
        rng = np.random.default_rng(0)
        x = rng.random((n_train,) + entry.input_shape, dtype=np.float32)
        xt = rng.random((spec["n_predict"],) + entry.input_shape, dtype=np.float32)
        y, yt = rng.integers(0, 10, (n_train, 1)), rng.integers(0, 10, (len(xt), 1))
    eye = np.eye(10, dtype=np.float32)
    return x, eye[y.reshape(-1)], xt[:spec["n_predict"]]


def _peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(framework):
    info = {"framework": framework, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "architecture",
                                                      "version")} for p in threadpool_info()]
    except ImportError:
        pass
    if framework == "minicnn":
        from minicnn.utils import environment_info
        info.update(environment_info())
        from minicnn import backend
        if backend.name == "gpu":
            from minicnn.kernels import cublas
            info["tf32"] = cublas.tf32_enabled()
            info["cuda_graphs"] = True
    else:
        import keras
        info.update({"keras": keras.__version__, "keras_backend": keras.backend.backend()})
        if keras.backend.backend() == "jax":
            import jax
            import numpy as np
            a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
            err = np.abs(np.asarray(jax.numpy.asarray(a) @ jax.numpy.asarray(a)) - a.astype(np.float64) @ a).max()
            info.update({"jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()],
                         "jax_f32_matmul_max_abs_error_512": float(err),
                         "jax_f32_matmul_mode": "TF32-like (error > 1e-3)" if err > 1e-3 else "FP32"})
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            info.update({"tensorflow": tf.__version__, "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                         "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()})
    return info


def worker(conn, framework, model_name, spec, backend_name, keras_backend):
    """Hold one model and its data; answer the parent's commands until told to stop."""
    if framework == "keras":
        os.environ["KERAS_BACKEND"] = keras_backend
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import minicnn
    from minicnn import zoo
    minicnn.set_backend(backend_name)
    minicnn.utils.set_random_seed(0)
    entry = zoo.get(model_name)
    x, y, xt = _data(entry, spec)
    if framework == "keras":
        from keras_models import build_keras
        model = build_keras(entry)
    else:
        model = entry.build()
        if backend_name == "gpu":           # upload once, as a GPU user would; fit then never copies it
            x, xt = minicnn.backend.to_device(x), minicnn.backend.to_device(xt)
    settings = _settings(framework)
    if framework == "minicnn":
        settings["train_gflop_per_image"] = train_flops_per_image(model) / 1e9
        if backend_name == "cpu":
            settings["sgemm_gflops"] = sgemm_gflops()
    conn.send(("ready", settings))
    while True:
        cmd = conn.recv()
        if cmd == "stop":
            break
        start = time.perf_counter()
        if cmd == "epoch":
            model.fit(x, y, batch_size=entry.batch_size, epochs=1, verbose=0, shuffle=True)
        elif cmd == "predict":
            model.predict(xt, batch_size=256, verbose=0)
        elif cmd == "profile":
            from profile_layers import profile_step
            conn.send(profile_step(model, x[:entry.batch_size], y[:entry.batch_size]))
            continue
        conn.send(time.perf_counter() - start)
    conn.send({"peak_rss_mb": _peak_rss_mb(), "gpu_mb": _gpu_memory_mb(framework, backend_name, keras_backend)})


def _gpu_memory_mb(framework, backend_name, keras_backend):
    """Device memory held at the end: CuPy's pools (minicnn) or JAX's peak bytes in use (Keras)."""
    try:
        if framework == "minicnn" and backend_name == "gpu":
            import cupy
            from minicnn.training import graphed
            pools = [cupy.get_default_memory_pool()] + ([graphed._GRAPH_POOL]
                                                        if graphed._GRAPH_POOL is not None else [])
            return sum(p.total_bytes() for p in pools) / 2**20
        if framework == "keras" and keras_backend == "jax":
            import jax
            return jax.devices()[0].memory_stats()["peak_bytes_in_use"] / 2**20
    except Exception:
        pass
    return None


# ---- parent side -------------------------------------------------------------------------------
class Worker:
    def __init__(self, framework, model_name, spec, args):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(child, framework, model_name, spec, args.backend,
                                                     args.keras_backend), daemon=True)
        self.proc.start()
        status, self.settings = self.conn.recv()

    def ask(self, cmd):
        self.conn.send(cmd)
        return self.conn.recv()

    def stop(self):
        self.conn.send("stop")
        peak = self.conn.recv()
        self.proc.join(timeout=60)
        return peak


def bench_model(name, args):
    from minicnn import zoo
    entry = zoo.get(name)
    full_train = CIFAR_TRAIN[entry.validation]
    steps_full = math.ceil(full_train / entry.batch_size)
    if args.quick:
        spec = {"source": "synthetic", "n_train": args.steps * entry.batch_size, "n_predict": 1000}
    else:
        spec = {"source": args.data, "n_train": full_train, "n_predict": 10_000}
    scale = steps_full / math.ceil(spec["n_train"] / entry.batch_size)       # steps measured -> one epoch
    frameworks = ["minicnn"] + ([] if args.no_keras else ["keras"])
    workers = {f: Worker(f, name, spec, args) for f in frameworks}
    times = {f: [] for f in frameworks}
    for epoch in range(args.epochs):
        for f in frameworks:                                                 # alternate, epoch by epoch
            times[f].append(workers[f].ask("epoch") * scale)
            print(f"  {name} {f:8s} epoch {epoch + 1}: {times[f][-1]:.2f} s (per full epoch)", flush=True)
    predicts = {f: [] for f in frameworks}
    for _ in range(args.predict_repeats):                                    # alternate here too
        for f in frameworks:
            predicts[f].append(workers[f].ask("predict") * (10_000 / spec["n_predict"]))
    result = {"model": name, "batch_size": entry.batch_size, "steps_per_epoch": steps_full,
              "train_images": full_train, "measured_images": spec["n_train"], "data": spec["source"]}
    for f in frameworks:
        steady = times[f][1:] or times[f]
        predict = statistics.median(predicts[f])
        prof = workers[f].ask("profile") if (args.profile and f == "minicnn") else None
        result[f] = {"epoch_seconds": times[f], "first_epoch_s": times[f][0],
                     "steady_epoch_s": statistics.median(steady), "images_per_s": full_train / statistics.median(steady),
                     "predict_10k_s": predict, "predict_seconds": predicts[f], "settings": workers[f].settings}
        if prof:
            result[f]["profile_ms"] = prof
        result[f].update(workers[f].stop())
    m = result["minicnn"]
    work = m["settings"]["train_gflop_per_image"] * full_train
    m["train_gflops_per_s"] = work / m["steady_epoch_s"]
    sgemm = m["settings"].get("sgemm_gflops")
    if sgemm:
        m["fraction_of_sgemm"] = m["train_gflops_per_s"] / sgemm
    if "keras" in result:
        k = result["keras"]
        k["train_gflops_per_s"] = work / k["steady_epoch_s"]
        if sgemm:
            k["fraction_of_sgemm"] = k["train_gflops_per_s"] / sgemm
        pairs = [kt / mt for kt, mt in zip(times["keras"][1:], times["minicnn"][1:])] or \
            [times["keras"][0] / times["minicnn"][0]]
        result["epoch_ratios_keras_over_minicnn"] = pairs
        result["ratio_keras_over_minicnn"] = statistics.median(pairs)
        result["predict_ratio_keras_over_minicnn"] = statistics.median(
            kt / mt for kt, mt in zip(predicts["keras"], predicts["minicnn"]))
    return result


def markdown(results, args):
    head = ("| model | minicnn s/epoch (first) | Keras s/epoch (first) | Keras / minicnn | minicnn img/s | "
            "predict 10k: minicnn / Keras (s) | peak RSS MB: minicnn / Keras | GFLOP/s: minicnn / Keras "
            "(share of SGEMM) |")
    rows = [head, "|" + " --- |" * 8]
    for r in results:
        m, k = r["minicnn"], r.get("keras")
        fmt = lambda d, key: "-" if d is None else f"{d[key]:.2f}"

        def rate(d):
            if d is None:
                return "-"
            share = d.get("fraction_of_sgemm")
            return f"{d['train_gflops_per_s']:.0f}" + ("" if share is None else f" ({share:.0%})")
        rows.append(f"| {r['model']} | {m['steady_epoch_s']:.2f} ({m['first_epoch_s']:.2f}) | "
                    f"{fmt(k, 'steady_epoch_s')} ({fmt(k, 'first_epoch_s')}) | "
                    f"{'-' if k is None else format(r['ratio_keras_over_minicnn'], '.2f')} | {m['images_per_s']:.0f} | "
                    f"{m['predict_10k_s']:.2f} / {fmt(k, 'predict_10k_s')} | "
                    f"{m['peak_rss_mb']:.0f} / {'-' if k is None else format(k['peak_rss_mb'], '.0f')} | "
                    f"{rate(m)} / {rate(k)} |")
    sgemm = next((r["minicnn"]["settings"].get("sgemm_gflops") for r in results), None)
    if sgemm:
        rows += ["", f"Large SGEMM on this machine (numpy.matmul 2048^2 float32, all threads): {sgemm:.0f} GFLOP/s."]
    if any(r["minicnn"].get("gpu_mb") is not None for r in results):
        rows += ["", "| model | GPU memory MB: minicnn pools / Keras-JAX peak in use |", "| --- | --- |"]
        for r in results:
            k = r.get("keras") or {}
            fmt = lambda v: "-" if v is None else f"{v:.0f}"
            rows.append(f"| {r['model']} | {fmt(r['minicnn'].get('gpu_mb'))} / {fmt(k.get('gpu_mb'))} |")
    for r in results:
        prof = r["minicnn"].get("profile_ms")
        if prof:
            rows += ["", f"Per-layer time of one minicnn step, {r['model']} (ms, batch {r['batch_size']}):", "",
                     "| layer | forward | backward |", "| --- | --- | --- |"]
            rows += [f"| {row['layer']} | {row['forward']:.3f} | {row['backward']:.3f} |" for row in prof["layers"]]
            rows += [f"| loss | {prof['loss']:.3f} | |", f"| optimizer | | {prof['optimizer']:.3f} |",
                     f"| **step** | | **{prof['step']:.3f}** |"]
    return "\n".join(rows)


def _git_commit():
    """The checkout's commit (with '+' when it has uncommitted changes), or None outside git."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head + ("+" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv=None):
    from minicnn import zoo
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cifar_models = [n for n, e in zoo.MODELS.items() if e.dataset == "cifar10" and e.keras_twin]   # the tutorials
    p.add_argument("--models", default=",".join(cifar_models), help="comma-separated zoo names")
    p.add_argument("--epochs", type=int, default=3, help="epochs per framework (the first is reported apart)")
    p.add_argument("--quick", action="store_true", help="--steps steps per epoch on synthetic data")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--predict-repeats", type=int, default=3, help="predict timings per framework (alternated)")
    p.add_argument("--data", default="cifar10", choices=["cifar10", "synthetic"])
    p.add_argument("--no-keras", action="store_true", help="minicnn only (when Keras is not installed)")
    p.add_argument("--keras-backend", default="tensorflow", choices=["tensorflow", "jax", "torch"])
    p.add_argument("--backend", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--profile", action="store_true", help="per-layer forward/backward time of one minicnn step")
    p.add_argument("--tf32", action="store_true", help="GPU: let minicnn's float32 GEMMs use TF32 tensor cores")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    os.environ["MINICNN_TF32"] = "1" if args.tf32 else "0"          # read by the workers at import
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX takes memory as it needs it
    for m in models:
        zoo.get(m)
    results = []
    for m in models:
        print(f"{m}:", flush=True)
        results.append(bench_model(m, args))
    stamp = datetime.date.today().isoformat()
    machine = f"{platform.node() or 'host'}-{args.backend}".replace(" ", "_")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"date": stamp, "machine": platform.node(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
              "commit": _git_commit(),
              "command": " ".join([pathlib.Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
              "args": vars(args), "results": results}
    from minicnn.utils import write_json
    write_json(out / f"{stamp}-{machine}.json", record)
    table = markdown(results, args)
    (out / f"{stamp}-{machine}.md").write_text(table + "\n")
    print("\n" + table)
    print(f"\nwrote {out / f'{stamp}-{machine}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
