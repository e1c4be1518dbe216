"""In-place update rules over the flat parameter vector, one fused loop each."""
from .._config import njit

SGD = 0


@njit
def sgd_step(params, grad, learning_rate):
    """``params -= learning_rate * grad``."""
    lr = params.dtype.type(learning_rate)
    for k in range(params.shape[0]):
        params[k] -= lr * grad[k]
