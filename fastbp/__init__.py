"""fastbp: fast backpropagation for dense neural networks on the CPU."""
from . import optim
from .compat import NeuralNetwork
from .io import load
from .network import DivergenceError, Network

__all__ = ["DivergenceError", "Network", "NeuralNetwork", "load", "optim"]
__version__ = "0.1.0"
