"""The asv suite in benchmarks/: every benchmark runs once, at tiny sizes, so the suite cannot
rot silently.  Nothing here asserts a speed."""
import importlib
import inspect
import itertools
import math
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# asv's benchmark names: methods of classes, or module-level functions.
BENCHMARK = re.compile(r"^(time_|timeraw_|peakmem_|mem_|track_)")
ASV_FUNCTION = re.compile(r"^((Time|Timeraw|PeakMem|Mem|Track)[A-Z_].+)|"
                          r"((time|timeraw|peakmem|mem|track)_.+)$")


def _suite_modules():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    package = importlib.import_module("benchmarks")
    assert Path(package.__file__).parent == ROOT / "benchmarks"
    return [importlib.import_module(f"benchmarks.{m.name}")
            for m in pkgutil.iter_modules(package.__path__)]


def _param_lists(cls):
    params = getattr(cls, "params", [])
    if params and not isinstance(params[0], (list, tuple)):
        params = [params]
    return [list(p) for p in params]


def _cases():
    cases = []
    for module in _suite_modules():
        short = module.__name__.split(".", 1)[1]
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            if (inspect.isfunction(obj) and ASV_FUNCTION.match(name)
                    and obj.__module__ == module.__name__):
                cases.append(pytest.param(None, obj, (), id=f"{short}.{name}"))
            if not inspect.isclass(obj) or obj.__module__ != module.__name__:
                continue
            for method in sorted(m for m in dir(obj) if BENCHMARK.match(m)):
                for combo in itertools.product(*_param_lists(obj)):
                    cases.append(pytest.param(obj, method, combo,
                                              id="-".join([f"{short}.{name}.{method}", *combo])))
    return cases


CASES = _cases()
_SETUP_CACHE = {}


@pytest.fixture(autouse=True)
def tiny_profile(monkeypatch):
    monkeypatch.setenv("FASTBP_BENCH_PROFILE", "tiny")


def test_the_suite_has_every_kind_of_benchmark():
    ids = [c.id for c in CASES]
    for kind in ("time_", "timeraw_", "peakmem_", "track_"):
        assert any(f".{kind}" in i for i in ids), kind
    # no helper is mistaken for a benchmark (asv matches function names module-wide)
    assert not [c.id for c in CASES if c.values[0] is None]
    for workload in ("tiny", "small", "medium", "large"):
        assert any(f"training.Epoch.time_epoch-{workload}-" in i for i in ids)


def test_the_plain_scripts_are_out_of_asvs_way():
    # asv imports every module of benchmark_dir's packages; the scripts live in a plain folder
    assert not (ROOT / "benchmarks" / "scripts" / "__init__.py").exists()
    for script in ("bench_seed.py", "bench_gemm.py", "bench_optimizers.py", "bench_sklearn.py",
                   "bench_deep.py", "bench_split.py"):
        assert (ROOT / "benchmarks" / "scripts" / script).is_file()


def test_profiles_and_workloads():
    from benchmarks import common

    for profile in common.PROFILES:
        assert set(common.PROFILES[profile]) == set(common.WORKLOAD_NAMES)
    w = common.workload("medium")
    assert w.n_samples == 128 and w.n_full == 60000 and w.layers == (784, 256, 128, 10)
    # 6P - 2 P_first useful flops per training sample
    P = 784 * 256 + 256 * 128 + 128 * 10
    assert w.flops_per_sample == 6 * P - 2 * 784 * 256
    X, y = common.get_data(w)
    assert X.dtype == np.float32 and X.shape == (128, 784) and set(y) == set(range(10))
    X, y = common.get_data(common.workload("tiny"))
    assert X.dtype == np.float64 and y.dtype == np.float64


def test_unknown_profile_is_refused(monkeypatch):
    from benchmarks import common

    monkeypatch.setenv("FASTBP_BENCH_PROFILE", "huge")
    with pytest.raises(ValueError, match="FASTBP_BENCH_PROFILE"):
        common.workload("tiny")


def _run_raw(code):
    stmt, setup = code if isinstance(code, tuple) else (code, "")
    done = subprocess.run([sys.executable, "-c", setup + "\n" + stmt], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("cls, method, params", CASES)
def test_benchmark_runs_once(cls, method, params):
    if cls is None:  # a module-level benchmark function
        method()
        return
    instance = cls()
    args = []
    if hasattr(instance, "setup_cache"):
        if cls not in _SETUP_CACHE:
            _SETUP_CACHE[cls] = instance.setup_cache()
        args.append(_SETUP_CACHE[cls])
    try:
        if hasattr(instance, "setup"):
            instance.setup(*args, *params)
    except NotImplementedError as exc:  # asv's way to skip: a peer that is not installed
        pytest.skip(str(exc))
    try:
        result = getattr(instance, method)(*args, *params)
        if method.startswith("track_"):
            assert isinstance(result, float) and math.isfinite(result) and result >= 0, result
            assert getattr(cls, "unit", None), "a track_ benchmark needs a unit"
        elif method.startswith("timeraw_"):
            _run_raw(result)
        else:
            assert result is None
        if method.startswith("time_") and hasattr(instance, "timer"):
            t0 = instance.timer()
            assert instance.timer() >= t0
    finally:
        if hasattr(instance, "teardown"):
            instance.teardown(*args, *params)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("name", ["tiny", "small"])
def test_peers_compute_fastbps_loss_and_gradients(name, library):
    """The peers are timed doing the same work as fastbp: from the same weights, the same loss
    and gradient (in float64, so the comparison is tight)."""
    from benchmarks import common, peers

    if not common.installed(library):
        pytest.skip(f"{library} is not installed")
    w = common.workload(name)
    X, y = common.get_data(w, "float64")
    expected = peers.make_peer("fastbp", w, "float64").loss_and_gradients(X, y)
    got = peers.make_peer(library, w, "float64").loss_and_gradients(X, y)
    assert got[0] == pytest.approx(expected[0], rel=1e-9)
    for g_got, g_expected in zip(got[1] + got[2], expected[1] + expected[2]):
        g_got = np.asarray(g_got)
        if library == "torch" and g_got.ndim == 2:  # Linear keeps weights as (out, in)
            g_got = g_got.T
        np.testing.assert_allclose(g_got, g_expected, rtol=1e-7, atol=1e-12)


def test_every_peer_lowers_the_loss():
    """Every installed peer trains: three epochs on the small workload's data lower its loss."""
    from benchmarks import common, peers

    w = common.workload("small")
    X, y = common.get_data(w, "float64")
    for library in common.LIBRARIES:
        if not common.installed(library):
            continue
        peer = peers.make_peer(library, w, "float64")
        before = peers.make_peer("fastbp", w, "float64").loss_and_gradients(X, y)[0]
        peer.fit_epochs(X, y, 3, learning_rate=0.1)
        trained = peers.make_peer("fastbp", w, "float64")
        if library == "sklearn":
            params = peer.clf.coefs_ + peer.clf.intercepts_
        elif library == "torch":
            linear = [m for m in peer.model if hasattr(m, "weight")]
            params = ([m.weight.detach().numpy().T for m in linear]
                      + [m.bias.detach().numpy() for m in linear])
        elif library == "jax":
            params = ([np.asarray(W) for W, _ in peer.params]
                      + [np.asarray(b) for _, b in peer.params])
        elif library == "numpy":
            params = peer.coefs + peer.intercepts
        else:
            params = peer.net.coefs_ + peer.net.intercepts_
        for dst, src in zip(trained.net.coefs_ + trained.net.intercepts_, params):
            dst[...] = src
        after = trained.loss_and_gradients(X, y)[0]
        assert after < before, library
