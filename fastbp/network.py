"""Network: a dense feed-forward network trained by backpropagation with fused Numba kernels."""
import numpy as np

from . import _config
from ._kernels.epoch import data_gradient, predict_rows, run_epochs
from ._spec import ACTIVATIONS, OUTPUTS, buffer_sizes, layer_table, weight_views
from ._validation import (check_X, check_bool, check_choice, check_float_dtype, check_int,
                          check_layers, check_positive_float, check_random_state, check_targets)

OPTIMIZERS = ("sgd",)


class DivergenceError(ValueError):
    """Training produced a non-finite loss or non-finite weights."""


class Network:
    """A dense network ``[n_in, h1, ..., n_out]`` trained by minibatch backpropagation.

    Parameters
    ----------
    layers : sequence of int
        Widths of every layer, input first, output last.
    activation : {'identity', 'logistic', 'sigmoid', 'tanh', 'relu', 'leaky_relu'}, default='relu'
        Activation of every hidden layer (``sigmoid`` is an alias of ``logistic``).
    output : {'identity', 'sigmoid', 'softmax'}, default='identity'
        Output layer, which fixes the loss: squared error, binary (or multilabel)
        log loss, or categorical log loss.  Conventions are scikit-learn's.
    dtype : float32 or float64, default=np.float32
        Dtype of the parameters and of the training arithmetic.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights (scikit-learn's Glorot-uniform scheme) and the
        shuffling of every epoch.

    Attributes
    ----------
    coefs_ : list of ndarray of shape (n_in, n_out)
        Weight matrices, views into one flat parameter vector.
    intercepts_ : list of ndarray of shape (n_out,)
        Bias vectors, views into the same vector.
    loss_curve_ : list of float
        Mean training loss of each epoch of the last ``fit``.
    """

    def __init__(self, layers, activation="relu", output="identity", dtype=np.float32,
                 random_state=None):
        self.layers = check_layers(layers)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.output = check_choice("output", output, OUTPUTS)
        if output == "softmax" and self.layers[-1] < 2:
            raise ValueError(f"output='softmax' needs at least 2 output units, got layers={list(layers)}")
        self.dtype = check_float_dtype(dtype)
        self.random_state = random_state
        self._rng = check_random_state(random_state)
        self._table, n_params = layer_table(self.layers, ACTIVATIONS[self.activation],
                                            OUTPUTS[self.output])
        self._params = np.empty(n_params, dtype=self.dtype)
        self._set_views()
        self._init_glorot()
        self.loss_curve_ = []

    # -- parameters -----------------------------------------------------------------------------

    def _set_views(self):
        self.coefs_, self.intercepts_ = weight_views(self._params, self._table)

    def _init_glorot(self):
        # scikit-learn's scheme and draw order: per layer, coefs then intercepts, uniform in
        # +-sqrt(factor / (fan_in + fan_out)), factor 2 for logistic hidden units, else 6.
        factor = 2.0 if self.activation in ("logistic", "sigmoid") else 6.0
        for W, b in zip(self.coefs_, self.intercepts_):
            bound = np.sqrt(factor / (W.shape[0] + W.shape[1]))
            W[...] = self._rng.uniform(-bound, bound, W.shape)
            b[...] = self._rng.uniform(-bound, bound, b.shape)

    @property
    def n_features_in_(self):
        return self.layers[0]

    @property
    def n_outputs_(self):
        return self.layers[-1]

    def get_params_vector(self):
        """A copy of the flat parameter vector (all weights and biases, layer by layer)."""
        return self._params.copy()

    def set_params_vector(self, vector):
        """Overwrite every weight and bias from a flat vector of the right length."""
        v = np.asarray(vector)
        if v.shape != self._params.shape:
            raise ValueError(f"vector must have shape {self._params.shape}, got {v.shape}")
        v = check_X(v.reshape(1, -1), self.dtype, name="vector").ravel()
        self._params[:] = v

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["coefs_"], state["intercepts_"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._set_views()

    def __repr__(self):
        return (f"Network(layers={list(self.layers)}, activation={self.activation!r}, "
                f"output={self.output!r}, dtype={self.dtype.name})")

    # -- training -------------------------------------------------------------------------------

    def _check_data(self, X, y):
        X = check_X(X, self.dtype, self.n_features_in_)
        Y = check_targets(y, X.shape[0], self.n_outputs_, self.output, self.dtype)
        return X, Y

    def fit(self, X, y, *, epochs=200, batch_size=32, learning_rate=0.01, optimizer="sgd",
            shuffle=True):
        """Train from the current weights with minibatch gradient descent.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; for a softmax output, integer class indices are accepted.
        epochs : int, default=200
        batch_size : int, default=32
            Capped at ``n_samples`` (full-batch training).
        learning_rate : float, default=0.01
        optimizer : {'sgd'}, default='sgd'
        shuffle : bool, default=True
            Visit the samples in a new random order every epoch.

        Returns
        -------
        self
        """
        epochs = check_int("epochs", epochs)
        batch_size = check_int("batch_size", batch_size)
        learning_rate = check_positive_float("learning_rate", learning_rate)
        check_choice("optimizer", optimizer, OPTIMIZERS)
        shuffle = check_bool("shuffle", shuffle)
        X, Y = self._check_data(X, y)
        n = X.shape[0]
        batch = min(batch_size, n)
        orders = np.arange(n, dtype=np.int64).reshape(1, n)
        self.loss_curve_ = []
        with _Trainer(self, X, Y, batch) as trainer:
            for _ in range(epochs):
                if shuffle:
                    orders[0] = self._rng.permutation(n)
                self.loss_curve_.append(trainer.run(orders, learning_rate, 1)[0])
        return self

    # -- inference ------------------------------------------------------------------------------

    def forward(self, X):
        """Output-layer values of shape (n_samples, n_outputs): probabilities for sigmoid and
        softmax outputs, raw values for identity."""
        X = check_X(X, self.dtype, self.n_features_in_)
        n = X.shape[0]
        chunk = min(n, _config.FORWARD_CHUNK)
        abuf_len, _ = buffer_sizes(self.layers, chunk)
        out = np.empty((n, self.n_outputs_), dtype=self.dtype)
        predict_rows(self._params, X, np.arange(n, dtype=np.int64), self._table, chunk,
                     np.empty(abuf_len, dtype=self.dtype), out)
        return out

    def predict(self, X):
        """Predictions: values for identity outputs, 0/1 labels for sigmoid, class indices for softmax.

        A single output gives shape (n_samples,), several give (n_samples, n_outputs);
        softmax always gives (n_samples,).
        """
        out = self.forward(X)
        if self.output == "softmax":
            return np.argmax(out, axis=1)
        if self.output == "sigmoid":
            out = (out > 0.5).astype(np.int64)
        return out[:, 0] if self.n_outputs_ == 1 else out

    def predict_proba(self, X):
        """Class probabilities; for a single sigmoid output, the columns are P(0) and P(1)."""
        if self.output == "identity":
            raise ValueError("predict_proba needs output='sigmoid' or 'softmax'; this network's "
                             "output is 'identity' (use forward or predict)")
        out = self.forward(X)
        if self.output == "sigmoid" and self.n_outputs_ == 1:
            return np.hstack([1 - out, out])
        return out

    def loss_and_gradients(self, X, y):
        """Mean loss over ``(X, y)`` and its exact gradient.

        Returns
        -------
        loss : float
        coef_grads : list of ndarray of shape (n_in, n_out)
        intercept_grads : list of ndarray of shape (n_out,)
        """
        X, Y = self._check_data(X, y)
        n = X.shape[0]
        chunk = min(n, _config.FORWARD_CHUNK)
        abuf_len, tmp_len = buffer_sizes(self.layers, chunk)
        total = np.empty_like(self._params)
        loss = data_gradient(self._params, X, Y, np.arange(n, dtype=np.int64), self._table, chunk,
                             np.empty(abuf_len, self.dtype), np.empty(tmp_len, self.dtype),
                             np.empty_like(self._params), total)
        coef_grads, intercept_grads = weight_views(total, self._table)
        return float(loss), coef_grads, intercept_grads


class _Trainer:
    """Buffers of one fit and the guard that keeps the weights usable when training fails."""

    def __init__(self, net, X, Y, batch):
        self.net, self.X, self.Y = net, X, Y
        self.batch = batch
        abuf_len, tmp_len = buffer_sizes(net.layers, batch)
        self.abuf = np.empty(abuf_len, dtype=net.dtype)
        self.tmp = np.empty(tmp_len, dtype=net.dtype)
        self.grad = np.empty_like(net._params)
        self.last_good = net._params.copy()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.net._params[:] = self.last_good
        return False

    def run(self, orders, learning_rate, n_epochs, want_loss=True):
        """Run ``n_epochs`` epochs in one kernel call; returns their mean losses.

        Without ``want_loss`` the losses are not computed (zeros), which saves a
        logarithm per output and sample; divergence is then seen in the weights.
        """
        params = self.net._params
        losses = np.empty(n_epochs, dtype=np.float64)
        run_epochs(params, self.X, self.Y, orders, self.net._table, self.batch, learning_rate,
                   self.abuf, self.tmp, self.grad, losses, want_loss)
        if not (np.isfinite(losses).all() and np.isfinite(params.sum(dtype=np.float64))):
            raise DivergenceError(
                f"training diverged (loss {losses[-1]!r}): the loss or the weights became "
                f"non-finite. The learning rate ({learning_rate}) is the likely cause; lower it "
                f"or scale the inputs. The weights from before the failing epoch were restored.")
        self.last_good[:] = params
        return losses
