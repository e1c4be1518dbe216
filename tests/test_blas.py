"""``fastbp._kernels.blas.matmul``: row-major products inside flat arrays, every transpose."""
import numpy as np
import pytest

from fastbp._kernels.blas import N, T, matmul


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [N, T], ids=["A", "A.T"])
@pytest.mark.parametrize("tb", [N, T], ids=["B", "B.T"])
def test_matmul_equals_numpy_for_every_transpose_offset_and_scaling(dtype, ta, tb):
    rng = np.random.default_rng(ta * 3 + tb)
    m, n, k = 5, 7, 3
    A = rng.standard_normal((m, k) if ta == N else (k, m)).astype(dtype)
    B = rng.standard_normal((k, n) if tb == N else (n, k)).astype(dtype)
    expected = (A if ta == N else A.T).astype(np.float64) @ (B if tb == N else B.T)
    # operands and result stored after unrelated values, as the kernels' buffers are
    flat_a = np.concatenate([np.full(3, 9, dtype), A.ravel()])
    flat_b = np.concatenate([np.full(2, 9, dtype), B.ravel()])
    C = np.full(4 + m * n + 2, np.nan, dtype)  # beta = 0 must not read the NaN
    matmul(ta, tb, m, n, k, 1.0, flat_a, 3, A.shape[1], flat_b, 2, B.shape[1], 0.0, C, 4, n)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C[4:4 + m * n].reshape(m, n), expected, rtol=tol, atol=tol)
    assert np.isnan(C[:4]).all() and np.isnan(C[4 + m * n:]).all()  # nothing outside C
    # alpha scales the product, beta = 1 accumulates onto C
    matmul(ta, tb, m, n, k, -0.5, flat_a, 3, A.shape[1], flat_b, 2, B.shape[1], 1.0, C, 4, n)
    np.testing.assert_allclose(C[4:4 + m * n].reshape(m, n), 0.5 * expected, rtol=tol, atol=tol)
