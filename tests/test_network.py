"""Network's training against the NumPy reference, on each kernel path and dtype."""
import itertools
import os
import pickle
import types

import numba
import numpy as np
import pytest

import fastbp
from fastbp import _config, network, reference
from fastbp._kernels.dense import use_blas, use_gradient_tiles, use_tiles

from conftest import ACTIVATIONS, OUTPUTS, compiled, make_data, run_child, targets_2d


def reference_fit(net, X, Y, epochs, batch_size, learning_rate, orders):
    coefs = [W.astype(np.float64) for W in net.coefs_]
    intercepts = [b.astype(np.float64) for b in net.intercepts_]
    losses = [reference.sgd_epoch(coefs, intercepts, X, Y, net.activation, net.output,
                                  learning_rate, batch_size, order) for order in orders]
    return coefs, intercepts, losses


def glorot_draws_then_permutations(net, seed, n, epochs):
    """The permutations Network draws: its generator after scikit-learn's init draws."""
    rng = np.random.RandomState(seed)
    for W, b in zip(net.coefs_, net.intercepts_):
        rng.uniform(size=W.shape)
        rng.uniform(size=b.shape)
    orders, order = [], np.arange(n)
    for _ in range(epochs):
        order = order[rng.permutation(n)]  # each epoch permutes the previous order
        orders.append(order)
    return orders


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_sgd_matches_reference_float64(activation, output):
    shape = [4, 9, 7, 3]
    X, y = make_data(50, 4, 3, output, seed=5)
    net = fastbp.Network(shape, activation=activation, output=output, dtype=np.float64,
                         random_state=7)
    orders = glorot_draws_then_permutations(net, 7, 50, 4)
    coefs, intercepts, losses = reference_fit(net, X, targets_2d(y, 3, output), 4, 8, 0.05, orders)
    net.fit(X, y, epochs=4, batch_size=8, learning_rate=0.05)
    for W, W_ref in zip(net.coefs_ + net.intercepts_, coefs + intercepts):
        np.testing.assert_allclose(W, W_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(net.loss_curve_, losses, rtol=1e-10)


def _wrap_run_epochs(monkeypatch, wrapper):
    """Network's kernel calls go through ``wrapper(run_epochs, *args)``."""
    real_kernels = network.kernels

    def kernels(table, dtype):
        real = real_kernels(table, dtype).run_epochs
        return types.SimpleNamespace(run_epochs=lambda *args: wrapper(real, *args))

    monkeypatch.setattr(network, "kernels", kernels)


def _path(a, b, batch):
    if compiled(use_blas)(a, b, batch):
        # (the weight gradient in the tiles, the forward product and the delta in BLAS)
        return "blas+tiles" if compiled(use_gradient_tiles)(a, b, batch) else "blas"
    return "tiles" if compiled(use_tiles)(a, b, batch) else "loops"


# Shapes on each side of the thresholds: each layer's path for the full batches, or for
# their slices when two threads cut them in two (``_config.SPLIT_MAX_WORK``).  The tiles'
# shape leaves edges (widths not multiples of its rows, 4 or 8, batches not of 16) to
# BLAS, and the last batch (5 samples) is narrower than one tile, and too small to be cut.
PATHS = {
    "loops": ([5, 12, 8, 3], 16, ["loops"] * 3),
    "tiles": ([64, 50, 42, 30], 61, ["tiles"] * 3),
    "blas": ([64, 48, 40, 32], 144, ["blas"] * 3),
    "mixed": ([300, 256, 40, 4], 32, [
        "blas+tiles" if _config.TILE_MAX_GRAD_WEIGHTS >= 300 * 256 else "blas", "tiles",
        "loops"]),
}


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["relu", "gelu"])  # gelu keeps its pre-activations
@pytest.mark.parametrize("threads", [1, 2])  # BLAS's and Numba's
def test_kernel_paths_match_reference(path, dtype, activation, threads):
    shape, batch, kinds = path
    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    net = fastbp.Network(shape, activation=activation, output="softmax", dtype=dtype,
                         random_state=2)
    with network._threads(threads):
        parts = network._split_parts(net, batch)
    assert parts == threads  # with two threads, each batch is cut in two slices
    rows = batch // parts
    assert [_path(a, b, rows) for a, b in zip(shape[:-1], shape[1:])] == kinds, \
        "the shape no longer exercises the intended paths"
    X, y = make_data(3 * batch + 5, shape[0], shape[-1], "softmax", seed=1)
    Xr = X.astype(dtype).astype(np.float64)
    orders = [np.arange(len(X))] * 2
    coefs, intercepts, losses = reference_fit(net, Xr, targets_2d(y, shape[-1], "softmax"), 2,
                                              batch, 0.1, orders)
    net.fit(X, y, epochs=2, batch_size=batch, learning_rate=0.1, shuffle=False,
            n_threads=threads)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    for W, W_ref in zip(net.coefs_ + net.intercepts_, coefs + intercepts):
        assert W.dtype == dtype
        np.testing.assert_allclose(W, W_ref, rtol=0, atol=tol)
    np.testing.assert_allclose(
        net.forward(X), reference.predict(coefs, intercepts, Xr, activation, "softmax"), atol=tol)


@pytest.mark.parametrize("threads", [1, 2])
def test_blas_adds_its_weight_gradients_into_zeros_the_call_sets(monkeypatch, threads):
    # Plain SGD leaves zeros in the gradient buffers for BLAS to add into (beta = 1, see
    # optimizers.sgd_update); a call must not rely on what an earlier one, perhaps
    # stopped halfway through a batch, left there.
    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    shape, batch = [300, 256, 40, 4], 144  # the first layer's weight gradient in BLAS
    with network._threads(threads):
        rows = batch // network._split_parts(fastbp.Network(shape), batch)
    assert _path(shape[0], shape[1], rows) == "blas"

    real_run_parts = network._run_parts

    def soiled(parts, args):
        # (before any part starts: a part's own wrapper would soil the buffers under the
        # others' feet)
        args[13][:] = np.nan  # (run_epochs' ``grad`` and ``grads``)
        args[15][:] = np.nan
        return real_run_parts(parts, args)

    monkeypatch.setattr(network, "_run_parts", soiled)
    net = fastbp.Network(shape, activation="relu", output="softmax", dtype=np.float64,
                         random_state=2)
    X, y = make_data(3 * batch + 5, shape[0], shape[-1], "softmax", seed=1)
    coefs, intercepts, _ = reference_fit(net, X, targets_2d(y, shape[-1], "softmax"), 2, batch,
                                         0.1, [np.arange(len(X))] * 2)
    for _ in range(2):  # one call an epoch
        net.fit(X, y, epochs=1, batch_size=batch, learning_rate=0.1, shuffle=False,
                n_threads=threads, warm_start=True)
    for W, W_ref in zip(net.coefs_ + net.intercepts_, coefs + intercepts):
        np.testing.assert_allclose(W, W_ref, rtol=0, atol=1e-10)


def test_batches_are_cut_only_where_the_whole_batch_is_not_needed():
    # Batch normalization needs the whole batch's statistics, dropout its positions; a
    # batch of large layers goes to OpenBLAS's own threads instead (see _config).
    with network._threads(2):
        assert network._split_parts(fastbp.Network([8, 16, 2]), 64) == 2
        assert network._split_parts(fastbp.Network([8, 16, 2]), 15) == 1  # slices under 8 rows
        assert network._split_parts(fastbp.Network([8, 16, 2], batch_norm=True), 64) == 1
        assert network._split_parts(fastbp.Network([8, 16, 2], dropout=0.2), 64) == 1
        assert network._split_parts(fastbp.Network([1024, 2048, 10]), 256) == 1


def test_batches_without_blas_are_cut_only_into_slices_of_the_machines_rows(monkeypatch):
    # Where the cores exchange cache lines slowly (_config.SPLIT_MIN_TILED_ROWS: Intel's),
    # a batch that runs whole on one core without BLAS is cut only into slices of 32 rows
    # or more; a batch with a layer that goes through BLAS is cut as before.
    monkeypatch.setattr(_config, "SPLIT_MIN_TILED_ROWS", 32)
    small, blas = fastbp.Network([64, 128, 64, 10]), fastbp.Network([784, 256, 10])
    with network._threads(2):
        assert network._split_parts(small, 32) == 1
        assert network._split_parts(small, 63) == 1
        assert network._split_parts(small, 64) == 2
        assert network._split_parts(small, 128) == 2  # past TILE_MAX_BATCH: BLAS
        assert network._split_parts(blas, 32) == 2
        assert network._split_parts(fastbp.Network([8, 16, 2]), 48) == 1
    monkeypatch.setattr(_config, "SPLIT_MIN_TILED_ROWS", _config.SPLIT_MIN_ROWS)
    with network._threads(2):
        assert network._split_parts(small, 32) == 2


def test_the_cpu_vendor_is_read_where_linux_names_it(monkeypatch, tmp_path):
    vendor = _config._cpu_vendor()
    assert isinstance(vendor, str)
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            text = info.read()
        assert ("vendor_id\t: " + vendor + "\n") in text if "vendor_id" in text else vendor == ""
    real_open = open

    def missing(path, *args, **kwargs):
        if path == "/proc/cpuinfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", missing)
    assert _config._cpu_vendor() == ""


def test_calls_with_too_little_work_for_the_hand_over_are_not_cut(monkeypatch):
    # Handing the slices to the worker threads costs about 0.14 ms a call: a call
    # with less work than SPLIT_MIN_CALL_WORK runs whole on one thread.
    monkeypatch.setattr(_config, "SPLIT_MIN_CALL_WORK", 2 ** 22)
    net = fastbp.Network([8, 16, 2], output="softmax", dtype=np.float64, random_state=0)
    work = net.get_params_vector().size + _config.SPLIT_ROW_COST  # per row: 178 + 128
    with network._threads(2):
        assert network._split_parts(net, 64) == 2  # (the calls' size unknown)
        assert network._split_parts(net, 64, call_rows=2 ** 22 // work) == 1
        assert network._split_parts(net, 64, call_rows=2 ** 22 // work + 1) == 2
    X, y = make_data(400, 8, 2, "softmax", seed=4)
    parts = []

    def recording(real, *args):
        parts.append(int(args[14]))  # (run_epochs' ``parts``)
        return real(*args)

    _wrap_run_epochs(monkeypatch, recording)
    net.fit(X, y, epochs=1, batch_size=64, n_threads=2)  # 400 rows in the call
    net.fit(X, y, epochs=100, batch_size=64, n_threads=2)  # 100 epochs in one call
    assert parts == [1, 2, 2]


SLICES = """
import numpy as np, numba, fastbp
from fastbp import network
fastbp._config.SPLIT_MIN_CALL_WORK = 0  # (slices even for calls this small)
fastbp._config.SPLIT_MIN_TILED_ROWS = 8  # (and batches this small, on any machine)
assert numba.config.NUMBA_NUM_THREADS == 4
rng = np.random.default_rng(0)
# (the second network's first layer split by its inputs in four, see run_epochs)
for layers, split, tol in (([6, 12, 3], False, 1e-12), ([300, 256, 6, 3], True, 1e-9)):
    X = rng.standard_normal((3 * 64 + 20, layers[0])); y = rng.integers(0, 3, len(X))
    nets = []
    for threads in (1, 4):
        net = fastbp.Network(layers, output="softmax", dtype=np.float64, random_state=0)
        with network._threads(threads):
            assert network._split_parts(net, 64) == threads
        assert (network._first_split(net, threads, 64) > 0) == (split and threads == 4)
        net.fit(X, y, epochs=3, batch_size=64, optimizer="adam", learning_rate=0.01,
                n_threads=threads)
        nets.append(net)
    np.testing.assert_allclose(nets[0].get_params_vector(), nets[1].get_params_vector(),
                               rtol=0, atol=tol)
    np.testing.assert_allclose(nets[0].loss_curve_, nets[1].loss_curve_, rtol=tol)
print("ok")
"""


def test_four_slices_and_a_last_batch_cut_in_fewer_equal_one_thread():
    # Four threads (more than this machine may have: only the sums' order changes):
    # batches of 64 in four slices of 16, the last batch of 20 rows in two of 10; a first
    # layer split by its inputs in four, except in that last batch.
    assert run_child(SLICES, NUMBA_NUM_THREADS="4") == "ok"


FORKED = """
import multiprocessing, numpy as np, fastbp
from fastbp import network
fastbp._config.SPLIT_MIN_CALL_WORK = 0  # (slices even for calls this small)
fastbp._config.SPLIT_MIN_TILED_ROWS = 8  # (and batches this small, on any machine)

def fit(_):
    X = np.random.default_rng(1).standard_normal((64, 4)); y = (X[:, 0] > 0).astype(float)
    net = fastbp.Network([4, 8, 1], output="sigmoid", dtype=np.float64, random_state=0)
    net.fit(X, y, epochs=2, batch_size=32, n_threads=2)
    return network._split_parts(net, 32), net.get_params_vector().tolist()

if __name__ == "__main__":
    here = fit(None)
    assert here[0] == 2 and network._WORKERS["threads"]  # slices ran here
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.map(fit, [0], chunksize=1)[0]
    print(child[0], child[1] == here[1])
"""


def test_a_forked_child_trains_with_slices():
    # The parent's worker threads are not in a forked child: it starts its own, and
    # trains the same weights.
    assert run_child(FORKED) == "2 True"


CONCURRENT = """
import threading, numpy as np, fastbp
from fastbp import network
fastbp._config.SPLIT_MIN_CALL_WORK = 0  # (slices even for calls this small)
fastbp._config.SPLIT_MIN_TILED_ROWS = 8  # (and batches this small, on any machine)
X = np.random.default_rng(2).standard_normal((256, 6)); y = (X[:, 0] > 0).astype(float)

def fit(seed, out):
    net = fastbp.Network([6, 16, 1], output="sigmoid", dtype=np.float64, random_state=seed)
    # (a callback: one kernel call per epoch, 30 calls per fit to interleave)
    net.fit(X, y, epochs=30, batch_size=64, n_threads=4, callbacks=[lambda e, m: None])
    out[seed] = net.get_params_vector()

alone, together = {}, {}
for s in range(4):
    fit(s, alone)
threads = [threading.Thread(target=fit, args=(s, together)) for s in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert network._split_parts(fastbp.Network([6, 16, 1]), 64) == 4
print(all(np.array_equal(alone[s], together[s]) for s in range(4)))
"""


def test_sliced_fits_in_several_threads_equal_fits_one_after_another():
    # Four fits at once, each cutting its batches in four slices (three worker threads
    # each, shared by the four): the weights are those of the same fits run one after
    # another.  (The calls take turns on the workers: see the next test.)
    assert run_child(CONCURRENT, timeout=300, NUMBA_NUM_THREADS="4") == "True"


def test_a_failing_part_releases_the_others_and_keeps_the_weights(monkeypatch):
    # A part that fails sets the abort flag: the other parts leave their barrier, the
    # error reaches the caller, the weights are those from before the call, and the
    # next fit trains as usual.
    X, y = make_data(200, 5, 3, "softmax", seed=3)
    net = fastbp.Network([5, 12, 3], output="softmax", dtype=np.float64, random_state=0)
    net.fit(X, y, epochs=1, batch_size=64, n_threads=2)
    before = net.get_params_vector().copy()
    locked = []

    def failing(real, *args):
        # Sliced calls hold the workers' lock: two calls sharing the workers could each
        # wait for parts queued behind the other's, for ever.
        locked.append(network._WORKERS_LOCK.locked())
        if args[-3] == 1:
            raise RuntimeError("part 1 failed")
        return real(*args)

    real_kernels = network.kernels
    _wrap_run_epochs(monkeypatch, failing)
    with pytest.raises(RuntimeError, match="part 1 failed"):
        net.fit(X, y, epochs=3, batch_size=64, n_threads=2, warm_start=True)
    np.testing.assert_array_equal(net.get_params_vector(), before)
    assert locked == [True, True]
    monkeypatch.setattr(network, "kernels", real_kernels)
    net.fit(X, y, epochs=3, batch_size=64, n_threads=2, warm_start=True)
    assert net.n_iter_ == 4 and np.isfinite(net.get_params_vector()).all()


def test_each_part_runs_on_its_own_cpu_and_the_callers_cpus_come_back(monkeypatch):
    # The parts spin at their barriers: two on one CPU would wait for the balancer.
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("needs two CPUs")
    X, y = make_data(200, 5, 3, "softmax", seed=3)
    net = fastbp.Network([5, 12, 3], output="softmax", dtype=np.float64, random_state=0)
    seen = {}

    def recording(real, *args):
        seen[int(args[-3])] = os.sched_getaffinity(0)
        return real(*args)

    _wrap_run_epochs(monkeypatch, recording)
    net.fit(X, y, epochs=2, batch_size=64, n_threads=2)
    assert sorted(seen) == [0, 1]
    assert all(len(cpus) == 1 for cpus in seen.values()) and seen[0] != seen[1]
    assert os.sched_getaffinity(0) == allowed
    # Fewer CPUs than parts: not pinned (the barrier yields its core instead).
    assert network._Cpus.for_parts(len(allowed) + 1) is None


def test_a_part_keeps_its_cpu_when_free_else_takes_the_first_free(monkeypatch):
    # (the scheduler's choice spreads the processes of a machine; pinning every call to
    # the first CPUs would pile them up there)
    monkeypatch.setattr(network, "_CURRENT_CPU", lambda: 2)
    cpus = network._Cpus([0, 1, 2, 3])
    assert [cpus.take(), cpus.take(), cpus.take()] == [2, 0, 1]
    cpus = network._Cpus([0, 1, 3])  # running on a CPU the thread may not keep
    assert cpus.take() == 0


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_a_timeout_raised_as_a_cpu_call_returns_is_not_taken_for_its_failure(monkeypatch):
    # TimeoutError is an OSError: a signal handler's (no errno), landing as the call
    # returned, was dropped as the call's failure, and the thread was left pinned.
    import errno

    cpus = network._Cpus([0])
    for name, call in [("sched_getaffinity", lambda: network._affinity(cpus)),
                       ("sched_getaffinity", lambda: network._Cpus.for_parts(1)),
                       ("sched_setaffinity", lambda: network._pin(network._Cpus([0]))),
                       ("sched_setaffinity", lambda: network._restore_affinity({0}))]:
        def timeout(*args):
            raise TimeoutError("time limit")

        monkeypatch.setattr(network, "_CURRENT_CPU", lambda: 0)
        monkeypatch.setattr(network.os, name, timeout)
        with pytest.raises(TimeoutError, match="time limit"):
            call()

        def denied(*args):  # (the call's own failure: it has an errno)
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(network.os, name, denied)
        assert call() is None
        monkeypatch.undo()


def test_blas_is_single_threaded_only_while_slices_call_it():
    from threadpoolctl import threadpool_info

    from fastbp._kernels.dense import past_loops, use_blas

    for n_in, n_out, nb in itertools.product([1, 4, 8, 16, 100], [1, 7, 8, 64], [1, 16, 64, 200]):
        assert network._past_loops(n_in, n_out, nb) == compiled(past_loops)(n_in, n_out, nb)
    for n_in, n_out, nb in itertools.product([8, 64, 200], [8, 64, 200], [16, 64, 65, 200]):
        # (BLAS on some batch of at most nb rows: a slice, or the last, shorter one)
        assert network._calls_blas(n_in, n_out, nb) == any(
            compiled(use_blas)(n_in, n_out, rows) for rows in range(1, nb + 1)), (n_in, n_out, nb)
    from fastbp._kernels import blas as kernel_blas

    X, y = make_data(128, 2, 1, "sigmoid", seed=4)
    blas = [i["filepath"] for i in threadpool_info() if i["user_api"] == "blas"]

    def threads():
        # The BLAS the kernels call (NumPy's OpenBLAS), read as the limit sets it; where
        # fastbp cannot reach it directly, every BLAS loaded (threadpoolctl limits them all).
        if kernel_blas.THREADS is not None:
            return [kernel_blas.THREADS[0]()]
        return [i["num_threads"] for i in threadpool_info() if i["filepath"] in blas]

    before = threads()
    # loops; tiles (which cover their own edges); BLAS (more weights than the tiles take)
    for layers, single in (([2, 10, 1], False), ([2, 64, 64, 1], False),
                           ([2, 300, 300, 1], True)):
        seen = []
        net = fastbp.Network(layers, output="sigmoid", dtype=np.float64, random_state=0)
        net.fit(X, y, epochs=1, batch_size=64, n_threads=2,
                callbacks=[lambda e, m: seen.append(threads())])
        # (n_threads=2 sets BLAS to 2 threads for the fit, the slices' limit to 1 within)
        assert seen == [[1 if single else 2] * len(threads())], layers
        assert threads() == before  # put back after the fit


def test_overlapping_single_threaded_blas_blocks_put_the_count_back_once():
    from fastbp._kernels import blas as kernel_blas

    if kernel_blas.THREADS is None:
        pytest.skip("NumPy's BLAS has no OpenBLAS thread functions here (threadpoolctl path)")
    get, put = kernel_blas.THREADS
    before = get()
    try:
        put(2)
        first = network._single_threaded_blas(True)
        second = network._single_threaded_blas(True)
        first.__enter__()
        second.__enter__()  # (another fit's block opens while the first is open)
        assert get() == 1
        first.__exit__(None, None, None)
        assert get() == 1  # the second block's slices still run
        second.__exit__(None, None, None)
        assert get() == 2
    finally:
        put(before)


def test_a_timeout_landing_in_the_blas_blocks_leaves_the_thread_counts_as_they_were(
        monkeypatch):
    # A signal handler's exception lands as a call returns: here just after OpenBLAS's
    # count was set to one thread, and just after the first attempt to put it back.  A
    # count of open blocks, raised or left off by such an exception, left OpenBLAS on one
    # thread for the rest of the process (or fastbp's limit on n_threads).
    from fastbp._kernels import blas as kernel_blas

    count = [4]
    trips = []

    def get():
        return count[0]

    def put(n):
        count[0] = n
        if n in trips:
            trips.remove(n)
            raise TimeoutError("time limit")

    monkeypatch.setattr(kernel_blas, "THREADS", (get, put))
    for trip in ([1], [4], [1, 4]):
        trips[:] = trip
        block = network._single_threaded_blas(True)
        with pytest.raises(TimeoutError):
            with block:
                assert count[0] == 1
        assert count[0] == 4 and not trips and not network._ONE_THREAD["blocks"], trip
    # An error that comes back at every try is raised, not looped on.
    trips[:] = [4] * (network._RETRIES + 1)
    with pytest.raises(TimeoutError):
        with network._single_threaded_blas(True):
            pass
    assert trips == [4] and not network._ONE_THREAD["blocks"]

    class Limiter:  # (threadpoolctl's, restoring its libraries' counts)
        def restore_original_limits(self):
            put(4)

    class Controller:
        def limit(self, limits):
            put(limits)
            return Limiter()

    # (not inside threadpoolctl's limit, whose limiter such an exception would lose: the
    # one window left, where the fit's n_threads would stay BLAS's count)
    monkeypatch.setattr(network, "_controller", lambda: Controller())
    for trip in ([4],):
        trips[:] = trip
        with pytest.raises(TimeoutError):
            with network._blas_limit(2):
                assert count[0] == 2
        assert count[0] == 4 and not trips and network._BLAS[1] is None, trip
        assert not network._BLAS[0]


def test_numbas_thread_count_is_respected_when_the_program_sets_it():
    import numba

    net = fastbp.Network([8, 16, 2])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert network._split_parts(net, 64) == 1
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        assert network._split_parts(net, 64) == numba.get_num_threads()
    finally:
        numba.set_num_threads(before)


def test_float32_stays_float32():
    X, y = make_data(40, 3, 2, "identity", dtype=np.float64)
    net = fastbp.Network([3, 5, 2], random_state=0)
    assert net.dtype == np.float32
    net.fit(X, y, epochs=2)
    assert all(a.dtype == np.float32 for a in net.coefs_ + net.intercepts_)
    assert net.forward(X).dtype == np.float32
    _, gW, gb = net.loss_and_gradients(X, y)
    assert all(g.dtype == np.float32 for g in gW + gb)


def test_parameters_are_views_of_one_vector():
    net = fastbp.Network([3, 4, 2], dtype=np.float64, random_state=0)
    base = net._params
    assert all(np.shares_memory(a, base) for a in net.coefs_ + net.intercepts_)
    X = np.ones((2, 3))
    before = net.forward(X)
    net.intercepts_[-1][:] += 1.0
    np.testing.assert_allclose(net.forward(X), before + 1.0)


def test_assigning_to_the_lists_of_views_writes_the_parameters():
    import copy

    net = fastbp.Network([3, 4, 2], batch_norm=True, random_state=0)
    X = np.ones((2, 3))
    net.coefs_[1] = np.zeros((4, 2))  # an item, as in scikit-learn: written into the vector
    net.intercepts_[-1] = [1.0, 2.0]
    np.testing.assert_array_equal(net.forward(X), [[1.0, 2.0], [1.0, 2.0]])
    net.scales_ = [np.full(4, 2.0)]  # a whole list
    net.running_vars_[0] = np.full(4, 3.0)
    assert np.all(net.scales_[0] == 2.0) and np.all(net._stats[4:] == 3.0)
    vector = net.get_params_vector()
    for bad, exc, match in [
            (lambda: net.coefs_.__setitem__(0, np.zeros((3, 5))), ValueError, "shape"),
            (lambda: net.coefs_.__setitem__(0, np.full((3, 4), np.nan)), ValueError, "NaN"),
            (lambda: net.coefs_.__setitem__(slice(0, 2), [np.ones((3, 4)), np.zeros(2)]),
             ValueError, "shape"),
            (lambda: net.intercepts_.__setitem__(0, "abc"), TypeError, "numeric"),
            (lambda: setattr(net, "coefs_", [np.ones((3, 4))]), ValueError, "hold 2 arrays"),
            (lambda: net.coefs_.append(np.ones((4, 2))), TypeError, "one array per layer"),
            (lambda: net.coefs_.pop(), TypeError, "one array per layer")]:
        with pytest.raises(exc, match=match):
            bad()
        np.testing.assert_array_equal(net.get_params_vector(), vector)  # nothing half-written
    for copied in (pickle.loads(pickle.dumps(net.coefs_)), copy.deepcopy(net.coefs_)):
        assert type(copied) is list and not np.shares_memory(copied[0], net._params)
        np.testing.assert_array_equal(copied[1], net.coefs_[1])
    nn = fastbp.NeuralNetwork(3, 4, 1)
    with pytest.raises(ValueError, match="W1 contains NaN"):
        nn.W1 = np.full((3, 4), np.nan)


def test_same_random_state_gives_identical_weights():
    X, y = make_data(60, 3, 1, "sigmoid")
    a = fastbp.Network([3, 6, 1], output="sigmoid", random_state=11).fit(X, y, epochs=5)
    b = fastbp.Network([3, 6, 1], output="sigmoid", random_state=11).fit(X, y, epochs=5)
    c = fastbp.Network([3, 6, 1], output="sigmoid", random_state=12).fit(X, y, epochs=5)
    assert np.array_equal(a.get_params_vector(), b.get_params_vector())
    assert not np.array_equal(a.get_params_vector(), c.get_params_vector())


def test_initialisation_follows_scikit_learn_glorot():
    for activation, factor in (("relu", 6.0), ("logistic", 2.0)):
        net = fastbp.Network([30, 20, 4], activation=activation, dtype=np.float64, random_state=0)
        rng = np.random.RandomState(0)
        for W, b in zip(net.coefs_, net.intercepts_):
            bound = np.sqrt(factor / sum(W.shape))
            np.testing.assert_array_equal(W, rng.uniform(-bound, bound, W.shape))
            np.testing.assert_array_equal(b, rng.uniform(-bound, bound, b.shape))


def test_softmax_accepts_indices_or_one_hot():
    X, y = make_data(30, 3, 4, "softmax")
    a = fastbp.Network([3, 5, 4], output="softmax", dtype=np.float64, random_state=0)
    b = fastbp.Network([3, 5, 4], output="softmax", dtype=np.float64, random_state=0)
    a.fit(X, y, epochs=3)
    b.fit(X, reference.one_hot(y, 4), epochs=3)
    np.testing.assert_array_equal(a.get_params_vector(), b.get_params_vector())


def test_predict_shapes_and_values():
    X, y = make_data(20, 3, 4, "softmax")
    soft = fastbp.Network([3, 5, 4], output="softmax", random_state=0)
    proba = soft.predict_proba(X)
    assert proba.shape == (20, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(soft.predict(X), proba.argmax(axis=1))

    binary = fastbp.Network([3, 5, 1], output="sigmoid", random_state=0)
    p = binary.predict_proba(X)
    assert p.shape == (20, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(binary.predict(X), (p[:, 1] > 0.5).astype(int))
    assert binary.predict(X).shape == (20,)

    multilabel = fastbp.Network([3, 5, 3], output="sigmoid", random_state=0)
    assert multilabel.predict(X).shape == (20, 3)
    assert multilabel.predict_proba(X).shape == (20, 3)

    regressor = fastbp.Network([3, 5, 2], random_state=0)
    assert regressor.predict(X).shape == (20, 2)
    with pytest.raises(ValueError, match="predict_proba"):
        regressor.predict_proba(X)


def test_predictions_do_not_depend_on_chunking(monkeypatch):
    X, _ = make_data(50, 6, 3, "softmax")
    net = fastbp.Network([6, 80, 3], output="softmax", dtype=np.float64, random_state=0)
    whole = net.forward(X)
    monkeypatch.setattr(_config, "FORWARD_CHUNK", 7)
    np.testing.assert_allclose(net.forward(X), whole, rtol=1e-12)
    np.testing.assert_allclose(net.forward(X[10:13]), whole[10:13], rtol=1e-12)


def test_gradient_does_not_depend_on_chunking(monkeypatch):
    X, y = make_data(50, 4, 2, "identity")
    net = fastbp.Network([4, 6, 2], dtype=np.float64, random_state=0)
    loss, gW, _ = net.loss_and_gradients(X, y)
    monkeypatch.setattr(_config, "FORWARD_CHUNK", 8)
    loss2, gW2, _ = net.loss_and_gradients(X, y)
    assert loss2 == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(gW2[0], gW[0], rtol=1e-10)


def test_pickle_round_trip_keeps_views():
    X, y = make_data(20, 3, 1, "sigmoid")
    net = fastbp.Network([3, 4, 1], output="sigmoid", random_state=0).fit(X, y, epochs=2)
    clone = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(clone.forward(X), net.forward(X))
    assert all(np.shares_memory(a, clone._params) for a in clone.coefs_ + clone.intercepts_)
    clone.fit(X, y, epochs=1)
    assert not np.array_equal(clone.get_params_vector(), net.get_params_vector())


def test_divergence_raises_and_restores_finite_weights():
    X, y = make_data(64, 3, 1, "identity")
    X *= 100
    net = fastbp.Network([3, 16, 16, 1], dtype=np.float64, random_state=0)
    with pytest.raises(fastbp.DivergenceError, match="learning rate"):
        net.fit(X, y, epochs=50, learning_rate=10.0)
    assert np.isfinite(net.get_params_vector()).all()
    assert np.isfinite(net.forward(X)).all()


def test_training_reduces_loss():
    X, y = make_data(200, 4, 3, "softmax")
    net = fastbp.Network([4, 16, 3], output="softmax", random_state=0)
    before = net.loss_and_gradients(X, y)[0]
    net.fit(X, y, epochs=30, learning_rate=0.1)
    assert net.loss_and_gradients(X, y)[0] < before
    assert len(net.loss_curve_) == 30
    assert net.loss_curve_[-1] < net.loss_curve_[0]


RESIDUAL_PATHS = {
    "loops": ([6, 6, 6, 2], 16),
    "tiles": ([32, 32, 32, 4], 64),
    "blas": ([32, 32, 32, 4], 72),       # the first layer reads gathered rows and adds them
}


@pytest.mark.parametrize("path", RESIDUAL_PATHS.values(), ids=RESIDUAL_PATHS.keys())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_residual_training_matches_reference(path, dtype, activation):
    shape, batch = path
    X, y = make_data(3 * batch + 5, shape[0], shape[-1], "softmax", seed=4)
    net = fastbp.Network(shape, activation=activation, output="softmax", dtype=dtype,
                         random_state=2, residual=True)
    Xr = X.astype(dtype).astype(np.float64)
    coefs = [W.astype(np.float64) for W in net.coefs_]
    intercepts = [b.astype(np.float64) for b in net.intercepts_]
    Y = targets_2d(y, shape[-1], "softmax")
    for _ in range(2):
        reference.sgd_epoch(coefs, intercepts, Xr, Y, activation, "softmax", 0.1, batch,
                            np.arange(len(X)), residual=True)
    net.fit(X, y, epochs=2, batch_size=batch, learning_rate=0.1, shuffle=False)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    for W, W_ref in zip(net.coefs_ + net.intercepts_, coefs + intercepts):
        np.testing.assert_allclose(W, W_ref, rtol=0, atol=tol)
    expected = reference.predict(coefs, intercepts, Xr, activation, "softmax", residual=True)
    np.testing.assert_allclose(net.forward(X), expected, atol=tol)


def test_residual_changes_the_function_and_survives_save_and_pickle(tmp_path):
    X, y = make_data(30, 8, 3, "softmax")
    plain = fastbp.Network([8, 8, 8, 3], output="softmax", random_state=0)
    res = fastbp.Network([8, 8, 8, 3], output="softmax", random_state=0, residual=True)
    assert not np.allclose(plain.forward(X), res.forward(X))
    assert "residual=True" in repr(res)
    res.fit(X, y, epochs=3)
    res.save(tmp_path / "r.npz")
    loaded = fastbp.load(tmp_path / "r.npz")
    assert loaded.residual and np.array_equal(loaded.forward(X), res.forward(X))
    again = pickle.loads(pickle.dumps(res))
    assert np.array_equal(again.forward(X), res.forward(X))
    with pytest.raises(TypeError, match="residual"):
        fastbp.Network([8, 8, 3], residual="yes")


def test_n_threads_above_the_process_ceiling_is_capped_as_in_a_joblib_worker():
    # joblib's workers set NUMBA_NUM_THREADS to their share of the cores: an estimator that
    # fits serially with n_threads=2 must fit there too (with at most that many threads)
    code = ("import numpy as np, fastbp\n"
            "from fastbp import network\n"
            "X = np.random.default_rng(0).standard_normal((64, 3)); y = (X[:, 0] > 0) * 1\n"
            "seen = []\n"
            "look = lambda epoch, metrics: seen.append(network._thread_count())\n"
            "fastbp.Network([3, 4, 1], output='sigmoid').fit(X, y, epochs=2, n_threads=2,\n"
            "                                               callbacks=[look])\n"
            "asked, threads = network._threads, []\n"
            "network._threads = lambda n: threads.append(n) or asked(n)\n"
            "clf = fastbp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, n_threads=2)\n"
            "import warnings; warnings.simplefilter('ignore')\n"
            "print(seen, clf.fit(X, y).n_iter_, threads)")
    assert run_child(code, NUMBA_NUM_THREADS="1") == "[1, 1] 3 [1]"


SIGNAL_DURING_SLICES = """
import os, random, signal, threading, time, traceback, warnings
import numpy as np, fastbp
from fastbp import network
warnings.simplefilter("ignore")
armed = [False]
def on_alarm(signum, frame):
    if armed[0]:
        armed[0] = False
        raise TimeoutError("time limit")
signal.signal(signal.SIGALRM, on_alarm)
rng = np.random.RandomState(0)
X = rng.randn(1000, 20).astype(np.float32)
y = (X[:, :3].sum(1) > 0).astype(int) + (X[:, 3] > 1)
net = fastbp.Network([20, 64, 64, 3], output="softmax", random_state=0, dtype=np.float32)
net.fit(X, y, epochs=1, batch_size=64, n_threads=2)
cpus = os.sched_getaffinity(0)
random.seed(0)
for i in range(2000):
    where = "not interrupted"
    try:
        armed[0] = True
        signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0002, 0.01))
        net.fit(X, y, epochs=2, batch_size=64, n_threads=2, warm_start=True,
                callbacks=[lambda e, m: False])  # (one kernel call per epoch)
    except TimeoutError as exc:
        where = "".join(traceback.format_tb(exc.__traceback__)[-3:])
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
    assert os.sched_getaffinity(0) == cpus, (i, where)
    assert np.isfinite(net.get_params_vector()).all(), (i, where)
net.fit(X, y, epochs=2, batch_size=64, n_threads=2, warm_start=True)
print("ok")
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs")
def test_an_exception_from_a_signal_handler_during_a_sliced_fit_releases_every_part():
    # A timeout decorator's SIGALRM, say, whose exception lands anywhere in the sliced
    # call: after the worker's job is queued (the worker must not wait at a barrier for a
    # part that never comes), while the results are collected (a result left unread was
    # taken by the next call, which then returned before its own worker had finished and
    # reported a divergence), or while the caller's CPUs are restored.  Before, the
    # process hung, or was left pinned to one CPU, within a few hundred tries.
    assert run_child(SIGNAL_DURING_SLICES, timeout=900) == "ok"


FORK_DURING_SLICES = """
import os, threading, time
import numpy as np, fastbp
rng = np.random.RandomState(0)
X = rng.randn(1000, 20).astype(np.float32)
y = (X[:, :3].sum(1) > 0).astype(int) + (X[:, 3] > 1)
def net(seed):
    return fastbp.Network([20, 64, 64, 3], output="softmax", random_state=seed, dtype=np.float32)
stop, started = threading.Event(), threading.Event()
def background():
    b = net(5)
    while not stop.is_set():
        b.fit(X, y, epochs=5, batch_size=64, n_threads=2)
        started.set()
threading.Thread(target=background, daemon=True).start()
started.wait()
for i in range(4):
    time.sleep(0.05)
    pid = os.fork()
    if pid == 0:
        net(3).fit(X, y, epochs=2, batch_size=64, n_threads=2)
        os._exit(0)
    deadline = time.time() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, i
            break
        if time.time() > deadline:
            os.kill(pid, 9)
            raise SystemExit(f"child {i} hung")
        time.sleep(0.05)
stop.set()
print("ok")
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_during_another_threads_sliced_fit_can_fit():
    # The child has only the forking thread: the workers' lock, held by the parent's
    # fitting thread, must not be held in the child (every sliced fit there hung).
    assert run_child(FORK_DURING_SLICES, timeout=300) == "ok"


def test_a_fit_in_another_python_thread_limits_blas_as_in_the_main_thread():
    # threadpoolctl lets one thread only change a process-wide OpenBLAS pool; fastbp's
    # limits are process-wide, from whichever thread fits (a threading backend's search).
    import threading

    from threadpoolctl import threadpool_info

    X, y = make_data(600, 20, 3, "softmax", seed=2)

    def fit(out):
        net = fastbp.Network([20, 64, 3], output="softmax", dtype=np.float64, random_state=0)
        net.fit(X, y, epochs=2, batch_size=200, n_threads=1)  # (BLAS: batches over 64 rows)
        out.append(net.get_params_vector())

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    main, other = [], []
    fit(main)
    t = threading.Thread(target=fit, args=(other,))
    t.start()
    t.join()
    np.testing.assert_array_equal(other[0], main[0])
    assert blas_threads() == before
