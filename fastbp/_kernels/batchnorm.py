"""Batch normalization of a hidden layer, one unit (one row of a feature-major block) at a time.

A batch-normalized layer computes ``z = W.T a`` (no bias), normalizes each unit over the
batch, ``u = (z - mean) / sqrt(var + EPS)``, then scales and shifts it,
``y = gamma * u + beta``, before its activation.  ``beta`` is the layer's bias slot in the
flat vector, ``gamma`` follows it.  In training (``TRAIN``, ``TRAIN_UPDATE``) the mean and
the biased variance are the batch's; ``TRAIN_UPDATE`` also moves the running statistics
towards them by ``MOMENTUM`` (the variance unbiased, as PyTorch's ``BatchNorm1d`` does).
``EVAL`` normalizes with the running statistics.

The backward pass needs ``u`` and ``1 / sqrt(var + EPS)``: the forward pass keeps them in
the layer's block ``U`` of the activation buffer, ``u`` as a flat ``(n, nb)`` block and the
inverse deviations after it.
"""
import numpy as np

from .._config import njit

#: PyTorch's BatchNorm1d defaults.
EPS = 1e-5
MOMENTUM = 0.1

EVAL = 0
TRAIN = 1
TRAIN_UPDATE = 2


@njit
def normalize_row(z, gamma, mode, U, stats, s0, j, n, nb):
    """Unit ``j`` of ``n``: ``z[:] = gamma * (z - mean) / sqrt(var + EPS)`` in place (the
    shift and the activation come after, from the caller).  ``stats[s0 + j]`` and
    ``stats[s0 + n + j]`` are the unit's running mean and variance."""
    if mode == EVAL:
        m = z.dtype.type(stats[s0 + j])
        s = z.dtype.type(gamma / np.sqrt(np.float64(stats[s0 + n + j]) + EPS))
        for b in range(nb):
            z[b] = (z[b] - m) * s
        return
    total = 0.0
    for b in range(nb):
        total += np.float64(z[b])
    mean = total / nb
    sq = 0.0
    for b in range(nb):
        d = np.float64(z[b]) - mean
        sq += d * d
    var = sq / nb
    inv = z.dtype.type(1.0 / np.sqrt(var + EPS))
    m = z.dtype.type(mean)
    u = U[j * nb:(j + 1) * nb]
    for b in range(nb):
        v = (z[b] - m) * inv
        u[b] = v
        z[b] = gamma * v
    U[n * nb + j] = inv
    if mode == TRAIN_UPDATE:
        keep = 1.0 - MOMENTUM
        stats[s0 + j] = keep * stats[s0 + j] + MOMENTUM * mean
        if nb > 1:  # one sample has no unbiased variance: the running variance stays
            stats[s0 + n + j] = keep * stats[s0 + n + j] + MOMENTUM * var * nb / (nb - 1)


@njit
def backward(params, grad, b0, g0, n, D, U, nb):
    """``D`` (flat ``(n, nb)``) holds the loss's gradient with respect to the layer's
    normalized-and-shifted values ``y``: write the shift's and the scale's gradients into
    ``grad[b0:]`` and ``grad[g0:]`` and overwrite ``D`` with the gradient with respect to
    ``z``: ``gamma / sqrt(var + EPS) * (dy - mean(dy) - u * mean(dy * u))``."""
    zero = D.dtype.type(0)
    for j in range(n):
        d = D[j * nb:(j + 1) * nb]
        u = U[j * nb:(j + 1) * nb]
        sd = zero
        sdu = zero
        for b in range(nb):
            sd += d[b]
            sdu += d[b] * u[b]
        grad[b0 + j] = sd
        grad[g0 + j] = sdu
        k = params[g0 + j] * U[n * nb + j]
        md = D.dtype.type(sd / nb)
        mdu = D.dtype.type(sdu / nb)
        for b in range(nb):
            d[b] = k * (d[b] - md - u[b] * mdu)
