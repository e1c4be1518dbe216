"""Numbers that are not times: throughput, speed-up over NumPy, and test accuracy.

Each ``track_`` benchmark measures inside one call (medians over a few repeats, the
kernels warmed up in ``setup``) and returns a number in its ``unit``.
"""
import numpy as np

from .common import LIBRARIES, WORKLOAD_NAMES, get_data, get_digits, get_moons, median_seconds, \
    profile, repeats_for_tracking, workload
from .peers import make_peer, warm_peer


class Throughput:
    """Useful GFLOP/s of plain-SGD training: samples per second times the floating-point
    operations one sample needs (6P - 2P_first, P the number of weights, P_first those of
    the first layer), by fastbp and by each peer."""

    params = [WORKLOAD_NAMES, LIBRARIES]
    param_names = ["workload", "library"]
    unit = "GFLOP/s"

    def setup(self, name, library):
        self.w, self.X, self.y, self.peer = warm_peer(name, library)

    def track_gflops(self, name, library):
        w = self.w
        seconds = median_seconds(lambda: self.peer.fit_epochs(self.X, self.y, w.epochs),
                                 repeats_for_tracking())
        return w.epochs * w.n_samples * w.flops_per_sample / seconds / 1e9


class SpeedUp:
    """How many times faster fastbp trains than the NumPy reference (``fastbp.reference``,
    the same maths layer by layer): the ratio of their median epoch times, measured
    interleaved in one process so both see the same machine load."""

    params = [WORKLOAD_NAMES]
    param_names = ["workload"]
    unit = "times faster than numpy"

    def setup(self, name):
        self.w = workload(name)
        self.X, self.y = get_data(self.w)
        self.fast = make_peer("fastbp", self.w)
        self.slow = make_peer("numpy", self.w)
        self.fast.warm_up(self.X, self.y)

    def track_speedup_over_numpy(self, name):
        X, y, epochs = self.X, self.y, self.w.epochs
        times = {self.fast: [], self.slow: []}
        for _ in range(repeats_for_tracking()):
            for peer, samples in times.items():
                samples.append(median_seconds(lambda: peer.fit_epochs(X, y, epochs), 1))
        return float(np.median(times[self.slow]) / np.median(times[self.fast]))


class Accuracy:
    """Test accuracy after training, by fastbp and by each peer from the same start.

    ``moons``: the seed article's example: make_moons(1000, noise 0.1), a 2-10-1 ReLU
    network with a sigmoid output, the article's initial weights (numpy's global
    generator seeded 0, ``randn * 0.01``), 1000 full-batch epochs at rate 0.1.  fastbp
    trains it with ``fastbp.NeuralNetwork`` and numpy with the article's own class
    (``fastbp.reference.SeedNetwork``); both give about 0.87.
    ``digits``: load_digits scaled to [0, 1], 80/20 split, the small workload's network
    (64-128-64-10 softmax) from ``fastbp.Network(random_state=0)``'s weights, 20 epochs
    of SGD at rate 0.1, batch 32.
    Under the ``tiny`` profile a few epochs only (a smoke test, not an accuracy).
    """

    params = [["moons", "digits"], LIBRARIES]
    param_names = ["dataset", "library"]
    unit = "accuracy"
    rounds = 1
    timeout = 120

    def setup(self, dataset, library):
        tiny = profile() == "tiny"
        if dataset == "moons":
            self.w = workload("tiny")
            self.epochs = 5 if tiny else 1000
            self.data = get_moons()
            self.lr = self.w.learning_rate
        else:
            self.w = workload("small")
            self.epochs = 1 if tiny else 20
            self.data = get_digits(self.w.dtype)
            self.lr = 0.1
        self.peer = None
        if dataset == "moons" and library in ("fastbp", "numpy"):
            return  # the article's own classes, in track_test_accuracy
        # No warm-up: nothing here is timed, and every library trains the same steps.
        init = _article_weights() if dataset == "moons" else None
        self.peer = make_peer(library, self.w, "float64" if dataset == "moons" else None, init)

    def track_test_accuracy(self, dataset, library):
        X_train, X_test, y_train, y_test = self.data
        if self.peer is None:  # the article's own classes
            from fastbp import NeuralNetwork, reference

            np.random.seed(0)
            net = (NeuralNetwork if library == "fastbp" else reference.SeedNetwork)(2, 10, 1)
            net.train(X_train, y_train, learning_rate=self.lr, epochs=self.epochs)
            return float(np.mean(net.predict(X_test)[:, 0] == y_test))
        self.peer.fit_epochs(X_train, y_train, self.epochs, learning_rate=self.lr)
        return float(np.mean(np.ravel(self.peer.predict(X_test)) == y_test))


def _article_weights():
    """The article's initial weights: numpy's global generator seeded 0, ``randn * 0.01``."""
    state = np.random.get_state()
    try:
        np.random.seed(0)
        W1 = np.random.randn(2, 10) * 0.01
        W2 = np.random.randn(10, 1) * 0.01
    finally:
        np.random.set_state(state)
    return [W1, W2], [np.zeros(10), np.zeros(1)]
