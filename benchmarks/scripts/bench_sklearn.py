"""fastbp's estimators against scikit-learn's, same arguments, same machine, one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/scripts/bench_sklearn.py [--repeats 3]

Times ``fit`` (default arguments but the ones shown) and ``predict`` on load_digits
(hidden (100,), adam) and on a 20,000 x 100 make_classification problem; medians of
the repeats, fits interleaved so both see the same machine load.  The two fits follow
the same trajectory (same initial weights, shuffles and update rule), so the
accuracies printed agree.
"""
import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLP

from fastbp import MLPClassifier as FastMLP


def problems():
    X, y = load_digits(return_X_y=True)
    yield "load_digits (1797 x 64), hidden (100,), adam", X / 16.0, y, dict(hidden_layer_sizes=(100,))
    X, y = make_classification(n_samples=20000, n_features=100, n_informative=30, n_classes=4,
                               random_state=0)
    yield "make_classification (20000 x 100), hidden (100,), adam", X, y, dict(
        hidden_layer_sizes=(100,))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    FastMLP(max_iter=2).fit(*load_digits(return_X_y=True))  # compile or load the kernels
    for name, X, y, kw in problems():
        fit = {"scikit-learn": [], "fastbp": []}
        pred = {"scikit-learn": [], "fastbp": []}
        scores = {}
        for _ in range(args.repeats):
            for label, cls in (("scikit-learn", SkMLP), ("fastbp", FastMLP)):
                time.sleep(0.15)  # each timed call after a moment of quiet (see below)
                t, model = timed(lambda: cls(max_iter=args.max_iter, random_state=0, **kw).fit(X, y))
                fit[label].append(t)
                # Idle threads spin for a while after a call (OpenBLAS's, OpenMP's): a call
                # that follows at once shares the cores with them.
                time.sleep(0.15)
                t, p = timed(lambda: model.predict(X))
                pred[label].append(t)
                scores[label] = (np.mean(p == y), model.n_iter_)
        print(name)
        for label in fit:
            print(f"  {label:13s} fit {np.median(fit[label]):8.3f} s   predict "
                  f"{np.median(pred[label]) * 1e3:8.2f} ms   train accuracy {scores[label][0]:.4f}"
                  f"   epochs {scores[label][1]}")
        print(f"  fit speed-up {np.median(fit['scikit-learn']) / np.median(fit['fastbp']):.1f}x, "
              f"predict speed-up "
              f"{np.median(pred['scikit-learn']) / np.median(pred['fastbp']):.1f}x")


if __name__ == "__main__":
    main()
