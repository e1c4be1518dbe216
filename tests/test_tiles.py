"""``fastbp._kernels.tiles.product``: the register-blocked product against NumPy, edges included."""
import re

import numba
import numpy as np
import pytest

from fastbp import _config
from fastbp._kernels import tiles
from fastbp._kernels.tiles import product, tile

from conftest import compiled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p_transposed", [False, True], ids=["P", "P.T"])
@pytest.mark.parametrize("m, n, K", [(4, 16, 1), (8, 32, 64), (10, 29, 64), (3, 7, 5),
                                     (128, 33, 17), (1, 1, 1), (10, 29, 1), (1, 29, 10),
                                     (65, 129, 1)])
def test_product_equals_numpy(dtype, p_transposed, m, n, K):
    rng = np.random.default_rng(m * 1000 + n * 10 + K)
    Pm = rng.standard_normal((m, K))
    Q = rng.standard_normal((K, n))
    expected = Pm @ Q
    # P stored after 3 unrelated values, either as (m, K) or as its transpose (K, m)
    stored = Pm.T if p_transposed else Pm
    P = np.concatenate([np.full(3, 7.0), stored.ravel()]).astype(dtype)
    sk, si = (m, 1) if p_transposed else (1, K)
    Qf = np.concatenate([np.full(5, 7.0), Q.ravel()]).astype(dtype)
    ldz = n + 2  # rows of Z with a gap that must stay untouched
    Z = np.full(4 + m * ldz, np.nan, dtype)
    compiled(product)(m, n, K, P, 3, sk, si, Qf, 5, n, Z, 4, ldz)
    got = Z[4:].reshape(m, ldz)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[:, :n], expected, rtol=tol, atol=tol * max(1, K) ** 0.5)
    assert np.isnan(got[:, n:]).all() and np.isnan(Z[:4]).all()


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
