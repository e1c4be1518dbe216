"""``fastbp._kernels.tiles``: the register-blocked product and transpose against NumPy, edges
included."""
import re

import numba
import numpy as np
import pytest

from fastbp import _config
from fastbp._kernels import tiles
from fastbp._kernels.tiles import product, tile, transpose

from conftest import compiled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p_transposed", [False, True], ids=["P", "P.T"])
@pytest.mark.parametrize("m, n, K", [(4, 16, 1), (8, 32, 64), (10, 29, 64), (3, 7, 5),
                                     (128, 33, 17), (1, 1, 1), (10, 29, 1), (1, 29, 10),
                                     (65, 129, 1), (9, 61, 13), (16, 48, 3)])
def test_product_equals_numpy(dtype, p_transposed, m, n, K):
    rng = np.random.default_rng(m * 1000 + n * 10 + K)
    Pm = rng.standard_normal((m, K))
    Q = rng.standard_normal((K, n))
    expected = Pm @ Q
    # P stored after 3 unrelated values, either as (m, K) or as its transpose (K, m)
    stored = Pm.T if p_transposed else Pm
    P = np.concatenate([np.full(3, 7.0), stored.ravel()]).astype(dtype)
    sk, si = (m, 1) if p_transposed else (1, K)
    # Q stored after 5 unrelated values, then the values a tile may read past its end
    Qf = np.concatenate([np.full(5, 7.0), Q.ravel(), np.full(_config.TILE_READ_PAST, 7.0)])
    Qf = Qf.astype(dtype)
    ldz = n + 2  # rows of Z with a gap that must stay untouched
    Z = np.full(4 + m * ldz, np.nan, dtype)
    compiled(product)(m, n, K, P, 3, sk, si, Qf, 5, n, Z, 4, ldz)
    got = Z[4:].reshape(m, ldz)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[:, :n], expected, rtol=tol, atol=tol * max(1, K) ** 0.5)
    assert np.isnan(got[:, n:]).all() and np.isnan(Z[:4]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["bias", "bias_relu"])
@pytest.mark.parametrize("m, n, K", [(8, 16, 64), (10, 29, 7), (3, 5, 2), (128, 32, 64),
                                     (10, 61, 5), (8, 48, 9)])
def test_the_epilogue_adds_the_bias_and_applies_the_relu(dtype, act, m, n, K):
    # dense.finish_rows's arithmetic in the tiles' stores: row i + B[b0 + i], then
    # max(x, 0) as Numba's max takes it (NaN stays NaN), whole and partial tiles
    rng = np.random.default_rng(m + n + K)
    Pm, Q = rng.standard_normal((m, K)), rng.standard_normal((K, n))
    Q[0, 0] = np.nan  # column 0 of every row: NaN, which the ReLU must not hide
    bias = rng.standard_normal(m)
    expected = Pm @ Q + bias[:, None]
    if act == "bias_relu":
        expected = np.where(0 > expected, 0.0, expected)
    P = Pm.ravel().astype(dtype)
    Qf = np.concatenate([Q.ravel(), np.zeros(_config.TILE_READ_PAST)]).astype(dtype)
    B = np.concatenate([np.full(2, 7.0), bias]).astype(dtype)
    Z = np.full(m * n, 7.0, dtype)
    code = tiles.BIAS_RELU if act == "bias_relu" else tiles.BIAS
    compiled(tiles.product_epilogue)(m, n, K, P, 0, 1, K, Qf, 0, n, Z, 0, n, B, 2, code)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(Z.reshape(m, n), expected, rtol=tol, atol=tol * K ** 0.5)
    assert np.isnan(Z.reshape(m, n)[:, 0]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, n", [(128, 16), (16, 128), (10, 16), (64, 29), (33, 17), (1, 1),
                                  (7, 3), (32, 32)])
def test_transpose_equals_numpy(dtype, m, n):
    # whole register blocks (16 x 16 float32 or 8 x 8 float64 with AVX-512, half that with
    # AVX2) and the edges around them, from a strided source into a strided destination
    rng = np.random.default_rng(m * 100 + n)
    block = rng.standard_normal((m, n)).astype(dtype)
    lds, ldd = n + 3, m + 2  # gaps in both that must stay untouched
    S = np.full(5 + m * lds, np.nan, dtype)
    S[5:].reshape(m, lds)[:, :n] = block
    D = np.full(2 + n * ldd, np.nan, dtype)
    compiled(transpose)(m, n, S, 5, lds, D, 2, ldd)
    got = D[2:].reshape(n, ldd)
    np.testing.assert_array_equal(got[:, :m], block.T)
    assert np.isnan(got[:, m:]).all() and np.isnan(D[:2]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_features, nb", [(64, 16), (64, 32), (20, 16), (64, 15), (2, 40),
                                            (17, 33)])
def test_gather_transposes_the_rows_it_visits(dtype, n_features, nb):
    # epoch.gather: rows order[start:start + nb] of X into a feature-major block, whole
    # register blocks (tiles.gather_block) and the edges around them
    from fastbp._kernels.epoch import gather

    rng = np.random.default_rng(n_features * 100 + nb)
    X = rng.standard_normal((3 * nb + 5, n_features)).astype(dtype)
    order = rng.permutation(len(X)).astype(np.int64)
    A = np.full(n_features * nb + 3, np.nan, dtype)
    compiled(gather)(X, order, 4, nb, 0, n_features, A)
    np.testing.assert_array_equal(A[:-3].reshape(n_features, nb), X[order[4:4 + nb]].T)
    assert np.isnan(A[-3:]).all()
    # a range of the features only (a part's share of a first layer split by its inputs)
    f_lo, f_hi = n_features // 3, n_features - 1
    A[:] = np.nan
    compiled(gather)(X, order, 4, nb, f_lo, f_hi, A)
    m = (f_hi - f_lo) * nb
    np.testing.assert_array_equal(A[:m].reshape(f_hi - f_lo, nb), X[order[4:4 + nb], f_lo:f_hi].T)
    assert np.isnan(A[m:]).all()


def test_the_tile_loop_is_marked_not_to_be_unrolled():
    # Unrolled, the loop's vectors outnumbered the AVX2 registers and were spilled on every
    # pass (see tiles._no_unroll); the mark must reach LLVM in its well-formed shape.
    # (compiled here, uncached: Numba cannot show the IR of cached code)
    width = tiles.C * tiles.VECTOR_BYTES // 4  # float32 lanes of a tile's row

    @numba.njit(cache=False)
    def one_tile(P, Q, Z):
        tile(P, 0, 1, 4, Q, 0, width, Z, 0, width, 4)

    a = np.ones(4 * tiles.R * width, dtype=np.float32)  # (P reads 4 R values, Q 4 rows)
    z = np.empty(tiles.R * width, dtype=np.float32)
    one_tile(a, a, z)
    np.testing.assert_array_equal(z, 4.0)
    ir_text = next(iter(one_tile.inspect_llvm().values()))
    assert '!"llvm.loop.unroll.disable"' in ir_text
    loop_ids = [m for m in re.finditer(r"^(!\d+) = distinct !\{\s*(!\d+)\s*,", ir_text, re.M)
                if m.group(1) == m.group(2)]
    assert loop_ids, "no self-referencing distinct loop id in the IR"


@pytest.mark.parametrize("name, features, wide", [
    (None, "+avx2,+fma,+avx512f", True), (None, "+avx2,+fma,-avx512f", False),
    ("generic", "", False), ("skylake-avx512", "+avx512f,+avx512bw", True)])
def test_the_tile_shape_follows_the_cpu_numba_compiles_for(monkeypatch, name, features, wide):
    monkeypatch.setattr(numba.config, "CPU_NAME", name)
    monkeypatch.setattr(numba.config, "CPU_FEATURES", features)
    assert _config._wide_vectors() is wide
