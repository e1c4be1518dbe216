"""``python -m fastbp compare`` and the peers it runs (``fastbp.peers``).

The command runs in-process on a few rows of the tiny and small workloads; nothing here
asserts a speed, only that the figures are what they say they are.
"""
import json
import math
import time

import numpy as np
import pytest

from fastbp import compare, peers

QUICK = ["--max-samples", "64", "--repeats", "1", "--no-cold-start", "--no-memory",
         "--gemm-size", "64", "--workloads", "tiny,small", "--peers", "numpy"]


def _arg(args, option, value):
    """``args`` with ``option``'s value replaced by ``value``."""
    args = list(args)
    args[args.index(option) + 1] = value
    return args


def test_main_prints_both_tables(capsys):
    assert compare.main(QUICK) == 0
    out = capsys.readouterr().out
    assert "GEMM peak" in out and "JAX sizes its own thread pool" in out
    lines = out.splitlines()
    for name in ("tiny", "small"):
        for library in ("fastbp", "numpy"):
            # one training row and one prediction row each
            assert sum(line.split()[:2] == [name, library] for line in lines) == 2
    assert not any(line.split()[1:2] in (["sklearn"], ["torch"], ["jax"]) for line in lines)
    assert "Cold start" not in out and "Memory" not in out


def test_python_m_fastbp_compare_is_wired(capsys):
    from fastbp.__main__ import main

    assert main(["compare", *QUICK]) == 0
    assert "ms/epoch" in capsys.readouterr().out


def test_json_holds_consistent_figures(tmp_path):
    path = tmp_path / "compare.json"
    assert compare.main(QUICK + ["--json", str(path)]) == 0
    report = json.loads(path.read_text())
    for key in ("settings", "machine", "gemm_peak_gflops", "training", "prediction", "notes",
                "cold_start", "memory"):
        assert key in report, key
    assert report["cold_start"] is None and report["memory"] is None
    assert report["settings"]["peers"] == ["fastbp", "numpy"]
    assert report["settings"]["epochs_per_call"] == {"tiny": 100, "small": 1}
    peak, both = report["gemm_peak_gflops"], report["gemm_peak_gflops_before_after"]
    assert set(peak) == {"float32", "float64"} and all(v > 0 for v in peak.values())
    for dtype in peak:  # the higher of the measurements before and after the workloads
        assert peak[dtype] == max(both["before"][dtype], both["after"][dtype])
    assert report["machine"]["cpu_count"] and report["machine"]["versions"]["numpy"]
    assert "large_fastbp_percent_of_float32_peak" not in report  # no large workload ran

    training = {(r["workload"], r["peer"]): r for r in report["training"]}
    assert set(training) == {(w, p) for w in ("tiny", "small") for p in ("fastbp", "numpy")}
    for (name, library), row in training.items():
        w = peers.workload(name, n_samples=64)
        assert row["samples"] == 64 and row["epochs_per_call"] == compare.EPOCHS_PER_CALL[name]
        per_epoch = float(np.median(row["seconds_per_call"])) / row["epochs_per_call"]
        assert row["seconds_per_epoch"] == pytest.approx(per_epoch, rel=1e-12)
        assert row["ms_per_epoch"] == pytest.approx(1e3 * per_epoch, rel=1e-12)
        assert row["samples_per_second"] == pytest.approx(64 / per_epoch, rel=1e-12)
        assert row["gflops"] == pytest.approx(w.flops_per_sample * 64 / per_epoch / 1e9,
                                              rel=1e-12)
        base = training[(name, "fastbp")]["seconds_per_epoch"]
        assert row["ratio"] == pytest.approx(per_epoch / base, rel=1e-12)
    assert training[("tiny", "fastbp")]["ratio"] == 1.0
    assert training[("small", "fastbp")]["ratio"] == 1.0

    prediction = {(r["workload"], r["peer"]): r for r in report["prediction"]}
    assert set(prediction) == set(training)
    for (name, library), row in prediction.items():
        assert row["samples_per_second"] == pytest.approx(64 / np.median(row["seconds"]))
        fast = prediction[(name, "fastbp")]["samples_per_second"]
        assert row["fastbp_speedup"] == pytest.approx(fast / row["samples_per_second"])
    assert prediction[("tiny", "fastbp")]["fastbp_speedup"] == 1.0


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "ratios.png"
    assert compare.main(QUICK + ["--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("option, value", [("--workloads", "tiny,huge"),
                                           ("--peers", "numpy,torc"),
                                           ("--repeats", "0")])
def test_bad_values_are_argparse_errors(option, value, capsys):
    with pytest.raises(SystemExit) as exc:
        compare.main(_arg(QUICK, option, value))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and repr(value.split(",")[-1]) in err


def test_a_missing_json_folder_is_an_error_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare.main(QUICK + ["--json", str(tmp_path / "nowhere" / "c.json")])
    assert "nowhere" in capsys.readouterr().err


def test_a_missing_peer_is_a_note_not_an_error(monkeypatch, capsys, tmp_path):
    real = peers.installed
    monkeypatch.setattr(peers, "installed", lambda library: library != "torch" and real(library))
    path = tmp_path / "c.json"
    assert compare.main(_arg(QUICK, "--peers", "torch,numpy") + ["--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "torch: not installed (pip install 'fastbp[peers]')" in out
    report = json.loads(path.read_text())
    assert report["settings"]["peers"] == ["fastbp", "numpy"]
    assert report["notes"] == ["torch: not installed (pip install 'fastbp[peers]')"]


def test_warnings_for_openblas_variables_and_a_busy_machine(monkeypatch, capsys):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    monkeypatch.setattr(compare, "_load_average", lambda: 100.0)
    assert compare.main(_arg(QUICK, "--workloads", "tiny")) == 0
    out = capsys.readouterr().out
    assert "warning: OPENBLAS_CORETYPE=Haswell is set" in out
    assert "OPENBLAS_L2_SIZE=" not in out
    assert "load average over the last minute is 100.0" in out


def test_peer_names_are_ordered_and_deduplicated():
    parse = compare._names(compare.PEER_NAMES, "peer", allow_empty=True)
    assert parse("jax, numpy,numpy") == ["numpy", "jax"]
    assert parse("") == []


def test_thread_limits_are_set_and_restored():
    from threadpoolctl import threadpool_info

    from fastbp import network

    before = network._thread_count()
    with compare.thread_limits(1, ["fastbp", "numpy"]):
        assert network._thread_count() == 1
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert network._thread_count() == before


def test_a_short_call_is_timed_after_priming_and_a_long_one_at_once(monkeypatch):
    monkeypatch.setattr(compare, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(compare, "PRIME_SECONDS", 0.02)
    calls = []

    def short():
        calls.append(1)
        time.sleep(0.002)

    seconds = compare._settled_seconds(short)
    # untimed calls for at least PRIME_SECONDS (0.002 s or more each), then the timed one
    assert 2 < len(calls) <= 0.02 / 0.002 + 2
    assert 0.002 <= seconds < 0.02
    monkeypatch.setattr(compare, "PRIME_BELOW_SECONDS", 0.001)
    calls.clear()
    compare._settled_seconds(short)
    assert len(calls) == 1  # longer than PRIME_BELOW_SECONDS: its first call is the timed one


def test_gemm_peak_is_a_rate():
    value = compare.gemm_peak("float32", n=64, repeats=2)
    assert math.isfinite(value) and value > 0


def test_cold_start_with_the_warm_cache():
    seconds, process = compare.cold_start_seconds()
    assert 0 < seconds <= process


@pytest.mark.slow
def test_cold_start_times_has_both_caches():
    result = compare.cold_start_times()
    assert set(result) == {"warm_cache_seconds", "warm_cache_process_seconds",
                           "empty_cache_seconds", "empty_cache_process_seconds"}
    assert all(v > 0 for v in result.values())


def test_fit_memory_traces_fastbp_and_sklearn():
    result = compare.fit_memory(max_samples=256)
    assert result["samples"] == 256 and result["X_bytes"] == 256 * 784 * 4
    assert set(result["peak_bytes"]) == {"fastbp", "sklearn"}
    assert all(v > 0 for v in result["peak_bytes"].values())


def test_workloads_and_their_data():
    w = peers.workload("small")
    assert (w.n_samples, w.n_full, w.batch, w.epochs) == (1437, 1437, 32, 1)
    w = compare._workload("tiny", 64)
    assert (w.n_samples, w.n_full, w.batch, w.epochs) == (64, 800, 64, 100)
    X, y = peers.get_data(w)
    assert X.shape == (64, 2) and X.dtype == np.float64 and set(y) == {0.0, 1.0}
    with pytest.raises(ValueError, match="unknown workload 'huge'"):
        peers.workload("huge")


# ---------------------------------------------------------------------------------------
# The JAX and torch peers take the reference's SGD steps


def _weights(library, peer):
    if library == "torch":
        linear = [m for m in peer.model if hasattr(m, "weight")]
        return ([m.weight.detach().numpy().T for m in linear],
                [m.bias.detach().numpy() for m in linear])
    if library == "jax":
        return [np.asarray(W) for W, _ in peer.params], [np.asarray(b) for _, b in peer.params]
    return peer.coefs, peer.intercepts


@pytest.mark.parametrize("name, n, rtol, atol", [("tiny", 64, 1e-10, 1e-12),
                                                 ("small", 100, 2e-4, 2e-5)])
@pytest.mark.parametrize("library", ["torch", "jax"])
def test_one_epoch_in_a_given_order_matches_the_reference(library, name, n, rtol, atol):
    """From the same weights and visiting the rows in the same order (100 rows of the small
    workload: three batches of 32 and a last one of 4, so JAX's scan and its extra step
    both run), a peer's epoch gives the NumPy reference's weights: float64 to rounding,
    float32 to float32 tolerance against a float64 reference."""
    pytest.importorskip(library)
    w = peers.workload(name, n_samples=n)
    X, y = peers.get_data(w)
    order = np.random.RandomState(1).permutation(n)
    init = peers.initial_weights(w)
    peer = peers.make_peer(library, w, init=init)
    peer.train_in_order(X, y, order)
    expected = peers.make_peer("numpy", w, "float64", init=init)
    expected.train_in_order(X.astype(np.float64), y, order)
    moved = False
    got_all, want_all = sum(_weights(library, peer), []), sum(_weights("numpy", expected), [])
    for got, want, start in zip(got_all, want_all, init[0] + init[1]):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
        moved |= not np.allclose(want, start, rtol=0, atol=1e-6)
    assert moved  # the epoch did change the weights


def test_jax_warm_up_compiles_without_training():
    pytest.importorskip("jax")
    w = peers.workload("small", n_samples=100)
    X, y = peers.get_data(w)
    peer = peers.make_peer("jax", w)
    before = _weights("jax", peer)
    peer.warm_up(X, y)
    for got, want in zip(sum(_weights("jax", peer), []), sum(before, [])):
        np.testing.assert_array_equal(got, want)
    loss = peer.loss_and_gradients(X, y)[0]
    peer.fit_epochs(X, y, 3, learning_rate=0.1)
    assert peer.loss_and_gradients(X, y)[0] < loss



def test_fewer_samples_than_classes_is_an_argparse_error(capsys):
    # (scikit-learn's peer warm-starts on labels that must hold every class)
    with pytest.raises(SystemExit) as exc:
        compare.main(_arg(QUICK, "--max-samples", "9"))
    assert exc.value.code == 2
    assert "at least 10" in capsys.readouterr().err


def test_a_json_write_that_fails_after_the_run_is_one_line(monkeypatch, tmp_path, capsys):
    path = tmp_path / "c.json"

    def full(*args, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compare.json, "dump", full)
    assert compare.main(QUICK + ["--json", str(path)]) == 1
    assert "--json: could not write" in capsys.readouterr().err
