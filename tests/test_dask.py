"""fastbp on Dask: block-wise training with dask-ml's Incremental, prediction with
ParallelPostFit, scikit-learn's searches on joblib's Dask backend, and estimators pickled
to and from worker processes.

The cluster is a LocalCluster on 127.0.0.1 with two worker processes of one thread each,
started once for the module and closed after it; every call into it is bounded in time.
The workers import the same fastbp files as this process, so they load the kernels this
process compiled (or found) in Numba's on-disk cache.
"""
import importlib
import logging
import pickle
import threading

import numpy as np
import pytest


def _require(name):
    """The module, or the whole file skipped when a package of the dask extra is missing.
    A broken install (an ImportError from inside a package that is there) fails loudly."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        pytest.skip(f"the dask extra is not installed ({exc}); pip install -e '.[dask]'",
                    allow_module_level=True)


dask = _require("dask")
da = _require("dask.array")
distributed = _require("distributed")
dask_ml_wrappers = _require("dask_ml.wrappers")

import joblib  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402

from fastbp import MLPClassifier, MLPRegressor  # noqa: E402

Incremental = dask_ml_wrappers.Incremental
ParallelPostFit = dask_ml_wrappers.ParallelPostFit

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Seconds any one call into the cluster may take before the test fails.
TIMEOUT = 90
BLOCK = 1200


def bounded(fn, timeout=TIMEOUT):
    """``fn()`` run in a daemon thread; the test fails, instead of hanging, if it takes longer
    than ``timeout`` seconds (the module fixture then closes the cluster under it)."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"the cluster did not answer within {timeout} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=6 * BLOCK, n_features=20, n_informative=10,
                               n_classes=3, class_sep=1.5, random_state=0)
    n_train = 5 * BLOCK
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def classifier(**params):
    # n_threads=1: the same thread count in this process and on the workers, so the same
    # random_state gives bitwise the same weights wherever a model is trained.
    return MLPClassifier(**{"hidden_layer_sizes": (32,), "learning_rate_init": 0.01,
                            "random_state": 0, "n_threads": 1, **params})


@pytest.fixture(scope="module")
def client(data):
    import sys

    import cloudpickle
    from distributed import Client, LocalCluster

    # Compile (or load) the kernels in this process first: the workers then find every
    # signature they need in Numba's cache instead of compiling it twice at once.
    X, y, X_test, _ = data
    classifier(max_iter=2).fit(X, y).predict_proba(X_test)
    classifier(max_iter=2).fit(X.astype(np.float32), y).predict_proba(X_test.astype(np.float32))
    classifier(max_iter=2).partial_fit(X[:BLOCK], y[:BLOCK], classes=np.unique(y))
    MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, n_threads=1).fit(X, X[:, 0])

    # Functions and lambdas of this module travel by value: workers need not import it.
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        # Worker processes (not threads): models really are pickled from one process to
        # another, and each worker caps its own threads: dask's nanny sets OMP/OPENBLAS/
        # MKL_NUM_THREADS=1, and NUMBA_NUM_THREADS=1 is passed here (numba reads it when the
        # worker first imports it).
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               env={"NUMBA_NUM_THREADS": "1"}, silence_logs=logging.ERROR)
        try:
            with Client(cluster, timeout=TIMEOUT) as c:
                c.wait_for_workers(2, timeout=TIMEOUT)
                yield c
        finally:
            cluster.close(timeout=30)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def dask_arrays(X, y):
    return da.from_array(X, chunks=(BLOCK, X.shape[1])), da.from_array(y, chunks=BLOCK)


def test_incremental_without_a_cluster_matches_partial_fit_block_by_block(data):
    """dask-ml's Incremental calls partial_fit once per block, in order, with classes=."""
    X, y, _, _ = data
    Xd, yd = dask_arrays(X, y)
    inc = Incremental(classifier(), shuffle_blocks=False)
    with dask.config.set(scheduler="sync"):
        inc.fit(Xd, yd, classes=np.unique(y))
    local = classifier()
    for start in range(0, X.shape[0], BLOCK):
        local.partial_fit(X[start:start + BLOCK], y[start:start + BLOCK], classes=np.unique(y))
    assert inc.estimator_.t_ == local.t_ == X.shape[0]
    for a, b in zip(inc.estimator_.coefs_ + inc.estimator_.intercepts_,
                    local.coefs_ + local.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(inc.classes_, np.unique(y))


@pytest.mark.slow
def test_incremental_on_the_cluster_trains_like_local_partial_fit(client, data):
    """Block after block on the workers, the model travelling between them as a pickle
    (optimizer state included), gives bitwise the weights of local partial_fit calls."""
    X, y, X_test, y_test = data
    Xd, yd = dask_arrays(X, y)
    inc = Incremental(classifier(), shuffle_blocks=False)
    bounded(lambda: inc.fit(Xd, yd, classes=np.unique(y)))
    local = classifier()
    for start in range(0, X.shape[0], BLOCK):
        local.partial_fit(X[start:start + BLOCK], y[start:start + BLOCK], classes=np.unique(y))
    for a, b in zip(inc.estimator_.coefs_ + inc.estimator_.intercepts_,
                    local.coefs_ + local.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert inc.estimator_.loss_curve_ == local.loss_curve_


@pytest.mark.slow
def test_incremental_accuracy_matches_an_in_memory_fit(client, data):
    """Several passes of Incremental over a dask array of 5 blocks reach the accuracy of
    the same number of epochs of fit on the whole array in memory."""
    X, y, X_test, y_test = data
    Xd, yd = dask_arrays(X, y)
    Xd_test, yd_test = dask_arrays(X_test, y_test)
    passes = 6
    inc = Incremental(classifier(), scoring="accuracy", shuffle_blocks=True, random_state=0)

    def train():
        for _ in range(passes):
            inc.partial_fit(Xd, yd, classes=np.unique(y))
        return inc.score(Xd_test, yd_test)   # predicted block by block on the workers

    score = bounded(train)
    assert inc.estimator_.t_ == passes * X.shape[0]
    in_memory = classifier(max_iter=passes).fit(X, y)
    reference = in_memory.score(X_test, y_test)
    assert reference > 0.8                   # chance is 1/3: both learned something
    assert score == pytest.approx(inc.estimator_.score(X_test, y_test))
    assert abs(score - reference) <= 0.03, (score, reference)


@pytest.mark.slow
def test_parallel_post_fit_predicts_across_workers_as_locally(client, data):
    X, y, X_test, _ = data
    clf = classifier(max_iter=20).fit(X, y)
    Xd = da.from_array(np.vstack([X, X_test]), chunks=(BLOCK, X.shape[1]))
    ppf = ParallelPostFit(clf)
    proba, labels = bounded(lambda: dask.compute(ppf.predict_proba(Xd), ppf.predict(Xd)))
    whole = np.vstack([X, X_test])
    # Rows go through the network in the workers' blocks, not in one array: predictions
    # must not depend on how rows are batched.
    np.testing.assert_allclose(proba, clf.predict_proba(whole), rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(labels, clf.predict(whole))


@pytest.mark.slow
def test_pickled_estimators_round_trip_across_workers(client, data):
    X, y, X_test, _ = data
    fitted = classifier(max_iter=20).fit(X, y)
    expected = fitted.predict_proba(X_test)

    # Fitted here, predicted on every worker: the same probabilities, bit for bit.
    [remote] = client.scatter([fitted], broadcast=True)
    workers = list(client.scheduler_info(n_workers=-1)["workers"])
    assert len(workers) == 2
    futures = [client.submit(lambda est, Z: est.predict_proba(Z), remote, X_test,
                             workers=[w], pure=False) for w in workers]
    for future in futures:
        np.testing.assert_array_equal(future.result(timeout=TIMEOUT), expected)

    # Fitted on a worker, sent back: the same weights as a fit here, and it continues
    # training (optimizer state included) exactly as the local model does.
    back = client.submit(lambda: classifier(max_iter=20).fit(X, y), pure=False,
                         workers=workers[:1]).result(timeout=TIMEOUT)
    assert isinstance(back, MLPClassifier)
    np.testing.assert_array_equal(back.predict_proba(X_test), expected)
    for a, b in zip(back.coefs_ + back.intercepts_, fitted.coefs_ + fitted.intercepts_):
        np.testing.assert_array_equal(a, b)

    # A model passing through both workers in turn, partial_fit on each.
    model = classifier()
    local = classifier()
    for i, start in enumerate(range(0, 4 * BLOCK, BLOCK)):
        rows = slice(start, start + BLOCK)
        model = client.submit(lambda m, A, b: m.partial_fit(A, b, classes=np.unique(y)),
                              model, X[rows], y[rows], workers=[workers[i % 2]],
                              pure=False).result(timeout=TIMEOUT)
        local.partial_fit(X[rows], y[rows], classes=np.unique(y))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict_proba(X_test),
                                  local.predict_proba(X_test))


def _search_scores(search):
    results = search.cv_results_
    keys = sorted(k for k in results if k.startswith("split") or k in ("mean_test_score",
                                                                       "rank_test_score"))
    return {k: np.asarray(results[k]) for k in keys}


def _assert_same_scores(parallel, serial):
    """The searches scored the same candidates alike: ranks exactly, scores to rounding.

    (A worker is another process, with one thread and the data unpickled into fresh
    buffers; a CI run once saw a regressor's score differ from the serial one in its last
    bit, which ranks nothing differently.)"""
    scores, expected = _search_scores(parallel), _search_scores(serial)
    assert scores.keys() == expected.keys()
    for key in expected:
        if key.startswith("rank"):
            np.testing.assert_array_equal(scores[key], expected[key], err_msg=key)
        else:
            np.testing.assert_allclose(scores[key], expected[key], rtol=1e-12, atol=0,
                                       err_msg=key)


@pytest.mark.slow
def test_distributed_grid_search_equals_the_serial_one(client, data):
    X, y, _, _ = data
    X, y = X[:1500], y[:1500]
    grid = {"hidden_layer_sizes": [(8,), (32,)], "alpha": [1e-4, 1.0],
            "learning_rate_init": [1e-3, 1e-2]}
    estimator = classifier(max_iter=15)

    def distributed_search():
        with distributed.get_task_stream(client) as tasks:
            with joblib.parallel_backend("dask"):
                search = GridSearchCV(estimator, grid, cv=3, n_jobs=-1).fit(X, y)
        return search, tasks.data

    parallel, tasks = bounded(distributed_search)
    serial = GridSearchCV(estimator, grid, cv=3, n_jobs=1).fit(X, y)
    # The candidates really were fitted on the workers, by both of them.
    assert len(tasks) >= 2 * 3
    assert len({t["worker"] for t in tasks}) == 2
    assert parallel.best_params_ == serial.best_params_
    assert parallel.best_score_ == pytest.approx(serial.best_score_, rel=1e-12, abs=0)
    _assert_same_scores(parallel, serial)
    # The candidates differ, or equal scores would prove nothing.
    assert len(set(serial.cv_results_["mean_test_score"])) > 1


@pytest.mark.slow
def test_distributed_randomized_search_of_a_regressor_equals_the_serial_one(client):
    X, y = make_regression(n_samples=800, n_features=8, noise=5.0, random_state=1)
    y = y / y.std()
    space = {"hidden_layer_sizes": [(4,), (16,), (16, 16)], "alpha": [1e-5, 1e-3, 1e-1],
             "solver": ["adam", "sgd"], "learning_rate_init": [1e-3, 3e-3, 1e-2]}
    estimator = MLPRegressor(max_iter=15, random_state=0, n_threads=1)

    def search(n_jobs):
        return RandomizedSearchCV(estimator, space, n_iter=4, cv=2, random_state=0,
                                  n_jobs=n_jobs).fit(X, y)

    def distributed_search():
        with joblib.parallel_backend("dask"):
            return search(-1)

    parallel = bounded(distributed_search)
    serial = search(1)
    assert parallel.best_params_ == serial.best_params_
    _assert_same_scores(parallel, serial)
    assert len(set(serial.cv_results_["mean_test_score"])) > 1


def _fit_on_worker(X, y):
    """Run as a task on a worker: a fit, then what it compiled and the thread limits it saw."""
    import sys

    import numba
    from numba.core.registry import CPUDispatcher
    from threadpoolctl import threadpool_info

    classifier(max_iter=2, n_threads=None).fit(X, y)
    hits = misses = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("fastbp"):
            for value in vars(module).values():
                if isinstance(value, CPUDispatcher):
                    hits += sum(value.stats.cache_hits.values())
                    misses += sum(value.stats.cache_misses.values())
    return {"hits": hits, "misses": misses, "numba_threads": numba.get_num_threads(),
            "blas_threads": [i["num_threads"] for i in threadpool_info()
                             if i["user_api"] == "blas"]}


@pytest.mark.slow
def test_workers_load_kernels_from_the_cache_and_do_not_oversubscribe(client, data):
    X, y, _, _ = data
    workers = list(client.scheduler_info(n_workers=-1)["workers"])
    futures = [client.submit(_fit_on_worker, X[:600], y[:600], workers=[w], pure=False)
               for w in workers]
    reports = [f.result(timeout=TIMEOUT) for f in futures]
    assert len(reports) == 2
    for report in reports:
        # What this process compiled, the workers loaded from Numba's cache: nothing compiled.
        assert report["misses"] == 0, report
        assert report["hits"] > 0, report
        # With n_threads=None a fit uses what the worker allows: one Numba thread and one
        # BLAS thread in each single-threaded worker process, so two workers use two cores.
        assert report["numba_threads"] == 1, report
        assert report["blas_threads"] and set(report["blas_threads"]) == {1}, report


@pytest.mark.slow
def test_the_scale_out_example_runs_on_a_running_cluster(client, capsys):
    """examples/dask_scale_out.py, small, on this module's cluster (its --scheduler path)."""
    import pathlib
    import runpy

    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "dask_scale_out.py"
    main = runpy.run_path(str(path))["main"]
    args = ["--gb", "0.02", "--block-mb", "4", "--window", "2", "--search-rows", "1500",
            "--scheduler", client.scheduler.address]
    results = bounded(lambda: main(args))
    out = capsys.readouterr().out
    assert results["blocks"] == 5 and results["t_"] == results["rows"] > 15_000
    # Four classes (the largest about 30%): both models learned something.
    assert results["accuracy"] > 0.5 and results["accuracy_search_model"] > 0.5
    assert len(results["worker_peak_gb"]) == 2
    for line in ("grid search:", "incremental training:", "test accuracy:", "peak memory:"):
        assert line in out
    assert "in windows of 2 blocks" in out
