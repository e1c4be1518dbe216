"""``fastbp._kernels.blas.matmul``: row-major products inside flat arrays, every transpose."""
import numpy as np
import pytest

from fastbp._kernels.blas import N, T, matmul

from conftest import compiled, run_child


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
    compiled(matmul)(ta, tb, m, n, k, 1.0, flat_a, 3, A.shape[1], flat_b, 2, B.shape[1], 0.0, C, 4, n)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C[4:4 + m * n].reshape(m, n), expected, rtol=tol, atol=tol)
    assert np.isnan(C[:4]).all() and np.isnan(C[4 + m * n:]).all()  # nothing outside C
    # alpha scales the product, beta = 1 accumulates onto C
    compiled(matmul)(ta, tb, m, n, k, -0.5, flat_a, 3, A.shape[1], flat_b, 2, B.shape[1], 1.0, C, 4, n)
    np.testing.assert_allclose(C[4:4 + m * n].reshape(m, n), 0.5 * expected, rtol=tol, atol=tol)


def test_numpy_blas_is_used_where_numpy_has_one():
    from fastbp._kernels import blas

    # NumPy's wheels ship OpenBLAS with 64-bit integers; other builds fall back to SciPy's.
    assert blas.BACKEND == ("numpy" if blas._numpy_gemm() is not None else "scipy")


SCIPY_BLAS = """
import numba
import numpy as np
from fastbp._kernels import blas
matmul = numba.njit(lambda *args: blas.matmul(*args))  # (see conftest.compiled)
assert blas.BACKEND == "scipy", blas.BACKEND
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    A = rng.standard_normal((6, 4)).astype(dtype)
    B = rng.standard_normal((5, 4)).astype(dtype)
    C = np.full(30, np.nan, dtype)
    matmul(blas.N, blas.T, 6, 5, 4, 2.0, A.ravel(), 0, 4, B.ravel(), 0, 4, 0.0, C, 0, 5)
    np.testing.assert_allclose(C.reshape(6, 5), 2 * A.astype(float) @ B.T, rtol=1e-5)
print("ok")
"""


def test_scipy_blas_fallback_computes_the_same_products():
    # FASTBP_BLAS=scipy binds the kernels' symbols to the adapter over SciPy's BLAS (what
    # happens when NumPy has no 64-bit-integer BLAS); the cached kernels stay valid.
    assert run_child(SCIPY_BLAS, FASTBP_BLAS="scipy") == "ok"
