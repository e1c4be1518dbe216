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
The workloads themselves, their random data and the peers are defined in
:mod:`fastbp.peers` (``python -m fastbp compare`` runs them too); this module adds the
profiles and asv's conventions.  Nothing here is a benchmark: asv looks for ``time_``,
``peakmem_``, ``track_`` ... names only in the suite modules.
"""
import functools
import os
import time

import numpy as np

# The workloads, their random data and the check for an installed peer live in the
# package (``python -m fastbp compare`` needs them too); they are re-exported here under
# the names the suites use.  LIBRARIES lists every library a suite compares: the peers
# absent here are skipped (NotImplementedError, see ``require``), so the parameter lists,
# and with them the benchmark ids, are the same on every machine.
from fastbp.peers import (  # noqa: F401  (re-exported)
    _SPECS,
    LIBRARIES,
    SEED,
    WORKLOAD_NAMES,
    Workload,
    _random_data,
    get_data,
    installed,
)
from fastbp.peers import workload as _workload

PROFILE_VARIABLE = "FASTBP_BENCH_PROFILE"

#: The stochastic optimizers; ``lbfgs`` has its own benchmark (one epoch is one iteration).
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw"]
DTYPES = ["float32", "float64"]

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
    """The :class:`~fastbp.peers.Workload` called ``name`` under the current profile:
    ``n_samples`` is the size of the timed epoch, ``epochs`` the epochs of a timed call."""
    n, epochs = PROFILES[profile()][name]
    return _workload(name, n_samples=n, epochs=epochs)


def epochs_per_call(w, optimizer):
    """Epochs per timed call: one for L-BFGS, whose epoch is a whole-data iteration."""
    return 1 if optimizer == "lbfgs" else w.epochs


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
