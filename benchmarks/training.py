"""Training speed: seconds per epoch of minibatch training, for each workload.

Every time benchmark here reports the mean seconds of ONE epoch: a timed call runs
``w.epochs`` epochs in one ``fit`` (100 for the tiny workload, whose epoch takes
microseconds, so that ``fit``'s once-per-call cost is spread as in a real fit; one for
the medium and large ones) and its ``timer`` divides the clock by that count.
"""
import numpy as np

from .common import DTYPES, LIBRARIES, OPTIMIZERS, WORKLOAD_NAMES, epoch_timer, epochs_per_call, \
    get_data, median_seconds, repeats_for_tracking, workload
from .peers import make_peer, warm_peer


class Epoch:
    """An epoch of plain SGD, by fastbp and by each peer, in float32 and float64."""

    params = [WORKLOAD_NAMES, DTYPES, LIBRARIES]
    param_names = ["workload", "dtype", "library"]

    def setup(self, name, dtype, library):
        self.w, self.X, self.y, self.peer = warm_peer(name, library, dtype)
        self.timer = epoch_timer(self.w.epochs)

    def time_epoch(self, name, dtype, library):
        self.peer.fit_epochs(self.X, self.y, self.w.epochs)


class Optimizers:
    """An epoch of fastbp with each optimizer, in the workload's dtype.

    ``lbfgs`` runs one scipy L-BFGS-B iteration on the whole data per epoch (and one
    epoch per timed call); the others update after every minibatch.
    """

    params = [WORKLOAD_NAMES, OPTIMIZERS + ["lbfgs"]]
    param_names = ["workload", "optimizer"]

    def setup(self, name, optimizer):
        self.w = workload(name)
        self.X, self.y = get_data(self.w)
        # Momentum and Adam take larger steps than plain SGD at the same rate: a tenth of it
        # keeps repeated epochs on these random data from diverging (the time does not
        # depend on the rate).
        self.lr = None if optimizer in ("sgd", "lbfgs") else self.w.learning_rate / 10
        self.peer = make_peer("fastbp", self.w)
        self.peer.warm_up(self.X, self.y, optimizer, self.lr)
        self.epochs = epochs_per_call(self.w, optimizer)
        self.timer = epoch_timer(self.epochs)

    def time_epoch(self, name, optimizer):
        self.peer.fit_epochs(self.X, self.y, self.epochs, optimizer, self.lr)


#: The deep-network remedies, as ``fastbp.Network`` keyword arguments.
REMEDIES = {
    "plain": {},
    "residual": {"residual": True},
    "batch_norm": {"batch_norm": True},
    "batch_norm+residual": {"batch_norm": True, "residual": True},
    "dropout": {"dropout": 0.1},
}


def deep_network(remedy, w):
    """The medium workload's network with two more hidden layers of 128 (784-256-128-128-
    128-10, ReLU), and the ``remedy``'s options."""
    import fastbp

    layers = list(w.layers[:-1]) + [128, 128] + [w.layers[-1]]
    return fastbp.Network(layers, activation="relu", output=w.output, dtype=w.dtype,
                          random_state=0, **REMEDIES[remedy])


class _DeepNetworks:
    """Setup shared by the deep-remedy benchmarks: the deeper medium network with the
    remedy, and plain, both warmed up."""

    params = [list(REMEDIES)]
    param_names = ["remedy"]

    def setup(self, remedy):
        self.w = workload("medium")
        self.X, self.y = get_data(self.w)
        self.nets = {r: deep_network(r, self.w) for r in {remedy, "plain"}}
        for net in self.nets.values():  # compile (or load from the cache), then warm up
            self._fit(net, self.X[:2 * self.w.batch_size], self.y[:2 * self.w.batch_size])

    def _fit(self, net, X, y):
        net.fit(X, y, epochs=self.w.epochs, batch_size=self.w.batch_size,
                learning_rate=self.w.learning_rate, warm_start=True)


class DeepRemedies(_DeepNetworks):
    """An epoch of SGD on the deeper medium network, plain and with each remedy for deep
    networks."""

    def time_epoch(self, remedy):
        self._fit(self.nets[remedy], self.X, self.y)


class DeepRemedyCost(_DeepNetworks):
    """The remedy's epoch time over the plain epoch's, both measured in the same setup,
    interleaved (the target for batch_norm+residual: at most 1.3)."""

    unit = "x plain epoch"

    def track_cost(self, remedy):
        plain, net = self.nets["plain"], self.nets[remedy]
        t_plain, t_net = [], []
        for _ in range(repeats_for_tracking()):
            t_plain.append(median_seconds(lambda: self._fit(plain, self.X, self.y), 1))
            t_net.append(median_seconds(lambda: self._fit(net, self.X, self.y), 1))
        return float(np.median(t_net) / np.median(t_plain))
