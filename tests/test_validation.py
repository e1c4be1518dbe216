"""Bad input to the public API: every case gives a clear TypeError or ValueError that names the
argument, a fit that raises leaves the weights as they were, and valid edge cases still pass."""
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse

import fastbp
from fastbp._validation import check_X, check_targets

N_IN, N_HIDDEN = 3, 4


def make_X(n=6, n_in=N_IN, seed=0, dtype=np.float64):
    return np.random.RandomState(seed).standard_normal((n, n_in)).astype(dtype)


def make_y(output, n=6, n_out=2, seed=1):
    rng = np.random.RandomState(seed)
    if output == "identity":
        return rng.standard_normal((n, n_out))
    if output == "sigmoid":
        return (rng.rand(n, n_out) > 0.5).astype(np.float64)
    return np.arange(n) % n_out  # softmax class indices, every class present


def make_net(output="sigmoid", n_out=2, dtype=np.float32, random_state=0, **kw):
    return fastbp.Network([N_IN, N_HIDDEN, n_out], output=output, dtype=dtype,
                          random_state=random_state, **kw)


def n_rows(X):
    """Rows of a (possibly bad) X, for targets of matching length."""
    if isinstance(X, list):
        return len(X)
    shape = getattr(X, "shape", ())
    return shape[0] if len(shape) else 1


def with_value(X, i, j, value):
    X = np.array(X, dtype=np.float64)
    X[i, j] = value
    return X


def params(net):
    """Bytes of the flat parameter vector, for bit-for-bit comparisons."""
    return net.get_params_vector().tobytes()


# -- X: every entry point that takes inputs -----------------------------------------------------

def _nn():
    np.random.seed(0)
    return fastbp.NeuralNetwork(N_IN, N_HIDDEN, 2)


# Each takes X and calls one public entry point with otherwise valid arguments (sigmoid, 2 outputs).
X_ENTRY_POINTS = {
    "fit": lambda X: make_net().fit(X, np.zeros((n_rows(X), 2)), epochs=1),
    "forward": lambda X: make_net().forward(X),
    "predict": lambda X: make_net().predict(X),
    "predict_proba": lambda X: make_net().predict_proba(X),
    "loss_and_gradients": lambda X: make_net().loss_and_gradients(X, np.zeros((n_rows(X), 2))),
    "NeuralNetwork.train": lambda X: _nn().train(X, np.zeros((n_rows(X), 2)), 0.1, 1),
    "NeuralNetwork.backward": lambda X: _nn().backward(X, np.zeros((n_rows(X), 2)), 0.1),
    "NeuralNetwork.forward": lambda X: _nn().forward(X),
    "NeuralNetwork.predict": lambda X: _nn().predict(X),
}

BAD_X = [
    pytest.param(with_value(make_X(), 2, 1, np.nan), ValueError, "X contains NaN", id="nan"),
    pytest.param(with_value(make_X(), 0, 0, np.inf), ValueError, "X contains NaN", id="inf"),
    pytest.param(with_value(make_X(), 5, 2, -np.inf), ValueError, "X contains NaN", id="-inf"),
    pytest.param(np.full((4, N_IN), np.nan, dtype=np.float32), ValueError, "X contains NaN",
                 id="all-nan-float32"),
    pytest.param(make_X()[:, 0], ValueError, r"X must be 2-D.*shape \(6,\)", id="1-D"),
    pytest.param(make_X()[:, :, None], ValueError, r"X must be 2-D.*shape \(6, 3, 1\)", id="3-D"),
    pytest.param(np.float64(1.0), ValueError, r"X must be 2-D.*shape \(\)", id="0-D"),
    pytest.param(make_X(n_in=2), ValueError, "X has 2 features, but the network expects 3",
                 id="too-few-features"),
    pytest.param(make_X(n_in=5), ValueError, "X has 5 features, but the network expects 3",
                 id="too-many-features"),
    pytest.param([["a", "b", "c"], ["d", "e", "f"]], TypeError, "X must be numeric, got dtype <U1",
                 id="strings"),
    pytest.param(make_X().astype(object), TypeError, "X must be numeric, got dtype object",
                 id="object-array"),
    pytest.param([[1.0, None, 2.0]], TypeError, "X must be numeric, got dtype object",
                 id="list-with-None"),
    pytest.param(None, TypeError, "X must be numeric", id="None"),
    pytest.param([[1.0, 2.0, 3.0], [1.0, 2.0]], ValueError, "X could not be read as a numeric array",
                 id="ragged"),
    pytest.param(make_X() + 1j, TypeError, "X must be real-valued, got complex", id="complex"),
    pytest.param(np.zeros((2, N_IN), dtype="datetime64[s]"), TypeError, "X must be numeric",
                 id="datetime"),
    pytest.param(scipy.sparse.csr_matrix(make_X()), TypeError, r"X is a sparse matrix.*toarray",
                 id="csr_matrix"),
    pytest.param(scipy.sparse.csr_array(make_X()), TypeError, "X is a sparse matrix", id="csr_array"),
    pytest.param(scipy.sparse.coo_matrix(make_X()), TypeError, "X is a sparse matrix", id="coo"),
    pytest.param(np.empty((0, N_IN)), ValueError, "X has 0 samples", id="0-rows"),
    pytest.param(np.empty((4, 0)), ValueError, "X has 0 features", id="0-columns"),
    pytest.param(np.empty((0, 0)), ValueError, "X has 0 samples", id="0x0"),
]


@pytest.mark.parametrize("entry", X_ENTRY_POINTS)
@pytest.mark.parametrize("X, exc, match", BAD_X)
def test_bad_X_is_rejected(entry, X, exc, match):
    if (entry in ("NeuralNetwork.forward", "NeuralNetwork.predict")
            and isinstance(X, np.ndarray) and X.ndim == 1):
        # (the article's forward takes one sample as a vector: its features are checked)
        exc, match = ValueError, "X has 6 features, but the network expects 3"
    with pytest.raises(exc, match=match):
        X_ENTRY_POINTS[entry](X)


@pytest.mark.parametrize("entry", [e for e in X_ENTRY_POINTS if not e.startswith("NeuralNetwork")])
def test_X_too_large_for_float32_is_named_as_such(entry):
    # Finite in the input, infinite once converted: not reported as "NaN or infinity in X".
    X = with_value(make_X(), 1, 1, -1e39)
    with pytest.raises(ValueError, match=r"X has values too large for float32 \(largest magnitude 1e\+39"):
        X_ENTRY_POINTS[entry](X)
    # NeuralNetwork computes in float64, where the same value is fine.
    assert np.isfinite(_nn().forward(X)).all()


def test_sample_weights_too_large_for_float32_are_named_as_such():
    X, y = make_X(), np.zeros(len(make_X()))
    sw = np.ones(len(X))
    sw[3] = 1e300
    net = fastbp.Network([X.shape[1], 3, 1], dtype=np.float32, random_state=0)
    with pytest.raises(ValueError, match=r"sample_weight has values too large for float32"):
        net.fit(X, y, sample_weight=sw, epochs=1)


# -- y: every entry point that takes targets ----------------------------------------------------

def _y_with(output, i, value, n_out=2):
    y = np.array(make_y(output, n_out=n_out), dtype=np.float64)
    y.flat[i] = value
    return y


BAD_Y = [
    # identity
    pytest.param("identity", 2, _y_with("identity", 3, np.nan), ValueError, "y contains NaN",
                 id="identity-nan"),
    pytest.param("identity", 2, _y_with("identity", 0, -np.inf), ValueError, "y contains NaN",
                 id="identity-inf"),
    pytest.param("identity", 2, make_y("identity", n=5), ValueError,
                 "X and y have different numbers of samples: 6 and 5", id="fewer-rows"),
    pytest.param("identity", 2, make_y("identity", n=7), ValueError,
                 "X and y have different numbers of samples: 6 and 7", id="more-rows"),
    pytest.param("identity", 2, [], ValueError, "X and y have different numbers of samples: 6 and 0",
                 id="empty"),
    pytest.param("identity", 2, make_y("identity", n_out=3), ValueError,
                 r"y has 3 column\(s\), but the network has 2 output\(s\)", id="too-many-columns"),
    pytest.param("identity", 2, make_y("identity", n_out=1)[:, 0], ValueError,
                 r"y has 1 column\(s\), but the network has 2 output\(s\)", id="1-D-for-2-outputs"),
    pytest.param("identity", 2, np.empty((6, 0)), ValueError, r"y has 0 column\(s\)", id="0-columns"),
    pytest.param("identity", 2, make_y("identity")[:, :, None], ValueError, "y must be 1-D or 2-D",
                 id="3-D"),
    pytest.param("identity", 2, np.full((6, 2), "a"), TypeError, "y must be numeric", id="strings"),
    pytest.param("identity", 2, make_y("identity").astype(object), TypeError, "y must be numeric",
                 id="object"),
    pytest.param("identity", 2, make_y("identity") * 1j, TypeError, "y must be real-valued",
                 id="complex"),
    pytest.param("identity", 2, scipy.sparse.csr_matrix(make_y("identity")), TypeError,
                 "y is a sparse matrix", id="sparse"),
    pytest.param("identity", 2, _y_with("identity", 4, 1e39), ValueError,
                 "y has values too large for float32", id="overflows-float32"),
    # sigmoid
    pytest.param("sigmoid", 2, _y_with("sigmoid", 1, 1.5), ValueError,
                 r"targets of a sigmoid output must lie in \[0, 1\]", id="sigmoid-above-1"),
    pytest.param("sigmoid", 2, _y_with("sigmoid", 1, -0.1), ValueError,
                 r"targets of a sigmoid output must lie in \[0, 1\]", id="sigmoid-negative"),
    pytest.param("sigmoid", 2, _y_with("sigmoid", 1, np.nan), ValueError, "y contains NaN",
                 id="sigmoid-nan"),
    pytest.param("sigmoid", 2, np.zeros((6, 3)), ValueError, r"y has 3 column\(s\)",
                 id="sigmoid-columns"),
    pytest.param("sigmoid", 2, np.zeros((5, 2)), ValueError, "different numbers of samples: 6 and 5",
                 id="sigmoid-rows"),
    # softmax, 3 classes
    pytest.param("softmax", 3, _y_with("softmax", 2, -1, n_out=3), ValueError,
                 r"class indices must lie in \[0, 2\] for 3 outputs", id="softmax-negative-index"),
    pytest.param("softmax", 3, _y_with("softmax", 2, 3, n_out=3).astype(int), ValueError,
                 r"class indices must lie in \[0, 2\] for 3 outputs", id="softmax-index-too-large"),
    pytest.param("softmax", 3, _y_with("softmax", 2, 1.5, n_out=3), ValueError,
                 "class indices for a softmax output must be whole numbers", id="softmax-float-index"),
    pytest.param("softmax", 3, _y_with("softmax", 2, np.nan, n_out=3), ValueError, "y contains NaN",
                 id="softmax-nan-index"),
    pytest.param("softmax", 3, _y_with("softmax", 2, np.inf, n_out=3), ValueError, "y contains NaN",
                 id="softmax-inf-index"),
    pytest.param("softmax", 3, np.full((6, 3), 0.5), ValueError, "each row of a softmax target must sum to 1",
                 id="softmax-rows-not-summing-to-1"),
    pytest.param("softmax", 3, np.tile([1.5, -0.5, 0.0], (6, 1)), ValueError,
                 r"targets of a softmax output must lie in \[0, 1\]", id="softmax-negative-probability"),
    pytest.param("softmax", 3, np.eye(2)[np.arange(6) % 2], ValueError, r"y has 2 column\(s\)",
                 id="softmax-columns"),
    pytest.param("softmax", 3, make_y("softmax", n=4, n_out=3), ValueError,
                 "different numbers of samples: 6 and 4", id="softmax-rows"),
]


def _y_calls(output, n_out):
    """Public entry points that take targets, for a network with this output."""
    calls = {
        "fit": lambda y: make_net(output, n_out).fit(make_X(), y, epochs=2),
        "loss_and_gradients": lambda y: make_net(output, n_out).loss_and_gradients(make_X(), y),
    }
    if output == "sigmoid" and n_out == 2:
        calls["NeuralNetwork.train"] = lambda y: _nn().train(make_X(), y, 0.1, 2)
        calls["NeuralNetwork.backward"] = lambda y: _nn().backward(make_X(), y, 0.1)
    return calls


@pytest.mark.parametrize("output, n_out, y, exc, match", BAD_Y)
def test_bad_y_is_rejected(output, n_out, y, exc, match):
    for entry, call in _y_calls(output, n_out).items():
        with pytest.raises(exc, match=match):
            call(y)


# -- constructors -------------------------------------------------------------------------------

@pytest.mark.parametrize("layers, exc, match", [
    ([], ValueError, "layers must give at least an input and an output width, got \\[\\]"),
    ([3], ValueError, "layers must give at least an input and an output width"),
    ((), ValueError, "layers must give at least"),
    ([3, 0, 1], ValueError, r"layers\[1\] must be >= 1, got 0"),
    ([0, 4, 1], ValueError, r"layers\[0\] must be >= 1, got 0"),
    ([3, 4, -2], ValueError, r"layers\[2\] must be >= 1, got -2"),
    ([3, 4.0, 1], TypeError, r"layers\[1\] must be an integer, got float"),
    ([3, np.float64(4), 1], TypeError, r"layers\[1\] must be an integer"),
    ([3, 4.5, 1], TypeError, r"layers\[1\] must be an integer"),
    ([3, True, 1], TypeError, r"layers\[1\] must be an integer, got bool"),
    ([2 ** 62, 2, 1], ValueError, r"make 9223372036854775813 parameters, more than a network"),
    ([2 ** 24, 2 ** 24, 1], ValueError, "parameters, more than a network can index"),
    ([3, "4", 1], TypeError, r"layers\[1\] must be an integer, got str"),
    ([3, None, 1], TypeError, r"layers\[1\] must be an integer"),
    ("3,4,1", TypeError, "layers must be a list of layer widths"),
    (b"\x03\x04", TypeError, "layers must be a list of layer widths"),
    (5, TypeError, "layers must be a list of layer widths"),
    (None, TypeError, "layers must be a list of layer widths"),
    ((w for w in [3, 4, 1]), TypeError, "layers must be a list of layer widths"),
])
def test_bad_layers(layers, exc, match):
    with pytest.raises(exc, match=match):
        fastbp.Network(layers)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(activation="sigmoidd"), ValueError, r"activation must be one of \[.*'relu'.*\], got 'sigmoidd'"),
    (dict(activation="ReLU"), ValueError, "activation must be one of"),
    (dict(activation=None), ValueError, "activation must be one of .* got None"),
    (dict(activation=np.tanh), ValueError, "activation must be one of"),
    (dict(output="linear"), ValueError, r"output must be one of \[.*'softmax'\], got 'linear'"),
    (dict(output="relu"), ValueError, "output must be one of"),
    (dict(output=None), ValueError, "output must be one of"),
    (dict(dtype=np.float16), ValueError, "dtype must be float32 or float64, got float16"),
    (dict(dtype=int), ValueError, "dtype must be float32 or float64, got int64"),
    (dict(dtype=np.int32), ValueError, "dtype must be float32 or float64, got int32"),
    (dict(dtype=np.complex128), ValueError, "dtype must be float32 or float64, got complex128"),
    (dict(dtype=bool), ValueError, "dtype must be float32 or float64, got bool"),
    (dict(dtype="not-a-dtype"), TypeError, "dtype must be float32 or float64, got 'not-a-dtype'"),
])
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fastbp.Network([N_IN, 2, 1], **kwargs)


def test_softmax_needs_two_outputs():
    with pytest.raises(ValueError, match="output='softmax' needs at least 2 output units"):
        fastbp.Network([N_IN, 4, 1], output="softmax")
    assert fastbp.Network([N_IN, 4, 2], output="softmax").n_outputs_ == 2


@pytest.mark.parametrize("sizes, bad, exc", [
    ((0, 4, 1), 0, ValueError), ((3, 0, 1), 1, ValueError), ((3, 4, -1), 2, ValueError),
    ((3.0, 4, 1), 0, TypeError), ((3, "4", 1), 1, TypeError),
])
def test_bad_neural_network_sizes(sizes, bad, exc):
    name = ("input_size", "hidden_size", "output_size")[bad]
    with pytest.raises(exc, match=rf"{name} must be"):
        fastbp.NeuralNetwork(*sizes)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(dtype=None), TypeError, "dtype must be float32 or float64, got None"),
    (dict(random_state="seed"), TypeError, "random_state must be None, an int or a numpy RandomState"),
    (dict(random_state=1.5), TypeError, "random_state must be"),
])
def test_bad_constructor_keywords(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fastbp.Network([N_IN, 4, 1], **kwargs)


def test_random_state_accepts_none_int_and_generator():
    a = fastbp.Network([N_IN, 4, 1], random_state=np.random.RandomState(5))
    b = fastbp.Network([N_IN, 4, 1], random_state=5)
    assert np.array_equal(a.get_params_vector(), b.get_params_vector())
    fastbp.Network([N_IN, 4, 1], random_state=None)


# -- fit parameters -----------------------------------------------------------------------------

BAD_FIT_PARAMS = [
    pytest.param(dict(epochs=0), ValueError, "epochs must be >= 1, got 0", id="epochs=0"),
    pytest.param(dict(epochs=-3), ValueError, "epochs must be >= 1, got -3", id="epochs<0"),
    pytest.param(dict(epochs=2.0), TypeError, "epochs must be an integer, got float", id="epochs-float"),
    pytest.param(dict(epochs=True), TypeError, "epochs must be an integer, got bool", id="epochs-bool"),
    pytest.param(dict(epochs=np.True_), TypeError, "epochs must be an integer", id="epochs-np-bool"),
    pytest.param(dict(epochs="2"), TypeError, "epochs must be an integer, got str", id="epochs-str"),
    pytest.param(dict(epochs=None), TypeError, "epochs must be an integer", id="epochs-None"),
    pytest.param(dict(batch_size=0), ValueError, "batch_size must be >= 1, got 0", id="batch=0"),
    pytest.param(dict(batch_size=-1), ValueError, "batch_size must be >= 1", id="batch<0"),
    pytest.param(dict(batch_size=2.5), TypeError, "batch_size must be an integer, got float",
                 id="batch-float"),
    pytest.param(dict(batch_size=4.0), TypeError, "batch_size must be an integer", id="batch-whole-float"),
    pytest.param(dict(batch_size=False), TypeError, "batch_size must be an integer, got bool",
                 id="batch-bool"),
    pytest.param(dict(learning_rate=0), ValueError, "learning_rate must be a finite number > 0, got 0",
                 id="lr=0"),
    pytest.param(dict(learning_rate=-0.1), ValueError, "learning_rate must be a finite number > 0",
                 id="lr<0"),
    pytest.param(dict(learning_rate=np.nan), ValueError, "learning_rate must be a finite number > 0, got nan",
                 id="lr-nan"),
    pytest.param(dict(learning_rate=np.float32("nan")), ValueError, "learning_rate must be a finite",
                 id="lr-nan-float32"),
    pytest.param(dict(learning_rate=np.inf), ValueError, "learning_rate must be a finite number > 0",
                 id="lr-inf"),
    pytest.param(dict(learning_rate="0.1"), TypeError, "learning_rate must be a real number, got str",
                 id="lr-str"),
    pytest.param(dict(learning_rate=True), TypeError, "learning_rate must be a real number, got bool",
                 id="lr-bool"),
    pytest.param(dict(learning_rate=0.1j), TypeError, "learning_rate must be a real number, got complex",
                 id="lr-complex"),
    pytest.param(dict(learning_rate=np.array([0.1])), TypeError, "learning_rate must be a real number",
                 id="lr-array"),
    pytest.param(dict(optimizer="rmsprop"), ValueError, r"optimizer must be one of \['adam', .*got 'rmsprop'",
                 id="optimizer-unknown"),
    pytest.param(dict(optimizer="SGD"), ValueError, "optimizer must be one of", id="optimizer-case"),
    pytest.param(dict(shuffle="no"), TypeError, "shuffle must be True or False", id="shuffle-str"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD_FIT_PARAMS)
def test_bad_fit_parameters(kwargs, exc, match):
    fit_kwargs = dict(epochs=1, batch_size=2, learning_rate=0.01) | kwargs
    with pytest.raises(exc, match=match):
        make_net().fit(make_X(), make_y("sigmoid"), **fit_kwargs)


@pytest.mark.parametrize("kwargs, exc, match", [
    # (the article's train runs 0 epochs, and at rate 0: its bounds are >= 0)
    pytest.param(p.values[0], p.values[1],
                 p.values[2].replace(">= 1", ">= 0").replace("> 0", ">= 0"), id=p.id)
    for p in BAD_FIT_PARAMS
    if set(p.values[0]) <= {"epochs", "learning_rate"} and p.id not in ("epochs=0", "lr=0")])
def test_bad_train_parameters_through_neural_network(kwargs, exc, match):
    args = dict(learning_rate=0.1, epochs=1) | kwargs
    with pytest.raises(exc, match=match):
        _nn().train(make_X(), make_y("sigmoid"), args["learning_rate"], args["epochs"])
    if "learning_rate" in kwargs:
        with pytest.raises(exc, match=match):
            _nn().backward(make_X(), make_y("sigmoid"), kwargs["learning_rate"])


def test_set_params_vector_rejects_bad_vectors():
    net = make_net()
    before = params(net)
    n = net.get_params_vector().size
    with pytest.raises(ValueError, match=rf"vector must have shape \({n},\), got \({n - 1},\)"):
        net.set_params_vector(np.zeros(n - 1))
    with pytest.raises(ValueError, match="vector contains NaN"):
        net.set_params_vector(np.full(n, np.nan))
    with pytest.raises(TypeError, match="vector must be numeric"):
        net.set_params_vector(np.full(n, "a"))
    assert params(net) == before


# -- a fit that raises changes nothing ----------------------------------------------------------

FAILING_FITS = [
    pytest.param("sigmoid", dict(X=with_value(make_X(), 3, 0, np.nan)), id="nan-X"),
    pytest.param("sigmoid", dict(X=make_X(n_in=4)), id="wrong-features"),
    pytest.param("sigmoid", dict(X=scipy.sparse.csr_matrix(make_X())), id="sparse-X"),
    pytest.param("sigmoid", dict(X=make_X().astype(str)), id="string-X"),
    pytest.param("sigmoid", dict(y=_y_with("sigmoid", 0, 2.0)), id="sigmoid-target-2"),
    pytest.param("sigmoid", dict(y=make_y("sigmoid", n=5)), id="short-y"),
    pytest.param("identity", dict(y=_y_with("identity", 5, np.inf)), id="inf-y"),
    pytest.param("identity", dict(y=_y_with("identity", 5, 1e39)), id="y-overflows-float32"),
    pytest.param("softmax", dict(y=_y_with("softmax", 0, 7)), id="class-out-of-range"),
    pytest.param("softmax", dict(y=_y_with("softmax", 0, 0.5)), id="fractional-class"),
    pytest.param("sigmoid", dict(epochs=0), id="epochs=0"),
    pytest.param("sigmoid", dict(batch_size=1.0), id="float-batch"),
    pytest.param("sigmoid", dict(learning_rate=np.nan), id="nan-lr"),
    pytest.param("sigmoid", dict(optimizer="rmsprop"), id="unknown-optimizer"),
]


@pytest.mark.parametrize("output, bad", FAILING_FITS)
def test_failed_fit_leaves_weights_intact(output, bad):
    X, y = make_X(), make_y(output)
    net = make_net(output).fit(X, y, epochs=2, batch_size=4, learning_rate=0.1)
    before = params(net)
    coefs = [W.copy() for W in net.coefs_]
    intercepts = [b.copy() for b in net.intercepts_]
    prediction = net.forward(X)

    kwargs = dict(X=X, y=y, epochs=3, batch_size=2, learning_rate=0.1) | bad
    with pytest.raises((ValueError, TypeError)):
        net.fit(kwargs.pop("X"), kwargs.pop("y"), **kwargs)

    assert params(net) == before
    for W, W0, b, b0 in zip(net.coefs_, coefs, net.intercepts_, intercepts):
        assert W.tobytes() == W0.tobytes() and b.tobytes() == b0.tobytes()
    np.testing.assert_array_equal(net.forward(X), prediction)
    # ... and the views are still the parameters: the network trains on afterwards.
    net.fit(X, y, epochs=1, learning_rate=0.1)
    assert params(net) != before
    assert np.isfinite(net.forward(X)).all()


@pytest.mark.parametrize("bad", [
    dict(X=with_value(make_X(), 0, 0, np.nan)), dict(y=_y_with("sigmoid", 0, -1.0)),
    dict(X=make_X(n_in=2)), dict(learning_rate=-1.0), dict(epochs=1.5)])
def test_failed_neural_network_train_leaves_weights_intact(bad):
    nn = _nn()
    X, y = make_X(), make_y("sigmoid")
    nn.train(X, y, 0.5, 3)
    before = [a.copy() for a in (nn.W1, nn.b1, nn.W2, nn.b2)]
    prediction = nn.forward(X).copy()
    args = dict(X=X, y=y, learning_rate=0.5, epochs=3) | bad
    with pytest.raises((ValueError, TypeError)):
        nn.train(args["X"], args["y"], args["learning_rate"], args["epochs"])
    for a, a0 in zip((nn.W1, nn.b1, nn.W2, nn.b2), before):
        assert a.tobytes() == a0.tobytes()
    np.testing.assert_array_equal(nn.forward(X), prediction)
    np.testing.assert_array_equal(nn.predict(X), (prediction > 0.5).astype(int))


# -- valid edge cases are accepted --------------------------------------------------------------

def fitted_pair(X_a, X_b, output="sigmoid", dtype=np.float32, **fit):
    """Two identical networks fitted on X_a and X_b; returns both."""
    fit = dict(epochs=2, batch_size=4, learning_rate=0.1) | fit
    y = make_y(output, n=len(X_a))
    return (make_net(output, dtype=dtype).fit(X_a, y, **fit),
            make_net(output, dtype=dtype).fit(X_b, y, **fit))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("X_in", [
    pytest.param(np.random.RandomState(3).randint(-3, 4, size=(8, N_IN)), id="int64"),
    pytest.param(np.random.RandomState(3).randint(-3, 4, size=(8, N_IN)).astype(np.int8), id="int8"),
    pytest.param(np.random.RandomState(3).randint(0, 9, size=(8, N_IN)).astype(np.uint16), id="uint16"),
    pytest.param(np.random.RandomState(3).rand(8, N_IN) > 0.5, id="bool"),
    pytest.param(np.random.RandomState(3).randint(0, 2, size=(8, N_IN)).tolist(), id="list-of-ints"),
    pytest.param(make_X(8).astype(np.float16), id="float16"),
])
def test_int_bool_and_other_real_X_are_converted(X_in, dtype):
    X_float = np.asarray(X_in).astype(np.float64)
    a, b = fitted_pair(X_in, X_float, dtype=dtype)
    assert params(a) == params(b)
    np.testing.assert_array_equal(a.forward(X_in), b.forward(X_float))
    assert a.forward(X_in).dtype == dtype
    np.testing.assert_array_equal(a.predict(X_in), b.predict(X_float))


def _layouts():
    big = make_X(16, 2 * N_IN + 1, seed=4)
    return {
        "fortran": np.asfortranarray(make_X(8, seed=4)),
        "row-slice": big[::2, :N_IN],
        "column-slice": big[:8, ::2][:, :N_IN],
        "negative-strides": big[::-2, ::-2][:, :N_IN],
        "float32-fortran": np.asfortranarray(make_X(8, seed=4, dtype=np.float32)),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(_layouts()))
def test_non_contiguous_X_gives_the_same_results_as_a_c_contiguous_copy(layout, dtype):
    X = _layouts()[layout]
    assert not X.flags.c_contiguous
    X_c = np.ascontiguousarray(X)
    a, b = fitted_pair(X, X_c, dtype=dtype)
    assert params(a) == params(b)
    np.testing.assert_array_equal(a.forward(X), a.forward(X_c))
    np.testing.assert_array_equal(a.predict(X), b.predict(X_c))
    la, ga, _ = a.loss_and_gradients(X, make_y("sigmoid", n=len(X)))
    lb, gb, _ = a.loss_and_gradients(X_c, make_y("sigmoid", n=len(X)))
    assert la == lb
    for g, h in zip(ga, gb):
        np.testing.assert_array_equal(g, h)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_inputs_work_and_are_not_modified(dtype):
    X, y = make_X(8, dtype=dtype), make_y("sigmoid", n=8)
    X_copy, y_copy = X.copy(), y.copy()
    X.setflags(write=False)
    y.setflags(write=False)
    a, b = fitted_pair(X, X_copy, dtype=dtype)
    assert params(a) == params(b)
    np.testing.assert_array_equal(a.predict(X), b.predict(X_copy))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X_copy))
    a.loss_and_gradients(X, y)
    nn = _nn()
    nn.train(X, y, 0.1, 2)
    assert nn.predict(X).shape == (8, 2)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)


@pytest.mark.parametrize("y_as", [
    pytest.param(lambda y: y.astype(np.float64), id="float-1.0"),
    pytest.param(lambda y: y.astype(np.float32), id="float32"),
    pytest.param(lambda y: y.astype(np.uint8), id="uint8"),
    pytest.param(lambda y: y.tolist(), id="list"),
    pytest.param(lambda y: np.eye(3)[y], id="one-hot"),
])
def test_softmax_accepts_whole_number_class_indices_in_any_real_dtype(y_as):
    X, y = make_X(), make_y("softmax", n_out=3)
    net = make_net("softmax", n_out=3, dtype=np.float64)
    loss, coef_grads, _ = net.loss_and_gradients(X, y)
    loss2, coef_grads2, _ = net.loss_and_gradients(X, y_as(y))
    assert loss == loss2
    for g, h in zip(coef_grads, coef_grads2):
        np.testing.assert_array_equal(g, h)
    a = make_net("softmax", n_out=3).fit(X, y, epochs=2, learning_rate=0.1)
    b = make_net("softmax", n_out=3).fit(X, y_as(y), epochs=2, learning_rate=0.1)
    assert params(a) == params(b)


def test_boundary_targets_are_accepted():
    X = make_X()
    # sigmoid: exactly 0 and 1, and soft targets in between
    make_net("sigmoid").fit(X, np.tile([[0.0, 1.0]], (6, 1)), epochs=1)
    make_net("sigmoid").fit(X, np.full((6, 2), 0.25), epochs=1)
    # one output: y of shape (n,) or (n, 1), bool targets
    y = np.arange(6) % 2 == 0
    a = make_net("sigmoid", n_out=1).fit(X, y, epochs=1)
    b = make_net("sigmoid", n_out=1).fit(X, y.astype(float).reshape(-1, 1), epochs=1)
    assert params(a) == params(b)
    # softmax: the first and the last class only, and probability rows summing to 1
    make_net("softmax", n_out=3).fit(X, np.array([0, 2, 0, 2, 0, 2]), epochs=1)
    probs = np.tile([0.2, 0.3, 0.5], (6, 1))
    loss, _, _ = make_net("softmax", n_out=3).loss_and_gradients(X, probs)
    assert np.isfinite(loss)
    # identity: big values that fit the dtype, float64 past float32's range
    make_net("identity").loss_and_gradients(X, np.full((6, 2), 3e38))
    big = with_value(X, 0, 0, 1e39)
    assert np.isfinite(make_net("identity", dtype=np.float64).forward(big)).all()


def test_numpy_scalars_and_fractions_are_valid_parameters():
    X, y = make_X(), make_y("sigmoid")
    a = make_net().fit(X, y, epochs=2, batch_size=3, learning_rate=0.01)
    b = make_net().fit(X, y, epochs=np.int64(2), batch_size=np.uint8(3),
                       learning_rate=Fraction(1, 100))
    assert params(a) == params(b)
    c = make_net().fit(X, y, epochs=2, batch_size=3, learning_rate=np.float64(0.01))
    assert params(a) == params(c)
    # a batch larger than the data is capped, not an error
    make_net().fit(X, y, epochs=1, batch_size=1000)
    nn = _nn()
    nn.train(X, y, np.float32(0.1), np.int32(2))
    nn.backward(X, y, Fraction(1, 10))


def test_smallest_valid_shapes():
    net = fastbp.Network([1, 1], random_state=0).fit([[2.0]], [3.0], epochs=1, batch_size=1)
    assert net.predict([[2.0]]).shape == (1,)
    net = fastbp.Network(np.array([N_IN, 2, 1]), activation="sigmoid", dtype="float64",
                         random_state=0)
    assert net.layers == (N_IN, 2, 1) and net.dtype == np.float64
    assert net.predict(make_X(1)).shape == (1,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("size, at", [(1, 0), (7, 6), (64, 0), (1000, 999), (1003, 517)])
def test_all_finite_finds_any_non_finite_value(dtype, bad, size, at):
    from fastbp._kernels.finite import all_finite

    rng = np.random.default_rng(size + at)
    # large finite values: their sum would overflow, the check must not call them infinite
    a = (rng.uniform(0.5, 1.0, size) * (np.finfo(dtype).max / 2)).astype(dtype)
    assert all_finite(a)
    a[at] = bad
    assert not all_finite(a)
    assert all_finite(a[:0])


def test_the_finiteness_check_reads_fortran_ordered_and_strided_arrays():
    X = np.asfortranarray(make_X())
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        check_X(X, np.float64)
    strided = make_X(n=20)[::2]
    strided[4, 0] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        check_targets(strided[:, 0], strided.shape[0], 1, "identity", np.float64)


@pytest.mark.parametrize("threads", [1, 2])
def test_large_inputs_are_checked_in_two_halves_and_every_value_is_seen(threads):
    # Past _config.FINITE_SPLIT_VALUES values, with two threads, the second half is checked
    # in another thread (_validation._all_finite): a bad value in either half, or at the cut
    # or either end, is found; with one thread, the one pass finds the same.
    from fastbp import _config, network

    n = _config.FINITE_SPLIT_VALUES + 2
    X = np.ones((n // 2, 2), dtype=np.float32)
    with network._threads(threads):
        assert check_X(X, np.float32) is not None
        for at in (0, n // 2 - 1, n // 2, n // 2 + 1, n - 1, n // 4, 3 * n // 4):
            X.reshape(-1)[at] = np.nan
            with pytest.raises(ValueError, match="X contains NaN or infinity"):
                check_X(X, np.float32)
            X.reshape(-1)[at] = 1.0


def test_a_fit_checks_its_inputs_in_as_many_threads_as_it_trains_with(monkeypatch):
    import numba

    from fastbp import _config, _validation

    monkeypatch.setattr(_config, "FINITE_SPLIT_VALUES", 64)  # (this X is past it)
    helpers = []
    real = _validation.threading.Thread
    monkeypatch.setattr(_validation.threading, "Thread",
                        lambda *args, **kwargs: helpers.append(kwargs.get("name")) or
                        real(*args, **kwargs))
    X = make_X(n=100)
    y = X[:, 0] > 0
    net = fastbp.Network([N_IN, 4, 1], output="sigmoid", random_state=0)
    net.fit(X, y, epochs=1, n_threads=1)
    assert helpers == []
    if numba.config.NUMBA_NUM_THREADS >= 2:
        net.fit(X, y, epochs=1, n_threads=2)
        assert "fastbp-finite" in helpers
