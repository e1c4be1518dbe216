"""Prediction and the full-data loss and gradient, by fastbp and by each peer.

Both run on the workload's whole data (its rows under the size profile), in the
workload's dtype.
"""
from .common import LIBRARIES, WORKLOAD_NAMES
from .peers import warm_peer


class Predict:
    """Class labels for every row."""

    params = [WORKLOAD_NAMES, LIBRARIES]
    param_names = ["workload", "library"]

    def setup(self, name, library):
        self.w, self.X, self.y, self.peer = warm_peer(name, library)
        self.peer.predict(self.X)

    def time_predict(self, name, library):
        self.peer.predict(self.X)


class LossAndGradients:
    """Mean loss over every row and its gradient with respect to every parameter
    (scikit-learn has no public function for it)."""

    params = [WORKLOAD_NAMES, [lib for lib in LIBRARIES if lib != "sklearn"]]
    param_names = ["workload", "library"]

    def setup(self, name, library):
        self.w, self.X, self.y, self.peer = warm_peer(name, library)

    def time_loss_and_gradients(self, name, library):
        self.peer.loss_and_gradients(self.X, self.y)
