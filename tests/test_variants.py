"""Kernels compiled for the features a network uses (``fastbp._variants``)."""
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp import _spec, _variants, network
from fastbp._kernels import _features

from conftest import make_data, run_child

KERNELS = Path(_features.__file__).parent


def _table(widths, activation="relu", output="softmax", **kw):
    return _spec.layer_table(widths, _spec.ACTIVATIONS[activation], _spec.OUTPUTS[output],
                             **kw)[0]


def test_features_name_what_the_network_uses():
    f = _variants.features
    assert f(_table([2, 10, 1], output="sigmoid")) == {"WITH_RELU", "WITH_OUT_SIGMOID"}
    # (an identity hidden layer and output need no flag; 8 -> 12 reaches BLAS's width, and
    # is small enough for the tiles too)
    assert f(_table([7, 12, 2], "identity", "identity")) == set()
    assert f(_table([8, 12, 2], "identity", "identity")) == {"WITH_BLAS", "WITH_TILES"}
    # (no layer the tiles take: no tiles; a first layer of more than 2**16 weights, which
    # sliced batches split by its inputs)
    assert f(_table([784, 600, 520], "tanh", "poisson")) == {
        "WITH_TANH", "WITH_OUT_POISSON", "WITH_BLAS", "WITH_SPLIT_FIRST"}
    assert "WITH_SPLIT_FIRST" in f(_table([300, 256, 6, 3]))
    assert "WITH_SPLIT_FIRST" not in f(_table([256, 256, 10]))  # (2**16 weights: not more)
    assert "WITH_SPLIT_FIRST" not in f(_table([48, 4096, 10]))  # (too few inputs to share)
    assert "WITH_SPLIT_FIRST" not in f(_table([784, 256]))  # (no hidden layer)
    assert "WITH_SPLIT_FIRST" not in f(_table([300, 300, 3], residual=True))  # (a shortcut)
    assert f(_table([4, 6, 6, 2], "gelu", "identity")) == {"WITH_GELU", "WITH_KEPT"}
    assert f(_table([4, 6, 6, 2], residual=True)) == {
        "WITH_RELU", "WITH_OUT_SOFTMAX", "WITH_SHORTCUT", "WITH_KEPT"}
    assert f(_table([4, 6, 5, 2], residual=True)) == {"WITH_RELU", "WITH_OUT_SOFTMAX"}
    assert f(_table([4, 6, 2], dropout=True)) == {
        "WITH_RELU", "WITH_OUT_SOFTMAX", "WITH_DROPOUT", "WITH_KEPT"}
    assert f(_table([4, 6, 2], batch_norm=True)) == {"WITH_RELU", "WITH_OUT_SOFTMAX", "WITH_BN"}


def test_every_activation_and_output_has_its_flag_and_every_flag_guards_code():
    # A code without a flag would take no branch in a copy: its layers would be identity.
    for name, code in _spec.ACTIVATIONS.items():
        on = _variants.features(_table([3, 4, 1], name, "identity"))
        assert (name == "identity") == (not on), name
    for name, code in _spec.OUTPUTS.items():
        on = _variants.features(_table([3, 4, 1], "identity", name))
        assert (name == "identity") == (not on), name
    source = "".join((KERNELS / f"{m}.py").read_text() for m in _variants.COPIED)
    for flag in _variants.FLAGS_ORDER:
        assert re.search(rf"\b{flag} and\b", source), flag
    # The modules the copies share read no flag.
    for module in _variants.SHARED:
        assert "_features" not in (KERNELS / f"{module}.py").read_text(), module


def test_a_process_compiles_three_sets_then_every_path(monkeypatch):
    loads = []

    def load(on):
        loads.append(on)
        return ("module", on)

    monkeypatch.setattr(_variants, "_CHOSEN", {})
    monkeypatch.setattr(_variants, "_COMPILED", {})
    monkeypatch.setattr(_variants, "_BY_TABLE", {})
    monkeypatch.setattr(_variants, "load", load)
    monkeypatch.setattr(_variants, "_cached_whole", lambda dtype: False)
    monkeypatch.setattr(_variants, "EXACT_VARIANTS", 3)
    # (hidden layers narrower than BLAS_MIN_WIDTH: the loops only)
    plain = _table([2, 7, 1], output="sigmoid")
    deeper = _table([2, 7, 7, 1], output="sigmoid")  # the same features
    gelu = _table([2, 7, 1], "gelu", "sigmoid")
    both = _table([2, 7, 7, 1], "relu", "sigmoid", batch_norm=True)
    tanh = _table([2, 7, 1], "tanh", "sigmoid")
    pois = _table([2, 7, 1], "tanh", "poisson")
    assert _variants.kernels(plain, np.float64) == ("module", {"WITH_RELU", "WITH_OUT_SIGMOID"})
    assert _variants.kernels(deeper, np.float64) is _variants.kernels(plain, np.float64)
    assert _variants.kernels(both, np.float64)[1] == {"WITH_RELU", "WITH_OUT_SIGMOID", "WITH_BN"}
    assert _variants.kernels(gelu, np.float64)[1] == {"WITH_GELU", "WITH_KEPT", "WITH_OUT_SIGMOID"}
    # A set inside one compiled already: that one.
    small = _table([2, 7, 1], "relu", "sigmoid", batch_norm=True)
    assert _variants.kernels(small, np.float64)[1] == {"WITH_RELU", "WITH_OUT_SIGMOID", "WITH_BN"}
    assert len(loads) == 3
    # A fourth set: every path, which then serves everything new.
    assert _variants.kernels(tanh, np.float64)[1] == _variants.ALL
    assert _variants.kernels(pois, np.float64)[1] == _variants.ALL
    assert len(loads) == 4
    # A table seen before: its module found by the table's bytes, its features not read.
    monkeypatch.setattr(_variants, "features", lambda table: pytest.fail("features read"))
    assert _variants.kernels(plain, np.float64) == ("module", {"WITH_RELU", "WITH_OUT_SIGMOID"})
    assert _variants.kernels(tanh, np.float64)[1] == _variants.ALL


def test_the_packages_own_kernels_when_they_are_cached_for_the_dtype(monkeypatch):
    monkeypatch.setattr(_variants, "_CHOSEN", {})
    monkeypatch.setattr(_variants, "_COMPILED", {})
    monkeypatch.setattr(_variants, "_BY_TABLE", {})
    monkeypatch.setattr(_variants, "load", lambda on: ("module", on))
    monkeypatch.setattr(_variants, "_cached_whole", lambda dtype: dtype == "float32")
    monkeypatch.setattr(_variants, "EXACT_VARIANTS", 3)
    plain = _table([2, 7, 1], output="sigmoid")
    assert _variants.kernels(plain, np.float64)[1] == {"WITH_RELU", "WITH_OUT_SIGMOID"}
    assert _variants.kernels(_table([2, 7, 1], "tanh"), np.float32)[1] == _variants.ALL


@pytest.mark.slow
def test_the_cache_check_reads_numbas_index_of_the_packages_kernels(tmp_path):
    # Empty cache: not cached; after a fit on the package's own kernels (no copies:
    # EXACT_VARIANTS 0), cached for that dtype only, in this process and the next.
    fit = ("import numpy as np, fastbp\n"
           "from fastbp import _variants\n"
           "before = _variants._cached_whole('float64')\n"
           "_variants.EXACT_VARIANTS = 0\n"
           "X = np.random.default_rng(0).standard_normal((40, 2))\n"
           "net = fastbp.Network([2, 7, 1], output='sigmoid', dtype=np.float64, random_state=0)\n"
           "net.fit(X, (X[:, 0] > 0).astype(float), epochs=1)\n"
           "print(before, _variants._cached_whole('float64'), _variants._cached_whole('float32'))")
    assert run_child(fit, NUMBA_CACHE_DIR=str(tmp_path)) == "False True False"
    check = "from fastbp import _variants; print(_variants._cached_whole('float64'))"
    assert run_child(check, NUMBA_CACHE_DIR=str(tmp_path)) == "True"


# (hidden widths reach the tiles and BLAS; each activation and output once; batch norm,
# dropout, shortcuts, L-BFGS's full-data gradient, both dtypes)
CASES = [
    dict(widths=[2, 10, 1], activation="relu", output="sigmoid", dtype=np.float64,
         fit=dict(batch_size=800, learning_rate=0.1, optimizer="sgd")),
    dict(widths=[9, 16, 16, 4], activation="tanh", output="softmax", dtype=np.float32,
         residual=True, dropout=0.2, fit=dict(batch_size=32, optimizer="adam")),
    dict(widths=[6, 12, 3], activation="gelu", output="identity", dtype=np.float64,
         batch_norm=True, fit=dict(batch_size=40, optimizer="adam")),
    dict(widths=[5, 70, 2], activation="elu", output="poisson", dtype=np.float64,
         fit=dict(batch_size=300, learning_rate=0.01, optimizer="sgd")),
    dict(widths=[5, 9, 3], activation="softplus", output="sigmoid", dtype=np.float64,
         fit=dict(optimizer="lbfgs")),
    dict(widths=[5, 9, 9, 2], activation="swish", output="identity", dtype=np.float32,
         residual=True, fit=dict(batch_size=16, optimizer="adam")),
    dict(widths=[5, 9, 2], activation="leaky_relu", output="softmax", dtype=np.float64,
         fit=dict(batch_size=16, optimizer="nesterov")),
    dict(widths=[5, 9, 2], activation="logistic", output="softmax", dtype=np.float32,
         batch_norm=True, fit=dict(batch_size=16, optimizer="adamw")),
]


def _fit(case, X, y, module, monkeypatch):
    monkeypatch.setattr(network, "kernels", lambda table, dtype: module)
    kw = {k: v for k, v in case.items() if k not in ("widths", "fit")}
    net = fastbp.Network(case["widths"], random_state=0, **kw)
    net.fit(X, y, epochs=4, **case["fit"])
    return net.get_params_vector(), net.forward(X)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['activation']}-{c['output']}")
def test_a_copy_trains_as_the_packages_own_kernels(case, monkeypatch):
    # The copy runs the same source, less the branches its network never takes.
    X, y = make_data(300, case["widths"][0], case["widths"][-1], case["output"], seed=1,
                     dtype=case["dtype"])
    table = _table(case["widths"], case["activation"], case["output"],
                   residual=case.get("residual", False), dropout=case.get("dropout", 0) > 0,
                   batch_norm=case.get("batch_norm", False))
    on = _variants.features(table)
    assert on != _variants.ALL
    copy = _variants.load(on)
    assert copy.__name__ != "fastbp._kernels.epoch"
    got = _fit(case, X, y, copy, monkeypatch)
    want = _fit(case, X, y, _variants.load(_variants.ALL), monkeypatch)
    # The same arithmetic, to the last bits: not bit for bit, since the same kernel source
    # compiled in this process and loaded from Numba's cache can differ in its last bits
    # (seen on AMD Zen 5: this logistic-softmax fit's float32 weights 1.2e-7 apart between
    # a process that compiled the package's own kernels and one that loaded them from the
    # cache), so which of the two each side here is depends on the test order.
    # Four epochs of such differences stay within a few dozen ulps; a copy that dropped or
    # changed a step would be orders of magnitude further off.
    rtol, atol = (2e-5, 1e-6) if case["dtype"] == np.float32 else (1e-11, 1e-13)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def test_a_first_fit_compiles_only_the_paths_it_runs(tmp_path):
    # The tiny workload's first fit with an empty cache: no batch normalization, BLAS,
    # tiles, dropout, or activations other than relu (what the copies are for: the fit
    # compiled in less than half the time).  mathfn.exp is the control: the sigmoid loss
    # runs it.
    out = run_child(
        "import numpy as np, fastbp\n"
        "from fastbp._kernels import batchnorm, dropout, mathfn, tiles\n"
        "X = np.random.default_rng(0).standard_normal((800, 2))\n"
        "y = (X[:, 0] > X[:, 1]).astype(float)\n"
        "net = fastbp.Network([2, 10, 1], output='sigmoid', dtype=np.float64, random_state=0)\n"
        "net.fit(X, y, epochs=2, batch_size=800, learning_rate=0.1)\n"
        "fs = [batchnorm.normalize_row, batchnorm.backward, tiles.product, dropout.apply_row,\n"
        "      mathfn.tanh, mathfn.expm1, mathfn.exp]\n"
        "print(' '.join(str(len(f.signatures)) for f in fs))",
        NUMBA_CACHE_DIR=str(tmp_path))
    assert out.split() == ["0"] * 6 + ["1"]


def test_a_first_fit_compiles_each_kernel_it_calls_once(tmp_path):
    # Numba compiles a callee again for each literal constant it is called with
    # (epoch._RUNTIME): a literal 0 as the dropout seed compiled forward_rows twice, 0.5 s
    # of the tiny workload's first fit with an empty cache.
    out = run_child(
        "import collections, numpy as np, fastbp\n"
        "from numba.core import event\n"
        "seen = collections.Counter()\n"
        "class Count(event.Listener):\n"
        "    def on_start(self, ev):\n"
        "        f = ev.data['dispatcher'].py_func\n"
        "        if f.__module__.startswith('fastbp'):\n"
        "            seen[f.__module__.split('.')[-1], f.__qualname__] += 1\n"
        "    def on_end(self, ev):\n"
        "        pass\n"
        "event.register('numba:compile', Count())\n"
        "X = np.random.default_rng(0).standard_normal((800, 2))\n"
        "y = (X[:, 0] > X[:, 1]).astype(float)\n"
        "net = fastbp.Network([2, 10, 1], output='sigmoid', dtype=np.float64, random_state=0)\n"
        "net.fit(X, y, epochs=2, batch_size=800, learning_rate=0.1)\n"
        "print(' '.join(f'{m}.{f}' for (m, f), n in sorted(seen.items()) if n > 1), '|',\n"
        "      seen['epoch', 'forward_rows'], seen['epoch', 'run_epochs'])",
        NUMBA_CACHE_DIR=str(tmp_path))
    assert out.split("|")[0].split() == []
    assert out.split("|")[1].split() == ["1", "1"]


def test_a_fit_that_splits_its_first_layer_runs_kernels_compiled_with_the_split():
    # Kernels without WITH_SPLIT_FIRST would run such a fit unsplit: right, but slower.
    split = 0
    for widths in ([300, 256, 6, 3], [784, 256, 128, 10], [64, 1025, 10], [63, 2000, 5],
                   [256, 256, 10], [128, 513, 4], [4096, 17, 2]):
        net = fastbp.Network(widths)
        for parts, batch in itertools.product((2, 3, 4), (16, 64, 256)):
            if network._first_split(net, parts, batch) > 0:
                split += 1
                assert "WITH_SPLIT_FIRST" in _variants.features(net._table), (widths, batch)
    assert split > 0
