"""fastbp.MLPClassifier / MLPRegressor as drop-ins for scikit-learn's."""
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import neural_network as sk
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastbp import MLPClassifier, MLPRegressor


# max_iter=100 as scikit-learn's own test suite configures its MLPs for these checks; each
# solver family once. No check is marked as an expected failure and no tag is claimed beyond
# sparse input (densified, see fastbp.estimators) and multilabel targets (indicator matrices).
@parametrize_with_checks([
    MLPClassifier(max_iter=100),
    MLPRegressor(max_iter=100),
    MLPClassifier(solver="sgd", max_iter=100),
    MLPRegressor(solver="lbfgs", max_iter=100),
])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def quiet_fit(model, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y, **kw)


def max_weight_difference(a, b):
    return max(np.abs(p - q).max() for p, q in zip(a.coefs_ + a.intercepts_,
                                                    b.coefs_ + b.intercepts_))


# -- the same maths, step for step ---------------------------------------------------------------

SAME_TRAJECTORY = {
    "sgd": dict(solver="sgd", momentum=0.0, shuffle=False),
    "adam": dict(solver="adam", shuffle=False),
    "adam-shuffled": dict(solver="adam"),
    "nesterov-shuffled": dict(solver="sgd"),
    "momentum-invscaling": dict(solver="sgd", nesterovs_momentum=False,
                                learning_rate="invscaling", learning_rate_init=0.1),
    "early-stopping": dict(solver="adam", early_stopping=True),
    "l2": dict(solver="adam", alpha=0.5),
}


@pytest.mark.parametrize("kw", SAME_TRAJECTORY.values(), ids=SAME_TRAJECTORY.keys())
def test_classifier_weights_equal_scikit_learns(kw):
    X, y = digits()
    ours = quiet_fit(MLPClassifier(hidden_layer_sizes=(24, 12), max_iter=4, random_state=0, **kw),
                     X, y)
    theirs = quiet_fit(sk.MLPClassifier(hidden_layer_sizes=(24, 12), max_iter=4, random_state=0,
                                        **kw), X, y)
    assert max_weight_difference(ours, theirs) < 1e-12
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    if kw.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_loss_ is None and theirs.best_loss_ is None
    else:
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-12)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_regressor_weights_equal_scikit_learns(solver):
    X, y = make_regression(n_samples=300, n_features=8, noise=1.0, random_state=0)
    y = y / y.std()
    kw = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=1, solver=solver,
              learning_rate_init=0.01)
    ours = quiet_fit(MLPRegressor(**kw), X, y)
    theirs = quiet_fit(sk.MLPRegressor(**kw), X, y)
    assert max_weight_difference(ours, theirs) < 1e-9
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)


def test_poisson_and_sample_weight_and_binary_match_scikit_learn():
    rng = np.random.RandomState(0)
    X = rng.rand(200, 5)
    y = rng.poisson(np.exp(X @ rng.rand(5)))
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0, loss="poisson")
    assert max_weight_difference(quiet_fit(MLPRegressor(**kw), X, y),
                                 quiet_fit(sk.MLPRegressor(**kw), X, y)) < 1e-12
    Xc, yc = make_classification(n_samples=300, n_features=6, random_state=0)
    w = rng.rand(300)
    kw = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0, solver="sgd")
    ours = quiet_fit(MLPClassifier(**kw), Xc, yc, sample_weight=w)
    theirs = quiet_fit(sk.MLPClassifier(**kw), Xc, yc, sample_weight=w)
    assert max_weight_difference(ours, theirs) < 1e-12


def test_float32_input_trains_in_float32_like_scikit_learn():
    X, y = digits()
    X = X.astype(np.float32)
    ours = quiet_fit(MLPClassifier(hidden_layer_sizes=(20,), max_iter=3, random_state=0), X, y)
    theirs = quiet_fit(sk.MLPClassifier(hidden_layer_sizes=(20,), max_iter=3, random_state=0), X, y)
    assert ours.coefs_[0].dtype == np.float32 == theirs.coefs_[0].dtype
    assert max_weight_difference(ours, theirs) < 1e-4
    assert ours.predict_proba(X).dtype == np.float32


# -- scores on bundled data, several seeds -------------------------------------------------------

# The two estimators follow the same trajectory up to rounding (the tests above), so over
# 200 epochs their scores differ only where rounding flips a prediction: averaged over three
# seeds they must agree to 0.01 (two digits' worth of 1797 test predictions, or 0.01 of R^2).
SCORE_CASES = {
    "digits": (digits, MLPClassifier, sk.MLPClassifier, dict(hidden_layer_sizes=(32,)), 0.95),
    "classification": (lambda: make_classification(n_samples=600, n_features=20, n_classes=3,
                                                   n_informative=8, random_state=0),
                       MLPClassifier, sk.MLPClassifier, dict(hidden_layer_sizes=(32,)), 0.75),
    "regression": (lambda: make_regression(n_samples=400, n_features=10, noise=5.0,
                                           random_state=0),
                   MLPRegressor, sk.MLPRegressor, dict(hidden_layer_sizes=(32,),
                                                       learning_rate_init=0.01), 0.8),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", SCORE_CASES.values(), ids=SCORE_CASES.keys())
def test_scores_match_scikit_learn_over_seeds(case):
    make_data, ours_cls, theirs_cls, kw, floor = case
    X, y = make_data()
    idx = np.random.RandomState(0).permutation(len(X))
    train, test = idx[: len(X) * 3 // 4], idx[len(X) * 3 // 4:]
    ours, theirs = [], []
    for seed in range(3):
        for cls, scores in ((ours_cls, ours), (theirs_cls, theirs)):
            model = quiet_fit(cls(random_state=seed, max_iter=200, **kw), X[train], y[train])
            scores.append(model.score(X[test], y[test]))
    assert np.mean(ours) == pytest.approx(np.mean(theirs), abs=0.01)
    assert np.mean(ours) > floor  # and both really learned


# -- the scikit-learn API around it --------------------------------------------------------------

def test_pipeline_grid_search_cross_val_clone_pickle():
    X, y = make_classification(n_samples=200, n_features=6, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=50, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.7
    search = GridSearchCV(MLPClassifier(max_iter=30, random_state=0),
                          {"hidden_layer_sizes": [(5,), (20,)], "alpha": [1e-4, 1e-1]}, cv=2)
    quiet_fit(search, X, y)
    assert search.best_params_["hidden_layer_sizes"] in [(5,), (20,)]
    model = quiet_fit(MLPClassifier(max_iter=20, random_state=0), X, y)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "coefs_")
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    again.coefs_[0][0, 0] += 1.0  # still views of the network's parameters after unpickling
    assert not np.array_equal(again.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_calls_shuffle_as_scikit_learns(solver):
    # Each call shuffles its rows from their own order (blocks of the same size, where a
    # visiting order kept from the call before would apply)
    rng = np.random.RandomState(0)
    X = rng.randn(150, 4)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    kw = dict(hidden_layer_sizes=(8,), random_state=0, solver=solver, batch_size=16)
    ours, theirs = MLPClassifier(**kw), sk.MLPClassifier(**kw)
    for i in range(5):
        rows = slice(i * 30, (i + 1) * 30)
        for est in (ours, theirs):
            est.partial_fit(X[rows], y[rows], classes=[0, 1])
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_partial_fit_multilabel_multioutput_dataframes_sparse():
    X, y = make_classification(n_samples=120, n_features=5, n_classes=3, n_informative=3,
                               random_state=0)
    clf = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:60], y[:60], classes=[0, 1, 2])
    clf.partial_fit(X[60:], y[60:])
    assert clf.n_iter_ == 1 and clf.t_ == 120 and len(clf.loss_curve_) == 2
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPRegressor(solver="sgd"), "partial_fit")

    Y = np.c_[y == 0, y == 1, y == 2, y > 0].astype(int)
    multi = quiet_fit(MLPClassifier(max_iter=20, random_state=0), X, Y)
    assert multi.predict(X).shape == (120, 4) and multi.out_activation_ == "logistic"
    reg = quiet_fit(MLPRegressor(max_iter=20, random_state=0), X, np.c_[X[:, 0], X[:, 1]])
    assert reg.predict(X).shape == (120, 2) and reg.n_outputs_ == 2

    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    named = quiet_fit(MLPClassifier(max_iter=10, random_state=0), df, y)
    assert list(named.feature_names_in_) == list(df.columns)
    dense = quiet_fit(MLPClassifier(max_iter=10, random_state=0), X, y)
    sparse = quiet_fit(MLPClassifier(max_iter=10, random_state=0), sp.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.predict_proba(X), dense.predict_proba(X))
    np.testing.assert_allclose(named.predict_proba(df), dense.predict_proba(X))


def test_convergence_warning_and_parameter_errors():
    X, y = make_classification(n_samples=100, n_features=5, random_state=0)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier(max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="'solver' parameter of MLPClassifier"):
        MLPClassifier(solver="newton").fit(X, y)
    with pytest.raises(InvalidParameterError, match="'learning_rate_init' parameter"):
        MLPRegressor(learning_rate_init=0).fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
        MLPClassifier(hidden_layer_sizes=(3, 0)).fit(X, y)
    for sizes in [(2.5,), (3.7, 2), (1e30,)]:  # (not truncated to whole units)
        with pytest.raises(TypeError, match="hidden_layer_sizes must be integers"):
            MLPClassifier(hidden_layer_sizes=sizes).fit(X, y)
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.01).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="non-negative"):
        MLPRegressor(loss="poisson").fit(X, -np.ones(100))


def test_fastbp_extras():
    X, y = digits()
    model = quiet_fit(MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0,
                                    learning_rate_init=0.01, solver="adamw", weight_decay=0.1, clip_norm=1.0,
                                    dtype="float32", n_threads=1, activation="leaky_relu"), X, y)
    assert model.coefs_[0].dtype == np.float32
    assert model.score(X, y) > 0.9
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0)
    quiet_fit(est, X, y)
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape"):
        est.coefs_ = [np.zeros((3, 3)), est.coefs_[1]]
    est.coefs_ = [np.zeros_like(W) for W in est.coefs_]
    assert np.allclose(est.predict_proba(X), est.predict_proba(X)[0])


@pytest.mark.parametrize("kw", [dict(solver="sgd", learning_rate="invscaling"),
                                dict(solver="sgd", learning_rate="adaptive", tol=0.01),
                                dict(tol=0.05, n_iter_no_change=2),
                                dict(early_stopping=True)])
def test_warm_started_fits_go_on_as_scikit_learns(kw):
    # A new optimizer each fit, but the samples seen (invscaling's clock), the stopping
    # rule's best and count, and the history go on.
    rng = np.random.RandomState(0)
    X = rng.rand(120, 4)
    y = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > .7)
    models = [M(hidden_layer_sizes=(6,), random_state=0, max_iter=30, warm_start=True, **kw)
              for M in (MLPClassifier, sk.MLPClassifier)]
    for fit in range(3):
        ours, theirs = models
        best_before = getattr(ours, "best_validation_score_", None)
        weights_before = ours.coefs_[0].copy() if fit else None
        for m in models:
            quiet_fit(m, X, y)
        assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
        if fit and kw.get("early_stopping") and \
                max(ours.validation_scores_[-ours.n_iter_:]) <= best_before:
            # No better score in this fit: ours ends at the best weights, scikit-learn's
            # at its last epoch's (see the module's docstring); the trajectories part here.
            np.testing.assert_array_equal(ours.coefs_[0], weights_before)
            return
        for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("change", [dict(activation="tanh"), dict(dropout=0.5),
                                    dict(batch_norm=True), dict(dtype="float32"),
                                    dict(hidden_layer_sizes=(5, 5))])
@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_a_warm_start_rejects_a_changed_architecture_instead_of_ignoring_it(change, how):
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0,
                        warm_start=how == "warm_start", dtype="float64")
    if how == "warm_start":
        quiet_fit(est, X, y)
    else:
        est.partial_fit(X, y, classes=[0, 1])
    proba, curve = est.predict_proba(X), list(est.loss_curve_)
    est.set_params(**change)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"{name}=.* differs from the .* network was built"):
        est.fit(X, y) if how == "warm_start" else est.partial_fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), proba)
    assert est.loss_curve_ == curve


@pytest.mark.parametrize("kw", [dict(early_stopping=True), dict(tol=0.01)])
def test_verbose_prints_every_iteration_and_why_it_stopped(kw, capsys):
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=200, n_iter_no_change=2,
                        random_state=0, verbose=True, **kw).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert est.n_iter_ < 200
    assert sum(line.startswith("Iteration ") for line in lines) == est.n_iter_
    what = "validation score" if kw.get("early_stopping") else "training loss"
    assert lines[-1].startswith(f"The {what} did not improve") and "2 consecutive" in lines[-1]


def test_lbfgs_ignores_early_stopping_and_trains_on_every_row_as_scikit_learn():
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    kw = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=15, random_state=0,
              early_stopping=True)
    ours, theirs = quiet_fit(MLPClassifier(**kw), X, y), quiet_fit(sk.MLPClassifier(**kw), X, y)
    assert ours.n_iter_ == theirs.n_iter_
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_last_batch_of_one_row_through_the_tiles_trains_as_scikit_learns(solver):
    # 201 rows in 'auto' batches of 200: the last batch holds one row, and 100 -> 100 goes
    # through the register tiles (whose edge products once went wrong for one row)
    rng = np.random.RandomState(0)
    X, y = rng.standard_normal((201, 100)), rng.randint(0, 3, 201)
    kw = dict(hidden_layer_sizes=(100,), solver=solver, momentum=0.0, shuffle=False,
              max_iter=5, random_state=0)
    ours, theirs = quiet_fit(MLPClassifier(**kw), X, y), quiet_fit(sk.MLPClassifier(**kw), X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


HISTORY = ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_")


@pytest.mark.parametrize("last", ["fit", "partial_fit"])
def test_an_lbfgs_warm_start_between_sgd_fits_goes_on_as_scikit_learns(last):
    # scikit-learn's L-BFGS leaves the stochastic solver's state alone: the samples seen,
    # the stopping rule's best and count, and the optimizer that partial_fit goes on with
    X, y = make_regression(n_samples=150, n_features=5, noise=1.0, random_state=0)
    y = y / y.std()
    kw = dict(hidden_layer_sizes=(7,), solver="sgd", learning_rate="invscaling", max_iter=8,
              warm_start=True, learning_rate_init=0.05, tol=1e-3, n_iter_no_change=3,
              random_state=0)
    ests = [MLPRegressor(**kw), sk.MLPRegressor(**kw)]
    for est in ests:
        quiet_fit(est, X, y)
        quiet_fit(est.set_params(solver="lbfgs", max_iter=5), X, y)
        est.set_params(solver="sgd", max_iter=8)
        quiet_fit(est, X, y) if last == "fit" else est.partial_fit(X, y)
    ours, theirs = ests
    assert (ours.n_iter_, ours.t_, len(ours.loss_curve_)) == \
        (theirs.n_iter_, theirs.t_, len(theirs.loss_curve_))
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("change", [dict(learning_rate_init=0.05), dict(momentum=0.5),
                                    dict(nesterovs_momentum=False),
                                    dict(learning_rate="constant"), dict(solver="adam")])
def test_set_params_between_partial_fits_applies_as_in_scikit_learn(change):
    # scikit-learn's partial_fit goes on with the optimizer it has: a changed rate, schedule
    # or rule applies from the next fit only
    rng = np.random.RandomState(0)
    X = rng.randn(120, 4)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    kw = dict(hidden_layer_sizes=(8,), random_state=0, solver="sgd", batch_size=16,
              learning_rate="invscaling", learning_rate_init=0.01)
    ours, theirs = MLPClassifier(**kw), sk.MLPClassifier(**kw)
    for i in range(4):
        for est in (ours, theirs):
            if i == 2:
                est.set_params(**change)
            est.partial_fit(X[i * 30:(i + 1) * 30], y[i * 30:(i + 1) * 30], classes=[0, 1])
    assert ours.t_ == theirs.t_ == 120
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_lbfgs_fits_have_the_attributes_of_scikit_learns():
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    kw = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=15, random_state=0)
    ours, theirs = quiet_fit(MLPClassifier(**kw), X, y), quiet_fit(sk.MLPClassifier(**kw), X, y)
    for name in HISTORY:
        assert hasattr(ours, name) == hasattr(theirs, name) == False, name
    assert ours.t_ == theirs.t_ == 0
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-7)
    # A refit with adam has a history again; a refit with L-BFGS has none.
    ours.set_params(solver="adam")
    quiet_fit(ours, X, y)
    assert len(ours.loss_curve_) == ours.n_iter_ and ours.best_loss_ == min(ours.loss_curve_)
    assert ours.t_ == ours.n_iter_ * 100
    ours.set_params(solver="lbfgs")
    quiet_fit(ours, X, y)
    assert not any(hasattr(ours, name) for name in HISTORY) and ours.t_ == 0
    # A warm start with adam after L-BFGS starts the history (scikit-learn's own fails there),
    # its network's too (the stopping rule's best loss, the samples seen)
    ours.set_params(solver="adam", warm_start=True, max_iter=3)
    quiet_fit(ours, X, y)
    assert len(ours.loss_curve_) == 3 and ours.t_ == 300
    assert ours._net.t_ == 300 and ours._net.best_loss_ == min(ours.loss_curve_)


def test_assigning_an_item_of_coefs_changes_the_model_as_in_scikit_learn():
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    ours = quiet_fit(MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0), X, y)
    theirs = quiet_fit(sk.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0),
                       X, y)
    for est in (ours, theirs):
        est.coefs_[1] = np.zeros_like(est.coefs_[1])
        est.intercepts_[-1] = np.zeros(1)
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))  # all 0.5
    assert np.all(ours.predict_proba(X) == 0.5)
    assert np.all(pickle.loads(pickle.dumps(ours)).predict_proba(X) == 0.5)
    before = ours.coefs_[0].copy()
    for bad in ([np.full((4, 5), np.nan), np.zeros((5, 1))],
                [np.ones((4, 5)), np.full((5, 1), np.inf)]):  # (the first array not kept either)
        with pytest.raises(ValueError, match=r"coefs_\[[01]\] contains NaN or infinity"):
            ours.coefs_ = bad
        np.testing.assert_array_equal(ours.coefs_[0], before)
    with pytest.raises(ValueError, match=r"intercepts_\[0\] contains NaN"):
        ours.intercepts_[0] = np.full(5, np.nan)


def test_deep_network_extras_reach_the_network():
    X, y = digits()
    X = X * 16.0  # unscaled pixels: batch normalization copes
    kw = dict(hidden_layer_sizes=(32, 32, 32), max_iter=15, random_state=0,
              learning_rate_init=0.01)
    model = quiet_fit(MLPClassifier(residual=True, dropout=0.1, batch_norm=True, **kw), X, y)
    net = model._net
    assert net.residual and net.dropout == 0.1 and net.batch_norm
    assert len(net.scales_) == 3 and not np.allclose(net.running_means_[0], 0)
    assert model.score(X, y) > 0.9
    # prediction runs in eval mode: one sample alone gets the same probabilities
    np.testing.assert_allclose(model.predict_proba(X[:1]), model.predict_proba(X)[:1],
                               rtol=1e-5, atol=1e-6)
    # the same estimator with the extras off is the plain network
    plain = quiet_fit(MLPClassifier(**kw), X, y)
    assert not (plain._net.residual or plain._net.dropout or plain._net.batch_norm)
    with pytest.raises(ValueError, match="batch_norm"):
        MLPClassifier(solver="lbfgs", batch_norm=True, max_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="batch_norm"):
        MLPRegressor(batch_norm="yes").fit(X, y)


def test_values_too_large_for_float32_are_named():
    # (validated as finite, then converted: an overflow is the data's, not a divergence)
    X, y = make_regression(n_samples=40, n_features=3, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="y has values too large for float32"):
        reg.fit(X.astype(np.float32), y * 1e39)
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0, dtype="float32")
    with pytest.raises(ValueError, match="X has values too large for float32"):
        reg.fit(X * 1e39, y)
