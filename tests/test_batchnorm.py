"""Batch normalization: training against the NumPy reference, train and eval modes, running
statistics through failures, early stopping, save and load.  (Its gradients are checked
against finite differences in test_gradients.py.)"""
import pickle

import numpy as np
import pytest

import fastbp
from fastbp import reference

from conftest import compiled, make_data, targets_2d

MOMENTUM = 0.1  # PyTorch's BatchNorm1d default, which fastbp follows


def reference_bn_sgd(net, X, Y, batch, epochs, lr, activation, residual=False):
    """Minibatch SGD in plain NumPy on float64 copies of ``net``'s parameters, visiting rows in
    order; returns (coefs, intercepts, scales, running), running as [(mean, var)]."""
    coefs = [W.astype(np.float64) for W in net.coefs_]
    intercepts = [b.astype(np.float64) for b in net.intercepts_]
    scales = [g.astype(np.float64) for g in net.scales_]
    running = [(np.zeros(g.size), np.ones(g.size)) for g in scales]
    for _ in range(epochs):
        for start in range(0, len(X), batch):
            Xb, Yb = X[start:start + batch], Y[start:start + batch]
            nb = len(Xb)
            a = reference.forward(coefs, intercepts, Xb, activation, "softmax", residual, scales)
            for l, (mean, var) in enumerate(running):
                x = a[l] @ coefs[l]
                mean *= 1 - MOMENTUM
                mean += MOMENTUM * x.mean(axis=0)
                if nb > 1:  # no unbiased variance of one sample: fastbp leaves it
                    var *= 1 - MOMENTUM
                    var += MOMENTUM * x.var(axis=0, ddof=1)
            _, gW, gb, gs = reference.loss_and_gradients(coefs, intercepts, Xb, Yb, activation,
                                                         "softmax", residual, scales=scales)
            for p, g in zip(coefs + intercepts + scales, gW + gb + gs):
                p -= lr * g
    return coefs, intercepts, scales, running


PATHS = {
    "loops": ([6, 7, 7, 3], 16),
    "tiles": ([24, 32, 32, 4], 64),
    "blas": ([24, 32, 32, 4], 72),  # every layer through BLAS, the first reading whole rows
}


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_training_matches_the_reference(path, dtype, residual, activation):
    shape, batch = path
    # 3 full batches and a last one of a single sample
    X, y = make_data(3 * batch + 1, shape[0], shape[-1], "softmax", seed=4)
    X = 2.0 * X + 0.5
    net = fastbp.Network(shape, activation=activation, output="softmax", dtype=dtype,
                         random_state=2, residual=residual, batch_norm=True)
    Xr = X.astype(dtype).astype(np.float64)
    Y = targets_2d(y, shape[-1], "softmax")
    coefs, intercepts, scales, running = reference_bn_sgd(net, Xr, Y, batch, 2, 0.1,
                                                          activation, residual)
    net.fit(X, y, epochs=2, batch_size=batch, learning_rate=0.1, shuffle=False)
    tol = 1e-9 if dtype == np.float64 else 3e-4
    for p, p_ref in zip(net.coefs_ + net.intercepts_ + net.scales_, coefs + intercepts + scales):
        np.testing.assert_allclose(p, p_ref, rtol=0, atol=tol)
    for m, v, (m_ref, v_ref) in zip(net.running_means_, net.running_vars_, running):
        np.testing.assert_allclose(m, m_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(v, v_ref, rtol=tol, atol=tol)
    # predict normalizes with the running statistics
    expected = reference.predict(coefs, intercepts, Xr, activation, "softmax", residual, scales,
                                 running)
    np.testing.assert_allclose(net.forward(X), expected, atol=tol)


def test_train_and_eval_modes_differ_as_specified():
    X, y = make_data(200, 5, 3, "softmax", seed=1)
    X = 3.0 * X + 2.0
    net = fastbp.Network([5, 16, 16, 3], output="softmax", dtype=np.float64, random_state=0,
                         batch_norm=True)
    # Before training: running mean 0 and variance 1, the identity in eval mode.
    assert all((m == 0).all() for m in net.running_means_)
    assert all((v == 1).all() for v in net.running_vars_)
    net.fit(X, y, epochs=5, batch_size=20, learning_rate=0.05)
    stats = [(m.copy(), v.copy()) for m, v in zip(net.running_means_, net.running_vars_)]
    assert not np.allclose(stats[0][0], 0) and not np.allclose(stats[0][1], 1)
    args = (net.coefs_, net.intercepts_, X, "relu", "softmax", False, net.scales_)
    eval_out = reference.predict(*args, running=stats)
    train_out = reference.predict(*args)  # normalized by the statistics of X itself
    out = net.forward(X)
    np.testing.assert_allclose(out, eval_out, atol=1e-12)
    assert not np.allclose(out, train_out, atol=1e-3)
    # Eval mode: a sample's prediction does not depend on the rest of the batch, and
    # prediction leaves the running statistics alone.
    np.testing.assert_allclose(net.forward(X[:1]), out[:1], atol=1e-12)
    np.testing.assert_allclose(net.forward(X[::-1]), out[::-1], atol=1e-12)
    for (m, v), m_now, v_now in zip(stats, net.running_means_, net.running_vars_):
        assert np.array_equal(m, m_now) and np.array_equal(v, v_now)
    # and the running statistics are what it uses: moving them moves the predictions
    net.running_means_[0][:] += 1.0
    assert not np.allclose(net.forward(X), out, atol=1e-3)


def test_dropout_with_batch_norm_and_shortcuts_matches_the_reference():
    from fastbp._kernels import dropout

    shape = [6, 8, 8, 3]
    X, y = make_data(40, 6, 3, "softmax", seed=3)
    net = fastbp.Network(shape, activation="tanh", output="softmax", dtype=np.float64,
                         random_state=0, dropout=0.3, residual=True, batch_norm=True)
    coefs = [W.copy() for W in net.coefs_]
    intercepts = [b.copy() for b in net.intercepts_]
    scales = [g.copy() for g in net.scales_]
    seed = compiled(dropout.batch_seed)(net._dropout_seed, 0)
    masks = [dropout.mask(seed, l, w, 40, 0.3).T for l, w in enumerate(shape[1:-1])]
    net.fit(X, y, epochs=1, batch_size=40, learning_rate=0.5, shuffle=False)
    loss, gW, gb, gs = reference.loss_and_gradients(
        coefs, intercepts, X, targets_2d(y, 3, "softmax"), "tanh", "softmax", residual=True,
        masks=masks, scales=scales)
    assert net.loss_curve_[0] == pytest.approx(loss, rel=1e-12)
    for p, p0, g in zip(net.coefs_ + net.intercepts_ + net.scales_, coefs + intercepts + scales,
                        gW + gb + gs):
        np.testing.assert_allclose(p, p0 - 0.5 * g, rtol=0, atol=1e-12)


def _snapshot(net):
    return net.get_params_vector(), net._stats.copy()


def test_divergence_restores_the_running_statistics():
    X, y = make_data(64, 3, 1, "identity")
    kwargs = dict(epochs=60, batch_size=16, optimizer="sgd", learning_rate=3.0, shuffle=False)
    nets = []
    for callbacks in (None, lambda epoch, metrics: None):  # batched epochs, then one by one
        net = fastbp.Network([3, 16, 1], dtype=np.float64, random_state=0, batch_norm=True)
        with pytest.raises(fastbp.DivergenceError):
            net.fit(X * 30, y * 1e3, callbacks=callbacks, **kwargs)
        nets.append(net)
    batched, single = nets
    assert 0 < single.n_iter_ < 60 and batched.loss_curve_ == single.loss_curve_
    for a, b in zip(_snapshot(batched), _snapshot(single)):
        assert np.isfinite(a).all() and np.array_equal(a, b)
    # and the network still predicts
    assert np.isfinite(single.forward(X)).all()


def test_early_stopping_restores_the_best_running_statistics():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((120, 4)) * 2 + 1
    y = rng.randint(0, 3, 120)  # no signal: the validation score wanders
    net = fastbp.Network([4, 32, 32, 3], output="softmax", random_state=0, batch_norm=True)
    store = []

    def record(epoch, metrics):
        store.append((metrics["validation_score"], _snapshot(net)))

    net.fit(X, y, epochs=300, learning_rate=0.1, early_stopping=True, validation_fraction=0.25,
            n_iter_no_change=5, callbacks=[record])
    assert net.n_iter_ < 300
    best = int(np.argmax([s for s, _ in store]))
    params, stats = _snapshot(net)
    assert np.array_equal(params, store[best][1][0]) and np.array_equal(stats, store[best][1][1])
    assert not np.array_equal(stats, store[-1][1][1])


def test_running_statistics_survive_save_load_and_pickle(tmp_path):
    X, y = make_data(100, 5, 3, "softmax", seed=2)
    net = fastbp.Network([5, 8, 8, 3], output="softmax", random_state=0, batch_norm=True)
    net.fit(X, y, epochs=3, batch_size=25, optimizer="adam", learning_rate=0.01)
    assert "batch_norm=True" in repr(net)
    net.save(tmp_path / "bn.npz")
    for other in (fastbp.load(tmp_path / "bn.npz"), pickle.loads(pickle.dumps(net))):
        assert other.batch_norm
        assert np.array_equal(other._stats, net._stats)
        assert all(np.array_equal(a, b) for a, b in zip(other.scales_, net.scales_))
        assert np.array_equal(other.forward(X), net.forward(X))
        # views of the restored arrays, not copies
        other.running_vars_[1][:] = 4.0
        assert (other._stats[-8:] == 4.0).all()
    # a warm start from the loaded file continues exactly as the original
    loaded = fastbp.load(tmp_path / "bn.npz")
    for n in (net, loaded):
        n.fit(X, y, epochs=2, batch_size=25, optimizer="adam", learning_rate=0.01,
              warm_start=True)
    assert np.array_equal(loaded.get_params_vector(), net.get_params_vector())
    assert np.array_equal(loaded._stats, net._stats)


def test_damaged_running_statistics_are_rejected(tmp_path):
    net = fastbp.Network([3, 4, 2], batch_norm=True, random_state=0)
    net.save(tmp_path / "ok.npz")
    data = dict(np.load(tmp_path / "ok.npz"))
    for name, change in (("negative", lambda s: s.__setitem__(-1, -1.0)),
                         ("nan", lambda s: s.__setitem__(0, np.nan)),
                         ("missing", None)):
        bad = dict(data)
        if change is None:
            del bad["running_stats"]
        else:
            bad["running_stats"] = data["running_stats"].copy()
            change(bad["running_stats"])
        np.savez(tmp_path / f"{name}.npz", **bad)
        with pytest.raises(ValueError, match="running_stats|running statistics"):
            fastbp.load(tmp_path / f"{name}.npz")


def test_batch_norm_arguments_are_checked():
    X, y = make_data(20, 3, 2, "softmax")
    net = fastbp.Network([3, 4, 2], output="softmax", batch_norm=True)
    with pytest.raises(ValueError, match="batch_norm"):
        net.fit(X, y, optimizer="lbfgs")
    with pytest.raises(TypeError, match="batch_norm"):
        fastbp.Network([3, 4, 2], batch_norm="yes")
    # no hidden layer, nothing to normalize
    single = fastbp.Network([3, 2], output="softmax", batch_norm=True)
    assert single.scales_ == [] and single._stats.size == 0
    single.fit(X, y, epochs=2)
    assert np.isfinite(single.forward(X)).all()


def test_minibatches_of_one_sample_are_rejected_with_batch_norm():
    rng = np.random.RandomState(0)
    X, y = rng.rand(20, 2), (rng.rand(20) > 0.5).astype(float)
    net = fastbp.Network([2, 4, 1], output="sigmoid", batch_norm=True, random_state=0)
    before = net.get_params_vector()
    with pytest.raises(ValueError, match="batch_norm needs minibatches of at least 2 samples"):
        net.fit(X, y, epochs=2, batch_size=1)
    with pytest.raises(ValueError, match="at least 2 samples"):
        net.fit(X[:1], y[:1], epochs=2)
    np.testing.assert_array_equal(net.get_params_vector(), before)
    net.fit(X, y, epochs=2, batch_size=2)  # (two samples train)
    assert not np.array_equal(net.coefs_[0], before[:8].reshape(2, 4))
