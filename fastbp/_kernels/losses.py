"""Losses and output-layer deltas, computed stably from the logits.

Conventions are scikit-learn's: squared error is the mean over samples and
outputs of ``(y - p)**2 / 2``; log losses are sums over outputs averaged over
samples.  ``loss_and_delta`` returns the *weighted sum over the batch's samples*
of the per-sample loss (in float64) and overwrites the logits with the gradient
of ``scale`` times that sum, so ``scale = 1 / sum(weights)`` gives the gradient
of the weighted mean.  Loops run along the batch (feature-major blocks), so they
vectorize; exponentials come from ``mathfn``.
"""
import numpy as np

from .._config import njit
from . import mathfn
from ._features import WITH_OUT_POISSON, WITH_OUT_SIGMOID, WITH_OUT_SOFTMAX

OUT_IDENTITY = 0
OUT_SIGMOID = 1
OUT_SOFTMAX = 2
OUT_POISSON = 3

#: Scratch values per sample that ``loss_and_delta`` and ``output_activation`` need.
SCRATCH_PER_SAMPLE = 4


@njit
def _softmax_columns(Z, nb, n_out, m, s):
    """Per column b of ``Z``: ``m[b] = max_k Z[k, b]``, ``Z[k, b] = exp(Z[k, b] - m[b])``,
    ``s[b] = sum_k Z[k, b]`` (the softmax before normalisation)."""
    for b in range(nb):  # (not a slice assignment: its shape check compiles error formatting)
        m[b] = Z[b]
    for k in range(1, n_out):
        z = Z[k * nb:(k + 1) * nb]
        for b in range(nb):
            m[b] = max(m[b], z[b])
    s[:] = 0
    for k in range(n_out):
        z = Z[k * nb:(k + 1) * nb]
        for b in range(nb):
            e = z.dtype.type(mathfn.exp(z[b] - m[b]))
            z[b] = e
            s[b] += e


@njit
def loss_and_delta(code, Z, Y, SW, order, start, nb, n_out, scale, want_loss, scratch):
    """Loss of the logits ``Z`` (flat ``(n_out, nb)``) against rows ``order[start:start+nb]`` of ``Y``.

    Each sample's loss is weighted by its entry of ``SW``.  ``Z`` is overwritten with
    ``scale * d(weighted loss sum)/dZ``.  Returns the weighted sum of the per-sample
    losses, or 0 without computing it when ``want_loss`` is false (it costs a
    logarithm per output for the sigmoid and Poisson losses).  ``scratch`` holds at
    least ``SCRATCH_PER_SAMPLE * nb`` values.
    """
    total = 0.0
    if WITH_OUT_SOFTMAX and code == OUT_SOFTMAX:
        return _softmax_loss(Z, Y, SW, order, start, nb, n_out, scale, scratch)
    # Contiguous copies of the batch's targets (one output at a time), its weights, and
    # its weights times the scale, so that the loops below read memory in order and
    # vectorize.
    y, w, ws = scratch[:nb], scratch[nb:2 * nb], scratch[2 * nb:3 * nb]
    s = Z.dtype.type(scale / n_out) if code == OUT_IDENTITY else Z.dtype.type(scale)
    for b in range(nb):
        w[b] = SW[order[start + b]]
        ws[b] = w[b] * s
    for k in range(n_out):
        for b in range(nb):
            y[b] = Y[order[start + b], k]
        z_k = Z[k * nb:(k + 1) * nb]
        # Branch-free loops, so that each vectorizes; with the loss, one loop takes it and
        # the delta (in place of the logits) from the same exponential.
        if WITH_OUT_SIGMOID and want_loss and code == OUT_SIGMOID:
            for b in range(nb):
                z = np.float64(z_k[b])
                # -y log p - (1 - y) log(1 - p) = log(1 + exp(z)) - y z, and p = sigmoid(z)
                # as mathfn.sigmoid takes it, from e = exp(-|z|)
                e = mathfn.exp(-abs(z))
                total += np.float64(w[b]) * (max(z, 0.0) + mathfn.log1p(e) - np.float64(y[b]) * z)
                p = 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
                z_k[b] = (Z.dtype.type(p) - y[b]) * ws[b]
            continue
        if WITH_OUT_POISSON and want_loss and code != OUT_IDENTITY:  # Poisson
            for b in range(nb):
                z = np.float64(z_k[b])
                yb = np.float64(y[b])
                # y log(y / p) - y + p with p = exp(z); the derivative p - y
                p = mathfn.exp(z)
                total += np.float64(w[b]) * ((yb * mathfn.log(yb) if yb > 0.0 else 0.0)
                                             - yb * z - yb + p)
                z_k[b] = Z.dtype.type(p - y[b]) * ws[b]
            continue
        if want_loss:  # identity
            for b in range(nb):
                d = np.float64(z_k[b]) - np.float64(y[b])
                total += np.float64(w[b]) * (0.5 * d * d)
        if code == OUT_IDENTITY:
            for b in range(nb):
                z_k[b] = (z_k[b] - y[b]) * ws[b]
        elif WITH_OUT_SIGMOID and code == OUT_SIGMOID:
            for b in range(nb):
                z_k[b] = (Z.dtype.type(mathfn.sigmoid(z_k[b])) - y[b]) * ws[b]
        elif WITH_OUT_POISSON:  # Poisson: derivative p - y
            for b in range(nb):
                z_k[b] = Z.dtype.type(mathfn.exp(z_k[b]) - y[b]) * ws[b]
    return total / n_out if code == OUT_IDENTITY else total


@njit
def _softmax_loss(Z, Y, SW, order, start, nb, n_out, scale, scratch):
    """The softmax branch of ``loss_and_delta``.  Its delta is ``p sum_k y_k - y``, the
    derivative of the loss below for any targets (``p - y`` for rows that sum to 1)."""
    s = Z.dtype.type(scale)
    total = 0.0
    # loss_b = sum_k y_k (lse_b - z_kb) = lse_b * sum_k y_k - sum_k y_k z_kb
    m, ssum = scratch[:nb], scratch[nb:2 * nb]
    yz, ys = scratch[2 * nb:3 * nb], scratch[3 * nb:4 * nb]
    yz[:] = 0
    ys[:] = 0
    for k in range(n_out):
        z = Z[k * nb:(k + 1) * nb]
        for b in range(nb):
            y = Y[order[start + b], k]
            yz[b] += y * z[b]
            ys[b] += y
    _softmax_columns(Z, nb, n_out, m, ssum)
    for b in range(nb):
        r = order[start + b]
        lse = np.float64(m[b]) + mathfn.log(ssum[b])
        total += np.float64(SW[r]) * (lse * np.float64(ys[b]) - np.float64(yz[b]))
        ssum[b] = ys[b] / ssum[b]
        m[b] = SW[r] * s  # reused: each sample's weight times scale
    for k in range(n_out):
        z = Z[k * nb:(k + 1) * nb]
        for b in range(nb):
            z[b] = (z[b] * ssum[b] - Y[order[start + b], k]) * m[b]
    return total


@njit
def output_activation(code, Z, nb, n_out, scratch):
    """Turn logits ``Z`` (flat ``(n_out, nb)``) into the output layer's values in place
    (``scratch``: at least ``2 * nb`` values)."""
    if WITH_OUT_SIGMOID and code == OUT_SIGMOID:
        for i in range(n_out * nb):
            Z[i] = mathfn.sigmoid(Z[i])
    elif WITH_OUT_SOFTMAX and code == OUT_SOFTMAX:
        m, ssum = scratch[:nb], scratch[nb:2 * nb]
        _softmax_columns(Z, nb, n_out, m, ssum)
        for b in range(nb):
            ssum[b] = 1 / ssum[b]
        for k in range(n_out):
            z = Z[k * nb:(k + 1) * nb]
            for b in range(nb):
                z[b] *= ssum[b]
    elif WITH_OUT_POISSON and code == OUT_POISSON:
        for i in range(n_out * nb):
            Z[i] = mathfn.exp(Z[i])
