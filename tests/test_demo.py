"""The demo, end to end, as a user runs it."""
import subprocess
import sys

import pytest

from fastbp import demo

from conftest import run_child


def test_demo_accuracies():
    X_train, X_test, y_train, y_test = demo.moons_split()
    seed_row = demo.run_seed_example(X_train, y_train, X_test, y_test)
    assert 0.84 <= seed_row["test"] <= 0.90  # the article's about 0.87
    assert seed_row["test"] == seed_row["ref_test"]
    net_row = demo.run_network_example(X_train, y_train, X_test, y_test)
    assert net_row["test"] >= 0.99


@pytest.mark.slow
def test_the_timed_fits_compile_nothing_after_the_warm_up(tmp_path):
    # The demo prints its times with compilation left out: with an empty cache, every kernel
    # the timed fits run (those for their networks' features, the shuffles' kernel) must
    # have been compiled by the warm-up.  (Numba reports compilations, not cache loads:
    # hence the empty cache.)
    code = (
        "from numba.core import event\n"
        "from fastbp import demo\n"
        "demo.warm_up()\n"
        "X_train, X_test, y_train, y_test = demo.moons_split()\n"
        "with event.install_recorder('numba:compile') as rec:\n"
        "    demo.run_seed_example(X_train, y_train, X_test, y_test)\n"
        "    demo.run_network_example(X_train, y_train, X_test, y_test)\n"
        "print(sorted({ev.data['dispatcher'].py_func.__qualname__ for _, ev in rec.buffer}))\n")
    assert run_child(code, NUMBA_CACHE_DIR=str(tmp_path)) == "[]"


@pytest.mark.slow
def test_python_m_fastbp_runs():
    done = subprocess.run([sys.executable, "-m", "fastbp"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "NeuralNetwork(2, 10, 1)" in done.stdout
    assert done.stdout.count("test accuracy") == 4
