"""Per-layer forward/backward time of one minicnn training step (what `bench_speed.py --profile` prints)."""
import time

import numpy as np


def profile_step(model, x, y, repeats=30):
    """Average milliseconds per layer (forward, backward), loss and optimizer over `repeats` steps.

    The step is the one training/steps.train_step runs, unrolled so each piece can be timed; the
    softmax the loss owns (compile) is timed with the loss.
    """
    from minicnn import backend, kernels
    from minicnn.activations import SoftmaxInTheLoss
    from minicnn.training import data, steps
    model.train_on_batch(x, y)                                # warm-up (compilation)
    model.trainer.prepare()
    xb, yb = backend.to_device(x, backend.floatx()), backend.to_device(data.check_y(model, y, len(x)))
    layers = model.layers
    fwd, bwd = np.zeros(len(layers)), np.zeros(len(layers))
    loss_t = opt_t = step_t = 0.0
    for _ in range(repeats):
        t_step = time.perf_counter()
        h = xb
        for i, layer in enumerate(layers):
            t = time.perf_counter()
            head = {"activation": SoftmaxInTheLoss()} if model._fused and i == len(layers) - 1 else {}
            h = layer.forward(h, training=True, **head)                 # the head's logits, when fused
            fwd[i] += time.perf_counter() - t
        t = time.perf_counter()
        if model._fused:
            model.logits = h
            h = kernels.activation_forward(h, "softmax")
            _, d = model.loss.from_logits_of_softmax(yb, model.logits)
        else:
            _, d = model.loss(yb, h)
        loss_t += time.perf_counter() - t
        for i in reversed(range(len(layers))):
            t = time.perf_counter()
            d = layers[i].backward(d)
            bwd[i] += time.perf_counter() - t
            if d is None:
                break
        t = time.perf_counter()
        model.optimizer.apply(steps.update_list(model.trainer.variables))
        opt_t += time.perf_counter() - t
        step_t += time.perf_counter() - t_step
    ms = 1e3 / repeats
    return {"layers": [{"layer": f"{l.name} ({type(l).__name__})", "forward": f * ms, "backward": b * ms}
                       for l, f, b in zip(layers, fwd, bwd)],
            "loss": loss_t * ms, "optimizer": opt_t * ms, "step": step_t * ms}
