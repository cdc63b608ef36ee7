"""Optimizers with Keras 3's update rules, defaults and epsilons, updating weights in place.

Notation: g = gradient of the mean batch loss, t = number of updates already applied (0 first),
lr = learning rate at step t (a schedule is evaluated at t, before the increment).
    SGD          no momentum: w -= lr*g
                 momentum mu: m = mu*m - lr*g;  w += m   (nesterov: w += mu*m - lr*g, new m)
    RMSprop      v = rho*v + (1-rho)*g^2;  w -= lr*g / sqrt(v + eps)          (eps INSIDE the sqrt)
                 centered: a = rho*a + (1-rho)*g, denominator sqrt(v - a^2 + eps)
                 momentum: mom = mu*mom + lr*g/sqrt(...);  w -= mom
    Adam         m += (g - m)*(1-b1);  v += (g^2 - v)*(1-b2)
                 alpha = lr * sqrt(1 - b2^(t+1)) / (1 - b1^(t+1));  w -= alpha*m / (sqrt(v) + eps)
    Adadelta     a = rho*a + (1-rho)*g^2;  delta = -g * sqrt(d + eps) / sqrt(a + eps)
                 d = rho*d + (1-rho)*delta^2;  w += lr*delta     (a, d start at 0; eps inside both sqrts)
    Adagrad      a += g^2  (a starts at initial_accumulator_value);  w -= lr*g / sqrt(a + eps)
    Nadam        mu(k) = b1*(1 - 0.5*0.96^k) (momentum schedule, k 1-based);  U = mu(1)*mu(2)*...*mu(t+1)
                 m += (g - m)*(1-b1);  v += (g^2 - v)*(1-b2)
                 m_hat = mu(t+2)*m / (1 - U*mu(t+2)) + (1 - mu(t+1))*g / (1 - U);  v_hat = v / (1 - b2^(t+1))
                 w -= lr*m_hat / (sqrt(v_hat) + eps)
                 (U is Keras's u_product variable; here a function of t, recomputed, never stored)
Per-variable learning rates (minicnn's own, for recipes that train biases faster): lr_multipliers=
{'*/b': 64.0} multiplies lr in the update (not in the weight decay: a faster-learning variable is
not decayed faster) for the variables whose path matches; the first matching pattern wins.
Weight decay (Keras 3's ``weight_decay=wd``, decoupled as in AdamW): before the update above,
every variable is shrunk, w -= lr * wd * w, with lr the same step's learning rate (none for the
variables named in ``opt.exclude_from_weight_decay(var_names=[...])``, Keras's method).
After the update, constraints (max_norm) are applied; then, with use_ema=True (Keras 3's weight
moving average), each variable's average a = m a + (1 - m) w with m = ema_momentum (m = 0 at the
first step, so a starts at w), the weights overwritten by their averages every
ema_overwrite_frequency steps and at the end of fit; then t += 1.
Lookahead (Zhang et al. 2019; minicnn's own option, ``lookahead_steps=k``): every variable keeps a
slow copy s (starting at w); after every k-th update, s += r (w - s) and w = s, with r =
lookahead_rate (a number, or a schedule evaluated at the number of updates done). When fit ends
the weights are set to their slow copies (what the fast-CIFAR recipes evaluate). With
``lookahead_state=True`` the model's float state (BatchNormalization's moving statistics) gets the
same slow copy and sync, as in airbench, whose Lookahead runs over the whole state dict: the
statistics then average over many batches and match the slow weights they end with.
Keras 2 arguments: ``lr=`` is accepted for ``learning_rate``; ``decay=d`` becomes
Keras2Decay(lr, 1, d), i.e. lr_t = lr / (1 + d*t) with t counted in batches (Keras <= 2.x), whose
lr callbacks may still set, as in Keras 2.
"""
import math

import numpy as np

from minicnn import _keras_names, backend, kernels
from minicnn.layers.base import is_int, is_real


# ---- learning-rate schedules ---------------------------------------------------------------
class LearningRateSchedule:
    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return {}


class _DecaySchedule(LearningRateSchedule):
    """Shared arguments: lr(t) decays from initial_learning_rate with p = t / decay_steps."""
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _hyper("initial_learning_rate", initial_learning_rate,
                                            lambda v: 0 < v < math.inf, "a finite number > 0")
        self.decay_steps = _hyper("decay_steps", decay_steps, lambda v: 0 < v < math.inf, "a finite number > 0")
        self.decay_rate = _hyper("decay_rate", decay_rate, self.rate_ok, self.rate_rule)
        self.staircase = bool(staircase)

    def _p(self, step):
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class InverseTimeDecay(_DecaySchedule):
    """lr(t) = initial / (1 + decay_rate * t / decay_steps)   (floor(t / decay_steps) if staircase)."""
    rate_ok, rate_rule = staticmethod(lambda v: 0 <= v < math.inf), "a finite number >= 0 (lr never grows)"
    def __call__(self, step):
        return self.initial_learning_rate / (1 + self.decay_rate * self._p(step))


class Keras2Decay(InverseTimeDecay):
    """Keras 2's decay=d argument: lr(t) = lr / (1 + d * t), t counted in batches. Unlike a schedule
    given as learning_rate, lr stays settable, as in Keras 2: a LearningRateScheduler or
    ReduceLROnPlateau sets (and reads) lr itself, and the decay goes on dividing the new value."""
    settable = True

    def __init__(self, initial_learning_rate, decay_steps=1, decay_rate=0.0, staircase=False):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase)


class ExponentialDecay(_DecaySchedule):
    """lr(t) = initial * decay_rate ^ (t / decay_steps)   (floor if staircase)."""
    rate_ok, rate_rule = staticmethod(lambda v: 0 < v < math.inf), "a finite number > 0 (< 1 decays, > 1 grows)"
    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._p(step)


class PiecewiseLinear(LearningRateSchedule):
    """lr(t) interpolated linearly between the points (boundaries[i], values[i]) (t in steps),
    constant before the first and after the last: warm-up then decay, one-cycle, linear decay to 0.

        PiecewiseLinear([0, 200, 2000], [0.0, 0.1, 0.0])     # 200 steps up to 0.1, then down to 0
    """
    def __init__(self, boundaries, values):
        boundaries, values = [float(b) for b in boundaries], [float(v) for v in values]
        if len(boundaries) != len(values) or len(boundaries) < 1:
            raise ValueError(f"PiecewiseLinear needs as many boundaries as values (>= 1), got "
                             f"{len(boundaries)} and {len(values)}")
        if any(b1 <= b0 for b0, b1 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseLinear boundaries must increase, got {boundaries}")
        if min(values) < 0:
            raise ValueError(f"learning rates must be >= 0, got {values}")
        self.boundaries, self.values = boundaries, values

    def __call__(self, step):
        b, v = self.boundaries, self.values
        if step <= b[0]:
            return v[0]
        for i in range(1, len(b)):
            if step <= b[i]:
                return v[i - 1] + (v[i] - v[i - 1]) * (step - b[i - 1]) / (b[i] - b[i - 1])
        return v[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}


_SCHEDULES = {c.__name__: c for c in (InverseTimeDecay, Keras2Decay, ExponentialDecay, PiecewiseLinear)}


# ---- what wraps the rule: the weight moving average and Lookahead ----------------------------
# Each is a stage the optimizer runs after every update (after_update, with `done` = the updates
# made so far, this one included) and when fit ends (finalize); its per-variable copy is a slot,
# saved with the others. The rules themselves never see them.
class MovingAverage:
    """use_ema=True (Keras 3): a = m a + (1 - m) w after each update (m = 0 after the first, so a
    starts at w); w = a every overwrite_frequency updates, and when fit ends."""
    slot = "average"

    def __init__(self, momentum, overwrite_frequency):
        self.momentum, self.overwrite_frequency = momentum, overwrite_frequency

    def build(self, opt, variables):
        for path, w in variables:
            opt.slots[path][self.slot] = w.copy()

    def after_update(self, opt, variables, done):
        m = self.momentum if done > 1 else 0.0
        for path, w, *_ in variables:
            a = opt.slots[path][self.slot]
            a *= m
            a += (1 - m) * w
        if self.overwrite_frequency and done % self.overwrite_frequency == 0:
            self.finalize(opt, [(path, w) for path, w, *_ in variables])

    def finalize(self, opt, weights):
        for path, w in weights:
            w[...] = opt.slots[path][self.slot]


class Lookahead:
    """lookahead_steps=k: a slow copy s of every variable (and, with lookahead_state, of the model's
    float state); after every k-th update s += r (w - s) and w = s; when fit ends, w = s."""
    slot = "slow"

    def __init__(self, steps, rate):
        self.steps, self.rate = steps, rate
        self.tables = {}            # GPU: pointer tables of the one-launch sync (kernels.lookahead_sync)

    def build(self, opt, variables):
        for path, w in variables:
            opt.slots[path][self.slot] = w.copy()

    def after_update(self, opt, variables, done):
        if not opt.defer_lookahead:     # (a DeviceLoop syncs between graph replays itself)
            self.sync(opt, variables, done)

    def sync(self, opt, variables, done):
        if done % self.steps:
            return
        rate = float(self.rate(done)) if isinstance(self.rate, LearningRateSchedule) else self.rate
        pairs = [(w, opt.slots[path][self.slot]) for path, w, *_ in variables]
        pairs += [(a, opt.slots[path][self.slot]) for path, a in opt._tracked_state]
        kernels.lookahead_sync(pairs, rate, self.tables)

    def finalize(self, opt, weights):
        for path, w in list(weights) + list(opt._tracked_state):
            w[...] = opt.slots[path][self.slot]


# ---- optimizers ----------------------------------------------------------------------------
class Optimizer:
    """Base: holds the learning rate (or schedule), the step count and per-variable slots."""
    slot_names = ()

    def __init__(self, learning_rate=0.001, name=None, lr=None, decay=0.0, weight_decay=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, lr_multipliers=None, lookahead_steps=None,
                 lookahead_rate=0.5, lookahead_state=False, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected argument(s): {sorted(kwargs)}")
        if lr is not None:                       # Keras 2 spelling
            learning_rate = lr
        if not isinstance(learning_rate, LearningRateSchedule):
            if not is_real(learning_rate) or not learning_rate > 0:
                raise ValueError(f"learning_rate must be a positive number or a schedule, got {learning_rate!r}")
            learning_rate = float(learning_rate)
            if _hyper("decay", decay, lambda v: 0 <= v < math.inf, "a finite number >= 0"):
                learning_rate = Keras2Decay(learning_rate, 1, decay)
        elif decay:
            raise ValueError("decay= cannot be combined with a learning-rate schedule")
        self.learning_rate = learning_rate
        if weight_decay is not None and (not is_real(weight_decay) or weight_decay < 0):
            raise ValueError(f"weight_decay must be a number >= 0 or None, got {weight_decay!r}")
        self.weight_decay = float(weight_decay) if weight_decay else 0.0
        if not 0 <= ema_momentum <= 1:
            raise ValueError(f"ema_momentum must be in [0, 1], got {ema_momentum!r}")
        if ema_overwrite_frequency is not None and (not is_int(ema_overwrite_frequency)
                                                    or ema_overwrite_frequency < 1):
            raise ValueError(f"ema_overwrite_frequency must be an int >= 1 or None, got {ema_overwrite_frequency!r}")
        self.lr_multipliers = dict(lr_multipliers or {})
        for pattern, factor in self.lr_multipliers.items():
            if not isinstance(pattern, str) or not is_real(factor) or factor < 0:
                raise ValueError(f"lr_multipliers maps variable-path patterns to factors >= 0, got {pattern!r}: "
                                 f"{factor!r}")
        if lookahead_steps is not None and (not is_int(lookahead_steps)
                                            or lookahead_steps < 1):
            raise ValueError(f"lookahead_steps must be an int >= 1 or None, got {lookahead_steps!r}")
        if not isinstance(lookahead_rate, LearningRateSchedule) and (
                not is_real(lookahead_rate) or not 0 <= lookahead_rate <= 1):
            raise ValueError(f"lookahead_rate must be a number in [0, 1] or a schedule, got {lookahead_rate!r}")
        if lookahead_steps and use_ema:
            raise ValueError("use_ema and lookahead_steps cannot be combined: both decide the final weights")
        if lookahead_state and not lookahead_steps:
            raise ValueError("lookahead_state=True needs lookahead_steps (the state follows the weights' Lookahead)")
        self.lookahead_steps, self.lookahead_rate = lookahead_steps, lookahead_rate
        self.lookahead_state = bool(lookahead_state)
        self._tracked_state = []        # (path, array): the model's float state that Lookahead also syncs
        self.defer_lookahead = False    # True while a DeviceLoop calls lookahead_sync itself
        self._no_decay_ids, self._no_decay_names, self._no_decay_pattern = set(), [], None
        self.frozen = []                 # fnmatch patterns of variables no longer updated (freeze)
        self.use_ema, self.ema_momentum = bool(use_ema), float(ema_momentum)
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.stages = ([MovingAverage(self.ema_momentum, ema_overwrite_frequency)] if self.use_ema else []) + \
                      ([Lookahead(lookahead_steps, lookahead_rate)] if lookahead_steps else [])
        self.name = name or type(self).__name__.lower()
        self._dev = None             # GPU: step count and learning rates in device memory (see below)
        self.iterations = 0
        self.slots = {}              # variable path -> {slot name: array}
        self.built = False

    # On the GPU the step count t lives in device memory, with a table of the learning rates of
    # the steps planned (lr(t) for t = t_base, t_base + 1, ...): the update kernels read both there
    # and a kernel advances t, so a training step replayed as a CUDA graph needs no host numbers.
    @property
    def iterations(self):
        """Updates applied so far (on the GPU this reads device memory, i.e. synchronises)."""
        if self._dev is not None:
            return int(backend.to_host(self._dev["t"])[0])
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        self._iterations = int(value)
        self._dev = None

    def supports_device_step(self):
        """True when this configuration has a device update kernel (what CUDA graphs need)."""
        return False

    def _on_device(self):
        """True when one launch updates every variable, reading t and lr from device memory."""
        return kernels.multi_tensor_updates() and self.supports_device_step() and not self.use_ema

    def prepare_device(self, steps):
        """Upload t and the learning rates of the next `steps` updates (call outside graph capture)."""
        xp, t = backend.xp, self.iterations
        lr = self.learning_rate
        table = [lr(t + k) for k in range(max(int(steps), 1))] if isinstance(lr, LearningRateSchedule) else [lr]
        self._dev = {"t": xp.asarray(np.array([t], dtype=np.int64)),
                     "lr_table": xp.asarray(np.array(table, dtype=np.float64)), "t_base": t}
        self._dev_remaining = max(int(steps), 1)

    @property
    def learning_rate(self):
        """A number or a LearningRateSchedule (evaluated at the step count)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        """Set a new constant learning rate (callbacks, user code), in effect from the next update on
        every backend: on the GPU the value is also written, in place, into the device table the
        update kernels (and a captured CUDA graph) read. As in Keras 3, an optimizer created with a
        schedule keeps it (TypeError); with Keras 2's decay= (Keras2Decay) the value is the new lr
        the decay divides, as in Keras 2."""
        current = self.__dict__.get("_learning_rate")
        if getattr(current, "settable", False) and not isinstance(value, LearningRateSchedule):
            current.initial_learning_rate = _settable_rate(value)              # Keras 2: decay= divides it
            dev = self.__dict__.get("_dev")
            if dev is not None:                       # the planned steps' rates, recomputed in place
                planned = [current(dev["t_base"] + k) for k in range(dev["lr_table"].size)]
                dev["lr_table"][...] = backend.xp.asarray(np.array(planned, dtype=np.float64))
            return
        if isinstance(current, LearningRateSchedule) and value is not current:
            raise TypeError("this optimizer was created with a LearningRateSchedule as its learning_rate, hence its "
                            "learning rate is not settable; create it with a float learning_rate to set it later")
        if not isinstance(value, LearningRateSchedule):
            value = _settable_rate(value)
            dev = self.__dict__.get("_dev")
            if dev is not None:
                dev["lr_table"][...] = value          # the planned steps' learning rates, in place
        self._learning_rate = value

    def current_learning_rate(self):
        lr = self.learning_rate
        return lr(self.iterations) if isinstance(lr, LearningRateSchedule) else lr

    def build(self, variables):
        """variables: list of (path, weight array). Creates zeroed slots for each."""
        xp = backend.xp
        tracked = {path: self.slots[path] for path, _ in self._tracked_state if path in self.slots}
        self.slots = {path: {s: xp.zeros_like(w) for s in self.slot_names} for path, w in variables}
        for stage in self.stages:                # the moving average, the slow weights: slots too
            stage.build(self, variables)
        for path, a in self._tracked_state:      # the state's slow copies, kept from when training started
            self.slots[path] = tracked.get(path) or {"slow": a.copy()}
        self.built = True

    def track_state(self, state):
        """lookahead_state=True: `state` is (path, array) for the model's float non-trainable arrays
        (BN moving statistics), synced by Lookahead with the weights; the model passes them when
        training starts (the same arrays, updated in place). Their slow copies are slots like the
        weights' (saved with the model)."""
        self._tracked_state = list(state) if self.lookahead_state else []
        for path, a in self._tracked_state:      # slow copies from the state as training starts
            self.slots.setdefault(path, {}).setdefault("slow", a.copy())

    def apply(self, variables):
        """variables: list of (path, w, g, constraint). Updates each w in place, then t += 1."""
        if not self.built:
            self.build([(p, w) for p, w, _, _ in variables])
        if self._on_device():
            if self._dev is None or self._dev_remaining <= 0:
                self.prepare_device(1)
            groups = [(w, g) + tuple(self.slots[path].get(s) for s in self.device_slots())
                      for path, w, g, _ in variables]
            key = kernels.pointer_key(groups)
            tables = self._dev.setdefault("tables", {})
            if key not in tables:               # pointer table for the one-launch update (built once)
                lr_factors, decay_factors = self._factors(variables)
                tables[key] = (kernels.param_table(groups, lr_factors, decay_factors), variables)
            self.device_update(tables[key][0], variables[0][1].dtype, self._dev)
            for path, w, g, constraint in variables:
                if constraint is not None:
                    constraint(w)
            kernels.advance_counter(self._dev["t"], 1)     # t += 1, on the device
            self._dev_remaining -= 1
            if self.stages and not self.defer_lookahead:    # reads t: eager calls only (no EMA here)
                self._after_update(variables, self.iterations)
            return
        base_lr = self.current_learning_rate()
        for path, w, g, constraint in variables:
            # decoupled weight decay (w -= decay * w, inside the rule, before the update): the base lr
            decay = base_lr * self.weight_decay if self.weight_decay and self.decays(path, w) else 0.0
            self.update_step(w, g, self.slots[path], base_lr * self.lr_multiplier(path), decay)
            if constraint is not None:
                constraint(w)
        self.iterations += 1
        self._after_update(variables, self.iterations)

    def _after_update(self, variables, done):
        for stage in self.stages:
            stage.after_update(self, variables, done)

    def lookahead_sync(self, variables, done):
        """Lookahead after update number `done` (1-based): when it is a multiple of lookahead_steps,
        s += r (w - s) and w = s for every variable (variables: (path, w, ...) tuples). On the GPU a
        DeviceLoop calls this between graph replays, with its own count of the updates."""
        for stage in self.stages:
            if isinstance(stage, Lookahead):
                stage.sync(self, variables, done)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras 3's method: no weight decay for the arrays in var_list, nor for the variables whose
        path ('batch_normalization/beta', 'dense/b', ...) contains a match of one of the regular
        expressions var_names (re.search). Call it before the first update."""
        if self.built:
            raise RuntimeError("exclude_from_weight_decay must be called before the optimizer is built "
                               "(before the first update)")
        import re
        if isinstance(var_names, str):
            var_names = [var_names]
        self._no_decay_ids = {id(v) for v in (var_list or [])}
        self._no_decay_names = list(var_names or [])
        self._no_decay_pattern = re.compile("|".join(self._no_decay_names)) if self._no_decay_names else None

    def decays(self, path, w):
        """Whether weight decay applies to variable `path` (array w): see exclude_from_weight_decay."""
        if id(w) in self._no_decay_ids or self._is_frozen(path):
            return False
        return self._no_decay_pattern is None or self._no_decay_pattern.search(path) is None

    def _factors(self, variables):
        """Per-variable learning-rate and weight-decay factors (the GPU kernels' table)."""
        return ([self.lr_multiplier(v[0]) for v in variables], [float(self.decays(v[0], v[1])) for v in variables])

    def freeze(self, pattern):
        """From the next update on, leave the variables whose path matches `pattern` (fnmatch, e.g.
        'conv2d/b') alone: learning rate 0, no weight decay, momentum reset. On the GPU the factors
        are rewritten in the device tables in place, so a captured training step obeys at its next
        replay."""
        if not isinstance(pattern, str):
            raise ValueError(f"freeze takes a variable-path pattern such as 'conv2d/b', got {pattern!r}")
        self.frozen.append(pattern)
        for path, slots in self.slots.items():
            if self._is_frozen(path) and "momentum" in slots:
                slots["momentum"][...] = 0          # else SGD's velocity would keep moving it (lr 0)
        for table, variables in (self._dev or {}).get("tables", {}).values():
            lr_factors, decay_factors = self._factors(variables)
            kernels.set_table_factors(table, lr_factors, decay_factors)

    def _is_frozen(self, path):
        import fnmatch
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.frozen)

    def lr_multiplier(self, path):
        """The factor on the learning rate of variable `path` ('dense/b', 'conv2d_1/W', ...): the
        first lr_multipliers pattern (fnmatch style, e.g. '*/b' for every bias) that matches, else 1."""
        import fnmatch
        if self._is_frozen(path):
            return 0.0
        for pattern, factor in self.lr_multipliers.items():
            if fnmatch.fnmatchcase(path, pattern):
                return float(factor)
        return 1.0

    def finalize_variable_values(self, weights, paths):
        """When fit ends: with use_ema the weights take their moving averages (as Keras does); with
        lookahead_steps their slow copies (and lookahead_state's statistics theirs)."""
        if self.built:
            for stage in self.stages:
                stage.finalize(self, list(zip(paths, weights)))

    def update_step(self, w, g, slots, lr, decay):
        """One variable's update (the rule: kernels.sgd_update & co., readable in kernels/reference.py)."""
        raise NotImplementedError

    def device_slots(self):
        """The slot names the device kernel expects after (w, g), in order (None: not used)."""
        return self.slot_names

    def device_update(self, table, dtype, dev):
        """The update of update_step for every variable in `table` (kernels.param_table), by one
        kernel reading t and lr from device memory."""
        raise NotImplementedError

    def count_params(self):
        """Variables Keras counts as 'Optimizer params': the slots, plus iterations and learning rate."""
        return sum(int(a.size) for s in self.slots.values() for a in s.values()) + 2 if self.built else 0

    def get_config(self):
        lr = self.learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = {"class_name": type(lr).__name__, "config": lr.get_config()}
        config = {"name": self.name, "learning_rate": lr}
        if self.weight_decay:
            config["weight_decay"] = self.weight_decay
        if self._no_decay_names:             # var_names only: arrays (var_list) are not serializable
            config["exclude_from_weight_decay"] = list(self._no_decay_names)
        if self.frozen:
            config["frozen"] = list(self.frozen)
        if self.lr_multipliers:
            config["lr_multipliers"] = dict(self.lr_multipliers)
        if self.use_ema:
            config.update(use_ema=True, ema_momentum=self.ema_momentum,
                          ema_overwrite_frequency=self.ema_overwrite_frequency)
        if self.lookahead_steps:
            rate = self.lookahead_rate
            if isinstance(rate, LearningRateSchedule):
                rate = {"class_name": type(rate).__name__, "config": rate.get_config()}
            config.update(lookahead_steps=self.lookahead_steps, lookahead_rate=rate)
            if self.lookahead_state:
                config["lookahead_state"] = True
        return config


class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = _hyper("momentum", momentum, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        self.nesterov = bool(nesterov)
        self.slot_names = ("momentum",) if self.momentum else ()

    def update_step(self, w, g, slots, lr, decay):
        kernels.sgd_update(w, g, slots.get("momentum"), lr, self.momentum, self.nesterov, decay)

    def supports_device_step(self):
        return True

    def device_slots(self):
        return ("momentum",)                     # absent without momentum: a null pointer, plain SGD

    def device_update(self, table, dtype, dev):
        kernels.multi_tensor_update("sgd", table, dtype, dev, self.momentum, self.nesterov, self.weight_decay)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = _hyper("rho", rho, lambda v: 0 <= v < 1, "a number in [0, 1)")
        self.momentum = _hyper("momentum", momentum, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        self.epsilon = _hyper("epsilon", epsilon, lambda v: 0 <= v < math.inf, "a finite number >= 0")
        self.centered = bool(centered)
        self.slot_names = ("velocity",) + (("momentum",) if momentum else ()) + (("average_gradient",) if centered else ())

    def update_step(self, w, g, slots, lr, decay):
        kernels.rmsprop_update(w, g, slots["velocity"], lr, self.rho, self.epsilon, decay, self.momentum,
                               slots.get("momentum"), slots.get("average_gradient"))

    def supports_device_step(self):
        return not (self.centered or self.momentum)

    def device_update(self, table, dtype, dev):
        kernels.multi_tensor_update("rmsprop", table, dtype, dev, self.rho, self.epsilon, self.weight_decay)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2 = (_hyper(name, b, lambda v: 0 <= v < 1, "a number in [0, 1)")
                                    for name, b in (("beta_1", beta_1), ("beta_2", beta_2)))
        self.epsilon = _hyper("epsilon", epsilon, lambda v: 0 <= v < math.inf, "a finite number >= 0")
        self.amsgrad = bool(amsgrad)
        self.slot_names = ("m", "v") + (("vhat",) if amsgrad else ())

    def update_step(self, w, g, slots, lr, decay):
        kernels.adam_update(w, g, slots["m"], slots["v"], lr, self.iterations, self.beta_1, self.beta_2,
                            self.epsilon, decay, slots.get("vhat"))

    def supports_device_step(self):
        return not self.amsgrad

    def device_update(self, table, dtype, dev):
        kernels.multi_tensor_update("adam", table, dtype, dev, self.beta_1, self.beta_2, self.epsilon,
                                    self.weight_decay)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


def _settable_rate(value):
    """A learning rate set after construction (callbacks, user code): a finite number >= 0."""
    return _hyper("learning_rate", value, lambda v: 0 <= v < math.inf, "a finite number >= 0 or a schedule")


def _hyper(name, value, ok, what):
    """A hyper-parameter as a float, or a ValueError saying what it must be (ok: the test it must pass)."""
    if not is_real(value) or not ok(float(value)):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return float(value)


class Adadelta(Optimizer):
    """Keras 3's Adadelta: per-coordinate steps from running averages of g^2 and of the past steps'
    squares (Zeiler 2012), scaled by learning_rate (1.0 is the paper's form)."""
    slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = _hyper("rho", rho, lambda r: 0 <= r < 1, "a number in [0, 1)")
        # eps > 0: it starts the steps (with d = 0, delta = -g sqrt(eps) / sqrt(a + eps)); with 0 nothing moves
        self.epsilon = _hyper("epsilon", epsilon, lambda e: 0 < e < math.inf,
                              "a finite number > 0 (with epsilon 0 Adadelta never moves: its steps start at sqrt(eps))")

    def update_step(self, w, g, slots, lr, decay):
        kernels.adadelta_update(w, g, slots["accumulated_grad"], slots["accumulated_delta_var"], lr, self.rho,
                                self.epsilon, decay)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adagrad(Optimizer):
    """Keras 3's Adagrad: the step of each coordinate divided by the root of its sum of squared
    gradients, which starts at initial_accumulator_value."""
    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = _hyper("initial_accumulator_value", initial_accumulator_value,
                                                lambda a: 0 <= a < math.inf, "a finite number >= 0")
        self.epsilon = _hyper("epsilon", epsilon, lambda e: 0 <= e < math.inf, "a finite number >= 0")
        if self.initial_accumulator_value == 0 and self.epsilon == 0:
            raise ValueError("Adagrad needs initial_accumulator_value > 0 or epsilon > 0: with both 0, a "
                             "coordinate whose gradient is 0 gets 0 / sqrt(0)")

    def build(self, variables):
        super().build(variables)
        for path, _ in variables:                # Keras: initializers.Constant(initial_accumulator_value)
            self.slots[path]["accumulator"][...] = self.initial_accumulator_value

    def update_step(self, w, g, slots, lr, decay):
        kernels.adagrad_update(w, g, slots["accumulator"], lr, self.epsilon, decay)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Nadam(Optimizer):
    """Keras 3's Nadam: Adam with Nesterov momentum and the momentum schedule
    mu(k) = beta_1 (1 - 0.5 * 0.96^k) (Dozat 2015).

    Keras keeps the product u_product = mu(1) ... mu(t+1) in a scalar variable of its own. It is a
    function of the step count alone (beta_1 is fixed), so here it is recomputed from `iterations`
    (u_product(t)), never stored: a model saved and loaded again (which keeps `iterations`) goes on
    with the same numbers. The last value is cached, so a training step costs one multiplication."""
    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = _hyper("beta_1", beta_1, lambda b: 0 <= b < 1, "a number in [0, 1)")
        self.beta_2 = _hyper("beta_2", beta_2, lambda b: 0 <= b < 1, "a number in [0, 1)")
        self.epsilon = _hyper("epsilon", epsilon, lambda e: 0 <= e < math.inf, "a finite number >= 0")
        self._u_product = (0, 1.0)               # (n, mu(1) ... mu(n)): the last product computed

    def u_product(self, t):
        """Keras's u_product during the update at step t (t updates done before): mu(1) ... mu(t+1),
        multiplied in that order (the same float64 number however it is reached)."""
        n = t + 1
        done, value = self._u_product
        if done > n:                             # iterations set back: start again
            done, value = 0, 1.0
        while done < n and value != 0.0:
            done += 1
            value *= kernels.nadam_momentum(done, self.beta_1)
            if value < 1e-300:                   # 1 - value is 1 long before: 0 from here on (no subnormals)
                value = 0.0
        self._u_product = (n, value)
        return value

    def update_step(self, w, g, slots, lr, decay):
        t = self.iterations
        kernels.nadam_update(w, g, slots["m"], slots["v"], lr, t, self.beta_1, self.beta_2, self.epsilon, decay,
                             self.u_product(t))

    def count_params(self):
        """Keras's count: the slots, iterations, the learning rate and u_product."""
        return super().count_params() + 1 if self.built else 0

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


_OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adadelta": Adadelta, "adagrad": Adagrad,
               "nadam": Nadam}

# Keras 2 lowercase aliases (keras.optimizers.rmsprop(...), used by tutorial 001)
sgd, rmsprop, adam, adadelta, adagrad, nadam = SGD, RMSprop, Adam, Adadelta, Adagrad, Nadam


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; expected one of {sorted(_OPTIMIZERS)} "
                     "or an Optimizer instance")


def serialize(opt):
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(spec, custom_objects=None):
    """Rebuild an optimizer from serialize()'s dict; custom_objects maps names of user classes
    (optimizers or learning-rate schedules) to the classes."""
    custom = dict(custom_objects or {})
    classes = {c.__name__: c for c in (SGD, RMSprop, Adam, Adadelta, Adagrad, Nadam)}
    classes.update({k: v for k, v in custom.items() if isinstance(v, type) and issubclass(v, Optimizer)})
    schedules_by_name = {**_SCHEDULES, **{k: v for k, v in custom.items()
                                         if isinstance(v, type) and issubclass(v, LearningRateSchedule)}}
    if spec.get("class_name") not in classes:
        raise ValueError(f"unknown optimizer in config: {spec!r}; pass its class in "
                         "load_model(..., custom_objects={name: class})")
    config = dict(spec["config"])
    for key in ("learning_rate", "lookahead_rate"):
        value = config.get(key)
        if isinstance(value, dict):
            if value.get("class_name") not in schedules_by_name:
                raise ValueError(f"unknown schedule for {key} in config: {value!r}; pass its class in "
                                 "load_model(..., custom_objects={name: class})")
            config[key] = schedules_by_name[value["class_name"]](**value["config"])
    excluded = config.pop("exclude_from_weight_decay", None)
    frozen = config.pop("frozen", [])
    opt = classes[spec["class_name"]](**config)
    if excluded:
        opt.exclude_from_weight_decay(var_names=excluded)
    for pattern in frozen:
        opt.freeze(pattern)
    return opt


class schedules:            # keras.optimizers.schedules.InverseTimeDecay(...)
    LearningRateSchedule = LearningRateSchedule
    InverseTimeDecay = InverseTimeDecay
    ExponentialDecay = ExponentialDecay
    PiecewiseLinear = PiecewiseLinear


def __getattr__(name):
    raise _keras_names.missing("optimizers", name, globals())
