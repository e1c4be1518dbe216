"""The same network trained the same way by fastbp and by its peers, for the suites.

The peers themselves are :mod:`fastbp.peers` (``python -m fastbp compare`` uses them too):
each starts from the same initial weights, trains with plain minibatch SGD on shuffled
batches, and exposes what the suites time, ``fit_epochs``, ``predict`` and
``loss_and_gradients``, and ``warm_up``, which a benchmark's ``setup`` calls so that no
compilation (Numba's, XLA's) or first-call allocation lands in a timed sample.

This module adds asv's convention: a peer that is not installed raises
``NotImplementedError`` in :func:`make_peer`, which asv reports as a skipped benchmark.
"""
from fastbp import peers as _peers
from fastbp.peers import (  # noqa: F401  (re-exported)
    FastbpPeer,
    JaxPeer,
    NumpyPeer,
    SklearnPeer,
    TorchPeer,
    initial_weights,
)

from .common import get_data, require, workload

_PEERS = _peers.PEERS


def make_peer(library, w, dtype=None, init=None):
    """A peer of ``library`` for workload ``w`` (in ``dtype``, default the workload's),
    starting from ``init = (coefs, intercepts)`` or from :func:`initial_weights`; raises
    ``NotImplementedError`` when ``library`` is not installed."""
    require(library)
    return _peers.make_peer(library, w, dtype, init)


def warm_peer(name, library, dtype=None):
    """Workload ``name``, its data and a peer training on it, compiled and warmed up, so that
    no timing includes compilation: ``(w, X, y, peer)``."""
    w = workload(name)
    X, y = get_data(w, dtype)
    peer = make_peer(library, w, dtype)
    peer.warm_up(X, y)
    return w, X, y, peer
