"""Whether cutting each minibatch into one slice per thread pays, by network shape.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/scripts/bench_split.py

For each shape, milliseconds per epoch of ``Network.fit`` (plain SGD, 2 threads) with
the batches cut into two slices, each on its own core with single-threaded BLAS, and
whole, with two-threaded BLAS; medians of interleaved repeats, each call timed as
``python -m fastbp compare`` times its own (after a pause, and after an untimed call when
it is short).  The last column is what fastbp's rules (``_config.SPLIT_MAX_WORK``,
``SPLIT_MIN_TILED_ROWS``) pick: the rules follow from these numbers.
"""
import argparse
from unittest import mock

import numpy as np

import fastbp
from fastbp import network
from fastbp.compare import _settled_seconds

SHAPES = [  # layers, batch, samples, dtype, what it stands for
    ([2, 10, 1], 800, 800, np.float64, "tiny (the article's example)"),
    ([64, 128, 64, 10], 32, 1437, np.float32, "small"),
    ([64, 128, 64, 10], 48, 1437, np.float32, "small, batch 48"),
    ([64, 128, 64, 10], 64, 1437, np.float32, "small, batch 64"),
    ([64, 100, 10], 32, 1797, np.float64, "load_digits, batch 32"),
    ([64, 100, 10], 64, 1797, np.float64, "load_digits, batch 64"),
    ([64, 100, 10], 200, 1797, np.float64, "load_digits, scikit-learn's defaults"),
    ([100, 100, 4], 200, 4000, np.float64, "20,000 x 100 make_classification"),
    ([784, 256, 128, 10], 32, 4096, np.float32, "medium, batch 32"),
    ([784, 256, 128, 10], 128, 4096, np.float32, "medium"),
    ([784, 256, 128, 10], 256, 4096, np.float32, "medium, batch 256"),
    ([784, 512, 512, 10], 128, 4096, np.float32, "wider than medium"),
    ([1024, 1024, 1024, 10], 128, 2048, np.float32, "between medium and large"),
    ([1024, 2048, 2048, 10], 256, 1024, np.float32, "large"),
]


def epoch_ms(net, X, y, batch, epochs):
    # timed as compare times its calls: after a pause, and a short call after an untimed one
    seconds = _settled_seconds(lambda: net.fit(X, y, epochs=epochs, batch_size=batch,
                                               learning_rate=0.01, warm_start=True,
                                               n_threads=2))
    return seconds / epochs * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'layers':>22} {'batch':>5} {'dtype':>7} {'sliced ms':>10} {'whole ms':>9} "
          f"{'speed-up':>8}  {'rule':>6}")
    for layers, batch, n, dtype, label in SHAPES:
        X = rng.standard_normal((n, layers[0])).astype(dtype)
        y = rng.integers(0, layers[-1], n) if layers[-1] > 1 else (X[:, 0] > 0).astype(float)
        output = "softmax" if layers[-1] > 1 else "sigmoid"
        net = fastbp.Network(layers, output=output, dtype=dtype, random_state=0)
        with network._threads(2):
            slices = network._split_parts(net, batch)
        epoch_ms(net, X, y, batch, 1)  # compiles
        epochs = max(1, int(200 / max(epoch_ms(net, X, y, batch, 1), 1e-3)))  # ~0.2 s calls
        times = {"sliced": [], "whole": []}
        for _ in range(args.repeats):
            for kind, parts in (("sliced", 2), ("whole", 1)):
                with mock.patch.object(network, "_split_parts",
                                       lambda net, batch, call_rows=None: parts):
                    times[kind].append(epoch_ms(net, X, y, batch, epochs))
        sliced, whole = (float(np.median(times[k])) for k in ("sliced", "whole"))
        print(f"{str(layers):>22} {batch:5d} {np.dtype(dtype).name:>7} {sliced:10.3f} "
              f"{whole:9.3f} {whole / sliced:7.2f}x  {slices:6d}   {label}")


if __name__ == "__main__":
    main()
