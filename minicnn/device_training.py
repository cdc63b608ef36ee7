"""Training on the GPU: data uploaded once, batches gathered on the device, CUDA-graph steps.

``Sequential.fit`` hands its epochs to a ``DeviceTrainer`` when the GPU backend runs minicnn's
CUDA kernels. What changes compared with the CPU loop (the math does not change):

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

from minicnn import backend, kernels

_GRAPH_POOL = None


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


class DeviceTrainer:
    """Runs the epochs of one ``fit`` call on the GPU (see the module docstring)."""

    def __init__(self, model, x, y, batch_size, epochs, cuda_graph=True, augment=None):
        import cupy
        from minicnn.kernels import cublas, gpu
        self.model, self.batch_size = model, int(batch_size)
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
                opt.build([(path, layer.params[k]) for path, layer, k in model._variables])
            self.steps = -(-self.n // self.batch_size)
            if opt._on_device():
                opt.prepare_device(self.steps * max(1, epochs))   # the learning rate of every planned step
            for layer in model.sublayers():
                if hasattr(layer, "prepare_device"):
                    layer.prepare_device()
        self.use_graph = bool(cuda_graph) and opt._on_device()
        self.graph = None
        self.seen = 0
        # Lookahead syncs every k updates: a host decision, so it runs here between steps (eagerly)
        opt.defer_lookahead = bool(opt.lookahead_steps)
        self.updates = opt.iterations if opt.lookahead_steps else 0
        self.weights = [(path, layer.params[k]) for path, layer, k in model._variables]

    # ---- one step -------------------------------------------------------------------------------
    def _step(self, rows):
        """Gather the next `rows` examples and train on them (all on the device, no host sync)."""
        from minicnn.kernels import gpu
        xb, yb = self.xb[:rows], self.yb[:rows]
        gpu.gather_rows(self.x, self.order, self.cursor, xb)
        gpu.gather_rows(self.y, self.order, self.cursor, yb)
        gpu.advance_cursor(self.cursor, rows)
        self.model._device_train_step(xb, yb, self.stats)

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
            from minicnn.model import augmented
            self.x[...] = augmented(self.augment, self.source, epoch)
        order = model._epoch_order(epoch, self.n, shuffle).astype(np.int32)
        self.order.set(order, stream=self.stream)
        self.cursor.fill(0)
        self.stats.fill(0)
        self.seen = 0
        full = self.n // self.batch_size
        for step in range(self.steps):
            model._where = f"in epoch {epoch + 1}, step {step + 1}"
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
            cbs.on_train_batch_end(step, self.logs)
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
    from minicnn.kernels import gpu
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


def evaluate(model, x, y, batch_size):
    """(loss sum, correct count) over device or host arrays, batch by batch on the device."""
    import cupy
    stats = cupy.zeros(3, dtype=np.float64)
    for _, xb, yb in _batches_in_order(upload(x, backend.floatx()), upload(y), batch_size):
        model._device_loss(xb, yb, stats, training=False)
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
