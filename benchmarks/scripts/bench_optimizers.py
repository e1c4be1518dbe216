"""Cost of each optimizer's epoch against plain SGD's, on a 784-256-128-10 network, batch 128.

    python benchmarks/scripts/bench_optimizers.py [--samples 12800] [--repeats 5]

The update is one fused loop over the flat parameter vector, so Adam should cost
little more than SGD.  Epochs of the optimizers are interleaved, so all see the
same machine load; each figure is the median over the repeats.
"""
import argparse
import time

import numpy as np

import fastbp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12800)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.samples, 784)).astype(np.float32)
    y = rng.integers(0, 10, args.samples)
    names = ["sgd", "momentum", "nesterov", "adam", "adamw"]
    nets = {name: fastbp.Network([784, 256, 128, 10], output="softmax", random_state=0)
            for name in names}
    for name, net in nets.items():  # compile, and set up each optimizer's state
        net.fit(X[:256], y[:256], epochs=1, batch_size=128, optimizer=name, learning_rate=1e-3)
    times = {name: [] for name in names}
    for _ in range(args.repeats):
        for name, net in nets.items():
            t0 = time.perf_counter()
            net.fit(X, y, epochs=1, batch_size=128, optimizer=name, learning_rate=1e-3,
                    warm_start=True)
            times[name].append(time.perf_counter() - t0)
    base = np.median(times["sgd"])
    print(f"784-256-128-10, batch 128, {args.samples} samples, float32, median of {args.repeats}")
    for name in names:
        t = np.median(times[name])
        print(f"  {name:9s} {t * 1e3:8.1f} ms/epoch   {t / base:5.2f}x sgd")


if __name__ == "__main__":
    main()
