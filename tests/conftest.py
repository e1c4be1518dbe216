import numpy as np
import pytest

ACTIVATIONS = ["identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
               "swish"]
OUTPUTS = ["identity", "sigmoid", "softmax", "poisson"]


def make_data(n, n_in, n_out, output, seed=0, dtype=np.float64):
    """Random inputs and valid targets for an output kind (targets as the network takes them)."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    if output == "identity":
        y = rng.standard_normal((n, n_out)).astype(dtype)
    elif output == "sigmoid":
        y = (rng.rand(n, n_out) > 0.5).astype(dtype)
    elif output == "poisson":
        y = rng.poisson(2.0, size=(n, n_out)).astype(dtype)
    else:
        y = rng.randint(0, n_out, size=n)
    return X, y


def targets_2d(y, n_out, output, dtype=np.float64):
    """Targets as the (n, n_out) matrix the reference works with."""
    from fastbp import reference

    if output == "softmax" and np.ndim(y) == 1:
        return reference.one_hot(y, n_out).astype(dtype)
    return np.asarray(y, dtype=dtype).reshape(len(y), -1)


@pytest.fixture
def rng():
    return np.random.RandomState(12345)
