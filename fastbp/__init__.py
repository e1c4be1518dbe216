"""fastbp: fast backpropagation for dense neural networks on the CPU."""
from .compat import NeuralNetwork
from .network import DivergenceError, Network

__all__ = ["DivergenceError", "Network", "NeuralNetwork"]
__version__ = "0.1.0"
