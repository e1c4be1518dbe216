"""Epoch orders drawn from a NumPy ``RandomState``'s own stream, without Python per epoch.

``Network.fit`` shuffles the training rows every epoch with ``RandomState.permutation``,
as scikit-learn does, so that both visit the rows in the same order for the same seed.
That call costs about 25 ns per row, more than a whole epoch of a small network.  This
module draws the same permutations in compiled code from the generator's state (the
MT19937 key and position of ``RandomState.get_state``), which the caller
(``network._draw_epoch_orders``) writes back, so the generator ends exactly where ``k``
calls of ``permutation`` would leave it.

The algorithm is NumPy's legacy one: a Fisher-Yates pass from the last element down,
each index drawn uniformly in ``[0, i]`` by masking a 32-bit draw (64-bit above
``2**32 - 1``) to the smallest covering power of two and rejecting draws above ``i``.
"""
from .._config import njit, njit_entry

N = 624
M = 397
MATRIX_A = 0x9908B0DF
UPPER = 0x80000000
LOWER = 0x7FFFFFFF


@njit
def _twist(key):
    """Regenerate the 624 words of the MT19937 state (int64 words below ``2**32``)."""
    for i in range(N):
        y = (key[i] & UPPER) | (key[i + 1 if i + 1 < N else 0] & LOWER)
        v = key[i + M if i + M < N else i + M - N] ^ (y >> 1)
        key[i] = v ^ MATRIX_A if y & 1 else v


@njit
def permute_in_place(key, pos, x):
    """Shuffle ``x`` as ``RandomState.shuffle`` does from the state ``(key, pos)``; returns
    the new position (``key`` is updated in place)."""
    for i in range(x.shape[0] - 1, 0, -1):
        mask = i
        for shift in (1, 2, 4, 8, 16, 32):
            mask |= mask >> shift
        while True:
            # one tempered 32-bit output (two, high word first, above 2**32 - 1)
            value = 0
            for _ in range(1 if i <= 0xFFFFFFFF else 2):
                if pos >= N:
                    _twist(key)
                    pos = 0
                y = key[pos]
                pos += 1
                y ^= y >> 11
                y ^= (y << 7) & 0x9D2C5680
                y ^= (y << 15) & 0xEFC60000
                y ^= y >> 18
                value = (value << 32) | y
            value &= mask
            if value <= i:
                break
        t = x[i]
        x[i] = x[value]
        x[value] = t
    return pos


@njit_entry
def epoch_orders(key, pos, perm, rows, orders, scratch):
    """For each row ``e`` of ``orders``: ``perm = perm[permutation(n)]``, then
    ``orders[e] = rows[perm]`` (the rows visited in epoch ``e``).  ``perm`` is updated in
    place; ``scratch`` holds ``2 n`` int64."""
    n = perm.shape[0]
    p, nxt = scratch[:n], scratch[n:2 * n]
    for e in range(orders.shape[0]):
        for i in range(n):
            p[i] = i
        pos[0] = permute_in_place(key, pos[0], p)
        for i in range(n):
            nxt[i] = perm[p[i]]
        for i in range(n):
            perm[i] = nxt[i]
            orders[e, i] = rows[nxt[i]]
