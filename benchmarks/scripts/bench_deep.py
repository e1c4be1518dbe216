"""What the deep-network remedies cost: an epoch of the medium workload with two more hidden
layers of 128 (784-256-128-128-128-10, ReLU, batches of 128, SGD), plain and with each
remedy, interleaved in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/scripts/bench_deep.py [--samples 60000] [--repeats 7]

Prints each variant's median ms per epoch and its ratio to the plain network's median (the
asv suite tracks the same ratio as ``training.DeepRemedyCost``).
"""
import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from benchmarks.training import REMEDIES, deep_network  # noqa: E402
from fastbp.peers import get_data, workload  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    w = workload("medium", n_samples=args.samples)
    X, y = get_data(w)
    nets = {remedy: deep_network(remedy, w) for remedy in REMEDIES}
    for net in nets.values():  # compile or load the kernels
        net.fit(X[:256], y[:256], epochs=1, batch_size=w.batch_size, learning_rate=0.01)
    times = {remedy: [] for remedy in nets}
    for _ in range(args.repeats):
        for remedy, net in nets.items():
            t0 = time.perf_counter()
            net.fit(X, y, epochs=1, batch_size=w.batch_size, learning_rate=0.01,
                    warm_start=True)
            times[remedy].append(time.perf_counter() - t0)
    plain = np.median(times["plain"])
    print(f"784-256-128-128-128-10, {args.samples} samples, batches of {w.batch_size}, "
          f"medians of {args.repeats}")
    for remedy, t in times.items():
        print(f"  {remedy:22s} {np.median(t) * 1e3:9.1f} ms/epoch   {np.median(t) / plain:5.2f}x plain")


if __name__ == "__main__":
    main()
