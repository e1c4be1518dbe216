"""Reliability, property-based: whatever a user passes to ``Network``, ``NeuralNetwork``,
``MLPClassifier`` or ``MLPRegressor``, the answer is a correct result (finite outputs of the
right shape and dtype) or a ``ValueError`` / ``TypeError`` whose message names the argument.

Hypothesis draws the cases: shapes (0 and 1 rows, 1 feature, more features than rows), dtypes
(bool, int, float16/32/64, long double, object, strings, complex, datetime), layouts (Fortran
order, strided and reversed views, read-only and memory-mapped arrays, lists, pandas
DataFrames, scipy sparse matrices), values (NaN, infinity, subnormal, zero, constant
columns) and targets (string, negative and whole-float labels, a single class, NaN, out of
range).  An oracle written from the documented contract says which argument is invalid, so
a bad input that slips through fails as surely as a good one that is refused.  The number
of cases each category ran is printed in the terminal summary (``conftest.record_case``).
"""
import contextlib
import os
import re
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning

import fastbp
from conftest import record_case

# Reproducible in CI: the same cases every run, none remembered between runs.
SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

OUTPUTS = ["identity", "sigmoid", "softmax", "poisson"]
ACTIVATIONS = ["identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
               "swish"]
REAL = ["float64", "float32", "float16", "longdouble", "int64", "int8", "uint8", "uint64", "bool"]
DTYPES = REAL + ["object", "str", "complex", "datetime"]
LAYOUTS = ["C", "F", "strided", "reversed", "readonly", "memmap", "list", "dataframe", "sparse"]
VALUES = ["normal", "normal", "normal", "tiny", "zeros", "constant-column", "nan", "inf", "-inf"]


# -- building inputs ---------------------------------------------------------------------------

@st.composite
def shapes(draw):
    """(rows, features): mostly small, sometimes empty, sometimes wider than tall."""
    n = draw(st.one_of(st.integers(1, 6), st.just(17), st.just(0)))
    f = draw(st.one_of(st.integers(1, 4), st.just(9), st.just(0)))
    return n, f


FINITE = ["normal", "normal", "tiny", "zeros", "constant-column"]


@st.composite
def inputs(draw, dtypes=DTYPES, layouts=LAYOUTS, valid_dtypes=REAL, valid_layouts=LAYOUTS[:-1]):
    """A description of X: shape, dtype, layout, values and a seed.  Half the time every
    part is drawn from what is valid, so that good inputs train as often as bad ones fail."""
    if draw(st.booleans()):
        n, f = draw(st.integers(1, 6) | st.just(17)), draw(st.integers(1, 4) | st.just(9))
        dtypes, layouts, values = valid_dtypes, valid_layouts, FINITE
    else:
        (n, f), values = draw(shapes()), VALUES
    return dict(n=n, f=f, dtype=draw(st.sampled_from(dtypes)),
                layout=draw(st.sampled_from(layouts)), values=draw(st.sampled_from(values)),
                scale=10.0 ** draw(st.integers(-3, 1)), seed=draw(st.integers(0, 2 ** 16)))


def base_values(spec):
    """float64 values of X before the dtype is applied."""
    rng = np.random.RandomState(spec["seed"])
    n, f = spec["n"], spec["f"]
    X = rng.standard_normal((n, f)) * spec["scale"]
    kind = spec["values"]
    if kind == "tiny":
        X = X * 1e-300  # subnormal in float64, zero in float32
    elif kind == "zeros":
        X[:] = 0.0
    elif kind == "constant-column" and f:
        X[:, rng.randint(f)] = 3.0
    elif kind in ("nan", "inf", "-inf") and n and f:
        X[rng.randint(n), rng.randint(f)] = float(kind)
    return X


def cast(X, dtype):
    """X in ``dtype``; NaN and infinity survive only where the dtype can hold them."""
    finite = np.where(np.isfinite(X), X, 0.0)
    if dtype == "bool":
        return finite > 0
    if dtype.startswith(("int", "uint")):
        return np.round(np.abs(finite) * 3 if dtype.startswith("u") else finite * 3).astype(dtype)
    if dtype == "object":
        return X.astype(object)
    if dtype == "str":
        return X.astype(str)
    if dtype == "complex":
        return X + 0.5j
    if dtype == "datetime":
        return np.round(np.abs(finite) * 1000).astype("datetime64[s]")
    with np.errstate(over="ignore"):
        return X.astype(dtype)


def arrange(A, layout, folder):
    """``A`` in a given memory layout or container."""
    n, f = A.shape
    if layout == "F":
        return np.asfortranarray(A)
    if layout == "strided":
        big = np.zeros((2 * n, 2 * f + 1), dtype=A.dtype)
        big[::2, 1::2] = A
        return big[::2, 1::2]
    if layout == "reversed":
        return np.ascontiguousarray(A[::-1, ::-1])[::-1, ::-1]
    if layout == "readonly":
        A = A.copy()
        A.setflags(write=False)
        return A
    if layout == "memmap" and A.size and A.dtype.kind in "biuf":
        path = os.path.join(folder, f"X{len(os.listdir(folder))}.dat")
        mm = np.memmap(path, dtype=A.dtype, mode="w+", shape=A.shape)
        mm[:] = A
        mm.flush()
        del mm
        return np.memmap(path, dtype=A.dtype, mode="r", shape=A.shape)
    if layout == "list":
        return A.tolist()
    if layout == "dataframe":
        return pd.DataFrame(A)
    if layout == "sparse" and A.dtype.kind in "biufc":
        return sp.csr_matrix(A.astype(np.float32) if A.dtype == np.float16 else A)
    return np.ascontiguousarray(A)


def effective(spec):
    """What the input really is once read: (dtype kind group, has NaN/inf, is sparse)."""
    dtype, layout = spec["dtype"], spec["layout"]
    sparse = layout == "sparse" and dtype not in ("object", "str", "datetime")
    if layout == "list" and (dtype == "object" or spec["n"] == 0 or spec["f"] == 0):
        dtype = "float64"  # a list of Python floats (or an empty one) reads as float64
    if layout == "dataframe" and spec["f"] == 0:
        dtype = "float64"  # so does a DataFrame without columns
    nonfinite = spec["values"] in ("nan", "inf", "-inf") and spec["n"] > 0 and spec["f"] > 0 \
        and dtype in ("float64", "float32", "float16", "longdouble", "object", "str", "complex")
    return dtype, nonfinite, sparse


def network_X_error(spec):
    """The error ``fastbp.Network`` must raise for X, or None: (types, message pattern)."""
    dtype, nonfinite, sparse = effective(spec)
    if sparse:
        return TypeError, r"X is a sparse matrix"
    if spec["layout"] == "list" and spec["n"] == 0:
        return ValueError, r"^X must be 2-D"  # [] is 1-D
    if dtype not in REAL:
        return TypeError, r"^X must be (numeric|real-valued)"
    if spec["n"] == 0:
        return ValueError, r"^X has 0 samples"
    if spec["f"] == 0:
        return ValueError, r"^X has 0 features"
    if nonfinite:
        return ValueError, r"^X contains NaN or infinity"
    return None


def assert_raises_named(call, error, record):
    """``call()`` raises ``error = (type, pattern)``, its message matching (naming the argument)."""
    exc_type, pattern = error
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert isinstance(info.value, exc_type), repr(info.value)
    assert re.search(pattern, str(info.value)), (pattern, str(info.value))
    record("rejected")


@contextlib.contextmanager
def strict_warnings():
    """Overflow and invalid-value warnings are failures; scikit-learn's notes are not."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DataConversionWarning)
        yield


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as path:
        yield path


# -- targets of a Network ----------------------------------------------------------------------

Y_KINDS = ["valid", "valid", "valid", "nan", "string", "out-of-range", "short"]
LABEL_TYPES = ["int64", "int8", "uint8", "whole-float", "float32", "list", "one-hot", "bool"]


def network_targets(output, n, n_out, kind, label_type, rng):
    """Targets of a Network and the error they must raise (or None)."""
    if output == "softmax":
        y = np.arange(n) % n_out
        rng.shuffle(y)
        if label_type == "one-hot":
            y = np.eye(n_out)[y]
        elif label_type == "bool" and n_out == 2:
            y = y.astype(bool)
        elif label_type in ("whole-float", "float32"):
            y = y.astype(np.float64 if label_type == "whole-float" else np.float32)
        elif label_type in ("int8", "uint8"):
            y = y.astype(label_type)
        elif label_type == "list":
            y = y.tolist()
    elif output == "sigmoid":
        y = (rng.rand(n, n_out) > 0.5).astype(np.float64)
        if label_type in ("int64", "int8", "uint8", "bool"):
            y = y.astype(label_type)
        elif label_type == "float32":
            y = rng.rand(n, n_out).astype(np.float32)  # soft targets
        if n_out == 1 and label_type != "list":
            y = y.ravel()
    elif output == "poisson":
        y = rng.poisson(2.0, size=(n, n_out)).astype(np.float64)
    else:
        y = rng.standard_normal((n, n_out))
        if n_out == 1 and label_type in ("whole-float", "list"):
            y = np.round(y.ravel())
    if kind == "valid" or n == 0:
        return y, None
    y = np.array(y, dtype=np.float64) if kind != "string" else np.asarray(y)
    if kind == "short":
        return y[:-1], (ValueError, r"X and y have different numbers of samples")
    if kind == "string":
        return y.astype(str), (TypeError, r"^y must be numeric")
    if kind == "nan":
        y.flat[rng.randint(y.size)] = np.nan
        return y, (ValueError, r"^y contains NaN or infinity")
    # out of range: a negative class index, a target below 0 (sigmoid and poisson); identity
    # takes any real target.
    y.flat[rng.randint(y.size)] = -1.0
    if output == "identity":
        return y, None
    if output == "softmax" and y.ndim == 2:
        return y, (ValueError, r"^y: targets of a softmax output must lie in \[0, 1\]")
    return y, (ValueError, r"^y: (class indices must lie in|targets of a (sigmoid|poisson) "
                           r"output must)")


SW_KINDS = [None, None, None, "ones", "positive", "int", "negative", "nan", "zeros", "wrong-shape"]


def sample_weights(kind, n, rng):
    if kind is None or n == 0:
        return None, None
    if kind == "ones":
        return np.ones(n), None
    if kind == "positive":
        return rng.rand(n) + 0.1, None
    if kind == "int":
        return rng.randint(1, 4, size=n), None
    if kind == "negative":
        return -np.ones(n), (ValueError, r"^sample_weight must be non-negative")
    if kind == "nan":
        return np.full(n, np.nan), (ValueError, r"^sample_weight contains NaN")
    if kind == "zeros":
        return np.zeros(n), (ValueError, r"^sample_weight sums to 0")
    return np.ones(n + 1), (ValueError, r"^sample_weight must have shape")


# -- Network -----------------------------------------------------------------------------------

@st.composite
def network_cases(draw):
    spec = draw(inputs())
    output = draw(st.sampled_from(OUTPUTS))
    n_out = draw(st.integers(2 if output == "softmax" else 1, 3))
    return dict(
        X=spec, output=output, n_out=n_out,
        hidden=draw(st.lists(st.integers(1, 6), min_size=0, max_size=2)),
        activation=draw(st.sampled_from(ACTIVATIONS)), residual=draw(st.booleans()),
        batch_norm=draw(st.booleans()), dtype=draw(st.sampled_from([np.float32, np.float64])),
        y_kind=draw(st.sampled_from(Y_KINDS[:1] if draw(st.booleans()) else Y_KINDS)),
        label_type=draw(st.sampled_from(LABEL_TYPES)),
        sw=draw(st.sampled_from(SW_KINDS[:6] if draw(st.booleans()) else SW_KINDS)),
        batch_size=draw(st.integers(1, 8)))


def check_network_outputs(net, X, n, n_out, output, record):
    try:
        F = net.forward(X)
    except ValueError as exc:  # outputs that overflow, reported (the network.py fix)
        assert str(exc).startswith("X")
        record("output overflow reported")
        return None
    assert F.shape == (n, n_out) and F.dtype == net.dtype
    assert np.isfinite(F).all(), F
    P = net.predict(X)
    single = n_out == 1 or output == "softmax"
    assert P.shape == ((n,) if single else (n, n_out))
    if output in ("sigmoid", "softmax"):
        assert P.dtype == np.int64
        assert ((P >= 0) & (P < (n_out if output == "softmax" else 2))).all()
        assert ((F >= 0) & (F <= 1)).all()
        proba = net.predict_proba(X)
        assert proba.shape == (n, 2 if output == "sigmoid" and n_out == 1 else n_out)
        assert np.isfinite(proba).all()
        if output == "softmax" or n_out == 1:
            np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    else:
        assert P.dtype == net.dtype and np.isfinite(P).all()
        if output == "poisson":
            assert (F >= 0).all()
    return F


@settings(max_examples=220, **SETTINGS)
@given(case=network_cases())
def test_network_gives_finite_outputs_or_names_the_bad_argument(case, folder):
    spec, output, n_out = case["X"], case["output"], case["n_out"]
    record = lambda outcome: record_case("Network inputs", outcome)  # noqa: E731
    rng = np.random.RandomState(spec["seed"] + 1)
    A = cast(base_values(spec), spec["dtype"])
    X = arrange(A, spec["layout"], folder)
    n, f = spec["n"], spec["f"]
    y, y_error = network_targets(output, n, n_out, case["y_kind"], case["label_type"], rng)
    sw, sw_error = sample_weights(case["sw"], n, rng)
    note(f"X: {type(X).__name__} {getattr(X, 'dtype', None)}; y: {np.asarray(y).dtype} "
         f"{np.shape(y)}; sw: {case['sw']}")
    net = fastbp.Network([max(f, 1)] + case["hidden"] + [n_out], activation=case["activation"],
                         output=output, dtype=case["dtype"], residual=case["residual"],
                         batch_norm=case["batch_norm"], random_state=spec["seed"])
    before = net.get_params_vector().tobytes()
    original = np.array(A, copy=True)
    x_error = network_X_error(spec)
    bn_error = None
    if case["batch_norm"] and min(case["batch_size"], n) < 2:  # (every unit would be 0)
        bn_error = ValueError, r"^batch_norm needs minibatches of at least 2 samples"
    error = x_error or y_error or sw_error or bn_error
    with strict_warnings():
        fit = lambda: net.fit(X, y, epochs=2, batch_size=case["batch_size"],  # noqa: E731
                              learning_rate=0.05, sample_weight=sw)
        if error is not None:
            assert_raises_named(fit, error, record)
            assert net.get_params_vector().tobytes() == before  # a refused fit changes nothing
            if x_error is not None:
                for method in (net.forward, net.predict):
                    assert_raises_named(lambda: method(X), x_error, lambda _: None)
            return
        try:
            fit()
        except fastbp.DivergenceError as exc:
            # Valid data can still make SGD diverge through an unbounded output (exp, or a
            # large squared error): then the error names the learning rate, and the weights
            # are those of the last finite epoch.
            assert output in ("poisson", "identity"), exc
            assert "learning rate" in str(exc)
            assert np.isfinite(net.get_params_vector()).all()
            assert len(net.loss_curve_) == net.n_iter_ < 2
            assert np.isfinite(net.loss_curve_).all()
            record("diverged")
            return
        assert net.get_params_vector().tobytes() != before or n == 0
        assert len(net.loss_curve_) == 2 and np.isfinite(net.loss_curve_).all()
        F = check_network_outputs(net, X, n, n_out, output, record)
        if F is None:
            return
        loss, *grads = net.loss_and_gradients(X, y, sample_weight=sw)
        assert np.isfinite(loss)
        weights = net.coefs_ + net.intercepts_ + (net.scales_ if case["batch_norm"] else [])
        grads = [g for group in grads for g in group]
        assert len(grads) == len(weights)
        for g, W in zip(grads, weights):
            assert g.shape == W.shape and np.isfinite(g).all()
        assert np.isfinite(net.score(X, y, sample_weight=sw))
        # Predictions do not depend on how the rows are batched.
        if isinstance(X, np.ndarray) and n > 1:
            np.testing.assert_allclose(net.forward(X[1:2]), F[1:2], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(A), original)  # X was not written to
        path = os.path.join(folder, f"model{len(os.listdir(folder))}.npz")
        net.save(path)
        np.testing.assert_array_equal(fastbp.load(path).forward(X), F)  # and saves as it is
        record("trained")


# -- NeuralNetwork -----------------------------------------------------------------------------

@settings(max_examples=60, **SETTINGS)
@given(spec=inputs(), n_out=st.integers(1, 3), hidden=st.integers(1, 5),
       y_kind=st.just("valid") | st.sampled_from(["valid", "nan", "out-of-range", "string"]),
       learning_rate=st.sampled_from([1e-3, 0.1, 1.0]), epochs=st.integers(1, 5))
def test_neural_network_gives_labels_or_names_the_bad_argument(spec, n_out, hidden, y_kind,
                                                               learning_rate, epochs, folder):
    record = lambda outcome: record_case("NeuralNetwork inputs", outcome)  # noqa: E731
    rng = np.random.RandomState(spec["seed"] + 2)
    X = arrange(cast(base_values(spec), spec["dtype"]), spec["layout"], folder)
    n, f = spec["n"], spec["f"]
    y = (rng.rand(n, n_out) > 0.5).astype(np.float64)
    y_error = None
    if y_kind == "nan" and n:
        y[0, 0] = np.nan
        y_error = (ValueError, r"^y contains NaN")
    elif y_kind == "out-of-range" and n:
        y[0, 0] = 2.0
        y_error = (ValueError, r"^y: targets of a sigmoid output must lie in \[0, 1\]")
    elif y_kind == "string":
        y = y.astype(str)
        y_error = (TypeError, r"^y must be numeric")
    np.random.seed(spec["seed"])
    nn = fastbp.NeuralNetwork(max(f, 1), hidden, n_out)
    weights = [a.copy() for a in (nn.W1, nn.b1, nn.W2, nn.b2)]
    x_error = network_X_error(spec)
    with strict_warnings():
        train = lambda: nn.train(X, y, learning_rate, epochs)  # noqa: E731
        if x_error or y_error:
            assert_raises_named(train, x_error or y_error, record)
            for a, a0 in zip((nn.W1, nn.b1, nn.W2, nn.b2), weights):
                assert a.tobytes() == a0.tobytes()
            return
        train()
        out = nn.forward(X)
        assert out.shape == (n, n_out) and out.dtype == np.float64
        assert np.isfinite(out).all() and ((out >= 0) & (out <= 1)).all()
        labels = nn.predict(X)
        assert labels.shape == (n, n_out) and labels.dtype.kind == "i"
        np.testing.assert_array_equal(labels, (out > 0.5).astype(int))
        for a in (nn.W1, nn.b1, nn.W2, nn.b2):
            assert np.isfinite(a).all()
        record("trained")


# -- scikit-learn estimators -------------------------------------------------------------------

EST_DTYPES = [d for d in DTYPES if d != "datetime"]  # scikit-learn's own business
LABELS = ["int", "negative-int", "string", "whole-float", "bool", "single-class", "multilabel",
          "fractional", "mixed", "nan", "object-int"]
TARGETS = ["float", "int", "whole-float", "two-outputs", "numeric-strings", "letters", "nan",
           "object-None"]


def estimator_X_error(spec):
    """scikit-learn's contract, which the drop-ins keep: numbers in any container (numeric
    object arrays and numeric strings too), sparse matrices included."""
    dtype, nonfinite, _ = effective(spec)
    if dtype == "complex":
        return ValueError, r"^X: Complex data not supported"
    if spec["n"] == 0 or spec["f"] == 0:
        # ([] is 1-D; a DataFrame without columns fails earlier, in numpy)
        return ValueError, (r"^X: (Found array with 0 (sample|feature)\(s\)|Expected 2D array, "
                            r"got 1D|at least one array or dtype is required)")
    if nonfinite:
        return ValueError, r"Input X contains (NaN|infinity)"
    return None


def class_labels(kind, n, rng):
    """Labels for a classifier, the classes expected and the error they must raise (or None)."""
    base = rng.randint(0, 3, size=n)
    if kind == "int":
        return base, None
    if kind == "negative-int":
        return base - 5, None
    if kind == "string":
        return np.array(["cat", "dog", "émeu"])[base], None
    if kind == "whole-float":
        return base.astype(np.float64) * 2.0, None
    if kind == "bool":
        return base > 0, None
    if kind == "single-class":
        return np.full(n, 7), None
    if kind == "multilabel":
        return (rng.rand(n, 3) > 0.5).astype(int), None
    if kind == "object-int":  # scikit-learn's rule: an object array must hold strings
        return base.astype(object), (ValueError, r"^y: Unknown label type")
    if kind == "fractional":
        return base + 0.5, (ValueError, r"^y: Unknown label type")
    if kind == "mixed":
        y = base.astype(object)
        y[0] = "a"
        # np.unique cannot order str and int: scikit-learn lets numpy's TypeError through
        return y, ((TypeError, ValueError), r"^y: ('<' not supported|Mix of label input types)") \
            if n > 1 else None
    y = base.astype(np.float64)
    y[0] = np.nan
    return y, (ValueError, r"^Input y contains NaN")


def regression_targets(kind, n, rng):
    y = rng.standard_normal(n)
    if kind == "float":
        return y, None
    if kind == "int":
        return rng.randint(-3, 4, size=n), None
    if kind == "whole-float":
        return np.round(y * 3), None
    if kind == "two-outputs":
        return rng.standard_normal((n, 2)), None
    if kind == "numeric-strings":
        return y.astype(str), None
    if kind == "letters":
        return np.array(["a"] * n), (ValueError, r"^y: could not convert string to float")
    if kind == "nan":
        y[0] = np.nan
        return y, (ValueError, r"^Input y contains NaN")
    y = y.astype(object)
    y[0] = None
    return y, (ValueError, r"^Input y contains NaN")


@st.composite
def estimator_cases(draw):
    classifier = draw(st.booleans())
    return dict(
        X=draw(inputs(dtypes=EST_DTYPES, valid_dtypes=REAL + ["object", "str"],
                      valid_layouts=LAYOUTS)),
        classifier=classifier,
        y_kind=draw(st.sampled_from((LABELS if classifier else TARGETS)[:6]
                                    if draw(st.booleans()) else
                                    (LABELS if classifier else TARGETS))),
        hidden=tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=2))),
        solver=draw(st.sampled_from(["adam", "sgd", "lbfgs"])),
        dtype=draw(st.sampled_from([None, "float32"])), refit=draw(st.booleans()),
        extras=draw(st.sampled_from([{}, {}, dict(residual=True), dict(dropout=0.3),
                                     dict(batch_norm=True), dict(clip_norm=0.5)])))


@settings(max_examples=220, **SETTINGS)
@given(case=estimator_cases())
def test_estimators_give_finite_outputs_or_name_the_bad_argument(case, folder):
    spec = case["X"]
    category = "MLPClassifier inputs" if case["classifier"] else "MLPRegressor inputs"
    record = lambda outcome: record_case(category, outcome)  # noqa: E731
    rng = np.random.RandomState(spec["seed"] + 3)
    n = spec["n"]
    X = arrange(cast(base_values(spec), spec["dtype"]), spec["layout"], folder)
    make = fastbp.MLPClassifier if case["classifier"] else fastbp.MLPRegressor
    labels = class_labels if case["classifier"] else regression_targets
    y, y_error = labels(case["y_kind"], n, rng) if n else (np.zeros(0), None)
    note(f"X: {type(X).__name__} {getattr(X, 'dtype', None)}; y: {y!r}")
    extras = case["extras"] if case["solver"] != "lbfgs" else {}  # (those need SGD or Adam)
    est = make(hidden_layer_sizes=case["hidden"], solver=case["solver"], max_iter=3,
               random_state=spec["seed"], dtype=case["dtype"], **extras)
    previous = None
    if case["refit"]:
        # A failed fit must leave a fitted estimator as it was.
        X0 = np.random.RandomState(0).standard_normal((8, max(spec["f"], 1)))
        y0 = (np.arange(8) % 2) if case["classifier"] else np.linspace(-1, 1, 8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X0, y0)
        previous = (X0, est.predict(X0), est._net.get_params_vector(), est.n_iter_)
    bn_error = None
    if extras.get("batch_norm") and spec["n"] < 2:  # ('auto' batches of one sample)
        bn_error = ValueError, r"^batch_norm needs minibatches of at least 2 samples"
    error = estimator_X_error(spec) or y_error or bn_error
    with strict_warnings():
        if error is not None:
            assert_raises_named(lambda: est.fit(X, y), error, record)
            if previous is None:
                with pytest.raises(AttributeError):  # still unfitted: NotFittedError
                    est.predict(np.zeros((1, max(spec["f"], 1))))
            else:
                X0, p0, w0, n_iter = previous
                np.testing.assert_array_equal(est.predict(X0), p0)
                assert est._net.get_params_vector().tobytes() == w0.tobytes()
                assert est.n_iter_ == n_iter
            return
        est.fit(X, y)
        if case["solver"] == "lbfgs":  # (no history, as scikit-learn's; it may start converged)
            assert est.n_iter_ <= 3 and not hasattr(est, "loss_curve_")
        else:
            assert 1 <= est.n_iter_ == len(est.loss_curve_) <= 3
            assert np.isfinite(est.loss_curve_).all()
        assert np.isfinite(est.loss_)
        P = est.predict(X)
        if case["classifier"]:
            y_arr = np.asarray(y)
            if y_arr.ndim == 2:
                assert P.shape == y_arr.shape
                assert set(np.unique(P)) <= {0, 1}
            else:
                assert P.shape == (n,) and set(P.tolist()) <= set(est.classes_.tolist())
                assert P.dtype == est.classes_.dtype
                if case["y_kind"] == "single-class":
                    assert (P == 7).all()
            proba = est.predict_proba(X)
            assert proba.shape == (n, max(2, len(est.classes_)))
            assert np.isfinite(proba).all() and ((proba >= 0) & (proba <= 1)).all()
            if y_arr.ndim == 1:
                np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
        else:
            assert P.shape == np.shape(y) and np.isfinite(P).all()
            # float32 data stay float32 (unless a list made them Python floats), as in
            # scikit-learn; everything else trains in float64 unless dtype says otherwise.
            float32 = case["dtype"] == "float32" or (
                case["dtype"] is None and spec["dtype"] == "float32" and spec["layout"] != "list")
            assert P.dtype == (np.float32 if float32 else np.float64)
        record("trained")


# -- pandas columns NumPy reads as objects -----------------------------------------------------

@settings(max_examples=25, **SETTINGS)
@given(n=st.integers(1, 6), kinds=st.lists(st.sampled_from(["Int64", "Float64", "boolean",
                                                             "float64", "int8"]),
                                           min_size=1, max_size=4),
       missing=st.booleans(), seed=st.integers(0, 1000))
def test_network_reads_nullable_pandas_columns(n, kinds, missing, seed):
    """Nullable extension dtypes (Int64, Float64, boolean) are numbers; pd.NA is missing."""
    rng = np.random.RandomState(seed)
    columns = {}
    for i, kind in enumerate(kinds):
        values = rng.randint(0, 3, size=n)
        columns[f"c{i}"] = pd.array(values > 0 if kind == "boolean" else values, dtype=kind)
    frame = pd.DataFrame(columns)
    if missing:
        frame.iloc[rng.randint(n), 0] = pd.NA
    net = fastbp.Network([len(kinds), 3, 1], random_state=0)
    y = pd.Series(pd.array(rng.randint(0, 3, size=n), dtype="Int64"))
    if missing:
        with pytest.raises(ValueError, match="^X contains NaN or infinity"):
            net.fit(frame, y, epochs=1)
        record_case("pandas nullable columns", "rejected")
        return
    net.fit(frame, y, epochs=1)
    dense = frame.to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(net.predict(frame), net.predict(dense))
    assert np.isfinite(net.predict(frame)).all()
    record_case("pandas nullable columns", "trained")


# -- save and load: the path argument ------------------------------------------------------------

@settings(max_examples=30, **SETTINGS)
@given(path=st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.text(max_size=3)),
                      st.sampled_from(["str", "bytes", "pathlib"])))
def test_save_and_load_take_file_names_and_name_anything_else(path, folder):
    import pathlib

    net = fastbp.Network([2, 3, 1], random_state=0)
    if isinstance(path, str) and path in ("str", "bytes", "pathlib"):
        name = os.path.join(folder, f"p{len(os.listdir(folder))}.npz")
        path = {"str": name, "bytes": os.fsencode(name), "pathlib": pathlib.Path(name)}[path]
        net.save(path)
        assert fastbp.load(path).get_params_vector().tobytes() == \
            net.get_params_vector().tobytes()
        record_case("save/load paths", "saved and loaded")
        return
    for call in (lambda: net.save(path), lambda: fastbp.load(path)):
        with pytest.raises(TypeError, match="^path must be a str, bytes or os.PathLike"):
            call()
    record_case("save/load paths", "rejected")
