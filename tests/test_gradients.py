"""Gradients of the kernels against central finite differences and against the NumPy reference."""
import numpy as np
import pytest

import fastbp
from fastbp import _config, reference

from conftest import ACTIVATIONS, OUTPUTS, make_data, targets_2d

SHAPES = {
    "one hidden": [3, 5, 2],
    "two hidden": [4, 6, 5, 3],
    "four hidden": [3, 4, 5, 4, 3, 2],
}


def finite_difference_gradient(net, X, y, eps=1e-6):
    theta = net.get_params_vector()
    grad = np.empty_like(theta)

    def loss_at(k, step):
        shifted = theta.copy()
        shifted[k] += step
        net.set_params_vector(shifted)
        return net.loss_and_gradients(X, y)[0]

    for k in range(theta.size):
        grad[k] = (loss_at(k, eps) - loss_at(k, -eps)) / (2 * eps)
    net.set_params_vector(theta)
    return grad


def flat(coef_grads, intercept_grads):
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(coef_grads, intercept_grads)])


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_matches_finite_differences(activation, output, shape):
    net = fastbp.Network(shape, activation=activation, output=output, dtype=np.float64,
                         random_state=3)
    X, y = make_data(7, shape[0], shape[-1], output, seed=1)
    loss, gW, gb = net.loss_and_gradients(X, y)
    analytic = flat(gW, gb)
    numeric = finite_difference_gradient(net, X, y)
    rel = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert rel < 1e-6, rel
    assert np.isfinite(loss) and loss > 0


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_loss_and_gradients_match_reference(activation, output):
    shape = [5, 8, 6, 3]
    net = fastbp.Network(shape, activation=activation, output=output, dtype=np.float64,
                         random_state=0)
    X, y = make_data(23, shape[0], shape[-1], output, seed=2)
    loss, gW, gb = net.loss_and_gradients(X, y)
    ref_loss, ref_gW, ref_gb = reference.loss_and_gradients(
        net.coefs_, net.intercepts_, X, targets_2d(y, 3, output), activation, output)
    assert loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(flat(gW, gb), flat(ref_gW, ref_gb), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", [1, 2, 1025])
@pytest.mark.parametrize("n_in, n_out", [(65, 129), (300, 257)])
def test_gradients_of_a_tile_layer_match_the_reference_for_any_batch(dtype, rows, n_in, n_out):
    # 65 -> 129: a layer of the register tiles, with edges; one row (or a last chunk of one
    # row) made those edge products degenerate (K = 1).  300 -> 257: its weight gradient
    # in the tiles where they take larger layers' (_config.TILE_MAX_GRAD_WEIGHTS), its
    # forward product and delta in BLAS
    from fastbp._kernels.dense import use_gradient_tiles, use_tiles
    from conftest import compiled
    shape = [n_in, n_out, 3]
    for nb in (1, 2):
        assert compiled(use_tiles)(n_in, n_out, nb) == (n_in * n_out <= _config.TILE_MAX_WEIGHTS)
        assert compiled(use_gradient_tiles)(n_in, n_out, nb) == (
            n_in * n_out <= _config.TILE_MAX_GRAD_WEIGHTS)
    net = fastbp.Network(shape, activation="tanh", output="softmax", dtype=dtype,
                         random_state=0)
    X, y = make_data(rows, shape[0], shape[-1], "softmax", seed=3, dtype=dtype)
    loss, gW, gb = net.loss_and_gradients(X, y)
    ref_loss, ref_gW, ref_gb = reference.loss_and_gradients(
        [W.astype(np.float64) for W in net.coefs_], [b.astype(np.float64) for b in net.intercepts_],
        X.astype(np.float64), targets_2d(y, 3, "softmax"), "tanh", "softmax")
    tol = 1e-10 if dtype == np.float64 else 2e-4
    assert loss == pytest.approx(ref_loss, rel=tol)
    np.testing.assert_allclose(flat(gW, gb), flat(ref_gW, ref_gb), rtol=tol, atol=tol * 1e-2)


def test_softmax_gradient_is_the_losss_for_rows_that_sum_to_one_within_rounding():
    # probability rows are accepted within 1e-4 of summing to 1; the gradient must still be
    # the loss's own (p sum(y) - y), as PyTorch's cross-entropy with probability targets
    rng = np.random.RandomState(0)
    net = fastbp.Network([4, 6, 3], activation="tanh", output="softmax", dtype=np.float64,
                         random_state=0)
    X = rng.standard_normal((20, 4))
    Y = rng.dirichlet(np.ones(3), 20) * (1 + 9e-5)
    loss, gW, gb = net.loss_and_gradients(X, Y)
    np.testing.assert_allclose(flat(gW, gb), finite_difference_gradient(net, X, Y),
                               rtol=1e-6, atol=1e-9)
    ref = reference.loss_and_gradients(net.coefs_, net.intercepts_, X, Y, "tanh", "softmax")
    np.testing.assert_allclose(flat(gW, gb), flat(ref[1], ref[2]), rtol=1e-10, atol=1e-13)


def test_reference_gradient_matches_finite_differences():
    # The oracle is checked too, so the two cannot agree on a shared mistake.
    shape = [3, 4, 2]
    for activation in ACTIVATIONS:
        for output in OUTPUTS:
            rng = np.random.RandomState(0)
            coefs = [rng.standard_normal((a, b)) for a, b in zip(shape[:-1], shape[1:])]
            intercepts = [rng.standard_normal(b) for b in shape[1:]]
            X, y = make_data(6, 3, 2, output, seed=4)
            Y = targets_2d(y, 2, output)
            _, gW, gb = reference.loss_and_gradients(coefs, intercepts, X, Y, activation, output)
            eps = 1e-6
            for params, grads in ((coefs, gW), (intercepts, gb)):
                for P, G in zip(params, grads):
                    for idx in np.ndindex(P.shape):
                        old = P[idx]
                        P[idx] = old + eps
                        up = reference.loss_and_gradients(coefs, intercepts, X, Y, activation, output)[0]
                        P[idx] = old - eps
                        down = reference.loss_and_gradients(coefs, intercepts, X, Y, activation, output)[0]
                        P[idx] = old
                        assert G[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)


def test_large_inputs_give_finite_losses():
    # Logits far beyond exp's range: the log losses are computed from logits without overflow.
    for output in ("sigmoid", "softmax"):
        net = fastbp.Network([2, 3], activation="relu", output=output, dtype=np.float64,
                             random_state=0)
        net.coefs_[0][...] = 1000.0
        X = np.array([[1.0, 2.0], [-3.0, -1.0]])
        y = np.array([0, 1]) if output == "softmax" else np.array([[0, 1, 0], [1, 1, 0]])
        loss, gW, gb = net.loss_and_gradients(X, y)
        ref = reference.loss_and_gradients(net.coefs_, net.intercepts_, X,
                                           targets_2d(y, 3, output), "relu", output)
        assert np.isfinite(loss) and loss == pytest.approx(ref[0], rel=1e-12)
        assert all(np.isfinite(g).all() for g in gW + gb)


RESIDUAL_SHAPES = {
    "middle": [4, 6, 6, 6, 3],     # 4 -> 6 plain, then two shortcuts
    "from_input": [5, 5, 7, 2],    # the first layer adds X itself
}


@pytest.mark.parametrize("shape", RESIDUAL_SHAPES.values(), ids=RESIDUAL_SHAPES.keys())
@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "softplus"])
@pytest.mark.parametrize("output", ["identity", "softmax"])
def test_residual_gradients_match_finite_differences_and_reference(shape, activation, output):
    net = fastbp.Network(shape, activation=activation, output=output, dtype=np.float64,
                         random_state=3, residual=True)
    assert (net._table[:, 5] & 1).sum() == sum(
        a == b for a, b in zip(shape[:-2], shape[1:-1]))
    X, y = make_data(9, shape[0], shape[-1], output, seed=2)
    Y = targets_2d(y, shape[-1], output)
    loss, gW, gb = net.loss_and_gradients(X, y)
    ref_loss, ref_gW, ref_gb = reference.loss_and_gradients(
        net.coefs_, net.intercepts_, X, Y, activation, output, residual=True)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for g, r in zip(gW + gb, ref_gW + ref_gb):
        np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12)
    # and the reference itself against finite differences, on every parameter
    params = net.get_params_vector().copy()
    analytic = np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(ref_gW, ref_gb)])
    h = 1e-6

    def loss_at(k, step):
        p = params.copy()
        p[k] += step
        net.set_params_vector(p)
        return net.loss_and_gradients(X, y)[0]

    numeric = np.array([(loss_at(k, h) - loss_at(k, -h)) / (2 * h) for k in range(params.size)])
    net.set_params_vector(params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def flat_bn(net, coef_grads, intercept_grads, scale_grads):
    """The gradients in the flat vector's order: per layer W, b, then the scales."""
    parts = []
    for l, (W, b) in enumerate(zip(coef_grads, intercept_grads)):
        parts += [W.ravel(), b] + ([scale_grads[l]] if l < len(scale_grads) else [])
    return np.concatenate(parts)


BN_CASES = {
    # widths, samples: the loops (narrow layers), then tiles, then BLAS for every layer
    # but the last, the first one reading whole gathered rows
    "loops": ([4, 6, 6, 3], 9),
    "tiles": ([12, 16, 16, 3], 64),
    "blas": ([12, 16, 16, 3], 70),
}


@pytest.mark.parametrize("case", BN_CASES.values(), ids=BN_CASES.keys())
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "softplus"])
@pytest.mark.parametrize("output", ["identity", "softmax"])
def test_batch_norm_gradients_match_finite_differences_and_reference(case, residual, activation,
                                                                      output):
    shape, n = case
    net = fastbp.Network(shape, activation=activation, output=output, dtype=np.float64,
                         random_state=5, batch_norm=True, residual=residual)
    rng = np.random.RandomState(1)
    # Scales and shifts away from their initial 1 and 0, so that every term counts.
    for g, b in zip(net.scales_, net.intercepts_):
        g[:] = rng.uniform(0.5, 1.5, g.shape)
        b[:] = rng.normal(0.0, 0.3, b.shape)
    X, y = make_data(n, shape[0], shape[-1], output, seed=2)
    X = 3.0 * X + 1.0  # inputs neither centred nor scaled: the normalization matters
    Y = targets_2d(y, shape[-1], output)
    loss, gW, gb, gs = net.loss_and_gradients(X, y)
    assert len(gs) == len(shape) - 2
    ref_loss, ref_gW, ref_gb, ref_gs = reference.loss_and_gradients(
        net.coefs_, net.intercepts_, X, Y, activation, output, residual=residual,
        scales=net.scales_)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for g, r in zip(gW + gb + gs, ref_gW + ref_gb + ref_gs):
        np.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-11)
    analytic = flat_bn(net, gW, gb, gs)
    numeric = finite_difference_gradient(net, X, y)
    rel = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert rel < 1e-6, rel


def test_batch_norm_float32_gradients_match_reference():
    shape = [12, 16, 16, 3]
    net = fastbp.Network(shape, activation="relu", output="softmax", dtype=np.float32,
                         random_state=0, batch_norm=True, residual=True)
    X, y = make_data(64, 12, 3, "softmax", seed=3, dtype=np.float32)
    loss, gW, gb, gs = net.loss_and_gradients(X, y)
    cast = [[a.astype(np.float64) for a in v] for v in (net.coefs_, net.intercepts_, net.scales_)]
    ref = reference.loss_and_gradients(cast[0], cast[1], X.astype(np.float64),
                                       targets_2d(y, 3, "softmax"), "relu", "softmax",
                                       residual=True, scales=cast[2])
    assert loss == pytest.approx(ref[0], rel=1e-5)
    for g, r in zip(gW + gb + gs, ref[1] + ref[2] + ref[3]):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=2e-3, atol=2e-5)


def test_batch_norm_cancels_shifts_of_its_input():
    # Normalization removes any constant added to a unit over the batch: shifting every
    # input sample by the same vector leaves the loss as it was (it would not without
    # batch normalization), while the layer's intercept, the shift after normalizing,
    # still moves it.
    kw = dict(activation="tanh", output="identity", dtype=np.float64, random_state=0)
    X, y = make_data(20, 3, 2, "identity", seed=0)
    shift = np.array([7.0, -2.0, 0.5])
    net = fastbp.Network([3, 5, 2], batch_norm=True, **kw)
    base = net.loss_and_gradients(X, y)[0]
    assert net.loss_and_gradients(X + shift, y)[0] == pytest.approx(base, rel=1e-9)
    plain = fastbp.Network([3, 5, 2], **kw)
    assert plain.loss_and_gradients(X + shift, y)[0] != pytest.approx(
        plain.loss_and_gradients(X, y)[0], rel=1e-3)
    net.intercepts_[0][:] += 0.5
    assert net.loss_and_gradients(X, y)[0] != pytest.approx(base, rel=1e-3)


def test_reference_batch_norm_gradients_match_finite_differences():
    rng = np.random.RandomState(0)
    shape = [3, 4, 4, 2]
    coefs = [rng.standard_normal((a, b)) for a, b in zip(shape[:-1], shape[1:])]
    intercepts = [rng.standard_normal(b) for b in shape[1:]]
    scales = [rng.uniform(0.5, 1.5, b) for b in shape[1:-1]]
    X = rng.standard_normal((7, 3)) * 2 + 1
    Y = rng.standard_normal((7, 2))
    _, gW, gb, gs = reference.loss_and_gradients(coefs, intercepts, X, Y, "tanh", "identity",
                                                 scales=scales)
    eps = 1e-6
    for params, grads in ((coefs, gW), (intercepts, gb), (scales, gs)):
        for P, G in zip(params, grads):
            for idx in np.ndindex(P.shape):
                old = P[idx]
                P[idx] = old + eps
                up = reference.loss_and_gradients(coefs, intercepts, X, Y, "tanh", "identity",
                                                  scales=scales)[0]
                P[idx] = old - eps
                down = reference.loss_and_gradients(coefs, intercepts, X, Y, "tanh", "identity",
                                                    scales=scales)[0]
                P[idx] = old
                assert G[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)
