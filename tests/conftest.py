import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from fastbp import _variants

# The suite's process trains hundreds of networks of every kind: the package's own kernels,
# every path compiled once, serve them all, as they serve any process after its first few
# kinds of network (a copy of the kernels per kind compiled, with predict_rows and
# data_gradient, three times what they did).  test_variants checks the copies against them;
# the suite's child processes take the copies until the package's kernels are cached.
_variants.EXACT_VARIANTS = 0

ACTIVATIONS = ["identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
               "swish"]
OUTPUTS = ["identity", "sigmoid", "softmax", "poisson"]


_CALLERS = {}


def compiled(kernel):
    """A compiled function that calls the fastbp kernel ``kernel`` with its arguments: the
    kernels Python does not call are compiled without the wrapper that would let it (see
    ``fastbp._config.JIT``)."""
    if kernel not in _CALLERS:
        _CALLERS[kernel] = numba.njit(lambda *args: kernel(*args))
    return _CALLERS[kernel]


def make_data(n, n_in, n_out, output, seed=0, dtype=np.float64):
    """Random inputs and valid targets for an output kind (targets as the network takes them)."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    if output == "identity":
        y = rng.standard_normal((n, n_out)).astype(dtype)
    elif output == "sigmoid":
        y = (rng.rand(n, n_out) > 0.5).astype(dtype)
    elif output == "poisson":
        y = rng.poisson(2.0, size=(n, n_out)).astype(dtype)
    else:
        y = rng.randint(0, n_out, size=n)
    return X, y


def run_child(code, timeout=600, **env):
    """Run ``code`` in a fresh interpreter, with ``env`` added to the environment; assert
    that it succeeded and return its standard output, stripped."""
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def targets_2d(y, n_out, output, dtype=np.float64):
    """Targets as the (n, n_out) matrix the reference works with."""
    from fastbp import reference

    if output == "softmax" and np.ndim(y) == 1:
        return reference.one_hot(y, n_out).astype(dtype)
    return np.asarray(y, dtype=dtype).reshape(len(y), -1)


@pytest.fixture(autouse=True)
def _slices_even_for_small_calls(monkeypatch):
    """The tests exercise the sliced kernel path on small data, in fits whose kernel calls
    the work rule (``_config.SPLIT_MIN_CALL_WORK``) would otherwise run on one thread, and
    whose batches the rule for batches without BLAS (``_config.SPLIT_MIN_TILED_ROWS``)
    would leave whole on some machines; the rules' own tests set them back."""
    from fastbp import _config

    monkeypatch.setattr(_config, "SPLIT_MIN_CALL_WORK", 0)
    monkeypatch.setattr(_config, "SPLIT_MIN_TILED_ROWS", _config.SPLIT_MIN_ROWS)


@pytest.fixture
def rng():
    return np.random.RandomState(12345)


# -- reliability tests: how many cases each category generated, shown after every run ------------

RELIABILITY_CASES = {}   # category -> {outcome: count}
RELIABILITY_BOUNDS = {}  # name -> measured bound (memory drift, threads)


def record_case(category, outcome):
    """Count one generated case of ``category`` that ended in ``outcome``."""
    outcomes = RELIABILITY_CASES.setdefault(category, {})
    outcomes[outcome] = outcomes.get(outcome, 0) + 1


def pytest_terminal_summary(terminalreporter):
    if not RELIABILITY_CASES and not RELIABILITY_BOUNDS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability: cases generated per category")
    for category in sorted(RELIABILITY_CASES):
        outcomes = RELIABILITY_CASES[category]
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))
        write(f"{category:<26} {sum(outcomes.values()):>6}  ({detail})")
    for name in sorted(RELIABILITY_BOUNDS):
        write(f"{name}: {RELIABILITY_BOUNDS[name]}")
