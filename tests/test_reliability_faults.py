"""Reliability under numerical extremes, faults, load and hostile files.

- Numerics: inputs scaled by 1e-6 and 1e6, logits beyond +-1000, learning rates from 1e-8 to
  1e3: no overflow warning escapes, and training either keeps every loss finite or raises
  ``DivergenceError`` with the weights of the last finite epoch back in place.
- Faults: Ctrl-C (``KeyboardInterrupt``) or an exception from a callback at a random epoch, a
  full disk or an unwritable path during ``save``, truncated, bit-flipped and rewritten files.
- Load: concurrent fits equal serial ones bit for bit; threads sharing one network predict
  as one thread does; a thousand fit/predict cycles keep resident memory flat.
- Security: ``load`` unpickles nothing and opens, writes or deletes no path but its own file,
  whatever the file says.

Hypothesis draws the cases with a fixed seed; ``conftest.record_case`` counts them per
category for the terminal summary, and the measured bounds are printed there too.
"""
import errno
import gc
import io
import json
import os
import signal
import sys
import tempfile
import threading
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import fastbp
from conftest import RELIABILITY_BOUNDS, make_data, record_case

SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))
STOCHASTIC = ["sgd", "momentum", "nesterov", "adam", "adamw"]


def params(net):
    return net.get_params_vector()


def replayed(make, X, y, epochs, **fit):
    """The weights a fresh network reaches in ``epochs`` epochs of the same fit."""
    net = make()
    if epochs:
        net.fit(X, y, epochs=epochs, **fit)
    return params(net)


# -- numerics ----------------------------------------------------------------------------------

@settings(max_examples=90, **SETTINGS)
@given(output=st.sampled_from(["identity", "sigmoid", "softmax", "poisson"]),
       dtype=st.sampled_from([np.float32, np.float64]),
       optimizer=st.sampled_from(STOCHASTIC + ["lbfgs"]),
       log_lr=st.integers(-8, 3), scale=st.sampled_from([1e-6, 1.0, 1e6]),
       per_epoch=st.booleans(), clip_norm=st.sampled_from([None, None, 1.0]),
       activation=st.sampled_from(["tanh", "relu", "logistic", "gelu"]),
       seed=st.integers(0, 100))
def test_extreme_scales_and_rates_train_finitely_or_raise_divergence(
        output, dtype, optimizer, log_lr, scale, per_epoch, clip_norm, activation, seed):
    n_out = 3 if output == "softmax" else 2
    X, y = make_data(48, 4, n_out, output, seed=seed)
    X = X * scale
    make = lambda: fastbp.Network([4, 8, n_out], activation=activation,  # noqa: E731
                                  output=output, dtype=dtype, random_state=seed)
    net = make()
    initial = params(net)
    snapshots = [initial]
    fit = dict(batch_size=8, learning_rate=10.0 ** log_lr, optimizer=optimizer,
               clip_norm=None if optimizer == "lbfgs" else clip_norm)  # (L-BFGS rejects it)
    callbacks = [lambda epoch, metrics: snapshots.append(params(net))] if per_epoch else None
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warning escapes
        try:
            net.fit(X, y, epochs=6, callbacks=callbacks, **fit)
        except fastbp.DivergenceError as exc:
            weights = params(net)
            assert np.isfinite(weights).all()
            assert net.n_iter_ == len(net.loss_curve_) and np.isfinite(net.loss_curve_).all()
            if optimizer == "lbfgs":
                assert "inputs" in str(exc)
                np.testing.assert_array_equal(weights, initial)
            else:
                assert "learning rate" in str(exc)
                # the weights of the last finite epoch, exactly
                np.testing.assert_array_equal(weights, snapshots[-1] if per_epoch else
                                              replayed(make, X, y, net.n_iter_, **fit))
            outcome = "diverged"
        else:
            assert np.isfinite(net.loss_curve_).all() and np.isfinite(params(net)).all()
            outcome = "finite"
        try:
            out = net.forward(X)
        except ValueError as exc:  # outputs that overflow, reported (the network.py fix)
            assert str(exc).startswith("X")
            record_case("numerics: scales x rates", outcome + ", output overflow reported")
            return
    assert np.isfinite(out).all()
    record_case("numerics: scales x rates", outcome)


@settings(max_examples=40, **SETTINGS)
@given(output=st.sampled_from(["identity", "sigmoid", "softmax"]),
       dtype=st.sampled_from([np.float32, np.float64]), exponent=st.integers(3, 30),
       signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3),
       seed=st.integers(0, 100))
def test_logits_beyond_a_thousand_keep_loss_and_gradients_finite(output, dtype, exponent, signs,
                                                                  seed):
    """Sigmoid and softmax never overflow (log-sum-exp, a branch on the sign); a squared error
    beyond the dtype's range is a divergence, never a silent infinity in the weights."""
    X, y = make_data(20, 3, 3, output, seed=seed)
    net = fastbp.Network([3, 4, 3], output=output, dtype=dtype, random_state=seed)
    net.intercepts_[-1][...] = np.array(signs) * 10.0 ** exponent
    loss, coef_grads, intercept_grads = net.loss_and_gradients(X, y)
    out = net.forward(X)
    outcome = "finite"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        if output != "identity":
            assert np.isfinite(loss) and loss >= 0
            for g in coef_grads + intercept_grads:
                assert np.isfinite(g).all()
            assert np.isfinite(out).all() and ((out >= 0) & (out <= 1)).all()
            if output == "softmax":
                np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
        else:
            assert np.isfinite(out).all()  # the logits themselves fit the dtype
            assert not np.isnan(loss)
        before = params(net)
        try:
            net.fit(X, y, epochs=2, batch_size=5, learning_rate=1e-3)
        except fastbp.DivergenceError:
            # a squared error of 1e8 and more is a steep slope: SGD may well diverge on it;
            # the bounded log losses may not
            assert output == "identity"
            weights = params(net)
            assert np.isfinite(weights).all()
            if net.n_iter_ == 0:
                np.testing.assert_array_equal(weights, before)
            outcome = "diverged"
        else:
            assert np.isfinite(net.loss_curve_).all() and np.isfinite(params(net)).all()
    record_case("numerics: logits > 1e3", outcome)


def test_gradients_that_overflow_raise_as_forward_does():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 3)) * 200, rng.poisson(1, 10)
    net = fastbp.Network([3, 5, 1], output="poisson", dtype=np.float32, random_state=0)
    for call in (lambda: net.forward(X), lambda: net.loss_and_gradients(X, y)):
        with pytest.raises(ValueError, match="^X: .*overflow.* float32"):
            call()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("logit", [1e3, 1e4, 1e30])
def test_poisson_logits_that_overflow_exp_raise_divergence_and_keep_the_weights(dtype, logit):
    X, y = make_data(20, 3, 2, "poisson", seed=1)
    net = fastbp.Network([3, 2], output="poisson", dtype=dtype, random_state=0)
    net.intercepts_[0][...] = logit
    before = params(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(fastbp.DivergenceError, match="learning rate"):
            net.fit(X, y, epochs=3, learning_rate=0.01)
    np.testing.assert_array_equal(params(net), before)
    assert net.loss_curve_ == [] and net.n_iter_ == 0
    record_case("numerics: logits > 1e3", "diverged")


@pytest.mark.parametrize("kind, scale, learning_rate", [
    ("classifier", 1e-6, 1e-8), ("classifier", 1e-6, 1e3), ("classifier", 1e6, 1e-8),
    ("classifier", 1e6, 1e3), ("regressor", 1e-6, 1e-8), ("regressor", 1e-6, 1e3),
    ("regressor", 1e6, 1e-8), ("regressor", 1e6, 1e3)])
def test_estimators_at_extreme_scales_and_rates_stay_usable(kind, scale, learning_rate):
    X, y = make_data(40, 3, 3, "softmax", seed=1)
    make = fastbp.MLPClassifier if kind == "classifier" else fastbp.MLPRegressor
    for est in [make(hidden_layer_sizes=(5,), solver="sgd", max_iter=5,
                     learning_rate_init=learning_rate, random_state=0)]:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                est.fit(X * scale, y)
                outcome = "finite"
            except fastbp.DivergenceError:
                outcome = "diverged"
            # Either way a model that predicts, with a history that matches its weights.
            assert est.n_iter_ == len(est.loss_curve_) and np.isfinite(est.loss_curve_).all()
            assert np.isfinite(np.asarray(est.predict(X * scale), dtype=float)).all()
        record_case("numerics: estimators", outcome)


@pytest.mark.parametrize("peak", [1.5e308, 1.7e308])
def test_estimator_predictions_that_overflow_are_reported_not_returned(peak):
    X, y = make_data(40, 3, 1, "identity", seed=2)
    est = fastbp.MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y.ravel())
    assert np.isfinite(est.predict(X)).all()
    huge = X / np.abs(X).max() * peak  # finite inputs whose sums pass float64's range
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warning escapes either
        with pytest.raises(ValueError, match=r"^X: the network's outputs overflow float64"):
            est.predict(huge)
        with pytest.raises(fastbp.DivergenceError):  # and training on them diverges, said so
            est.fit(huge, y.ravel())
    assert np.isfinite(params(est._net)).all()
    record_case("numerics: estimators", "overflow reported")


# -- faults: callbacks, Ctrl-C -----------------------------------------------------------------

FAULTS = {"KeyboardInterrupt": KeyboardInterrupt, "RuntimeError": RuntimeError,
          "ValueError": ValueError, "MemoryError": MemoryError}


@settings(max_examples=40, **SETTINGS)
@given(optimizer=st.sampled_from(STOCHASTIC), at=st.integers(1, 7),
       fault=st.sampled_from(list(FAULTS)), validation=st.booleans(),
       batch_size=st.integers(1, 40), seed=st.integers(0, 1000))
def test_a_fault_in_a_callback_leaves_a_model_that_predicts_and_saves(
        optimizer, at, fault, validation, batch_size, seed):
    X, y = make_data(40, 4, 3, "softmax", seed=seed)
    net = fastbp.Network([4, 6, 3], activation="tanh", output="softmax", random_state=seed)
    snapshots = {0: params(net)}
    raised = FAULTS[fault](f"raised at epoch {at}")

    def callback(epoch, metrics):
        snapshots[epoch] = params(net)
        if epoch == at:
            raise raised

    fit = dict(epochs=10, batch_size=batch_size, learning_rate=0.05, optimizer=optimizer,
               callbacks=[callback], validation_data=make_data(10, 4, 3, "softmax", seed=1)
               if validation else None)
    if fault == "KeyboardInterrupt":
        # Ctrl-C: the epoch that ran completes, training stops with a warning.
        with pytest.warns(RuntimeWarning, match=f"interrupted after {at} epochs"):
            net.fit(X, y, **fit)
        np.testing.assert_array_equal(params(net), snapshots[at])
        assert net.n_iter_ == len(net.loss_curve_) == at
    else:
        # Any other exception propagates, with the weights of the epoch before.
        with pytest.raises(FAULTS[fault]) as info:
            net.fit(X, y, **fit)
        assert info.value is raised
        np.testing.assert_array_equal(params(net), snapshots[at - 1])
    assert np.isfinite(net.predict_proba(X)).all()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.npz")
        net.save(path)
        loaded = fastbp.load(path)
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    net.fit(X, y, epochs=1, warm_start=True, optimizer=optimizer)  # and it trains on
    assert np.isfinite(params(net)).all()
    record_case("faults: callbacks", fault)


@settings(max_examples=20, **SETTINGS)
@given(classifier=st.booleans(), solver=st.sampled_from(["sgd", "adam"]), at=st.integers(1, 5),
       fault=st.sampled_from(["KeyboardInterrupt", "RuntimeError"]), seed=st.integers(0, 100))
def test_a_fault_during_an_estimators_fit_leaves_it_usable(classifier, solver, at, fault, seed):
    """The estimators' only callback is the progress printer of ``verbose``: make it fail."""
    X, y = make_data(40, 4, 3, "softmax", seed=seed)
    make = fastbp.MLPClassifier if classifier else fastbp.MLPRegressor
    est = make(hidden_layer_sizes=(6,), solver=solver, max_iter=8, verbose=True,
               random_state=seed)
    snapshots = {}

    def progress(epoch, metrics):
        snapshots[epoch] = params(est._net)
        if epoch == at:
            raise FAULTS[fault]()

    est._print_progress = progress
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if fault == "KeyboardInterrupt":
            with pytest.warns(RuntimeWarning, match="interrupted"):
                est.fit(X, y)
            np.testing.assert_array_equal(params(est._net), snapshots[at])
        else:
            with pytest.raises(RuntimeError):
                est.fit(X, y)
            if at > 1:
                np.testing.assert_array_equal(params(est._net), snapshots[at - 1])
    assert est.n_iter_ == len(est.loss_curve_) >= at - 1
    assert np.isfinite(np.asarray(est.predict(X), dtype=float)).all()
    record_case("faults: estimator fit", fault)


@pytest.mark.parametrize("bad", [dict(solver="lbfgs", dropout=0.5),
                                 dict(solver="lbfgs", batch_norm=True),
                                 dict(batch_norm=True, batch_size=1),
                                 dict(n_threads=0)])
def test_a_bad_mix_of_parameters_leaves_an_estimator_as_it_was(bad):
    X, y = make_data(60, 3, 2, "softmax", seed=0)
    fresh = fastbp.MLPClassifier(hidden_layer_sizes=(5,), random_state=0, **bad)
    with pytest.raises(ValueError, match="dropout|batch_norm|n_threads"):
        fresh.fit(X, y)
    assert not hasattr(fresh, "coefs_")  # still unfitted
    fitted = fastbp.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted.fit(X, y)
    coefs, curve, proba = fitted.coefs_[0].copy(), list(fitted.loss_curve_), fitted.predict_proba(X)
    with pytest.raises(ValueError, match="dropout|batch_norm|n_threads"):
        fitted.set_params(**bad).fit(X, y)
    np.testing.assert_array_equal(fitted.coefs_[0], coefs)
    assert fitted.loss_curve_ == curve and fitted.n_iter_ == 5
    np.testing.assert_array_equal(fitted.predict_proba(X), proba)


def test_lbfgs_on_a_dropout_network_raises_before_touching_its_history():
    X, y = make_data(60, 3, 2, "softmax", seed=1)
    net = fastbp.Network([3, 5, 2], output="softmax", dropout=0.2, random_state=0)
    net.fit(X, y, epochs=4, optimizer="adam")
    curve, optimizer = list(net.loss_curve_), net._optimizer
    with pytest.raises(ValueError, match="dropout needs a stochastic optimizer"):
        net.fit(X, y, epochs=4, optimizer="lbfgs")
    assert net.loss_curve_ == curve and net.n_iter_ == 4 and net._optimizer is optimizer
    net.fit(X, y, epochs=1, optimizer="adam", warm_start=True)  # Adam's state continues
    assert len(net.loss_curve_) == 5


def snapshotting(net, at, act):
    """``(snapshots, callback)``: a callback that records the weights at every epoch in
    ``snapshots`` and, at epoch ``at``, returns ``act()`` (False before and after)."""
    snapshots = {}

    def callback(epoch, metrics):
        snapshots[epoch] = params(net)
        return act() if epoch == at else False

    return snapshots, callback


@pytest.mark.parametrize("stop", [False, True])
def test_a_callback_that_writes_nan_weights_raises_and_the_last_good_epoch_stays(stop):
    X, y = make_data(60, 3, 2, "softmax", seed=2)
    net = fastbp.Network([3, 5, 2], output="softmax", random_state=0)

    def nan_weight():
        net.coefs_[0][0, 0] = np.nan  # (in place: the views take any value)
        return stop

    snapshots, callback = snapshotting(net, 3, nan_weight)
    with pytest.raises(ValueError, match="a callback left non-finite weights after epoch 3"):
        net.fit(X, y, epochs=6, callbacks=[callback])
    np.testing.assert_array_equal(params(net), snapshots[2])
    assert net.n_iter_ == 2 and len(net.loss_curve_) == 2
    assert np.isfinite(net.predict_proba(X)).all()


@pytest.mark.parametrize("fault, kept", [(KeyboardInterrupt, 3), (RuntimeError, 2)])
def test_lbfgs_fault_in_a_callback_keeps_the_right_iteration(fault, kept):
    """Ctrl-C from a callback keeps the iteration that completed; any other exception the
    iteration before it."""
    X, y = make_data(40, 4, 3, "softmax", seed=0)
    net = fastbp.Network([4, 6, 3], output="softmax", random_state=0)

    def boom():
        raise fault("boom")

    snapshots, callback = snapshotting(net, 3, boom)

    if fault is KeyboardInterrupt:
        expect = pytest.warns(RuntimeWarning, match="interrupted")
    else:
        expect = pytest.raises(fault)
    with expect:
        net.fit(X, y, epochs=10, optimizer="lbfgs", callbacks=[callback])
    np.testing.assert_array_equal(params(net), snapshots[kept])
    # the history says which iterations the weights have seen
    assert net.n_iter_ == kept and len(net.loss_curve_) == kept and net.t_ == kept * 40
    assert net.gradient_norms_.shape[0] == kept and net.best_loss_ == min(net.loss_curve_)


def test_history_matches_the_weights_after_an_exception_in_a_callback():
    X, y = make_data(40, 4, 3, "softmax", seed=0)
    net = fastbp.Network([4, 6, 3], output="softmax", random_state=0)

    def fail(epoch, metrics):
        if epoch == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        net.fit(X, y, epochs=10, callbacks=[fail])
    assert net.n_iter_ == len(net.loss_curve_) == len(net.gradient_norms_) == 2


@pytest.mark.parametrize("make, X", [
    pytest.param(lambda: fastbp.Network([3, 5, 1], output="poisson", random_state=0),
                 np.random.RandomState(0).uniform(-1, 1, (6, 3)) * 1e6, id="poisson-exp-inf"),
    pytest.param(lambda: fastbp.Network([3, 3, 3, 3], output="softmax", residual=True,
                                        dtype=np.float64, random_state=0),
                 np.random.RandomState(0).uniform(-1, 1, (6, 3)) * 4e307, id="softmax-nan"),
])
def test_forward_that_overflows_raises(make, X):
    with pytest.raises(ValueError, match="X"):
        make().forward(X)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_network_unpickled_read_only_predicts_and_trains_on(batch_norm, tmp_path):
    """scikit-learn's checks and joblib's parallel workers hand models back as read-only
    memory maps (``joblib.load(..., mmap_mode='r')``)."""
    import joblib

    X, y = make_data(50, 4, 3, "softmax", seed=0)
    net = fastbp.Network([4, 6, 3], output="softmax", batch_norm=batch_norm, random_state=0)
    net.fit(X, y, epochs=2)
    joblib.dump(net, tmp_path / "net.joblib")
    mapped = joblib.load(tmp_path / "net.joblib", mmap_mode="r")
    np.testing.assert_array_equal(mapped.predict(X), net.predict(X))
    for n in (mapped, net):
        n.fit(X, y, epochs=1, warm_start=True)
    np.testing.assert_array_equal(params(mapped), params(net))


# -- faults: saving ----------------------------------------------------------------------------

def _trained(epochs=3, seed=0, width=6):
    X, y = make_data(30, 4, 3, "softmax", seed=seed)
    net = fastbp.Network([4, width, 3], output="softmax", random_state=seed)
    net.fit(X, y, epochs=epochs, optimizer="adam", learning_rate=0.01)
    return net, X


@settings(max_examples=25, **SETTINGS)
@given(fraction=st.floats(0.0, 0.99))
def test_a_full_disk_during_save_raises_and_leaves_the_old_file(fraction):
    """The file size limit (RLIMIT_FSIZE) makes the disk 'full' part way into the new file."""
    old, X = _trained(seed=1)
    new, _ = _trained(epochs=5, width=40)  # a bigger file than the old one
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.npz")
        old.save(path)
        with open(path, "rb") as f:
            raw = f.read()
        probe = os.path.join(folder, "probe.npz")
        new.save(probe)
        size = os.path.getsize(probe)
        os.remove(probe)
        limit = int(size * fraction)
        with _file_size_limit(limit):
            with pytest.raises(OSError) as info:
                new.save(path)
        assert info.value.errno in (errno.EFBIG, errno.ENOSPC)
        with open(path, "rb") as f:
            assert f.read() == raw
        assert os.listdir(folder) == ["m.npz"]  # no temporary file left behind
        np.testing.assert_array_equal(fastbp.load(path).forward(X), old.forward(X))
    record_case("faults: save", "disk full")


class _file_size_limit:
    """Writes past ``limit`` bytes fail with EFBIG (POSIX), or, where there is no such limit,
    the final fsync fails with ENOSPC."""

    def __init__(self, limit):
        self.limit = limit

    def __enter__(self):
        try:
            import resource
        except ImportError:  # Windows
            self.patched = os.fsync

            def full(fd):
                raise OSError(errno.ENOSPC, "No space left on device")

            os.fsync = full
            return
        self.resource = resource
        self.before = resource.getrlimit(resource.RLIMIT_FSIZE)
        self.handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.before[1]))

    def __exit__(self, *exc):
        if hasattr(self, "patched"):
            os.fsync = self.patched
            return False
        self.resource.setrlimit(self.resource.RLIMIT_FSIZE, self.before)
        signal.signal(signal.SIGXFSZ, self.handler)
        return False


@pytest.mark.parametrize("where", ["parent-is-a-file", "missing-folder", "path-is-a-folder",
                                   "null-byte"])
def test_save_to_an_unwritable_path_raises_and_changes_nothing(where, tmp_path):
    net, _ = _trained()
    (tmp_path / "file").write_bytes(b"not a folder")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside").write_bytes(b"kept")
    path = {"parent-is-a-file": tmp_path / "file" / "m.npz",
            "missing-folder": tmp_path / "missing" / "m.npz",
            "path-is-a-folder": tmp_path / "folder",
            "null-byte": str(tmp_path / "m\0.npz")}[where]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises((OSError, ValueError)):
        net.save(path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "file").read_bytes() == b"not a folder"
    assert (tmp_path / "folder" / "inside").read_bytes() == b"kept"
    record_case("faults: save", where)


# -- damaged and hostile files -----------------------------------------------------------------

@pytest.fixture(scope="module")
def model_file():
    """A trained network with validation history and optimizer state, and its file's bytes."""
    X, y = make_data(30, 3, 4, "softmax", seed=0)
    net = fastbp.Network([3, 5, 4], activation="tanh", output="softmax", random_state=0)
    net.fit(X, y, epochs=3, batch_size=8, optimizer="adam", learning_rate=0.05,
            validation_data=make_data(10, 3, 4, "softmax", seed=1))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.npz")
        net.save(path)
        with open(path, "rb") as f:
            raw = f.read()
    return net, X, raw


def same_network(a, b, X):
    return (np.array_equal(params(a), params(b)) and a.layers == b.layers
            and a.loss_curve_ == b.loss_curve_ and np.array_equal(a.forward(X), b.forward(X)))


@st.composite
def damage(draw, size):
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "delete", "append", "zero"]))
    at = draw(st.integers(0, size - 1))
    return kind, at, draw(st.integers(0, 7)), draw(st.binary(min_size=1, max_size=64))


def damaged(raw, kind, at, bit, junk):
    data = bytearray(raw)
    if kind == "truncate":
        return bytes(data[:at])
    if kind == "flip":
        data[at] ^= 1 << bit
    elif kind == "overwrite":
        data[at:at + len(junk)] = junk
    elif kind == "delete":
        del data[at:at + len(junk)]
    elif kind == "append":
        data += junk
    else:
        data[at:at + len(junk)] = bytes(len(junk))
    return bytes(data)


_EVENTS = None  # audit events recorded while a test sets this to a list
_HOOKED = []


def _audit(event, args):
    if _EVENTS is not None and (event == "open" or event.startswith(("os.", "shutil.", "pickle.",
                                                                      "subprocess.", "socket."))):
        _EVENTS.append((event, args))


class audited:
    """Records the audit events (files opened, pickle, os and shutil calls, subprocesses,
    sockets) of the code inside; audit hooks cannot be removed, so one records on demand."""

    def __enter__(self):
        global _EVENTS
        if not _HOOKED:
            sys.addaudithook(_audit)
            _HOOKED.append(True)
        _EVENTS = self.events = []
        return self

    def __exit__(self, *exc):
        global _EVENTS
        _EVENTS = None
        return False

    def foreign(self, path):
        """Events that touched anything but ``path`` read-only (imports of code excepted)."""
        own = os.path.realpath(path)
        bad = []
        for event, args in self.events:
            if event == "open":
                target, mode = args[0], args[1]
                if isinstance(target, int):  # an already-open descriptor
                    continue
                target = os.fsdecode(target)
                if target.endswith((".py", ".pyc", ".so")):
                    continue  # a lazily imported module (a zip codec)
                if os.path.realpath(target) != own or (mode not in (None, "r", "rb")):
                    bad.append((event, args))
            elif event not in ("os.listdir", "os.scandir"):
                bad.append((event, args))
        return bad


def load_checked(path, X, n_out):
    """``load(path)``: a ValueError naming the file, or a network that works; either way
    nothing but the file was touched."""
    with audited() as audit:
        try:
            net = fastbp.load(path)
        except ValueError as exc:
            assert path in str(exc)
            net = None
    assert audit.foreign(path) == []
    if net is not None:
        out = net.forward(X[:, :net.n_features_in_]) if net.n_features_in_ <= X.shape[1] else None
        if out is not None:
            assert out.shape == (len(X), net.n_outputs_)
            assert np.isfinite(out).all()
    return net


@settings(max_examples=120, **SETTINGS)
@given(data=st.data())
def test_damaged_files_are_rejected_or_load_unchanged(model_file, data):
    net, X, raw = model_file
    kind, at, bit, junk = data.draw(damage(len(raw)))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.npz")
        with open(path, "wb") as f:
            f.write(damaged(raw, kind, at, bit, junk))
        loaded = load_checked(path, X, 4)
        if loaded is not None:
            # zip keeps a CRC of every entry: a change that loads touched no byte that matters
            assert same_network(net, loaded, X)
        assert os.listdir(folder) == ["m.npz"]
    record_case("files: damaged bytes", f"{kind} {'rejected' if loaded is None else 'harmless'}")


EDGES = st.sampled_from([10 ** 400, -10 ** 400, 2 ** 63, 2 ** 64, -1, 0, 1, 3, 624, 625,
                         1e308, -0.0, float("nan"), float("inf"), -float("inf"), True, None,
                         "../../etc/passwd", "/tmp/fastbp-evil", "~/.bashrc", "float64",
                         "float16", "O", "f8,f8", "relu", "softmax", "SGD", "Adam", "LBFGS",
                         "__import__", [3, 5, 4], [3, 10 ** 9, 4], [], {}])
JSON = EDGES | st.recursive(
    EDGES | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)

SPEC_PATHS = [("format",), ("version",), ("layers",), ("activation",), ("output",), ("dtype",),
              ("init",), ("init_scale",), ("residual",), ("dropout",), ("dropout_state",),
              ("optimizer",), ("optimizer", "name"), ("optimizer", "params"),
              ("optimizer", "params", "beta_1"), ("optimizer", "params", "epsilon"),
              ("history",), ("history", "n_iter_"), ("history", "t_"), ("history", "best_loss_"),
              ("history", "best_validation_score_"), ("history", "_epoch"), ("history", "_lr"),
              ("history", "_no_improvement"), ("rng",), ("rng", "pos"), ("rng", "has_gauss"),
              ("rng", "cached_gaussian")]


def read_npz(raw):
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_npz(path, entries):
    """An archive of ``entries``: a dict, or a list of (name, bytes) pairs with repeats."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in (entries.items() if isinstance(entries, dict) else entries):
                archive.writestr(name, data)


def npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


@settings(max_examples=300, **SETTINGS)
@given(where=st.sampled_from(SPEC_PATHS), value=JSON | st.just("<delete>"),
       extra=st.sampled_from([None, "../../escape.npy", "/absolute.npy", "sub/dir.npy",
                              "spec.npy"]))
def test_any_spec_is_rejected_or_loads_a_working_network_and_touches_no_other_path(
        model_file, where, value, extra):
    net, X, raw = model_file
    entries = read_npz(raw)
    spec = json.loads(str(np.load(io.BytesIO(entries["spec.npy"]))))
    target = spec
    for key in where[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    if value == "<delete>":
        target.pop(where[-1], None)
    else:
        target[where[-1]] = value
    note(f"spec[{where}] = {value!r}")
    try:
        text = json.dumps(spec)
    except (ValueError, OverflowError):
        text = "{}"
    entries["spec.npy"] = npy(np.array(text))
    entries = list(entries.items())
    if extra is not None:  # a stray entry, or a second 'spec' (the last one read wins)
        entries.append((extra, npy(np.arange(3.0))))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.npz")
        write_npz(path, entries)
        loaded = load_checked(path, X, 4)
        if loaded is not None:  # and what loads saves and loads again
            again = os.path.join(folder, "again.npz")
            loaded.save(again)
            assert same_network(loaded, fastbp.load(again), X[:, :loaded.n_features_in_])
            os.remove(again)
        assert sorted(os.listdir(folder)) == ["m.npz"]
    assert not os.path.exists(os.path.join(os.path.dirname(folder), "escape.npy"))
    record_case("files: hostile spec", "rejected" if loaded is None else "loaded")


@pytest.mark.parametrize("where", [("init_scale",), ("dropout",), ("history", "_lr"),
                                   ("history", "best_loss_"), ("history", "best_validation_score_"),
                                   ("rng", "cached_gaussian"), ("optimizer", "params", "epsilon")],
                         ids=lambda where: ".".join(where))
@pytest.mark.parametrize("value", [10 ** 400, -10 ** 400, float("nan"), float("inf")],
                         ids=["1e400", "-1e400", "nan", "inf"])
def test_numbers_beyond_any_float_in_a_spec_are_rejected_with_value_error(model_file, where,
                                                                          value, tmp_path):
    """JSON holds integers of any size: float() of one raises OverflowError, which load must
    report as the ValueError of a bad file (found by the hostile-spec search above)."""
    _, X, raw = model_file
    entries = read_npz(raw)
    spec = json.loads(str(np.load(io.BytesIO(entries["spec.npy"]))))
    target = spec
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    entries["spec.npy"] = npy(np.array(json.dumps(spec)))
    path = tmp_path / "m.npz"
    write_npz(path, entries)
    with pytest.raises(ValueError, match="is not a valid fastbp model file"):
        fastbp.load(path)
    record_case("files: hostile spec", "huge number rejected")


def test_a_pickle_payload_is_never_unpickled(tmp_path):
    """An object array whose unpickling would write a file: rejected, and no file appears."""
    canary = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    net, X = _trained()
    net.save(tmp_path / "m.npz")
    entries = read_npz((tmp_path / "m.npz").read_bytes())
    for name in ("params.npy", "spec.npy", "extra.npy"):
        hostile = dict(entries)
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.array([Payload()], dtype=object), allow_pickle=True)
        hostile[name] = buffer.getvalue()
        path = tmp_path / f"hostile-{name}.npz"
        write_npz(path, hostile)
        with audited() as audit:
            with pytest.raises(ValueError, match="never unpickled"):
                fastbp.load(path)
        assert not canary.exists()
        assert [e for e, _ in audit.events if e.startswith("pickle.")] == []
        record_case("files: hostile spec", "pickle rejected")


# -- load: threads and memory ------------------------------------------------------------------

THREAD_JOBS = [  # (layers, output, optimizer, extra): the loop kernels and the BLAS path
    ([10, 6, 3], "softmax", "adam", {}),
    ([10, 32, 16, 3], "softmax", "sgd", dict(dropout=0.2)),
    ([10, 16, 16, 1], "identity", "nesterov", dict(residual=True)),
    ([10, 24, 2], "sigmoid", "adamw", {}),
]


def thread_job(i, barrier=None, n_threads=None):
    layers, output, optimizer, extra = THREAD_JOBS[i]
    X, y = make_data(400, 10, layers[-1], output, seed=i)
    net = fastbp.Network(layers, output=output, random_state=i, **extra)
    if barrier is not None:
        barrier.wait()
    outputs = []
    for _ in range(4):  # the batched-epochs path, then the per-epoch path with a callback
        net.fit(X, y, epochs=15, batch_size=32, optimizer=optimizer, learning_rate=0.01,
                warm_start=True, n_threads=n_threads)
        net.fit(X, y, epochs=5, batch_size=32, optimizer=optimizer, learning_rate=0.01,
                warm_start=True, n_threads=n_threads, callbacks=[lambda e, m: None])
        outputs.append(net.forward(X))
    return params(net), np.stack(outputs), list(net.loss_curve_)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # (not per thread:
def test_four_threads_fitting_their_own_networks_equal_serial_fits():  # filters are global)
    serial = [thread_job(i) for i in range(4)]
    rounds = 3
    for _ in range(rounds):
        barrier = threading.Barrier(4)
        with ThreadPoolExecutor(4) as pool:
            concurrent = list(pool.map(lambda i: thread_job(i, barrier), range(4)))
        for (w, out, losses), (w2, out2, losses2) in zip(serial, concurrent):
            np.testing.assert_array_equal(w, w2)
            np.testing.assert_array_equal(out, out2)
            assert losses == losses2
        record_case("load: threads", "4 concurrent fits")
    # the estimators too
    X, y = make_data(120, 10, 3, "softmax", seed=7)

    def estimator(seed, barrier=None):
        if barrier is not None:
            barrier.wait()
        est = fastbp.MLPClassifier((16,), max_iter=20, random_state=seed).fit(X, y)
        return est.predict_proba(X)

    alone = [estimator(s) for s in range(4)]
    barrier = threading.Barrier(4)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda s: estimator(s, barrier), range(4)))
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)
    record_case("load: threads", "4 concurrent estimator fits")
    RELIABILITY_BOUNDS["threads"] = (f"4 threads x {rounds} rounds of concurrent fits and 2 "
                                     f"threads sharing a network: bitwise equal to serial runs")


def test_two_threads_predicting_from_one_network_agree_with_one_thread():
    X, y = make_data(2500, 10, 3, "softmax", seed=3)  # more rows than one forward chunk
    net = fastbp.Network([10, 32, 16, 3], output="softmax", random_state=0)
    net.fit(X, y, epochs=3, optimizer="adam", learning_rate=0.01)
    expected = (net.forward(X), net.predict(X), net.predict_proba(X[:7]),
                net.loss_and_gradients(X[:300], y[:300])[0])
    barrier = threading.Barrier(2)

    def worker(_):
        barrier.wait()
        results = []
        for _ in range(15):
            results.append((net.forward(X), net.predict(X), net.predict_proba(X[:7]),
                            net.loss_and_gradients(X[:300], y[:300])[0]))
        return results

    with ThreadPoolExecutor(2) as pool:
        runs = [r for results in pool.map(worker, range(2)) for r in results]
    for forward, predicted, proba, loss in runs:
        np.testing.assert_array_equal(forward, expected[0])
        np.testing.assert_array_equal(predicted, expected[1])
        np.testing.assert_array_equal(proba, expected[2])
        assert loss == expected[3]
    record_case("load: threads", "2 threads sharing a network")


class _ProcessWideLimit:
    """Stands in for a ``threadpoolctl`` limiter: one process-wide BLAS thread count,
    saved on entry and put back on exit, as threadpoolctl does.  (The real count cannot be
    relied on in a test: OpenBLAS ignores a thread's setting once the main thread has set
    one, and a one-core machine starts at 1.)"""

    current = 4
    seen = []

    def __init__(self, limits=None, user_api=None):
        self.saved = _ProcessWideLimit.current
        _ProcessWideLimit.current = limits

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore_original_limits()
        return False

    def restore_original_limits(self):
        _ProcessWideLimit.current = self.saved


def test_overlapping_fits_with_n_threads_restore_the_blas_thread_count(monkeypatch):
    import threadpoolctl
    from fastbp import network

    class Controller:
        def limit(self, limits):
            return _ProcessWideLimit(limits)

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Controller)
    monkeypatch.setattr(network, "_BLAS", [set(), None, None])  # no controller made yet
    _ProcessWideLimit.current = 4
    X, y = make_data(64, 10, 3, "softmax", seed=0)
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()

    def fit_a():
        def hold(epoch, metrics):
            _ProcessWideLimit.seen.append(_ProcessWideLimit.current)
            a_inside.set()
            b_inside.wait(10)
        net = fastbp.Network([10, 8, 3], output="softmax", random_state=0)
        net.fit(X, y, epochs=1, n_threads=1, callbacks=[hold])
        a_done.set()

    def fit_b():
        a_inside.wait(10)

        def hold(epoch, metrics):
            b_inside.set()
            a_done.wait(10)
        net = fastbp.Network([10, 8, 3], output="softmax", random_state=1)
        net.fit(X, y, epochs=1, n_threads=1, callbacks=[hold])

    threads = [threading.Thread(target=fit_a), threading.Thread(target=fit_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _ProcessWideLimit.seen == [1]  # BLAS was limited while the fits ran
    assert _ProcessWideLimit.current == 4  # and is back where it was


def _resident_mib():
    """Resident memory now (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, AttributeError):
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10


def _drift(cycle, n, warm=100, every=100):
    for i in range(warm):
        cycle(i)
    gc.collect()
    start = _resident_mib()
    samples = []
    for i in range(n):
        cycle(i)
        if (i + 1) % every == 0:
            gc.collect()
            samples.append(_resident_mib() - start)
    return samples


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_thousand_fit_predict_cycles_keep_memory_flat():
    X, y = make_data(64, 8, 3, "softmax", seed=0)

    def cycle(i):
        net = fastbp.Network([8, 16, 3], output="softmax", random_state=i)
        net.fit(X, y, epochs=2, batch_size=16, optimizer="adam", learning_rate=0.01)
        net.fit(X, y, epochs=1, callbacks=[lambda e, m: None], warm_start=True)
        assert np.isfinite(net.predict_proba(X)).all()

    samples = _drift(cycle, 1000)
    drift = max(samples)
    RELIABILITY_BOUNDS["memory drift, 1000 Network fit/predict cycles"] = (
        f"{drift:+.2f} MiB at most (bound 4 MiB; last 500 cycles "
        f"{samples[-1] - samples[4]:+.2f} MiB, bound 1 MiB)")
    assert drift < 4, samples
    assert samples[-1] - samples[4] < 1, samples
    record_case("load: memory", "1000 Network cycles")

    def estimator_cycle(i):
        est = fastbp.MLPClassifier((16,), max_iter=2, random_state=i).fit(X, y)
        assert np.isfinite(est.predict_proba(X)).all()

    samples = _drift(estimator_cycle, 300, warm=50)
    RELIABILITY_BOUNDS["memory drift, 300 MLPClassifier fit/predict cycles"] = (
        f"{max(samples):+.2f} MiB at most (bound 4 MiB)")
    assert max(samples) < 4, samples
    record_case("load: memory", "300 MLPClassifier cycles")
