"""The vectorizable exponentials against NumPy's libm, over the whole float64 range."""
import numba
import numpy as np
import pytest

from fastbp._config import FASTMATH
from fastbp._kernels import mathfn

EPS = np.finfo(np.float64).eps


@numba.njit
def apply_plain(f, x, out):
    for i in range(x.size):
        out[i] = f(x[i])


@numba.njit(fastmath=set(FASTMATH))
def apply_fastmath(f, x, out):
    # as the kernels call them: from loops compiled with fastbp's fast-math flags
    for i in range(x.size):
        out[i] = f(x[i])


@pytest.fixture(params=[apply_plain, apply_fastmath], ids=["plain", "fastmath-caller"])
def apply(request):
    return request.param


def grid():
    return np.concatenate([np.linspace(-800, 800, 200_001), np.linspace(-1e-6, 1e-6, 2001),
                           np.geomspace(1e-300, 1e-3, 1001), -np.geomspace(1e-300, 1e-3, 1001),
                           [0.0, -0.0, 709.78, 709.79, -745.13, -745.14]])


def exact_sigmoid(x):
    # 1 / (1 + e^-x) in extended precision where the platform has it
    xl = x.astype(np.longdouble)
    return (1 / (1 + np.exp(-xl))).astype(np.float64)


@pytest.mark.parametrize("name, reference, ulps", [
    ("exp", np.exp, 1.5), ("expm1", np.expm1, 2), ("tanh", np.tanh, 2),
    ("sigmoid", exact_sigmoid, 4)])
def test_accuracy_in_ulps(apply, name, reference, ulps):
    x = grid()
    out = np.empty_like(x)
    apply(getattr(mathfn, name), x, out)
    with np.errstate(all="ignore"):
        ref = reference(x)
    normal = np.isfinite(ref) & (np.abs(ref) >= np.finfo(np.float64).tiny)
    rel = np.abs(out[normal] - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= ulps * EPS, (rel.max() / EPS, x[normal][rel.argmax()])
    # outside the normal range: the same infinities, zeros and subnormals to one ulp of tiny
    assert np.array_equal(np.isinf(out), np.isinf(ref))
    np.testing.assert_allclose(out[~normal & np.isfinite(ref)], ref[~normal & np.isfinite(ref)],
                               rtol=1e-12, atol=5e-324 * 4)


@pytest.mark.parametrize("name", ["exp", "expm1", "tanh", "sigmoid", "log", "log1p"])
def test_special_values(apply, name):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0])
    if name.startswith("log"):  # the edges of their domains
        x = np.concatenate([x, [-1.0, -2.0, 5e-324, 1.0]])
    out = np.empty_like(x)
    apply(getattr(mathfn, name), x, out)
    with np.errstate(all="ignore"):
        ref = {"exp": np.exp, "expm1": np.expm1, "tanh": np.tanh, "sigmoid": exact_sigmoid,
               "log": np.log, "log1p": np.log1p}[name](x)
    np.testing.assert_array_equal(out, ref)


def positive_grid():
    return np.concatenate([np.geomspace(5e-324, 1.7e308, 200_001), np.linspace(0.5, 2.0, 100_001),
                           1 + np.linspace(-1e-6, 1e-6, 2001), [1.0, np.nextafter(1, 2),
                                                                np.nextafter(1, 0), 2.0, 0.5]])


@pytest.mark.parametrize("name, shift, ulps", [("log", 0.0, 1.0), ("log1p", -1.0, 1.0)])
def test_logarithms_in_ulps(apply, name, shift, ulps):
    # log over every binade, subnormals included; log1p from -1 up, and close to 0
    x = positive_grid() + shift
    if name == "log1p":
        x = np.concatenate([x, np.linspace(-1e-6, 1e-6, 2001), np.geomspace(1e-300, 1e-3, 1001),
                            -np.geomspace(1e-300, 1e-3, 1001)])
        x = x[x > -1]
    out = np.empty_like(x)
    apply(getattr(mathfn, name), x, out)
    xl = (x.astype(np.longdouble) - shift) if name == "log" else x.astype(np.longdouble) + 1
    ref = np.log(xl) if name == "log" else np.log1p(x.astype(np.longdouble))
    ref64 = ref.astype(np.float64)
    ok = (ref64 != 0) & (np.abs(ref64) >= np.finfo(np.float64).tiny)
    rel = np.abs((out[ok] - ref[ok]) / ref[ok]).astype(np.float64)
    assert rel.max() <= ulps * EPS, (rel.max() / EPS, x[ok][rel.argmax()])
    assert np.array_equal(out[~ok], ref64[~ok])
