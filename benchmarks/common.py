"""Workloads, size profiles and data getters shared by every suite.

The size profile comes from the environment variable ``FASTBP_BENCH_PROFILE``:

``default``
    What ``asv run`` measures: every workload at its architecture and batch size; the
    medium and large workloads time epochs over a fixed subset of their samples
    (12,800 of 60,000 and 2,048 of 16,384) so that each benchmark takes seconds.
``full``
    The same with every sample: the epoch of the workload as specified.
``tiny``
    A few rows of every workload: the pytest smoke test, which runs each benchmark once.

The profile is read when a workload is asked for, not at import, so a test can set it.
Nothing here is a benchmark: asv looks for ``time_``, ``peakmem_``, ``track_`` ... names
only in the suite modules.
"""
import functools
import importlib.util
import os
import time
from dataclasses import dataclass

import numpy as np

PROFILE_VARIABLE = "FASTBP_BENCH_PROFILE"
SEED = 0

#: Every library a suite can compare; the peers absent here are skipped (NotImplementedError),
#: so the parameter list, and with it the benchmark ids, are the same on every machine.
LIBRARIES = ["fastbp", "numpy", "sklearn", "torch", "jax"]
_MODULES = {"fastbp": "fastbp", "numpy": "numpy", "sklearn": "sklearn", "torch": "torch",
            "jax": "jax"}

WORKLOAD_NAMES = ["tiny", "small", "medium", "large"]
#: The stochastic optimizers; ``lbfgs`` has its own benchmark (one epoch is one iteration).
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw"]
DTYPES = ["float32", "float64"]


@dataclass(frozen=True)
class Workload:
    """A network, its training settings and its data size under the current profile.

    ``n_samples`` is the size of the timed epoch under the profile, ``n_full`` the size
    the workload is defined with; ``epochs`` is how many epochs one timed call runs
    (several for the tiny workload, so that the once-per-fit cost of ``fit`` is spread
    over epochs as it is in a real fit; the time benchmarks report seconds per epoch).
    """

    name: str
    layers: tuple
    output: str
    dtype: str
    batch_size: int
    learning_rate: float
    n_full: int
    n_samples: int
    epochs: int

    @property
    def n_classes(self):
        return 2 if self.output == "sigmoid" else self.layers[-1]

    @property
    def batch(self):
        """The batch size, capped at the samples (the tiny workload is full batch)."""
        return min(self.batch_size, self.n_samples)

    @property
    def n_weights(self):
        return sum(a * b for a, b in zip(self.layers[:-1], self.layers[1:]))

    @property
    def flops_per_sample(self):
        """Useful floating-point operations of one training sample: a multiply-add per
        weight forward (2P), two backward (the weight gradient and the delta passed down,
        4P), less the delta the first layer never passes down (2 P_first)."""
        return 6 * self.n_weights - 2 * self.layers[0] * self.layers[1]


#: name: (layers, output, dtype, batch, learning rate, samples in the workload's definition)
_SPECS = {
    "tiny": ((2, 10, 1), "sigmoid", "float64", 800, 0.1, 800),
    "small": ((64, 128, 64, 10), "softmax", "float32", 32, 0.01, 1437),
    "medium": ((784, 256, 128, 10), "softmax", "float32", 128, 0.01, 60000),
    "large": ((1024, 2048, 2048, 10), "softmax", "float32", 256, 0.01, 16384),
}

#: profile: workload: (samples per timed epoch, epochs per timed call)
PROFILES = {
    "default": {"tiny": (800, 100), "small": (1437, 3), "medium": (12800, 1), "large": (2048, 1)},
    "full": {"tiny": (800, 100), "small": (1437, 3), "medium": (60000, 1), "large": (16384, 1)},
    "tiny": {"tiny": (64, 2), "small": (64, 1), "medium": (128, 1), "large": (256, 1)},
}


def profile():
    """The size profile named by ``FASTBP_BENCH_PROFILE`` (``default`` when unset)."""
    name = os.environ.get(PROFILE_VARIABLE, "default") or "default"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_VARIABLE} must be one of {sorted(PROFILES)}, got {name!r}")
    return name


def workload(name):
    """The :class:`Workload` called ``name`` under the current profile."""
    layers, output, dtype, batch, lr, n_full = _SPECS[name]
    n, epochs = PROFILES[profile()][name]
    return Workload(name, layers, output, dtype, batch, lr, n_full, n, epochs)


def epochs_per_call(w, optimizer):
    """Epochs per timed call: one for L-BFGS, whose epoch is a whole-data iteration."""
    return 1 if optimizer == "lbfgs" else w.epochs


@functools.lru_cache(maxsize=8)
def _random_data(n, n_in, n_classes, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in), dtype=np.float64).astype(dtype)
    y = rng.permutation(np.arange(n) % n_classes)  # every class, in equal shares
    return X, y


def get_data(w, dtype=None):
    """Random inputs (standard normal) and balanced random class labels of workload ``w``,
    from a fixed seed.

    Labels are integer class indices for a softmax output and 0.0 / 1.0 for a sigmoid
    one.  The arrays are cached: never write into them.
    """
    dtype = np.dtype(dtype or w.dtype)
    X, y = _random_data(w.n_samples, w.layers[0], w.n_classes, dtype.name, SEED)
    if w.output == "sigmoid":
        y = y.astype(dtype)
    return X, y


@functools.lru_cache(maxsize=1)
def _moons():
    from fastbp.demo import moons_split

    return tuple(moons_split())


def get_moons():
    """The seed article's data: make_moons(1000, noise 0.1, seed 42), 80/20 split."""
    return _moons()


@functools.lru_cache(maxsize=2)
def _digits(dtype):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return tuple(train_test_split((X / 16.0).astype(dtype), y, test_size=0.2, random_state=42))


def get_digits(dtype="float32"):
    """load_digits scaled to [0, 1], 80/20 split (1437 training rows: the small workload)."""
    return _digits(np.dtype(dtype).name)


def installed(library):
    """Whether the peer ``library`` (a name in :data:`LIBRARIES`) can be imported."""
    return importlib.util.find_spec(_MODULES[library]) is not None


def require(library):
    """Skip the benchmark (asv's convention: NotImplementedError in setup) when ``library``
    is not installed."""
    if not installed(library):
        raise NotImplementedError(f"{library} is not installed")


def epoch_timer(epochs):
    """A clock for asv's ``timer`` attribute that reads seconds per epoch.

    A timed call runs ``epochs`` epochs in one ``fit``; timing it with this clock makes
    asv report the mean seconds of one of them.
    """
    scale = 1.0 / epochs

    def clock():
        return time.perf_counter() * scale

    return clock


def median_seconds(fn, repeats):
    """Median wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def repeats_for_tracking():
    """How many timed repeats a ``track_`` benchmark takes its median over."""
    return 1 if profile() == "tiny" else 3
