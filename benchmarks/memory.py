"""Peak memory of training on the medium workload (784-256-128-10, batch 128, float32).

asv's ``peakmem_`` is the peak resident size of the whole benchmark process: the
interpreter, the library, the data (12,800 x 784 float32 under the default profile,
40 MB) and one epoch of ``fit``.  Compare the lines with each other, not with zero.
"""
from .common import LIBRARIES, get_data, workload
from .peers import make_peer


class FitMemory:
    params = [LIBRARIES]
    param_names = ["library"]

    def setup(self, library):
        self.w = workload("medium")
        self.X, self.y = get_data(self.w)
        self.peer = make_peer(library, self.w)

    def peakmem_fit(self, library):
        self.peer.fit_epochs(self.X, self.y, 1)
