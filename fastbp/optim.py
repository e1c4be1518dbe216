"""Optimizers and learning-rate schedules: public objects -> the kernels' integer kind and
float64 hyper-parameter array.

Pass a name (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, ``"adamw"``,
``"lbfgs"``; ``"constant"``, ``"invscaling"``, ``"adaptive"``, ``"cosine"``,
``"step"``) for the defaults, or an instance to set their hyper-parameters.
"""
import math

import numpy as np

from ._kernels import optimizers as K
from ._validation import check_int, check_positive_float


def _check_fraction(name, value, closed=False):
    """A real number in [0, 1) (in [0, 1] when ``closed``)."""
    interval = "[0, 1]" if closed else "[0, 1)"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a real number in {interval}, got {value!r}")
    if not (0 <= value <= 1 if closed else 0 <= value < 1):
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: an update rule of the epoch kernel."""

    kind = None

    def hyper(self, learning_rate):
        h = np.zeros(K.N_HYPER, dtype=np.float64)
        h[K.H_LR] = learning_rate
        return h

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)


class SGD(Optimizer):
    """Minibatch gradient descent, with optional (Nesterov) momentum, scikit-learn's rules."""

    def __init__(self, momentum=0.0, nesterov=False):
        # scikit-learn accepts momentum 1 (no damping), so fastbp does too.
        self.momentum = _check_fraction("momentum", momentum, closed=True)
        self.nesterov = bool(nesterov)

    @property
    def kind(self):
        if self.momentum == 0:
            return K.SGD
        return K.NESTEROV if self.nesterov else K.MOMENTUM

    def hyper(self, learning_rate):
        h = super().hyper(learning_rate)
        h[K.H_MOMENTUM] = self.momentum
        return h


class Adam(Optimizer):
    """Adam with scikit-learn's update rule and defaults."""

    kind = K.ADAM

    def __init__(self, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.beta_1 = _check_fraction("beta_1", beta_1)
        self.beta_2 = _check_fraction("beta_2", beta_2)
        self.epsilon = check_positive_float("epsilon", epsilon)

    def hyper(self, learning_rate):
        h = super().hyper(learning_rate)
        h[K.H_BETA1], h[K.H_BETA2], h[K.H_EPS] = self.beta_1, self.beta_2, self.epsilon
        return h


class AdamW(Adam):
    """Adam with decoupled weight decay, PyTorch's rule (``torch.optim.AdamW``) and defaults."""

    kind = K.ADAMW

    def __init__(self, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.01):
        super().__init__(beta_1, beta_2, epsilon)
        self.weight_decay = check_positive_float("weight_decay", weight_decay, allow_zero=True)

    def hyper(self, learning_rate):
        h = super().hyper(learning_rate)
        h[K.H_WEIGHT_DECAY] = self.weight_decay
        return h


class LBFGS(Optimizer):
    """Full-batch L-BFGS-B through ``scipy.optimize.minimize``; each epoch is one iteration."""

    kind = None

    def __init__(self, max_fun=15000):
        self.max_fun = check_int("max_fun", max_fun)


OPTIMIZERS = {
    "sgd": SGD,
    "momentum": lambda: SGD(momentum=0.9),
    "nesterov": lambda: SGD(momentum=0.9, nesterov=True),
    "adam": Adam,
    "adamw": AdamW,
    "lbfgs": LBFGS,
}


def _resolve(name, spec, registry, base):
    """``spec`` itself when it is a ``base`` instance, else the default of the name it gives."""
    if isinstance(spec, base):
        return spec
    if isinstance(spec, str) and spec in registry:
        return registry[spec]()
    raise ValueError(f"{name} must be one of {sorted(registry)} or a fastbp.optim.{base.__name__}, "
                     f"got {spec!r}")


def get_optimizer(spec):
    """An Optimizer instance from a name or an instance (of one of fastbp's optimizers or a
    subclass of one: the update rules run in the kernel)."""
    opt = _resolve("optimizer", spec, OPTIMIZERS, Optimizer)
    rules = (SGD, Adam, AdamW, LBFGS)
    if not isinstance(opt, rules):
        raise TypeError(f"optimizer {opt!r} must be an instance of one of fastbp's optimizers "
                        f"({', '.join(c.__name__ for c in rules)}) or of a subclass of one: "
                        "the update rules run in the compiled kernel")
    return opt


class Schedule:
    """Base class: the learning rate of each epoch."""

    def rate(self, lr0, epoch, epochs, samples_seen):
        """Learning rate of epoch ``epoch`` (0-based, counted since training started),
        of ``epochs`` in this fit, after ``samples_seen`` samples."""
        raise NotImplementedError

    def rates(self, lr0, epoch, k, epochs, samples_seen, n_samples):
        """The rates of the ``k`` epochs from epoch ``epoch`` on, ``n_samples`` samples
        each, ``samples_seen`` before the first, as a float64 array."""
        return np.array([self.rate(lr0, epoch + e, epochs, samples_seen + e * n_samples)
                         for e in range(k)], dtype=np.float64)

    __repr__ = Optimizer.__repr__
    __eq__ = Optimizer.__eq__


class Constant(Schedule):
    """The same rate every epoch."""

    def rate(self, lr0, epoch, epochs, samples_seen):
        return lr0

    def rates(self, lr0, epoch, k, epochs, samples_seen, n_samples):
        if type(self).rate is not Constant.rate:  # (a subclass with a rate of its own)
            return super().rates(lr0, epoch, k, epochs, samples_seen, n_samples)
        return np.full(k, lr0, dtype=np.float64)


class InvScaling(Schedule):
    """scikit-learn's ``invscaling``: ``lr0 / (samples_seen + 1) ** power_t``, updated per epoch."""

    def __init__(self, power_t=0.5):
        self.power_t = check_positive_float("power_t", power_t, allow_zero=True)

    def rate(self, lr0, epoch, epochs, samples_seen):
        return lr0 / (samples_seen + 1) ** self.power_t


class Adaptive(Constant):
    """scikit-learn's ``adaptive``: constant until the loss (or validation score) stops
    improving for ``n_iter_no_change`` epochs, then divided by 5; training stops once
    it would fall below 1e-6.  Needs ``tol``."""

    factor = 5.0
    min_rate = 1e-6


class _InvScalingFromFit(InvScaling):
    """scikit-learn's ``invscaling`` across warm-started fits (``fastbp.MLPClassifier``'s,
    ``MLPRegressor``'s): each fit's optimizer starts at ``lr0`` (its first epoch, after
    ``first_seen`` samples), then follows the samples seen in all fits."""

    def __init__(self, power_t, first_seen):
        super().__init__(power_t)
        self.first_seen = check_int("first_seen", first_seen, low=0)

    def rate(self, lr0, epoch, epochs, samples_seen):
        return lr0 if samples_seen == self.first_seen else super().rate(lr0, epoch, epochs,
                                                                         samples_seen)


class Cosine(Schedule):
    """Cosine annealing from ``lr0`` to ``min_lr`` over ``t_max`` epochs counted since training
    started (a warm start goes on along the curve, then stays at ``min_lr``); by default over
    each fit's epochs, from ``lr0`` again in every fit (``warm_start``, ``partial_fit``)."""

    def __init__(self, t_max=None, min_lr=0.0):
        self.t_max = None if t_max is None else check_int("t_max", t_max)
        self.min_lr = check_positive_float("min_lr", min_lr, allow_zero=True)

    @property
    def per_fit(self):
        """Whether ``rate``'s ``epoch`` counts this fit's epochs (see ``Network``)."""
        return self.t_max is None

    def rate(self, lr0, epoch, epochs, samples_seen):
        horizon = self.t_max or epochs
        frac = min(epoch, horizon) / horizon
        return self.min_lr + 0.5 * (lr0 - self.min_lr) * (1 + math.cos(math.pi * frac))


class Step(Schedule):
    """``lr0 * gamma ** (epoch // step_size)``."""

    def __init__(self, step_size=30, gamma=0.1):
        self.step_size = check_int("step_size", step_size)
        self.gamma = check_positive_float("gamma", gamma)

    def rate(self, lr0, epoch, epochs, samples_seen):
        return lr0 * self.gamma ** (epoch // self.step_size)


SCHEDULES = {"constant": Constant, "invscaling": InvScaling, "adaptive": Adaptive,
             "cosine": Cosine, "step": Step}


def get_schedule(spec):
    """A Schedule instance from a name or an instance."""
    return _resolve("schedule", spec, SCHEDULES, Schedule)
