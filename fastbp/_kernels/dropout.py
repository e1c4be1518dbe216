"""Inverted dropout with masks that are recomputed, never stored.

Whether unit ``j`` of hidden layer ``l`` is kept for sample ``b`` of a batch is a hash of
``(seed, l, j, b)`` (the SplitMix64 finaliser, a counter-based generator): the forward
pass and the backward pass compute the same mask independently, no mask buffer is
needed, and the result does not depend on how the work is split.  The caller derives
``seed`` per batch from the network's random state, so runs are reproducible.  Kept
units are scaled by ``1 / (1 - p)`` so that the expected activation is unchanged and
prediction (which applies no dropout) needs no rescaling.
"""
import numpy as np

from .._config import njit, njit_alloc

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit
def _hash(x):
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


@njit
def batch_seed(epoch_seed, start):
    """The seed of the batch starting at row ``start`` of an epoch seeded ``epoch_seed``."""
    return np.int64(_hash(np.uint64(epoch_seed) + np.uint64(start) * _GOLDEN) >> np.uint64(1))


@njit
def apply_row(t, seed, l, j, nb, p):
    """``t[b] *= mask(seed, l, j, b) / (1 - p)`` for the row of unit ``j`` of layer ``l``."""
    scale = 1.0 / (1.0 - p)
    base = np.uint64(seed) + (np.uint64(l) * _MIX1 + np.uint64(j)) * _GOLDEN
    for b in range(nb):
        u = np.float64(_hash(base + np.uint64(b) * _MIX2) >> np.uint64(11)) * _TO_UNIT
        t[b] *= t.dtype.type(scale * (u >= p))


@njit_alloc
def mask(seed, l, n_units, nb, p):
    """The ``(n_units, nb)`` factors (0 or ``1 / (1 - p)``) that ``apply_row`` multiplies by:
    for tests and for users who want to see a mask."""
    out = np.ones((n_units, nb))
    for j in range(n_units):
        apply_row(out[j], seed, l, j, nb, p)
    return out
