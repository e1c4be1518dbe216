"""Training options against plain NumPy statements of their published rules."""

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastbp
from fastbp import network, optim, reference
from fastbp._kernels.optimizers import H_LR

from conftest import compiled, make_data, targets_2d

SHAPE = [4, 7, 5, 3]


# -- the rules, in plain NumPy ------------------------------------------------------------------

def numpy_training(net, X, Y, *, rule, lrs, batch_size, alpha=0.0, clip_norm=None,
                   clip_value=None, momentum=0.9, beta_1=0.9, beta_2=0.999, eps=1e-8,
                   weight_decay=0.01):
    """Train copies of ``net``'s weights epoch by epoch (rows in order, rate ``lrs[e]``)."""
    params = [W.astype(np.float64) for W in net.coefs_] + \
             [b.astype(np.float64) for b in net.intercepts_]
    n_layers = len(net.coefs_)
    state = [[np.zeros_like(p) for p in params] for _ in range(2)]
    t = 0
    for lr in lrs:
        for start in range(0, len(X), batch_size):
            xb, yb = X[start:start + batch_size], Y[start:start + batch_size]
            nb = len(xb)
            _, gW, gb = reference.loss_and_gradients(params[:n_layers], params[n_layers:], xb, yb,
                                                     net.activation, net.output)
            grads = [g + alpha * W / nb for g, W in zip(gW, params[:n_layers])] + list(gb)
            if clip_value is not None:
                grads = [np.clip(g, -clip_value, clip_value) for g in grads]
            if clip_norm is not None:
                norm = np.sqrt(sum((g ** 2).sum() for g in grads))
                if norm > clip_norm:
                    grads = [g * (clip_norm / (norm + 1e-6)) for g in grads]
            t += 1
            for p, g, m, v in zip(params, grads, *state):
                if rule == "sgd":
                    p -= lr * g
                elif rule == "momentum":
                    m[...] = momentum * m - lr * g
                    p += m
                elif rule == "nesterov":
                    m[...] = momentum * m - lr * g
                    p += momentum * m - lr * g
                elif rule == "adam":  # scikit-learn's form
                    m[...] = beta_1 * m + (1 - beta_1) * g
                    v[...] = beta_2 * v + (1 - beta_2) * g * g
                    lr_t = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
                    p -= lr_t * m / (np.sqrt(v) + eps)
                elif rule == "adamw":  # torch.optim.AdamW
                    p *= 1 - lr * weight_decay
                    m[...] = beta_1 * m + (1 - beta_1) * g
                    v[...] = beta_2 * v + (1 - beta_2) * g * g
                    m_hat, v_hat = m / (1 - beta_1 ** t), v / (1 - beta_2 ** t)
                    p -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in
                           zip(params[:n_layers], params[n_layers:])])


def make_problem(output="softmax", n=40, seed=0):
    X, y = make_data(n, SHAPE[0], SHAPE[-1], output, seed=seed)
    net = fastbp.Network(SHAPE, activation="tanh", output=output, dtype=np.float64, random_state=1)
    return net, X, y, targets_2d(y, SHAPE[-1], output)


# -- optimizers, L2, clipping, schedules ---------------------------------------------------------

@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_optimizer_trajectory_matches_its_rule(rule):
    net, X, y, Y = make_problem()
    lr = 0.05 if rule in ("sgd", "momentum", "nesterov") else 0.01
    # 40 samples in batches of 8, 4 epochs: 20 steps.
    expected = numpy_training(net, X, Y, rule=rule, lrs=[lr] * 4, batch_size=8)
    net.fit(X, y, epochs=4, batch_size=8, learning_rate=lr, optimizer=rule, shuffle=False)
    np.testing.assert_allclose(net.get_params_vector(), expected, rtol=0, atol=1e-10)


def test_optimizer_hyper_parameters_are_used():
    net, X, y, Y = make_problem()
    expected = numpy_training(net, X, Y, rule="adamw", lrs=[0.02] * 4, batch_size=8,
                              beta_1=0.8, beta_2=0.99, eps=1e-6, weight_decay=0.1)
    net.fit(X, y, epochs=4, batch_size=8, learning_rate=0.02, shuffle=False,
            optimizer=optim.AdamW(beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=0.1))
    np.testing.assert_allclose(net.get_params_vector(), expected, rtol=0, atol=1e-10)

    net, X, y, Y = make_problem()
    expected = numpy_training(net, X, Y, rule="momentum", lrs=[0.05] * 4, batch_size=8,
                              momentum=0.5)
    net.fit(X, y, epochs=4, batch_size=8, learning_rate=0.05, shuffle=False,
            optimizer=optim.SGD(momentum=0.5))
    np.testing.assert_allclose(net.get_params_vector(), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("extra", [dict(alpha=0.3), dict(clip_norm=0.05), dict(clip_value=0.01),
                                   dict(alpha=0.1, clip_norm=0.2, clip_value=0.05)],
                         ids=["l2", "clip_norm", "clip_value", "all"])
@pytest.mark.parametrize("rule", ["sgd", "adam"])
def test_l2_and_clipping_change_the_trajectory_as_their_formulas_say(rule, extra):
    net, X, y, Y = make_problem()
    plain = numpy_training(net, X, Y, rule=rule, lrs=[0.05] * 4, batch_size=8)
    expected = numpy_training(net, X, Y, rule=rule, lrs=[0.05] * 4, batch_size=8, **extra)
    assert np.abs(expected - plain).max() > 1e-4  # the option really matters here
    net.fit(X, y, epochs=4, batch_size=8, learning_rate=0.05, optimizer=rule, shuffle=False,
            **extra)
    np.testing.assert_allclose(net.get_params_vector(), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("extra", [dict(alpha=0.1, clip_norm=0.2, clip_value=0.05),
                                   dict(alpha=0.1, clip_value=0.05)],
                         ids=["norm-clipped", "one-pass"])
@pytest.mark.parametrize("rule", ["sgd", "adam"])
@pytest.mark.parametrize("threads", [1, 2])
def test_each_thread_updating_its_share_follows_the_same_rules(rule, threads, extra):
    # Batches of 24 rows cut in one slice per thread, and the update split in as many
    # ranges of the flat vector (which cut through layers): the L2 term, both clippings
    # (their norm summed across the ranges) and the step as the formulas say; the loss's
    # L2 term and the layers' gradient norms summed across the ranges too.  Without norm
    # clipping, plain SGD takes all of that in one pass (optimizers.sgd_update).
    net, X, y, Y = make_problem(n=60)
    expected = numpy_training(net, X, Y, rule=rule, lrs=[0.05] * 3, batch_size=24, **extra)
    with network._threads(threads):
        assert network._split_parts(net, 24) == threads
    net.fit(X, y, epochs=3, batch_size=24, learning_rate=0.05, optimizer=rule, shuffle=False,
            n_threads=threads, **extra)
    np.testing.assert_allclose(net.get_params_vector(), expected, rtol=0, atol=1e-10)
    alone = make_problem(n=60)[0]
    alone.fit(X, y, epochs=3, batch_size=24, learning_rate=0.05, optimizer=rule, shuffle=False,
              n_threads=1, **extra)
    np.testing.assert_allclose(net.loss_curve_, alone.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(net.gradient_norms_, alone.gradient_norms_, rtol=1e-12)


@pytest.mark.parametrize("extra", [dict(), dict(alpha=0.1, clip_value=0.05),
                                   dict(alpha=0.1, clip_norm=0.2, clip_value=0.05)],
                         ids=["plain", "one-pass", "norm-clipped"])
@pytest.mark.parametrize("rule", ["sgd", "adam"])
def test_a_first_layer_split_by_its_inputs_follows_the_same_rules(monkeypatch, rule, extra):
    # Two threads and a first layer of more than SPLIT_FIRST_MIN_WEIGHTS weights: each part
    # sums the first layer's product over its share of the inputs for the whole batch,
    # takes those inputs' weight gradient and updates them alone, the rest of the flat
    # vector shared out as before (epoch.run_epochs).  Batches of 24 rows, then one of 10,
    # too few to cut, which runs whole on one part between split ones.
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    shape = [300, 256, 6, 3]
    X, y = make_data(58, shape[0], shape[-1], "softmax", seed=3)
    Y = targets_2d(y, shape[-1], "softmax")
    sizes = []
    real = network._first_split
    monkeypatch.setattr(network, "_first_split", lambda *a: sizes.append(real(*a)) or sizes[-1])

    def fit(threads):
        # (relu, softmax and float64: the kernels of the path tests' network, compiled once)
        net = fastbp.Network(shape, activation="relu", output="softmax", dtype=np.float64,
                             random_state=4)
        expected = numpy_training(net, X, Y, rule=rule, lrs=[0.05] * 3, batch_size=24, **extra)
        net.fit(X, y, epochs=3, batch_size=24, learning_rate=0.05, optimizer=rule,
                shuffle=False, n_threads=threads, **extra)
        np.testing.assert_allclose(net.get_params_vector(), expected, rtol=0, atol=1e-10)
        return net

    split = fit(2)
    assert sizes and all(size > 0 for size in sizes)  # every call split its first layer
    alone = fit(1)
    assert sizes[-1] == 0
    # (sums over 300 inputs in another order: the trajectories part at about 1e-12)
    np.testing.assert_allclose(split.loss_curve_, alone.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(split.gradient_norms_, alone.gradient_norms_, rtol=1e-9)


def test_the_first_layers_input_shares_are_the_kernels():
    # network._feature_range sizes the buffers by the kernel's own rule: shares that cover
    # the inputs once, cut at multiples of 16
    from fastbp._kernels.epoch import feature_range

    for n in (64, 65, 300, 784, 1000):
        for parts in (2, 3, 4):
            shares = [network._feature_range(n, parts, p) for p in range(parts)]
            assert shares == [tuple(compiled(feature_range)(n, parts, p)) for p in range(parts)]
            assert shares[0][0] == 0 and shares[-1][1] == n
            assert all(a[1] == b[0] and a[1] % 16 == 0 for a, b in zip(shares, shares[1:]))
            assert all(hi > lo for lo, hi in shares)


def test_l2_term_is_in_the_loss():
    net, X, y, Y = make_problem()
    alpha = 0.7
    loss0 = net.loss_and_gradients(X, y)[0]
    loss, gW, _ = net.loss_and_gradients(X, y, alpha=alpha)
    penalty = 0.5 * alpha * sum((W.astype(np.float64) ** 2).sum() for W in net.coefs_) / len(X)
    assert loss == pytest.approx(loss0 + penalty, rel=1e-12)
    _, gW0, _ = net.loss_and_gradients(X, y)
    np.testing.assert_allclose(gW[0], gW0[0] + alpha * net.coefs_[0] / len(X), rtol=1e-12)


SCHEDULES = {
    "invscaling": (optim.InvScaling(power_t=0.5), lambda e, n: 0.1 / (e * n + 1) ** 0.5),
    "cosine": (optim.Cosine(), lambda e, n: 0.5 * 0.1 * (1 + np.cos(np.pi * e / 6))),
    "cosine-min": (optim.Cosine(t_max=4, min_lr=0.01),
                   lambda e, n: 0.01 + 0.5 * 0.09 * (1 + np.cos(np.pi * min(e, 4) / 4))),
    "step": (optim.Step(step_size=2, gamma=0.5), lambda e, n: 0.1 * 0.5 ** (e // 2)),
    "constant": ("constant", lambda e, n: 0.1),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules_set_each_epochs_rate(name):
    schedule, formula = SCHEDULES[name]
    net, X, y, Y = make_problem()
    lrs = [formula(e, len(X)) for e in range(6)]
    expected = numpy_training(net, X, Y, rule="sgd", lrs=lrs, batch_size=8)
    seen = []
    net.fit(X, y, epochs=6, batch_size=8, learning_rate=0.1, schedule=schedule, shuffle=False,
            callbacks=[lambda epoch, m: seen.append(m["learning_rate"])])
    np.testing.assert_allclose(seen, lrs, rtol=1e-14)
    np.testing.assert_allclose(net.get_params_vector(), expected, rtol=0, atol=1e-10)


def test_adaptive_schedule_divides_by_five_on_plateaus():
    net, X, y, _ = make_problem()
    seen = []
    # tol larger than any possible improvement: every epoch after the first is a plateau epoch.
    net.fit(X, y, epochs=10, learning_rate=0.1, schedule="adaptive", tol=100.0, n_iter_no_change=2,
            callbacks=[lambda epoch, m: seen.append(m["learning_rate"])])
    np.testing.assert_allclose(seen, [0.1] * 4 + [0.02] * 3 + [0.004] * 3)
    assert net.n_iter_ == 10


def test_adaptive_schedule_stops_below_its_floor():
    net, X, y, _ = make_problem()
    net.fit(X, y, epochs=500, learning_rate=1e-5, schedule="adaptive", tol=100.0,
            n_iter_no_change=1)
    # A plateau is 2 epochs without improvement (count > 1), the first epoch always improves:
    # epoch 3: 1e-5 -> 2e-6; epoch 5: 2e-6 -> 4e-7; epoch 7: 4e-7 <= 1e-6, stop.
    assert net.n_iter_ == 7


def test_training_loss_plateau_stops_with_tol():
    net, X, y, _ = make_problem()
    net.fit(X, y, epochs=50, learning_rate=0.1, tol=100.0, n_iter_no_change=3)
    assert net.n_iter_ == 5
    net, X, y, _ = make_problem()
    net.fit(X, y, epochs=50, learning_rate=0.1)  # tol=None: every epoch runs
    assert net.n_iter_ == 50
    assert net.best_loss_ == min(net.loss_curve_)


# -- initialisation ------------------------------------------------------------------------------

def test_initialisation_schemes():
    he = fastbp.Network([400, 300, 2], init="he", dtype=np.float64, random_state=0)
    assert np.std(he.coefs_[0]) == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert not he.intercepts_[0].any()
    normal = fastbp.Network([400, 300, 2], init="normal", init_scale=0.01, random_state=0)
    assert np.std(normal.coefs_[0]) == pytest.approx(0.01, rel=0.02)
    assert abs(np.mean(normal.coefs_[0])) < 1e-3
    with pytest.raises(ValueError, match="init must be one of"):
        fastbp.Network([2, 2], init="xavier")


# -- continuing, early stopping, callbacks, interruption -----------------------------------------

@pytest.mark.parametrize("rule", ["adam", "nesterov", "sgd"])
def test_warm_start_equals_one_long_fit(rule):
    X, y = make_data(60, 4, 3, "softmax")
    one = fastbp.Network(SHAPE, output="softmax", random_state=3)
    one.fit(X, y, epochs=10, batch_size=16, learning_rate=0.01, optimizer=rule)
    two = fastbp.Network(SHAPE, output="softmax", random_state=3)
    two.fit(X, y, epochs=5, batch_size=16, learning_rate=0.01, optimizer=rule)
    two.fit(X, y, epochs=5, batch_size=16, learning_rate=0.01, optimizer=rule, warm_start=True)
    assert np.array_equal(one.get_params_vector(), two.get_params_vector())
    assert one.loss_curve_ == two.loss_curve_ and two.n_iter_ == 10 and two.t_ == 600


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "cosine"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_epochs_batched_into_one_call_equal_epoch_by_epoch(schedule, shuffle):
    # Without per-epoch work fit hands the kernel many epochs per call; a callback forces
    # one call per epoch.  Same weights, history and random state, bit for bit.
    X, y = make_data(60, 4, 3, "softmax")
    kwargs = dict(epochs=30, batch_size=16, learning_rate=0.05, optimizer="adam",
                  schedule=schedule, shuffle=shuffle)
    batched = fastbp.Network(SHAPE, output="softmax", random_state=5).fit(X, y, **kwargs)
    calls = []
    single = fastbp.Network(SHAPE, output="softmax", random_state=5).fit(
        X, y, callbacks=lambda epoch, metrics: calls.append(metrics["learning_rate"]), **kwargs)
    assert len(calls) == 30
    assert np.array_equal(batched.get_params_vector(), single.get_params_vector())
    assert batched.loss_curve_ == single.loss_curve_ and batched.n_iter_ == 30
    assert batched.t_ == single.t_ and batched.best_loss_ == single.best_loss_
    assert np.array_equal(batched._perm, single._perm)
    assert batched._hyper[H_LR] == calls[-1] == single._hyper[H_LR]
    assert batched._rng.randint(10 ** 9) == single._rng.randint(10 ** 9)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("rows_per_call", [None, 7 * 60])
def test_tol_stopping_inside_batched_epochs_equals_epoch_by_epoch(shuffle, rows_per_call,
                                                                   monkeypatch):
    # With tol, the kernel applies the stopping rule itself and ends its call at the
    # stopping epoch (here in the middle of a call: of all epochs at once, or of calls of
    # 7 epochs, the count carried between calls); the callback forces one call per epoch.
    # Same stopping epoch, weights, history and random state, and so the same warm start.
    if rows_per_call is not None:
        monkeypatch.setattr(fastbp._config, "EPOCH_CALL_ROWS", rows_per_call)
    X, y = make_data(60, 4, 3, "softmax")
    kwargs = dict(epochs=300, batch_size=16, learning_rate=0.05, optimizer="adam",
                  shuffle=shuffle, tol=1e-3, n_iter_no_change=4)
    nets = []
    for callbacks in (None, lambda epoch, metrics: None):
        net = fastbp.Network(SHAPE, output="softmax", random_state=5)
        net.fit(X, y, callbacks=callbacks, **kwargs)
        nets.append((net, net.n_iter_, net._no_improvement))
        net.fit(X, y, callbacks=callbacks, warm_start=True, **dict(kwargs, epochs=5))
    (batched, n_batched, count_batched), (single, n_single, count_single) = nets
    assert n_batched == n_single and 4 < n_batched < 300 and n_batched % 7 != 0
    assert count_batched == count_single == 5
    assert np.array_equal(batched.get_params_vector(), single.get_params_vector())
    assert batched.loss_curve_ == single.loss_curve_ and batched.t_ == single.t_
    assert batched.best_loss_ == single.best_loss_
    assert np.array_equal(batched._perm, single._perm)
    assert batched._rng.randint(10 ** 9) == single._rng.randint(10 ** 9)


def test_epochs_per_call_is_bounded(monkeypatch):
    from fastbp import network

    assert network._epochs_per_call(100, 800, 41) == 100          # tiny nets: all at once
    assert network._epochs_per_call(100, 60000, 235146) == 1      # big ones: one by one
    monkeypatch.setattr(fastbp._config, "EPOCH_CALL_ROWS", 1000)
    assert network._epochs_per_call(100, 400, 1) == 2


def test_divergence_inside_batched_epochs_stops_at_the_failing_epoch():
    # The batched call fails as a whole; the fit replays it epoch by epoch, so the history
    # and the restored weights are those just before the first failing epoch.
    X, y = make_data(64, 3, 1, "identity")
    X = X * 30
    kwargs = dict(epochs=40, batch_size=64, optimizer="sgd", learning_rate=0.05, shuffle=False)
    batched = fastbp.Network([3, 16, 1], dtype=np.float64, random_state=0)
    with pytest.raises(fastbp.DivergenceError):
        batched.fit(X, y, **kwargs)
    single = fastbp.Network([3, 16, 1], dtype=np.float64, random_state=0)
    with pytest.raises(fastbp.DivergenceError):
        single.fit(X, y, callbacks=lambda epoch, metrics: None, **kwargs)
    assert 0 < batched.n_iter_ < 40
    assert batched.loss_curve_ == single.loss_curve_
    assert np.array_equal(batched.get_params_vector(), single.get_params_vector())
    assert np.isfinite(batched.get_params_vector()).all()


def test_without_warm_start_the_optimizer_starts_afresh():
    X, y = make_data(60, 4, 3, "softmax")
    one = fastbp.Network(SHAPE, output="softmax", random_state=3)
    one.fit(X, y, epochs=10, learning_rate=0.01, optimizer="adam")
    two = fastbp.Network(SHAPE, output="softmax", random_state=3)
    two.fit(X, y, epochs=5, learning_rate=0.01, optimizer="adam")
    two.fit(X, y, epochs=5, learning_rate=0.01, optimizer="adam")
    assert not np.array_equal(one.get_params_vector(), two.get_params_vector())
    assert two.n_iter_ == 5 and len(two.loss_curve_) == 5


def test_partial_fit_is_one_epoch_continuing():
    X, y = make_data(60, 4, 3, "softmax")
    a = fastbp.Network(SHAPE, output="softmax", random_state=4)
    a.fit(X, y, epochs=3, optimizer="adam", learning_rate=0.01)
    b = fastbp.Network(SHAPE, output="softmax", random_state=4)
    for _ in range(3):
        b.partial_fit(X, y, optimizer="adam", learning_rate=0.01)
    assert np.array_equal(a.get_params_vector(), b.get_params_vector())
    with pytest.raises(TypeError, match="epochs"):
        b.partial_fit(X, y, epochs=2)


def record_params(store):
    def callback(epoch, metrics):
        store.append((epoch, metrics, callback.net.get_params_vector()))
    return callback


def test_early_stopping_restores_the_best_weights():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((120, 4))
    y = rng.randint(0, 3, 120)  # no signal: the validation score wanders, training overfits
    net = fastbp.Network([4, 64, 64, 3], output="softmax", random_state=0)
    store = []
    cb = record_params(store)
    cb.net = net
    net.fit(X, y, epochs=300, learning_rate=0.1, early_stopping=True, validation_fraction=0.25,
            n_iter_no_change=5, callbacks=[cb])
    assert net.n_iter_ < 300
    scores = [m["validation_score"] for _, m, _ in store]
    assert net.validation_scores_[:len(scores)] == scores
    assert net.best_validation_score_ == max(net.validation_scores_)
    best = int(np.argmax(scores))
    assert np.array_equal(net.get_params_vector(), store[best][2])
    assert not np.array_equal(net.get_params_vector(), store[-1][2])


def test_validation_data_is_scored_every_epoch():
    X, y = make_data(80, 4, 3, "softmax")
    Xv, yv = make_data(30, 4, 3, "softmax", seed=9)
    net = fastbp.Network(SHAPE, output="softmax", random_state=0)
    net.fit(X, y, epochs=4, validation_data=(Xv, yv))
    assert len(net.validation_scores_) == 4
    assert net.validation_scores_[-1] == net.score(Xv, yv)
    reg = fastbp.Network([4, 8, 2], random_state=0)
    Xr, yr = make_data(80, 4, 2, "identity")
    reg.fit(Xr, yr, epochs=3, validation_data=(Xr, yr))
    pred = reg.forward(Xr)
    r2 = 1 - ((yr - pred) ** 2).sum(axis=0) / ((yr - yr.mean(axis=0)) ** 2).sum(axis=0)
    assert reg.validation_scores_[-1] == pytest.approx(r2.mean(), rel=1e-5)


def test_callback_returning_true_stops_training():
    X, y = make_data(40, 4, 3, "softmax")
    net = fastbp.Network(SHAPE, output="softmax", random_state=0)
    calls = []
    net.fit(X, y, epochs=50, callbacks=[lambda e, m: calls.append((e, sorted(m))) or e == 3])
    assert net.n_iter_ == 3 and len(net.loss_curve_) == 3
    assert [c[0] for c in calls] == [1, 2, 3]
    assert calls[0][1] == ["epoch_time", "learning_rate", "loss"]


def test_keyboard_interrupt_keeps_a_usable_model(tmp_path):
    X, y = make_data(40, 4, 3, "softmax")
    net = fastbp.Network(SHAPE, output="softmax", random_state=0)

    def interrupt(epoch, metrics):
        if epoch == 4:
            raise KeyboardInterrupt

    with pytest.warns(RuntimeWarning, match="interrupted after 4 epochs"):
        net.fit(X, y, epochs=50, callbacks=[interrupt])
    assert net.n_iter_ == 4
    assert np.isfinite(net.get_params_vector()).all()
    assert net.predict(X).shape == (40,)
    net.save(tmp_path / "m.npz")
    assert np.array_equal(fastbp.load(tmp_path / "m.npz").forward(X), net.forward(X))


def test_exception_in_callback_propagates_and_keeps_the_previous_epoch():
    X, y = make_data(40, 4, 3, "softmax")
    net = fastbp.Network(SHAPE, output="softmax", random_state=0)
    store = []
    rec = record_params(store)
    rec.net = net

    def fail(epoch, metrics):
        if epoch == 4:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        net.fit(X, y, epochs=50, optimizer="adam", callbacks=[rec, fail])
    assert store[2][0] == 3
    assert np.array_equal(net.get_params_vector(), store[2][2])


def test_divergence_restores_the_optimizer_state_too():
    X, y = make_data(64, 3, 1, "identity")
    net = fastbp.Network([3, 16, 1], dtype=np.float64, random_state=0)
    net.fit(X, y, epochs=2, optimizer="momentum", learning_rate=0.01)
    state = net._opt_state.copy()
    with pytest.raises(fastbp.DivergenceError, match="learning rate"):
        net.fit(X * 1e3, y, epochs=50, optimizer="momentum", learning_rate=10.0, warm_start=True)
    assert np.isfinite(net._opt_state).all()
    assert np.isfinite(net.get_params_vector()).all()
    assert state.shape == net._opt_state.shape


def test_verbose_shows_a_progress_bar(capsys):
    X, y = make_data(40, 4, 3, "softmax")
    fastbp.Network(SHAPE, output="softmax", random_state=0).fit(
        X, y, epochs=3, verbose=True, validation_data=(X, y))
    err = capsys.readouterr().err
    assert "3/3" in err and "loss=" in err and "validation_score=" in err


def test_n_threads_applies_during_fit_and_is_restored():
    X, y = make_data(40, 4, 3, "softmax")
    before = network._thread_count()
    blas_before = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    inside = []

    def look(epoch, metrics):
        inside.append((network._thread_count(), [i["num_threads"] for i in threadpool_info()
                                                 if i["user_api"] == "blas"]))

    fastbp.Network(SHAPE, output="softmax", random_state=0).fit(
        X, y, epochs=2, n_threads=1, callbacks=[look])
    assert all(nt == 1 and all(b == 1 for b in blas) for nt, blas in inside)
    assert network._thread_count() == before
    # (the fit may load another BLAS, SciPy's for Numba: compared where there was one before)
    blas_after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert all(blas_after[path] == n for path, n in blas_before.items())
    with pytest.raises(ValueError, match="n_threads must be"):
        fastbp.Network(SHAPE, output="softmax").fit(X, y, n_threads=0)
    # more than the process's ceiling: capped at it (NUMBA_NUM_THREADS), as OpenMP caps
    inside.clear()
    fastbp.Network(SHAPE, output="softmax", random_state=0).fit(
        X, y, epochs=2, n_threads=10_000, callbacks=[look])
    assert all(nt == numba.config.NUMBA_NUM_THREADS for nt, _ in inside) and inside


def test_lbfgs_matches_scipy_on_the_reference_loss():
    from scipy.optimize import minimize

    net, X, y, Y = make_problem()
    shapes = [W.shape for W in net.coefs_]
    theta0 = net.get_params_vector()

    def unpack(theta):
        coefs, intercepts, k = [], [], 0
        for a, b in shapes:
            coefs.append(theta[k:k + a * b].reshape(a, b))
            intercepts.append(theta[k + a * b:k + a * b + b])
            k += a * b + b
        return coefs, intercepts

    def fun(theta):
        coefs, intercepts = unpack(theta)
        loss, gW, gb = reference.loss_and_gradients(coefs, intercepts, X, Y, "tanh", "softmax")
        loss += 0.5 * 0.1 * sum((W ** 2).sum() for W in coefs) / len(X)
        gW = [g + 0.1 * W / len(X) for g, W in zip(gW, coefs)]
        return loss, np.concatenate([np.concatenate([g.ravel(), b]) for g, b in zip(gW, gb)])

    expected = minimize(fun, theta0.copy(), jac=True, method="L-BFGS-B",
                        options={"maxiter": 8, "maxfun": 15000, "gtol": 1e-4}).x
    net.fit(X, y, epochs=8, optimizer="lbfgs", alpha=0.1)
    np.testing.assert_allclose(net.get_params_vector(), expected, rtol=0, atol=1e-7)
    assert len(net.loss_curve_) == net.n_iter_ <= 8
    assert net.loss_curve_[-1] < fun(theta0)[0]


def test_adam_float32_training_stays_float32_and_learns():
    X, y = make_data(200, 4, 3, "softmax")
    net = fastbp.Network(SHAPE, output="softmax", random_state=0)
    net.fit(X, y, epochs=30, optimizer="adam", learning_rate=0.01)
    assert net._opt_state.dtype == np.float32 and net.coefs_[0].dtype == np.float32
    assert net.loss_curve_[-1] < net.loss_curve_[0]


def test_bad_training_options_are_named():
    X, y = make_data(20, 4, 3, "softmax")
    net = fastbp.Network(SHAPE, output="softmax", random_state=0)
    before = net.get_params_vector()
    for kwargs, match in [
        (dict(optimizer="rmsprop"), "optimizer must be one of"),
        (dict(schedule="linear"), "schedule must be one of"),
        (dict(schedule="adaptive"), "schedule='adaptive'.*tol"),
        (dict(alpha=-1.0), "alpha must be a finite number >= 0"),
        (dict(clip_norm=0.0), "clip_norm must be a finite number > 0"),
        (dict(clip_value=np.nan), "clip_value must be"),
        (dict(tol=-1e-3), "tol must be"),
        (dict(early_stopping=True, validation_fraction=1.5), "validation_fraction must be in"),
        (dict(callbacks=[1]), r"callbacks\[0\] must be callable"),
        (dict(validation_data=X), "validation_data must be a tuple"),
        (dict(validation_data=(X[:, :2], y)), "X_val has 2 features"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            net.fit(X, y, epochs=2, **kwargs)
    for make, match in [(lambda: optim.SGD(momentum=1.5), "momentum must be in"),
                        (lambda: optim.Adam(beta_2=-0.1), "beta_2 must be in"),
                        (lambda: optim.AdamW(weight_decay=-1), "weight_decay must be"),
                        (lambda: optim.Step(step_size=0), "step_size must be >= 1")]:
        with pytest.raises((ValueError, TypeError), match=match):
            make()
    assert np.array_equal(net.get_params_vector(), before)


def test_real_ctrl_c_stops_after_the_current_epoch():
    import _thread
    import threading

    X, y = make_data(2000, 4, 3, "softmax")
    net = fastbp.Network([4, 64, 64, 3], output="softmax", random_state=0)
    net.fit(X[:50], y[:50], epochs=1)  # compile before the clock starts
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.warns(RuntimeWarning, match="interrupted"):
            net.fit(X, y, epochs=100_000, batch_size=16)
    finally:
        timer.cancel()
    assert 0 < net.n_iter_ < 100_000
    assert len(net.loss_curve_) == net.n_iter_
    assert np.isfinite(net.get_params_vector()).all()
    assert net.predict(X).shape == (2000,)


@pytest.mark.parametrize("rule", ["adam", "nesterov"])
def test_same_seed_gives_bitwise_identical_training(rule):
    X, y = make_data(300, 4, 3, "softmax")
    runs = [fastbp.Network([4, 32, 32, 3], output="softmax", random_state=5).fit(
        X, y, epochs=5, optimizer=rule, learning_rate=0.01, early_stopping=True, n_threads=2)
        for _ in range(2)]
    assert np.array_equal(runs[0].get_params_vector(), runs[1].get_params_vector())
    assert runs[0].validation_scores_ == runs[1].validation_scores_


# -- sample weights ------------------------------------------------------------------------------

@pytest.mark.parametrize("output", ["identity", "sigmoid", "softmax", "poisson"])
def test_integer_sample_weights_equal_repeated_rows(output):
    X, y = make_data(30, 4, 3, output)
    w = np.random.RandomState(0).randint(0, 4, 30)
    w[0] = 1
    rows = np.repeat(np.arange(30), w)
    net = fastbp.Network(SHAPE, activation="tanh", output=output, dtype=np.float64,
                         random_state=0)
    loss, gW, gb = net.loss_and_gradients(X, y, alpha=0.2, sample_weight=w)
    loss_r, gW_r, gb_r = net.loss_and_gradients(X[rows], y[rows], alpha=0.2)
    assert loss == pytest.approx(loss_r, rel=1e-12)
    for a, b in zip(gW + gb, gW_r + gb_r):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    # Full-batch training sees the same loss, so it takes the same steps.
    weighted = fastbp.Network(SHAPE, activation="tanh", output=output, dtype=np.float64,
                              random_state=0)
    weighted.fit(X, y, sample_weight=w, epochs=5, batch_size=1000, optimizer="adam",
                 learning_rate=0.01, alpha=0.2)
    repeated = fastbp.Network(SHAPE, activation="tanh", output=output, dtype=np.float64,
                              random_state=0)
    repeated.fit(X[rows], y[rows], epochs=5, batch_size=1000, optimizer="adam",
                 learning_rate=0.01, alpha=0.2)
    np.testing.assert_allclose(weighted.get_params_vector(), repeated.get_params_vector(),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)


def test_sample_weights_scale_each_batch_as_scikit_learn_does():
    net, X, y, Y = make_problem()
    w = np.random.RandomState(1).rand(len(X))
    # Per batch: gradient of sum(w_i l_i) / sum(w_i) (and alpha / sum(w_i) on the weights).
    params = [W.copy() for W in net.coefs_] + [b.copy() for b in net.intercepts_]
    for start in range(0, len(X), 8):
        sl = slice(start, start + 8)
        wb = w[sl]
        a = reference.forward(params[:3], params[3:], X[sl], "tanh", "softmax")
        delta = (reference.OUTPUTS["softmax"](a[-1]) - Y[sl]) * wb[:, None] / wb.sum()
        grads = [None] * 6
        for l in range(2, -1, -1):
            grads[l] = a[l].T @ delta + 0.3 * params[l] / wb.sum()
            grads[3 + l] = delta.sum(axis=0)
            if l:
                delta = (delta @ params[l].T) * (1 - a[l] ** 2)
        for p, g in zip(params, grads):
            p -= 0.1 * g
    net.fit(X, y, sample_weight=w, epochs=1, batch_size=8, learning_rate=0.1, alpha=0.3,
            shuffle=False)
    expected = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in
                               zip(params[:3], params[3:])])
    np.testing.assert_allclose(net.get_params_vector(), expected, rtol=0, atol=1e-12)


def test_bad_sample_weights_are_named():
    X, y = make_data(10, 4, 3, "softmax")
    net = fastbp.Network(SHAPE, output="softmax", random_state=0)
    for sw, match in [(np.ones(9), r"sample_weight must have shape \(10,\)"),
                      (-np.ones(10), "non-negative"), (np.zeros(10), "sums to 0"),
                      (np.full(10, np.nan), "sample_weight contains NaN"),
                      (["a"] * 10, "sample_weight must be numeric")]:
        with pytest.raises((ValueError, TypeError), match=match):
            net.fit(X, y, sample_weight=sw, epochs=1)


def _layer_norms(gW):
    return np.array([np.linalg.norm(g) for g in gW])


@pytest.mark.parametrize("per_epoch_calls", [False, True])
def test_gradient_norms_are_those_of_each_epochs_gradient(per_epoch_calls):
    # Full batch, no shuffling: epoch e's norms are those of the gradient (L2 term
    # included) at the weights it starts from.
    X, y = make_data(50, 4, 3, "softmax")
    net = fastbp.Network([4, 6, 5, 3], output="softmax", dtype=np.float64, random_state=1)
    kwargs = dict(epochs=4, batch_size=50, learning_rate=0.5, alpha=0.3, shuffle=False)
    if per_epoch_calls:
        kwargs["callbacks"] = lambda epoch, metrics: None
    w0 = [W.copy() for W in net.coefs_], [b.copy() for b in net.intercepts_]
    net.fit(X, y, **kwargs)
    assert net.gradient_norms_.shape == (4, 3)
    coefs, intercepts = w0
    Y = targets_2d(y, 3, "softmax")
    for e in range(4):
        _, gW, gb = reference.loss_and_gradients(coefs, intercepts, X, Y, "relu", "softmax")
        gW = [g + 0.3 * W / 50 for g, W in zip(gW, coefs)]
        np.testing.assert_allclose(net.gradient_norms_[e], _layer_norms(gW), rtol=1e-10)
        coefs = [W - 0.5 * g for W, g in zip(coefs, gW)]
        intercepts = [b - 0.5 * g for b, g in zip(intercepts, gb)]


def test_gradient_norms_average_the_batches_and_continue_with_warm_start():
    X, y = make_data(60, 4, 3, "softmax")
    one = fastbp.Network(SHAPE, output="softmax", random_state=3)
    one.fit(X, y, epochs=6, batch_size=16, optimizer="adam", learning_rate=0.01)
    two = fastbp.Network(SHAPE, output="softmax", random_state=3)
    two.fit(X, y, epochs=3, batch_size=16, optimizer="adam", learning_rate=0.01)
    two.fit(X, y, epochs=3, batch_size=16, optimizer="adam", learning_rate=0.01, warm_start=True)
    assert np.array_equal(one.gradient_norms_, two.gradient_norms_)
    assert one.gradient_norms_.shape == (6, len(SHAPE) - 1)
    assert (one.gradient_norms_ > 0).all()
    # a fit without warm_start starts a new record
    two.fit(X, y, epochs=2, batch_size=16)
    assert two.gradient_norms_.shape == (2, len(SHAPE) - 1)


def test_gradient_norms_of_lbfgs_iterations():
    X, y = make_data(40, 4, 3, "softmax")
    net = fastbp.Network(SHAPE, output="softmax", dtype=np.float64, random_state=0)
    net.fit(X, y, epochs=5, optimizer="lbfgs")
    norms = net.gradient_norms_
    assert norms.shape == (net.n_iter_, len(SHAPE) - 1) and net.n_iter_ > 0
    # the last row is the gradient at the final weights
    _, gW, _ = net.loss_and_gradients(X, y)
    np.testing.assert_allclose(norms[-1], _layer_norms(gW), rtol=1e-8)


# -- dropout -----------------------------------------------------------------------------------

def _fastbp_masks(net, n, epoch=0, start=0):
    """The dropout factors fastbp applies in epoch ``epoch`` to the batch at ``start``, as
    (n_samples, width) arrays, one per hidden layer."""
    from fastbp._kernels import dropout

    seed = compiled(dropout.batch_seed)(net._dropout_seed + epoch, start)
    return [dropout.mask(seed, l, width, n, net.dropout).T
            for l, width in enumerate(net.layers[1:-1])]


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("shape, n", [([4, 6, 6, 3], 40), ([24, 24, 16, 3], 40),
                                      ([24, 24, 16, 3], 80)], ids=["loops", "tiles", "blas"])
def test_dropout_step_equals_the_reference_with_the_same_masks(shape, n, residual):
    X, y = make_data(n, shape[0], 3, "softmax", seed=3)
    net = fastbp.Network(shape, activation="tanh", output="softmax", dtype=np.float64,
                         random_state=0, dropout=0.4, residual=residual)
    coefs = [W.copy() for W in net.coefs_]
    intercepts = [b.copy() for b in net.intercepts_]
    masks = _fastbp_masks(net, n)
    assert all(set(np.unique(m)) <= {0.0, 1 / 0.6} for m in masks)
    net.fit(X, y, epochs=1, batch_size=n, learning_rate=0.5, shuffle=False)
    Y = targets_2d(y, 3, "softmax")
    loss, gW, gb = reference.loss_and_gradients(coefs, intercepts, X, Y, "tanh", "softmax",
                                                residual=residual, masks=masks)
    assert net.loss_curve_[0] == pytest.approx(loss, rel=1e-12)
    for W, W0, g in zip(net.coefs_ + net.intercepts_, coefs + intercepts, gW + gb):
        np.testing.assert_allclose(W, W0 - 0.5 * g, rtol=0, atol=1e-12)


def test_the_reference_with_masks_matches_finite_differences():
    X, y = make_data(7, 3, 2, "identity", seed=5)
    Y = targets_2d(y, 2, "identity")
    rng = np.random.default_rng(0)
    coefs = [rng.normal(size=(3, 4)), rng.normal(size=(4, 4)), rng.normal(size=(4, 2))]
    intercepts = [rng.normal(size=4), rng.normal(size=4), rng.normal(size=2)]
    masks = [(rng.random((7, 4)) > 0.3) / 0.7 for _ in range(2)]
    _, gW, _ = reference.loss_and_gradients(coefs, intercepts, X, Y, "gelu", "identity",
                                            residual=True, masks=masks)
    h = 1e-6
    for l, W in enumerate(coefs):
        for idx in np.ndindex(W.shape):
            W[idx] += h
            up = reference.loss_and_gradients(coefs, intercepts, X, Y, "gelu", "identity",
                                              residual=True, masks=masks)[0]
            W[idx] -= 2 * h
            down = reference.loss_and_gradients(coefs, intercepts, X, Y, "gelu", "identity",
                                                residual=True, masks=masks)[0]
            W[idx] += h
            assert gW[l][idx] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)


def test_dropout_masks_drop_the_asked_fraction_and_differ_by_batch_and_layer():
    from fastbp._kernels import dropout

    batch_seed = compiled(dropout.batch_seed)
    m = dropout.mask(batch_seed(12345, 0), 0, 64, 1000, 0.3)
    assert abs((m == 0).mean() - 0.3) < 0.01
    assert not np.array_equal(m, dropout.mask(batch_seed(12345, 32), 0, 64, 1000, 0.3))
    assert not np.array_equal(m, dropout.mask(batch_seed(12345, 0), 1, 64, 1000, 0.3))


def test_dropout_is_reproducible_trains_only_and_batches_epochs_alike():
    X, y = make_data(64, 4, 3, "softmax")
    kwargs = dict(epochs=12, batch_size=16, learning_rate=0.05)
    a = fastbp.Network(SHAPE, output="softmax", random_state=7, dropout=0.3).fit(X, y, **kwargs)
    b = fastbp.Network(SHAPE, output="softmax", random_state=7, dropout=0.3).fit(
        X, y, callbacks=lambda epoch, metrics: None, **kwargs)
    assert np.array_equal(a.get_params_vector(), b.get_params_vector())
    c = fastbp.Network(SHAPE, output="softmax", random_state=7).fit(X, y, **kwargs)
    assert not np.array_equal(a.get_params_vector(), c.get_params_vector())
    # prediction and the reported gradient use the whole network
    np.testing.assert_array_equal(a.forward(X), a.forward(X))
    np.testing.assert_allclose(
        a.forward(X), reference.predict([W.astype(np.float64) for W in a.coefs_],
                                        [v.astype(np.float64) for v in a.intercepts_],
                                        X, "relu", "softmax"), atol=1e-5)


def test_dropout_continues_across_save_and_load(tmp_path):
    X, y = make_data(48, 4, 3, "softmax")
    one = fastbp.Network(SHAPE, output="softmax", random_state=2, dropout=0.2)
    one.fit(X, y, epochs=6, batch_size=16)
    two = fastbp.Network(SHAPE, output="softmax", random_state=2, dropout=0.2)
    two.fit(X, y, epochs=3, batch_size=16)
    two.save(tmp_path / "d.npz")
    two = fastbp.load(tmp_path / "d.npz")
    assert two.dropout == 0.2
    two.fit(X, y, epochs=3, batch_size=16, warm_start=True)
    assert np.array_equal(one.get_params_vector(), two.get_params_vector())


def test_dropout_arguments_are_checked():
    X, y = make_data(20, 4, 3, "softmax")
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="dropout"):
            fastbp.Network(SHAPE, dropout=bad)
    with pytest.raises(TypeError, match="dropout"):
        fastbp.Network(SHAPE, dropout="0.5")
    with pytest.raises(ValueError, match="dropout needs a stochastic optimizer"):
        fastbp.Network(SHAPE, output="softmax", dropout=0.1).fit(X, y, optimizer="lbfgs")


def test_a_constant_schedules_subclass_with_its_own_rate_is_followed_in_batched_epochs():
    # (Constant.rates fills one array with lr0; a subclass that says otherwise is asked)
    class Halved(optim.Constant):
        def rate(self, lr0, epoch, epochs, samples_seen):
            return lr0 / 2

    a, X, y, _ = make_problem()
    b, _, _, _ = make_problem()
    a.fit(X, y, epochs=5, batch_size=8, learning_rate=0.1, schedule=Halved(), shuffle=False)
    b.fit(X, y, epochs=5, batch_size=8, learning_rate=0.05, shuffle=False)
    np.testing.assert_array_equal(a.get_params_vector(), b.get_params_vector())


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), None])
@pytest.mark.parametrize("base", [optim.Schedule, optim.Constant])
def test_a_custom_schedules_bad_rates_are_rejected(value, base):
    class Bad(base):
        def rate(self, lr0, epoch, epochs, samples_seen):
            return lr0 if epoch < 2 else value  # (bad from the third epoch on)

    net, X, y, _ = make_problem()
    with pytest.raises(ValueError, match=r"Bad\(\) gave the learning rate .*finite and non-negative"):
        net.fit(X, y, epochs=5, batch_size=8, learning_rate=0.1, schedule=Bad())
    assert np.isfinite(net.get_params_vector()).all()


def test_an_optimizer_that_is_none_of_fastbps_is_rejected():
    class Mine(optim.Optimizer):
        kind = 99

    net, X, y, _ = make_problem()
    before = net.get_params_vector()
    with pytest.raises(TypeError, match=r"Mine\(\) must be an instance of one of fastbp's"):
        net.fit(X, y, epochs=2, optimizer=Mine())
    np.testing.assert_array_equal(net.get_params_vector(), before)


def test_a_cosine_schedule_anneals_over_each_fit_unless_given_its_length():
    net, X, y, _ = make_problem()
    seen = []
    cb = [lambda epoch, metrics: seen.append(metrics["learning_rate"])]
    net.fit(X, y, epochs=6, learning_rate=0.1, schedule="cosine", callbacks=cb)
    first = list(seen)
    seen.clear()
    before = net.get_params_vector()
    net.fit(X, y, epochs=6, learning_rate=0.1, schedule="cosine", callbacks=cb, warm_start=True)
    assert seen == first and first[0] == 0.1 and first[-1] < 0.01  # the same curve again
    assert not np.array_equal(net.get_params_vector(), before)
    seen.clear()
    net.partial_fit(X, y, learning_rate=0.1, schedule="cosine", callbacks=cb)
    assert seen == [0.1]
    # with t_max, the curve spans the fits: 4 epochs then 4 more, the last ones at min_lr
    net, X, y, _ = make_problem()
    seen.clear()
    for _ in range(2):
        net.fit(X, y, epochs=4, learning_rate=0.1, schedule=optim.Cosine(t_max=6, min_lr=0.001),
                callbacks=cb, warm_start=True)
    assert seen[0] == 0.1 and seen[3] > 0.001 and seen[6:] == [0.001, 0.001]
    assert all(a > b for a, b in zip(seen[:6], seen[1:6]))


@pytest.mark.parametrize("kw", [dict(early_stopping=True, n_iter_no_change=2),
                                dict(tol=0.01, n_iter_no_change=2),
                                dict(schedule="adaptive", tol=0.01, n_iter_no_change=1)])
def test_callbacks_see_the_epoch_a_stopping_rule_ends_on(kw):
    net, X, y, _ = make_problem()
    seen = []
    net.fit(X, y, epochs=200, learning_rate=0.05, batch_size=8,
            callbacks=[lambda epoch, metrics: seen.append(epoch)], **kw)
    assert net.n_iter_ < 200  # (the rule ended the fit)
    assert seen == list(range(1, net.n_iter_ + 1))


def test_a_warm_start_left_to_its_defaults_goes_on_with_the_previous_fits_choices():
    a, X, y, _ = make_problem()
    b, _, _, _ = make_problem()
    kw = dict(optimizer="adam", learning_rate=0.005, schedule="step", batch_size=8)
    a.fit(X, y, epochs=5, **kw)
    a.partial_fit(X, y, batch_size=8)
    a.fit(X, y, epochs=2, warm_start=True, batch_size=8)
    b.fit(X, y, epochs=5, **kw)
    b.partial_fit(X, y, **kw)
    b.fit(X, y, epochs=2, warm_start=True, **kw)
    assert type(a._optimizer) is optim.Adam and a.n_iter_ == 8 and len(a.loss_curve_) == 8
    np.testing.assert_array_equal(a.get_params_vector(), b.get_params_vector())
    c, _, _, _ = make_problem()  # without warm_start, the defaults: sgd at 0.01, afresh
    c.fit(X, y, epochs=5, **kw)
    c.fit(X, y, epochs=1, batch_size=8)
    assert type(c._optimizer) is optim.SGD and c.n_iter_ == 1


@pytest.mark.parametrize("failing", [dict(learning_rate=1e300),
                                     dict(optimizer="sgd", learning_rate=1e300)],
                         ids=["same-optimizer", "other-optimizer"])
def test_a_failed_warm_start_leaves_the_last_good_fit_to_go_on_from(failing):
    # A fit that diverges in its first epoch keeps nothing of its own: not its rate (which a
    # warm start left to its defaults would take), nor its optimizer, nor a reset history
    rng = np.random.RandomState(0)
    X, y = rng.randn(60, 4), rng.randint(0, 3, 60)
    a, b = (fastbp.Network([4, 8, 3], output="softmax", dtype=np.float64, random_state=3)
            for _ in range(2))
    kw = dict(optimizer="adam", learning_rate=0.05, batch_size=8, schedule="step")
    for net in (a, b):
        net.fit(X, y, epochs=3, **kw)
    with pytest.raises(fastbp.DivergenceError):
        a.fit(X, y, epochs=2, warm_start=True, batch_size=8, **failing)
    assert a.n_iter_ == 3 and len(a.loss_curve_) == 3 and a.t_ == 3 * len(X)
    for net in (a, b):
        net.fit(X, y, epochs=2, warm_start=True, batch_size=8)
    np.testing.assert_array_equal(a.get_params_vector(), b.get_params_vector())
    assert a.loss_curve_ == b.loss_curve_ and type(a._optimizer) is optim.Adam


def test_an_explicit_rate_restarts_an_adaptive_schedule_on_a_warm_start():
    net, X, y, _ = make_problem()
    net.fit(X, y, epochs=2, learning_rate=0.05, schedule="adaptive", tol=1e-4, batch_size=8)
    rates = []
    net.fit(X, y, epochs=2, warm_start=True, learning_rate=0.2, schedule="adaptive", tol=1e-4,
            batch_size=8, callbacks=[lambda epoch, metrics: rates.append(metrics["learning_rate"])])
    assert rates == [0.2, 0.2]


def test_a_failed_early_stopping_warm_start_leaves_the_generator_as_it_was():
    net, X, y, _ = make_problem()
    net.fit(X, y, epochs=2, batch_size=8, optimizer="adam", learning_rate=0.01)
    state = network._generator_state(net._rng)

    def fail(epoch, metrics):
        raise RuntimeError("stop")
    with pytest.raises(RuntimeError):
        net.fit(X, y, epochs=2, warm_start=True, early_stopping=True, callbacks=[fail])
    assert network._generator_state(net._rng) == state and net.n_iter_ == 2


def test_a_rejected_fit_draws_nothing_from_the_generator():
    net = fastbp.Network(SHAPE, output="softmax", batch_norm=True, random_state=0)
    X, y = make_data(40, SHAPE[0], SHAPE[-1], "softmax")
    state = net._rng.get_state()[1].copy(), net._rng.get_state()[2]
    with pytest.raises(ValueError, match="batch_norm needs minibatches"):
        net.fit(X, y, epochs=2, batch_size=1, early_stopping=True)
    assert np.array_equal(net._rng.get_state()[1], state[0]) and net._rng.get_state()[2] == state[1]


@pytest.mark.parametrize("second", ["sgd", optim.Adam(beta_1=0.8)], ids=["sgd", "other-adam"])
def test_a_warm_start_with_another_optimizer_keeps_the_history(second):
    net, X, y, _ = make_problem()
    net.fit(X, y, epochs=5, optimizer="adam", learning_rate=0.1, schedule=optim.Step(2, 0.5),
            batch_size=8)
    losses = list(net.loss_curve_)
    rates = []
    net.fit(X, y, epochs=3, optimizer=second, warm_start=True, batch_size=8,
            callbacks=[lambda epoch, metrics: rates.append((epoch, metrics["learning_rate"]))])
    assert net.n_iter_ == 8 and net.loss_curve_[:5] == losses and len(net.loss_curve_) == 8
    assert net.t_ == 8 * X.shape[0] and net.gradient_norms_.shape[0] == 8
    assert rates == [(6, 0.025), (7, 0.0125), (8, 0.0125)]  # (the schedule goes on)
    assert net._optimizer == optim.get_optimizer(second)


@pytest.mark.parametrize("kw", [dict(early_stopping=True), dict(clip_norm=1.0),
                                dict(clip_value=0.5), dict(schedule="cosine"),
                                dict(validation_data="same")])
def test_lbfgs_rejects_the_options_it_would_ignore(kw):
    net, X, y, _ = make_problem()
    if "validation_data" in kw:
        kw = dict(validation_data=(X, y))
    before = net.get_params_vector()
    with pytest.raises(ValueError, match=f"L-BFGS takes none of {next(iter(kw))}"):
        net.fit(X, y, epochs=3, optimizer="lbfgs", **kw)
    np.testing.assert_array_equal(net.get_params_vector(), before)


def test_ctrl_c_in_the_epoch_that_ends_the_fit_is_reported():
    # A callback that stops the fit in the epoch where Ctrl-C came: the fit ends as it
    # would have, and warns that it was interrupted (the key press was lost before).
    import signal

    X, y = make_data(100, 3, 2, "softmax", seed=0)
    net = fastbp.Network([3, 5, 2], output="softmax", random_state=0)

    def stop(epoch, metrics):
        signal.raise_signal(signal.SIGINT)
        return True

    with pytest.warns(RuntimeWarning, match="interrupted after 1 epochs"):
        net.fit(X, y, epochs=5, batch_size=20, callbacks=[stop])
    assert net.n_iter_ == 1


def test_callbacks_that_are_not_a_list_are_named():
    X, y = make_data(20, 3, 2, "softmax", seed=0)
    net = fastbp.Network([3, 5, 2], output="softmax", random_state=0)
    with pytest.raises(TypeError, match="callbacks must be a callable or a list"):
        net.fit(X, y, epochs=1, callbacks=3)
