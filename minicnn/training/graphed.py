"""The GPU's training strategy: data uploaded once, batches gathered on the device, CUDA-graph steps.

``Trainer.fit`` hands its epochs to a ``DeviceLoop`` when the GPU backend runs minicnn's CUDA
kernels (``usable()``); evaluate and predict use ``evaluate_sums`` and ``predict`` here then.
This module, ``backend.py`` and ``kernels/`` are the only places that know which backend runs. What changes compared with the CPU loop (the math does not change):

  - the training arrays go to the device once (uint8 stays uint8: 4x less memory); each step a
    kernel gathers the batch rows named by the epoch's permutation (also on the device) into one
    fixed input buffer, casting to float; a device cursor says where the next batch starts;
  - the loss sum and the number of correct predictions are accumulated on the device by the
    fused softmax cross-entropy kernel; the host reads them only when the progress bar refreshes
    and at the end of the epoch: a step never waits for the GPU;
  - with ``cuda_graph=True`` (the default) the first full-size step runs eagerly (it compiles the
    kernels and allocates every buffer), the second is captured into a CUDA graph, and every
    later full-size step replays that graph: one launch instead of ~100 from Python. Everything
    that changes per step is read from device memory inside the graph (the batch cursor, the
    optimizer's step count and learning-rate table, the dropout counters), so a replay is
    exactly the step an eager call would run. The last, smaller batch of an epoch runs eagerly.
  - between steps, on the host's schedule: ``fit(augment=...)`` writes each epoch's augmented copy
    of the training set into one fixed device buffer (which the gather reads), and Lookahead syncs
    the weights every k updates (eager CuPy operations between two graph replays).

Memory rule for graphs: the temporaries a captured step allocates must keep their addresses
for every replay, so warm-up and capture allocate from a private memory pool that eager code
never uses (``_graph_pool``); persistent buffers (weights, gradients, optimizer slots, counters,
the batch buffers) are created before it and only ever updated in place.
"""
import numpy as np

from minicnn import backend, callbacks, kernels, losses
from minicnn.kernels import cublas, gpu
from minicnn.training import data, steps

_GRAPH_POOL = None


def usable():
    """True when the GPU backend runs minicnn's CUDA kernels (what this strategy needs)."""
    return kernels.device_kernels()


def _graph_pool():
    """The process-wide private pool for captured steps (one graph is alive at a time: fit's)."""
    global _GRAPH_POOL
    if _GRAPH_POOL is None:
        import cupy
        _GRAPH_POOL = cupy.cuda.MemoryPool()
    return _GRAPH_POOL


def upload(x, dtype=None):
    """A device copy of a host array (device arrays are used as they are). Integer images stay
    integer (the gather kernel casts each batch); other types become `dtype`."""
    import cupy
    if isinstance(x, cupy.ndarray):
        return x
    x = np.ascontiguousarray(x)
    if dtype is not None and x.dtype not in (np.uint8, np.float32, np.float64):
        x = x.astype(dtype)
    return cupy.asarray(x)


def device_loss(model, xb, yb, stats, training):
    """Forward, loss and accuracy accumulated into the device array stats (loss sum, correct
    count, last batch loss), and with training=True the backward pass. No host sync."""
    out = model.forward(xb, training=training)
    if model._fused and isinstance(model.loss, losses.CategoricalCrossentropy):
        logits = model.logits
        dz = backend.xp.empty_like(logits)
        gpu.softmax_cross_entropy(logits, yb, model.loss.label_smoothing, dz, stats)
        if training:
            model.backward(dz)
        return
    loss, dout = model.loss(yb, out)
    gpu.accumulate_stats(stats, backend.xp.asarray(loss, dtype=out.dtype), steps.count_correct(out, yb), len(xb))
    if training:
        model.backward(dout)


def device_train_step(model, xb, yb, stats, variables):
    """One update on one device batch (what a CUDA graph captures)."""
    with kernels.overlap():                  # weight gradients on a side stream, joined here
        device_loss(model, xb, yb, stats, training=True)
    penalty = steps.regularize(variables, add_gradients=True)
    if not isinstance(penalty, float):       # some weight has a regularizer: its penalty in the loss
        stats[0] += penalty * len(xb)
        stats[2] += penalty
    model.optimizer.apply(steps.update_list(variables))


class DeviceLoop:
    """Runs the epochs of one ``fit`` call on the GPU (see the module docstring)."""
    ran_dry = False             # (arrays never run out of batches; steps.SourceLoop's generators may)

    def __init__(self, trainer, x, y, batch_size, epochs, cuda_graph=True, augment=None):
        import cupy
        model = trainer.model
        self.trainer, self.model, self.batch_size = trainer, model, int(batch_size)
        dtype = np.dtype(backend.floatx())
        self.stream = cupy.cuda.Stream(non_blocking=False)
        with self.stream:
            self.x = upload(x, dtype)
            self.augment, self.source = augment, None
            if augment is not None:               # each epoch's augmented copy lands in one fixed buffer
                self.source, self.x = self.x, cupy.empty_like(self.x)
            self.y = upload(y)                     # float32 one-hot / targets, or int32 class ids
            self.n = len(self.x)
            rows = min(self.batch_size, self.n)
            self.xb = cupy.empty((rows,) + tuple(self.x.shape[1:]), dtype=dtype)
            y_dtype = self.y.dtype if self.y.dtype == np.int32 else dtype
            self.yb = cupy.empty((rows,) + tuple(self.y.shape[1:]), dtype=y_dtype)
            self.order = cupy.empty(self.n, dtype=np.int32)
            self.cursor = cupy.zeros(1, dtype=np.int64)
            self.stats = cupy.zeros(3, dtype=np.float64)    # loss sum, correct count, last batch loss
            # everything persistent exists before any private-pool allocation
            cublas._prepare()
            kernels.side_stream_object()
            gpu._done_counters(1)
            opt = model.optimizer
            if not opt.built:
                opt.build([(path, layer.params[k]) for path, layer, k in trainer.variables])
            self.steps = -(-self.n // self.batch_size)
            if opt._on_device():
                opt.prepare_device(self.steps * max(1, epochs))   # the learning rate of every planned step
            for layer in model.sublayers():
                if hasattr(layer, "prepare_device"):
                    layer.prepare_device()
        # a layer that draws its random numbers on the host (the augmentation layers) would be replayed
        # with one draw forever: such a model runs eager steps
        self.use_graph = (bool(cuda_graph) and opt._on_device()
                          and all(getattr(layer, "graph_safe", True) for layer in model.sublayers()))
        self.graph = None
        self.seen = 0
        # Lookahead syncs every k updates: a host decision, so it runs here between steps (eagerly)
        opt.defer_lookahead = bool(opt.lookahead_steps)
        self.updates = opt.iterations if opt.lookahead_steps else 0
        self.weights = [(path, layer.params[k]) for path, layer, k in trainer.variables]

    # ---- the strategy's interface (see trainer.py) ---------------------------------------------
    def place(self, pair):
        """The validation pair on the device, uploaded once."""
        with self.stream:
            return upload(pair[0], backend.floatx()), upload(pair[1])

    def context(self):
        return self.stream

    def close(self):
        self.stream.synchronize()
        opt = self.model.optimizer
        opt._dev_remaining = 0          # the next update re-reads t and the schedule
        opt.defer_lookahead = False
        self.graph = None               # releases the CUDA graph

    # ---- one step -------------------------------------------------------------------------------
    def _step(self, rows):
        """Gather the next `rows` examples and train on them (all on the device, no host sync)."""
        xb, yb = self.xb[:rows], self.yb[:rows]
        gpu.gather_rows(self.x, self.order, self.cursor, xb)
        gpu.gather_rows(self.y, self.order, self.cursor, yb)
        gpu.advance_cursor(self.cursor, rows)
        device_train_step(self.model, xb, yb, self.stats, self.trainer.variables)

    def _capture(self):
        """Run this step eagerly (it compiles the kernels and allocates every temporary in the private
        pool), then record the same step into a graph, without running it: later steps replay it."""
        import cupy
        with cupy.cuda.using_allocator(_graph_pool().malloc):
            self._step(self.batch_size)
            self.stream.begin_capture()
            try:
                self._step(self.batch_size)
            finally:
                self.graph = self.stream.end_capture()

    # ---- one epoch --------------------------------------------------------------------------------
    def train_epoch(self, epoch, shuffle, cbs):
        """One pass over the data; returns the epoch's training metrics (reads the device once)."""
        model = self.model
        if self.augment is not None:               # eager, between graph replays; same address
            self.x[...] = data.augmented(self.augment, self.source, epoch)
        order = data.epoch_order(model.seed, epoch, self.n, shuffle).astype(np.int32)
        self.order.set(order, stream=self.stream)
        self.cursor.fill(0)
        self.stats.fill(0)
        self.seen = 0
        full = self.n // self.batch_size
        for step in range(self.steps):
            self.trainer.where = f"in epoch {epoch + 1}, step {step + 1}"
            cbs.on_train_batch_begin(step)
            rows = self.batch_size if step < full else self.n - full * self.batch_size
            if rows == self.batch_size and self.use_graph:
                if self.graph is None:
                    self._capture()                # this step runs eagerly; the graph is recorded
                else:
                    self.graph.launch(self.stream)
            else:
                self._step(rows)
            if model.optimizer.lookahead_steps:
                self.updates += 1
                model.optimizer.lookahead_sync(self.weights, self.updates)
            self.seen += rows
            cbs.on_train_batch_end(step, callbacks.BatchLogs(self.logs))
            if model.stop_training:
                break
        return self.logs()

    def logs(self):
        """The epoch's running means so far (synchronises with the device)."""
        loss_sum, correct, _ = self.stats.get()
        logs = {}
        if self.model.metric_names:
            logs[self.model.metric_names[0]] = float(correct) / max(self.seen, 1)
        logs["loss"] = float(loss_sum) / max(self.seen, 1)
        return logs

    def last_batch_loss(self):
        return float(self.stats[2].get())


def _batches_in_order(xd, yd, batch_size):
    """(start, xb, yb) for consecutive batches of device arrays xd, yd (yd may be None), gathered
    into two reused buffers: x cast to floatx, labels kept int32 or cast to floatx."""
    import cupy
    dtype = np.dtype(backend.floatx())
    order = cupy.arange(len(xd), dtype=np.int32)
    rows = min(batch_size, len(xd))
    xb = cupy.empty((rows,) + tuple(xd.shape[1:]), dtype=dtype)
    yb = None if yd is None else cupy.empty((rows,) + tuple(yd.shape[1:]),
                                            dtype=yd.dtype if yd.dtype == np.int32 else dtype)
    for start in range(0, len(xd), batch_size):
        n = min(batch_size, len(xd) - start)
        gpu.gather_rows(xd, order[start:start + n], None, xb[:n])
        if yd is not None:
            gpu.gather_rows(yd, order[start:start + n], None, yb[:n])
        yield start, xb[:n], None if yd is None else yb[:n]


def evaluate_sums(model, x, y, batch_size):
    """(loss sum, correct count) over device or host arrays, batch by batch on the device."""
    import cupy
    stats = cupy.zeros(3, dtype=np.float64)
    for _, xb, yb in _batches_in_order(upload(x, backend.floatx()), upload(y), batch_size):
        device_loss(model, xb, yb, stats, training=False)
    loss_sum, correct, _ = stats.get()
    return float(loss_sum), float(correct)


def predict(model, x, batch_size):
    """Outputs for x (host or device array), batch by batch on the device; one copy to the host."""
    import cupy
    xd = upload(x, backend.floatx())
    out = cupy.empty((len(xd),) + tuple(model.output_shape), dtype=backend.floatx())
    for start, xb, _ in _batches_in_order(xd, None, batch_size):
        out[start:start + len(xb)] = model.forward(xb, training=False)
    return cupy.asnumpy(out)
