"""Which of fastbp's three ways through a dense layer is fastest, by shape: the fused loops,
the register-blocked tiles, BLAS.  One forward layer (product, bias, ReLU) each way.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/scripts/bench_gemm.py [--threads N]

Prints, for each (n_in, n_out, batch), the median time of each, and the work
n_in * n_out * batch that ``fastbp._config.BLAS_MIN_WORK`` compares against; the tiles'
limits are ``TILE_MAX_WEIGHTS`` and ``TILE_MAX_BATCH``.  BLAS runs on ``--threads``
threads (default 1, as the tiles do).
"""
import argparse
import time

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from fastbp._kernels.activations import RELU, bias_activation
from fastbp._kernels.dense import combine_rows
from fastbp._config import TILE_READ_PAST
from fastbp._kernels.tiles import product


@numba.njit(cache=False)
def loops(W, bias, A, Z, n_in, n_out, nb):
    for j in range(n_out):
        z = Z[j * nb:(j + 1) * nb]
        combine_rows(z, W, j, n_out, n_in, A, nb)
        bias_activation(z, bias[j], RELU, z)


@numba.njit(cache=False)
def blas(W, bias, A, Z, n_in, n_out, nb):
    np.dot(W.reshape((n_in, n_out)).T, A[:n_in * nb].reshape((n_in, nb)), Z.reshape((n_out, nb)))
    for j in range(n_out):
        bias_activation(Z[j * nb:(j + 1) * nb], bias[j], RELU, Z[j * nb:(j + 1) * nb])


@numba.njit(cache=False)
def tiles(W, bias, A, Z, n_in, n_out, nb):
    product(n_out, nb, n_in, W, 0, n_out, 1, A, 0, nb, Z, 0, nb)
    for j in range(n_out):
        bias_activation(Z[j * nb:(j + 1) * nb], bias[j], RELU, Z[j * nb:(j + 1) * nb])


def median_time(fn, args, repeats=7):
    fn(*args)
    reps = max(1, int(2e-3 / max(_once(fn, args), 1e-7)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(*args)
        times.append((time.perf_counter() - t0) / reps)
    return float(np.median(times))


def _once(fn, args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    threads = parser.parse_args().threads
    rng = np.random.default_rng(0)
    print(f"{'n_in':>5} {'n_out':>5} {'batch':>5} {'work':>9} {'loops us':>9} {'tiles us':>9} "
          f"{'blas us':>9}  fastest")
    for dtype in (np.float32, np.float64):
        print(dtype.__name__)
        for n_in, n_out, nb in [(2, 10, 800), (10, 1, 800), (16, 16, 32), (64, 128, 32),
                                (128, 64, 32), (64, 10, 32), (64, 100, 200), (100, 10, 200),
                                (32, 32, 128), (128, 128, 64), (784, 256, 128), (256, 128, 128),
                                (128, 10, 128), (64, 64, 64), (256, 128, 64), (784, 256, 64),
                                (512, 512, 64), (256, 256, 32)]:
            W = rng.standard_normal(n_in * n_out).astype(dtype)
            bias = rng.standard_normal(n_out).astype(dtype)
            # (with the values past the end a tile may read, as in the kernels' buffers)
            A = rng.standard_normal(n_in * nb + TILE_READ_PAST).astype(dtype)
            Z = np.empty(n_out * nb, dtype)
            args = (W, bias, A, Z, n_in, n_out, nb)
            with threadpool_limits(threads):
                times = {name: median_time(fn, args)
                         for name, fn in (("loops", loops), ("tiles", tiles), ("blas", blas))}
            print(f"{n_in:5d} {n_out:5d} {nb:5d} {n_in * n_out * nb:9d} "
                  + " ".join(f"{t * 1e6:9.1f}" for t in times.values())
                  + f"  {min(times, key=times.get)}")


if __name__ == "__main__":
    main()
