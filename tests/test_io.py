"""Persistence: ``Network.save`` / ``fastbp.load`` (and pickle) keep everything, bit for bit;
damaged or foreign files raise ValueError; a failed save leaves the old file as it was."""
import json
import os
import pickle
import sys
import warnings
import zipfile
from io import BytesIO

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import io as fio
from fastbp import optim

from conftest import OUTPUTS, make_data

SHAPE = [3, 5, 4]
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw", "lbfgs"]
HISTORY = ("n_iter_", "t_", "best_loss_", "best_validation_score_", "_epoch", "_lr",
           "_no_improvement")


def data(output="softmax", dtype=np.float64, n=30, seed=0):
    X, y = make_data(n, SHAPE[0], SHAPE[-1], output, seed=seed, dtype=dtype)
    return X, y


def trained(output="softmax", dtype=np.float64, epochs=3, **kwargs):
    """A small network after a short fit with validation data (so every history field is set)."""
    X, y = data(output, dtype)
    Xv, yv = data(output, dtype, n=10, seed=1)
    net = fastbp.Network(SHAPE, activation="tanh", output=output, dtype=dtype, random_state=0)
    kwargs = dict(dict(batch_size=8, learning_rate=0.05, optimizer="adam"), **kwargs)
    if kwargs["optimizer"] != "lbfgs":  # (L-BFGS takes neither validation data nor schedules)
        kwargs["validation_data"] = (Xv, yv)
    net.fit(X, y, epochs=epochs, **kwargs)
    return net, X, y


def assert_views(net):
    """coefs_ and intercepts_ are views of ``net._params``: writes to the vector show in them."""
    for a in net.coefs_ + net.intercepts_:
        assert np.shares_memory(a, net._params)
    saved = net._params.copy()
    try:
        net._params[:] = np.arange(net._params.size)
        pieces = []
        for W, b in zip(net.coefs_, net.intercepts_):
            pieces += [W.ravel(), b]
        assert np.array_equal(np.concatenate(pieces), net._params)
    finally:
        net._params[:] = saved


def assert_same_network(a, b):
    """Everything a network is and knows, bit for bit."""
    assert (b.layers, b.activation, b.output, b.dtype, b.init, b.init_scale) == \
        (a.layers, a.activation, a.output, a.dtype, a.init, a.init_scale)
    assert b._params.dtype == a._params.dtype
    assert np.array_equal(a._params, b._params)
    assert len(b.coefs_) == len(a.coefs_) and len(b.intercepts_) == len(a.intercepts_)
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y)
    assert_views(b)
    assert type(b.loss_curve_) is list and type(b.validation_scores_) is list
    assert b.loss_curve_ == a.loss_curve_
    assert b.validation_scores_ == a.validation_scores_
    assert np.array_equal(b.gradient_norms_, a.gradient_norms_)
    assert b.gradient_norms_.shape == (len(a.loss_curve_), len(a.layers) - 1)
    for key in HISTORY:
        assert getattr(b, key) == getattr(a, key), key
        assert type(getattr(b, key)) is type(getattr(a, key)), key
    assert b._optimizer == a._optimizer
    if a._optimizer is None:
        assert b._opt_state is None and b._hyper is None
    else:
        assert b._opt_state.dtype == a._opt_state.dtype
        assert np.array_equal(b._opt_state, a._opt_state)
        assert np.array_equal(b._hyper, a._hyper)
    assert (a._perm is None) == (b._perm is None)
    if a._perm is not None:
        assert np.array_equal(a._perm, b._perm)
    sa, sb = a._rng.get_state(), b._rng.get_state()
    assert np.array_equal(sa[1], sb[1]) and sa[2:] == sb[2:]


def assert_same_predictions(a, b, X):
    assert np.array_equal(a.forward(X), b.forward(X))
    assert np.array_equal(a.predict(X), b.predict(X))


def round_trip(net, path):
    net.save(path)
    return fastbp.load(path)


# -- round trip ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output", OUTPUTS)
def test_round_trip_is_bit_exact(tmp_path, dtype, output):
    net, X, _ = trained(output, dtype)
    assert net.loss_curve_ and net.validation_scores_ and net.best_validation_score_ is not None
    loaded = round_trip(net, tmp_path / "m.npz")
    assert loaded is not net and loaded._params is not net._params
    assert_same_network(net, loaded)
    assert_same_predictions(net, loaded, X)
    if output in ("sigmoid", "softmax"):
        assert np.array_equal(net.predict_proba(X), loaded.predict_proba(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_of_an_unfitted_network(tmp_path, dtype):
    net = fastbp.Network(SHAPE, activation="relu", output="sigmoid", dtype=dtype, random_state=3,
                         init="normal", init_scale=0.2)
    loaded = round_trip(net, str(tmp_path / "m.npz"))  # a str path as well as a Path
    assert loaded._optimizer is None and loaded.n_iter_ == 0 and loaded.loss_curve_ == []
    assert_same_network(net, loaded)
    X, y = data("sigmoid", dtype)
    assert_same_predictions(net, loaded, X)
    # its random state came along: the first fit of each shuffles alike
    for n in (net, loaded):
        n.fit(X, y, epochs=2, batch_size=8, optimizer="adam")
    assert_same_network(net, loaded)


def test_round_trip_after_early_stopping_and_adaptive_schedule(tmp_path):
    X, y = data("identity")
    net = fastbp.Network(SHAPE, output="identity", random_state=0)
    net.fit(X, y, epochs=6, batch_size=8, optimizer="momentum", schedule="adaptive",
            early_stopping=True, n_iter_no_change=2, tol=10.0)
    assert net._lr is not None and net.best_validation_score_ is not None
    assert_same_network(net, round_trip(net, tmp_path / "m.npz"))


def test_network_with_the_global_random_state_round_trips(tmp_path):
    net = fastbp.Network(SHAPE, random_state=None)
    loaded = round_trip(net, tmp_path / "m.npz")
    assert loaded._rng is not np.random.mtrand._rand
    assert_same_network(net, loaded)


def test_a_timeout_while_loading_is_raised_as_it_is(tmp_path, monkeypatch):
    # (a signal handler's TimeoutError says nothing of the file: not "not a readable file")
    path = tmp_path / "m.npz"
    fastbp.Network(SHAPE, random_state=0).save(path)

    def timeout(raw):
        raise TimeoutError("time limit")

    monkeypatch.setattr(fio, "_read_npy", timeout)
    with pytest.raises(TimeoutError, match="time limit"):
        fastbp.load(path)


def test_file_holds_plain_arrays_only(tmp_path):
    net, _, _ = trained()
    net.save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        assert all(name.endswith(".npy") for name in z.namelist())
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        assert {"spec", "params", "loss_curve", "validation_scores", "gradient_norms", "rng_keys",
                "opt_state", "hyper", "perm"} == set(archive.files)
        assert all(archive[name].dtype != object for name in archive.files)
        spec = json.loads(str(archive["spec"]))
    assert spec["format"] == fio.FORMAT and spec["version"] == fio.VERSION


def test_save_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "m.npz"
    first, X, _ = trained(epochs=1)
    first.save(path)
    second, _, _ = trained(epochs=4)
    second.save(path)
    loaded = fastbp.load(path)
    assert_same_network(second, loaded)
    assert os.listdir(tmp_path) == ["m.npz"]


def test_a_compressed_archive_of_the_same_arrays_loads(tmp_path):
    net, X, _ = trained()
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        np.savez_compressed(tmp_path / "c.npz", **{k: archive[k] for k in archive.files})
    assert_same_network(net, fastbp.load(tmp_path / "c.npz"))


# -- training continues exactly -----------------------------------------------------------------

@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_loaded_network_continues_training_exactly(tmp_path, optimizer):
    kwargs = dict(batch_size=8, learning_rate=0.05, optimizer=optimizer, shuffle=True,
                  alpha=1e-3)
    if optimizer != "lbfgs":
        kwargs["schedule"] = "invscaling"
    net, X, y = trained(**kwargs)
    loaded = round_trip(net, tmp_path / "m.npz")
    Xv, yv = data(seed=1, n=10)
    if optimizer != "lbfgs":
        kwargs["validation_data"] = (Xv, yv)
    for n in (net, loaded):
        n.fit(X, y, epochs=4, warm_start=True, **kwargs)
    assert net.n_iter_ > 3
    assert_same_network(net, loaded)
    assert_same_predictions(net, loaded, X)


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_continuing_after_load_is_not_a_fresh_start(tmp_path, optimizer):
    """The optimizer state and the random state matter: dropping them gives other weights,
    so the exact continuation above is a real check."""
    kwargs = dict(batch_size=8, learning_rate=0.05, optimizer=optimizer, shuffle=True)
    net, X, y = trained(**kwargs)
    loaded = round_trip(net, tmp_path / "m.npz")
    fresh_rng = round_trip(net, tmp_path / "m.npz")
    fresh_rng._rng = np.random.RandomState(0)
    fresh_opt = round_trip(net, tmp_path / "m.npz")
    fresh_opt._opt_state[:] = 0
    for n in (net, loaded, fresh_rng, fresh_opt):
        n.fit(X, y, epochs=3, warm_start=True, **kwargs)
    assert np.array_equal(net._params, loaded._params)
    assert not np.array_equal(net._params, fresh_rng._params)
    assert not np.array_equal(net._params, fresh_opt._params)


@pytest.mark.parametrize("schedule", ["cosine", optim.Cosine(t_max=12, min_lr=0.01),
                                      optim.Step(2, 0.5), "invscaling"], ids=repr)
def test_a_warm_start_after_load_takes_the_last_fits_rate_and_schedule(tmp_path, schedule):
    # learning_rate and schedule left out: the last fit's, in the loaded network too
    X, y = data()
    net = fastbp.Network(SHAPE, output="softmax", random_state=3)
    net.fit(X, y, epochs=5, batch_size=8, learning_rate=0.1, schedule=schedule)
    loaded = round_trip(net, tmp_path / "m.npz")
    rates = {}
    for name, n in (("original", net), ("loaded", loaded)):
        rates[name] = []
        n.fit(X, y, epochs=3, batch_size=8, warm_start=True,
              callbacks=[lambda e, m, r=rates[name]: r.append(m["learning_rate"])])
    assert rates["original"] == rates["loaded"] and len(set(rates["loaded"])) > 1
    assert_same_network(net, loaded)


def test_a_schedule_keeps_only_its_parameters_and_an_estimators_network_round_trips(tmp_path):
    X, y = data()
    net = fastbp.Network(SHAPE, output="softmax", random_state=3)
    step = optim.Step(2, 0.5)
    step.note = "an attribute of the user's"  # (not a parameter: not saved, load still works)
    net.fit(X, y, epochs=3, batch_size=8, learning_rate=0.1, schedule=step)
    loaded = round_trip(net, tmp_path / "m.npz")
    assert loaded._fit_choices["schedule"] == optim.Step(2, 0.5)
    # an estimator's network, with scikit-learn's invscaling across warm starts
    clf = fastbp.MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", learning_rate="invscaling",
                               max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # (no warning that the schedule is lost)
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        clf._net.save(tmp_path / "clf.npz")
    again = fastbp.load(tmp_path / "clf.npz")
    for n in (clf._net, again):
        n.fit(X, y, epochs=2, warm_start=True, batch_size=8)
    assert_same_network(clf._net, again)


class _Halving(optim.Schedule):
    def rate(self, lr0, epoch, epochs, samples_seen):
        return lr0 * 0.5 ** epoch


def test_a_schedule_of_the_users_own_is_not_saved_and_says_so(tmp_path):
    X, y = data()
    net = fastbp.Network(SHAPE, output="softmax", random_state=3)
    net.fit(X, y, epochs=3, batch_size=8, learning_rate=0.1, schedule=_Halving())
    with pytest.warns(UserWarning, match="does not keep it"):
        net.save(tmp_path / "m.npz")
    loaded = fastbp.load(tmp_path / "m.npz")
    rates = []
    loaded.fit(X, y, epochs=2, batch_size=8, warm_start=True,
               callbacks=[lambda e, m: rates.append(m["learning_rate"])])
    assert rates == [0.1 * 0.5 ** 2] * 2  # (the current rate, constant)


@pytest.mark.parametrize("random_state", [7, np.random.RandomState(7), None])
def test_random_state_round_trips(tmp_path, random_state):
    net = fastbp.Network(SHAPE, output="softmax", random_state=random_state)
    loaded = round_trip(net, tmp_path / "m.npz")
    if isinstance(random_state, int):
        assert loaded.random_state == random_state
    else:  # (the loaded network's own generator, in the saved state)
        assert loaded.random_state is loaded._rng
        assert np.array_equal(loaded._rng.get_state()[1], net._rng.get_state()[1])


def test_early_stopping_split_continues_exactly(tmp_path):
    X, y = data("sigmoid")
    kwargs = dict(batch_size=8, optimizer="adam", early_stopping=True, validation_fraction=0.2,
                  n_iter_no_change=50)
    net = fastbp.Network(SHAPE, output="sigmoid", random_state=5)
    net.fit(X, y, epochs=3, **kwargs)
    loaded = round_trip(net, tmp_path / "m.npz")
    for n in (net, loaded):
        n.fit(X, y, epochs=3, warm_start=True, **kwargs)
    assert_same_network(net, loaded)


# -- pickle -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pickle_round_trip(dtype):
    net, X, y = trained("softmax", dtype)
    clone = pickle.loads(pickle.dumps(net))
    assert_views(clone)
    assert_same_predictions(net, clone, X)
    assert_same_network(net, clone)
    kwargs = dict(batch_size=8, learning_rate=0.05, optimizer="adam")
    for n in (net, clone):
        n.fit(X, y, epochs=2, warm_start=True, **kwargs)
    assert_same_network(net, clone)


# -- damaged and foreign files ------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    """A trained network, its file and the file's bytes."""
    net, _, _ = trained()
    path = tmp_path / "m.npz"
    net.save(path)
    return net, path, path.read_bytes()


def assert_rejected(path, match=None):
    """``load`` raises ValueError (nothing else), naming the file."""
    with pytest.raises(ValueError, match=match) as info:
        fastbp.load(path)
    assert str(path) in str(info.value)
    return info.value


def write(path, raw):
    path.write_bytes(bytes(raw))
    return path


def test_truncated_files_are_rejected(saved, tmp_path):
    _, _, raw = saved
    n = len(raw)
    for length in sorted({0, 1, 4, 10, 30, n // 4, n // 2, 3 * n // 4, n - 22, n - 1}):
        assert_rejected(write(tmp_path / f"t{length}.npz", raw[:length]))


def test_flipped_bits_are_rejected_or_harmless(saved, tmp_path):
    net, _, raw = saved
    rejected = loaded = 0
    for i, offset in enumerate(np.linspace(0, len(raw) - 1, 40).astype(int)):
        damaged = bytearray(raw)
        damaged[offset] ^= 1 << (i % 8)
        path = write(tmp_path / f"f{offset}.npz", damaged)
        try:
            other = fastbp.load(path)
        except ValueError as exc:
            assert str(path) in str(exc)
            rejected += 1
        else:  # a byte zip does not read (a time stamp, a spare field): nothing changed
            assert_same_network(net, other)
            loaded += 1
    assert rejected + loaded == 40 and rejected >= 30


def test_flipped_bits_in_zip_headers_are_rejected_or_harmless(saved, tmp_path):
    """zipfile reports some damaged header fields with NotImplementedError (compression
    method, version needed) or RuntimeError (encryption flag): load turns them into ValueError."""
    net, _, raw = saved
    headers = [i for i in range(len(raw)) if raw.startswith(b"PK\x03\x04", i)]
    headers += [i for i in range(len(raw)) if raw.startswith(b"PK\x01\x02", i)]
    with zipfile.ZipFile(BytesIO(bytes(raw))) as z:
        assert len(headers) == 2 * len(z.namelist())  # a local and a central header per entry
    for start in headers:
        for field in range(start + 4, start + 12):  # versions, flags, compression method
            for bit in range(8):
                damaged = bytearray(raw)
                damaged[field] ^= 1 << bit
                path = write(tmp_path / "h.npz", damaged)
                try:
                    other = fastbp.load(path)
                except ValueError as exc:
                    assert str(path) in str(exc)
                else:
                    assert_same_network(net, other)


def test_random_bytes_and_text_are_rejected(tmp_path):
    rng = np.random.RandomState(0)
    assert_rejected(write(tmp_path / "random.npz", rng.bytes(3000)))
    assert_rejected(write(tmp_path / "zipish.npz", b"PK\x03\x04" + rng.bytes(3000)))
    (tmp_path / "text.npz").write_text("layers: [3, 5, 4]\nweights: 0.1 0.2 0.3\n")
    assert_rejected(tmp_path / "text.npz")
    assert_rejected(write(tmp_path / "empty.npz", b""))


def test_a_single_npy_array_is_rejected(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(5.0))
    assert_rejected(tmp_path / "a.npy")


def test_an_empty_zip_and_a_zip_of_other_files_are_rejected(tmp_path):
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    assert_rejected(tmp_path / "empty.zip", match="spec")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("spec", json.dumps({"format": fio.FORMAT, "version": fio.VERSION}))
        z.writestr("params", b"\x00" * 8)
    assert_rejected(tmp_path / "other.zip", match="not a .npy array")


def arrays_of(path):
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def rewrite(path, arrays, **changes):
    """``path`` rewritten by ``np.savez`` from ``arrays`` with ``changes`` (None removes)."""
    arrays = dict(arrays, **changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def with_spec(path, arrays, edit):
    spec = json.loads(str(arrays["spec"]))
    edit(spec)
    return rewrite(path, arrays, spec=np.array(json.dumps(spec)))


def test_archive_without_spec_is_rejected(saved, tmp_path):
    _, path, _ = saved
    arrays = arrays_of(path)
    assert_rejected(rewrite(tmp_path / "x.npz", arrays, spec=None), match="no 'spec' entry")
    np.savez(tmp_path / "y.npz", np.arange(3), params=np.zeros(3))
    assert_rejected(tmp_path / "y.npz", match="spec")


@pytest.mark.parametrize("spec, match", [
    (np.array("{not json"), "not JSON"),
    (np.array("[" * 100_000), "not JSON"),  # nesting deeper than the parser's recursion
    (np.array("1" * 5000), "not JSON"),  # an integer past Python's digit limit
    (np.array("[1, 2]"), "format"),
    (np.array(json.dumps({"format": "sklearn.MLP", "version": 1})), "format"),
    (np.array(json.dumps({"version": 1})), "format"),
    (np.array(b"{}"), "text"),
    (np.array(["{}", "{}"]), "text"),
    (np.arange(3), "text"),
])
def test_spec_that_is_not_a_fastbp_spec_is_rejected(saved, tmp_path, spec, match):
    _, path, _ = saved
    assert_rejected(rewrite(tmp_path / "x.npz", arrays_of(path), spec=spec), match=match)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_other_format_versions_are_rejected(saved, tmp_path, version):
    _, path, _ = saved
    arrays = arrays_of(path)
    assert_rejected(with_spec(tmp_path / "x.npz", arrays, lambda s: s.update(version=version)),
                    match="version")


def _set(*keys_and_value):
    *keys, last, value = keys_and_value

    def edit(spec):
        for k in keys:
            spec = spec[k]
        spec[last] = value
    edit.__name__ = f"{'.'.join(map(str, keys + [last]))}={value!r:.20}"
    return edit


def _delete_in(*keys):
    *path, last = keys

    def edit(spec):
        for k in path:
            spec = spec[k]
        del spec[last]
    edit.__name__ = f"no {'.'.join(keys)}"
    return edit


def _delete(key):
    def edit(spec):
        del spec[key]
    edit.__name__ = f"no {key}"
    return edit


@pytest.mark.parametrize("edit", [
    _set("layers", [3, 6, 4]),
    _set("layers", [3, 4]),
    _set("layers", [10 ** 6, 10 ** 6, 4]),  # must not allocate terabytes before checking
    _set("layers", "354"),
    _set("layers", [3, 0, 4]),
    _set("layers", [3, 5.0, 4]),
    _set("layers", [2 ** 62, 6, 4]),  # (no OverflowError: a ValueError as for any bad file)
    _set("dropout_state", [2 ** 63 - 1, 0]),  # (seeds that would overflow int64 in a fit)
    _set("dropout_state", [0, 2 ** 63 - 1]),
    _delete("layers"),
    _set("activation", "mish"),
    _set("output", ["softmax"]),
    _set("dtype", "float16"),
    _set("dtype", "int64"),
    _set("dtype", {"a": 1}),
    _set("init_scale", -1),
    _delete("init"),
    _set("optimizer", "name", "RMSProp"),
    _set("optimizer", "name", ["Adam"]),
    _set("optimizer", "params", [0.9]),
    _set("optimizer", "params", {"beta_1": 2.0}),
    _set("optimizer", "params", {"learning_rate": 0.1}),
    _set("optimizer", "Adam"),
    _delete("optimizer"),
    _set("history", "n_iter_", 2.5),
    _set("history", "n_iter_", -1),
    _set("history", "n_iter_", True),
    _set("history", "t_", "30"),
    _set("history", "_lr", float("nan")),
    _set("history", "_lr", -0.1),
    _set("history", "best_loss_", "low"),
    _set("history", [1, 2]),
    _delete("history"),
    _set("rng", "pos", -1),  # outside 0..624 NumPy's generator reads out of bounds
    _set("rng", "pos", 625),
    _set("rng", "pos", 10 ** 8),
    _set("rng", "pos", 1e400),
    _set("rng", "pos", "3"),
    _set("rng", "has_gauss", 2),
    _set("rng", "cached_gaussian", "x"),
    _set("rng", "cached_gaussian", float("inf")),
    _set("rng", None),
    _delete("rng"),
    _set("random_state", -1),
    _set("random_state", "7"),
    _set("random_state", 2 ** 40),
    _set("fit_choices", [0.1]),
    _set("fit_choices", "learning_rate", -0.1),
    _set("fit_choices", "learning_rate", "fast"),
    _delete_in("fit_choices", "schedule"),
    _set("fit_choices", "schedule", "name", "Warmup"),
    _set("fit_choices", "schedule", "name", "Schedule"),
    _set("fit_choices", "schedule", "params", {"t_max": -3}),
    _set("fit_choices", "schedule", "params", [1]),
], ids=lambda edit: edit.__name__)
def test_spec_fields_that_disagree_are_rejected(saved, tmp_path, edit):
    _, path, _ = saved
    assert_rejected(with_spec(tmp_path / "x.npz", arrays_of(path), edit))


def test_spec_edits_that_agree_still_load(saved, tmp_path):
    """The checks above reject the edit, not the rewriting."""
    net, path, _ = saved
    arrays = arrays_of(path)
    assert_same_network(net, fastbp.load(rewrite(tmp_path / "x.npz", arrays)))
    # files of fastbp before it kept the random_state and the last fit's choices
    old = fastbp.load(with_spec(tmp_path / "old.npz", arrays,
                                lambda spec: [spec.pop("random_state"), spec.pop("fit_choices")]))
    assert not hasattr(old, "_fit_choices")
    loaded = fastbp.load(with_spec(tmp_path / "y.npz", arrays, _set("history", "n_iter_", 99)))
    assert loaded.n_iter_ == 99


@pytest.mark.parametrize("name, make", [
    ("params", lambda a: a[:-1]),
    ("params", lambda a: np.concatenate([a, a])),
    ("params", lambda a: a.reshape(1, -1)),
    ("params", lambda a: a.astype(np.float32)),
    ("params", lambda a: a.astype(np.int64)),
    ("params", lambda a: a.astype(">f8")),
    ("params", lambda a: np.where(np.arange(a.size) == 3, np.nan, a)),
    ("params", lambda a: None),
    ("loss_curve", lambda a: a.astype(np.float32)),
    ("loss_curve", lambda a: a.reshape(1, -1)),
    ("loss_curve", lambda a: None),
    ("validation_scores", lambda a: a.astype(str)),
    ("rng_keys", lambda a: a[:-1]),
    ("rng_keys", lambda a: a.astype(np.int64)),
    ("rng_keys", lambda a: None),
    ("opt_state", lambda a: a[:1]),
    ("opt_state", lambda a: a.astype(np.float32)),
    ("opt_state", lambda a: np.full_like(a, np.inf)),
    ("opt_state", lambda a: None),
    ("hyper", lambda a: a[:-1]),
    ("hyper", lambda a: None),
])
def test_arrays_of_the_wrong_shape_or_dtype_are_rejected(saved, tmp_path, name, make):
    _, path, _ = saved
    arrays = arrays_of(path)
    assert_rejected(rewrite(tmp_path / "x.npz", arrays, **{name: make(arrays[name])}))


def _leave_a_mark(path):
    with open(path, "w") as f:
        f.write("pickle ran code")
    return np.zeros(3)


class Payload:
    """Unpickling it runs ``_leave_a_mark``."""

    def __init__(self, mark):
        self.mark = str(mark)

    def __reduce__(self):
        return _leave_a_mark, (self.mark,)


@pytest.mark.parametrize("entry", ["params", "spec", "extra"])
def test_object_arrays_are_rejected_without_running_code(saved, tmp_path, entry):
    _, path, _ = saved
    mark = tmp_path / "mark.txt"
    payload = np.array([Payload(mark), 1], dtype=object)
    bad = rewrite(tmp_path / "x.npz", arrays_of(path), **{entry: payload})
    assert_rejected(bad, match="object|pickle")
    assert not mark.exists()
    # the payload is armed: unpickling it would have left the mark
    with np.load(bad, allow_pickle=True) as archive:
        archive[entry]
    assert mark.exists()


def test_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "no_folder" / "m.npz")


def test_a_folder_is_not_loaded(tmp_path):
    with pytest.raises(OSError):
        fastbp.load(tmp_path)


# -- atomic save --------------------------------------------------------------------------------

def test_save_into_a_missing_folder_raises(tmp_path):
    net, _, _ = trained()
    with pytest.raises(OSError):
        net.save(tmp_path / "absent" / "m.npz")
    assert os.listdir(tmp_path) == []


def test_save_over_a_folder_raises_and_leaves_it(tmp_path):
    net, _, _ = trained()
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        net.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == ["m.npz"] and os.listdir(tmp_path / "m.npz") == []


def _full_disk_savez(f, **arrays):
    f.write(b"PK\x03\x04 part of an archive")
    raise OSError("No space left on device")


def _full_disk(*args, **kwargs):
    raise OSError("No space left on device")


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("module, name, fail, error", [
    (np, "savez", _full_disk_savez, OSError),
    (os, "replace", _full_disk, OSError),
    (os, "fsync", _full_disk, OSError),
    (np, "savez", _interrupted, KeyboardInterrupt),
])
def test_failed_save_leaves_the_old_file_and_no_temporary(saved, tmp_path, monkeypatch, module,
                                                          name, fail, error):
    net, path, raw = saved
    assert fio.np is np and fio.os is os  # so patching numpy / os patches what save calls
    before = sorted(os.listdir(tmp_path))
    newer, _, _ = trained(epochs=5)
    monkeypatch.setattr(module, name, fail)
    with pytest.raises(error):
        newer.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == raw
    assert sorted(os.listdir(tmp_path)) == before
    assert_same_network(net, fastbp.load(path))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_save_into_a_read_only_folder_raises(saved, tmp_path):
    net, path, raw = saved
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(OSError):
            net.save(tmp_path / "new.npz")
        with pytest.raises(OSError):
            net.save(path)
        assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    finally:
        os.chmod(tmp_path, 0o755)
    assert path.read_bytes() == raw


def test_saved_file_gets_the_mode_a_plain_write_would(tmp_path):
    """Not mkstemp's 0o600: a new file follows the umask, a replaced one keeps its mode."""
    net, _, _ = trained()
    old = os.umask(0o027)
    try:
        net.save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o640
    os.chmod(tmp_path / "m.npz", 0o604)
    net.save(tmp_path / "m.npz")
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o604


def test_save_refuses_an_optimizer_load_cannot_rebuild(tmp_path):
    class MyAdam(optim.Adam):
        pass

    X, y = data()
    net = fastbp.Network(SHAPE, output="softmax", random_state=0)
    net.fit(X, y, epochs=1, optimizer=MyAdam())
    with pytest.raises(ValueError, match="MyAdam") as info:
        net.save(tmp_path / "m.npz")
    assert str(tmp_path / "m.npz") in str(info.value)
    assert os.listdir(tmp_path) == []


def test_save_refuses_a_generator_the_file_cannot_hold(tmp_path):
    X, y = data()
    net = fastbp.Network(SHAPE, output="softmax",
                         random_state=np.random.RandomState(np.random.PCG64(0)))
    net.fit(X, y, epochs=1)
    with pytest.raises(ValueError, match="PCG64.*MT19937"):
        net.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# -- loading touches nothing else ---------------------------------------------------------------

_opened = None  # the paths opened while a test records them
_hook_installed = False


def _record_opens(event, args):
    if _opened is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append((os.fsdecode(args[0]), args[1], args[2]))


def _tree(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, dirs, files in os.walk(folder) for f in files + dirs)


def test_load_reads_only_its_file(saved, tmp_path, monkeypatch):
    global _opened, _hook_installed
    net, path, _ = saved
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _tree(tmp_path), sorted(os.listdir(os.path.dirname(str(tmp_path))))
    if not _hook_installed:
        sys.addaudithook(_record_opens)  # hooks cannot be removed; it records only while set
        _hook_installed = True
    _opened = []
    try:
        loaded = fastbp.load(path)
        opened = list(_opened)
    finally:
        _opened = None
    assert_same_network(net, loaded)
    assert (_tree(tmp_path), sorted(os.listdir(os.path.dirname(str(tmp_path))))) == before
    others = [(p, mode, flags) for p, mode, flags in opened
              if os.path.realpath(p) != os.path.realpath(path)
              and not p.endswith((".py", ".pyc", ".so"))]  # lazy imports (a zip codec)
    assert others == []
    assert all(mode in ("r", "rb", None) for p, mode, _ in opened if p == str(path))


def _adam_saved(tmp_path):
    X, y = make_data(60, 3, 2, "softmax", seed=0)
    net = fastbp.Network([3, 5, 2], output="softmax", random_state=0)
    net.fit(X, y, epochs=2, batch_size=20, optimizer="adam")
    net.save(tmp_path / "m.npz")
    return net, arrays_of(tmp_path / "m.npz")


def test_hyper_takes_the_optimizers_constants_and_checks_the_rest(tmp_path):
    # The file's optimizer entry states beta_1 and the others (checked by its
    # constructor); an edited hyper array cannot run another rule behind it.
    from fastbp._kernels import optimizers as K

    net, arrays = _adam_saved(tmp_path)
    hyper = arrays["hyper"].copy()
    hyper[K.H_BETA1], hyper[K.H_EPS] = 5.0, 0.0
    loaded = fastbp.load(rewrite(tmp_path / "b.npz", arrays, hyper=hyper))
    np.testing.assert_array_equal(loaded._hyper, net._hyper)
    for i, value in [(K.H_STEP, -1.0), (K.H_STEP, 2.5), (K.H_LR, -0.1), (K.H_ALPHA, np.inf),
                     (K.H_CLIP_NORM, -1.0)]:
        bad = arrays["hyper"].copy()
        bad[i] = value
        with pytest.raises(ValueError, match="'hyper'"):
            fastbp.load(rewrite(tmp_path / "c.npz", arrays, hyper=bad))
    state = arrays["opt_state"].copy()
    state[1, 0] = -1.0
    with pytest.raises(ValueError, match="negative second moments"):
        fastbp.load(rewrite(tmp_path / "d.npz", arrays, opt_state=state))


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_a_version_that_is_not_the_integer_is_rejected(tmp_path, version):
    _, arrays = _adam_saved(tmp_path)
    with pytest.raises(ValueError, match="version"):
        fastbp.load(with_spec(tmp_path / "v.npz", arrays,
                              lambda s: s.update(version=version)))


def test_a_first_learning_rate_of_zero_is_rejected(tmp_path):
    _, arrays = _adam_saved(tmp_path)
    with pytest.raises(ValueError, match="learning rate"):
        fastbp.load(with_spec(tmp_path / "z.npz", arrays,
                              lambda s: s["fit_choices"].update(learning_rate=0)))


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_save_writes_through_a_symbolic_link(tmp_path):
    net, _ = _adam_saved(tmp_path)
    (tmp_path / "v1.npz").write_bytes(b"old")
    os.symlink("v1.npz", tmp_path / "current.npz")
    net.save(tmp_path / "current.npz")
    assert os.path.islink(tmp_path / "current.npz")
    np.testing.assert_array_equal(fastbp.load(tmp_path / "v1.npz").get_params_vector(),
                                  net.get_params_vector())


def test_save_to_a_folder_or_a_device_is_refused_by_name(tmp_path):
    net, _ = _adam_saved(tmp_path)
    with pytest.raises(ValueError, match="is a folder"):
        net.save(tmp_path)
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="not a regular file"):
            net.save("/dev/null")


def test_the_article_networks_network_saves_and_loads(tmp_path):
    np.random.seed(0)
    nn = fastbp.NeuralNetwork(2, 10, 1)
    X, y = make_data(50, 2, 1, "sigmoid", seed=0)
    nn.train(X, y.reshape(-1, 1), 0.1, 20)
    nn.net.save(tmp_path / "nn.npz")
    loaded = fastbp.load(tmp_path / "nn.npz")
    np.testing.assert_array_equal(loaded.forward(X), nn.net.forward(X))
