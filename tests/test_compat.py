"""fastbp.NeuralNetwork against the seed article's NumPy maths."""
import numpy as np
import pytest

import fastbp
from fastbp.demo import moons_split


@pytest.fixture(scope="module")
def moons():
    return moons_split()


def article_training(W1, b1, W2, b2, X, y, learning_rate, epochs):
    """The article's section-4 training loop, restated: ReLU hidden layer, sigmoid output,
    full-batch steps along the gradient of the mean log loss (output error a2 - y)."""
    W1, b1, W2, b2 = (p.copy() for p in (W1, b1, W2, b2))
    y = y.reshape(-1, 1)
    m = len(X)
    for _ in range(epochs):
        hidden_in = X @ W1 + b1
        hidden = np.maximum(hidden_in, 0)
        out = 1 / (1 + np.exp(-(hidden @ W2 + b2)))
        err_out = out - y
        err_hidden = (err_out @ W2.T) * (hidden_in > 0)
        W2 = W2 - learning_rate * (hidden.T @ err_out) / m
        b2 = b2 - learning_rate * err_out.sum(axis=0, keepdims=True) / m
        W1 = W1 - learning_rate * (X.T @ err_hidden) / m
        b1 = b1 - learning_rate * err_hidden.sum(axis=0, keepdims=True) / m
    return W1, b1, W2, b2


def test_initialisation_is_the_articles():
    np.random.seed(3)
    nn = fastbp.NeuralNetwork(2, 10, 1)
    np.random.seed(3)
    W1 = np.random.randn(2, 10) * 0.01
    W2 = np.random.randn(10, 1) * 0.01
    np.testing.assert_array_equal(nn.W1, W1)
    np.testing.assert_array_equal(nn.W2, W2)
    assert nn.b1.shape == (1, 10) and nn.b2.shape == (1, 1)
    assert not nn.b1.any() and not nn.b2.any()
    assert all(p.dtype == np.float64 for p in (nn.W1, nn.b1, nn.W2, nn.b2))


def test_1000_epochs_match_the_article_maths(moons):
    X_train, _, y_train, _ = moons
    np.random.seed(0)
    nn = fastbp.NeuralNetwork(2, 10, 1)
    expected = article_training(nn.W1, nn.b1, nn.W2, nn.b2, X_train, y_train, 0.1, 1000)
    nn.train(X_train, y_train, learning_rate=0.1, epochs=1000)
    for got, want in zip((nn.W1, nn.b1, nn.W2, nn.b2), expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_backward_is_one_step(moons):
    X_train, _, y_train, _ = moons
    np.random.seed(1)
    nn = fastbp.NeuralNetwork(2, 4, 1)
    expected = article_training(nn.W1, nn.b1, nn.W2, nn.b2, X_train, y_train, 0.5, 1)
    nn.forward(X_train)
    nn.backward(X_train, y_train.reshape(-1, 1), 0.5)
    for got, want in zip((nn.W1, nn.b1, nn.W2, nn.b2), expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_weights_are_writable_views():
    nn = fastbp.NeuralNetwork(2, 3, 1)
    X = np.array([[1.0, -2.0], [0.5, 0.25]])
    nn.W1[...] = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 2.0]])
    nn.W2 = np.ones((3, 1))
    nn.b2[0, 0] = -0.5
    assert np.shares_memory(nn.W1, nn.net._params)
    hidden = np.maximum(X @ nn.W1 + nn.b1, 0)
    np.testing.assert_allclose(nn.forward(X), 1 / (1 + np.exp(-(hidden @ nn.W2 + nn.b2))))
    np.testing.assert_allclose(nn.z1, X @ nn.W1 + nn.b1)
    np.testing.assert_allclose(nn.a1, hidden)
    with pytest.raises(ValueError, match="W2"):
        nn.W2 = np.ones((2, 1))


def test_predict_returns_int_column(moons):
    X_train, X_test, y_train, y_test = moons
    np.random.seed(42)
    nn = fastbp.NeuralNetwork(2, 10, 1)
    nn.train(X_train, y_train, learning_rate=0.1, epochs=1000)
    pred = nn.predict(X_test)
    assert pred.shape == (len(X_test), 1)
    assert np.issubdtype(pred.dtype, np.integer)
    # The article reports about 0.87 test accuracy for these settings.
    assert 0.84 <= np.mean(pred[:, 0] == y_test) <= 0.90


def test_the_articles_intermediate_values_helpers_and_corner_arguments(moons):
    X_train, _, y_train, _ = moons
    np.random.seed(1)
    nn = fastbp.NeuralNetwork(2, 10, 1)
    with pytest.raises(AttributeError):  # (as the article's: set by forward)
        nn.z1
    W1, b1, W2, b2 = (p.copy() for p in (nn.W1, nn.b1, nn.W2, nn.b2))
    nn.train(X_train, y_train, 0.1, 3)
    # after train, the last step's forward pass: the weights after two steps
    W1, b1, W2, b2 = article_training(W1, b1, W2, b2, X_train, y_train, 0.1, 2)
    z1 = X_train @ W1 + b1
    np.testing.assert_allclose(nn.z1, z1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(nn.a1, np.maximum(z1, 0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(nn.a2, nn.sigmoid(nn.z2), rtol=1e-12)
    a2 = nn.forward(X_train)  # forward then backward keeps forward's values
    z1 = nn.z1.copy()
    nn.backward(X_train, y_train.reshape(-1, 1), 0.5)
    np.testing.assert_array_equal(nn.z1, z1)
    assert nn.a2 is a2
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(nn.relu(x), [[0, 0, 2]])
    np.testing.assert_array_equal(nn.relu_derivative(x), [[0, 0, 1]])
    np.testing.assert_allclose(nn.sigmoid(x), 1 / (1 + np.exp(-x)))
    before = nn.W1.copy()
    nn.train(X_train, y_train, 0.0, 3)  # (the article's loop runs: nothing moves)
    nn.train(X_train, y_train, 0.1, 0)
    np.testing.assert_array_equal(nn.W1, before)
    nn.b1 = np.zeros(10)  # (the article's broadcasts)
    assert np.all(nn.b1 == 0) and nn.b1.shape == (1, 10)


def test_a_one_dimensional_sample_predicts_a_row(moons):
    # (the article's np.dot takes one sample as a vector: forward gives a 1 x out row)
    X_train, _, y_train, _ = moons
    np.random.seed(0)
    nn = fastbp.NeuralNetwork(2, 10, 1)
    nn.train(X_train, y_train.reshape(-1, 1), 0.5, 50)
    np.testing.assert_array_equal(nn.predict(X_train[0]), nn.predict(X_train[:1]))
    assert nn.forward(list(X_train[3])).shape == (1, 1)
    with pytest.raises(ValueError, match="feature"):
        nn.predict(np.zeros(3))


def test_train_runs_in_calls_of_bounded_work(moons, monkeypatch):
    # Ctrl-C waits for the kernel call it comes in: as Network.fit's, train's calls stop at
    # about EPOCH_CALL_WORK multiply-adds (20,000 epochs had run in one 19 s call).
    from fastbp import _config, network

    X_train, _, y_train, _ = moons
    n, n_params = len(X_train), 2 * 10 + 10 + 10 + 1
    monkeypatch.setattr(_config, "EPOCH_CALL_WORK", 7 * n * n_params)
    calls = []
    real = network._Trainer.run

    def run(self, orders, n_epochs, **kw):
        calls.append(n_epochs)
        return real(self, orders, n_epochs, **kw)

    monkeypatch.setattr(network._Trainer, "run", run)
    np.random.seed(0)
    nn = fastbp.NeuralNetwork(2, 10, 1)
    W1, b1, W2, b2 = nn.W1.copy(), nn.b1.copy(), nn.W2.copy(), nn.b2.copy()
    nn.train(X_train, y_train.reshape(-1, 1), 0.5, 30)
    assert calls == [7, 7, 7, 7, 1, 1]  # (29 steps, then the last after the article's forward)
    want = article_training(W1, b1, W2, b2, X_train, y_train, 0.5, 30)
    for got, w in zip((nn.W1, nn.b1, nn.W2, nn.b2), want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)
