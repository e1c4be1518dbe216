"""The compiled kernels' cache when fastbp's package directory cannot be written; what import
fastbp loads."""
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import fastbp

from conftest import run_child

# A first fit on the tiny workload; prints the cache hits and misses of the epoch driver.
FIT = """
import numpy as np
import fastbp
from fastbp._variants import kernels
X = np.random.default_rng(0).standard_normal((40, 2))
y = (X[:, 0] > X[:, 1]).astype(float)
net = fastbp.Network([2, 10, 1], activation="sigmoid", output="sigmoid", dtype=np.float64,
                     random_state=0)
net.fit(X, y, epochs=3, batch_size=40, learning_rate=0.5)
assert np.isfinite(net.get_params_vector()).all()
run_epochs = kernels(net._table, net.dtype).run_epochs
print(sum(run_epochs.stats.cache_hits.values()), sum(run_epochs.stats.cache_misses.values()))
"""


def _chmod_tree(root, writable):
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        if writable:
            path.chmod(mode | stat.S_IWUSR)
        else:
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.mark.slow
def test_kernels_cache_in_the_user_cache_directory_when_the_package_is_read_only(tmp_path):
    site = tmp_path / "site"
    package = site / "fastbp"
    shutil.copytree(Path(fastbp.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__", "_variants"))
    # A file where the kernels' __pycache__ folder would go: the in-tree cache cannot be
    # made even by root, whom the read-only permissions below do not stop.
    (package / "_kernels" / "__pycache__").write_text("")
    (package / "_kernels" / "_variants").write_text("")  # (and the kernels' copies' folder)
    _chmod_tree(package, writable=False)
    env = dict(os.environ, PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("NUMBA_CACHE_DIR", None)
    try:
        runs = []
        for _ in range(2):
            done = subprocess.run([sys.executable, "-c", FIT], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
            runs.append(tuple(int(v) for v in done.stdout.split()))
    finally:
        _chmod_tree(package, writable=True)
    (hits1, misses1), (hits2, misses2) = runs
    assert misses1 >= 1 and hits1 == 0  # compiled...
    assert hits2 >= 1 and misses2 == 0  # ...and loaded by the next process
    cached = list((tmp_path / "cache").rglob("*.nbi"))
    assert any(p.name.startswith("epoch.run_epochs") for p in cached)
    assert (package / "_kernels" / "__pycache__").is_file()  # nothing written in the package
    assert (package / "_kernels" / "_variants").is_file()


def test_import_fastbp_leaves_the_heavy_optional_modules_unloaded():
    # (a cold start's import: each of these costs a tenth of a second or more, and only
    # some uses need them, which import them then)
    loaded = run_child("import sys, fastbp\n"
                       "heavy = ['sklearn', 'scipy.special', 'scipy.optimize', 'tqdm', "
                       "'matplotlib', 'torch', 'jax', 'dask']\n"
                       "print(' '.join(m for m in heavy if m in sys.modules))")
    assert loaded == ""
