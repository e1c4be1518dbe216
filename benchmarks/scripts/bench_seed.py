"""Time NeuralNetwork.train(..., epochs=1000) on the seed article's data against the article's
NumPy code (fastbp.reference.SeedNetwork): median of repeats, one process.

    python benchmarks/scripts/bench_seed.py [--repeats 5]

For a comparison with numpy's BLAS at full speed, unset OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE in the command that runs this script.
"""
import argparse
import time

import numpy as np

from fastbp import NeuralNetwork, reference
from fastbp.demo import moons_split


def time_train(cls, X, y, epochs):
    np.random.seed(0)
    model = cls(2, 10, 1)
    t0 = time.perf_counter()
    model.train(X, y, learning_rate=0.1, epochs=epochs)
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1000)
    args = parser.parse_args()
    X_train, _, y_train, _ = moons_split()
    time_train(NeuralNetwork, X_train, y_train, 1)  # compile or load the kernels
    fast, slow = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        fast.append(time_train(NeuralNetwork, X_train, y_train, args.epochs))
        slow.append(time_train(reference.SeedNetwork, X_train, y_train, args.epochs))
    f, s = np.median(fast), np.median(slow)
    print(f"NeuralNetwork(2, 10, 1).train, {args.epochs} full-batch epochs, 800 samples, "
          f"median of {args.repeats}")
    print(f"  fastbp            {f * 1e3:8.2f} ms  ({f / args.epochs * 1e6:6.1f} us/epoch)")
    print(f"  article's numpy   {s * 1e3:8.2f} ms  ({s / args.epochs * 1e6:6.1f} us/epoch)")
    print(f"  speed-up          {s / f:8.2f}x")


if __name__ == "__main__":
    main()
