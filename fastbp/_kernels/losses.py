"""Losses and output-layer deltas, computed stably from the logits.

Conventions are scikit-learn's: squared error is the mean over samples and
outputs of ``(y - p)**2 / 2``; log losses are sums over outputs averaged over
samples.  Each function returns the *sum over the batch's samples* of the
per-sample loss (in float64) and overwrites the logits with the gradient of
``scale`` times that sum, so ``scale = 1 / n`` gives the gradient of the mean.
"""
import numpy as np

from .._config import njit

OUT_IDENTITY = 0
OUT_SIGMOID = 1
OUT_SOFTMAX = 2
OUT_POISSON = 3


@njit
def sigmoid(z, one):
    """Logistic function of a scalar, exact in both tails (``one`` fixes the dtype)."""
    if z >= 0:
        return one / (one + np.exp(-z))
    e = np.exp(z)
    return e / (one + e)


@njit
def log_sum_exp(Z, b, nb, n_out):
    """``log(sum_k exp(Z[k, b]))`` of column ``b`` of a flat ``(n_out, nb)`` block, as float64."""
    m = Z[b]
    for k in range(1, n_out):
        m = max(m, Z[k * nb + b])
    acc = 0.0
    for k in range(n_out):
        acc += np.exp(np.float64(Z[k * nb + b] - m))
    return np.float64(m) + np.log(acc)


@njit
def loss_and_delta(code, Z, Y, SW, order, start, nb, n_out, scale, want_loss):
    """Loss of the logits ``Z`` (flat ``(n_out, nb)``) against rows ``order[start:start+nb]`` of ``Y``.

    Each sample's loss is weighted by its entry of ``SW``.  ``Z`` is overwritten with
    ``scale * d(weighted loss sum)/dZ``.  Returns the weighted sum of the per-sample
    losses, or 0 without computing it when ``want_loss`` is false (it costs a
    logarithm per output for the log losses).
    """
    one = Z.dtype.type(1)
    zero = Z.dtype.type(0)
    total = 0.0
    if code == OUT_IDENTITY:
        s = Z.dtype.type(scale / n_out)
        for k in range(n_out):
            for b in range(nb):
                r = order[start + b]
                d = Z[k * nb + b] - Y[r, k]
                total += 0.5 * np.float64(SW[r]) * np.float64(d) * np.float64(d)
                Z[k * nb + b] = d * (SW[r] * s)
        return total / n_out
    s = Z.dtype.type(scale)
    if code == OUT_SIGMOID:
        for k in range(n_out):
            for b in range(nb):
                r = order[start + b]
                z = Z[k * nb + b]
                y = Y[r, k]
                e = np.exp(-abs(z))
                p = one / (one + e) if z >= zero else e / (one + e)
                if want_loss:
                    # -y log p - (1 - y) log(1 - p) = log(1 + exp(z)) - y z
                    total += np.float64(SW[r]) * (max(np.float64(z), 0.0) + np.log1p(np.float64(e))
                                                  - np.float64(y) * np.float64(z))
                Z[k * nb + b] = (p - y) * (SW[r] * s)
        return total
    if code == OUT_POISSON:
        # p = exp(z); loss y log(y / p) - y + p, whose derivative in z is p - y.
        for k in range(n_out):
            for b in range(nb):
                r = order[start + b]
                z = np.float64(Z[k * nb + b])
                y = np.float64(Y[r, k])
                p = np.exp(z)
                if want_loss:
                    ylogy = y * np.log(y) if y > 0.0 else 0.0
                    total += np.float64(SW[r]) * (ylogy - y * z - y + p)
                Z[k * nb + b] = Z.dtype.type(p - y) * (SW[r] * s)
        return total
    # softmax: per sample, log-sum-exp over the outputs
    for b in range(nb):
        r = order[start + b]
        lse = log_sum_exp(Z, b, nb, n_out)
        ws = SW[r] * s
        for k in range(n_out):
            y = Y[r, k]
            z = Z[k * nb + b]
            total += np.float64(SW[r]) * np.float64(y) * (lse - np.float64(z))
            Z[k * nb + b] = (Z.dtype.type(np.exp(np.float64(z) - lse)) - y) * ws
    return total


@njit
def output_activation(code, Z, nb, n_out):
    """Turn logits ``Z`` (flat ``(n_out, nb)``) into the output layer's values in place."""
    one = Z.dtype.type(1)
    if code == OUT_SIGMOID:
        for i in range(n_out * nb):
            Z[i] = sigmoid(Z[i], one)
    elif code == OUT_SOFTMAX:
        for b in range(nb):
            lse = log_sum_exp(Z, b, nb, n_out)
            for k in range(n_out):
                Z[k * nb + b] = np.exp(np.float64(Z[k * nb + b]) - lse)
    elif code == OUT_POISSON:
        for i in range(n_out * nb):
            Z[i] = np.exp(Z[i])
