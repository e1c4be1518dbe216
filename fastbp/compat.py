"""NeuralNetwork: the seed article's one-hidden-layer class, computed by fastbp's kernels.

Swap ``class NeuralNetwork`` of the article for ``from fastbp import NeuralNetwork``
and the rest of the script runs unchanged: same constructor, same attributes
(``W1``, ``b1``, ``W2``, ``b2``; ``z1``, ``a1``, ``z2``, ``a2`` after ``forward`` and
``train``), same methods and the same maths (ReLU hidden
layer, sigmoid output, gradient of the mean binary log loss, full-batch steps),
in float64.
"""
import numpy as np

from . import _config
from ._validation import assign_array, check_X, check_int, check_positive_float
from ._kernels.optimizers import H_LR
from .network import DivergenceError, Network, _Trainer
from .optim import SGD


class NeuralNetwork:
    """ReLU hidden layer and sigmoid output, trained by full-batch gradient descent.

    Parameters
    ----------
    input_size, hidden_size, output_size : int

    Attributes
    ----------
    W1 : ndarray of shape (input_size, hidden_size)
    b1 : ndarray of shape (1, hidden_size)
    W2 : ndarray of shape (hidden_size, output_size)
    b2 : ndarray of shape (1, output_size)
        Writable views into the network's flat parameter vector.  Initialised as
        the article does: weights ``np.random.randn(...) * 0.01`` from NumPy's
        global generator (so ``np.random.seed`` reproduces the article's start),
        biases zero.
    """

    def __init__(self, input_size, hidden_size, output_size):
        input_size = check_int("input_size", input_size)
        hidden_size = check_int("hidden_size", hidden_size)
        output_size = check_int("output_size", output_size)
        self.net = Network([input_size, hidden_size, output_size], activation="relu",
                           output="sigmoid", dtype=np.float64, random_state=0)
        self.net._params[:] = 0.0
        # Plain gradient steps: the SGD rule, no optimizer state.
        self.net._optimizer = SGD()
        self.net._hyper = self.net._optimizer.hyper(0.0)
        # (never read by the SGD rule; full-sized so that the network saves and loads)
        self.net._opt_state = np.zeros((2, self.net._params.size), dtype=np.float64)
        self.W1[...] = np.random.randn(input_size, hidden_size) * 0.01
        self.W2[...] = np.random.randn(hidden_size, output_size) * 0.01

    # The article's attributes, as views: assigning through them (nn.W1[...] = w) writes the
    # network's weights; assigning a new array replaces the values, keeping the view.
    def _view(i, kind):
        def get(self):
            arrays = self.net.coefs_ if kind == "W" else self.net.intercepts_
            return arrays[i] if kind == "W" else arrays[i].reshape(1, -1)

        def set(self, value):
            target = get(self)
            value = np.asarray(value)
            if kind == "b" and value.size == target.size:
                value = value.reshape(target.shape)  # (the article's b1 = np.zeros(h) broadcasts)
            assign_array(target, value, f"{kind}{i + 1}")

        return property(get, set)

    W1, b1 = _view(0, "W"), _view(0, "b")
    W2, b2 = _view(1, "W"), _view(1, "b")
    del _view

    # The article's helpers.
    def relu(self, x):
        return np.maximum(0, x)

    def relu_derivative(self, x):
        return (x > 0).astype(float)

    def sigmoid(self, x):
        from scipy.special import expit  # (here: importing it costs import fastbp 0.15 s)
        return expit(x)  # (1 / (1 + exp(-x)), without exp's overflow warning)

    def forward(self, X):
        """Sigmoid outputs ``a2`` of shape (n_samples, output_size); like the article's, it
        keeps ``z1``, ``a1``, ``z2`` and ``a2`` (computed with NumPy: the kernels keep none)."""
        try:
            one = np.ndim(X) == 1  # one sample, as the article's np.dot takes it: a row out
        except ValueError:  # (a ragged list: check_X names it)
            one = False
        if one:
            X = np.reshape(X, (1, -1))
        X = check_X(X, np.float64, self.net.n_features_in_)
        self.z1 = np.dot(X, self.W1) + self.b1
        self.a1 = self.relu(self.z1)
        self.z2 = np.dot(self.a1, self.W2) + self.b2
        self.a2 = self.sigmoid(self.z2)
        return self.a2

    def backward(self, X, y, learning_rate):
        """One gradient step on the mean log loss over all of ``(X, y)`` (the article's
        uses the last ``forward``'s values, which are those of ``X`` in its use)."""
        self._train(*self._checked(X, y, learning_rate), 1)

    def train(self, X, y, learning_rate, epochs):
        """``epochs`` full-batch gradient steps in the kernel; as after the article's, ``z1``,
        ``a1``, ``z2`` and ``a2`` are those of the last step's forward pass."""
        epochs = check_int("epochs", epochs, low=0)
        checked = self._checked(X, y, learning_rate)  # (bad input is named even for 0 epochs)
        if epochs == 0:
            return
        if epochs > 1:
            self._train(*checked, epochs - 1)
        self.forward(checked[0])
        self._train(*checked, 1)

    def _checked(self, X, y, learning_rate):
        """``(X, Y, SW, learning_rate)`` as the kernel takes them (each checked once)."""
        learning_rate = check_positive_float("learning_rate", learning_rate, allow_zero=True)
        return (*self.net._check_data(X, y), learning_rate)

    def _train(self, X, Y, SW, learning_rate, epochs):
        net = self.net
        n = X.shape[0]
        order = np.arange(n, dtype=np.int64).reshape(1, n)
        net._hyper[H_LR] = learning_rate
        # Kernel calls of at most about EPOCH_CALL_WORK multiply-adds, as Network.fit's: a
        # Ctrl-C waits for the call it comes in.
        per_call = max(1, _config.EPOCH_CALL_WORK // max(1, n * net._params.size))
        done = 0
        with _Trainer(net, X, Y, SW, n, call_rows=min(per_call, epochs) * n) as trainer:
            while done < epochs:
                k = min(per_call, epochs - done)
                try:
                    trainer.run(order, k, want_loss=False)
                except DivergenceError:
                    # The call ran k steps without computing the loss: say what happened in
                    # those terms (the weights are back to what they were before them).
                    raise DivergenceError(
                        f"training diverged: the weights became non-finite within {k} "
                        f"full-batch step(s) (steps {done + 1} to {done + k} of {epochs}) at "
                        f"learning_rate={learning_rate:g}; lower it or scale X. The weights "
                        f"from before those steps were restored.") from None
                trainer.commit()
                done += k

    def predict(self, X):
        """0/1 labels of shape (n_samples, output_size), as int."""
        return (self.forward(X) > 0.5).astype(int)
