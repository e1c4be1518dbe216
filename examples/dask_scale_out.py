"""fastbp on Dask: a distributed grid search, then training on more data than one
process holds, block by block.

    pip install -e ".[dask]"
    python examples/dask_scale_out.py                 # about 2 GB of training data
    python examples/dask_scale_out.py --gb 0.1        # a quick look
    python examples/dask_scale_out.py --scheduler tcp://scheduler:8786   # a running cluster

Without ``--scheduler`` it starts a LocalCluster on 127.0.0.1 with two worker processes of
one thread each.  The data are a classification task set by a fixed random "teacher"
network: every block of rows is drawn by the workers from its own seeded generator when a
task needs it, so the whole array never exists in one place, and a rerun draws the same
numbers.  The script

1. runs scikit-learn's GridSearchCV over fastbp's MLPClassifier on joblib's Dask backend
   (one small in-memory sample; the candidates and folds are fitted on the workers),
2. trains the best candidate's configuration with dask-ml's Incremental over the large
   dask array (one partial_fit call per block, the model passed from task to task),
3. predicts a held-out dask array on the workers with both models, and prints accuracy,
   times and the peak memory of this (client) process and of each worker process.
"""
import argparse
import math
import resource
import time

import numpy as np

N_FEATURES = 256
N_CLASSES = 4
TEACHER_WIDTH = 16


def teacher(seed):
    """The fixed random network that labels the data."""
    rng = np.random.default_rng([seed, 99])
    W1 = (rng.standard_normal((N_FEATURES, TEACHER_WIDTH)) / math.sqrt(N_FEATURES))
    W2 = rng.standard_normal((TEACHER_WIDTH, N_CLASSES))
    return W1.astype(np.float32), W2.astype(np.float32)


def make_block(seed, part, index, rows):
    """Rows ``(X, y)`` of block ``index`` of data set ``part`` (0 train, 1 test, 2 search),
    from a generator seeded by all three: any worker makes the same block."""
    rng = np.random.default_rng([seed, part, index])
    X = rng.standard_normal((rows, N_FEATURES), dtype=np.float32)
    W1, W2 = teacher(seed)
    y = np.argmax(np.tanh(X @ W1) @ W2, axis=1)
    return X, y


def dask_dataset(seed, part, n_blocks, rows):
    """Lazy dask arrays X (n_blocks * rows, N_FEATURES) float32 and y, one task per block."""
    import dask
    import dask.array as da

    xs, ys = [], []
    for i in range(n_blocks):
        block = dask.delayed(make_block, pure=True, nout=2)(seed, part, i, rows)
        xs.append(da.from_delayed(block[0], shape=(rows, N_FEATURES), dtype=np.float32))
        ys.append(da.from_delayed(block[1], shape=(rows,), dtype=np.int64))
    return da.concatenate(xs), da.concatenate(ys)


def warm_up():
    """Run on each worker first: import fastbp and scikit-learn and fit a tiny model, which
    loads the kernels from Numba's on-disk cache (or compiles them, once per machine)."""
    start = time.perf_counter()
    from fastbp import MLPClassifier

    X, y = make_block(0, 3, 0, 64)
    MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, n_threads=1).fit(X, y).predict(X)
    return time.perf_counter() - start


def peak_rss_gb():
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def main(argv=None):
    """Run the example; returns what it printed as a dict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=2.0,
                        help="size of the training array X in GB (default 2.0)")
    parser.add_argument("--block-mb", type=float, default=64.0,
                        help="about this many MB per block (default 64)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2,
                        help="LocalCluster worker processes, one thread each (default 2)")
    parser.add_argument("--window", type=int, default=0,
                        help="train on this many blocks per Incremental.partial_fit call, which "
                             "bounds the blocks the workers hold (default 0: one "
                             "Incremental.fit over the whole array)")
    parser.add_argument("--search-rows", type=int, default=20_000,
                        help="rows of the in-memory sample for the grid search (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import joblib
    from dask_ml.wrappers import Incremental, ParallelPostFit
    from distributed import Client, LocalCluster
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    from fastbp import MLPClassifier

    start = time.perf_counter()
    rss_imports = peak_rss_gb()
    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
        where = f"the scheduler at {args.scheduler}"
    else:
        # One thread per worker process; dask's nanny already sets OMP_NUM_THREADS,
        # OPENBLAS_NUM_THREADS and MKL_NUM_THREADS to 1 in each worker, and env= adds
        # Numba's, so n workers use n cores and no more.
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               env={"NUMBA_NUM_THREADS": "1"})
        client = Client(cluster)
        where = "a LocalCluster on 127.0.0.1"
    try:
        n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
        threads = sum(client.nthreads().values())
        print(f"cluster: {n_workers} workers, {threads} threads in all, on {where}")
        ready = client.run(warm_up)
        print("workers ready (fastbp imported, kernels loaded) in "
              + ", ".join(f"{v:.1f} s" for v in ready.values()))

        row_bytes = N_FEATURES * np.dtype(np.float32).itemsize
        n_blocks = max(2, round(args.gb * 1e9 / (args.block_mb * 2 ** 20)))
        rows = int(args.gb * 1e9 // (n_blocks * row_bytes))
        X, y = dask_dataset(args.seed, 0, n_blocks, rows)
        X_test, y_test = dask_dataset(args.seed, 1, 2, min(rows, 50_000))
        print(f"training data: {X.shape[0]:,} x {N_FEATURES} float32 = {X.nbytes / 1e9:.2f} GB "
              f"in {n_blocks} blocks of {rows * row_bytes / 1e6:.0f} MB, made on the workers; "
              f"test data: {X_test.shape[0]:,} rows")

        # 1. Distributed grid search on a sample that fits in memory.
        X_small, y_small = make_block(args.seed, 2, 0, args.search_rows)
        base = MLPClassifier(max_iter=10, random_state=args.seed, n_threads=1)
        grid = {"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4, 1e-2],
                "learning_rate_init": [1e-3, 3e-3]}
        t = time.perf_counter()
        with joblib.parallel_backend("dask"):
            search = GridSearchCV(base, grid, cv=3, n_jobs=-1).fit(X_small, y_small)
        t_search = time.perf_counter() - t
        n_fits = len(search.cv_results_["params"]) * 3
        print(f"grid search: {n_fits} fits on {X_small.shape[0]:,} rows in {t_search:.1f} s; "
              f"best {search.best_params_}, cv accuracy {search.best_score_:.3f}")

        # 2. The best configuration trained over the large array, one block at a time.
        model = Incremental(clone(search.best_estimator_), scoring="accuracy",
                            shuffle_blocks=True, random_state=args.seed)
        t = time.perf_counter()
        if args.window:
            # Windows of blocks, one after the other: the workers make (and hold) at most
            # about one window of blocks ahead of the training task.
            step = args.window * rows
            for a in range(0, X.shape[0], step):
                model.partial_fit(X[a:a + step], y[a:a + step], classes=np.arange(N_CLASSES))
            how = f"in windows of {args.window} blocks"
        else:
            model.fit(X, y, classes=np.arange(N_CLASSES))
            how = "in one Incremental.fit"
        t_fit = time.perf_counter() - t
        print(f"incremental training: one pass over {X.shape[0]:,} rows {how}, {t_fit:.1f} s "
              f"({X.shape[0] / t_fit:,.0f} rows/s, data made on the fly included)")

        # 3. Prediction on the workers, block by block.
        t = time.perf_counter()
        acc_inc = float(model.score(X_test, y_test))
        acc_small = float(ParallelPostFit(search.best_estimator_, scoring="accuracy")
                          .score(X_test, y_test))
        t_predict = time.perf_counter() - t
        print(f"test accuracy: {acc_inc:.4f} trained incrementally on {X.shape[0]:,} rows, "
              f"{acc_small:.4f} for the grid search's model ({X_small.shape[0] * 2 // 3:,}"
              f"-row folds, refit on {X_small.shape[0]:,}); predictions {t_predict:.1f} s")

        workers_peak = client.run(peak_rss_gb)
        print(f"peak memory: client process {peak_rss_gb():.2f} GB ({rss_imports:.2f} GB "
              "after its imports); worker processes "
              + ", ".join(f"{v:.2f} GB" for v in workers_peak.values()))
        print(f"total time: {time.perf_counter() - start:.1f} s")
        return {"rows": X.shape[0], "blocks": n_blocks, "t_": model.estimator_.t_,
                "best_params": search.best_params_, "accuracy": acc_inc,
                "accuracy_search_model": acc_small, "client_peak_gb": peak_rss_gb(),
                "worker_peak_gb": list(workers_peak.values())}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
