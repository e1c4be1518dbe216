"""Training speed: seconds per epoch of minibatch training, for each workload.

Every time benchmark here reports the mean seconds of ONE epoch: a timed call runs
``w.epochs`` epochs in one ``fit`` (100 for the tiny workload, whose epoch takes
microseconds, so that ``fit``'s once-per-call cost is spread as in a real fit; one for
the medium and large ones) and its ``timer`` divides the clock by that count.
"""
from .common import DTYPES, LIBRARIES, OPTIMIZERS, WORKLOAD_NAMES, epoch_timer, epochs_per_call, \
    get_data, workload
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
