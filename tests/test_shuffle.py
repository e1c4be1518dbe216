"""Epoch orders drawn in compiled code equal NumPy's RandomState.permutation draws."""
import numpy as np
import pytest

from fastbp.network import _draw_epoch_orders as draw_epoch_orders


def numpy_orders(rng, perm, rows, k):
    out = []
    for _ in range(k):
        perm = perm[rng.permutation(perm.shape[0])]
        out.append(rows[perm])
    return np.array(out), perm


@pytest.mark.parametrize("n", [1, 2, 3, 7, 624, 625, 800, 1437, 100_000])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_same_permutations_and_final_state_as_numpy(n, seed):
    a, b = np.random.RandomState(seed), np.random.RandomState(seed)
    a.randint(7, size=seed % 5)  # start mid-stream
    b.randint(7, size=seed % 5)
    rows = np.arange(n, dtype=np.int64) * 3 + 1
    start = np.random.RandomState(99).permutation(n).astype(np.int64)
    expected, perm_a = numpy_orders(a, start.copy(), rows, 4)
    perm_b = start.copy()
    got = draw_epoch_orders(b, perm_b, rows, 4)
    assert np.array_equal(got, expected)
    assert np.array_equal(perm_b, perm_a)
    assert a.randint(2 ** 31) == b.randint(2 ** 31)  # the generators end in the same state
    assert a.standard_normal() == b.standard_normal()


def test_other_bit_generators_fall_back_to_numpy():
    a = np.random.RandomState(np.random.PCG64(5))
    b = np.random.RandomState(np.random.PCG64(5))
    rows = np.arange(50, dtype=np.int64)
    expected, perm_a = numpy_orders(a, rows.copy(), rows, 3)
    perm_b = rows.copy()
    assert np.array_equal(draw_epoch_orders(b, perm_b, rows, 3), expected)
    assert np.array_equal(perm_b, perm_a)


def test_the_generator_state_copied_from_its_memory_replays_the_same_draws():
    from fastbp import network

    rng = np.random.RandomState(3)
    rng.permutation(10)
    assert network._mt19937_address(rng) is not None  # NumPy's layout, as checked
    saved = network._generator_state(rng)
    assert isinstance(saved, bytes)
    first = rng.permutation(1000)
    network._set_generator_state(rng, saved)
    np.testing.assert_array_equal(rng.permutation(1000), first)
    # a generator NumPy's RandomState drives with another bit generator: get_state's dict
    other = np.random.RandomState(np.random.PCG64(0))
    saved = network._generator_state(other)
    assert isinstance(saved, dict)
    first = other.permutation(50)
    network._set_generator_state(other, saved)
    np.testing.assert_array_equal(other.permutation(50), first)


@pytest.mark.parametrize("use", ["draw", "save", "restore"])
def test_the_copies_of_the_generator_state_wait_for_its_lock(use):
    # NumPy's draws hold the bit generator's lock; the copies read and write the state
    # behind NumPy's back, so they must hold it too: otherwise another thread's draws
    # from the same generator (NumPy's global one, say) are undone and served again.
    import threading
    import time

    from fastbp import network

    rng = np.random.RandomState(4)
    rows = np.arange(100, dtype=np.int64)
    saved = network._generator_state(rng)
    action = {"draw": lambda: draw_epoch_orders(rng, rows.copy(), rows, 3),
              "save": lambda: network._generator_state(rng),
              "restore": lambda: network._set_generator_state(rng, saved)}[use]
    action()  # (compiled or loaded before the clock below starts)
    done = threading.Event()
    with rng._bit_generator.lock:
        worker = threading.Thread(target=lambda: (action(), done.set()))
        worker.start()
        time.sleep(0.2)
        assert not done.is_set()  # waiting for the lock held here
    worker.join(10)
    assert done.is_set()
