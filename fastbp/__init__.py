"""fastbp: fast backpropagation for dense neural networks on the CPU."""
from . import optim
from .compat import NeuralNetwork
from .io import load
from .network import DivergenceError, Network

__all__ = ["DivergenceError", "MLPClassifier", "MLPRegressor", "Network", "NeuralNetwork", "load",
           "optim"]
__version__ = "0.1.0"


def __getattr__(name):
    # The estimators import scikit-learn, which costs about a second: only when asked for.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'fastbp' has no attribute {name!r}")
