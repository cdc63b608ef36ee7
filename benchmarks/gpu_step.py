#!/usr/bin/env python
"""Time one training step of zoo models on the GPU: eager vs replayed CUDA graph, per GEMM precision.

    python benchmarks/gpu_step.py                         # tutorial000 and tutorial004
    python benchmarks/gpu_step.py --models tutorial000 --replays 500

For each model and math mode: ms per eager step (every kernel launched from Python), ms per
graph replay (CUDA events around --replays replays, after a warm-up), the implied seconds per
epoch (45k or 50k images at the tutorial's batch size), and the model's compute floor
(2 x multiply-adds of the forward x 3 for forward + backward, over the measured GEMM rate).
Synthetic data (the step's cost does not depend on the pixel values). Writes JSON next to the
other results when --out is given.
"""
import argparse
import json
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def forward_flops(model):
    """2 x multiply-adds of one example's forward pass through Conv2D and Dense layers."""
    from minicnn.layers import Conv2D, Dense
    total = 0
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            OH, OW, F = layer.output_shape
            KH, KW = layer.kernel_size
            total += 2 * OH * OW * F * KH * KW * layer.input_shape[-1]
        elif isinstance(layer, Dense):
            total += 2 * layer.input_shape[-1] * layer.units
    return total


def gemm_tflops(precision):
    import cupy
    from minicnn.kernels import cublas
    cublas.set_precision(precision)
    a = cupy.random.random((4096, 4096), dtype=cupy.float32)
    b = cupy.random.random((4096, 4096), dtype=cupy.float32)
    out = cupy.empty_like(a)
    for _ in range(3):
        cublas.gemm(a, b, out=out)
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(20):
        cublas.gemm(a, b, out=out)
    end.record()
    end.synchronize()
    return 20 * 2 * 4096 ** 3 / (cupy.cuda.get_elapsed_time(start, end) / 1e3) / 1e12


_PROFILED = ("im2col", "col2im", "maxpool_forward", "maxpool_backward", "avgpool_forward", "avgpool_backward",
             "bias_activation", "bias_activation_backward", "dropout_forward", "advance_cursor",
             "softmax_cross_entropy", "adam_device", "rmsprop_device", "sgd_device", "gather_rows", "accumulate_stats",
             "max_norm", "batchnorm_forward", "batchnorm_backward", "gelu", "gelu_backward")


def profile_step(trainer, batch_size, repeats=20, rounds=5):
    """GPU time of every minicnn kernel call of one training step: each recorded call is replayed
    `repeats` x `rounds` times inside a CUDA graph of its own (so launch gaps drop out) and timed
    with events. Returns {family: ms per step}; what the step's graph takes beyond their sum is
    CuPy's own elementwise kernels (logits, dropout backward, constraints) and launch gaps."""
    import cupy
    from minicnn.kernels import cublas, gpu
    records, originals = [], {}
    # a kernel is called through the gpu package (kernels/__init__.py) and, inside its family module
    # (e.g. conv2d_forward -> im2col in gpu/conv.py), through that module's globals: wrap every binding
    modules = [gpu, cublas] + [m for k, m in list(sys.modules.items()) if k.startswith("minicnn.kernels.gpu.")]

    def wrap(name):
        fn = getattr(cublas if name == "gemm" else gpu, name)

        def wrapper(*args, **kwargs):
            label = name
            if name == "gemm":
                a, b = args[0], args[1]
                label = f"gemm {a.shape[0]}x{a.shape[1]}x{b.shape[1]}"
            records.append((label, fn, args, kwargs))
            return fn(*args, **kwargs)
        for module in modules:
            if getattr(module, name, None) is fn:
                originals[(module, name)] = fn
                setattr(module, name, wrapper)
    for name in _PROFILED:
        wrap(name)
    wrap("gemm")
    try:
        trainer.cursor.fill(0)
        trainer._step(batch_size)
    finally:
        for (module, name), fn in originals.items():
            setattr(module, name, fn)
    times = {}
    stream = trainer.stream
    for label, fn, args, kwargs in records:
        stream.begin_capture()
        for _ in range(repeats):
            fn(*args, **kwargs)
        graph = stream.end_capture()
        graph.launch(stream)
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record(stream)
        for _ in range(rounds):
            graph.launch(stream)
        end.record(stream)
        end.synchronize()
        family = label.split(" ")[0] if not label.startswith("gemm") else label
        times[family] = times.get(family, 0.0) + cupy.cuda.get_elapsed_time(start, end) / (repeats * rounds)
    return times, len(records)


def split(profile_ms, graph_ms):
    """The step's time in four parts: GEMMs, im2col/col2im, minicnn's other (elementwise, pooling,
    loss, optimizer) kernels, and the rest of the graph step: CuPy's own small kernels + launch gaps."""
    gemm = sum(v for k, v in profile_ms.items() if k.startswith("gemm"))
    cols = profile_ms.get("im2col", 0.0) + profile_ms.get("col2im", 0.0)
    other = sum(profile_ms.values()) - gemm - cols
    return {"gemm": gemm, "im2col_col2im": cols, "elementwise_and_other_kernels": other,
            "cupy_ops_and_gaps": max(graph_ms - gemm - cols - other, 0.0)}


def time_model(name, precision, replays, eager_steps, profile=False):
    import cupy
    import numpy as np
    import minicnn
    from minicnn import zoo
    from minicnn.kernels import cublas
    from minicnn.training.graphed import DeviceLoop
    cublas.set_precision(precision)
    minicnn.utils.set_random_seed(0)
    entry = zoo.get(name)
    model = entry.build()
    Bsz = entry.batch_size
    rng = np.random.default_rng(0)
    n = Bsz * 64
    x = rng.random((n,) + entry.input_shape, dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    model.trainer.prepare()
    trainer = DeviceLoop(model.trainer, x, y, Bsz, epochs=1000, cuda_graph=True)
    with trainer.stream:
        trainer.order.set(rng.permutation(n).astype(np.int32), stream=trainer.stream)

        def rewind():
            trainer.cursor.fill(0)
        rewind()
        trainer._step(Bsz)                                      # compile + allocate
        trainer.stream.synchronize()
        # eager steps
        t0 = time.perf_counter()
        for k in range(eager_steps):
            if k % 60 == 59:
                rewind()
            trainer._step(Bsz)
        trainer.stream.synchronize()
        eager_ms = (time.perf_counter() - t0) / eager_steps * 1e3
        rewind()
        trainer._capture()
        trainer.stream.synchronize()
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        done = 0
        start.record(trainer.stream)
        wall = time.perf_counter()
        while done < replays:
            rewind()
            for _ in range(min(60, replays - done)):
                trainer.graph.launch(trainer.stream)
                done += 1
        end.record(trainer.stream)
        end.synchronize()
        wall = time.perf_counter() - wall
        graph_ms = cupy.cuda.get_elapsed_time(start, end) / replays
        prof = profile_step(trainer, Bsz) if profile else None
    train_images = 45_000 if entry.validation == "first5000" else 50_000
    steps = -(-train_images // Bsz)
    return {"model": name, "precision": precision, "batch_size": Bsz, "eager_ms_per_step": eager_ms,
            "graph_ms_per_step": graph_ms, "graph_wall_ms_per_step": wall / replays * 1e3,
            "epoch_s_eager": eager_ms * steps / 1e3, "epoch_s_graph": graph_ms * steps / 1e3,
            "forward_gflop_per_image": forward_flops(model) / 1e9, "steps_per_epoch": steps,
            "train_images": train_images, **({"profile_ms": prof[0], "kernel_calls": prof[1]} if prof else {})}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="tutorial000,tutorial004")
    p.add_argument("--replays", type=int, default=300)
    p.add_argument("--eager-steps", type=int, default=100)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--profile", action="store_true", help="GPU time of each kernel family in one step")
    p.add_argument("--precisions", default="fp32,tf32", help="GEMM precisions to time (fp32, tf32, bf16, fp16)")
    args = p.parse_args(argv)
    import cupy
    import minicnn
    minicnn.set_backend("gpu")
    precisions = [q.strip() for q in args.precisions.split(",") if q.strip()]
    rates = {q: gemm_tflops(q) for q in precisions}
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        for q in precisions:
            r = time_model(name, q, args.replays, args.eager_steps, profile=args.profile)
            flops = 3 * r["forward_gflop_per_image"] * 1e9 * r["train_images"]
            r["gemm_tflops_4096"] = rates[q]
            r["compute_floor_epoch_s"] = flops / (rates[q] * 1e12)
            if "profile_ms" in r:
                r["split_ms"] = split(r["profile_ms"], r["graph_ms_per_step"])
            rows.append(r)
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"\n{device}, CuPy {cupy.__version__}; float32 GEMM 4096^3: "
          + ", ".join(f"{q} {rates[q]:.1f} TFLOP/s" for q in precisions) + "\n")
    print("| model | math | eager ms/step | graph ms/step | epoch s (eager) | epoch s (graph) | compute floor s/epoch |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['precision']} | {r['eager_ms_per_step']:.3f} | "
              f"{r['graph_ms_per_step']:.3f} | {r['epoch_s_eager']:.2f} | {r['epoch_s_graph']:.3f} | "
              f"{r['compute_floor_epoch_s']:.3f} |")
    for r in rows:
        if "profile_ms" in r:
            total = sum(r["profile_ms"].values())
            print(f"\n{r['model']} {r['precision']}: {r['kernel_calls']} minicnn kernel calls per step, "
                  f"{total:.3f} ms of kernel time (each call timed alone inside a graph); graph step "
                  f"{r['graph_ms_per_step']:.3f} ms, the rest = CuPy elementwise ops + gaps")
            for k, v in sorted(r["profile_ms"].items(), key=lambda kv: -kv[1])[:14]:
                print(f"  {k:34s} {v * 1e3:8.1f} us")
            print("  split: " + ", ".join(f"{k} {v * 1e3:.1f} us" for k, v in r["split_ms"].items()))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps({"device": device, "cupy": cupy.__version__,
                                                      "gemm_tflops": rates,
                                                      "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
