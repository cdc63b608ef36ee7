"""What fit, evaluate and predict check and feed: the input checks, the epoch's sample order and
the batches.

Every check runs before any computation and names what was expected and what came, so a bad
array fails here, not deep inside NumPy.
"""
import math
import warnings

import numpy as np

from minicnn import backend, kernels
from minicnn.layers.base import as_array, is_int, is_real, is_tf_dataset, real_array, warn_unscaled

INFERENCE_BYTES = 8 << 20       # evaluate/predict: the largest activation of one chunk of images


def first_non_finite(x):
    """Index of the first sample of x holding NaN or inf, or None. Host arrays are scanned in
    chunks of ~4M values (no full-size temporary); device arrays in one pass."""
    if not isinstance(x, np.ndarray):
        finite = backend.xp.isfinite(x).reshape(len(x), -1).all(axis=1)
        return None if bool(finite.all()) else int(backend.xp.argmin(finite))
    step = max(1, (1 << 22) // max(1, int(np.prod(x.shape[1:]))))
    for start in range(0, len(x), step):
        finite = np.isfinite(x[start:start + step]).reshape(min(step, len(x) - start), -1).all(axis=1)
        if not finite.all():
            return start + int(np.argmin(finite))
    return None


def check_x(model, x, what="x"):
    """Validate inputs for `model` (building it from x's shape if needed); returns an array. A direct
    call model(x) checks with the same pieces (layers/base.call_input)."""
    x = real_array(x, what)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)}); there is nothing to train or predict on")
    if not model.built:
        model.build(model._declared_input_shape() or x.shape[1:])
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"model {model.name!r} expects {what} of shape (N, {', '.join(map(str, model.input_shape))}), "
                         f"got {tuple(x.shape)}")
    if np.issubdtype(x.dtype, np.floating):
        first = first_non_finite(x)
        if first is not None:
            raise ValueError(f"{what} contains NaN or infinite values (first at sample {first}); "
                             "clean or re-scale the data")
    else:
        warn_unscaled(model, x, what, stacklevel=5)
    return x


def check_y(model, y, n, what="y"):
    """Labels checked by the model's loss (one-hot, class ids or targets), n of them, on the host."""
    if y is None:
        raise ValueError(f"{what} is None; fit/evaluate need labels")
    y = model.loss.check_labels(backend.to_host(as_array(y, what)), model.output_shape[-1])
    if len(y) != n:
        raise ValueError(f"{what} has {len(y)} samples but x has {n}; they must match")
    return y


def check_batch_size(batch_size, what="batch_size"):
    if batch_size is None:
        return 32
    if not is_int(batch_size) or batch_size <= 0:
        raise ValueError(f"{what} must be a positive int, got {batch_size!r}")
    return int(batch_size)


def check_fit_numbers(epochs, initial_epoch, validation_split, verbose):
    """fit's numeric arguments checked; returns verbose as 0, 1 or 2."""
    if not is_int(epochs) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if not is_int(initial_epoch) or initial_epoch < 0:
        raise ValueError(f"initial_epoch must be an int >= 0, got {initial_epoch!r}")
    if not is_real(validation_split) or not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    return check_verbose(verbose)


def check_verbose(verbose):
    """fit's, evaluate's and predict's verbose as 0 (silent), 1 (a progress bar) or 2 (one line); 'auto' is 1."""
    verbose = 1 if verbose == "auto" else verbose
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return verbose


def fit_data(model, x, y, validation_data, validation_split):
    """Checked training arrays and the validation pair (given, or the LAST fraction, as Keras)."""
    x = check_x(model, x)
    y = check_y(model, y, len(x))
    if validation_data is not None:
        return x, y, validation_arrays(model, validation_data)
    if not validation_split:
        return x, y, None
    split_at = int(math.floor(len(x) * (1 - validation_split)))
    if split_at == 0 or split_at == len(x):
        raise ValueError(f"validation_split={validation_split} leaves an empty training or validation "
                         f"set for {len(x)} samples")
    return x[:split_at], y[:split_at], (x[split_at:], y[split_at:])


def validation_arrays(model, validation_data):
    """fit's validation_data (x_val, y_val), checked like the training arrays. (x_val, y_val, None)
    is accepted as Keras's form without sample weights; with weights it is refused, as minicnn
    weighs every sample the same (it would otherwise report an unweighted val_loss silently)."""
    if is_tf_dataset(validation_data):
        as_array(validation_data, "validation_data")                  # (its error)
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        got = type(validation_data).__name__
        if isinstance(validation_data, (tuple, list)):
            got = f"a {got} of {len(validation_data)} item{'s' if len(validation_data) != 1 else ''}"
        elif hasattr(validation_data, "shape"):
            got = f"an array of shape {tuple(validation_data.shape)}"
        raise ValueError(f"validation_data must be a tuple (x_val, y_val), or a generator or Sequence of such "
                         f"batches; got {got}")
    if len(validation_data) == 3 and validation_data[2] is not None:
        raise ValueError("validation_data (x_val, y_val, sample_weight) has sample weights: minicnn weighs every "
                         "sample the same (give (x_val, y_val))")
    xv = check_x(model, validation_data[0], "validation x")
    return xv, check_y(model, validation_data[1], len(xv), "validation y")


def check_augment(augment):
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be a callable f(x, epoch) -> x (e.g. minicnn.augment.FlipTranslate()), "
                        f"got {augment!r}")


def augmented(augment, x, epoch):
    """fit's per-epoch augmentation of the training array x (or x itself), checked."""
    if augment is None:
        return x
    out = augment(x, epoch)
    if getattr(out, "shape", None) != x.shape or getattr(out, "dtype", None) != x.dtype or type(out) is not type(x):
        raise ValueError(f"augment({augment!r}) must return an array like its input ({type(x).__name__} "
                         f"{x.dtype} {tuple(x.shape)}), got {type(out).__name__} "
                         f"{getattr(out, 'dtype', None)} {tuple(getattr(out, 'shape', ()))}")
    return out


def epoch_order(seed, epoch, n, shuffle):
    """Sample order of one epoch: a permutation keyed by (model seed, epoch), so a run resumed
    with initial_epoch sees the same batches as an uninterrupted one."""
    if shuffle in (False, None):
        return np.arange(n)
    if shuffle == "batch":
        raise ValueError("shuffle='batch' is not supported; use True or False")
    return np.random.default_rng((seed, epoch)).permutation(n)


def batches(x, y, order, batch_size):
    """Yield (xb, yb) in `order`, batch_size rows at a time, gathered into one reused float buffer
    where the backend computes (kernels.take_rows)."""
    buf = backend.xp.empty((min(batch_size, len(order)),) + tuple(x.shape[1:]), dtype=backend.floatx())
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        xb = kernels.take_rows(x, idx, buf[:len(idx)])
        yield xb, (None if y is None else backend.to_device(y[idx]))


def inference_batches(model, x, y, batch_size):
    """evaluate's and predict's batches: the user's batch_size, cut into chunks whose largest
    activation stays within INFERENCE_BYTES. In inference every sample is computed on its own
    (Dropout passes through, BatchNormalization uses its moving statistics), so the chunks change
    no number, only how much memory a large batch_size would take."""
    largest = max([int(np.prod(layer.output_shape)) for layer in model.sublayers()] + [int(np.prod(x.shape[1:]))])
    chunk = max(1, INFERENCE_BYTES // (largest * np.dtype(backend.floatx()).itemsize))
    return batches(x, y, np.arange(len(x)), min(batch_size, chunk))


# ---- batches from a generator or a Keras Sequence / PyDataset ---------------------------------------
def is_batch_source(x):
    """True for what yields batches rather than being the data: a Python generator or iterator, or
    a Keras-style Sequence / PyDataset (indexable batches with a length, e.g. ImageDataGenerator.flow)."""
    if x is None or hasattr(x, "shape") or isinstance(x, (list, tuple, dict, str)):
        return False
    return hasattr(x, "__next__") or (hasattr(x, "__getitem__") and hasattr(x, "__len__"))


class BatchSource:
    """The batches of a generator or Sequence, one epoch at a time.

    A Sequence (len + getitem) gives batch i of an epoch as source[i] and hears on_epoch_end(), as
    Keras's PyDataset does; a generator is read on across epochs (steps_per_epoch batches each,
    or until it is exhausted). Each batch is (x, y), (x, y, sample_weight) with sample_weight None,
    or x alone (predict)."""

    def __init__(self, source, what="x"):
        self.source, self.what = source, what
        self.indexable = hasattr(source, "__getitem__") and hasattr(source, "__len__")
        self._iterator = None if self.indexable else iter(source)
        self._pending = None                      # a generator's batch read early (to build the model)
        self.given = 0                            # how many batches the last batches(n) gave

    def steps(self, steps):
        """Batches per epoch: `steps` (steps_per_epoch, validation_steps) or the Sequence's length."""
        if steps is not None:
            if not is_int(steps) or steps <= 0:
                raise ValueError(f"steps_per_epoch / validation_steps / steps must be a positive int, got {steps!r}")
            return int(steps)
        if self.indexable:
            if len(self.source) == 0:
                raise ValueError(f"{self.what} is an empty Sequence (len 0): there is nothing to train or predict on")
            return len(self.source)
        raise ValueError(f"{self.what} is a generator without a length: give steps_per_epoch (fit), validation_steps "
                         "(its validation data) or steps (evaluate, predict): how many batches make an epoch")

    def first(self):
        """The first batch (without using it up): what a model not yet built takes its shape from."""
        if self.indexable:
            return self.source[0] if len(self.source) else None
        if self._pending is None:
            self._pending = self._next()
        return self._pending

    def _next(self):
        try:
            return next(self._iterator)
        except StopIteration:
            return None

    def batches(self, n):
        """The next n batches (fewer if a generator runs out); `given` counts them."""
        self.given = 0
        for i in range(n):
            if self.indexable:
                batch = self.source[i % len(self.source)]
            else:
                batch, self._pending = (self._pending, None) if self._pending is not None else (self._next(), None)
                if batch is None:
                    return
            self.given += 1
            yield batch

    def empty(self, purpose):
        """The error for a source that gave no batch at all (Keras's, naming which source)."""
        received = ("an empty Sequence (len 0)" if self.indexable else
                    "an empty generator (or one that an earlier fit, evaluate or predict used up)")
        return ValueError(f"{self.what} gave no batch to {purpose}: the generator or Sequence must yield at least "
                          f"one batch. Received {received}")

    def check_given(self, n, purpose):
        """After batches(n): none is an error; fewer than n warns, as Keras warns, and `purpose` uses those."""
        if self.given == 0:
            raise self.empty(purpose)
        if self.given < n:
            warnings.warn(f"Your input ran out of data: {self.what} gave {self.given} of the {n} batches asked for "
                          f"(steps={n}); the result is computed on those {self.given}", stacklevel=5)

    def epoch_end(self):
        if self.indexable and callable(getattr(self.source, "on_epoch_end", None)):
            self.source.on_epoch_end()


def split_batch(batch, labels=True, what="batch"):
    """(x, y) of one batch from a source: (x, y), (x, y, None) or, without labels, x or (x,)."""
    if isinstance(batch, (tuple, list)) and not hasattr(batch, "shape"):
        if len(batch) == 3:
            if batch[2] is not None:
                raise ValueError(f"a {what} with sample weights: minicnn weighs every sample the same "
                                 "(give batches (x, y))")
            batch = batch[:2]
        if len(batch) == 2:
            return batch[0], batch[1]
        if len(batch) == 1 and not labels:
            return batch[0], None
        raise ValueError(f"a {what} must be (x, y) or (x, y, sample_weight), got a {type(batch).__name__} of "
                         f"{len(batch)} items")
    if labels:
        raise ValueError(f"a {what} must be (x, y): fit and evaluate need labels, got {type(batch).__name__}")
    return batch, None
